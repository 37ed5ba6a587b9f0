//! The layers over the split link ([`rpmsg::link`]): endpoint queues,
//! name-service reception (hostile input included), restart, liveness.
//! Master and remote share one coherent region (tests/common), on one
//! thread.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failure is a test failure"
)]

mod common;

use std::cell::RefCell;
use std::rc::Rc;

use common::{Backing, Quiet, M, NUM, SIZE};
use ipc_traits::mailbox::{ErrorType, Notify, QueueId};
use rpmsg::link::ns::{NsDirectory, NsEvent};
use rpmsg::link::queues::{Endpoints, Queues};
use rpmsg::link::restart::Announcements;
use rpmsg::link::{Link, Sent, Storage};
use rpmsg::rings::{MasterRings, RemoteRings};
use rpmsg::wire::{Name, NsAction, NsMessage, NS_ADDR, NS_MSG_LEN};
use rpmsg::Error;
use vring::Legacy;

type MasterLink<'m, N = Quiet> = Link<'m, MasterRings<'m, M, Legacy, NUM>, N>;
type RemoteLink<'m, N = Quiet> = Link<'m, RemoteRings<'m, M, Legacy, NUM>, N>;

/// The remote's rings over what the master laid out (its session word
/// begun first, as a remote that starts does).
fn remote_rings(shm: &M) -> (rpmsg::session::PeerWatch, RemoteRings<'_, M, Legacy, NUM>) {
    rpmsg::session::SessionWord::at(common::REMOTE_WORD)
        .begin(shm, 7)
        .unwrap();
    common::remote_rings(shm)
}

fn backing() -> Box<Backing> {
    Box::new(Backing([0; SIZE]))
}

/// One coherent region (`$shm`) with the master's rings laid out and the
/// remote attached, and the two links over them (`Quiet` notifiers) with
/// room for `$m` and `$r` endpoints.
macro_rules! two_links {
    ($shm:ident, $master:ident: $m:literal, $remote:ident: $r:literal) => {
        let mut b = backing();
        let $shm = common::region(&mut b);
        let (_, mrings) = common::master_rings(&$shm, 1);
        let mut ms = Storage::<$m>::new();
        let mut $master: MasterLink<'_> = Link::new(mrings, Quiet, &mut ms);
        let (_, rrings) = remote_rings(&$shm);
        let mut rs = Storage::<$r>::new();
        let mut $remote: RemoteLink<'_> = Link::new(rrings, Quiet, &mut rs);
    };
}

// -- endpoint queues ---------------------------------------------------------

/// Messages for three endpoints, consumed endpoint by endpoint in another
/// order than they came: each endpoint gets its own in order; the first
/// message for the receiving endpoint comes straight off the ring (one
/// pass, not queued); a full queue stalls reception (no loss) until its
/// endpoint takes one.
#[test]
fn queues_deliver_per_endpoint_in_order_with_back_pressure() {
    two_links!(shm, master: 1, remote: 3);
    let (a, bb, c) = (
        remote.bind(30).unwrap(),
        remote.bind(31).unwrap(),
        remote.bind(32).unwrap(),
    );
    let mep = master.bind(0x400).unwrap();
    let (mut mtx, _mrx) = master.split();
    let (_rtx, rrx) = remote.split();
    let mut queues = Queues::<'_, M, 3, 1>::new();
    let mut eps = Endpoints::new(rrx, &mut queues).unwrap();
    // Ring order: b0 b1 a0 c0 (NUM = 4 buffers).
    for (dst, text) in [(31, "b0"), (31, "b1"), (30, "a0"), (32, "c0")] {
        assert_eq!(mtx.try_send(&mep, dst, text.as_bytes()), Ok(Sent::Sent));
    }
    assert_eq!(mtx.try_send(&mep, 30, b"x"), Ok(Sent::NoBuffer));
    let mut out = [0u8; 16];
    // `a` asks: b0 is queued, b1 finds b's queue (Q = 1) full: stalled.
    assert_eq!(eps.try_recv(&a, &mut out), Ok(None));
    assert!(eps.is_stalled());
    assert_eq!((eps.stats().stalls, eps.stats().queued), (1, 1));
    assert_eq!(eps.queued(&bb), 2, "b0 queued, b1 stalled on");
    assert_eq!(eps.queued(&a), 0);
    // Every buffer is held: the master waits, nothing is lost.
    assert_eq!(mtx.try_send(&mep, 30, b"x"), Ok(Sent::NoBuffer));
    // `b` takes b0: b1 moves into its queue, reception resumes.
    let r = eps.try_recv(&bb, &mut out).unwrap().unwrap();
    assert_eq!((&out[..r.len], r.dst, r.src), (&b"b0"[..], 31, 0x400));
    assert!(!eps.is_stalled());
    // `a` now gets a0 straight off the ring.
    let queued_before = eps.stats().queued;
    let r = eps.try_recv(&a, &mut out).unwrap().unwrap();
    assert_eq!(&out[..r.len], b"a0");
    assert_eq!(
        eps.stats().queued,
        queued_before,
        "a0 came straight off the ring, not through a queue"
    );
    // `c` gets c0 straight off the ring (one pass), then b1 from b's queue.
    let r = eps.try_recv(&c, &mut out).unwrap().unwrap();
    assert_eq!(&out[..r.len], b"c0");
    let held = eps.try_recv_held(&bb).unwrap().unwrap();
    assert_eq!((held.dst(), held.len()), (31, 2));
    let mut two = [0u8; 2];
    held.read(0, &mut two).unwrap();
    assert_eq!(&two, b"b1");
    drop(held);
    assert_eq!(eps.try_recv(&a, &mut out), Ok(None));
    assert_eq!(eps.rx_stats().messages, 4);
    // Every buffer came back: the master sends again.
    assert_eq!(mtx.try_send(&mep, 30, b"again"), Ok(Sent::Sent));
    let r = eps.try_recv(&a, &mut out).unwrap().unwrap();
    assert_eq!(&out[..r.len], b"again");
}

#[test]
fn queues_keep_a_message_too_long_for_out_and_discard_on_request() {
    two_links!(shm, master: 1, remote: 2);
    let (a, bb) = (remote.bind(30).unwrap(), remote.bind(31).unwrap());
    let mep = master.bind(0x400).unwrap();
    let (mut mtx, _) = master.split();
    let (_, rrx) = remote.split();
    let mut queues = Queues::<'_, M, 2, 2>::new();
    let mut eps = Endpoints::new(rrx, &mut queues).unwrap();
    for (dst, text) in [(31, "b-long"), (30, "a0"), (31, "b1")] {
        assert_eq!(mtx.try_send(&mep, dst, text.as_bytes()), Ok(Sent::Sent));
    }
    assert_eq!(eps.pump(), Ok(true), "everything queued, ring empty");
    let mut small = [0u8; 2];
    assert_eq!(eps.try_recv(&bb, &mut small), Err(Error::TooLong));
    assert_eq!(eps.queued(&bb), 2, "kept first in line");
    assert_eq!(eps.discard(&bb), Ok(2));
    assert_eq!(eps.stats().discarded, 2);
    let r = eps.try_recv(&a, &mut small).unwrap().unwrap();
    assert_eq!(&small[..r.len], b"a0");
    // Three buffers came back, one was free: four sends.
    for k in 0..NUM {
        assert_eq!(mtx.try_send(&mep, 30, &[k as u8]), Ok(Sent::Sent), "{k}");
    }
}

#[test]
fn queues_refuse_storage_with_fewer_endpoints_than_the_link() {
    let mut b = backing();
    let shm = common::region(&mut b);
    let (_, rrings) = {
        let _ = common::master_rings(&shm, 1);
        remote_rings(&shm)
    };
    let mut rs = Storage::<3>::new();
    let mut remote: RemoteLink<'_> = Link::new(rrings, Quiet, &mut rs);
    let (_, rrx) = remote.split();
    let mut queues = Queues::<'_, M, 2, 4>::new();
    assert!(matches!(
        Endpoints::new(rrx, &mut queues),
        Err(Error::TableFull)
    ));
}

// -- name service --------------------------------------------------------------

fn ns(name: &[u8], addr: u32, flags: u32) -> [u8; NS_MSG_LEN] {
    let mut b = [0u8; NS_MSG_LEN];
    b[..name.len()].copy_from_slice(name);
    b[32..36].copy_from_slice(&addr.to_le_bytes());
    b[36..40].copy_from_slice(&flags.to_le_bytes());
    b
}

#[cfg(target_endian = "little")]
#[test]
fn name_service_counts_hostile_input_and_keeps_the_directory_sane() {
    let mut dir = NsDirectory::<2>::new();
    // Wrong sizes.
    assert_eq!(dir.on_message::<Legacy>(&[0u8; 39]), None);
    assert_eq!(dir.on_message::<Legacy>(&[0u8; 41]), None);
    assert_eq!(dir.on_message::<Legacy>(&[]), None);
    // Unknown flags; a name that is not UTF-8; an empty name is fine.
    assert_eq!(dir.on_message::<Legacy>(&ns(b"svc", 5, 7)), None);
    assert_eq!(dir.on_message::<Legacy>(&ns(&[0xFF, 0xFE], 5, 0)), None);
    assert_eq!(dir.stats().malformed, 5);
    // 32 bytes without a NUL: cut to 31, counted, accepted.
    let long = [b'x'; 32];
    let got = dir.on_message::<Legacy>(&ns(&long, 0x401, 0));
    let cut = Name::new(core::str::from_utf8(&long[..31]).unwrap()).unwrap();
    assert!(matches!(got, Some(NsEvent::Created(s)) if s.name == cut && s.addr == 0x401));
    assert_eq!(dir.stats().name_truncated, 1);
    assert_eq!(dir.lookup_service(cut.as_str()), Some(0x401));
    // Destroy of a service never announced, or at another address.
    assert_eq!(dir.on_message::<Legacy>(&ns(b"ghost", 9, 1)), None);
    assert_eq!(dir.on_message::<Legacy>(&ns(&long, 0x999, 1)), None);
    assert_eq!(dir.stats().unknown_destroy, 2);
    // A second service fills the directory; a third is dropped, counted.
    assert!(dir.on_message::<Legacy>(&ns(b"echo", 0x402, 0)).is_some());
    assert_eq!(dir.on_message::<Legacy>(&ns(b"flood", 0x403, 0)), None);
    assert_eq!(dir.stats().directory_full, 1);
    assert_eq!(dir.lookup_service("flood"), None);
    // Re-announced unchanged: no event; moved: an event.
    assert_eq!(dir.on_message::<Legacy>(&ns(b"echo", 0x402, 0)), None);
    assert!(
        matches!(dir.on_message::<Legacy>(&ns(b"echo", 0x404, 0)), Some(NsEvent::Created(s)) if s.addr == 0x404)
    );
    assert!(
        matches!(dir.on_message::<Legacy>(&ns(b"echo", 0x404, 1)), Some(NsEvent::Destroyed(s)) if s.addr == 0x404)
    );
    assert_eq!(dir.lookup_service("echo"), None);
    assert_eq!(dir.services().count(), 1);
    assert_eq!(dir.stats().messages, 13);
    dir.on_peer_reset();
    assert_eq!(dir.services().count(), 0);
}

/// The name service over the link: the remote announces; the master's
/// directory takes the messages for 53 (copied and held), and a hostile
/// payload sent to 53 changes nothing and is counted.
#[test]
fn name_service_over_the_halves_copied_and_held() {
    two_links!(shm, master: 1, remote: 1);
    let rep = remote.bind(30).unwrap();
    let ns_ep = master.bind(NS_ADDR).unwrap();
    let (mut rtx, _) = remote.split();
    let (_, mut mrx) = master.split();
    let mut dir = NsDirectory::<4>::new();
    assert_eq!(rtx.announce(&rep, "rpmsg-echo"), Ok(Sent::Sent));
    // A hostile peer: 12 bytes to 53.
    assert_eq!(rtx.try_send(&rep, NS_ADDR, b"not a ns msg"), Ok(Sent::Sent));
    let mut out = [0u8; 64];
    let r = mrx.try_recv(&mut out).unwrap().unwrap();
    assert_eq!(r.dst, ns_ep.addr());
    let ev = dir.on_message::<Legacy>(&out[..r.len]);
    assert!(matches!(ev, Some(NsEvent::Created(s)) if s.addr == 30));
    let held = mrx.try_recv_held().unwrap().unwrap();
    assert_eq!(dir.on_held(&held), None);
    drop(held);
    assert_eq!(dir.stats().malformed, 1);
    assert_eq!(dir.lookup_service("rpmsg-echo"), Some(30));
    // Held, well-formed: destroy.
    assert_eq!(rtx.announce_destroy(&rep, "rpmsg-echo"), Ok(Sent::Sent));
    let held = mrx.try_recv_held().unwrap().unwrap();
    assert!(matches!(dir.on_held(&held), Some(NsEvent::Destroyed(_))));
    assert_eq!(dir.lookup_service("rpmsg-echo"), None);
}

// -- restart -------------------------------------------------------------------

/// A master that restarts: it ends its session while the old rings are
/// intact (counting the unconfirmed), the remote releases its session
/// (counting the kept and the untaken), the master lays the rings out
/// again, the remote restarts over them and announces again; nothing of
/// the old session is delivered in the new one.
#[test]
fn restart_counts_lost_and_unconfirmed_and_reannounces() {
    two_links!(shm, master: 2, remote: 1);
    let rep = remote.bind(30).unwrap();
    let ns_ep = master.bind(NS_ADDR).unwrap();
    let mep = master.bind(0x400).unwrap();
    let mut ann = Announcements::<2>::new();
    let mut dir = NsDirectory::<2>::new();
    let mut out = [0u8; 64];
    {
        let (mut rtx, mut rrx) = remote.split();
        assert_eq!(ann.announce(&mut rtx, &rep, "rpmsg-echo"), Ok(Sent::Sent));
        let (mut mtx, mut mrx) = master.split();
        let r = mrx.try_recv(&mut out).unwrap().unwrap();
        assert!(dir.on_message::<Legacy>(&out[..r.len]).is_some());
        for text in ["old0", "old1", "old2"] {
            assert_eq!(mtx.try_send(&mep, 30, text.as_bytes()), Ok(Sent::Sent));
        }
        // The remote takes one into too short a buffer: kept.
        assert!(matches!(rrx.try_recv(&mut out[..1]), Err(Error::TooLong)));
    }
    // The master ends its session; the remote sees it and releases its own
    // while the old rings are intact.
    let (ended_m, mrep) = master.end_session();
    assert_eq!(mrep.unconfirmed, 3, "none of the three came back");
    let (ended_r, rrep) = remote.release_session();
    assert_eq!(rrep.lost, 3, "one kept, two untaken");
    assert_eq!(rrep.unconfirmed, 0, "the remote cannot know");
    // The master lays the rings out again; both go on.
    let (_, mrings) = common::master_rings(&shm, 2);
    let mut master = ended_m.restart(mrings);
    let (_, rrings) = remote_rings(&shm);
    let mut remote = ended_r.restart(rrings);
    dir.on_peer_reset();
    assert_eq!(ann.on_restart(), 1);
    let (mut rtx, mut rrx) = remote.split();
    assert_eq!(ann.reannounce(&mut rtx), Ok(0));
    let (mut mtx, mut mrx) = master.split();
    let r = mrx.try_recv(&mut out).unwrap().unwrap();
    assert_eq!(r.dst, ns_ep.addr());
    assert!(
        matches!(dir.on_message::<Legacy>(&out[..r.len]), Some(NsEvent::Created(s)) if s.addr == 30)
    );
    assert_eq!(mtx.try_send(&mep, 30, b"new"), Ok(Sent::Sent));
    let r = rrx.try_recv(&mut out).unwrap().unwrap();
    assert_eq!(&out[..r.len], b"new", "nothing of the old session");
    assert_eq!(rrx.try_recv(&mut out), Ok(None));
    // The counters go on across the restart.
    assert_eq!(mtx.stats().messages, 4);
}

/// The one-step restart of a remote: the kept message is dropped and
/// counted, owed doorbells forgotten, endpoints stay bound.
#[test]
fn restart_in_one_step_drops_the_kept_message_and_owed_doorbells() {
    let mut b = backing();
    let shm = common::region(&mut b);
    let (_, mrings) = common::master_rings(&shm, 1);
    let mut ms = Storage::<1>::new();
    let mut master: MasterLink<'_> = Link::new(mrings, Quiet, &mut ms);
    let (_, rrings) = remote_rings(&shm);
    let fifo = Fifo::default();
    let mut rs = Storage::<1>::new();
    let mut remote = Link::new(rrings.notify_always(true), fifo.clone(), &mut rs);
    let rep = remote.bind(30).unwrap();
    let mep = master.bind(0x400).unwrap();
    {
        let (mut mtx, _) = master.split();
        assert_eq!(mtx.try_send(&mep, 30, b"old-message"), Ok(Sent::Sent));
        let (mut rtx, mut rrx) = remote.split();
        let mut tiny = [0u8; 1];
        assert_eq!(rrx.try_recv(&mut tiny), Err(Error::TooLong));
        fifo.0.borrow_mut().0 = true;
        assert_eq!(rtx.announce(&rep, "x"), Ok(Sent::Sent));
        assert!(rtx.owes_doorbell());
    }
    let _old_master = master.into_parts();
    let (_, mrings) = common::master_rings(&shm, 2);
    let mut ms2 = Storage::<1>::new();
    let mut master: MasterLink<'_> = Link::new(mrings, Quiet, &mut ms2);
    let mep = master.bind(0x400).unwrap();
    let (_, rrings) = remote_rings(&shm);
    let report = remote.restart(rrings.notify_always(true));
    assert_eq!((report.lost, report.unconfirmed), (1, 0));
    assert!(
        !remote.owes_doorbell(),
        "the old session's doorbell is forgotten"
    );
    let (mut mtx, _) = master.split();
    assert_eq!(mtx.try_send(&mep, 30, b"new"), Ok(Sent::Sent));
    let (_, mut rrx) = remote.split();
    let mut out = [0u8; 16];
    let r = rrx.try_recv(&mut out).unwrap().unwrap();
    assert_eq!(&out[..r.len], b"new", "the kept message is not delivered");
    assert_eq!(rrx.try_recv(&mut out), Ok(None));
}

/// Queued messages of an old session are never given to the new rings:
/// `forget_session` drops and counts them.
#[test]
fn restart_forgets_queued_messages() {
    two_links!(shm, master: 1, remote: 2);
    let (_a, _bb) = (remote.bind(30).unwrap(), remote.bind(31).unwrap());
    let mep = master.bind(0x400).unwrap();
    let mut queues = Queues::<'_, M, 2, 2>::new();
    {
        let (mut mtx, _) = master.split();
        for dst in [30, 31, 31, 31] {
            assert_eq!(mtx.try_send(&mep, dst, b"q"), Ok(Sent::Sent));
        }
        let (_, rrx) = remote.split();
        let mut eps = Endpoints::new(rrx, &mut queues).unwrap();
        assert_eq!(eps.pump(), Ok(false), "b's queue is full");
    }
    let (ended, report) = remote.end_session();
    assert_eq!(report.lost, 0);
    assert_eq!(queues.forget_session(), 4, "three queued, one stalled");
    assert_eq!(queues.stats().lost_at_reset, 4);
    let _old_master = master.into_parts();
    let (_, _mrings) = common::master_rings(&shm, 2);
    let (_, rrings) = remote_rings(&shm);
    let mut remote = ended.restart(rrings);
    let (_, rrx) = remote.split();
    let eps = Endpoints::new(rrx, &mut queues).unwrap();
    assert!(!eps.is_stalled());
}

// -- liveness ------------------------------------------------------------------

/// A notifier whose mailbox can be full.
#[derive(Clone, Default)]
struct Fifo(Rc<RefCell<(bool, Vec<u8>)>>);
impl ErrorType for Fifo {
    type Error = ipc_traits::mailbox::ErrorKind;
}
impl Notify for Fifo {
    fn notify(&mut self, q: QueueId) -> Result<(), Self::Error> {
        let mut s = self.0.borrow_mut();
        if s.0 {
            return Err(ipc_traits::mailbox::ErrorKind::WouldBlock);
        }
        s.1.push(q.index());
        Ok(())
    }
}

#[test]
fn name_is_checked_before_announcements_are_remembered() {
    let mut ann = Announcements::<1>::new();
    let mut b = backing();
    let shm = common::region(&mut b);
    let _ = common::master_rings(&shm, 1);
    let (_, rrings) = remote_rings(&shm);
    let mut rs = Storage::<2>::new();
    let mut remote: RemoteLink<'_> = Link::new(rrings, Quiet, &mut rs);
    let (a, c) = (remote.bind(30).unwrap(), remote.bind(31).unwrap());
    let (mut tx, _) = remote.split();
    assert_eq!(
        ann.announce(&mut tx, &a, "a-name-longer-than-thirty-one-bytes"),
        Err(Error::BadName)
    );
    assert_eq!(ann.announce(&mut tx, &a, "one"), Ok(Sent::Sent));
    assert_eq!(
        ann.announce(&mut tx, &a, "one"),
        Ok(Sent::Sent),
        "same entry"
    );
    assert_eq!(ann.announce(&mut tx, &c, "two"), Err(Error::TableFull));
    assert_eq!(ann.destroy(&mut tx, &a, "one"), Ok(Sent::Sent));
    assert_eq!(ann.on_restart(), 0);
    let _ = NsAction::Create;
    let _ = NsMessage::decode::<Legacy>;
}

#[test]
fn blocking_send_waits_within_its_budget_then_reports_no_buffer() {
    use ipc_traits::mailbox::Spins;
    two_links!(shm, master: 1, remote: 1);
    let _rep = remote.bind(30).unwrap();
    let mep = master.bind(0x400).unwrap();
    let (mut mtx, _) = master.split();
    let (_, mut rrx) = remote.split();
    for _ in 0..NUM {
        assert_eq!(
            mtx.blocking_send(&mep, 30, b"m", Spins::new(0)),
            Ok(Sent::Sent)
        );
    }
    let waits = mtx.stats().buffer_waits;
    assert_eq!(
        mtx.blocking_send(&mep, 30, b"m", Spins::new(5)),
        Ok(Sent::NoBuffer)
    );
    assert_eq!(
        mtx.stats().buffer_waits,
        waits + 6,
        "the first try and five retries"
    );
    let mut out = [0u8; 4];
    assert!(rrx.try_recv(&mut out).unwrap().is_some());
    assert_eq!(
        mtx.blocking_send(&mep, 30, b"m", Spins::new(5)),
        Ok(Sent::Sent)
    );
    assert!(rrx.try_recv(&mut out).unwrap().is_some());
    assert_eq!(
        mtx.blocking_send(&mep, 30, &[0; 600], Spins::new(5)),
        Err(Error::TooLong),
        "errors at once"
    );
}

/// `bind`: dynamic addresses from 1024 (as Linux and rpmsg-lite hand them
/// out), skipping bound ones; a full table and a taken address are typed
/// errors that change nothing; `unbind` frees the slot.
#[test]
fn bind_hands_out_dynamic_addresses_and_refuses_taken_ones() {
    use rpmsg::wire::ADDR_ANY;
    let mut b = backing();
    let shm = common::region(&mut b);
    let (_, mrings) = common::master_rings(&shm, 1);
    let mut ms = Storage::<4>::new();
    let mut link: MasterLink<'_> = Link::new(mrings, Quiet, &mut ms);
    let fixed = link.bind(1025).unwrap();
    assert_eq!(fixed.addr(), 1025);
    assert_eq!(link.bind(ADDR_ANY).unwrap().addr(), 1024);
    assert_eq!(link.bind(ADDR_ANY).unwrap().addr(), 1026, "1025 is taken");
    assert_eq!(link.bind(30).unwrap().addr(), 30);
    assert_eq!(link.bind(31), Err(Error::TableFull));
    link.unbind(fixed);
    assert_eq!(link.bind(30), Err(Error::AddressInUse));
    assert_eq!(
        link.bind(ADDR_ANY).unwrap().addr(),
        1027,
        "the counter moves on"
    );
}
