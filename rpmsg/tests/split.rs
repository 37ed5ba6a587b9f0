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
use rpmsg::link::queues::{Endpoints, Queues};
use rpmsg::link::watch::Watchdog;
use rpmsg::link::{Link, Rx, Sent, Storage, Tx};
use rpmsg::split::{Region, Side, SplitConfig, SplitLayout, SplitRings};
use rpmsg::Error;
use vring::{Layout, Legacy};

/// Device tables for the test's life.
fn device_tables<const N: usize>() -> &'static rpmsg::vring::DeviceTables<N> {
    Box::leak(Box::default())
}

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

type Rings<'m> = SplitRings<'m, RawRegion<Coherent>, Legacy, NUM>;
type SplitLink<'m> = Link<'m, Rings<'m>, Bell>;

fn rings<'m>(
    mem: &'m RawRegion<Coherent>,
    side: Side,
    consumed: bool,
    wake: Option<&'m WakeLock>,
) -> Rings<'m> {
    let mut cfg = SplitConfig::new(LAYOUT, side);
    cfg.consumed_notify = consumed;
    cfg.wake = wake;
    cfg.unresponsive_after = 5;
    // SAFETY: each link owns its pool; the peer's is reached only through
    // the ring.
    unsafe { SplitRings::<_, Legacy, NUM>::new(mem, cfg, device_tables()) }.unwrap()
}

fn open<'m>(
    mem: &'m RawRegion<Coherent>,
    side: Side,
    consumed: bool,
    wake: Option<&'m WakeLock>,
    bell: Bell,
    storage: &'m mut Storage<2>,
) -> SplitLink<'m> {
    Link::new(rings(mem, side, consumed, wake), bell, storage)
}

#[test]
fn placement_errors_are_typed() {
    let a = Region::packed(0, 8, 512, LINE);
    // B starts inside A.
    assert_eq!(
        SplitLayout::new(a, Region::packed(0x100, 8, 512, LINE), LINE),
        Err(Error::PartsOverlap)
    );
    // A pool that is not line-aligned.
    let mut bad = Region::packed(0x2000, 8, 512, LINE);
    bad.pool += 16;
    bad.end += 16;
    assert_eq!(SplitLayout::new(a, bad, LINE), Err(Error::PartMisaligned));
    // The consumed word inside the ring's last line.
    let mut bad = Region::packed(0x2000, 8, 512, LINE);
    bad.consumed = bad.ring.end() & !(LINE - 1);
    assert_eq!(SplitLayout::new(a, bad, LINE), Err(Error::PartsOverlap));
    // The pool over the consumed word.
    let mut bad = Region::packed(0x2000, 8, 512, LINE);
    bad.pool = bad.consumed;
    assert_eq!(SplitLayout::new(a, bad, LINE), Err(Error::PartsOverlap));
    // Buffers that are not whole lines, and a pool past the region end.
    let mut bad = Region::packed(0x2000, 8, 512, LINE);
    bad.buf_size = 500;
    assert_eq!(SplitLayout::new(a, bad, LINE), Err(Error::BadBufSize));
    let mut bad = Region::packed(0x2000, 8, 512, LINE);
    bad.end -= 1;
    assert_eq!(SplitLayout::new(a, bad, LINE), Err(Error::PartOutside));
    // A ring whose avail and used share a cache line.
    let mut bad = Region::packed(0x2000, 8, 512, LINE);
    bad.ring = Layout::legacy_at(0x2000, 8, 16);
    assert_eq!(
        SplitLayout::new(a, bad, LINE),
        Err(Error::Ring(vring::Error::SharedCacheLine))
    );
    assert_eq!(SplitLayout::new(a, a, 48), Err(Error::BadLine));
    // At link start: a window too small for region B.
    let backing: &'static mut Backing = Box::leak(Box::new(Backing([0; SIZE])));
    let base = NonNull::new(backing.0.as_mut_ptr()).unwrap();
    // SAFETY: leaked; used by this test alone.
    let small = unsafe { RawRegion::new(base, 0x2000, 0x4000_0000, Coherent) }.unwrap();
    // SAFETY: nothing else uses the window.
    let err = unsafe {
        SplitRings::<_, Legacy, NUM>::new(
            &small,
            SplitConfig::new(LAYOUT, Side::A),
            device_tables(),
        )
    }
    .unwrap_err();
    assert_eq!(err, Error::PartOutside);
}

/// Hands the doorbells rung towards one side to both its halves (what its
/// mailbox interrupt does).
fn deliver<'m>(
    bell: &Bell,
    tx: &mut Tx<'_, 'm, Rings<'m>, Bell>,
    rx: &mut Rx<'_, 'm, Rings<'m>, Bell>,
) {
    let rung = bell.take();
    rx.on_notify(rung);
    tx.on_notify(rung).unwrap();
}

fn echo(consumed: bool) {
    let mem = region();
    let (to_a, to_b) = (Bell::default(), Bell::default());
    let (lock_a, lock_b) = (WakeLock::new(), WakeLock::new());
    let (mut sa, mut sb) = (Storage::new(), Storage::new());
    let mut a = open(
        &mem,
        Side::A,
        consumed,
        Some(&lock_a),
        to_b.clone(),
        &mut sa,
    );
    let mut b = open(
        &mem,
        Side::B,
        consumed,
        Some(&lock_b),
        to_a.clone(),
        &mut sb,
    );
    let ea = a.bind(30).unwrap();
    let eb = b.bind(40).unwrap();
    let (mut atx, mut arx) = a.split();
    let (mut btx, mut brx) = b.split();
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
            assert_eq!(atx.try_send(&ea, 40, &m).unwrap(), Sent::Sent);
        }
        assert!(!lock_a.deep_sleep_allowed(), "buffers in flight");
        let (mut echoed, mut back) = (0, 0);
        for _ in 0..64 {
            // B echoes what arrives, in order; each side receives until its
            // ring is empty (the end of its pass).
            deliver(&to_b, &mut btx, &mut brx);
            while let Some(r) = brx.try_recv(&mut buf).unwrap() {
                assert_eq!((r.dst, r.src, r.len), (40, 30, n));
                if n > 0 {
                    assert_eq!(buf[0], echoed as u8);
                    assert_eq!(&buf[1..n], &msg[1..]);
                }
                assert_eq!(btx.try_send(&eb, 30, &buf[..n]).unwrap(), Sent::Sent);
                echoed += 1;
            }
            deliver(&to_a, &mut atx, &mut arx);
            while let Some(r) = arx.try_recv(&mut buf).unwrap() {
                assert_eq!((r.src, r.len), (40, n));
                back += 1;
            }
            if to_a.0.get() == 0 && to_b.0.get() == 0 {
                break;
            }
        }
        assert_eq!((echoed, back), (burst, burst), "round {round}");
        assert_eq!((to_a.0.get(), to_b.0.get()), (0, 0), "doorbells settled");
        // Everything came back and was confirmed: both may sleep.
        assert!(
            lock_a.deep_sleep_allowed(),
            "round {round}: a still held {}",
            lock_a.holders(),
        );
        assert!(lock_b.deep_sleep_allowed(), "round {round}: b still held");
    }
    let (ta, ra, tb, rb) = (atx.stats(), arx.stats(), btx.stats(), brx.stats());
    assert_eq!(ta.messages, rb.messages);
    assert_eq!(tb.messages, ra.messages);
    assert_eq!(ta.messages, (0..300).map(|r| 1 + r % 3).sum::<u32>());
    assert_eq!(ra.bad_header + rb.bad_header + ra.unbound + rb.unbound, 0);
    assert!(!a.is_broken() && !b.is_broken());
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
    let (mut sa, mut sb) = (Storage::new(), Storage::new());
    let mut a = open(&mem, Side::A, true, Some(&lock), to_b.clone(), &mut sa);
    let mut b = open(&mem, Side::B, true, None, to_a.clone(), &mut sb);
    let ea = a.bind(30).unwrap();
    let eb = b.bind(40).unwrap();
    let (mut atx, mut arx) = a.split();
    let (mut btx, brx) = b.split();
    // B's messages wait in a queue (holding their buffers), as a consumer
    // task would take them later.
    let mut queues: Queues<'_, _, 2, 4> = Queues::new();
    let mut brx = Endpoints::new(brx, &mut queues).unwrap();
    assert_eq!(atx.try_send(&ea, 40, b"one").unwrap(), Sent::Sent);
    assert_eq!(atx.try_send(&ea, 40, b"two").unwrap(), Sent::Sent);
    assert_eq!(lock.holders(), 2, "one guard per in-flight buffer");
    // Exactly one "message available" doorbell for the burst.
    let rung = to_b.take();
    assert_eq!(rung.iter().count(), 1);
    // B has not been told: it does not read A's ring.
    assert!(brx.pump().unwrap());
    assert_eq!(brx.queued(&eb), 0);
    brx.on_notify(rung);
    btx.on_notify(rung).unwrap();
    // B's pass queues both and ends (the ring is empty): its consumed word
    // covers what it saw, not the buffers it still holds.
    assert!(brx.pump().unwrap());
    assert_eq!(brx.queued(&eb), 2);
    deliver(&to_a, &mut atx, &mut arx);
    assert!(!lock.deep_sleep_allowed(), "nothing returned yet");
    let mut out = [0u8; 8];
    assert_eq!(brx.try_recv(&eb, &mut out).unwrap().unwrap().len, 3);
    // One buffer returned (a late return, confirmed and rung at once),
    // the other is still B's.
    deliver(&to_a, &mut atx, &mut arx);
    assert!(!lock.deep_sleep_allowed());
    assert_eq!(brx.try_recv(&eb, &mut out).unwrap().unwrap().len, 3);
    // B's late return confirms and rings the consumed notification.
    let rung = to_a.take();
    assert!(!rung.is_empty());
    atx.on_notify(rung).unwrap();
    assert!(lock.deep_sleep_allowed());
    assert!(arx.try_recv(&mut out).unwrap().is_none());
}

#[test]
fn unresponsive_peer_is_given_up_after_the_bound() {
    let mem = region();
    let (to_a, to_b) = (Bell::default(), Bell::default());
    let lock = WakeLock::new();
    let (mut sa, mut sb) = (Storage::new(), Storage::new());
    let mut a = open(&mem, Side::A, true, Some(&lock), to_b.clone(), &mut sa);
    let mut b = open(&mem, Side::B, true, None, to_a.clone(), &mut sb);
    let ea = a.bind(30).unwrap();
    b.bind(40).unwrap();
    let (mut atx, mut arx) = a.split();
    let (mut btx, mut brx) = b.split();
    // The ring's own bound (5 ticks, `SplitConfig::unresponsive_after`)
    // counts; the watchdog's is off.
    let mut dog = Watchdog::new(0);
    assert_eq!(atx.try_send(&ea, 40, b"hello").unwrap(), Sent::Sent);
    // The peer never answers: 4 ticks are within the bound of 5.
    for _ in 0..4 {
        assert!(!dog.tick(&mut atx));
    }
    assert!(!lock.deep_sleep_allowed());
    assert!(dog.tick(&mut atx));
    assert!(lock.deep_sleep_allowed(), "guards released");
    assert_eq!(dog.unresponsive(), 1);
    // Nothing more to give up.
    assert!(!dog.tick(&mut atx));
    // The buffer stays lent: it was not reused, and when the peer finally
    // answers, it comes back and the link goes on.
    let mut out = [0u8; 8];
    deliver(&to_b, &mut btx, &mut brx);
    assert_eq!(brx.try_recv(&mut out).unwrap().unwrap().len, 5);
    assert!(brx.try_recv(&mut out).unwrap().is_none());
    deliver(&to_a, &mut atx, &mut arx);
    assert_eq!(atx.try_send(&ea, 40, b"again").unwrap(), Sent::Sent);
    deliver(&to_b, &mut btx, &mut brx);
    assert_eq!(brx.try_recv(&mut out).unwrap().unwrap().len, 5);
    assert!(brx.try_recv(&mut out).unwrap().is_none());
    // Progress between ticks keeps the counter at zero.
    assert_eq!(atx.try_send(&ea, 40, b"x").unwrap(), Sent::Sent);
    for _ in 0..3 {
        assert!(!dog.tick(&mut atx));
    }
    deliver(&to_a, &mut atx, &mut arx);
    deliver(&to_b, &mut btx, &mut brx);
    assert_eq!(brx.try_recv(&mut out).unwrap().unwrap().len, 1);
    assert!(brx.try_recv(&mut out).unwrap().is_none());
    for _ in 0..10 {
        assert!(!dog.tick(&mut atx));
    }
    assert_eq!(dog.unresponsive(), 1);
}

#[test]
fn restart_releases_parked_guards() {
    let mem = region();
    let to_b = Bell::default();
    let lock = WakeLock::new();
    let mut sa = Storage::new();
    let mut a = open(&mem, Side::A, true, Some(&lock), to_b.clone(), &mut sa);
    let ea = a.bind(30).unwrap();
    assert_eq!(a.split().0.try_send(&ea, 40, b"lost").unwrap(), Sent::Sent);
    assert!(!lock.deep_sleep_allowed());
    let fresh = rings(&mem, Side::A, true, Some(&lock));
    let report = a.restart(fresh);
    assert_eq!(report.unconfirmed, 1);
    assert!(lock.deep_sleep_allowed());
}
