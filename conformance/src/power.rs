//! The power-domain suite: two cores that fall asleep on their own, a
//! split-ownership link between them ([`rpmsg::split`]), and memory that is
//! unreachable while its owner sleeps.
//!
//! - [`PowerCore`] wraps a [`SimCore`] (unchanged) with a [`Domains`] view:
//!   each core owns one region; while a core is asleep, an access by the
//!   other core to that region is recorded as a fault and reads garbage
//!   (writes and cache maintenance are dropped). Sleep transitions and
//!   accesses are serialised, so a fault is never missed or invented.
//! - Each side's idle loop falls asleep at random moments whenever its
//!   [`WakeLock`] allows ([`WakeLock::deep_sleep_allowed`]) and it has
//!   nothing to do; it wakes on a doorbell, read from the backend model's
//!   pending state.
//!
//! Wake strategy (shared/docs/hw/cache-and-wake.md §7): the rpmsg doorbell
//! is the wake interrupt on every backend. i.MX8 MU: the receive interrupt
//! brings the core out of WFI (and out of STOP when the GPC enables it,
//! §7.1, UNVERIFIED); the MU general-purpose interrupt (`Gp`) is the
//! alternative for a peer that must be woken without a message, not needed
//! here because a message is only announced by a core holding a guard.
//! OCTEON: a mailbox write wakes a core from `WAIT` (§7.4, inferred).
//! AM62x and V853: the mailbox interrupt wakes the core from WFI; deeper
//! modes (TI suspend handshake §7.2, Allwinner standby §7.3) are out of
//! scope.
//!
//! [`power_suite!`](crate::power_suite) expands the suite for a
//! [`DoorbellLink`] fixture.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use ipc_traits::mailbox::{Budget, NotifyRx, QueueSet};
use ipc_traits::power::WakeLock;
use ipc_traits::shm::{ErrorType, SharedMemory, ShmError};
use rpmsg::link::{Endpoint, Link, RxMode};
use rpmsg::split::{Region, Side, SplitConfig, SplitLayout, SplitRings};
use vring::Legacy;

use crate::link::{payload, MAX_PAYLOAD};
use crate::mailbox::{DoorbellFixture, DoorbellLink, PATIENCE};
use crate::rng::SplitMix64;
use crate::sim::{CacheConfig, SimCore, SimMemory};

/// Entries per ring.
pub const NUM: usize = 16;
/// Side A's cache line (and the layout's granule).
pub const LINE_A: usize = 64;
/// Side B's cache line.
pub const LINE_B: usize = 32;

/// The suite's split layout: region A at 0, region B at 16 KiB.
pub const LAYOUT: SplitLayout = SplitLayout::checked(
    Region::packed(0, NUM as u16, 512, LINE_A),
    Region::packed(0x4000, NUM as u16, 512, LINE_A),
    LINE_A,
);

#[derive(Debug, Default)]
struct DomState {
    asleep: [bool; 2],
    /// Faulting accesses by each core.
    faults: [u64; 2],
}

/// The power state of two cores and the regions they own.
#[derive(Debug)]
pub struct Domains {
    regions: [(usize, usize); 2],
    state: Mutex<DomState>,
}

impl Domains {
    /// Core 0 owns `a`, core 1 owns `b` (`start..end` window offsets).
    pub fn new(a: (usize, usize), b: (usize, usize)) -> Arc<Self> {
        Arc::new(Self {
            regions: [a, b],
            state: Mutex::new(DomState::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, DomState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Puts `core` to sleep.
    pub fn sleep(&self, core: usize) {
        self.lock().asleep[core] = true;
    }

    /// Wakes `core`.
    pub fn wake(&self, core: usize) {
        self.lock().asleep[core] = false;
    }

    /// Faulting accesses made by `core`.
    pub fn faults(&self, core: usize) -> u64 {
        self.lock().faults[core]
    }

    /// Whether an access of `core` to `offset..offset + len` faults now
    /// (counted).
    fn check(&self, st: &mut DomState, core: usize, offset: usize, len: usize) -> bool {
        let peer = 1 - core;
        let (s, e) = self.regions[peer];
        let hit = offset < e && s < offset.saturating_add(len.max(1));
        if hit && st.asleep[peer] {
            st.faults[core] += 1;
            true
        } else {
            false
        }
    }
}

/// A core's view of the window through its cache, subject to the peer's
/// power state.
#[derive(Debug)]
pub struct PowerCore<const LINE: usize> {
    core: SimCore<LINE>,
    me: usize,
    domains: Arc<Domains>,
}

impl<const LINE: usize> PowerCore<LINE> {
    /// `core` seen as core `me` (0 or 1) of `domains`.
    pub fn new(core: SimCore<LINE>, me: usize, domains: Arc<Domains>) -> Self {
        Self { core, me, domains }
    }
}

const GARBAGE: u8 = 0xA5;

impl<const LINE: usize> ErrorType for PowerCore<LINE> {
    type Error = ShmError;
}

impl<const LINE: usize> SharedMemory for PowerCore<LINE> {
    const LINE: usize = LINE;

    fn len(&self) -> usize {
        self.core.len()
    }
    fn peer_base(&self) -> u64 {
        self.core.peer_base()
    }
    fn read(&self, offset: usize, dst: &mut [u8]) -> Result<(), ShmError> {
        let mut st = self.domains.lock();
        if self.domains.check(&mut st, self.me, offset, dst.len()) {
            dst.fill(GARBAGE);
            return Ok(());
        }
        self.core.read(offset, dst)
    }
    fn write(&self, offset: usize, src: &[u8]) -> Result<(), ShmError> {
        let mut st = self.domains.lock();
        if self.domains.check(&mut st, self.me, offset, src.len()) {
            return Ok(());
        }
        self.core.write(offset, src)
    }
    fn load_u16_acquire(&self, offset: usize) -> Result<u16, ShmError> {
        let mut st = self.domains.lock();
        if self.domains.check(&mut st, self.me, offset, 2) {
            return Ok(u16::from_ne_bytes([GARBAGE; 2]));
        }
        self.core.load_u16_acquire(offset)
    }
    fn store_u16_release(&self, offset: usize, value: u16) -> Result<(), ShmError> {
        let mut st = self.domains.lock();
        if self.domains.check(&mut st, self.me, offset, 2) {
            return Ok(());
        }
        self.core.store_u16_release(offset, value)
    }
    fn load_u32_acquire(&self, offset: usize) -> Result<u32, ShmError> {
        let mut st = self.domains.lock();
        if self.domains.check(&mut st, self.me, offset, 4) {
            return Ok(u32::from_ne_bytes([GARBAGE; 4]));
        }
        self.core.load_u32_acquire(offset)
    }
    fn store_u32_release(&self, offset: usize, value: u32) -> Result<(), ShmError> {
        let mut st = self.domains.lock();
        if self.domains.check(&mut st, self.me, offset, 4) {
            return Ok(());
        }
        self.core.store_u32_release(offset, value)
    }
    fn clean(&self, offset: usize, len: usize) -> Result<(), ShmError> {
        let mut st = self.domains.lock();
        if self.domains.check(&mut st, self.me, offset, len) {
            return Ok(());
        }
        SharedMemory::clean(&self.core, offset, len)
    }
    fn invalidate(&self, offset: usize, len: usize) -> Result<(), ShmError> {
        let mut st = self.domains.lock();
        if self.domains.check(&mut st, self.me, offset, len) {
            return Ok(());
        }
        SharedMemory::invalidate(&self.core, offset, len)
    }
}

/// What one side saw.
#[derive(Debug, Default, Clone, Copy)]
pub struct PowerReport {
    /// Messages this side received.
    pub received: u32,
    /// Loop iterations spent asleep.
    pub asleep: u64,
    /// Loop iterations in all.
    pub iterations: u64,
    /// Times the core fell asleep.
    pub sleeps: u64,
    /// Faulting accesses this core made.
    pub faults: u64,
    /// `peer_unresponsive` of the link.
    pub unresponsive: u32,
    /// Host time spent asleep (reported, never asserted on).
    pub asleep_time: Duration,
    /// Host time of the whole run.
    pub run_time: Duration,
}

impl PowerReport {
    /// The fraction of loop iterations spent asleep.
    pub fn asleep_fraction(&self) -> f64 {
        self.asleep as f64 / self.iterations.max(1) as f64
    }

    /// The fraction of host time spent asleep (for the report only).
    pub fn asleep_time_fraction(&self) -> f64 {
        self.asleep_time.as_secs_f64() / self.run_time.as_secs_f64().max(1e-9)
    }
}

type PLink<'m, const LINE: usize, N> =
    Link<'m, SplitRings<'m, PowerCore<LINE>, Legacy, NUM>, N, 2, 8, 2>;

struct Runner<'a, 'm, const LINE: usize, N, T> {
    link: &'a PLink<'m, LINE, N>,
    ep: Endpoint,
    take: T,
    idle_lock: &'a WakeLock,
    domains: &'a Domains,
    me: usize,
    rng: SplitMix64,
    report: PowerReport,
    asleep: bool,
    slept_at: Option<Instant>,
    /// The wake lock is honoured; otherwise errors are tolerated (the
    /// bypass run reads garbage).
    strict: bool,
}

impl<const LINE: usize, N: ipc_traits::mailbox::Notify, T: NotifyRx> Runner<'_, '_, LINE, N, T> {
    /// One idle-loop step while asleep: `Some(set)` once a doorbell woke
    /// the core.
    fn sleeping(&mut self) -> bool {
        // A step in the sleep state (the one that finds the doorbell too).
        self.report.iterations += 1;
        self.report.asleep += 1;
        let set = self.take.take_pending().unwrap_or_default();
        if set.is_empty() {
            thread::yield_now();
            return true;
        }
        self.domains.wake(self.me);
        if let Some(t) = self.slept_at.take() {
            self.report.asleep_time += t.elapsed();
        }
        self.asleep = false;
        self.link.on_notify(set);
        false
    }

    fn awake(&mut self) -> QueueSet {
        self.report.iterations += 1;
        let set = self.take.take_pending().unwrap_or_default();
        self.link.on_notify(set);
        set
    }

    /// Handles a message: a random amount of work (host yields) during
    /// which the peer, whose buffer already came back, may fall asleep.
    fn work(&mut self) {
        for _ in 0..self.rng.below(8) {
            thread::yield_now();
        }
    }

    /// Falls asleep at random when idle and allowed.
    fn maybe_sleep(&mut self) {
        // A kick still deferred is retried by the next operation after the
        // wake-up; Busy cannot happen here (no call is in progress).
        let _deferred: Result<(), rpmsg::link::Error> = self.link.flush_kicks();
        if self.idle_lock.deep_sleep_allowed() && self.rng.below(2) == 0 {
            self.domains.sleep(self.me);
            self.slept_at = Some(Instant::now());
            self.asleep = true;
            self.report.sleeps += 1;
        }
    }

    fn ok<V>(&self, r: Result<V, rpmsg::link::Error>, what: &str) -> Option<V> {
        match r {
            Ok(v) => Some(v),
            Err(rpmsg::link::Error::WouldBlock) => None,
            Err(e) if self.strict => panic!(
                "{what}: {e}; faults {} {}; rings {:?}",
                self.domains.faults(0),
                self.domains.faults(1),
                self.link.ring_stats()
            ),
            Err(_) => None,
        }
    }
}

/// How a power run goes.
#[derive(Debug, Clone, Copy)]
pub struct PowerRun {
    /// Messages A sends (B echoes each).
    pub count: u32,
    /// Randomness.
    pub seed: u64,
    /// Whether the idle loops ask the link's wake locks (false: they ask an
    /// unused lock, so they sleep with buffers in flight).
    pub honour_wake_lock: bool,
}

fn config(side: Side, lock: &WakeLock) -> SplitConfig<'_> {
    let mut c = SplitConfig::new(LAYOUT, side);
    c.wake = Some(lock);
    c
}

/// Side B: echoes what arrives until `stop`.
fn run_b<L: DoorbellLink>(
    mem: SimMemory,
    domains: Arc<Domains>,
    take: L::Take,
    ring: L::Ring,
    run: PowerRun,
    stop: Arc<AtomicBool>,
) -> PowerReport {
    let core = PowerCore::new(
        mem.core::<LINE_B>(CacheConfig::write_back(run.seed ^ 0xB)),
        1,
        domains.clone(),
    );
    let lock = WakeLock::new();
    let unused = WakeLock::new();
    // SAFETY: region B's pool is this link's alone; region A's buffers are
    // reached only through the ring.
    let rings = unsafe { SplitRings::<_, Legacy, NUM>::new(&core, config(Side::B, &lock)) }
        .unwrap_or_else(|e| panic!("side B rings: {e}"));
    let link: PLink<'_, LINE_B, L::Ring> = Link::new(rings, ring);
    let ep = link
        .create_endpoint(40, RxMode::Queue)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut s = Runner {
        link: &link,
        ep,
        take,
        idle_lock: if run.honour_wake_lock { &lock } else { &unused },
        domains: &domains,
        me: 1,
        rng: SplitMix64::new(run.seed ^ 0xB0B),
        report: PowerReport::default(),
        asleep: false,
        slept_at: None,
        strict: run.honour_wake_lock,
    };
    let started = Instant::now();
    let mut buf = [0u8; MAX_PAYLOAD];
    let mut pending: Option<(u32, usize)> = None;
    while !stop.load(Ordering::Acquire) {
        if s.asleep && s.sleeping() {
            continue;
        }
        s.awake();
        let mut progressed = false;
        if pending.is_none() {
            let r = s.link.try_recv(&s.ep, &mut buf);
            if let Some(r) = s.ok(r, "B recv") {
                s.work();
                pending = Some((r.src, r.len));
                s.report.received += 1;
                progressed = true;
            }
        }
        if let Some((src, len)) = pending {
            let r = s.link.try_send(&s.ep, src, &buf[..len]);
            if s.ok(r, "B echo").is_some() {
                pending = None;
                progressed = true;
            }
        }
        if !progressed && pending.is_none() {
            s.maybe_sleep();
        }
    }
    s.report.run_time = started.elapsed();
    s.report.faults = domains.faults(1);
    s.report.unresponsive = link.stats().peer_unresponsive;
    s.report
}

/// Runs a split-ownership echo of `run.count` messages with random
/// sleeping; returns the reports of A and B. With the wake lock honoured,
/// asserts that every echo came back intact and in order.
pub fn echo_with_sleep<L: DoorbellLink>(run: PowerRun) -> (PowerReport, PowerReport) {
    let DoorbellFixture {
        ring_b,
        take_b,
        ring_a,
        take_a,
        ..
    } = L::open();
    let mem = SimMemory::new(LAYOUT.end(), 0x4000_0000);
    let domains = Domains::new(
        (LAYOUT.a.start, LAYOUT.a.end),
        (LAYOUT.b.start, LAYOUT.b.end),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let b = {
        let (mem, domains, stop) = (mem.clone(), domains.clone(), stop.clone());
        thread::spawn(move || run_b::<L>(mem, domains, take_b, ring_a, run, stop))
    };
    let core = PowerCore::new(
        mem.core::<LINE_A>(CacheConfig::write_back(run.seed)),
        0,
        domains.clone(),
    );
    let lock = WakeLock::new();
    let unused = WakeLock::new();
    // SAFETY: region A's pool is this link's alone.
    let rings = unsafe { SplitRings::<_, Legacy, NUM>::new(&core, config(Side::A, &lock)) }
        .unwrap_or_else(|e| panic!("side A rings: {e}"));
    let link: PLink<'_, LINE_A, L::Ring> = Link::new(rings, ring_b);
    let ep = link
        .create_endpoint(30, RxMode::Queue)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut s = Runner {
        link: &link,
        ep,
        take: take_a,
        idle_lock: if run.honour_wake_lock { &lock } else { &unused },
        domains: &domains,
        me: 0,
        rng: SplitMix64::new(run.seed ^ 0xA0A),
        report: PowerReport::default(),
        asleep: false,
        slept_at: None,
        strict: run.honour_wake_lock,
    };
    let started = Instant::now();
    let (mut sent, mut got, mut burst) = (0u32, 0u32, 0u32);
    let mut out = [0u8; MAX_PAYLOAD];
    let mut want = [0u8; MAX_PAYLOAD];
    let mut budget = PATIENCE;
    // The bypass run stops once faults were seen (or its budget ends).
    let bypass_limit = 2_000_000u64;
    while got < run.count {
        if !run.honour_wake_lock
            && (domains.faults(0) + domains.faults(1) > 0 || s.report.iterations > bypass_limit)
        {
            break;
        }
        if s.asleep && s.sleeping() {
            continue;
        }
        s.awake();
        let mut progressed = false;
        // Bursts of 1..=4 messages; the next burst starts once every echo
        // of the last one is back (so both sides go idle in between).
        if burst == 0 && sent == got {
            burst = (1 + s.rng.below(4) as u32).min(run.count - sent);
        }
        if burst > 0 {
            let n = payload(sent, &mut out);
            let r = s.link.try_send(&s.ep, 40, &out[..n]);
            if s.ok(r, "A send").is_some() {
                sent += 1;
                burst -= 1;
                progressed = true;
            }
        }
        let r = s.link.try_recv(&s.ep, &mut out);
        if let Some(r) = s.ok(r, "A recv") {
            if run.honour_wake_lock {
                let n = payload(got, &mut want);
                assert_eq!((r.src, r.len), (40, n), "echo {got}: lost or reordered");
                assert_eq!(&out[..n], &want[..n], "echo {got}: corrupted");
            }
            got += 1;
            s.report.received += 1;
            s.work();
            progressed = true;
        }
        if progressed {
            budget = PATIENCE;
        } else {
            if run.honour_wake_lock {
                assert!(
                    budget.next(),
                    "A stuck at sent {sent}, echoed {got}: {:?}, {} guards",
                    link.stats(),
                    lock.holders()
                );
            }
            // Idle only when waiting for echoes (more to send is work).
            if burst == 0 {
                s.maybe_sleep();
            }
        }
    }
    domains.wake(0);
    stop.store(true, Ordering::Release);
    s.report.run_time = started.elapsed();
    s.report.faults = domains.faults(0);
    s.report.unresponsive = link.stats().peer_unresponsive;
    let rb = b.join().unwrap_or_else(|_| panic!("side B failed"));
    (s.report, rb)
}

/// The messages of the suite.
pub const fn power_count() -> u32 {
    if cfg!(miri) {
        50
    } else {
        20_000
    }
}

/// The full run: nothing lost (asserted inside), zero faults, both cores
/// asleep part of the time. Prints the asleep fractions.
pub fn sleep_safe_echo<L: DoorbellLink>(seed: u64) -> (PowerReport, PowerReport) {
    let (a, b) = echo_with_sleep::<L>(PowerRun {
        count: power_count(),
        seed,
        honour_wake_lock: true,
    });
    println!(
        "asleep: A {:.3} of loop steps, {:.3} of host time ({} sleeps); \
         B {:.3} of loop steps, {:.3} of host time ({} sleeps)",
        a.asleep_fraction(),
        a.asleep_time_fraction(),
        a.sleeps,
        b.asleep_fraction(),
        b.asleep_time_fraction(),
        b.sleeps
    );
    assert_eq!((a.faults, b.faults), (0, 0), "faulting accesses");
    assert_eq!(b.received, power_count());
    assert_eq!(a.received, power_count());
    assert!(
        a.sleeps > 0 && b.sleeps > 0,
        "both cores slept: {a:?} {b:?}"
    );
    assert!(a.asleep > 0 && b.asleep > 0);
    assert_eq!(a.unresponsive + b.unresponsive, 0);
    (a, b)
}

/// With the idle loops ignoring the link's wake locks, the peer's accesses
/// fault: the simulation detects the bug class.
pub fn bypassed_wake_lock_faults<L: DoorbellLink>(seed: u64) {
    let (a, b) = echo_with_sleep::<L>(PowerRun {
        count: power_count(),
        seed,
        honour_wake_lock: false,
    });
    assert!(
        a.faults + b.faults > 0,
        "sleeping with buffers in flight must fault: {a:?} {b:?}"
    );
}

/// Expands the power-domain suite for a [`DoorbellLink`] fixture.
#[macro_export]
macro_rules! power_suite {
    ($link:ty) => {
        #[test]
        fn sleep_safe_echo_20k_with_random_sleep() {
            $crate::power::sleep_safe_echo::<$link>(7);
        }
        #[test]
        fn bypassed_wake_lock_is_detected() {
            $crate::power::bypassed_wake_lock_faults::<$link>(8);
        }
    };
}
