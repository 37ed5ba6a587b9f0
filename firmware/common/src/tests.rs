//! Host tests: the whole start-up and exchange of the emulated images, and
//! the checks on what the host writes.

use core::fmt::Write as _;
use core::ptr::NonNull;

use ipc_traits::cache::Coherent;
use ipc_traits::mailbox::NotifyRx;
use ipc_traits::shm::{RawRegion, SharedMemory};
use rpmsg::rsc_table::{
    table_size, FoundAtBoot, HostBoot, HostPoll, PollTiming, ResourceTable, TableBuilder,
    VringSpec, FW_RSC_ADDR_ANY, VIRTIO_RPMSG_F_NS,
};

use rpmsg::boot::{master_table, remote_config, Placement, Profile, RemoteBoot, F_EVENT_IDX};
use rpmsg::link::{Link, Sent, Storage};
use rpmsg::rsc_table::VdevView;
use rpmsg::Error;
use vring::{Legacy, Suppression};

use crate::doorbell::{MemDoorbell, Polled};
use crate::echo::EchoService;
use crate::mem::{LineAligned, SharedArea};
use crate::pair::{self, Doorbells, PairConfig, PairError};
use crate::trace::TraceLog;

const TABLE: usize = table_size(0, 0, 1, 2);
const RING: usize = 0x1000;
const POOL: usize = 0x4000;
const AREA: usize = POOL + 2 * 32 * 512;

fn table(spec: [VringSpec; 2]) -> Box<LineAligned<ResourceTable<TABLE>>> {
    // Built at run time here (the firmware builds it in a `static`).
    let t = TableBuilder::<TABLE>::new(1)
        .rpmsg_vdev(VIRTIO_RPMSG_F_NS | F_EVENT_IDX, spec)
        .finish();
    Box::new(LineAligned(t))
}

fn any_table() -> Box<LineAligned<ResourceTable<TABLE>>> {
    table([
        VringSpec::new(FW_RSC_ADDR_ANY, 64, 32, 0),
        VringSpec::new(FW_RSC_ADDR_ANY, 64, 32, 1),
    ])
}

fn window(t: &LineAligned<ResourceTable<TABLE>>) -> RawRegion<Coherent> {
    let base = NonNull::new(t.0.as_ptr()).unwrap();
    // SAFETY: the table outlives the window and is only accessed through it.
    unsafe { RawRegion::new(base, TABLE, 0, Coherent) }.unwrap()
}

fn shared(area: &SharedArea<AREA>) -> RawRegion<Coherent> {
    let base = NonNull::new(area.as_ptr()).unwrap();
    // SAFETY: the area outlives the window and is only accessed through it.
    unsafe { RawRegion::new(base, AREA, 0x8000_0000, Coherent) }.unwrap()
}

const PLACEMENT: Placement = Placement {
    vrings: [0, RING],
    pool: POOL,
};

/// One run; `event_idx` picks the suppression both sides use.
fn run(
    event_idx: bool,
    count: u32,
    window_len: u32,
    lose_host_kicks: bool,
    host_resets: u32,
) -> Result<pair::PairReport, PairError> {
    let t = any_table();
    let area = Box::new(SharedArea::<AREA>::new());
    let (tw, sw) = (window(&t), shared(&area));
    let to_remote = MemDoorbell::new();
    let to_host = MemDoorbell::new();
    let swallow = || {
        if lose_host_kicks {
            let _ = to_host.taker().take_pending();
        }
    };
    let config = PairConfig {
        count,
        window: window_len,
        max_idle_rounds: 50,
        host_resets,
        event_idx,
    };
    let bells = Doorbells {
        to_remote: &to_remote,
        to_host: &to_host,
        wake_remote: Polled,
        wake_host: swallow,
    };
    // SAFETY: the pool and buffer areas of `sw` are used by this run only.
    unsafe { pair::run::<_, _, _, _, TABLE>(&tw, &sw, PLACEMENT, bells, config) }
}

/// Both suppression modes: flags, then `EVENT_IDX`.
const MODES: [bool; 2] = [false, true];

/// Echoes per run (fewer under Miri, which interprets every access).
const COUNT: u32 = if cfg!(miri) { 40 } else { 500 };

#[test]
fn pair_echoes_every_message_with_no_validation_error() {
    for (event_idx, window_len) in MODES
        .into_iter()
        .flat_map(|e| [1, 7, 32, 64].map(|w| (e, w)))
    {
        let r = run(event_idx, COUNT, window_len, false, 0)
            .unwrap_or_else(|e| panic!("event_idx {event_idx}, window {window_len}: {e}"));
        assert_eq!(r.client.received, COUNT);
        assert_eq!(r.client.sent, COUNT);
        assert_eq!(r.client.services, 2, "rpmsg-tty and rpmsg-raw");
        assert_eq!(r.echo.echoed, COUNT);
        assert_eq!(r.echo.bytes, r.client.bytes);
        assert_eq!(r.validation_errors, 0);
        assert!(r.host_doorbells > 0 && r.remote_doorbells > 0);
        assert_eq!((r.host_resets, r.remote_restarts, r.unreturned), (0, 0, 0));
        assert_eq!(
            (
                r.client.lost,
                r.remote_lost_at_reset,
                r.remote_link_restarts
            ),
            (0, 0, 0)
        );
    }
}

#[test]
fn pair_survives_host_resets_and_accounts_for_every_message() {
    const RESETS: u32 = 5;
    let (mut not_taken, mut unreturned) = (0, 0);
    // Under Miri's short run, a wide window would have sent everything
    // before the first reset is due.
    let windows: &[u32] = if cfg!(miri) { &[1, 3] } else { &[1, 7, 32, 64] };
    for (event_idx, &window_len) in MODES
        .into_iter()
        .flat_map(|e| windows.iter().map(move |w| (e, w)))
    {
        let r = run(event_idx, COUNT, window_len, false, RESETS)
            .unwrap_or_else(|e| panic!("event_idx {event_idx}, window {window_len}: {e}"));
        let c = r.client;
        assert_eq!((r.host_resets, r.remote_restarts), (RESETS, RESETS));
        assert_eq!(r.remote_link_restarts, RESETS);
        assert_eq!((c.resets, c.resumed), (RESETS, RESETS), "traffic resumed");
        assert_eq!(c.sent, COUNT);
        assert_eq!(c.received + c.lost, COUNT, "checked or lost, never both");
        // Each loss is one the remote accounted for: not taken from the
        // old rings or its queues, set aside and discarded, or echoed into
        // a host link that was gone.
        assert_eq!(
            c.lost,
            r.remote_lost_at_reset + r.echo.discarded + r.unreturned,
            "window {window_len}"
        );
        assert_eq!(r.echo.echoed, c.received + r.unreturned);
        assert_eq!(r.echo.dropped, 0);
        assert!(c.lost <= RESETS * window_len);
        assert!(c.received >= COUNT.saturating_sub(RESETS * window_len));
        assert_eq!(c.services, 2 * (RESETS + 1), "announced again each time");
        assert_eq!(r.validation_errors, 0);
        not_taken += r.remote_lost_at_reset;
        unreturned += r.unreturned;
    }
    assert!(
        not_taken > 0 && unreturned > 0,
        "resets hit messages on the way there and echoes on the way back"
    );
}

#[test]
fn host_resets_still_detect_lost_notifications() {
    for event_idx in MODES {
        match run(event_idx, 100, 8, true, 3) {
            Err(PairError::Stalled { received }) => assert!(received < 100),
            other => panic!("event_idx {event_idx}: expected a stall, got {other:?}"),
        }
    }
}

#[test]
fn lost_notifications_stall_the_pair_instead_of_hanging() {
    for event_idx in MODES {
        match run(event_idx, 100, 8, true, 0) {
            Err(PairError::Stalled { received }) => assert!(received < 100),
            other => panic!("event_idx {event_idx}: expected a stall, got {other:?}"),
        }
    }
}

/// With suppression flags, a side that is not running cannot say it was
/// already notified: the host rings for every message it sends while the
/// remote waits for its turn. With `EVENT_IDX` the rings say it: a side
/// rings once when the peer's ring was found empty (the peer re-armed it),
/// never again before the peer took that doorbell, and the exchange still
/// completes (a lost wake-up would stall it: `Stalled`).
#[test]
fn event_idx_rings_once_per_idle_period_not_per_message() {
    for window_len in [1, 7, 32, 64] {
        let flags = run(false, COUNT, window_len, false, 0).unwrap();
        let event = run(true, COUNT, window_len, false, 0)
            .unwrap_or_else(|e| panic!("window {window_len}: {e}"));
        assert_eq!(event.client.received, COUNT);
        assert_eq!(
            (event.host_coalesced, event.remote_coalesced),
            (0, 0),
            "window {window_len}: no doorbell while the peer's last one was pending"
        );
        // At most one doorbell per queue and turn.
        assert!(
            event.host_doorbells <= 2 * event.rounds,
            "window {window_len}"
        );
        assert!(
            event.remote_doorbells <= 2 * event.rounds,
            "window {window_len}"
        );
        if window_len > 1 {
            // Flags: one per message, most of them while one was pending.
            assert!(
                event.host_doorbells * 4 < flags.host_doorbells,
                "window {window_len}: {} with EVENT_IDX, {} with flags",
                event.host_doorbells,
                flags.host_doorbells
            );
        }
    }
}

/// Suppression flags: while the echo service has a batch left over (it
/// polls), it asks the host not to ring, and asks again with a last look
/// when it finds the ring empty. The host then rings at most once per turn
/// instead of for every message, and no wake-up is lost (the run would
/// stall).
#[test]
fn a_busy_remote_asks_the_host_not_to_ring() {
    for window_len in [32, 64] {
        let r = run(false, COUNT, window_len, false, 0)
            .unwrap_or_else(|e| panic!("window {window_len}: {e}"));
        assert_eq!(r.client.received, COUNT);
        assert!(
            r.host_doorbells <= r.rounds && r.host_doorbells < COUNT / 4,
            "window {window_len}: {} doorbells to the remote in {} turns for {COUNT} messages",
            r.host_doorbells,
            r.rounds
        );
    }
}

#[test]
fn echo_asks_to_be_called_again_while_its_batch_ends_before_the_ring() {
    let t = any_table();
    let area = Box::new(SharedArea::<AREA>::new());
    let (tw, sw) = (window(&t), shared(&area));
    let (to_remote, to_host) = (MemDoorbell::new(), MemDoorbell::new());
    let (_, info) = VdevView::locate::<_, TABLE>(&tw, 0).unwrap();
    let mut kick = to_remote.ringer(Polled);
    // SAFETY: the pool is this host's alone; the remote below builds its
    // buffers over the two halves only.
    let host_rings = unsafe {
        master_table::<_, _, Legacy, _, { pair::NUM }>(
            &tw,
            &info,
            &sw,
            PLACEMENT,
            Profile::Native,
            false,
            &mut kick,
        )
    }
    .unwrap();
    let timing = PollTiming {
        interval: 1,
        patience: 1,
    };
    let mut boot =
        RemoteBoot::start::<_, _, TABLE>(&tw, 0, &sw, Profile::Native, timing, 0).unwrap();
    let Ok(HostPoll::Ready(vrings)) = boot.poll(&tw, 0) else {
        panic!("DRIVER_OK not seen");
    };
    let tables = rpmsg::rings::RemoteTables::new();
    // SAFETY: the host's two buffer halves, disjoint; no other remote.
    let remote_rings =
        unsafe { boot.rings::<_, _, Legacy, { pair::NUM }>(&tw, &sw, vrings, &tables) }.unwrap();
    let (mut hs, mut rs) = (Storage::<1>::new(), Storage::<2>::new());
    let mut host = Link::new(host_rings, kick, &mut hs);
    let mut remote = Link::new(remote_rings, to_host.ringer(Polled), &mut rs);
    let host_ep = host.bind(rpmsg::wire::ADDR_ANY).unwrap();
    let mut echo = EchoService::new(&mut remote).unwrap();
    let (mut rtx, mut rrx) = remote.split();
    let p = echo.serve(&mut rtx, &mut rrx).unwrap();
    assert!(
        echo.is_announced() && !p.more,
        "announced, ring empty: {p:?}"
    );
    // `rpmsg-tty` is at the first dynamic address.
    let tty = rpmsg::wire::RESERVED_ADDRESSES;
    let (mut htx, _hrx) = host.split();
    for k in 0..20u8 {
        assert_eq!(htx.try_send(&host_ep, tty, &[k; 8]).unwrap(), Sent::Sent);
    }
    let p = echo.serve(&mut rtx, &mut rrx).unwrap();
    assert_eq!(p.echoed, 16, "one batch");
    assert!(p.more, "the batch ended before the ring: call again");
    // Polling: the host is asked not to ring for what it sends meanwhile.
    let rung = to_remote.rung();
    for k in 20..23u8 {
        assert_eq!(htx.try_send(&host_ep, tty, &[k; 8]).unwrap(), Sent::Sent);
    }
    assert_eq!(to_remote.rung(), rung, "no doorbell while the remote polls");
    let p = echo.serve(&mut rtx, &mut rrx).unwrap();
    assert_eq!(p.echoed, 7);
    assert!(!p.more && !p.blocked, "ring found empty: {p:?}");
    // Idle again: the next message rings (a lost one would leave the
    // remote asleep with it).
    assert_eq!(htx.try_send(&host_ep, tty, &[0; 8]).unwrap(), Sent::Sent);
    assert_eq!(to_remote.rung(), rung + 1, "the idle remote is rung");
    let p = echo.serve(&mut rtx, &mut rrx).unwrap();
    assert_eq!((p.echoed, p.more), (1, false));
}

#[test]
fn remote_waits_for_driver_ok_and_rejects_rings_outside_the_window() {
    let t = table([
        VringSpec::new(0x8000_0000, 64, 32, 0),
        VringSpec::new(0x9000_0000, 64, 32, 1),
    ]);
    let area = Box::new(SharedArea::<AREA>::new());
    let (tw, sw) = (window(&t), shared(&area));
    let timing = PollTiming {
        interval: 1,
        patience: 100,
    };
    let mut boot = HostBoot::start::<_, _, TABLE>(&tw, 0, &sw, timing, 0).unwrap();
    assert_eq!(boot.found(), FoundAtBoot::NotReady);
    assert_eq!(
        boot.poll(&tw, 0),
        Ok(HostPoll::Waiting { poll_at: 1 }),
        "no DRIVER_OK yet"
    );
    // The host sets DRIVER_OK with vring 1 outside the window.
    let info = *boot.info();
    tw.write(info.offset + 24, &[0x0f]).unwrap();
    let Ok(HostPoll::Ready(vrings)) = boot.poll(&tw, 1) else {
        panic!("DRIVER_OK not seen");
    };
    assert_eq!(
        remote_config(&sw, vrings, Suppression::Flags),
        Err(Error::VringOutsideWindow)
    );
    // A num that is not a power of two, and an absurd alignment.
    let mut bad = vrings;
    bad[1] = VringSpec::new(0x8000_1000, 64, 24, 1);
    assert!(matches!(
        remote_config(&sw, bad, Suppression::Flags),
        Err(Error::BadVring)
    ));
    bad[1] = VringSpec::new(0x8000_1000, 1 << 31, 32, 1);
    assert!(remote_config(&sw, bad, Suppression::Flags).is_err());
    // Well-formed rings, but the host posted no buffers: the descriptor
    // addresses are 0, outside the window.
    bad[1] = VringSpec::new(0x8000_1000, 64, 32, 1);
    assert_eq!(
        remote_config(&sw, bad, Suppression::Flags),
        Err(Error::BuffersOutsideWindow)
    );
}

#[test]
fn trace_log_keeps_a_terminated_tail_and_wraps() {
    #[repr(C, align(64))]
    struct Buf([u8; 64]);
    let mut b = Buf([0xAA; 64]);
    let base = NonNull::new(b.0.as_mut_ptr()).unwrap();
    // SAFETY: `b` outlives the window and is only accessed through it.
    let mem = unsafe { RawRegion::new(base, 64, 0, Coherent) }.unwrap();
    {
        let mut log = TraceLog::new(&mem);
        writeln!(log, "boot {}", 7).unwrap();
        assert_eq!(log.len(), 7);
    }
    assert_eq!(&b.0[..8], b"boot 7\n\0");
    let mut log = TraceLog::new(&mem);
    for i in 0..20 {
        writeln!(log, "line {i}").unwrap();
    }
    assert!(log.wraps() > 0);
    let end = log.len();
    assert_eq!(b.0[end], 0, "NUL after the newest text");
    assert!(b.0[..end].iter().all(|&c| c != 0));
    let mut more = TraceLog::append(&mem);
    assert_eq!(more.len(), end, "append continues at the NUL");
    write!(more, "!").unwrap();
    assert_eq!(b.0[end], b'!');
    assert_eq!(b.0[end + 1], 0);
}
