//! The async face of the halves ([`rpmsg::link::asynch`]) driven by a
//! minimal executor: each side's doorbell wakes the other side's tasks.
#![cfg(feature = "async")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failure is a test failure"
)]

use core::future::{poll_fn, Future};
use core::pin::pin;
use core::ptr::NonNull;
use core::task::{Context, Poll, Waker};
use std::sync::{Arc, Mutex};
use std::task::Wake;
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use ipc_traits::cache::Coherent;
use ipc_traits::mailbox::{ErrorType, Notify, QueueId};
use ipc_traits::shm::RawRegion;
use rpmsg::link::asynch::{EndpointWakers, HalfWakers};
use rpmsg::link::queues::{Endpoints, Queues};
use rpmsg::link::{Endpoint, Link, Storage};
use rpmsg::rings::{Halves, MasterConfig, MasterRings, QueueIds, RemoteConfig, RemoteRings};
use rpmsg::wire::ADDR_ANY;
use vring::{BufferArea, Layout, Legacy, Suppression};

/// Ring tables for the test's life.
fn remote_tables<const N: usize>() -> &'static rpmsg::rings::RemoteTables<N> {
    Box::leak(Box::default())
}

const NUM: usize = 8;
const BUF: usize = 512;
const V1: usize = 512;
const POOL: usize = 1024;
const SIZE: usize = POOL + 2 * NUM * BUF;

struct ThreadWaker(Thread);
impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// The smallest executor: poll, park until woken (bounded), repeat.
fn block_on<F: Future>(f: F) -> F::Output {
    let waker = Waker::from(Arc::new(ThreadWaker(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = pin!(f);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        assert!(Instant::now() < deadline, "future never completed");
        thread::park_timeout(Duration::from_millis(50));
    }
}

/// A doorbell that runs the peer's interrupt handler (wakes its tasks).
#[derive(Clone, Copy)]
struct Bell(fn());
impl ErrorType for Bell {
    type Error = core::convert::Infallible;
}
impl Notify for Bell {
    fn notify(&mut self, _: QueueId) -> Result<(), Self::Error> {
        (self.0)();
        Ok(())
    }
}

#[repr(align(4096))]
struct Backing([u8; SIZE]);

fn regions() -> (RawRegion<Coherent>, RawRegion<Coherent>) {
    let backing: &'static mut Backing = Box::leak(Box::new(Backing([0; SIZE])));
    let base = NonNull::new(backing.0.as_mut_ptr()).unwrap();
    // SAFETY: leaked, so it lives for the whole test; only these regions
    // use it, and the protocol gives each side exclusive slots.
    let m = unsafe { RawRegion::new(base, SIZE, 0x4000_0000, Coherent) }.unwrap();
    // SAFETY: as above (the remote's view of the same memory).
    let r = unsafe { RawRegion::new(base, SIZE, 0x4000_0000, Coherent) }.unwrap();
    (m, r)
}

fn layouts() -> (Layout, Layout) {
    (
        Layout::legacy_at(0, NUM as u16, 64),
        Layout::legacy_at(V1, NUM as u16, 64),
    )
}

fn master_rings(shm: &RawRegion<Coherent>) -> MasterRings<'_, RawRegion<Coherent>, Legacy, NUM> {
    let (vring0, vring1) = layouts();
    let mc = MasterConfig {
        vring0,
        vring1,
        pool: POOL,
        buf_size: BUF,
        suppression: Suppression::Flags,
        queues: QueueIds::DEFAULT,
        rpmsg_lite_compat: false,
    };
    // SAFETY: the pool belongs to the master.
    unsafe { MasterRings::new(shm, mc) }.unwrap()
}

fn remote_rings(shm: &RawRegion<Coherent>) -> RemoteRings<'_, RawRegion<Coherent>, Legacy, NUM> {
    let (vring0, vring1) = layouts();
    let rc = RemoteConfig {
        vring0,
        vring1,
        vring0_buffers: BufferArea::new(POOL, NUM * BUF),
        vring1_buffers: BufferArea::new(POOL + NUM * BUF, NUM * BUF),
        suppression: Suppression::Flags,
        queues: QueueIds::DEFAULT,
    };
    // SAFETY: disjoint areas reached only through the rings.
    unsafe { RemoteRings::new(shm, rc, remote_tables()) }.unwrap()
}

static ECHO_MASTER: HalfWakers = HalfWakers::new();
static ECHO_REMOTE: HalfWakers = HalfWakers::new();

/// An echo through the halves' futures: the remote's receive and transmit
/// halves each in its own task (thread), the master's send and receive in
/// one; every message comes back once, in order.
#[test]
fn async_echo_with_a_minimal_executor() {
    let (shm_m, shm_r) = regions();
    let count = if cfg!(miri) { 20 } else { 2_000u32 };
    let mut ms = Storage::<1>::new();
    let mut master = Link::new(master_rings(&shm_m), Bell(|| ECHO_REMOTE.wake()), &mut ms);
    let remote = thread::spawn(move || {
        let mut rs = Storage::<1>::new();
        let mut link = Link::new(remote_rings(&shm_r), Bell(|| ECHO_MASTER.wake()), &mut rs);
        let ep = link.bind(40).unwrap();
        let (mut tx, mut rx) = link.split();
        // The receive task hands messages to the transmit task.
        let chan = Mutex::new(std::collections::VecDeque::<(u32, Vec<u8>)>::new());
        thread::scope(|s| {
            s.spawn(|| {
                block_on(async {
                    let mut buf = [0u8; 496];
                    for k in 0..count {
                        // Every other message lent, not copied.
                        let (src, bytes) = if k % 2 == 0 {
                            let r = rx.recv(&ECHO_REMOTE, &mut buf).await.unwrap();
                            (r.src, buf[..r.len].to_vec())
                        } else {
                            let held = rx.recv_held(&ECHO_REMOTE).await.unwrap();
                            let mut v = vec![0u8; held.len()];
                            held.read(0, &mut v).unwrap();
                            (held.src(), v)
                        };
                        chan.lock().unwrap().push_back((src, bytes));
                    }
                });
            });
            block_on(async {
                let mut sent = 0;
                while sent < count {
                    let next = chan.lock().unwrap().pop_front();
                    match next {
                        Some((src, bytes)) => {
                            tx.send(&ECHO_REMOTE, &ep, src, &bytes).await.unwrap();
                            sent += 1;
                        }
                        None => thread::yield_now(),
                    }
                }
            });
        });
    });
    let ep = master.bind(ADDR_ANY).unwrap();
    let (mut tx, mut rx) = master.split();
    block_on(async {
        let mut buf = [0u8; 496];
        for i in 0..count {
            let msg = i.to_le_bytes();
            let n = (i as usize % 4) + 1;
            tx.send(&ECHO_MASTER, &ep, 40, &msg[..n]).await.unwrap();
            let r = rx.recv(&ECHO_MASTER, &mut buf).await.unwrap();
            assert_eq!(&buf[..r.len], &msg[..n], "echo {i}");
        }
    });
    remote.join().unwrap();
    assert_eq!(master.rx_stats().messages, count);
}

/// One task of the queue test: awaits `per_ep` messages for `ep`, locking
/// the shared layer for one poll at a time.
fn endpoint_task<'a, R: Halves<'a>, N: Notify>(
    shared: &Mutex<Endpoints<'_, 'a, R, N>>,
    ep: &Endpoint,
    tag: u8,
    per_ep: u32,
) {
    block_on(async {
        let mut buf = [0u8; 8];
        for k in 0..per_ep {
            let r = poll_fn(|cx| {
                shared
                    .lock()
                    .unwrap()
                    .poll_recv(&Q_REMOTE, ep, &mut buf, cx)
            })
            .await
            .unwrap();
            assert_eq!(&buf[..r.len], &[tag, k as u8, (k >> 8) as u8], "{k}");
        }
    });
}

static Q_MASTER: HalfWakers = HalfWakers::new();
static Q_REMOTE: EndpointWakers<2> = EndpointWakers::new();

/// The queue layer's futures: two tasks (threads) share one
/// [`Endpoints`] under a mutex, locked for one poll at a time; each
/// awaits its own endpoint's messages, which arrive interleaved.
#[test]
fn endpoint_tasks_await_their_own_messages() {
    let (shm_m, shm_r) = regions();
    let per_ep = if cfg!(miri) { 10 } else { 1_000u32 };
    let mut ms = Storage::<1>::new();
    let mut master = Link::new(master_rings(&shm_m), Bell(|| Q_REMOTE.wake()), &mut ms);
    let remote = thread::spawn(move || {
        let mut rs = Storage::<2>::new();
        let mut link = Link::new(remote_rings(&shm_r), Bell(|| Q_MASTER.wake()), &mut rs);
        let (a, b) = (link.bind(30).unwrap(), link.bind(31).unwrap());
        let (_tx, rx) = link.split();
        let mut queues = Queues::<'_, RawRegion<Coherent>, 2, 2>::new();
        let shared = Mutex::new(Endpoints::new(rx, &mut queues).unwrap());
        thread::scope(|s| {
            s.spawn(|| endpoint_task(&shared, &a, b'a', per_ep));
            s.spawn(|| endpoint_task(&shared, &b, b'b', per_ep));
        });
        let g = shared.lock().unwrap();
        (g.rx_stats().messages, g.stats().stalls)
    });
    let ep = master.bind(ADDR_ANY).unwrap();
    let (mut tx, _) = master.split();
    block_on(async {
        for k in 0..per_ep {
            for (dst, tag) in [(30, b'a'), (31, b'b')] {
                // Bursts to one endpoint now and then, so queues fill.
                let msg = [tag, k as u8, (k >> 8) as u8];
                tx.send(&Q_MASTER, &ep, dst, &msg).await.unwrap();
            }
        }
    });
    let (messages, _stalls) = remote.join().unwrap();
    assert_eq!(messages, 2 * per_ep);
}

/// Counts its wakes.
#[derive(Default)]
struct Counter(std::sync::atomic::AtomicU32);
impl Wake for Counter {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}
impl Counter {
    fn get(&self) -> u32 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

static POLL_REMOTE: HalfWakers = HalfWakers::new();
static POLL_EPS: EndpointWakers<2> = EndpointWakers::new();

/// Polled by hand: a pending receive registers its waker; the peer's
/// doorbell wakes exactly it; the next poll is ready. In the queue layer a
/// poll of one endpoint that queues a message for another wakes that
/// endpoint's task.
#[test]
fn a_pending_receive_is_woken_by_the_doorbell_and_queued_messages_wake_their_task() {
    let (shm_m, shm_r) = regions();
    let mut ms = Storage::<1>::new();
    let mut master = Link::new(
        master_rings(&shm_m),
        // The doorbell runs only the half's wakers: the endpoint wakers
        // can be woken only by the queue layer itself.
        Bell(|| POLL_REMOTE.wake()),
        &mut ms,
    );
    let mut rs = Storage::<2>::new();
    let mut remote = Link::new(remote_rings(&shm_r), Bell(|| {}), &mut rs);
    let (a, b) = (remote.bind(30).unwrap(), remote.bind(31).unwrap());
    let mep = master.bind(ADDR_ANY).unwrap();
    let (mut mtx, _) = master.split();
    let (_, mut rrx) = remote.split();
    let counter = Arc::new(Counter::default());
    let waker = Waker::from(counter.clone());
    let mut cx = Context::from_waker(&waker);
    let mut buf = [0u8; 8];
    {
        let mut fut = pin!(rrx.recv(&POLL_REMOTE, &mut buf));
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        assert_eq!(counter.get(), 0);
        assert_eq!(mtx.try_send(&mep, 30, b"hi"), Ok(rpmsg::link::Sent::Sent));
        assert_eq!(counter.get(), 1, "the doorbell woke the waiting task");
        let Poll::Ready(r) = fut.as_mut().poll(&mut cx) else {
            panic!("woken, but nothing there");
        };
        assert_eq!(r.unwrap().len, 2);
    }
    // The queue layer: b waits (registered), then a's poll meets b's
    // message first and queues it: b's task is woken.
    let mut queues = Queues::<'_, RawRegion<Coherent>, 2, 2>::new();
    let mut eps = Endpoints::new(rrx, &mut queues).unwrap();
    let b_counter = Arc::new(Counter::default());
    let b_waker = Waker::from(b_counter.clone());
    let mut b_cx = Context::from_waker(&b_waker);
    assert!(eps
        .poll_recv(&POLL_EPS, &b, &mut buf, &mut b_cx)
        .is_pending());
    let quiet = b_counter.get();
    assert_eq!(
        mtx.try_send(&mep, 31, b"for b"),
        Ok(rpmsg::link::Sent::Sent)
    );
    assert_eq!(
        mtx.try_send(&mep, 30, b"for a"),
        Ok(rpmsg::link::Sent::Sent)
    );
    assert_eq!(b_counter.get(), quiet, "no doorbell reaches b's waker");
    let a_counter = Arc::new(Counter::default());
    let a_waker = Waker::from(a_counter);
    let mut a_cx = Context::from_waker(&a_waker);
    let Poll::Ready(r) = eps.poll_recv(&POLL_EPS, &a, &mut buf, &mut a_cx) else {
        panic!("a's message is there");
    };
    assert_eq!(&buf[..r.unwrap().len], b"for a");
    assert_eq!(b_counter.get(), quiet + 1, "a's poll woke b's task");
    let Poll::Ready(r) = eps.poll_recv(&POLL_EPS, &b, &mut buf, &mut b_cx) else {
        panic!("b's message was queued");
    };
    assert_eq!(&buf[..r.unwrap().len], b"for b");
}
