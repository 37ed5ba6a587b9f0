//! Split ownership on one thread: placement errors, an echo over two
//! regions each owned by one side (consumed-buffer notification on and
//! off), wake guards parked with in-flight buffers, and the
//! unresponsive-peer bound.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failure is a test failure"
)]

use std::cell::Cell;
use std::ptr::NonNull;
use std::rc::Rc;

use ipc_traits::cache::Coherent;
use ipc_traits::mailbox::{ErrorType, Notify, QueueId, QueueSet};
use ipc_traits::power::WakeLock;
use ipc_traits::shm::RawRegion;
use rpmsg::link::{Link, RxMode};
use rpmsg::split::{
    Part, PlacementError, Region, Side, SplitConfig, SplitError, SplitLayout, SplitRings,
};
use vring::{Layout, LayoutError, Legacy};

const NUM: usize = 8;
const LINE: usize = 64;
const LAYOUT: SplitLayout = SplitLayout::checked(
    Region::packed(0, NUM as u16, 512, LINE),
    Region::packed(0x2000, NUM as u16, 512, LINE),
    LINE,
);
const SIZE: usize = 0x4000;

/// Doorbells as a shared bit set (the peer reads and clears it).
#[derive(Clone, Default)]
struct Bell(Rc<Cell<u32>>);
impl ErrorType for Bell {
    type Error = core::convert::Infallible;
}
impl Notify for Bell {
    fn notify(&mut self, q: QueueId) -> Result<(), Self::Error> {
        self.0.set(self.0.get() | 1 << q.index());
        Ok(())
    }
}
impl Bell {
    fn take(&self) -> QueueSet {
        QueueSet::from_bits(self.0.replace(0))
    }
}

#[repr(align(4096))]
struct Backing([u8; SIZE]);

fn region() -> RawRegion<Coherent> {
    let backing: &'static mut Backing = Box::leak(Box::new(Backing([0; SIZE])));
    let base = NonNull::new(backing.0.as_mut_ptr()).unwrap();
    // SAFETY: leaked, so it lives for the whole test; only the links of one
    // test use it, and split ownership gives each side its own slots.
    unsafe { RawRegion::new(base, SIZE, 0x4000_0000, Coherent) }.unwrap()
}

type SplitLink<'m> = Link<'m, SplitRings<'m, RawRegion<Coherent>, Legacy, NUM>, Bell, 2, 8, 2>;

fn open<'m>(
    mem: &'m RawRegion<Coherent>,
    side: Side,
    consumed: bool,
    wake: Option<&'m WakeLock>,
    bell: Bell,
) -> SplitLink<'m> {
    let mut cfg = SplitConfig::new(LAYOUT, side);
    cfg.consumed_notify = consumed;
    cfg.wake = wake;
    cfg.unresponsive_after = 5;
    // SAFETY: each link owns its pool; the peer's is reached only through
    // the ring.
    let rings = unsafe { SplitRings::<_, Legacy, NUM>::new(mem, cfg) }.unwrap();
    Link::new(rings, bell)
}

#[test]
fn placement_errors_are_typed() {
    let a = Region::packed(0, 8, 512, LINE);
    // B starts inside A.
    assert_eq!(
        SplitLayout::new(a, Region::packed(0x100, 8, 512, LINE), LINE),
        Err(PlacementError::Overlap(Part::Region, Part::Region))
    );
    // A pool that is not line-aligned.
    let mut bad = Region::packed(0x2000, 8, 512, LINE);
    bad.pool += 16;
    bad.end += 16;
    assert_eq!(
        SplitLayout::new(a, bad, LINE),
        Err(PlacementError::Misaligned {
            part: Part::Pool,
            offset: bad.pool,
            align: LINE
        })
    );
    // The consumed word inside the ring's last line.
    let mut bad = Region::packed(0x2000, 8, 512, LINE);
    bad.consumed = bad.ring.end() & !(LINE - 1);
    assert_eq!(
        SplitLayout::new(a, bad, LINE),
        Err(PlacementError::Overlap(Part::Consumed, Part::Ring))
    );
    // The pool over the consumed word.
    let mut bad = Region::packed(0x2000, 8, 512, LINE);
    bad.pool = bad.consumed;
    assert_eq!(
        SplitLayout::new(a, bad, LINE),
        Err(PlacementError::Overlap(Part::Consumed, Part::Pool))
    );
    // Buffers that are not whole lines, and a pool past the region end.
    let mut bad = Region::packed(0x2000, 8, 512, LINE);
    bad.buf_size = 500;
    assert_eq!(
        SplitLayout::new(a, bad, LINE),
        Err(PlacementError::BadBufSize(500))
    );
    let mut bad = Region::packed(0x2000, 8, 512, LINE);
    bad.end -= 1;
    assert_eq!(
        SplitLayout::new(a, bad, LINE),
        Err(PlacementError::Outside(Part::Pool))
    );
    // A ring whose avail and used share a cache line.
    let mut bad = Region::packed(0x2000, 8, 512, LINE);
    bad.ring = Layout::legacy_at(0x2000, 8, 16);
    assert_eq!(
        SplitLayout::new(a, bad, LINE),
        Err(PlacementError::Ring(LayoutError::SharedCacheLine {
            line: LINE
        }))
    );
    assert_eq!(SplitLayout::new(a, a, 48), Err(PlacementError::BadLine(48)));
    // At link start: a window too small for region B.
    let backing: &'static mut Backing = Box::leak(Box::new(Backing([0; SIZE])));
    let base = NonNull::new(backing.0.as_mut_ptr()).unwrap();
    // SAFETY: leaked; used by this test alone.
    let small = unsafe { RawRegion::new(base, 0x2000, 0x4000_0000, Coherent) }.unwrap();
    // SAFETY: nothing else uses the window.
    let err =
        unsafe { SplitRings::<_, Legacy, NUM>::new(&small, SplitConfig::new(LAYOUT, Side::A)) }
            .unwrap_err();
    assert_eq!(
        err,
        SplitError::Placement(PlacementError::Outside(Part::Region))
    );
}

/// Runs both links until neither makes progress.
fn pump(a: &SplitLink<'_>, bell_to_a: &Bell, b: &SplitLink<'_>, bell_to_b: &Bell) {
    for _ in 0..64 {
        a.on_notify(bell_to_a.take());
        a.service().unwrap();
        b.on_notify(bell_to_b.take());
        b.service().unwrap();
        if bell_to_a.0.get() == 0 && bell_to_b.0.get() == 0 {
            return;
        }
    }
    panic!("doorbells never settled");
}

fn echo(consumed: bool) {
    let mem = region();
    let (to_a, to_b) = (Bell::default(), Bell::default());
    let (lock_a, lock_b) = (WakeLock::new(), WakeLock::new());
    let a = open(&mem, Side::A, consumed, Some(&lock_a), to_b.clone());
    let b = open(&mem, Side::B, consumed, Some(&lock_b), to_a.clone());
    let ea = a.create_endpoint(30, RxMode::Queue).unwrap();
    let eb = b.create_endpoint(40, RxMode::Queue).unwrap();
    let mut buf = [0u8; 496];
    for round in 0..300u32 {
        let n = (round as usize * 37) % 497;
        let msg: Vec<u8> = (0..n).map(|j| (round as usize + j) as u8).collect();
        // A burst of up to 3 messages each way.
        let burst = 1 + round % 3;
        for k in 0..burst {
            let mut m = msg.clone();
            if n > 0 {
                m[0] = k as u8;
            }
            a.try_send(&ea, 40, &m).unwrap();
        }
        assert!(!lock_a.deep_sleep_allowed(), "buffers in flight");
        for k in 0..burst {
            pump(&a, &to_a, &b, &to_b);
            let r = b.try_recv(&eb, &mut buf).unwrap();
            assert_eq!((r.src, r.len), (30, n));
            if n > 0 {
                assert_eq!(buf[0], k as u8);
                assert_eq!(&buf[1..n], &msg[1..]);
            }
            b.try_send(&eb, 30, &buf[..n]).unwrap();
        }
        pump(&a, &to_a, &b, &to_b);
        for _ in 0..burst {
            let r = a.try_recv(&ea, &mut buf).unwrap();
            assert_eq!((r.src, r.len), (40, n));
        }
        pump(&a, &to_a, &b, &to_b);
        // Everything came back and was confirmed: both may sleep.
        assert!(
            lock_a.deep_sleep_allowed(),
            "round {round}: a still held {} {:?}",
            lock_a.holders(),
            a.ring_stats()
        );
        assert!(lock_b.deep_sleep_allowed(), "round {round}: b still held");
    }
    let (sa, sb) = (a.stats(), b.stats());
    assert_eq!(sa.messages_sent, sb.messages_received);
    assert_eq!(sb.messages_sent, sa.messages_received);
    assert_eq!(sa.messages_sent, (0..300).map(|r| 1 + r % 3).sum::<u32>());
    assert_eq!(sa.peer_unresponsive + sb.peer_unresponsive, 0);
}

#[test]
fn split_echo_with_consumed_notification() {
    echo(true);
}

#[test]
fn split_echo_without_consumed_notification() {
    echo(false);
}

#[test]
fn guard_is_held_until_the_consumed_word_covers_the_return() {
    let mem = region();
    let (to_a, to_b) = (Bell::default(), Bell::default());
    let lock = WakeLock::new();
    let a = open(&mem, Side::A, true, Some(&lock), to_b.clone());
    let b = open(&mem, Side::B, true, None, to_a.clone());
    let ea = a.create_endpoint(30, RxMode::Queue).unwrap();
    let eb = b.create_endpoint(40, RxMode::Queue).unwrap();
    a.try_send(&ea, 40, b"one").unwrap();
    a.try_send(&ea, 40, b"two").unwrap();
    assert_eq!(lock.holders(), 2, "one guard per in-flight buffer");
    // Exactly one "message available" doorbell for the burst.
    let rung = to_b.take();
    assert_eq!(rung.iter().count(), 1);
    // B has not been told: it does not read A's ring.
    b.service().unwrap();
    assert!(b.try_recv(&eb, &mut [0; 8]).is_err());
    b.on_notify(rung);
    let mut out = [0u8; 8];
    assert_eq!(b.try_recv(&eb, &mut out).unwrap().len, 3);
    // One buffer returned but the pass is not over for A: still held (the
    // other buffer is queued at B, so the pass ended; its return is not).
    a.service().unwrap();
    assert!(!lock.deep_sleep_allowed());
    assert_eq!(b.try_recv(&eb, &mut out).unwrap().len, 3);
    // B's late return confirms and rings the consumed notification.
    assert!(!to_a.take().is_empty());
    a.service().unwrap();
    assert!(lock.deep_sleep_allowed());
}

#[test]
fn unresponsive_peer_is_given_up_after_the_bound() {
    let mem = region();
    let (to_a, to_b) = (Bell::default(), Bell::default());
    let lock = WakeLock::new();
    let a = open(&mem, Side::A, true, Some(&lock), to_b.clone());
    let b = open(&mem, Side::B, true, None, to_a.clone());
    let ea = a.create_endpoint(30, RxMode::Queue).unwrap();
    let eb = b.create_endpoint(40, RxMode::Queue).unwrap();
    a.try_send(&ea, 40, b"hello").unwrap();
    // The peer never answers: 4 ticks are within the bound of 5.
    for _ in 0..4 {
        assert_eq!(a.tick().unwrap(), 0);
    }
    assert!(!lock.deep_sleep_allowed());
    assert_eq!(a.tick().unwrap(), 1);
    assert!(lock.deep_sleep_allowed(), "guards released");
    assert_eq!(a.stats().peer_unresponsive, 1);
    // Nothing more to give up.
    assert_eq!(a.tick().unwrap(), 0);
    // The buffer stays lent: it was not reused, and when the peer finally
    // answers, it comes back and the link goes on.
    b.on_notify(to_b.take());
    assert_eq!(b.try_recv(&eb, &mut [0; 8]).unwrap().len, 5);
    b.service().unwrap();
    a.on_notify(to_a.take());
    a.try_send(&ea, 40, b"again").unwrap();
    b.on_notify(to_b.take());
    assert_eq!(b.try_recv(&eb, &mut [0; 8]).unwrap().len, 5);
    // Progress between ticks keeps the counter at zero.
    a.try_send(&ea, 40, b"x").unwrap();
    for _ in 0..3 {
        assert_eq!(a.tick().unwrap(), 0);
    }
    b.on_notify(to_b.take());
    assert_eq!(b.try_recv(&eb, &mut [0; 8]).unwrap().len, 1);
    for _ in 0..10 {
        assert_eq!(a.tick().unwrap(), 0);
    }
    assert_eq!(a.stats().peer_unresponsive, 1);
}

#[test]
fn restart_releases_parked_guards() {
    let mem = region();
    let to_b = Bell::default();
    let lock = WakeLock::new();
    let a = open(&mem, Side::A, true, Some(&lock), to_b.clone());
    let ea = a.create_endpoint(30, RxMode::Queue).unwrap();
    a.try_send(&ea, 40, b"lost").unwrap();
    assert!(!lock.deep_sleep_allowed());
    let mut cfg = SplitConfig::new(LAYOUT, Side::A);
    cfg.wake = Some(&lock);
    // SAFETY: the old rings are dropped by the restart; the pool is ours.
    let fresh = unsafe { SplitRings::<_, Legacy, NUM>::new(&mem, cfg) }.unwrap();
    let report = a.restart(fresh).unwrap();
    assert_eq!(report.unconfirmed, 1);
    assert!(lock.deep_sleep_allowed());
}
