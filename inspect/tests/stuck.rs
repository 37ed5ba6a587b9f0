//! Images of stuck links, produced by the project's own ring roles over an
//! in-memory window and then arranged per stuck state: each is detected
//! with the right diagnosis, and healthy images produce none.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use ipc_traits::shm::SharedMemory;
use ring_inspect::{inspect, Inspection, Kind, LayoutOptions, Preset};
use rpmsg::rsc_table::status;
use vring::Suppression;

const OK: u8 = status::ACKNOWLEDGE | status::DRIVER | status::DRIVER_OK;
const EVENT_IDX: u32 = 1 << 29;

fn run(g: &Geometry, opts: &LayoutOptions, images: &[Vec<u8>]) -> Inspection {
    let named: Vec<(String, Vec<u8>)> = images
        .iter()
        .enumerate()
        .map(|(i, b)| (format!("sample {i}"), b.clone()))
        .collect();
    let _ = g;
    inspect(&named, opts).unwrap()
}

fn kinds(ins: &Inspection) -> Vec<(Kind, Option<usize>)> {
    ins.diagnoses.iter().map(|d| (d.kind, d.ring)).collect()
}

/// Exactly one diagnosis, of `kind` on `ring`; every sentence is printed.
fn expect(ins: &Inspection, kind: Kind, ring: Option<usize>) {
    for d in &ins.diagnoses {
        println!("{}", d.sentence());
    }
    assert_eq!(kinds(ins), vec![(kind, ring)], "{:#?}", ins.diagnoses);
    let s = ins.diagnoses[0].sentence();
    assert!(s.contains("likely fix"), "{s}");
    assert!(s.ends_with('.'), "{s}");
}

fn healthy(ins: &Inspection) {
    assert!(ins.diagnoses.is_empty(), "{:#?}", ins.diagnoses);
}

/// Master and remote up, the name announced and read.
fn up<'m>(
    shm: &'m ipc_traits::shm::RawRegion<ipc_traits::cache::Coherent>,
    g: &Geometry,
    s: Suppression,
) -> (Master<'m>, Remote<'m>) {
    let mut m = Master::new(shm, *g, s);
    if g.table {
        m.set_status(OK);
        if s == Suppression::EventIdx {
            m.set_gfeatures(1 | EVENT_IDX);
        }
    }
    let mut r = Remote::new(g, shm, s);
    assert!(r.announce("rpmsg-tty", 30));
    assert_eq!(m.read(1, false), 1);
    (m, r)
}

// --------------------------------------------------------------- healthy

#[test]
fn healthy_exchanges_produce_no_warning() {
    for g in [mcu(), remoteproc()] {
        let opts = options(&g);
        with_link(&g, |shm| {
            let (mut m, mut r) = up(shm, &g, Suppression::Flags);
            let a = snapshot(shm);
            healthy(&run(&g, &opts, std::slice::from_ref(&a)));
            for t in [&b"one"[..], b"two", b"three"] {
                assert!(m.send(t));
            }
            let b = snapshot(shm);
            // Three messages in flight: a moment, not a stall.
            let ins = run(&g, &opts, std::slice::from_ref(&b));
            healthy(&ins);
            assert_eq!(ins.now().unwrap().pending().count(), 3);
            assert_eq!(r.recv(3), 3);
            assert!(r.send(30, 0x400, b"pong"));
            assert_eq!(m.read(1, false), 1);
            let c = snapshot(shm);
            healthy(&run(&g, &opts, &[a.clone(), b.clone(), c.clone()]));
            // An idle link that has nothing to do is not stuck.
            healthy(&run(&g, &opts, &[c.clone(), c.clone()]));
            assert_eq!(r.got.len(), 3);
            assert_eq!(m.got.len(), 2);
        });
    }
}

#[test]
fn healthy_event_idx_exchange_produces_no_warning() {
    let g = remoteproc();
    let opts = options(&g);
    with_link(&g, |shm| {
        let (mut m, mut r) = up(shm, &g, Suppression::EventIdx);
        let mut images = vec![snapshot(shm)];
        for k in 0..40u32 {
            assert!(m.send(format!("msg {k}").as_bytes()));
            assert_eq!(r.recv(1), 1);
            if k % 3 == 0 {
                assert!(r.send(30, 0x400, b"ack"));
                assert_eq!(m.read(1, false), 1);
            }
            images.push(snapshot(shm));
        }
        let ins = run(&g, &opts, &images);
        assert!(ins.link.event_idx, "EVENT_IDX from the table's gfeatures");
        healthy(&ins);
        let last = images.last().unwrap().clone();
        healthy(&run(&g, &opts, &[last.clone(), last]));
    });
}

// ------------------------------------------------------ start kick missing

#[test]
fn start_kick_missing() {
    for g in [mcu(), remoteproc()] {
        let opts = options(&g);
        with_link(&g, |shm| {
            let mut m = Master::new(shm, g, Suppression::Flags);
            if g.table {
                m.set_status(OK);
            }
            assert!(m.send(b"hello"));
            assert!(m.send(b"anyone?"));
            // The remote never runs: it never saw a kick.
            let a = snapshot(shm);
            healthy(&run(&g, &opts, std::slice::from_ref(&a)));
            let ins = run(&g, &opts, &[a.clone(), a.clone()]);
            expect(&ins, Kind::StartKickMissing, Some(1));
        });
    }
}

// ---------------------------------------------- notifications suppressed

#[test]
fn device_suppressed_kicks_and_stopped_polling() {
    let g = mcu();
    let opts = options(&g);
    with_link(&g, |shm| {
        let (mut m, mut r) = up(shm, &g, Suppression::Flags);
        assert!(m.send(b"first"));
        assert_eq!(r.recv(1), 1);
        // The remote switches to polling (NO_NOTIFY) ... and never polls.
        r.rx.disable_notifications().unwrap();
        assert!(m.send(b"second"));
        assert!(m.send(b"third"));
        let a = snapshot(shm);
        healthy(&run(&g, &opts, std::slice::from_ref(&a)));
        expect(
            &run(&g, &opts, &[a.clone(), a]),
            Kind::NotificationsSuppressed,
            Some(1),
        );
    });
}

#[test]
fn driver_suppressed_interrupts_it_relies_on() {
    let g = remoteproc();
    let opts = options(&g);
    with_link(&g, |shm| {
        let (mut m, mut r) = up(shm, &g, Suppression::Flags);
        // Linux masks the receive callback, then waits for an interrupt.
        m.rx.disable_interrupts().unwrap();
        assert!(r.send(30, 0x400, b"reply 1"));
        assert!(r.send(30, 0x400, b"reply 2"));
        let a = snapshot(shm);
        healthy(&run(&g, &opts, std::slice::from_ref(&a)));
        let ins = run(&g, &opts, &[a.clone(), a.clone()]);
        expect(&ins, Kind::NotificationsSuppressed, Some(0));
        // A remote that ignores NO_INTERRUPT (rpmsg-lite) interrupts anyway:
        // then the flag explains nothing, the driver simply stopped reading.
        let ignoring = LayoutOptions {
            device_honors_no_interrupt: Some(false),
            ..opts.clone()
        };
        expect(&run(&g, &ignoring, &[a.clone(), a]), Kind::Stalled, Some(0));
    });
}

// ------------------------------------------------ EVENT_IDX not re-armed

#[test]
fn event_idx_not_rearmed_by_the_device() {
    let g = remoteproc();
    let opts = options(&g);
    with_link(&g, |shm| {
        let (mut m, mut r) = up(shm, &g, Suppression::EventIdx);
        for k in 0..20u32 {
            assert!(m.send(format!("m{k}").as_bytes()));
            assert_eq!(r.recv(1), 1);
        }
        let consumed = 20u16;
        // The remote stops re-arming: its avail_event stays where it was
        // 20 messages ago, so the next publications do not kick it.
        let ev = g.l1.avail_event_offset();
        shm.write(ev, &consumed.wrapping_sub(20).to_le_bytes())
            .unwrap();
        assert!(m.send(b"lost 1"));
        assert!(m.send(b"lost 2"));
        let far = snapshot(shm);
        // More than a ring behind: conclusive from one image.
        expect(
            &run(&g, &opts, std::slice::from_ref(&far)),
            Kind::EventIdxNotRearmed,
            Some(1),
        );
        // A few behind: a stall shows it.
        let mut near = far.clone();
        common::put16(&mut near, ev, consumed - 3);
        healthy(&run(&g, &opts, std::slice::from_ref(&near)));
        expect(
            &run(&g, &opts, &[near.clone(), near]),
            Kind::EventIdxNotRearmed,
            Some(1),
        );
    });
}

#[test]
fn event_idx_not_rearmed_by_the_driver() {
    let g = remoteproc();
    let opts = options(&g);
    with_link(&g, |shm| {
        let (mut m, mut r) = up(shm, &g, Suppression::EventIdx);
        for _ in 0..5 {
            assert!(r.send(30, 0x400, b"data"));
            assert_eq!(m.read(1, false), 1);
        }
        // Linux's used_event left 4 entries back; two replies arrive unseen.
        let ev = g.l0.used_event_offset();
        let mut img = snapshot(shm);
        assert!(r.send(30, 0x400, b"unseen 1"));
        assert!(r.send(30, 0x400, b"unseen 2"));
        img = {
            let mut now = snapshot(shm);
            common::put16(&mut now, ev, 2);
            let _ = &mut img;
            now
        };
        expect(
            &run(&g, &opts, &[img.clone(), img]),
            Kind::EventIdxNotRearmed,
            Some(0),
        );
    });
}

// ------------------------------------------------------- DRIVER_OK not set

#[test]
fn driver_ok_not_set_and_failed_vdev() {
    let g = remoteproc();
    let opts = options(&g);
    with_link(&g, |shm| {
        let m = Master::new(shm, g, Suppression::Flags);
        m.set_status(status::ACKNOWLEDGE | status::DRIVER);
        let a = snapshot(shm);
        expect(&run(&g, &opts, &[a]), Kind::DriverOkNotSet, None);
        m.set_status(OK | status::FAILED);
        expect(&run(&g, &opts, &[snapshot(shm)]), Kind::VdevFailed, None);
        // Before the host probed, one image is a moment; two say it never did.
        m.set_status(0);
        let mut fresh = vec![0u8; g.size];
        fresh[..0x100].copy_from_slice(&snapshot(shm)[..0x100]);
        healthy(&run(&g, &opts, std::slice::from_ref(&fresh)));
        expect(
            &run(&g, &opts, &[fresh.clone(), fresh]),
            Kind::DriverOkNotSet,
            None,
        );
    });
}

// ---------------------------------------------------------- index corrupt

#[test]
fn impossible_and_jumping_indices() {
    let g = remoteproc();
    let opts = options(&g);
    with_link(&g, |shm| {
        let (mut m, mut r) = up(shm, &g, Suppression::Flags);
        for t in [&b"a"[..], b"b", b"c"] {
            assert!(m.send(t));
        }
        let before = snapshot(shm);
        // The device publishes its first completion's entry, not its index
        // (the index's line still stale in memory).
        let p = r.rx.pop_readable().unwrap().unwrap();
        let rb = p.buf.invalidate().unwrap().validate(p.len).unwrap();
        r.rx.push_used_whole(p.head, rb).unwrap();
        let stale = snapshot(shm);
        expect(
            &run(&g, &opts, &[before.clone(), stale]),
            Kind::IndexCorrupt,
            Some(1),
        );
        let _kick = r.rx.publish_used().unwrap();
        assert_eq!(r.recv(2), 2);
        let after = snapshot(shm);
        healthy(&run(&g, &opts, &[before.clone(), after.clone()]));

        // used.idx jumps 40 ahead: more returned than ever published.
        let mut jumped = after.clone();
        let at = g.l1.used_offset() + 2;
        let used = u16::from_le_bytes([after[at], after[at + 1]]);
        common::put16(&mut jumped, at, used + 40);
        let ins = run(&g, &opts, &[jumped]);
        expect(&ins, Kind::IndexCorrupt, Some(1));
        assert!(
            ins.diagnoses[0].evidence.contains("ahead"),
            "{}",
            ins.diagnoses[0].evidence
        );

        // used.idx goes back to an older value between samples: a stale
        // line written back over the newer index.
        let mut back = after.clone();
        common::put16(&mut back, at, used - 3);
        let ins = run(&g, &opts, &[after, back]);
        expect(&ins, Kind::IndexCorrupt, Some(1));
        assert!(ins.diagnoses[0].evidence.contains("backwards"));
    });
}

// ----------------------------------------------------------- leaked buffers

#[test]
fn buffers_leaked_by_the_driver() {
    let g = mcu();
    let opts = options(&g);
    with_link(&g, |shm| {
        let (mut m, mut r) = up(shm, &g, Suppression::Flags);
        assert!(r.send(30, 0x400, b"kept forever"));
        assert_eq!(m.read(1, true), 1); // reaped, never re-posted
        assert!(r.send(30, 0x400, b"next"));
        assert_eq!(m.read(1, false), 1);
        let img = snapshot(shm);
        let ins = run(&g, &opts, &[img]);
        expect(&ins, Kind::BuffersLeaked, Some(0));
        assert!(
            ins.diagnoses[0].evidence.contains("descriptor (1)"),
            "{}",
            ins.diagnoses[0].evidence
        );
        assert!(ins.diagnoses[0].evidence.contains("never gave them back"));
    });
}

#[test]
fn buffers_leaked_by_the_device() {
    let g = mcu();
    let opts = options(&g);
    with_link(&g, |shm| {
        let (mut m, mut r) = up(shm, &g, Suppression::Flags);
        assert!(m.send(b"swallowed"));
        // The remote takes the buffer and never returns it, then carries on.
        let p = r.rx.pop_readable().unwrap().unwrap();
        drop(p); // never pushed back to the used ring
        for k in 0..16u32 {
            assert!(m.send(format!("m{k}").as_bytes()), "send {k}");
            assert_eq!(r.recv(1), 1);
        }
        let ins = run(&g, &opts, &[snapshot(shm)]);
        expect(&ins, Kind::BuffersLeaked, Some(1));
        assert!(ins.diagnoses[0].evidence.contains("never returned them"));
    });
}

// ------------------------------------------------------ ring full, peer idle

#[test]
fn ring_full_with_the_remote_idle() {
    let g = mcu();
    let opts = options(&g);
    with_link(&g, |shm| {
        let (mut m, mut r) = up(shm, &g, Suppression::Flags);
        assert!(m.send(b"first"));
        assert_eq!(r.recv(1), 1);
        let mut sent = 0;
        while m.send(b"more") {
            sent += 1;
        }
        assert_eq!(sent, 16);
        let a = snapshot(shm);
        healthy(&run(&g, &opts, std::slice::from_ref(&a)));
        expect(
            &run(&g, &opts, &[a.clone(), a]),
            Kind::RingFullPeerIdle,
            Some(1),
        );
    });
}

#[test]
fn receive_ring_drained_with_the_master_idle() {
    let g = remoteproc();
    let opts = options(&g);
    with_link(&g, |shm| {
        let (_m, mut r) = up(shm, &g, Suppression::Flags);
        let mut sent = 0;
        while r.send(30, 0x400, b"unread") {
            sent += 1;
        }
        assert_eq!(sent, 16);
        let a = snapshot(shm);
        expect(
            &run(&g, &opts, &[a.clone(), a]),
            Kind::RingFullPeerIdle,
            Some(0),
        );
    });
}

// ------------------------------------------------------------------ stalled

#[test]
fn lost_kick_is_a_stall_without_visible_cause() {
    let g = mcu();
    let opts = options(&g);
    with_link(&g, |shm| {
        let (mut m, mut r) = up(shm, &g, Suppression::Flags);
        assert!(m.send(b"seen"));
        assert_eq!(r.recv(1), 1);
        assert!(m.send(b"kick lost 1"));
        assert!(m.send(b"kick lost 2"));
        let a = snapshot(shm);
        let b = a.clone();
        let ins = run(&g, &opts, &[a, b]);
        expect(&ins, Kind::Stalled, Some(1));
        let texts: Vec<String> = ins
            .now()
            .unwrap()
            .pending()
            .map(|m| String::from_utf8_lossy(&m.payload).into_owned())
            .collect();
        assert_eq!(texts, ["kick lost 1", "kick lost 2"]);
    });
}

#[test]
fn every_kind_is_covered_by_a_test() {
    // Keep this list in step with the tests above (and the README).
    let covered = [
        Kind::StartKickMissing,
        Kind::NotificationsSuppressed,
        Kind::EventIdxNotRearmed,
        Kind::DriverOkNotSet,
        Kind::VdevFailed,
        Kind::IndexCorrupt,
        Kind::BuffersLeaked,
        Kind::RingFullPeerIdle,
        Kind::Stalled,
    ];
    for k in Kind::ALL {
        assert!(covered.contains(&k), "{k} has no test");
    }
    let _ = Preset::ALL;
}
