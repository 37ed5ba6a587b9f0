//! Liveness of the virtio roles: a peer that keeps its buffers or a
//! mailbox that stays full is counted unresponsive by the watchdog layer
//! (`link::watch::Watchdog::tick` on the transmit half) within a
//! configurable bound, once per episode, and nothing is dropped meanwhile.
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
use rpmsg::link::watch::{Watchdog, DEFAULT_UNRESPONSIVE_TICKS};
use rpmsg::link::{Link, Rx, Sent, Storage, Tx};
use rpmsg::rings::{MasterRings, RemoteRings};
use rpmsg::session::SessionWord;
use vring::Legacy;

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

type MR<'m> = MasterRings<'m, M, Legacy, NUM>;
type RR<'m> = RemoteRings<'m, M, Legacy, NUM>;

/// A master and a remote over one region, each with its own doorbell, and
/// an endpoint on each side (remote 40, master 1024), split into halves.
struct Pair<'l, 'm> {
    mtx: Tx<'l, 'm, MR<'m>, Fifo>,
    mrx: Rx<'l, 'm, MR<'m>, Fifo>,
    rtx: Tx<'l, 'm, RR<'m>, Fifo>,
    rrx: Rx<'l, 'm, RR<'m>, Fifo>,
    m_bell: Fifo,
    mep: rpmsg::link::Endpoint,
    rep: rpmsg::link::Endpoint,
}

/// The links of a [`Pair`] (they outlive its halves).
struct Links<'m> {
    master: common::Master<'m, Fifo>,
    remote: common::Remote<'m, Fifo>,
    m_bell: Fifo,
}

fn links<'m>(shm: &'m M, ms: &'m mut Storage<1>, rs: &'m mut Storage<1>) -> Links<'m> {
    SessionWord::at(REMOTE_WORD).begin(shm, 7).unwrap();
    let (_, rings) = master_rings(shm, 1);
    let m_bell = Fifo::default();
    let master = Link::new(rings, m_bell.clone(), ms);
    let (_, rings) = remote_rings(shm);
    let remote = Link::new(rings, Fifo::default(), rs);
    Links {
        master,
        remote,
        m_bell,
    }
}

fn pair<'l, 'm>(l: &'l mut Links<'m>) -> Pair<'l, 'm> {
    let mep = l.master.bind(1024).unwrap();
    let rep = l.remote.bind(40).unwrap();
    let (mtx, mrx) = l.master.split();
    let (rtx, rrx) = l.remote.split();
    Pair {
        mtx,
        mrx,
        rtx,
        rrx,
        m_bell: l.m_bell.clone(),
        mep,
        rep,
    }
}

/// Ticks `n` times, returning how many ticks found the peer unresponsive.
fn tick_n<'m, R: rpmsg::rings::Halves<'m>>(
    dog: &mut Watchdog,
    tx: &mut Tx<'_, 'm, R, Fifo>,
    n: u32,
) -> u32 {
    (0..n).map(|_| u32::from(dog.tick(tx))).sum()
}

/// Sends `data` from the master until no transmit buffer is free; returns
/// how many went out.
macro_rules! fill {
    ($tx:expr, $ep:expr, $dst:expr, $data:expr) => {{
        let mut sent = 0u32;
        while $tx.try_send($ep, $dst, $data(sent).as_slice()).unwrap() == Sent::Sent {
            sent += 1;
        }
        sent
    }};
}

fn le(k: u32) -> Vec<u8> {
    k.to_le_bytes().to_vec()
}

#[test]
fn default_bound_is_documented_value() {
    assert_eq!(Watchdog::default().after(), DEFAULT_UNRESPONSIVE_TICKS);
    assert_eq!(DEFAULT_UNRESPONSIVE_TICKS, 1000);
    assert_eq!(Watchdog::new(7).after(), 7);
}

/// The master fills every transmit buffer of a remote that stopped reading:
/// after the bound the peer counts as unresponsive, once; when the remote
/// reads again the watch re-arms, and a second stop counts again.
#[test]
fn master_counts_a_remote_that_keeps_its_buffers_once_per_episode() {
    let mut b = Box::new(Backing([0; SIZE]));
    let shm = region(&mut b);
    let (mut ms, mut rs) = (Storage::new(), Storage::new());
    let mut l = links(&shm, &mut ms, &mut rs);
    let mut p = pair(&mut l);
    let mut dog = Watchdog::new(5);
    assert_eq!(
        tick_n(&mut dog, &mut p.mtx, 10),
        0,
        "sending freely is no silence"
    );
    let sent = fill!(p.mtx, &p.mep, 40, le);
    assert_eq!(sent, NUM as u32, "one message per transmit buffer");
    assert_eq!(tick_n(&mut dog, &mut p.mtx, 4), 0, "within the bound");
    assert!(dog.tick(&mut p.mtx), "the bound is reached");
    assert_eq!(
        tick_n(&mut dog, &mut p.mtx, 50),
        0,
        "one episode counts once"
    );
    assert_eq!(dog.unresponsive(), 1);

    // The remote reads again: every message arrives, in order.
    let mut buf = [0u8; 8];
    for k in 0..sent {
        let r = p.rrx.try_recv(&mut buf).unwrap().unwrap();
        assert_eq!(&buf[..r.len], &k.to_le_bytes());
    }
    // The buffers came back: the watch re-arms without a send.
    assert_eq!(tick_n(&mut dog, &mut p.mtx, 50), 0);
    assert_eq!(p.mtx.try_send(&p.mep, 40, b"again"), Ok(Sent::Sent));
    // Stops again: a new episode.
    fill!(p.mtx, &p.mep, 40, |_| b"x".to_vec());
    assert_eq!(tick_n(&mut dog, &mut p.mtx, 5), 1);
    assert_eq!(dog.unresponsive(), 2);
}

/// The remote finds no receive buffer of a master that stopped reading.
#[test]
fn remote_counts_a_master_that_posts_no_buffers() {
    let mut b = Box::new(Backing([0; SIZE]));
    let shm = region(&mut b);
    let (mut ms, mut rs) = (Storage::new(), Storage::new());
    let mut l = links(&shm, &mut ms, &mut rs);
    let mut p = pair(&mut l);
    let mut dog = Watchdog::new(3);
    let sent = fill!(p.rtx, &p.rep, 1024, le);
    assert_eq!(sent, NUM as u32);
    assert_eq!(tick_n(&mut dog, &mut p.rtx, 2), 0);
    assert_eq!(tick_n(&mut dog, &mut p.rtx, 10), 1);
    // The master drains; its buffers are posted again and the remote can
    // send without another count.
    let mut buf = [0u8; 8];
    for k in 0..sent {
        let r = p.mrx.try_recv(&mut buf).unwrap().unwrap();
        assert_eq!(&buf[..r.len], &k.to_le_bytes());
    }
    assert_eq!(tick_n(&mut dog, &mut p.rtx, 10), 0);
    assert_eq!(p.rtx.try_send(&p.rep, 1024, b"more"), Ok(Sent::Sent));
    assert_eq!(dog.unresponsive(), 1);
}

/// A mailbox FIFO that stays full: the doorbell stays owed (the message
/// itself is in the ring and is delivered to a polling peer), the peer is
/// counted unresponsive once, and the doorbell is rung when the FIFO drains.
#[test]
fn a_full_mailbox_is_counted_and_the_doorbell_is_kept() {
    let mut b = Box::new(Backing([0; SIZE]));
    let shm = region(&mut b);
    let (mut ms, mut rs) = (Storage::new(), Storage::new());
    let mut l = links(&shm, &mut ms, &mut rs);
    let mut p = pair(&mut l);
    let mut dog = Watchdog::new(4);
    p.m_bell.full.set(true);
    assert!(!p.mtx.owes_doorbell());
    assert_eq!(p.mtx.try_send(&p.mep, 40, b"hello"), Ok(Sent::Sent));
    assert_eq!(p.m_bell.rung.get(), 0);
    assert!(p.mtx.owes_doorbell(), "the idle loop must not sleep now");
    assert!(p.mrx.owes_doorbell(), "either half sees it");
    assert_eq!(tick_n(&mut dog, &mut p.mtx, 3), 0);
    assert_eq!(tick_n(&mut dog, &mut p.mtx, 20), 1);
    assert!(p.mtx.stats().doorbells_deferred >= 20);
    let mut buf = [0u8; 8];
    let r = p.rrx.try_recv(&mut buf).unwrap().unwrap();
    assert_eq!(&buf[..r.len], b"hello");
    // The FIFO drains: the next tick rings the kept doorbell and re-arms.
    p.m_bell.full.set(false);
    assert!(!dog.tick(&mut p.mtx));
    assert_eq!(p.m_bell.rung.get(), 1, "the doorbell was kept, rung once");
    assert!(!p.mtx.owes_doorbell());
    p.m_bell.full.set(true);
    assert_eq!(p.mtx.try_send(&p.mep, 40, b"again"), Ok(Sent::Sent));
    assert_eq!(tick_n(&mut dog, &mut p.mtx, 4), 1, "a new episode");
    assert_eq!(dog.unresponsive(), 2);
}

/// Bound 0: the watch never gives up (the application watches on its own).
#[test]
fn bound_zero_never_counts() {
    let mut b = Box::new(Backing([0; SIZE]));
    let shm = region(&mut b);
    let (mut ms, mut rs) = (Storage::new(), Storage::new());
    let mut l = links(&shm, &mut ms, &mut rs);
    let mut p = pair(&mut l);
    let mut dog = Watchdog::new(0);
    p.m_bell.full.set(true);
    fill!(p.mtx, &p.mep, 40, |_| b"x".to_vec());
    assert_eq!(tick_n(&mut dog, &mut p.mtx, 10_000), 0);
    assert_eq!(dog.unresponsive(), 0);
}

/// A peer that returns the buffers before the bound is not counted, even
/// when nobody sends again (the watch looks for returned buffers itself).
#[test]
fn buffers_back_within_the_bound_are_not_counted() {
    let mut b = Box::new(Backing([0; SIZE]));
    let shm = region(&mut b);
    let (mut ms, mut rs) = (Storage::new(), Storage::new());
    let mut l = links(&shm, &mut ms, &mut rs);
    let mut p = pair(&mut l);
    let mut dog = Watchdog::new(5);
    fill!(p.mtx, &p.mep, 40, |_| b"x".to_vec());
    assert_eq!(tick_n(&mut dog, &mut p.mtx, 4), 0);
    let mut buf = [0u8; 8];
    while p.rrx.try_recv(&mut buf).unwrap().is_some() {}
    assert_eq!(tick_n(&mut dog, &mut p.mtx, 100), 0);
    assert_eq!(dog.unresponsive(), 0);
}
