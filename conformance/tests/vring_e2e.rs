//! `vring` end to end on two threads over simulated non-coherent memory.
//!
//! Side A is the driver of both rings (Linux / rpmsg-lite master), side B
//! the device of both (the remote). Each side runs on its own thread with
//! its own [`SimCore`]: a write-back cache with random eviction, so a
//! missing `clean` leaves the peer reading stale memory and a missing
//! `invalidate` leaves this core reading its own stale lines.
//!
//! - ring 0 carries A -> B: A fills buffers (its transmit pool starts
//!   parked in ring 0's *used* ring, as rpmsg-lite's master does), B reads
//!   and returns them;
//! - ring 1 carries B -> A: A posts empty buffers, B fills them, A reads
//!   and re-posts them.
//!
//! Every message has a pseudo-random size and content derived from its
//! sequence number, and batches have random lengths; the receiver checks
//! order, length and every byte, so loss, duplication, reordering and
//! corruption all fail the test. Sides sleep only after re-enabling
//! notifications and re-checking; a doorbell model detects a lost wake-up
//! as both sides asleep with no doorbell pending, which fails the test
//! instead of hanging it. B's cache starts full of stale lines of the whole
//! window (it "read" the memory before A initialised it), so every missing
//! `invalidate` returns stale bytes on first use.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Condvar, Mutex};

use conformance::rng::SplitMix64;
use conformance::sim::{CacheConfig, SimCore, SimMemory, WeakOrder};
use ipc_traits::buf::{Clean, Dirty, Received, ShmBuf};
use ipc_traits::shm::SharedMemory;
use vring::{
    BufferArea, Device, DeviceConfig, DeviceTables, Driver, DriverConfig, Endian, Layout, Legacy,
    Suppression, Virtio1,
};

/// Device tables for the test's life.
fn tables<const N: usize>() -> &'static DeviceTables<N> {
    Box::leak(Box::default())
}

const PEER_BASE: u64 = 0x4000_0000;
const NUM: u16 = 16;
const SLOT: usize = 256;
const RING0: usize = 0;
const RING1: usize = 1024;
const AREA0: BufferArea = BufferArea::new(4096, SLOT * NUM as usize);
const AREA1: BufferArea = BufferArea::new(8192, SLOT * NUM as usize);
const WINDOW: usize = 16384;
const A: usize = 0;
const B: usize = 1;

/// Messages per direction.
const MESSAGES: u32 = if cfg!(miri) { 60 } else { 100_000 };

/// Doorbells between the two threads, with lost wake-up detection.
#[derive(Default)]
struct Doorbells {
    state: Mutex<DbState>,
    cv: Condvar,
}

#[derive(Default)]
struct DbState {
    pending: [bool; 2],
    asleep: [bool; 2],
    done: [bool; 2],
    rung: [u64; 2],
    sleeps: [u64; 2],
    stage: [u32; 2],
    lost: bool,
}

// The doorbells and the rendezvous play a mailbox driver: the I/O barriers
// order them against shared memory (in weak mode they land the calling
// core's buffered stores, and end its early loads).
impl Doorbells {
    fn ring(&self, to: usize) {
        ipc_traits::barrier::io_wmb();
        let mut s = self.state.lock().unwrap();
        s.pending[to] = true;
        s.rung[to] += 1;
        self.cv.notify_all();
    }

    fn done(&self, me: usize) {
        let mut s = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        s.done[me] = true;
        self.cv.notify_all();
    }

    /// Waits until the other side reached `stage` too (a barrier that
    /// fails instead of hanging when the other side died).
    fn rendezvous(&self, me: usize, stage: u32) {
        let other = 1 - me;
        ipc_traits::barrier::io_wmb();
        let mut s = self.state.lock().unwrap();
        s.stage[me] = stage;
        self.cv.notify_all();
        while s.stage[other] < stage {
            assert!(!s.done[other], "side {other} ended before stage {stage}");
            s = self.cv.wait(s).unwrap();
        }
        ipc_traits::barrier::io_rmb();
    }

    /// Waits for a doorbell; panics on a lost wake-up (this side would wait
    /// forever: the other side is asleep or finished and nothing is
    /// pending for either).
    fn sleep(&self, me: usize) {
        let other = 1 - me;
        let mut s = self.state.lock().unwrap();
        s.sleeps[me] += 1;
        loop {
            assert!(!s.lost, "side {other} detected a lost wake-up");
            if s.pending[me] {
                s.pending[me] = false;
                s.asleep[me] = false;
                drop(s);
                ipc_traits::barrier::io_rmb();
                return;
            }
            // A finished (or failed) side never rings again; an asleep side
            // with no doorbell of its own waits for us while we wait for it.
            if s.done[other] || (s.asleep[other] && !s.pending[other]) {
                s.lost = true;
                self.cv.notify_all();
                panic!(
                    "lost wake-up: side {me} idle, side {other} {}, no doorbell pending for {me}",
                    if s.done[other] { "ended" } else { "asleep" }
                );
            }
            s.asleep[me] = true;
            s = self.cv.wait(s).unwrap();
        }
    }
}

/// Marks a side done when its thread ends, by return or by panic, so the
/// other side never waits for it forever.
struct DoneOnDrop<'a>(&'a Doorbells, usize);

impl Drop for DoneOnDrop<'_> {
    fn drop(&mut self) {
        self.0.done(self.1);
    }
}

/// Length of message `seq` in direction `dir` (8..=SLOT bytes).
fn msg_len(dir: u64, seq: u32) -> usize {
    let mut r = SplitMix64::new(dir << 32 | u64::from(seq));
    8 + r.below((SLOT - 7) as u64) as usize
}

fn msg_byte(dir: u64, seq: u32, j: usize) -> u8 {
    (u64::from(seq).wrapping_mul(131) ^ (j as u64).wrapping_mul(7) ^ dir.wrapping_mul(0x5d)) as u8
        ^ (j >> 3) as u8
}

fn fill<M: SharedMemory>(b: &mut ShmBuf<'_, M, Dirty>, dir: u64, seq: u32) -> usize {
    let len = msg_len(dir, seq);
    let mut m = vec![0u8; len];
    m[0..4].copy_from_slice(&seq.to_le_bytes());
    m[4..8].copy_from_slice(&(len as u32).to_le_bytes());
    for (j, x) in m.iter_mut().enumerate().skip(8) {
        *x = msg_byte(dir, seq, j);
    }
    b.write(0, &m).unwrap();
    b.set_len(len).unwrap();
    len
}

fn check(bytes: &[u8], dir: u64, seq: u32) {
    let len = msg_len(dir, seq);
    assert_eq!(bytes.len(), len, "dir {dir} message {seq}: length");
    let got_seq = u32::from_le_bytes(bytes[0..4].try_into().unwrap());
    assert_eq!(got_seq, seq, "dir {dir}: out of order, lost or duplicated");
    assert_eq!(
        u32::from_le_bytes(bytes[4..8].try_into().unwrap()) as usize,
        len
    );
    for (j, &x) in bytes.iter().enumerate().skip(8) {
        assert_eq!(
            x,
            msg_byte(dir, seq, j),
            "dir {dir} message {seq}: byte {j} corrupted"
        );
    }
}

struct Outcome {
    a_notifications: u32,
    b_notifications: u32,
    messages_each_way: u32,
}

fn run<const LINE: usize, E: Endian>(suppression: Suppression, seed: u64) -> Outcome {
    run_in::<LINE, E>(suppression, seed, None, MESSAGES)
}

/// [`run`] of `messages` each way over memory ordered as `order` says.
fn run_in<const LINE: usize, E: Endian>(
    suppression: Suppression,
    seed: u64,
    order: Option<WeakOrder>,
    messages: u32,
) -> Outcome {
    const _: () = assert!(RING1 >= Layout::legacy_at(RING0, NUM, 64).end());
    let l0 = Layout::legacy_at(RING0, NUM, LINE.max(16));
    let l1 = Layout::legacy_at(RING1, NUM, LINE.max(16));
    let mem = SimMemory::new(WINDOW, PEER_BASE).with_order(order);
    // Memory starts as garbage (nothing may rely on zeroed memory).
    mem.poke(0, &[0xa5; WINDOW]).unwrap();
    let core_a: SimCore<LINE> = mem.core(CacheConfig::write_back(seed));
    let core_b: SimCore<LINE> = mem.core(CacheConfig::write_back(seed ^ 0xb));
    let bells = Doorbells::default();

    let (a_out, b_out) = std::thread::scope(|s| {
        let a = s.spawn(|| {
            let _done = DoneOnDrop(&bells, A);
            let core = &core_a;
            let mut rng = SplitMix64::new(seed.wrapping_mul(3));
            bells.rendezvous(A, 1); // B has warmed its cache with stale lines
            let cfg = DriverConfig {
                suppression,
                write_flag_on_readable: false,
            };
            // SAFETY: every buffer handed to these rings is built over `core`.
            let mut tx = unsafe { Driver::<_, E, 16>::new(core, l0, cfg) }.unwrap();
            // SAFETY: as above.
            let mut rx = unsafe { Driver::<_, E, 16>::new(core, l1, cfg) }.unwrap();
            for k in 0..usize::from(NUM) {
                // SAFETY: slot k of each area, created once; afterwards each
                // moves only through the rings.
                let t = unsafe {
                    ShmBuf::<_, Dirty>::new_unchecked(core, AREA0.offset() + SLOT * k, SLOT)
                }
                .unwrap();
                tx.preload_used(t.clean().unwrap(), 0).unwrap();
                // SAFETY: as above.
                let r = unsafe {
                    ShmBuf::<_, Dirty>::new_unchecked(core, AREA1.offset() + SLOT * k, SLOT)
                }
                .unwrap();
                rx.add_writable(r.clean().unwrap()).unwrap();
            }
            // The kick reaches B once it runs (a pending doorbell).
            if rx.publish().unwrap() {
                bells.ring(B);
            }
            bells.rendezvous(A, 2); // rings initialised

            let mut free = Vec::new();
            let (mut sent, mut recv) = (0u32, 0u32);
            loop {
                let mut progress = false;
                while let Some(u) = tx.pop_used().unwrap() {
                    free.push(u.buf.recycle());
                    progress = true;
                }
                if sent < messages && !free.is_empty() {
                    for _ in 0..=rng.below(8) {
                        if sent == messages {
                            break;
                        }
                        let Some(mut b) = free.pop() else { break };
                        fill(&mut b, 0, sent);
                        tx.add_readable(b.clean().unwrap()).unwrap();
                        sent += 1;
                    }
                    if tx.publish().unwrap() {
                        bells.ring(B);
                    }
                    progress = true;
                }
                let mut reposted = 0;
                for _ in 0..=rng.below(8) {
                    let Some(u) = rx.pop_used().unwrap() else {
                        break;
                    };
                    let r = u.buf.invalidate().unwrap().validate(u.len).unwrap();
                    let mut bytes = vec![0u8; r.len()];
                    r.read(0, &mut bytes).unwrap();
                    check(&bytes, 1, recv);
                    recv += 1;
                    rx.add_writable(r.recycle().clean().unwrap()).unwrap();
                    reposted += 1;
                }
                if reposted > 0 {
                    if rx.publish().unwrap() {
                        bells.ring(B);
                    }
                    progress = true;
                }
                if sent == messages && recv == messages && free.len() == usize::from(NUM) {
                    break;
                }
                if rng.below(4) == 0 {
                    std::thread::yield_now();
                }
                if !progress {
                    let pending = tx.enable_interrupts().unwrap() | rx.enable_interrupts().unwrap();
                    if !pending {
                        bells.sleep(A);
                    }
                    if rng.below(2) == 0 {
                        tx.disable_interrupts().unwrap();
                        rx.disable_interrupts().unwrap();
                    }
                }
            }
            for st in [tx.stats(), rx.stats()] {
                assert_eq!(st.failures.total(), 0, "{st:?}");
            }
            assert_eq!(rx.stats().completed, messages);
            tx.stats().notifications_sent + rx.stats().notifications_sent
        });
        let b = s.spawn(|| {
            let _done = DoneOnDrop(&bells, B);
            let core = &core_b;
            let mut rng = SplitMix64::new(seed.wrapping_mul(5));
            // A warm cache full of stale lines: the first read of any line
            // without an invalidate returns garbage.
            let mut junk = vec![0u8; WINDOW];
            core.read(0, &mut junk).unwrap();
            bells.rendezvous(B, 1);
            bells.rendezvous(B, 2);
            let cfg = |area| DeviceConfig {
                suppression,
                ..DeviceConfig::new(area)
            };
            // SAFETY: the areas are disjoint; A's buffers over them are in
            // flight (owned by the rings) whenever B holds them.
            let mut rxd =
                unsafe { Device::<_, E, 16>::new(core, l0, cfg(AREA0), tables()) }.unwrap();
            // SAFETY: as above.
            let mut txd =
                unsafe { Device::<_, E, 16>::new(core, l1, cfg(AREA1), tables()) }.unwrap();
            let (mut sent, mut recv) = (0u32, 0u32);
            loop {
                let mut progress = false;
                let mut pushed = 0;
                for _ in 0..=rng.below(8) {
                    let Some(p) = rxd.pop_readable().unwrap() else {
                        break;
                    };
                    let r = p.buf.invalidate().unwrap().validate(p.len).unwrap();
                    let mut bytes = vec![0u8; r.len()];
                    r.read(0, &mut bytes).unwrap();
                    check(&bytes, 0, recv);
                    recv += 1;
                    rxd.push_used(p.head, r, 0).unwrap();
                    pushed += 1;
                }
                if pushed > 0 {
                    if rxd.publish_used().unwrap() {
                        bells.ring(A);
                    }
                    progress = true;
                }
                pushed = 0;
                for _ in 0..=rng.below(8) {
                    if sent == messages {
                        break;
                    }
                    let Some(p) = txd.pop_writable().unwrap() else {
                        break;
                    };
                    let mut b = p.buf;
                    let len = fill(&mut b, 1, sent);
                    txd.push_used(p.head, b.clean().unwrap(), len as u32)
                        .unwrap();
                    sent += 1;
                    pushed += 1;
                }
                if pushed > 0 {
                    if txd.publish_used().unwrap() {
                        bells.ring(A);
                    }
                    progress = true;
                }
                if sent == messages && recv == messages {
                    break;
                }
                if rng.below(4) == 0 {
                    std::thread::yield_now();
                }
                if !progress {
                    let pending =
                        rxd.enable_notifications().unwrap() | txd.enable_notifications().unwrap();
                    if !pending {
                        bells.sleep(B);
                    }
                    if rng.below(2) == 0 {
                        rxd.disable_notifications().unwrap();
                        txd.disable_notifications().unwrap();
                    }
                }
            }
            for st in [rxd.stats(), txd.stats()] {
                assert_eq!(st.failures.total(), 0, "{st:?}");
            }
            assert_eq!((rxd.held(), txd.held()), (0, 0));
            rxd.stats().notifications_sent + txd.stats().notifications_sent
        });
        (a.join(), b.join())
    });
    let (a_n, b_n) = match (a_out, b_out) {
        (Ok(a), Ok(b)) => (a, b),
        (a, b) => {
            let msg = |r: &std::thread::Result<u32>| match r {
                Ok(_) => "ok".to_owned(),
                Err(e) => e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default(),
            };
            panic!("side A: {}; side B: {}", msg(&a), msg(&b));
        }
    };
    // The cache rule: never invalidate a line written but not cleaned.
    for (name, core) in [("A", &core_a), ("B", &core_b)] {
        let st = core.stats();
        assert_eq!(
            st.dirty_lines_discarded, 0,
            "core {name} lost local writes: {st:?}"
        );
        assert_eq!(st.maintenance_outside_window, 0);
        assert!(
            !core.config().enabled || (st.evictions > 0 && st.fills > 0),
            "{st:?}"
        );
    }
    let db = bells.state.lock().unwrap();
    assert_eq!(db.rung[B], u64::from(a_n));
    assert_eq!(db.rung[A], u64::from(b_n));
    println!(
        "{suppression:?} LINE {LINE}: {messages} messages each way; doorbells A->B {a_n}, \
         B->A {b_n}; sleeps A {} B {}; cache A {:?}; cache B {:?}",
        db.sleeps[A],
        db.sleeps[B],
        core_a.stats(),
        core_b.stats()
    );
    if order.is_some() {
        conformance::link::assert_weakly_ordered(&[core_a.weak_stats(), core_b.weak_stats()]);
    }
    Outcome {
        a_notifications: a_n,
        b_notifications: b_n,
        messages_each_way: messages,
    }
}

#[test]
fn both_directions_flags_line64_legacy() {
    let o = run::<64, Legacy>(Suppression::Flags, 1);
    assert_eq!(o.messages_each_way, MESSAGES);
    assert!(o.a_notifications > 0 && o.b_notifications > 0);
}

/// Weak mode (`conformance::sim::WeakOrder`), flags, uncached: a side
/// that re-enables notifications must have its store visible before it
/// re-reads the index (the full fence), or both sleep.
#[test]
fn weak_uncached_both_directions_flags() {
    let o = run_in::<64, Legacy>(
        Suppression::Flags,
        61,
        conformance::link::weak_order(61, true),
        conformance::link::weak_count(),
    );
    assert!(o.a_notifications > 0 && o.b_notifications > 0);
}

/// Weak mode, `EVENT_IDX`, cached (32-byte lines).
#[test]
fn weak_both_directions_event_idx() {
    let o = run_in::<32, Virtio1>(
        Suppression::EventIdx,
        62,
        conformance::link::weak_order(62, false),
        conformance::link::weak_count(),
    );
    assert!(o.a_notifications > 0 && o.b_notifications > 0);
}

/// Weak mode, `EVENT_IDX`, uncached.
#[test]
fn weak_uncached_both_directions_event_idx() {
    let o = run_in::<32, Legacy>(
        Suppression::EventIdx,
        63,
        conformance::link::weak_order(63, true),
        conformance::link::weak_count(),
    );
    assert!(o.a_notifications > 0 && o.b_notifications > 0);
}

#[test]
fn both_directions_event_idx_line32_virtio1() {
    let o = run::<32, Virtio1>(Suppression::EventIdx, 2);
    // EVENT_IDX batches doorbells: far fewer than one per message.
    assert!(o.a_notifications > 0 && o.b_notifications > 0);
    assert!(
        u64::from(o.a_notifications) < u64::from(o.messages_each_way),
        "{} doorbells for {} messages",
        o.a_notifications,
        o.messages_each_way
    );
}

/// Deterministic cache scenario (no eviction): the driver must re-read the
/// device's `used.flags` from memory when it decides whether to notify.
/// Its cached copy of the used ring header still says `NO_NOTIFY` from the
/// previous publication; the device has since cleared it and gone idle.
/// Without the invalidate the wake-up would be lost.
#[test]
fn publish_rereads_the_device_flags() {
    let l0 = Layout::legacy_at(RING0, NUM, 64);
    let mem = SimMemory::new(WINDOW, PEER_BASE);
    let a: SimCore<64> = mem.core(CacheConfig::write_back(7).never_evict());
    let b: SimCore<64> = mem.core(CacheConfig::write_back(8).never_evict());
    let cfg = DriverConfig::default();
    // SAFETY: every buffer handed to it is built over `a`.
    let mut drv = unsafe { Driver::<_, Legacy, 16>::new(&a, l0, cfg) }.unwrap();
    // SAFETY: A's buffers over AREA0 are in flight whenever B holds them.
    let mut dev =
        unsafe { Device::<_, Legacy, 16>::new(&b, l0, DeviceConfig::new(AREA0), tables()) }
            .unwrap();
    let buf = |k: usize| {
        // SAFETY: slot k, created once.
        let mut t =
            unsafe { ShmBuf::<_, Dirty>::new_unchecked(&a, AREA0.offset() + SLOT * k, SLOT) }
                .unwrap();
        fill(&mut t, 0, k as u32);
        t.clean().unwrap()
    };
    dev.disable_notifications().unwrap();
    drv.add_readable(buf(0)).unwrap();
    assert!(
        !drv.publish().unwrap(),
        "the device asked not to be notified"
    );
    let p = dev.pop_readable().unwrap().unwrap();
    let r = p.buf.invalidate().unwrap().validate(p.len).unwrap();
    dev.push_used(p.head, r, 0).unwrap();
    let _ = dev.publish_used().unwrap();
    assert!(!dev.enable_notifications().unwrap(), "idle: going to sleep");
    drv.add_readable(buf(1)).unwrap();
    assert!(
        drv.publish().unwrap(),
        "the device is asleep and must be notified"
    );
    assert_eq!(
        a.stats().dirty_lines_discarded + b.stats().dirty_lines_discarded,
        0
    );
}

/// The mirror scenario: the device must re-read the driver's `avail.flags`
/// when it decides whether to interrupt. Its cached available-ring header
/// still says `NO_INTERRUPT` from when it popped; the driver has since
/// re-enabled interrupts and gone idle waiting for the second completion.
#[test]
fn publish_used_rereads_the_driver_flags() {
    let l0 = Layout::legacy_at(RING0, NUM, 64);
    let mem = SimMemory::new(WINDOW, PEER_BASE);
    let a: SimCore<64> = mem.core(CacheConfig::write_back(9).never_evict());
    let b: SimCore<64> = mem.core(CacheConfig::write_back(10).never_evict());
    let (mut drv, mut dev) = ring0_pair(&a, &b, l0);
    drv.disable_interrupts().unwrap();
    for k in 0..2 {
        // SAFETY: slot k, created once.
        let mut t =
            unsafe { ShmBuf::<_, Dirty>::new_unchecked(&a, AREA0.offset() + SLOT * k, SLOT) }
                .unwrap();
        fill(&mut t, 0, k as u32);
        drv.add_readable(t.clean().unwrap()).unwrap();
    }
    assert!(drv.publish().unwrap());
    let p0 = dev.pop_readable().unwrap().unwrap();
    let p1 = dev.pop_readable().unwrap().unwrap();
    dev.push_used(p0.head, p0.buf, 0).unwrap();
    assert!(
        !dev.publish_used().unwrap(),
        "the driver asked not to be interrupted"
    );
    assert_eq!(drv.pop_used().unwrap().unwrap().id, p0.head);
    assert!(!drv.enable_interrupts().unwrap(), "idle: going to sleep");
    dev.push_used(p1.head, p1.buf, 0).unwrap();
    assert!(
        dev.publish_used().unwrap(),
        "the driver is asleep and must be interrupted"
    );
    assert_eq!(
        a.stats().dirty_lines_discarded + b.stats().dirty_lines_discarded,
        0
    );
}

/// A remote whose cache holds stale lines of the used ring (warm from
/// before the master laid the ring out, or from a previous session) must
/// not write them back over what the master put there. rpmsg-lite's master
/// parks its transmit buffers as used entries (vector 01); the device's
/// first partial store into the last entry's line (`avail_event`, when
/// `EVENT_IDX` re-arms on an empty ring) once wrote the stale bytes around
/// it back over the parked entry, and the master then reaped a garbage
/// length. `Device::new` invalidates the whole used ring at attach.
#[test]
fn device_attach_discards_stale_used_ring_lines() {
    let l0 = Layout::legacy_at(RING0, NUM, 32);
    let mem = SimMemory::new(WINDOW, PEER_BASE);
    mem.poke(0, &[0xa5; WINDOW]).unwrap();
    let a: SimCore<64> = mem.core(CacheConfig::write_back(7).never_evict());
    let b: SimCore<32> = mem.core(CacheConfig::write_back(8).never_evict());
    // The remote's cache is warm with the garbage (every line, clean).
    let mut junk = vec![0u8; WINDOW];
    b.read(0, &mut junk).unwrap();
    let cfg = DriverConfig {
        suppression: Suppression::EventIdx,
        write_flag_on_readable: false,
    };
    // SAFETY: every buffer handed to it is built over `a`.
    let mut drv = unsafe { Driver::<_, Legacy, 16>::new(&a, l0, cfg) }.unwrap();
    for k in 0..usize::from(NUM) {
        // SAFETY: slot k, created once; afterwards it moves only through the ring.
        let t = unsafe { ShmBuf::<_, Dirty>::new_unchecked(&a, AREA0.offset() + SLOT * k, SLOT) }
            .unwrap();
        drv.preload_used(t.clean().unwrap(), 0).unwrap();
    }
    let dcfg = DeviceConfig {
        suppression: Suppression::EventIdx,
        ..DeviceConfig::new(AREA0)
    };
    // SAFETY: A's buffers over AREA0 are in flight whenever B holds them.
    let mut dev = unsafe { Device::<_, Legacy, 16>::new(&b, l0, dcfg, tables()) }.unwrap();
    // Nothing available: the device re-arms `avail_event` (a store into the
    // line of the last used entry) and cleans it.
    assert!(dev.pop_readable().unwrap().is_none());
    let mut reaped = 0;
    while let Some(u) = drv.pop_used().unwrap() {
        assert_eq!(
            u.len, 0,
            "parked entry {} came back with a stale length",
            u.id
        );
        reaped += 1;
    }
    assert_eq!(reaped, NUM, "every parked buffer comes back");
}

/// A driver core and a device core over one ring at `RING0` (alignment 64)
/// with never-evicting caches, `LINE`-byte lines on the device, 64 on the
/// driver; the driver's 16 buffers are slots 0..16 of `AREA0`.
fn pinned_pair<const LINE: usize>(mem: &SimMemory) -> (SimCore<64>, SimCore<LINE>) {
    (
        mem.core(CacheConfig::write_back(11).never_evict()),
        mem.core(CacheConfig::write_back(12).never_evict()),
    )
}

/// Ring `l0` between `a` (the driver, default configuration) and `b` (the
/// device, buffers in AREA0), as most of the pinned-cache tests use it.
fn ring0_pair<'m, const LINE: usize>(
    a: &'m SimCore<64>,
    b: &'m SimCore<LINE>,
    l0: Layout,
) -> (
    Driver<'m, SimCore<64>, Legacy, 16>,
    Device<'m, SimCore<LINE>, Legacy, 16>,
) {
    // SAFETY: every buffer the tests hand the driver is built over `a`.
    let drv = unsafe { Driver::<_, Legacy, 16>::new(a, l0, DriverConfig::default()) }.unwrap();
    // SAFETY: A's buffers over AREA0 are in flight whenever B holds them.
    let dev =
        unsafe { Device::<_, Legacy, 16>::new(b, l0, DeviceConfig::new(AREA0), tables()) }.unwrap();
    (drv, dev)
}

fn slot_buf<M: SharedMemory>(a: &M, k: usize) -> ShmBuf<'_, M, Clean> {
    // SAFETY: slot k of AREA0, created once per test; afterwards it moves
    // only through the ring.
    let mut t =
        unsafe { ShmBuf::<_, Dirty>::new_unchecked(a, AREA0.offset() + SLOT * k, SLOT) }.unwrap();
    fill(&mut t, 0, k as u32);
    t.clean().unwrap()
}

/// The device invalidates an available-entry line once per fetch of
/// `avail.idx`, and again after the next fetch. With 32-byte lines the
/// first line of the available ring holds `flags`, `idx` and entries
/// 0..14 (fresh with every fetch of the index, never invalidated for an
/// entry); entries 14 and 15 share the next line. The device reads entry
/// 14 in one pass (caching that line while entry 15 is still empty), then
/// the driver posts entry 15: the device's next pass must drop the line it
/// already invalidated once, or it reads the empty entry (descriptor 0,
/// which the driver did not post there).
#[test]
fn device_invalidates_an_entry_line_again_after_each_index_fetch() {
    let l0 = Layout::legacy_at(RING0, NUM, 64);
    let mem = SimMemory::new(WINDOW, PEER_BASE);
    let (a, b) = pinned_pair::<32>(&mem);
    let (mut drv, mut dev) = ring0_pair(&a, &b, l0);
    let mut ids = Vec::new();
    for k in 0..15 {
        ids.push(drv.add_readable(slot_buf(&a, k)).unwrap());
    }
    let _ = drv.publish().unwrap();
    let before = b.stats().invalidate_line_commands;
    let mut held = Vec::new();
    for &id in &ids {
        let p = dev.pop_readable().unwrap().unwrap();
        assert_eq!(p.head, id);
        held.push(p);
    }
    // One line for the index, one per descriptor, one for entry 14's line:
    // entries 0..14 beside the index cost nothing.
    assert_eq!(b.stats().invalidate_line_commands - before, 1 + 15 + 1);
    for p in held {
        dev.push_used(p.head, p.buf, 0).unwrap();
    }
    let _ = dev.publish_used().unwrap();
    while let Some(u) = drv.pop_used().unwrap() {
        // Back in the order taken, so the next add reuses the last id.
        drop(u.buf);
    }
    let id = drv.add_readable(slot_buf(&a, 15)).unwrap();
    assert_ne!(id, 0);
    let _ = drv.publish().unwrap();
    let p = dev.pop_readable().unwrap().unwrap();
    assert_eq!(
        p.head, id,
        "entry 15 read from a line cached before it was posted"
    );
    assert_eq!(dev.stats().failures.total(), 0);
}

/// The driver's mirror: with 64-byte lines the first line of the used ring
/// holds `flags`, `idx` and entries 0..7 (entry 7 runs into the next
/// line, which also holds entries 8..15). The driver reaps entries 0..8
/// (caching the second line while entry 8 is empty), then the device
/// returns entry 8: the next reap must invalidate that line again.
#[test]
fn driver_invalidates_a_used_line_again_after_each_index_fetch() {
    let l0 = Layout::legacy_at(RING0, NUM, 64);
    let mem = SimMemory::new(WINDOW, PEER_BASE);
    let (a, b) = pinned_pair::<64>(&mem);
    let (mut drv, mut dev) = ring0_pair(&a, &b, l0);
    for k in 0..16 {
        drv.add_readable(slot_buf(&a, k)).unwrap();
    }
    let _ = drv.publish().unwrap();
    let mut held = Vec::new();
    for _ in 0..9 {
        held.push(dev.pop_readable().unwrap().unwrap());
    }
    let last = held.pop().unwrap();
    for p in held {
        dev.push_used(p.head, p.buf, 0).unwrap();
    }
    let _ = dev.publish_used().unwrap();
    let before = a.stats().invalidate_line_commands;
    let mut reaped = 0;
    while let Some(u) = drv.pop_used().unwrap() {
        drop(u.buf);
        reaped += 1;
    }
    assert_eq!(reaped, 8);
    // The index twice (the pass and the empty re-check), entry 7's second
    // line once: entries 0..7 beside the index cost nothing.
    assert_eq!(a.stats().invalidate_line_commands - before, 2 + 1);
    dev.push_used(last.head, last.buf, 0).unwrap();
    let _ = dev.publish_used().unwrap();
    let u = drv
        .pop_used()
        .expect("used entry 8 read from a line cached before it was written")
        .unwrap();
    assert_eq!(u.id, last.head);
    assert_eq!(drv.stats().failures.total(), 0);
}

/// On non-coherent memory a ring entry that already holds what is written
/// is not stored again. In the line of the index (which every publication
/// stores and cleans, so the line goes back whole) a stray write that
/// reached memory under a cached line is repaired by the next publication;
/// a used entry in another line is compared with the device's view, so a
/// stray write there is repaired once that line has left the device's
/// cache. Here one buffer (id 0, same length) goes round 20 times, so
/// positions 0, 1 and 2 come round again holding the same entries, and a
/// stray write hits memory just before: the used entry 0 (bytes 4..12 of
/// the used ring, in the device's 16-byte index line), the available entry
/// 1 (in the driver's index line, 64-byte lines) and the used entry 2
/// (bytes 20..28: not in the index line; its line is evicted from the
/// device's cache first).
#[test]
fn a_stray_write_under_an_unchanged_ring_entry_is_repaired() {
    let l0 = Layout::legacy_at(RING0, NUM, 64);
    let mem = SimMemory::new(WINDOW, PEER_BASE);
    let (a, b) = pinned_pair::<16>(&mem);
    let (mut drv, mut dev) = ring0_pair(&a, &b, l0);
    let mut buf = slot_buf(&a, 0);
    for pos in 0..20u16 {
        if pos == NUM {
            mem.poke(l0.used_entry_offset(0), &[9, 0, 0, 0]).unwrap();
        }
        if pos == NUM + 1 {
            mem.poke(l0.avail_entry_offset(1), &[7, 0]).unwrap();
        }
        if pos == NUM + 2 {
            mem.poke(l0.used_entry_offset(2), &[9, 0, 0, 0]).unwrap();
            b.evict_line(l0.used_entry_offset(2)).unwrap();
        }
        let id = drv.add_readable(buf).unwrap();
        let _ = drv.publish().unwrap();
        let p = dev
            .pop_readable()
            .unwrap()
            .unwrap_or_else(|| panic!("position {pos}: nothing available"));
        assert_eq!(p.head, id, "position {pos}: the available entry");
        dev.push_used_whole(p.head, p.buf).unwrap();
        let _ = dev.publish_used().unwrap();
        let u = drv
            .pop_used()
            .unwrap_or_else(|e| panic!("position {pos}: {e}"))
            .unwrap();
        assert_eq!(u.id, id, "position {pos}: the used entry");
        let mut d = u.buf.recycle();
        d.set_len(SLOT).unwrap();
        buf = d.clean().unwrap();
    }
    assert_eq!(drv.stats().failures.total(), 0);
    assert_eq!(dev.stats().failures.total(), 0);
}

/// A used entry that comes round unchanged costs the device no write-back
/// wherever it lies: on the third lap of one buffer (id 0, same length
/// from the first lap's second position on) every publication cleans the
/// line of `used.idx` and nothing else, for entries inside that 16-byte
/// line (0) and outside it (2..16).
#[test]
fn an_unchanged_used_entry_is_not_written_back() {
    let l0 = Layout::legacy_at(RING0, NUM, 64);
    let mem = SimMemory::new(WINDOW, PEER_BASE);
    let (a, b) = pinned_pair::<16>(&mem);
    let (mut drv, mut dev) = ring0_pair(&a, &b, l0);
    let mut buf = slot_buf(&a, 0);
    for pos in 0..3 * NUM {
        let _ = drv.add_readable(buf).unwrap();
        let _ = drv.publish().unwrap();
        let p = dev.pop_readable().unwrap().unwrap();
        let cleans = b.stats().clean_line_commands;
        dev.push_used_whole(p.head, p.buf).unwrap();
        let _ = dev.publish_used().unwrap();
        if pos >= 2 * NUM {
            assert_eq!(
                b.stats().clean_line_commands - cleans,
                1,
                "position {pos}: the index's line only"
            );
        }
        let mut d = drv.pop_used().unwrap().unwrap().buf.recycle();
        d.set_len(SLOT).unwrap();
        buf = d.clean().unwrap();
    }
    assert_eq!(drv.stats().failures.total(), 0);
}

/// After the device answered "no notification", the driver's next
/// publication goes straight to the fence and reads `used.flags` once
/// (not an unfenced read that would say "no" again, then the fenced one);
/// a device that asks again is still heard at the next publication.
#[test]
fn a_declined_publication_reads_the_flags_once_the_next_time() {
    let l0 = Layout::legacy_at(RING0, NUM, 64);
    let mem = SimMemory::new(WINDOW, PEER_BASE);
    let (a, b) = pinned_pair::<32>(&mem);
    let (mut drv, mut dev) = ring0_pair(&a, &b, l0);
    dev.disable_notifications().unwrap();
    drv.add_readable(slot_buf(&a, 0)).unwrap();
    assert!(!drv.publish().unwrap(), "the device said no");
    let before = a.stats().invalidate_line_commands;
    drv.add_readable(slot_buf(&a, 1)).unwrap();
    assert!(!drv.publish().unwrap(), "still no");
    assert_eq!(
        a.stats().invalidate_line_commands - before,
        1,
        "one (fenced) read of used.flags"
    );
    let _ = dev.enable_notifications().unwrap();
    drv.add_readable(slot_buf(&a, 2)).unwrap();
    assert!(drv.publish().unwrap(), "the device asks again: heard");
}

/// The unfenced first read of the peer's suppression field takes the line
/// as the publisher's cache holds it: a peer waiting for a doorbell costs
/// no line operation (the ping-pong of an echo), a stale "yes" can only
/// make a doorbell spurious, and the line is current again at the next
/// fetch of the index that shares it. Driver side (`used.flags`) first,
/// then the device's mirror (`avail.flags`).
#[test]
fn the_unfenced_suppression_read_takes_the_cached_line() {
    let l0 = Layout::legacy_at(RING0, NUM, 64);
    let mem = SimMemory::new(WINDOW, PEER_BASE);
    let (a, b) = pinned_pair::<32>(&mem);
    let (mut drv, mut dev) = ring0_pair(&a, &b, l0);
    // The first publication loads used.flags' line: the device waits.
    drv.add_readable(slot_buf(&a, 0)).unwrap();
    assert!(drv.publish().unwrap(), "the device waits: a doorbell");
    let before = a.stats().invalidate_line_commands;
    drv.add_readable(slot_buf(&a, 1)).unwrap();
    assert!(drv.publish().unwrap(), "still waiting: a doorbell");
    assert_eq!(
        a.stats().invalidate_line_commands - before,
        0,
        "the answer came from the cached line"
    );
    // The device stops listening behind the driver's cached copy: the next
    // doorbell is spurious (never a lost one) ...
    dev.disable_notifications().unwrap();
    drv.add_readable(slot_buf(&a, 2)).unwrap();
    assert!(drv.publish().unwrap(), "stale yes: a spurious doorbell");
    // ... until a fetch of used.idx reloads the line.
    for _ in 0..3 {
        let p = dev.pop_readable().unwrap().unwrap();
        dev.push_used(p.head, p.buf, 0).unwrap();
    }
    let _ = dev.publish_used().unwrap();
    for _ in 0..3 {
        drop(drv.pop_used().unwrap().expect("returned"));
    }
    drv.add_readable(slot_buf(&a, 3)).unwrap();
    assert!(!drv.publish().unwrap(), "the fetch refreshed the line: no");
    // A stale "no" never loses a wake-up: the device listens again, and the
    // driver's cached line (which says NO_NOTIFY) is read fresh after the
    // fence.
    assert!(dev.pop_readable().unwrap().is_some());
    assert!(!dev.enable_notifications().unwrap());
    drv.add_readable(slot_buf(&a, 4)).unwrap();
    assert!(drv.publish().unwrap(), "the device listens again: heard");

    // The device's mirror: the driver waits for its used buffers.
    let p = dev.pop_readable().unwrap().unwrap();
    dev.push_used(p.head, p.buf, 0).unwrap();
    assert!(dev.publish_used().unwrap(), "the driver waits: a doorbell");
    drv.add_readable(slot_buf(&a, 5)).unwrap();
    let _ = drv.publish().unwrap();
    let p = dev.pop_readable().unwrap().unwrap();
    dev.push_used(p.head, p.buf, 0).unwrap();
    let before = b.stats().invalidate_line_commands;
    assert!(dev.publish_used().unwrap(), "still waiting: a doorbell");
    assert_eq!(
        b.stats().invalidate_line_commands - before,
        0,
        "the answer came from the cached line"
    );
    assert_eq!(drv.stats().failures.total(), 0);
    assert_eq!(dev.stats().failures.total(), 0);
}

/// A reaped buffer back in the driver's hands, 16 bytes long again.
fn again<'m>(buf: ShmBuf<'m, SimCore<64>, Received>) -> ShmBuf<'m, SimCore<64>, Clean> {
    let mut d = buf.recycle();
    d.set_len(16).unwrap();
    d.clean().unwrap()
}

/// Adds `buf` for the device to read and publishes; its id.
fn round<'m>(
    drv: &mut Driver<'m, SimCore<64>, Legacy, 16>,
    buf: ShmBuf<'m, SimCore<64>, Clean>,
) -> u16 {
    let id = drv.add_readable(buf).unwrap();
    let _ = drv.publish().unwrap();
    id
}

/// A descriptor corrupted in memory (here by a stray write that bypasses
/// the driver's cache) costs one message, not the buffer: the device
/// refuses it (counted) and hands it back as a used entry of length 0,
/// and the driver, which otherwise leaves an unchanged descriptor alone on
/// non-coherent memory (no write, no clean), writes it afresh when the
/// buffer comes back that way.
#[test]
fn a_rejected_descriptor_comes_back_empty_and_is_written_again() {
    let l0 = Layout::legacy_at(RING0, NUM, 64);
    let mem = SimMemory::new(WINDOW, PEER_BASE);
    let (a, b) = pinned_pair::<32>(&mem);
    let (mut drv, mut dev) = ring0_pair(&a, &b, l0);
    // An honest round trip: descriptor 0 names slot 0.
    let id = round(&mut drv, slot_buf(&a, 0));
    let p = dev.pop_readable().unwrap().unwrap();
    dev.push_used_whole(p.head, p.buf).unwrap();
    let _ = dev.publish_used().unwrap();
    let u = drv.pop_used().unwrap().unwrap();
    assert_eq!(u.id, id);
    // Once more with 16 bytes (the length changes: written).
    assert_eq!(round(&mut drv, again(u.buf)), id);
    let p = dev.pop_readable().unwrap().unwrap();
    dev.push_used_whole(p.head, p.buf).unwrap();
    let _ = dev.publish_used().unwrap();
    let u = drv.pop_used().unwrap().unwrap();
    // Re-added unchanged: no clean of the descriptor's line, nor of the
    // available entry (it shares the index's line and already holds the
    // id: the index's clean writes it back).
    let buf = again(u.buf);
    let cleans = a.stats().clean_line_commands;
    assert_eq!(round(&mut drv, buf), id);
    assert_eq!(
        a.stats().clean_line_commands - cleans,
        1,
        "the index's line only"
    );
    let p = dev.pop_readable().unwrap().unwrap();
    dev.push_used_whole(p.head, p.buf).unwrap();
    let _ = dev.publish_used().unwrap();
    let buf = again(drv.pop_used().unwrap().unwrap().buf);
    // The descriptor's address is corrupted in memory, behind the driver's
    // (clean, cached) copy of its line.
    mem.poke(l0.desc_entry_offset(id), &0xdead_beef_u64.to_le_bytes())
        .unwrap();
    assert_eq!(round(&mut drv, buf), id);
    assert!(matches!(
        dev.pop_readable(),
        Err(vring::Error::AddressOutsideWindow)
    ));
    assert!(dev.pop_readable().unwrap().is_none());
    assert_eq!(dev.stats().rejected_returned, 1);
    let _ = dev.publish_used().unwrap();
    let u = drv
        .pop_used()
        .unwrap()
        .expect("the rejected buffer comes back");
    assert_eq!((u.id, u.len), (id, 0));
    // Added again: written afresh, so the device takes it.
    assert_eq!(round(&mut drv, again(u.buf)), id);
    let p = dev.pop_readable().expect("descriptor written afresh");
    assert_eq!(p.unwrap().buf.offset(), AREA0.offset());
    assert_eq!(drv.stats().failures.total(), 0);
    assert_eq!(dev.stats().failures.total(), 1);
}

/// Flags mode, driver side: a publication the device declined reads
/// `used.flags` after the fence, which loads the line holding `used.idx`
/// too; the look that straight follows it (`pop_used_after_publish`)
/// reads the index from that line instead of invalidating it once more.
/// What the device publishes after that load comes with a doorbell (the
/// driver asks for interrupts), and the look after the doorbell is fresh.
#[test]
fn the_drivers_last_look_reads_the_index_its_publication_loaded() {
    let l0 = Layout::legacy_at(RING0, NUM, 64);
    let mem = SimMemory::new(WINDOW, PEER_BASE);
    let (a, b) = pinned_pair::<32>(&mem);
    let (mut drv, mut dev) = ring0_pair(&a, &b, l0);
    dev.disable_notifications().unwrap();
    drv.add_readable(slot_buf(&a, 0)).unwrap();
    assert!(!drv.publish().unwrap(), "the device said no (fenced read)");
    let before = a.stats().invalidate_line_commands;
    assert!(drv.pop_used_after_publish().unwrap().is_none());
    assert_eq!(
        a.stats().invalidate_line_commands - before,
        0,
        "the last look invalidates nothing: the publication loaded used.idx's line"
    );
    let p = dev.pop_readable().unwrap().unwrap();
    dev.push_used(p.head, p.buf, 0).unwrap();
    assert!(
        dev.publish_used().unwrap(),
        "published after the driver's load: the device rings"
    );
    let before = a.stats().invalidate_line_commands;
    let u = drv
        .pop_used()
        .unwrap()
        .expect("the look after the doorbell fetches used.idx afresh");
    assert_eq!(a.stats().invalidate_line_commands - before, 1);
    assert_eq!(u.len, 0);
    assert_eq!(drv.stats().failures.total(), 0);
}

/// The device's mirror of the test above: a publication the driver
/// declined loads `avail.idx`'s line with the fenced read of `avail.flags`,
/// and the device's last look reads the index from it.
#[test]
fn the_devices_last_look_reads_the_index_its_publication_loaded() {
    let l0 = Layout::legacy_at(RING0, NUM, 64);
    let mem = SimMemory::new(WINDOW, PEER_BASE);
    let (a, b) = pinned_pair::<32>(&mem);
    let (mut drv, mut dev) = ring0_pair(&a, &b, l0);
    drv.disable_interrupts().unwrap();
    drv.add_readable(slot_buf(&a, 0)).unwrap();
    let _ = drv.publish().unwrap();
    let p = dev.pop_readable().unwrap().unwrap();
    dev.push_used(p.head, p.buf, 0).unwrap();
    assert!(
        !dev.publish_used().unwrap(),
        "the driver said no (fenced read)"
    );
    let before = b.stats().invalidate_line_commands;
    assert!(dev.pop_readable_after_publish().unwrap().is_none());
    assert_eq!(
        b.stats().invalidate_line_commands - before,
        0,
        "the last look invalidates nothing: the publication loaded avail.idx's line"
    );
    let back = again(drv.pop_used().unwrap().unwrap().buf);
    drv.add_readable(back).unwrap();
    assert!(
        drv.publish().unwrap(),
        "published after the device's load: the driver rings"
    );
    let p = dev
        .pop_readable()
        .unwrap()
        .expect("the look after the doorbell fetches avail.idx afresh");
    assert_eq!(p.buf.offset(), AREA0.offset());
    assert_eq!(dev.stats().failures.total(), 0);
}

/// A driver that asks for no interrupts after its publication loaded
/// `used.idx`'s line polls from then on, and the device no longer rings:
/// even a look "after the publication" must fetch the index afresh, not
/// read the loaded line (which predates what the device published without
/// a doorbell).
#[test]
fn a_look_after_the_suppression_field_changed_is_fresh() {
    let l0 = Layout::legacy_at(RING0, NUM, 64);
    let mem = SimMemory::new(WINDOW, PEER_BASE);
    let (a, b) = pinned_pair::<32>(&mem);
    let (mut drv, mut dev) = ring0_pair(&a, &b, l0);
    dev.disable_notifications().unwrap();
    drv.add_readable(slot_buf(&a, 0)).unwrap();
    assert!(!drv.publish().unwrap(), "the device said no (fenced read)");
    drv.disable_interrupts().unwrap();
    let p = dev.pop_readable().unwrap().unwrap();
    dev.push_used(p.head, p.buf, 0).unwrap();
    assert!(
        !dev.publish_used().unwrap(),
        "no doorbell: the driver polls"
    );
    assert!(
        drv.pop_used_after_publish().unwrap().is_some(),
        "the poll sees the entry published without a doorbell"
    );
}
