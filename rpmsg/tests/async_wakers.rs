//! Several tasks on one link: two receiving on their own endpoints and one
//! sending, on a minimal single-threaded executor that counts polls. Tasks
//! must not wake each other in a loop (the polls per message are bounded)
//! and no wake-up may be lost (a pending task with nothing left to wake it
//! is a deadlock, reported).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failure is a test failure"
)]

use core::future::Future;
use core::pin::Pin;
use core::ptr::NonNull;
use core::task::{Context, Waker};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Wake;

use ipc_traits::cache::Coherent;
use ipc_traits::mailbox::{ErrorType, Notify, QueueId};
use ipc_traits::shm::RawRegion;
use rpmsg::asynch::{AsyncLink, LinkWakers};
use rpmsg::link::{Error, Link, RxMode};
use rpmsg::rings::{MasterConfig, MasterRings, QueueIds, RemoteConfig, RemoteRings};
use rpmsg::wire::ADDR_ANY;
use vring::{BufferArea, Layout, Legacy, Suppression};

const NUM: usize = 4;
const BUF: usize = 512;
const V1: usize = 512;
const POOL: usize = 1024;
const SIZE: usize = POOL + 2 * NUM * BUF;

/// The master's doorbell as the remote rings it: the master's interrupt
/// handler wakes the master's tasks.
#[derive(Clone, Copy)]
struct Bell<'a>(&'a LinkWakers<3>);
impl ErrorType for Bell<'_> {
    type Error = core::convert::Infallible;
}
impl Notify for Bell<'_> {
    fn notify(&mut self, _: QueueId) -> Result<(), Self::Error> {
        self.0.wake();
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
    let wakers = LinkWakers::<3>::new();
    // SAFETY: the pool belongs to the master link.
    let master = Link::<_, _, 3, 2, 2>::new(
        unsafe { MasterRings::<_, Legacy, NUM>::new(&shm, mc) }.unwrap(),
        Quiet,
    );
    // SAFETY: the pool halves, reached only through the rings.
    let remote = Link::<_, _, 2, 8, 2>::new(
        unsafe { RemoteRings::<_, Legacy, NUM>::new(&shm, rc) }.unwrap(),
        Bell(&wakers),
    );
    let a = master.create_endpoint(ADDR_ANY, RxMode::Queue).unwrap();
    let b = master.create_endpoint(ADDR_ANY, RxMode::Queue).unwrap();
    let s = master.create_endpoint(ADDR_ANY, RxMode::Queue).unwrap();
    let rep = remote.create_endpoint(40, RxMode::Queue).unwrap();
    let io = AsyncLink::new(&master, &wakers);

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
        while let Ok(r) = remote.try_recv(&rep, &mut out) {
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
            match remote.try_send(&rep, dst, &seq.to_le_bytes()) {
                Ok(()) => {
                    *seq += 1;
                    next = None;
                    did = true;
                }
                Err(Error::WouldBlock) => break,
                Err(e) => panic!("remote send: {e}"),
            }
        }
        did
    };

    let receiver = |ep| {
        let io = &io;
        async move {
            let mut buf = [0u8; 16];
            for n in 0..EACH {
                let r = io.recv(ep, &mut buf).await.unwrap();
                assert_eq!(&buf[..r.len], &n.to_le_bytes(), "receiver in order");
            }
        }
    };
    let sender = async {
        for n in 0..EACH {
            io.send(&s, 40, &n.to_le_bytes()).await.unwrap();
        }
    };
    let tasks: Vec<Task<'_>> = vec![
        Box::pin(receiver(&a)),
        Box::pin(receiver(&b)),
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
            remote.try_send(&rep, dst, b"end").unwrap();
        }
        true
    };
    let last = |ep, n| {
        let io = &io;
        async move {
            let mut buf = [0u8; 16];
            for _ in 0..n {
                let r = io.recv(ep, &mut buf).await.unwrap();
                assert_eq!(&buf[..r.len], b"end");
            }
        }
    };
    let tasks: Vec<Task<'_>> = vec![Box::pin(last(&b, 1)), Box::pin(last(&a, 3))];
    run(tasks, last_peer, 16);

    let st = master.stats();
    assert_eq!(st.messages_received, 2 * EACH + 4);
    // The run went through the cases that matter: the sender waited for
    // buffers, and a full queue stopped reception for the other receiver.
    assert!(st.tx_buffer_waits > 0 && st.rx_queue_stalls > 0, "{st:?}");
}
