//! Liveness of the virtio roles: a peer that keeps its buffers or a
//! mailbox that stays full is counted in `peer_unresponsive` by
//! `Link::tick` within a configurable bound, once per episode, and nothing
//! is dropped meanwhile.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failure is a test failure"
)]

mod common;

use std::cell::Cell;
use std::rc::Rc;

use common::{master_rings, region, remote_rings, Backing, M, NUM, REMOTE_WORD, SIZE};
use ipc_traits::mailbox::{ErrorKind, ErrorType, Notify, QueueId};
use rpmsg::link::{Error, Link, RxMode, DEFAULT_UNRESPONSIVE_TICKS};
use rpmsg::session::SessionWord;

/// A doorbell whose mailbox FIFO is full while `full` is set.
#[derive(Clone, Default)]
struct Fifo {
    full: Rc<Cell<bool>>,
    rung: Rc<Cell<u32>>,
}
impl ErrorType for Fifo {
    type Error = ErrorKind;
}
impl Notify for Fifo {
    fn notify(&mut self, _: QueueId) -> Result<(), ErrorKind> {
        if self.full.get() {
            return Err(ErrorKind::WouldBlock);
        }
        self.rung.set(self.rung.get() + 1);
        Ok(())
    }
}

type Master<'m> = common::Master<'m, Fifo>;
type Remote<'m> = common::Remote<'m, Fifo>;

/// A master and a remote over one region, each with its own doorbell, and
/// an endpoint on each side (remote 40, master 1024).
struct Pair<'m> {
    master: Master<'m>,
    remote: Remote<'m>,
    m_bell: Fifo,
    mep: rpmsg::link::Endpoint,
    rep: rpmsg::link::Endpoint,
}

fn pair(shm: &M) -> Pair<'_> {
    SessionWord::at(REMOTE_WORD).begin(shm, 7).unwrap();
    let (_, rings) = master_rings(shm, 1);
    let m_bell = Fifo::default();
    let master: Master<'_> = Link::new(rings, m_bell.clone());
    let (_, rings) = remote_rings(shm);
    let remote: Remote<'_> = Link::new(rings, Fifo::default());
    let mep = master.create_endpoint(1024, RxMode::Queue).unwrap();
    let rep = remote.create_endpoint(40, RxMode::Queue).unwrap();
    Pair {
        master,
        remote,
        m_bell,
        mep,
        rep,
    }
}

/// Ticks `n` times, returning the sum of what `tick` reported.
fn tick_n(tick: impl Fn() -> Result<u32, Error>, n: u32) -> u32 {
    (0..n).map(|_| tick().unwrap()).sum()
}

#[test]
fn default_bound_is_documented_value() {
    let mut b = Box::new(Backing([0; SIZE]));
    let shm = region(&mut b);
    let p = pair(&shm);
    assert_eq!(p.master.unresponsive_after(), DEFAULT_UNRESPONSIVE_TICKS);
    p.master.set_unresponsive_after(7).unwrap();
    assert_eq!(p.master.unresponsive_after(), 7);
}

/// The master fills every transmit buffer of a remote that stopped reading:
/// after the bound the peer counts as unresponsive, once; when the remote
/// reads again the watch re-arms, and a second stop counts again.
#[test]
fn master_counts_a_remote_that_keeps_its_buffers_once_per_episode() {
    let mut b = Box::new(Backing([0; SIZE]));
    let shm = region(&mut b);
    let p = pair(&shm);
    p.master.set_unresponsive_after(5).unwrap();
    let mut sent = 0u32;
    while p.master.try_send(&p.mep, 40, &sent.to_le_bytes()).is_ok() {
        sent += 1;
    }
    assert_eq!(sent, NUM as u32, "one message per transmit buffer");
    assert_eq!(tick_n(|| p.master.tick(), 4), 0, "within the bound");
    assert_eq!(p.master.tick(), Ok(1), "the bound is reached");
    assert_eq!(tick_n(|| p.master.tick(), 50), 0, "one episode counts once");
    assert_eq!(p.master.stats().peer_unresponsive, 1);

    // The remote reads again: every message arrives, in order.
    let mut buf = [0u8; 8];
    for k in 0..sent {
        let r = p.remote.try_recv(&p.rep, &mut buf).unwrap();
        assert_eq!(&buf[..r.len], &k.to_le_bytes());
    }
    // The buffers came back: the watch re-arms without a send.
    assert_eq!(tick_n(|| p.master.tick(), 50), 0);
    p.master.try_send(&p.mep, 40, b"again").unwrap();
    // Stops again: a new episode.
    while p.master.try_send(&p.mep, 40, b"x").is_ok() {}
    assert_eq!(tick_n(|| p.master.tick(), 5), 1);
    assert_eq!(p.master.stats().peer_unresponsive, 2);
}

/// The remote finds no receive buffer of a master that stopped reading.
#[test]
fn remote_counts_a_master_that_posts_no_buffers() {
    let mut b = Box::new(Backing([0; SIZE]));
    let shm = region(&mut b);
    let p = pair(&shm);
    p.remote.set_unresponsive_after(3).unwrap();
    let mut sent = 0u32;
    while p.remote.try_send(&p.rep, 1024, &sent.to_le_bytes()).is_ok() {
        sent += 1;
    }
    assert_eq!(sent, NUM as u32);
    assert_eq!(tick_n(|| p.remote.tick(), 2), 0);
    assert_eq!(tick_n(|| p.remote.tick(), 10), 1);
    // The master drains; its buffers are posted again and the remote can
    // send without another count.
    let mut buf = [0u8; 8];
    for k in 0..sent {
        let r = p.master.try_recv(&p.mep, &mut buf).unwrap();
        assert_eq!(&buf[..r.len], &k.to_le_bytes());
    }
    assert_eq!(tick_n(|| p.remote.tick(), 10), 0);
    p.remote.try_send(&p.rep, 1024, b"more").unwrap();
    assert_eq!(p.remote.stats().peer_unresponsive, 1);
}

/// A mailbox FIFO that stays full: the doorbell stays pending (the message
/// itself is in the ring and is delivered to a polling peer), the peer is
/// counted unresponsive once, and the doorbell is rung when the FIFO drains.
#[test]
fn a_full_mailbox_is_counted_and_the_doorbell_is_kept() {
    let mut b = Box::new(Backing([0; SIZE]));
    let shm = region(&mut b);
    let p = pair(&shm);
    p.master.set_unresponsive_after(4).unwrap();
    p.m_bell.full.set(true);
    assert!(!p.master.owes_doorbell());
    p.master.try_send(&p.mep, 40, b"hello").unwrap();
    assert_eq!(p.m_bell.rung.get(), 0);
    assert!(p.master.owes_doorbell(), "the idle loop must not sleep now");
    assert_eq!(tick_n(|| p.master.tick(), 3), 0);
    assert_eq!(tick_n(|| p.master.tick(), 20), 1);
    assert!(p.master.stats().notifications_deferred >= 20);
    let mut buf = [0u8; 8];
    let r = p.remote.try_recv(&p.rep, &mut buf).unwrap();
    assert_eq!(&buf[..r.len], b"hello");
    // The FIFO drains: the next tick rings the kept doorbell and re-arms.
    p.m_bell.full.set(false);
    assert_eq!(p.master.tick(), Ok(0));
    assert_eq!(p.m_bell.rung.get(), 1, "the doorbell was kept, rung once");
    assert!(!p.master.owes_doorbell());
    p.m_bell.full.set(true);
    p.master.try_send(&p.mep, 40, b"again").unwrap();
    assert_eq!(tick_n(|| p.master.tick(), 4), 1, "a new episode");
    assert_eq!(p.master.stats().peer_unresponsive, 2);
}

/// Bound 0: the link never gives up (the application watches on its own).
#[test]
fn bound_zero_never_counts() {
    let mut b = Box::new(Backing([0; SIZE]));
    let shm = region(&mut b);
    let p = pair(&shm);
    p.master.set_unresponsive_after(0).unwrap();
    p.m_bell.full.set(true);
    while p.master.try_send(&p.mep, 40, b"x").is_ok() {}
    assert_eq!(tick_n(|| p.master.tick(), 10_000), 0);
    assert_eq!(p.master.stats().peer_unresponsive, 0);
}

/// A peer that returns the buffers before the bound is not counted, even
/// when nobody sends again (the watch looks for returned buffers itself).
#[test]
fn buffers_back_within_the_bound_are_not_counted() {
    let mut b = Box::new(Backing([0; SIZE]));
    let shm = region(&mut b);
    let p = pair(&shm);
    p.master.set_unresponsive_after(5).unwrap();
    while p.master.try_send(&p.mep, 40, b"x").is_ok() {}
    assert_eq!(tick_n(|| p.master.tick(), 4), 0);
    let mut buf = [0u8; 8];
    while p.remote.try_recv(&p.rep, &mut buf).is_ok() {}
    assert_eq!(tick_n(|| p.master.tick(), 100), 0);
    assert_eq!(p.master.stats().peer_unresponsive, 0);
}
