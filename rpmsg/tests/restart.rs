//! Peer restarts: detection through session words, teardown, re-announce,
//! and no message of an old session delivered afterwards (on the link's
//! halves, `rpmsg::link`, with its restart and queue layers).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failure is a test failure"
)]

mod common;

use std::collections::HashSet;

use common::{
    lay_out_rings, master_rings, region, remote_rings, Backing, Master, Quiet, Remote, BUF, M,
    MASTER_WORD, NUM, POOL, REMOTE_WORD, SIZE, TABLE, VRING1,
};
use ipc_traits::shm::SharedMemory;
use rpmsg::link::ns::{NsDirectory, NsEvent};
use rpmsg::link::queues::{Endpoints, Queues};
use rpmsg::link::restart::{Announcements, Ended};
use rpmsg::link::{Endpoint, Link, Rx, Sent, Storage, Tx};
use rpmsg::rings::{Halves, MasterRings, QueueIds, RemoteConfig, RemoteRings};
use rpmsg::rsc_table::{
    status, table_size, TableBuilder, VdevEvent, VdevView, VdevWatch, VringSpec, FW_RSC_ADDR_ANY,
    VIRTIO_RPMSG_F_NS,
};
use rpmsg::session::{PeerState, PeerWatch, SessionWord};
use rpmsg::wire::{ADDR_ANY, NS_ADDR};
use rpmsg::Error;
use vring::{BufferArea, Layout, Legacy, Suppression};

/// Ring tables for the test's life.
fn remote_tables<const N: usize>() -> &'static rpmsg::rings::RemoteTables<N> {
    Box::leak(Box::default())
}

/// The address of the service `name` the peer announced, reading the
/// receive half (messages to 53 go to the directory; others are not
/// expected).
fn service_addr<'a, R: Halves<'a>>(
    rx: &mut Rx<'_, 'a, R, Quiet>,
    dir: &mut NsDirectory<2>,
    name: &str,
) -> Option<u32> {
    let mut out = [0u8; 64];
    while let Some(r) = rx.try_recv(&mut out).unwrap() {
        assert_eq!(r.dst, NS_ADDR, "only announcements expected");
        let _event: Option<NsEvent> = dir.on_message::<Legacy>(&out[..r.len]);
    }
    dir.lookup_service(name)
}

/// Sends sequence numbers from `ep` to 40 until `n` went out or no buffer
/// is free; returns how many went out.
fn send_seq<'a, R: Halves<'a>>(
    tx: &mut Tx<'_, 'a, R, Quiet>,
    ep: &Endpoint,
    seq: &mut u32,
    n: u32,
) -> u32 {
    let mut sent = 0;
    for _ in 0..n {
        match tx.try_send(ep, 40, &seq.to_le_bytes()).unwrap() {
            Sent::Sent => {
                sent += 1;
                *seq += 1;
            }
            Sent::NoBuffer => break,
        }
    }
    sent
}

/// Takes up to `n` messages, each delivered once.
fn take_some<'a, R: Halves<'a>>(
    rx: &mut Rx<'_, 'a, R, Quiet>,
    n: u32,
    delivered: &mut HashSet<u32>,
) {
    let mut buf = [0u8; 4];
    for _ in 0..n {
        if let Some(r) = rx.try_recv(&mut buf).unwrap() {
            assert_eq!(r.len, 4);
            assert!(
                delivered.insert(u32::from_le_bytes(buf)),
                "duplicate delivery"
            );
        }
    }
}

/// One round of traffic before a reset: the master sends `round % NUM + 1`
/// messages (as far as buffers go) from a fresh endpoint, the remote takes
/// `round % 3` of them, and with `round % 4 == 3` its queue layer pulls the
/// rest into the endpoint's queue without the application taking them.
/// Returns how many were sent.
fn traffic<'a, 'b>(
    master: &mut Master<'a>,
    remote: &mut Remote<'b>,
    queues: &mut Queues<'b, M, 1, { NUM }>,
    round: u32,
    seq: &mut u32,
    delivered: &mut HashSet<u32>,
) -> u32 {
    let mep = master.bind(ADDR_ANY).unwrap();
    let sent = send_seq(&mut master.split().0, &mep, seq, round % NUM as u32 + 1);
    take_some(&mut remote.split().1, round % 3, delivered);
    if round % 4 == 3 {
        let mut eps = Endpoints::new(remote.split().1, queues).unwrap();
        assert!(eps.pump().unwrap());
    }
    sent
}

#[test]
fn remote_survives_master_restart_and_old_session_is_never_delivered() {
    let mut b = Box::new(Backing([0; SIZE]));
    let shm = region(&mut b);
    SessionWord::at(REMOTE_WORD).begin(&shm, 7).unwrap();
    let (_, rings) = master_rings(&shm, 1);
    let mut ms = Storage::<2>::new();
    let mut master: Master<'_> = Link::new(rings, Quiet, &mut ms);
    let (mut watch, rings) = remote_rings(&shm);
    let mut rs = Storage::<2>::new();
    let mut remote: Remote<'_> = Link::new(rings, Quiet, &mut rs);
    let mut queues: Queues<'_, M, 2, 4> = Queues::new();
    let rep = remote.bind(40).unwrap();
    let mut ann = Announcements::<2>::new();
    assert_eq!(
        ann.announce(&mut remote.split().0, &rep, "echo"),
        Ok(Sent::Sent)
    );
    master.bind(NS_ADDR).unwrap();
    let mut dir = NsDirectory::<2>::new();
    assert_eq!(
        service_addr(&mut master.split().1, &mut dir, "echo"),
        Some(40)
    );
    let mep = master.bind(ADDR_ANY).unwrap();
    let mut seq = 0;
    assert_eq!(send_seq(&mut master.split().0, &mep, &mut seq, 3), 3);
    {
        // The application takes one in place; the queue layer holds the
        // other two (the ones the restart must count as dropped).
        let mut eps = Endpoints::new(remote.split().1, &mut queues).unwrap();
        let held = eps.try_recv_held(&rep).unwrap().unwrap();
        assert_eq!(held.payload().unwrap(), &0u32.to_le_bytes()[..]);
        drop(held);
        assert!(eps.pump().unwrap());
        assert_eq!(eps.queued(&rep), 2);
    }

    // The master reboots: a new master link over freshly laid-out rings.
    // (The old link object is abandoned, as a rebooted core abandons its
    // RAM.) A message held across the restart cannot exist: it borrows the
    // receive half, which the restart needs.
    let (session, rings) = master_rings(&shm, 1);
    let mut ms = Storage::<2>::new();
    let mut master: Master<'_> = Link::new(rings, Quiet, &mut ms);
    assert_eq!(watch.check(&shm).unwrap(), PeerState::Restarted(session));
    watch.follow(session);
    let (_, rings) = remote_rings(&shm);
    let report = remote.restart(rings);
    let lost = report.lost + queues.forget_session();
    assert_eq!(lost, 2, "two queued messages dropped");
    assert_eq!(ann.on_restart(), 1, "one service to announce again");

    // The service is announced again; traffic resumes, nothing old shows up.
    assert_eq!(ann.reannounce(&mut remote.split().0), Ok(0));
    master.bind(NS_ADDR).unwrap();
    let mut dir = NsDirectory::<2>::new();
    assert_eq!(
        service_addr(&mut master.split().1, &mut dir, "echo"),
        Some(40)
    );
    let mep = master.bind(ADDR_ANY).unwrap();
    assert_eq!(master.split().0.try_send(&mep, 40, b"new"), Ok(Sent::Sent));
    let mut eps = Endpoints::new(remote.split().1, &mut queues).unwrap();
    let mut buf = [0u8; 16];
    let r = eps.try_recv(&rep, &mut buf).unwrap().unwrap();
    assert_eq!(&buf[..r.len], b"new");
    assert_eq!(eps.try_recv(&rep, &mut buf), Ok(None));
    assert_eq!(eps.rx_stats().return_failures, 0);
}

#[test]
fn master_survives_remote_restart_and_counts_unconfirmed() {
    let mut b = Box::new(Backing([0; SIZE]));
    let shm = region(&mut b);
    let remote_word = SessionWord::at(REMOTE_WORD);
    let first = remote_word.begin(&shm, 100).unwrap();
    let (_, rings) = master_rings(&shm, 1);
    let mut ms = Storage::<1>::new();
    let master: Master<'_> = Link::new(rings, Quiet, &mut ms);
    let mut watch = PeerWatch::new(remote_word, first);
    let (_, rings) = remote_rings(&shm);
    let mut rs = Storage::<1>::new();
    let mut remote: Remote<'_> = Link::new(rings, Quiet, &mut rs);
    let _rep = remote.bind(40).unwrap();
    let mut master = master;
    let mep = master.bind(ADDR_ANY).unwrap();
    let mut ann = Announcements::<1>::new();
    {
        let (mut mtx, _) = master.split();
        assert_eq!(ann.announce(&mut mtx, &mep, "host"), Ok(Sent::Sent));
        let mut seq = 0;
        assert_eq!(send_seq(&mut mtx, &mep, &mut seq, 3), 3);
    }
    // The remote takes the first message (the announcement to 53, which
    // it does not bind, goes back counted as unbound).
    let mut buf = [0u8; 64];
    let (_, mut rrx) = remote.split();
    assert_eq!(rrx.try_recv(&mut buf).unwrap().unwrap().len, 4);
    assert_eq!(rrx.stats().unbound, 1);

    // The remote reboots (a new session of its own); the master notices,
    // ends its session while the rings are intact, lays them out again
    // under a new session and restarts. (The old remote link is
    // abandoned: its core rebooted.)
    let second = remote_word.begin(&shm, 100).unwrap();
    assert_eq!(second, first + 1);
    assert_eq!(watch.check(&shm).unwrap(), PeerState::Restarted(second));
    watch.follow(second);
    let (ended, report) = master.end_session();
    // The announcement plus three messages were published; the remote
    // returned the announcement and the first message: two unconfirmed.
    assert_eq!(report.unconfirmed, 2);
    let (_, rings) = master_rings(&shm, 1);
    let mut master = ended.restart(rings);
    assert_eq!(ann.on_restart(), 1);
    let (mut mtx, _) = master.split();
    assert_eq!(ann.reannounce(&mut mtx), Ok(0), "the master re-announced");
    let (_, rings) = remote_rings(&shm);
    let mut rs = Storage::<2>::new();
    let mut remote: Remote<'_> = Link::new(rings, Quiet, &mut rs);
    remote.bind(40).unwrap();
    remote.bind(NS_ADDR).unwrap();
    let (_, mut rrx) = remote.split();
    let mut dir = NsDirectory::<1>::new();
    let r = rrx.try_recv(&mut buf).unwrap().unwrap();
    assert_eq!(r.dst, NS_ADDR);
    assert!(dir.on_message::<Legacy>(&buf[..r.len]).is_some());
    assert_eq!(dir.lookup_service("host"), Some(mep.addr()));
    assert_eq!(mtx.try_send(&mep, 40, b"after"), Ok(Sent::Sent));
    let r = rrx.try_recv(&mut buf).unwrap().unwrap();
    assert_eq!(&buf[..r.len], b"after");
    assert_eq!(
        rrx.try_recv(&mut buf),
        Ok(None),
        "no replay from the old session"
    );
}

#[test]
fn hundred_remote_restarts_during_traffic_account_for_every_message() {
    let mut b = Box::new(Backing([0; SIZE]));
    let shm = region(&mut b);
    let remote_word = SessionWord::at(REMOTE_WORD);
    let (_, rings) = master_rings(&shm, 1);
    let mut ms = Storage::<1>::new();
    let mut master: Master<'_> = Link::new(rings, Quiet, &mut ms);
    let mep = master.bind(ADDR_ANY).unwrap();
    let mut delivered = HashSet::new();
    let (mut sent, mut seq, mut unconfirmed, mut resets) = (0u32, 0u32, 0u32, 0u32);
    for round in 0..100u32 {
        remote_word.begin(&shm, 1).unwrap();
        let (_, rings) = remote_rings(&shm);
        let mut rs = Storage::<1>::new();
        let mut remote: Remote<'_> = Link::new(rings, Quiet, &mut rs);
        remote.bind(40).unwrap();
        // Some traffic; the remote takes only part of it before "crashing".
        sent += send_seq(
            &mut master.split().0,
            &mep,
            &mut seq,
            round % NUM as u32 + 1,
        );
        take_some(&mut remote.split().1, round % 3, &mut delivered);
        // (This remote "crashes": its link is abandoned.)
        // Master side: the remote is gone; end the session (nothing can be
        // sent until the restart: `Ended` has no halves), then lay the
        // rings out again and restart over them.
        let (ended, report) = master.end_session();
        unconfirmed += report.unconfirmed;
        resets += 1;
        let (_, rings) = master_rings(&shm, 1);
        master = ended.restart(rings);
    }
    assert_eq!(resets, 100);
    assert_eq!(
        delivered.len() as u32 + unconfirmed,
        sent,
        "every message sent is either delivered once or reported unconfirmed"
    );
    assert!(
        delivered.len() > 10 && unconfirmed > 10,
        "both outcomes happen"
    );
}

/// The master crashes and reboots 100 times during traffic, following the
/// restart handshake of `rpmsg::session`: the rebooted master starts a new
/// session and waits; the remote sees the old rings are intact, counts what
/// it had not taken (`release_session`, plus what its queue layer held),
/// attaches; the master lays the rings out for it; the remote restarts
/// over them. Every master message is delivered once or reported lost by
/// the remote: nothing is counted from ring memory by the test.
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
    let mut laid_out = Some(lay_out(&shm, own));
    assert_eq!(watch.attached_to(&shm, own).unwrap(), Some(m));
    let mut rs = Storage::<1>::new();
    let mut remote: Remote<'_> = Link::new(remote_rings(&shm).1, Quiet, &mut rs);
    remote.bind(40).unwrap();
    let mut queues: Queues<'_, M, 1, { NUM }> = Queues::new();
    let mut delivered = HashSet::new();
    let (mut sent, mut seq, mut lost, mut resets) = (0u32, 0u32, 0u32, 0u32);
    for round in 0..100u32 {
        let mut ms = Storage::<1>::new();
        let mut master: Master<'_> = Link::new(laid_out.take().unwrap(), Quiet, &mut ms);
        // The remote takes part of it; with round % 4 == 3 its queue layer
        // also pulls the rest into the endpoint's queue without the
        // application taking it (queued messages are lost at the reset too).
        sent += traffic(
            &mut master,
            &mut remote,
            &mut queues,
            round,
            &mut seq,
            &mut delivered,
        );
        // The master crashes and reboots: a new session, nothing laid out.
        // (The old link object is abandoned, as the reboot replaces RAM.)
        let m = mword.begin(&shm, 1).unwrap();
        // The remote notices, the old rings are intact: it counts and lets go.
        assert_eq!(watch.check(&shm).unwrap(), PeerState::Restarted(m));
        assert!(watch.rings_intact(&shm).unwrap());
        let (ended, report) = remote.release_session();
        lost += report.lost + queues.forget_session();
        resets += 1;
        rword.attach(&shm, m).unwrap();
        watch.follow(m);
        // The master lays out for the remote; the remote restarts.
        laid_out = Some(lay_out(&shm, own));
        assert_eq!(watch.attached_to(&shm, own).unwrap(), Some(m));
        remote = ended.restart(remote_rings(&shm).1);
        let mut buf = [0u8; 4];
        assert_eq!(
            remote.split().1.try_recv(&mut buf),
            Ok(None),
            "nothing of the old session is delivered"
        );
    }
    assert_eq!(resets, 100);
    assert_eq!(
        delivered.len() as u32 + lost,
        sent,
        "every master message delivered once or reported lost by the remote"
    );
    assert!(delivered.len() > 10 && lost > 10, "both outcomes");
    assert!(!remote.is_broken());
    assert_eq!(remote.rx_stats().return_failures, 0);
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
    unsafe { RemoteRings::new(shm, cfg, remote_tables()) }.unwrap()
}

/// A Linux-style master resets the vdev 100 times during traffic (status
/// 0, later the vrings and `DRIVER_OK` again, rings laid out anew). The
/// remote follows the status byte with `VdevWatch`: at each `WentDown` it
/// lets go of the intact old rings (`release_session`, counting what it had
/// not taken and what its queue layer held), at
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

    let mut rs = Storage::<1>::new();
    let mut storage = Some(&mut rs);
    let mut ended: Option<Ended<'_, RemoteRings<'_, M, Legacy, NUM>, Quiet>> = None;
    let mut queues: Queues<'_, M, 1, { NUM }> = Queues::new();
    let mut delivered = HashSet::new();
    let (mut sent, mut seq, mut lost, mut resets) = (0u32, 0u32, 0u32, 0u32);
    for round in 0..=100u32 {
        // The host probes: rings laid out, vrings and DRIVER_OK in the table.
        let mut ms = Storage::<1>::new();
        let mut master: Master<'_> = Link::new(lay_out_rings(&shm), Quiet, &mut ms);
        host_up(&shm, info.offset);
        assert_eq!(watch.poll(&view, &shm).unwrap(), VdevEvent::CameUp);
        let rings = rings_from_vdev(&shm, &view);
        let mut remote: Remote<'_> = match ended.take() {
            None => {
                let mut link = Link::new(rings, Quiet, storage.take().unwrap());
                link.bind(40).unwrap();
                link
            }
            Some(e) => e.restart(rings),
        };
        assert_eq!(watch.poll(&view, &shm).unwrap(), VdevEvent::Running);
        let mut buf = [0u8; 4];
        assert_eq!(remote.split().1.try_recv(&mut buf), Ok(None), "no replay");
        if round == 100 {
            break;
        }
        sent += traffic(
            &mut master,
            &mut remote,
            &mut queues,
            round,
            &mut seq,
            &mut delivered,
        );
        // The host resets the device; its driver state is gone.
        shm.write(TABLE + info.offset + 24, &[0]).unwrap();
        assert_eq!(watch.poll(&view, &shm).unwrap(), VdevEvent::WentDown);
        // Nothing can be received until the restart: `Ended` has no halves.
        let (e, report) = remote.release_session();
        lost += report.lost + queues.forget_session();
        resets += 1;
        ended = Some(e);
    }
    assert_eq!((resets, watch.restarts()), (100, 100));
    assert_eq!(
        delivered.len() as u32 + lost,
        sent,
        "every message delivered once or reported lost"
    );
    assert!(delivered.len() > 10 && lost > 10, "both outcomes");
}

/// Unbinding an endpoint frees its address whatever state the link is in:
/// the queue layer gives its queued messages back to the peer first
/// (`discard`); a ring that refuses buffers does not keep the address
/// bound; and after a restart the address can be bound again, so the new
/// session delivers to the new binding and nothing to an orphan.
#[test]
fn destroy_endpoint_always_unbinds() {
    let mut b = Box::new(Backing([0; SIZE]));
    let shm = region(&mut b);
    SessionWord::at(REMOTE_WORD).begin(&shm, 7).unwrap();
    let (_, rings) = master_rings(&shm, 1);
    let mut ms = Storage::<1>::new();
    let mut master: Master<'_> = Link::new(rings, Quiet, &mut ms);
    let (mut watch, rings) = remote_rings(&shm);
    let mut rs = Storage::<2>::new();
    let mut remote: Remote<'_> = Link::new(rings, Quiet, &mut rs);
    let mut queues: Queues<'_, M, 2, 4> = Queues::new();
    let mep = master.bind(ADDR_ANY).unwrap();

    // Live session: two messages queued for 40, one for 41.
    let rep = remote.bind(40).unwrap();
    let cb = remote.bind(41).unwrap();
    for dst in [40, 40, 41] {
        assert_eq!(master.split().0.try_send(&mep, dst, b"m"), Ok(Sent::Sent));
    }
    {
        let mut eps = Endpoints::new(remote.split().1, &mut queues).unwrap();
        assert!(eps.pump().unwrap());
        assert_eq!((eps.discard(&rep), eps.discard(&cb)), (Ok(2), Ok(1)));
    }
    remote.unbind(rep);
    remote.unbind(cb);
    // All three buffers came back: the master fills the whole ring again.
    let mut seq = 0;
    assert_eq!(
        send_seq(&mut master.split().0, &mep, &mut seq, NUM as u32),
        NUM as u32
    );
    {
        let (_, mut rrx) = remote.split();
        assert_eq!(rrx.try_recv(&mut [0u8; 8]), Ok(None));
        assert_eq!(rrx.stats().unbound, NUM as u32);
    }

    // A ring that refuses the buffers (the peer broke it) does not keep the
    // endpoint: it is unbound, its address free.
    let rep = remote.bind(40).unwrap();
    assert_eq!(send_seq(&mut master.split().0, &mep, &mut seq, 2), 2);
    {
        let mut eps = Endpoints::new(remote.split().1, &mut queues).unwrap();
        assert!(eps.pump().unwrap());
    }
    let (_, vring1) = common::layouts();
    let idx_at = vring1.avail_offset() + 2;
    let mut idx = [0u8; 2];
    shm.read(idx_at, &mut idx).unwrap();
    let lie = u16::from_ne_bytes(idx).wrapping_add(100);
    shm.write(idx_at, &lie.to_ne_bytes()).unwrap();
    {
        let mut eps = Endpoints::new(remote.split().1, &mut queues).unwrap();
        assert!(matches!(eps.pump(), Err(Error::Ring(_))));
        assert_eq!(eps.discard(&rep), Ok(2));
    }
    assert!(remote.is_broken());
    remote.unbind(rep);
    let rep = remote.bind(40).unwrap();

    // The master reboots; the remote restarts and unbinds before it
    // receives anything of the new session.
    let (session, rings) = master_rings(&shm, 1);
    let mut ms = Storage::<1>::new();
    let mut master: Master<'_> = Link::new(rings, Quiet, &mut ms);
    assert_eq!(watch.check(&shm).unwrap(), PeerState::Restarted(session));
    watch.follow(session);
    let (_, rings) = remote_rings(&shm);
    let report = remote.restart(rings);
    assert_eq!(report.lost + queues.forget_session(), 0);
    assert!(!remote.is_broken(), "the new rings are sound");
    remote.unbind(rep);
    // The address is free for the new session.
    let rep = remote.bind(40).unwrap();
    let mep = master.bind(ADDR_ANY).unwrap();
    assert_eq!(master.split().0.try_send(&mep, 40, b"new"), Ok(Sent::Sent));
    let mut out = [0u8; 8];
    let r = remote.split().1.try_recv(&mut out).unwrap().unwrap();
    assert_eq!((r.dst, &out[..r.len]), (rep.addr(), &b"new"[..]));
}
