//! Peer restarts: detection through session words, teardown, re-announce,
//! and no message of an old session delivered afterwards.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failure is a test failure"
)]

mod common;

use std::collections::HashSet;

use common::{
    lay_out_rings, master_rings, region, remote_rings, Backing, Quiet, BUF, M, MASTER_WORD, NUM,
    POOL, REMOTE_WORD, SIZE, TABLE, VRING1,
};

type Master<'m> = Link<'m, MasterRings<'m, M, Legacy, NUM>, Quiet, 2, 8, 2>;
type Remote<'m> = Link<'m, RemoteRings<'m, M, Legacy, NUM>, Quiet, 2, 8, 2>;
use ipc_traits::shm::SharedMemory;
use rpmsg::link::{Error, Link, NsEvent, RxMode};
use rpmsg::rings::{MasterRings, QueueIds, RemoteConfig, RemoteRings};
use rpmsg::rsc_table::{
    status, table_size, TableBuilder, VdevEvent, VdevView, VdevWatch, VringSpec, FW_RSC_ADDR_ANY,
    VIRTIO_RPMSG_F_NS,
};
use rpmsg::session::{PeerState, PeerWatch, SessionWord};
use rpmsg::wire::ADDR_ANY;
use vring::{BufferArea, Layout, Legacy, Suppression};

fn service_addr(link: &Master<'_>) -> Option<u32> {
    link.service().unwrap();
    while let Some(ev) = link.try_ns_event() {
        if let NsEvent::Created(s) = ev {
            return Some(s.addr);
        }
    }
    link.lookup_service("echo")
}

#[test]
fn remote_survives_master_restart_and_old_session_is_never_delivered() {
    let mut b = Box::new(Backing([0; SIZE]));
    let shm = region(&mut b);
    SessionWord::at(REMOTE_WORD).begin(&shm, 7).unwrap();
    let (_, rings) = master_rings(&shm, 1);
    let master: Master<'_> = Link::new(rings, Quiet);
    let (mut watch, rings) = remote_rings(&shm);
    let remote: Remote<'_> = Link::new(rings, Quiet);
    let rep = remote.create_endpoint(40, RxMode::Queue).unwrap();
    remote.announce(&rep, "echo").unwrap();
    assert_eq!(service_addr(&master), Some(40));
    let mep = master.create_endpoint(ADDR_ANY, RxMode::Queue).unwrap();
    for k in 0..3u8 {
        master.try_send(&mep, 40, &[k]).unwrap();
    }
    let held = remote.try_recv_held(&rep).unwrap();
    assert_eq!(held.payload().unwrap(), &[0]);
    // `try_recv_held` stops at the first message for `rep`; a service pass
    // queues the other two (the ones the restart must count as dropped).
    remote.service().unwrap();

    // The master reboots: a new master link over freshly laid-out rings.
    // (The old link object is abandoned, as a rebooted core abandons its RAM.)
    let (session, rings) = master_rings(&shm, 1);
    let master: Master<'_> = Link::new(rings, Quiet);
    assert_eq!(watch.check(&shm).unwrap(), PeerState::Restarted(session));
    watch.follow(session);
    let (_, rings) = remote_rings(&shm);
    let report = remote.restart(rings).unwrap();
    assert_eq!(
        (report.lost, report.reannounce),
        (2, 1),
        "two queued messages dropped, one service"
    );
    assert!(held.is_stale());
    assert!(matches!(held.payload(), Err(Error::Reset)));
    drop(held); // never reaches the new rings
    assert_eq!(remote.try_ns_event(), Some(NsEvent::PeerReset));
    let s = remote.stats();
    assert_eq!((s.peer_resets, s.lost_at_reset), (1, 2));

    // The service was announced again; traffic resumes, nothing old shows up.
    assert_eq!(service_addr(&master), Some(40));
    let mep = master.create_endpoint(ADDR_ANY, RxMode::Queue).unwrap();
    master.try_send(&mep, 40, b"new").unwrap();
    let mut buf = [0u8; 16];
    let r = remote.try_recv(&rep, &mut buf).unwrap();
    assert_eq!(&buf[..r.len], b"new");
    assert_eq!(remote.try_recv(&rep, &mut buf), Err(Error::WouldBlock));
    assert_eq!(remote.leaked_buffers(), 0);
}

#[test]
fn master_survives_remote_restart_and_counts_unconfirmed() {
    let mut b = Box::new(Backing([0; SIZE]));
    let shm = region(&mut b);
    let remote_word = SessionWord::at(REMOTE_WORD);
    let first = remote_word.begin(&shm, 100).unwrap();
    let (_, rings) = master_rings(&shm, 1);
    let master: Master<'_> = Link::new(rings, Quiet);
    let mut watch = PeerWatch::new(remote_word, first);
    let (_, rings) = remote_rings(&shm);
    let remote: Remote<'_> = Link::new(rings, Quiet);
    let rep = remote.create_endpoint(40, RxMode::Queue).unwrap();
    let mep = master.create_endpoint(ADDR_ANY, RxMode::Queue).unwrap();
    master.announce(&mep, "host").unwrap();
    for k in 0..3u8 {
        master.try_send(&mep, 40, &[k]).unwrap();
    }
    let mut buf = [0u8; 16];
    assert_eq!(remote.try_recv(&rep, &mut buf).unwrap().len, 1);
    let mut tx = master.try_alloc_tx().unwrap();
    tx.write(0, b"pending").unwrap();

    // The remote reboots (a new session of its own); the master notices,
    // lays the rings out again under a new session and restarts.
    // (The old remote link is abandoned: its core rebooted.)
    let second = remote_word.begin(&shm, 100).unwrap();
    assert_eq!(second, first + 1);
    assert_eq!(watch.check(&shm).unwrap(), PeerState::Restarted(second));
    watch.follow(second);
    let report = master.end_session().unwrap();
    let (_, rings) = master_rings(&shm, 1);
    assert_eq!(master.restart(rings).unwrap(), report);
    // The announcement plus three messages were published; the remote
    // returned the announcement and the first message: two unconfirmed.
    assert_eq!(report.unconfirmed, 2);
    assert_eq!(
        tx.send(&mep, 40),
        Err(Error::Reset),
        "a buffer lent before the restart cannot be sent"
    );
    let (_, rings) = remote_rings(&shm);
    let remote: Remote<'_> = Link::new(rings, Quiet);
    let rep = remote.create_endpoint(40, RxMode::Queue).unwrap();
    remote.service().unwrap();
    assert_eq!(
        remote.lookup_service("host"),
        Some(mep.addr()),
        "the master re-announced"
    );
    master.try_send(&mep, 40, b"after").unwrap();
    let r = remote.try_recv(&rep, &mut buf).unwrap();
    assert_eq!(&buf[..r.len], b"after");
    assert_eq!(
        remote.try_recv(&rep, &mut buf),
        Err(Error::WouldBlock),
        "no replay from the old session"
    );
}

#[test]
fn hundred_remote_restarts_during_traffic_account_for_every_message() {
    let mut b = Box::new(Backing([0; SIZE]));
    let shm = region(&mut b);
    let remote_word = SessionWord::at(REMOTE_WORD);
    let (_, rings) = master_rings(&shm, 1);
    let master: Master<'_> = Link::new(rings, Quiet);
    let mep = master.create_endpoint(ADDR_ANY, RxMode::Queue).unwrap();
    let mut delivered = HashSet::new();
    let mut sent = 0u32;
    let mut seq = 0u32;
    for round in 0..100u32 {
        remote_word.begin(&shm, 1).unwrap();
        let (_, rings) = remote_rings(&shm);
        let remote: Remote<'_> = Link::new(rings, Quiet);
        let rep = remote.create_endpoint(40, RxMode::Queue).unwrap();
        // Some traffic; the remote takes only part of it before "crashing".
        for _ in 0..(round % NUM as u32) + 1 {
            match master.try_send(&mep, 40, &seq.to_le_bytes()) {
                Ok(()) => {
                    sent += 1;
                    seq += 1;
                }
                Err(Error::WouldBlock) => break,
                Err(e) => panic!("{e}"),
            }
        }
        let mut buf = [0u8; 4];
        for _ in 0..round % 3 {
            if let Ok(r) = remote.try_recv(&rep, &mut buf) {
                assert_eq!(r.len, 4);
                assert!(
                    delivered.insert(u32::from_le_bytes(buf)),
                    "duplicate delivery"
                );
            }
        }
        // (This remote "crashes": its link is abandoned.)
        // Master side: the remote is gone; end the session, then lay the
        // rings out again and restart over them.
        master.end_session().unwrap();
        assert_eq!(master.try_send(&mep, 40, b"x"), Err(Error::Reset));
        let (_, rings) = master_rings(&shm, 1);
        master.restart(rings).unwrap();
    }
    let s = master.stats();
    assert_eq!(s.peer_resets, 100);
    assert_eq!(
        delivered.len() as u32 + s.unconfirmed_at_reset,
        sent,
        "every message sent is either delivered once or reported unconfirmed"
    );
    assert!(
        delivered.len() > 10 && s.unconfirmed_at_reset > 10,
        "both outcomes happen"
    );
}

/// The master crashes and reboots 100 times during traffic, following the
/// restart handshake of `rpmsg::session`: the rebooted master starts a new
/// session and waits; the remote sees the old rings are intact, counts what
/// it had not taken (`release_session`), attaches; the master lays the
/// rings out for it; the remote restarts over them. Every master message
/// is delivered once or reported lost by the remote: nothing is counted
/// from ring memory by the test.
#[test]
fn hundred_master_restarts_with_the_handshake_account_for_every_message() {
    let mut b = Box::new(Backing([0; SIZE]));
    let shm = region(&mut b);
    let (mword, rword) = (SessionWord::at(MASTER_WORD), SessionWord::at(REMOTE_WORD));
    let own = rword.begin(&shm, 500).unwrap();
    // First start: the master's new session, the remote attaches, the
    // master lays out for it, the remote builds its rings.
    let m = mword.begin(&shm, 1).unwrap();
    let mut watch = PeerWatch::new(mword, m);
    rword.attach(&shm, m).unwrap();
    let master: Master<'_> = Link::new(lay_out(&shm, own), Quiet);
    assert_eq!(watch.attached_to(&shm, own).unwrap(), Some(m));
    let remote: Remote<'_> = Link::new(remote_rings(&shm).1, Quiet);
    let rep = remote.create_endpoint(40, RxMode::Queue).unwrap();
    let mut master = master;
    let mut delivered = HashSet::new();
    let (mut sent, mut seq) = (0u32, 0u32);
    let mut buf = [0u8; 4];
    for round in 0..100u32 {
        let mep = master.create_endpoint(ADDR_ANY, RxMode::Queue).unwrap();
        for _ in 0..(round % NUM as u32) + 1 {
            match master.try_send(&mep, 40, &seq.to_le_bytes()) {
                Ok(()) => {
                    sent += 1;
                    seq += 1;
                }
                Err(Error::WouldBlock) => break,
                Err(e) => panic!("{e}"),
            }
        }
        // The remote takes part of it; with round % 4 == 3 it also pulls
        // the rest into its endpoint queue without the application taking
        // it (queued messages are lost at the reset too).
        for _ in 0..round % 3 {
            if let Ok(r) = remote.try_recv(&rep, &mut buf) {
                assert_eq!(r.len, 4);
                assert!(delivered.insert(u32::from_le_bytes(buf)), "duplicate");
            }
        }
        if round % 4 == 3 {
            remote.service().unwrap();
        }
        // The master crashes and reboots: a new session, nothing laid out.
        // (The old link object is replaced below, as the reboot replaces RAM.)
        let m = mword.begin(&shm, 1).unwrap();
        // The remote notices, the old rings are intact: it counts and lets go.
        assert_eq!(watch.check(&shm).unwrap(), PeerState::Restarted(m));
        assert!(watch.rings_intact(&shm).unwrap());
        remote.release_session().unwrap();
        rword.attach(&shm, m).unwrap();
        watch.follow(m);
        // The master lays out for the remote; the remote restarts.
        master = Link::new(lay_out(&shm, own), Quiet);
        assert_eq!(watch.attached_to(&shm, own).unwrap(), Some(m));
        remote.restart(remote_rings(&shm).1).unwrap();
        assert_eq!(
            remote.try_recv(&rep, &mut buf),
            Err(Error::WouldBlock),
            "nothing of the old session is delivered"
        );
    }
    let s = remote.stats();
    assert_eq!(s.peer_resets, 100);
    assert_eq!(
        delivered.len() as u32 + s.lost_at_reset,
        sent,
        "every master message delivered once or reported lost by the remote"
    );
    assert!(
        delivered.len() > 10 && s.lost_at_reset > 10,
        "both outcomes"
    );
    assert_eq!(remote.leaked_buffers(), 0);
}

/// The rebooted master's layout step of the handshake: only once the
/// remote (session `own`) let go; then the master attaches to it.
fn lay_out(shm: &M, own: u32) -> MasterRings<'_, M, Legacy, NUM> {
    let (mword, rword) = (SessionWord::at(MASTER_WORD), SessionWord::at(REMOTE_WORD));
    let session = mword.read(shm).unwrap().unwrap().session;
    assert_eq!(
        PeerWatch::new(rword, own)
            .attached_to(shm, session)
            .unwrap(),
        Some(own),
        "the master lays out only once the remote let go"
    );
    let rings = lay_out_rings(shm);
    mword.attach(shm, own).unwrap();
    rings
}

const TSIZE: usize = table_size(0, 0, 1, 2);
const PEER_BASE: u32 = 0x4000_0000;

/// What a Linux-style host does at probe: vring addresses into the table,
/// then the status walked up to `DRIVER_OK`.
fn host_up(shm: &M, vdev: usize) {
    for (k, off) in [0, VRING1].into_iter().enumerate() {
        let da = PEER_BASE + off as u32;
        shm.write(TABLE + vdev + 28 + 20 * k, &da.to_ne_bytes())
            .unwrap();
    }
    let st = status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK | status::DRIVER_OK;
    shm.write(TABLE + vdev + 24, &[st]).unwrap();
}

/// The remote's rings from the vrings the host wrote (checked, translated).
fn rings_from_vdev<'m>(shm: &'m M, view: &VdevView) -> RemoteRings<'m, M, Legacy, NUM> {
    let specs = view.vrings(shm).unwrap();
    let layout = |s: VringSpec| {
        let offset = (s.da - PEER_BASE) as usize;
        Layout::try_legacy_at(offset, s.num as u16, s.align as usize).unwrap()
    };
    let cfg = RemoteConfig {
        vring0: layout(specs[0]),
        vring1: layout(specs[1]),
        vring0_buffers: BufferArea::new(POOL, NUM * BUF),
        vring1_buffers: BufferArea::new(POOL + NUM * BUF, NUM * BUF),
        suppression: Suppression::Flags,
        queues: QueueIds::DEFAULT,
    };
    // SAFETY: disjoint areas reached only through the rings; the old
    // session's buffers are stale.
    unsafe { RemoteRings::new(shm, cfg) }.unwrap()
}

/// A Linux-style master resets the vdev 100 times during traffic (status
/// 0, later the vrings and `DRIVER_OK` again, rings laid out anew). The
/// remote follows the status byte with `VdevWatch`: at each `WentDown` it
/// lets go of the intact old rings (counting what it had not taken), at
/// each `CameUp` it restarts over the vrings the table names. Every master
/// message is delivered once or reported lost.
#[test]
fn hundred_vdev_resets_by_a_linux_style_master_account_for_every_message() {
    let mut b = Box::new(Backing([0; SIZE]));
    let shm = region(&mut b);
    let table = TableBuilder::<TSIZE>::new(1)
        .rpmsg_vdev(
            VIRTIO_RPMSG_F_NS,
            [
                VringSpec::new(FW_RSC_ADDR_ANY, 64, NUM as u32, 0),
                VringSpec::new(FW_RSC_ADDR_ANY, 64, NUM as u32, 1),
            ],
        )
        .finish();
    shm.write(TABLE, &table.bytes()).unwrap();
    let (view, info) = VdevView::locate::<_, TSIZE>(&shm, TABLE).unwrap();
    let mut watch = VdevWatch::new();
    assert_eq!(watch.poll(&view, &shm).unwrap(), VdevEvent::Waiting);

    let mut remote: Option<Remote<'_>> = None;
    let mut rep = None;
    let mut delivered = HashSet::new();
    let (mut sent, mut seq) = (0u32, 0u32);
    let mut buf = [0u8; 4];
    for round in 0..=100u32 {
        // The host probes: rings laid out, vrings and DRIVER_OK in the table.
        let master: Master<'_> = Link::new(lay_out_rings(&shm), Quiet);
        host_up(&shm, info.offset);
        assert_eq!(watch.poll(&view, &shm).unwrap(), VdevEvent::CameUp);
        let rings = rings_from_vdev(&shm, &view);
        match &remote {
            None => {
                let link: Remote<'_> = Link::new(rings, Quiet);
                rep = Some(link.create_endpoint(40, RxMode::Queue).unwrap());
                remote = Some(link);
            }
            Some(link) => {
                link.restart(rings).unwrap();
            }
        }
        let (link, rep) = (remote.as_ref().unwrap(), rep.as_ref().unwrap());
        assert_eq!(watch.poll(&view, &shm).unwrap(), VdevEvent::Running);
        assert_eq!(
            link.try_recv(rep, &mut buf),
            Err(Error::WouldBlock),
            "no replay"
        );
        if round == 100 {
            break;
        }
        let mep = master.create_endpoint(ADDR_ANY, RxMode::Queue).unwrap();
        for _ in 0..(round % NUM as u32) + 1 {
            match master.try_send(&mep, 40, &seq.to_le_bytes()) {
                Ok(()) => {
                    sent += 1;
                    seq += 1;
                }
                Err(Error::WouldBlock) => break,
                Err(e) => panic!("{e}"),
            }
        }
        for _ in 0..round % 3 {
            if let Ok(r) = link.try_recv(rep, &mut buf) {
                assert_eq!(r.len, 4);
                assert!(delivered.insert(u32::from_le_bytes(buf)), "duplicate");
            }
        }
        if round % 4 == 3 {
            link.service().unwrap();
        }
        // The host resets the device; its driver state is gone.
        shm.write(TABLE + info.offset + 24, &[0]).unwrap();
        assert_eq!(watch.poll(&view, &shm).unwrap(), VdevEvent::WentDown);
        link.release_session().unwrap();
        assert_eq!(link.try_recv(rep, &mut buf), Err(Error::Reset));
    }
    let s = remote.as_ref().unwrap().stats();
    assert_eq!((s.peer_resets, watch.restarts()), (100, 100));
    assert_eq!(
        delivered.len() as u32 + s.lost_at_reset,
        sent,
        "every message delivered once or reported lost"
    );
    assert!(
        delivered.len() > 10 && s.lost_at_reset > 10,
        "both outcomes"
    );
}

/// Destroying an endpoint unbinds it whatever state the link is in: a
/// foreign handle comes back untouched; queued and stalled messages go back
/// to the peer; a ring that refuses them does not keep the address bound;
/// and between `end_session` and `restart` the address is freed too, so the
/// new session can bind it again and nothing is delivered to an orphan.
#[test]
fn destroy_endpoint_always_unbinds() {
    let mut b = Box::new(Backing([0; SIZE]));
    let shm = region(&mut b);
    SessionWord::at(REMOTE_WORD).begin(&shm, 7).unwrap();
    let (_, rings) = master_rings(&shm, 1);
    let master: Master<'_> = Link::new(rings, Quiet);
    let (mut watch, rings) = remote_rings(&shm);
    let remote: Remote<'_> = Link::new(rings, Quiet);
    let mep = master.create_endpoint(ADDR_ANY, RxMode::Queue).unwrap();

    // A handle of another link comes back with the error, nothing changed.
    let foreign = master.create_endpoint(40, RxMode::Queue).unwrap();
    let (foreign, e) = remote.destroy_endpoint(foreign).unwrap_err();
    assert_eq!((foreign.addr(), e), (40, Error::NoSuchEndpoint));
    master.destroy_endpoint(foreign).unwrap();

    // Live session: two messages queued for 40, reception stalled on one
    // for the callback endpoint 41 (no handler at hand in `service`).
    let rep = remote.create_endpoint(40, RxMode::Queue).unwrap();
    let cb = remote.create_endpoint(41, RxMode::Callback).unwrap();
    for dst in [40, 40, 41] {
        master.try_send(&mep, dst, b"m").unwrap();
    }
    remote.service().unwrap();
    remote.destroy_endpoint(rep).unwrap();
    remote.destroy_endpoint(cb).unwrap();
    // All three buffers came back: the master fills the whole ring again.
    for _ in 0..NUM {
        master.try_send(&mep, 40, b"unbound").unwrap();
    }
    remote.service().unwrap();
    assert_eq!(remote.stats().rx_unbound, NUM as u32);

    // A ring that refuses the buffers (the peer broke it) does not keep the
    // endpoint: it is unbound, its address free.
    let rep = remote.create_endpoint(40, RxMode::Queue).unwrap();
    for _ in 0..2 {
        master.try_send(&mep, 40, b"q").unwrap();
    }
    remote.service().unwrap();
    let (_, vring1) = common::layouts();
    let idx_at = vring1.avail_offset() + 2;
    let mut idx = [0u8; 2];
    shm.read(idx_at, &mut idx).unwrap();
    let lie = u16::from_ne_bytes(idx).wrapping_add(100);
    shm.write(idx_at, &lie.to_ne_bytes()).unwrap();
    assert!(remote.service().is_err());
    assert!(remote.is_broken());
    remote.destroy_endpoint(rep).unwrap();
    let rep = remote.create_endpoint(40, RxMode::Queue).unwrap();
    remote.announce(&rep, "echo").unwrap();

    // The master reboots; the remote ends its session and destroys its
    // endpoint before restarting.
    let (session, rings) = master_rings(&shm, 1);
    let master: Master<'_> = Link::new(rings, Quiet);
    assert_eq!(watch.check(&shm).unwrap(), PeerState::Restarted(session));
    watch.follow(session);
    remote.end_session().unwrap();
    remote.destroy_endpoint(rep).unwrap();
    let (_, rings) = remote_rings(&shm);
    remote.restart(rings).unwrap();
    // Not announced again; the address is free for the new session.
    assert_eq!(service_addr(&master), None);
    let cb = remote.create_endpoint(40, RxMode::Callback).unwrap();
    let mep = master.create_endpoint(ADDR_ANY, RxMode::Queue).unwrap();
    master.try_send(&mep, 40, b"new").unwrap();
    let mut got = Vec::new();
    remote
        .poll(|m| got.push((m.dst, m.payload.to_vec())))
        .unwrap();
    assert_eq!(got, [(40, b"new".to_vec())]);
    remote.destroy_endpoint(cb).unwrap();
    assert_eq!(remote.leaked_buffers(), 0);
}
