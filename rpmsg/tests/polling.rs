//! A side that polls asks the peer not to ring (`set_peer_notifications`
//! on its halves): the peer's doorbells stop, nothing is lost, and
//! resuming re-checks.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failure is a test failure"
)]

mod common;

use common::{master_rings, region, remote_rings, Backing, Master, Quiet, Remote, SIZE};
use rpmsg::link::{Endpoint, Link, Rx, Sent, Storage, Tx};
use rpmsg::rings::Halves;
use rpmsg::session::SessionWord;

fn pair<'m>(
    shm: &'m common::M,
    ms: &'m mut Storage<2>,
    rs: &'m mut Storage<2>,
) -> (Master<'m>, Remote<'m>) {
    SessionWord::at(common::REMOTE_WORD).begin(shm, 3).unwrap();
    let (_, rings) = master_rings(shm, 1);
    let master: Master<'_> = Link::new(rings, Quiet, ms);
    let (_, rings) = remote_rings(shm);
    let remote: Remote<'_> = Link::new(rings, Quiet, rs);
    (master, remote)
}

/// Sends `n` messages from `from`'s endpoint to `to`'s and lets `to` take
/// each one (copying), checking order and content.
fn exchange<'a, A: Halves<'a>, B: Halves<'a>>(
    n: u32,
    from: (&mut Tx<'_, 'a, A, Quiet>, &Endpoint),
    to: (&mut Rx<'_, 'a, B, Quiet>, &Endpoint),
) {
    for k in 0..n {
        let sent = from.0.try_send(from.1, to.1.addr(), &k.to_le_bytes());
        assert_eq!(sent.unwrap(), Sent::Sent);
        let mut buf = [0u8; 8];
        let r = to.0.try_recv(&mut buf).unwrap().expect("message");
        assert_eq!((r.dst, r.src), (to.1.addr(), from.1.addr()));
        assert_eq!(&buf[..r.len], &k.to_le_bytes(), "message {k}");
    }
}

#[test]
fn a_polling_master_silences_the_remote_without_losing_messages() {
    let mut b = Box::new(Backing([0; SIZE]));
    let shm = region(&mut b);
    let (mut ms, mut rs) = (Storage::new(), Storage::new());
    let (mut master, mut remote) = pair(&shm, &mut ms, &mut rs);
    let mep = master.bind(1024).unwrap();
    let rep = remote.bind(40).unwrap();
    let (_mtx, mut mrx) = master.split();
    let (mut rtx, _rrx) = remote.split();

    // Both ways with doorbells: the remote rings for what it sends.
    exchange(20, (&mut rtx, &rep), (&mut mrx, &mep));
    let rung = rtx.stats().doorbells;
    assert!(rung >= 20, "{rung}");

    // The master's receive half polls: the remote stops ringing for
    // messages, everything arrives.
    assert_eq!(mrx.set_peer_notifications(false), Ok(false));
    exchange(50, (&mut rtx, &rep), (&mut mrx, &mep));
    assert_eq!(rtx.stats().doorbells, rung, "no doorbell while polled");
    let suppressed = remote.ring_stats().0.notifications_suppressed;
    assert!(suppressed >= 50, "{suppressed}");

    // A message sent while silenced, then resuming: the re-check finds it.
    let (_mtx, mut mrx) = master.split();
    let (mut rtx, _rrx) = remote.split();
    assert_eq!(rtx.try_send(&rep, 1024, b"late"), Ok(Sent::Sent));
    assert_eq!(mrx.set_peer_notifications(true), Ok(true));
    let mut buf = [0u8; 8];
    let r = mrx.try_recv(&mut buf).unwrap().unwrap();
    assert_eq!(&buf[..r.len], b"late");
    exchange(5, (&mut rtx, &rep), (&mut mrx, &mep));
    assert!(rtx.stats().doorbells > rung, "ringing again");
}

/// The transmit parts: a side that finds its transmit buffers by polling
/// silences the doorbells for buffers the peer hands back, and only
/// those; its sends keep finding buffers.
#[test]
fn a_transmit_half_silences_only_the_returned_buffer_doorbells() {
    let mut b = Box::new(Backing([0; SIZE]));
    let shm = region(&mut b);
    let (mut ms, mut rs) = (Storage::new(), Storage::new());
    let (mut master, mut remote) = pair(&shm, &mut ms, &mut rs);
    let mep = master.bind(1024).unwrap();
    let rep = remote.bind(40).unwrap();
    let (mut mtx, mut mrx) = master.split();
    let (mut rtx, mut rrx) = remote.split();
    // Messages consumed by the remote ring the master; receive buffers
    // handed back by the master ring the remote.
    exchange(10, (&mut mtx, &mep), (&mut rrx, &rep));
    exchange(10, (&mut rtx, &rep), (&mut mrx, &mep));
    let (consumed, returned) = (rrx.stats().doorbells, mrx.stats().doorbells);
    assert!(consumed >= 1 && returned >= 1, "{consumed} {returned}");

    // The master's transmit half polls for consumed buffers: the remote
    // stops ringing for them, 50 sends over a 4-entry ring still go out.
    mtx.set_peer_notifications(false).unwrap();
    exchange(50, (&mut mtx, &mep), (&mut rrx, &rep));
    assert_eq!(
        rrx.stats().doorbells,
        consumed,
        "no consumed-buffer doorbell"
    );
    // The remote's transmit half likewise for posted receive buffers.
    rtx.set_peer_notifications(false).unwrap();
    exchange(50, (&mut rtx, &rep), (&mut mrx, &mep));
    assert_eq!(
        mrx.stats().doorbells,
        returned,
        "no returned-buffer doorbell"
    );
    // The messages themselves still ring: only the returns were silenced.
    let (sent_m, sent_r) = (mtx.stats().doorbells, rtx.stats().doorbells);
    exchange(3, (&mut mtx, &mep), (&mut rrx, &rep));
    exchange(3, (&mut rtx, &rep), (&mut mrx, &mep));
    assert!(mtx.stats().doorbells > sent_m && rtx.stats().doorbells > sent_r);

    // Resumed: the returns ring again.
    mtx.set_peer_notifications(true).unwrap();
    rtx.set_peer_notifications(true).unwrap();
    exchange(10, (&mut mtx, &mep), (&mut rrx, &rep));
    exchange(10, (&mut rtx, &rep), (&mut mrx, &mep));
    assert!(
        rrx.stats().doorbells > consumed,
        "consumed buffers ring again"
    );
    assert!(
        mrx.stats().doorbells > returned,
        "returned buffers ring again"
    );
}

#[test]
fn a_polling_remote_silences_the_master() {
    let mut b = Box::new(Backing([0; SIZE]));
    let shm = region(&mut b);
    let (mut ms, mut rs) = (Storage::new(), Storage::new());
    let (mut master, mut remote) = pair(&shm, &mut ms, &mut rs);
    let mep = master.bind(1024).unwrap();
    let rep = remote.bind(40).unwrap();
    let (mut mtx, _mrx) = master.split();
    let (_rtx, mut rrx) = remote.split();
    exchange(10, (&mut mtx, &mep), (&mut rrx, &rep));
    let rung = mtx.stats().doorbells;
    assert!(rung >= 10);
    assert_eq!(rrx.set_peer_notifications(false), Ok(false));
    exchange(50, (&mut mtx, &mep), (&mut rrx, &rep));
    assert_eq!(mtx.stats().doorbells, rung);
    assert_eq!(
        rrx.set_peer_notifications(true),
        Ok(false),
        "nothing pending"
    );
    exchange(5, (&mut mtx, &mep), (&mut rrx, &rep));
    assert!(mtx.stats().doorbells > rung);
}

/// The remote keeps one transmit buffer taken and not sent (its spare
/// place): buffers lent and dropped unsent, again and again, are all
/// reused, none is lost, and messages keep flowing.
#[test]
fn a_remote_reuses_every_buffer_it_lends_and_gets_back_unsent() {
    let mut b = Box::new(Backing([0; SIZE]));
    let shm = region(&mut b);
    let (mut ms, mut rs) = (Storage::new(), Storage::new());
    let (mut master, mut remote) = pair(&shm, &mut ms, &mut rs);
    let mep = master.bind(1024).unwrap();
    let rep = remote.bind(40).unwrap();
    let (_mtx, mut mrx) = master.split();
    let (mut rtx, _rrx) = remote.split();
    for round in 0..4 * common::NUM {
        let lent = rtx.try_alloc().unwrap();
        assert!(lent.is_some(), "a buffer to lend in round {round}");
        drop(lent);
    }
    // Twice the ring's worth of messages: every buffer went back to the
    // master and came round again.
    exchange(2 * common::NUM as u32, (&mut rtx, &rep), (&mut mrx, &mep));
}
