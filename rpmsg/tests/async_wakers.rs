//! Several tasks on one link (`rpmsg::link::asynch`): two receiving on
//! their own endpoints through the queue layer and one sending on the
//! transmit half, on a minimal single-threaded executor that counts polls. Tasks
//! must not wake each other in a loop (the polls per message are bounded)
//! and no wake-up may be lost (a pending task with nothing left to wake it
//! is a deadlock, reported).
#![cfg(feature = "async")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failure is a test failure"
)]

use core::cell::RefCell;
use core::future::{poll_fn, Future};
use core::pin::Pin;
use core::ptr::NonNull;
use core::task::{Context, Waker};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Wake;

use ipc_traits::cache::Coherent;
use ipc_traits::mailbox::{ErrorType, Notify, QueueId};
use ipc_traits::shm::RawRegion;
use rpmsg::link::asynch::{EndpointWakers, HalfWakers};
use rpmsg::link::queues::{Endpoints, Queues};
use rpmsg::link::{Endpoint, Link, Sent, Storage};
use rpmsg::rings::{Halves, MasterConfig, MasterRings, QueueIds, RemoteConfig, RemoteRings};
use rpmsg::wire::ADDR_ANY;
use vring::{BufferArea, Layout, Legacy, Suppression};

/// Ring tables for the test's life.
fn remote_tables<const N: usize>() -> &'static rpmsg::rings::RemoteTables<N> {
    Box::leak(Box::default())
}

const NUM: usize = 4;
const BUF: usize = 512;
const V1: usize = 512;
const POOL: usize = 1024;
const SIZE: usize = POOL + 2 * NUM * BUF;

/// The master's wakers: the transmit half's, and the receiving
/// endpoints' of the queue layer.
struct Wakers {
    half: HalfWakers,
    eps: EndpointWakers<3>,
}

/// The master's doorbell as the remote rings it: the master's interrupt
/// handler wakes the master's tasks (a doorbell does not say for whom).
#[derive(Clone, Copy)]
struct Bell<'a>(&'a Wakers);
impl ErrorType for Bell<'_> {
    type Error = core::convert::Infallible;
}
impl Notify for Bell<'_> {
    fn notify(&mut self, _: QueueId) -> Result<(), Self::Error> {
        self.0.half.wake();
        self.0.eps.wake();
        Ok(())
    }
}

/// A doorbell nobody listens to (the remote polls).
#[derive(Clone, Copy)]
struct Quiet;
impl ErrorType for Quiet {
    type Error = core::convert::Infallible;
}
impl Notify for Quiet {
    fn notify(&mut self, _: QueueId) -> Result<(), Self::Error> {
        Ok(())
    }
}

struct Ready(AtomicBool);
impl Wake for Ready {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::Relaxed);
    }
}

type Task<'a> = Pin<Box<dyn Future<Output = ()> + 'a>>;

/// The smallest executor: polls the tasks that were woken; when none is,
/// lets the other core (`peer`) run one step, as a core asleep until its
/// interrupt would. Returns the number of polls; fails past `max_polls` (a
/// busy loop of wake-ups) or when tasks wait and the peer has nothing left
/// to do (a lost wake-up).
fn run(tasks: Vec<Task<'_>>, mut peer: impl FnMut() -> bool, max_polls: usize) -> usize {
    let flags: Vec<_> = tasks
        .iter()
        .map(|_| Arc::new(Ready(AtomicBool::new(true))))
        .collect();
    let wakers: Vec<Waker> = flags.iter().map(|f| Waker::from(f.clone())).collect();
    let mut tasks: Vec<Option<Task<'_>>> = tasks.into_iter().map(Some).collect();
    let mut polls = 0;
    loop {
        let mut ran = false;
        for (k, task) in tasks.iter_mut().enumerate() {
            let Some(f) = task.as_mut() else { continue };
            if !flags[k].0.swap(false, Ordering::Relaxed) {
                continue;
            }
            ran = true;
            polls += 1;
            assert!(
                polls <= max_polls,
                "busy loop: {polls} polls, the tasks keep waking each other"
            );
            if f.as_mut()
                .poll(&mut Context::from_waker(&wakers[k]))
                .is_ready()
            {
                *task = None;
            }
        }
        if tasks.iter().all(Option::is_none) {
            return polls;
        }
        if !ran {
            assert!(
                peer(),
                "lost wake-up: tasks wait and the peer has nothing left to do"
            );
        }
    }
}

#[repr(align(4096))]
struct Backing([u8; SIZE]);

/// A receiving task: awaits `n` messages for `ep`, borrowing the shared
/// queue layer for one poll at a time; `check` sees the `k`-th.
async fn receive<'a, R: Halves<'a>, N: Notify>(
    eps: &RefCell<Endpoints<'_, 'a, R, N>>,
    wakers: &Wakers,
    ep: &Endpoint,
    n: u32,
    check: fn(u32, &[u8]),
) {
    let mut buf = [0u8; 16];
    for k in 0..n {
        let r = poll_fn(|cx| eps.borrow_mut().poll_recv(&wakers.eps, ep, &mut buf, cx))
            .await
            .unwrap();
        check(k, &buf[..r.len]);
    }
}

#[test]
fn async_two_receivers_and_a_sender() {
    let mut backing = Box::new(Backing([0; SIZE]));
    let base = NonNull::new(backing.0.as_mut_ptr()).unwrap();
    // SAFETY: the backing outlives the region and is only used through it.
    let shm = unsafe { RawRegion::new(base, SIZE, 0x4000_0000, Coherent) }.unwrap();
    let v0 = Layout::legacy_at(0, NUM as u16, 64);
    let v1 = Layout::legacy_at(V1, NUM as u16, 64);
    let mc = MasterConfig {
        vring0: v0,
        vring1: v1,
        pool: POOL,
        buf_size: BUF,
        suppression: Suppression::Flags,
        queues: QueueIds::DEFAULT,
        rpmsg_lite_compat: false,
    };
    let rc = RemoteConfig {
        vring0: v0,
        vring1: v1,
        vring0_buffers: BufferArea::new(POOL, NUM * BUF),
        vring1_buffers: BufferArea::new(POOL + NUM * BUF, NUM * BUF),
        suppression: Suppression::Flags,
        queues: QueueIds::DEFAULT,
    };
    let wakers = Wakers {
        half: HalfWakers::new(),
        eps: EndpointWakers::new(),
    };
    let (mut ms, mut rs) = (Storage::<3>::new(), Storage::<1>::new());
    // SAFETY: the pool belongs to the master link.
    let rings = unsafe { MasterRings::<_, Legacy, NUM>::new(&shm, mc) }.unwrap();
    let mut master = Link::new(rings, Quiet, &mut ms);
    // SAFETY: the pool halves, reached only through the rings.
    let rings = unsafe { RemoteRings::<_, Legacy, NUM>::new(&shm, rc, remote_tables()) }.unwrap();
    let mut remote = Link::new(rings, Bell(&wakers), &mut rs);
    let a = master.bind(ADDR_ANY).unwrap();
    let b = master.bind(ADDR_ANY).unwrap();
    let s = master.bind(ADDR_ANY).unwrap();
    let rep = remote.bind(40).unwrap();
    let (mut tx, rx) = master.split();
    let mut queues: Queues<'_, _, 3, 2> = Queues::new();
    let eps = RefCell::new(Endpoints::new(rx, &mut queues).unwrap());
    let (mut rtx, mut rrx) = remote.split();

    const EACH: u32 = 300;
    // The remote's traffic to the two receivers, in uneven bursts so that
    // one receiver's pass over the ring queues the other's messages and
    // fills its queue (2 slots).
    let pattern = [0u8, 0, 1, 0, 1, 1, 1, 0];
    let mut plan = (0..).map(|n| pattern[n % pattern.len()]);
    let (mut to_a, mut to_b, mut next) = (0u32, 0u32, None);
    let mut got_from_s = 0u32;
    let mut peer = || {
        let mut did = false;
        // Take what the sender sent (this returns its buffers: doorbell).
        let mut out = [0u8; 16];
        while let Some(r) = rrx.try_recv(&mut out).unwrap() {
            assert_eq!(&out[..r.len], &got_from_s.to_le_bytes(), "sender's message");
            got_from_s += 1;
            did = true;
        }
        // A burst of up to 3 messages for the receivers.
        for _ in 0..3 {
            let target = *next.get_or_insert_with(|| plan.next().unwrap());
            let (dst, seq) = match target {
                0 if to_a < EACH => (a.addr(), &mut to_a),
                1 if to_b < EACH => (b.addr(), &mut to_b),
                _ if to_a < EACH || to_b < EACH => {
                    next = None;
                    continue;
                }
                _ => break,
            };
            match rtx.try_send(&rep, dst, &seq.to_le_bytes()).unwrap() {
                Sent::Sent => {
                    *seq += 1;
                    next = None;
                    did = true;
                }
                Sent::NoBuffer => break,
            }
        }
        did
    };

    let in_order: fn(u32, &[u8]) = |k, m| assert_eq!(m, &k.to_le_bytes(), "receiver in order");
    let sender = async {
        for n in 0..EACH {
            tx.send(&wakers.half, &s, 40, &n.to_le_bytes())
                .await
                .unwrap();
        }
    };
    let tasks: Vec<Task<'_>> = vec![
        Box::pin(receive(&eps, &wakers, &a, EACH, in_order)),
        Box::pin(receive(&eps, &wakers, &b, EACH, in_order)),
        Box::pin(sender),
    ];
    let messages = 3 * EACH as usize;
    let polls = run(tasks, &mut peer, 2 * messages);
    // The sender's last messages may still sit in the ring.
    while peer() {}
    assert_eq!((to_a, to_b, got_from_s), (EACH, EACH, EACH));
    println!(
        "{polls} polls for {messages} messages ({:.2} per message)",
        polls as f64 / messages as f64
    );

    // The last burst: three messages for `a` (its queue holds two, so
    // reception stalls on the third) and one for `b` behind them, then
    // nothing more. `b`'s task is polled first and finds nothing (the stall
    // hides its message); `a`'s task drains its queue and its pass over the
    // ring queues `b`'s message: it must wake `b`'s task, no doorbell will.
    let mut burst = Some([a.addr(), a.addr(), a.addr(), b.addr()]);
    let last_peer = || {
        let Some(dsts) = burst.take() else {
            return false;
        };
        for dst in dsts {
            assert_eq!(rtx.try_send(&rep, dst, b"end"), Ok(Sent::Sent));
        }
        true
    };
    let end: fn(u32, &[u8]) = |_, m| assert_eq!(m, b"end");
    let tasks: Vec<Task<'_>> = vec![
        Box::pin(receive(&eps, &wakers, &b, 1, end)),
        Box::pin(receive(&eps, &wakers, &a, 3, end)),
    ];
    run(tasks, last_peer, 16);

    let eps = eps.into_inner();
    assert_eq!(eps.rx_stats().messages, 2 * EACH + 4);
    // The run went through the cases that matter: the sender waited for
    // buffers, and a full queue stopped reception for the other receiver.
    let (waits, stalls) = (tx.stats().buffer_waits, eps.stats().stalls);
    assert!(waits > 0 && stalls > 0, "{waits} {stalls}");
}
