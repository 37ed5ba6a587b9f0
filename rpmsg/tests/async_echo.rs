//! The async front end driven by a minimal executor: the master awaits
//! `send`/`recv` while a remote on another thread echoes; the remote's
//! doorbell wakes the master's task through its `LinkWakers`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failure is a test failure"
)]

use core::future::Future;
use core::pin::pin;
use core::ptr::NonNull;
use core::task::{Context, Poll, Waker};
use std::sync::Arc;
use std::task::Wake;
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use ipc_traits::cache::Coherent;
use ipc_traits::mailbox::{ErrorType, Notify, QueueId};
use ipc_traits::shm::RawRegion;
use rpmsg::asynch::{AsyncLink, LinkWakers};
use rpmsg::link::{Link, RxMode};
use rpmsg::rings::{MasterConfig, MasterRings, QueueIds, RemoteConfig, RemoteRings};
use rpmsg::wire::ADDR_ANY;
use vring::{BufferArea, Layout, Legacy, Suppression};

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

/// A doorbell that wakes the peer's task.
#[derive(Clone, Copy)]
struct Bell(&'static LinkWakers<2>);
impl ErrorType for Bell {
    type Error = core::convert::Infallible;
}
impl Notify for Bell {
    fn notify(&mut self, _: QueueId) -> Result<(), Self::Error> {
        self.0.wake();
        Ok(())
    }
}

static MASTER_WAKERS: LinkWakers<2> = LinkWakers::new();
static REMOTE_WAKERS: LinkWakers<2> = LinkWakers::new();

#[repr(align(4096))]
struct Backing([u8; SIZE]);

#[test]
fn async_echo_with_a_minimal_executor() {
    let backing: &'static mut Backing = Box::leak(Box::new(Backing([0; SIZE])));
    let base = NonNull::new(backing.0.as_mut_ptr()).unwrap();
    // SAFETY: leaked, so it lives for the whole test; only these regions use
    // it, and the protocol gives each side exclusive slots.
    let shm_m = unsafe { RawRegion::new(base, SIZE, 0x4000_0000, Coherent) }.unwrap();
    // SAFETY: as above (the remote's view of the same memory).
    let shm_r = unsafe { RawRegion::new(base, SIZE, 0x4000_0000, Coherent) }.unwrap();
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
    // SAFETY: the pool belongs to the master.
    let master = Link::<_, _, 2, 4, 2>::new(
        unsafe { MasterRings::<_, Legacy, NUM>::new(&shm_m, mc) }.unwrap(),
        Bell(&REMOTE_WAKERS),
    );
    let count = if cfg!(miri) { 20 } else { 2_000u32 };
    let remote = thread::spawn(move || {
        let rc = RemoteConfig {
            vring0: v0,
            vring1: v1,
            vring0_buffers: BufferArea::new(POOL, NUM * BUF),
            vring1_buffers: BufferArea::new(POOL + NUM * BUF, NUM * BUF),
            suppression: Suppression::Flags,
            queues: QueueIds::DEFAULT,
        };
        // SAFETY: disjoint areas reached only through the rings.
        let link = Link::<_, _, 2, 4, 2>::new(
            unsafe { RemoteRings::<_, Legacy, NUM>::new(&shm_r, rc) }.unwrap(),
            Bell(&MASTER_WAKERS),
        );
        let ep = link.create_endpoint(40, RxMode::Queue).unwrap();
        let io = AsyncLink::new(&link, &REMOTE_WAKERS);
        block_on(async {
            let mut buf = [0u8; 496];
            for _ in 0..count {
                let r = io.recv(&ep, &mut buf).await.unwrap();
                io.send(&ep, r.src, &buf[..r.len]).await.unwrap();
            }
        });
    });
    let ep = master.create_endpoint(ADDR_ANY, RxMode::Queue).unwrap();
    let io = AsyncLink::new(&master, &MASTER_WAKERS);
    block_on(async {
        let mut buf = [0u8; 496];
        for i in 0..count {
            let msg = i.to_le_bytes();
            io.send(&ep, 40, &msg[..(i as usize % 4) + 1])
                .await
                .unwrap();
            let r = io.recv(&ep, &mut buf).await.unwrap();
            assert_eq!(&buf[..r.len], &msg[..(i as usize % 4) + 1], "echo {i}");
        }
    });
    remote.join().unwrap();
    assert_eq!(master.stats().messages_received, count);
}
