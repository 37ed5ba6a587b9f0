//! loom models of the ring handshake.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p vring --release --test loom`.
//!
//! The shared window is modelled with `loom` primitives: ring indices,
//! flags and event fields are `loom` atomics (the ring accesses them only
//! through `load_u16_acquire` / `store_u16_release`), every other byte is a
//! `loom::cell::UnsafeCell`, so a descriptor, entry or payload read that is
//! not ordered after its write by the index handshake is reported as a
//! causality violation. The ring's fences go through the window
//! ([`SharedMemory::full_fence`]), which this model implements with `loom`'s.
//!
//! 1. `publish_then_observe`: the driver publishes two buffers one by one
//!    while the device pops; every popped buffer is intact and in order, and
//!    the driver reaps exactly what the device returned.
//! 2. `no_lost_wakeup_*`: both sides sleep on a doorbell only after
//!    re-enabling notifications and re-checking (flags and `EVENT_IDX`
//!    modes). A lost wake-up leaves a thread blocked forever, which loom
//!    reports as a deadlock.
//! 3. `event_idx_rearms_on_empty`: `EVENT_IDX` with notifications left on
//!    and never re-enabled by hand: both sides sleep as soon as a pop finds
//!    their ring empty. Only the re-arm inside `pop_readable` / `pop_used`
//!    (store, fence, re-check) keeps the second message and the second
//!    completion from being lost.
//! 4. `one_fence_per_pass_device`: the one-way stream as the rpmsg remote
//!    runs it: the device pops one message, returns it with
//!    `publish_used_and_rearm` (publication and re-arm under one fence) and
//!    sleeps once a pop finds the ring empty, which then pays no fence; the
//!    driver's `publish` takes the fence-free path whenever the device asks
//!    for the doorbell. Weakening that one fence (`Device::publish`) to
//!    `Release` makes loom report the lost wake-up (a deadlock).
//! 5. `one_fence_per_pass_driver`: the same on the driver's receive ring
//!    (the master posting buffers back with `publish_and_rearm`).
#![cfg(loom)]
#![allow(clippy::unwrap_used, unsafe_code)]

use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicU16, Ordering};
use loom::sync::{Arc, Condvar, Mutex};

use ipc_traits::buf::{Dirty, ShmBuf};
use ipc_traits::shm::{ErrorType, SharedMemory, ShmError};
use vring::{
    BufferArea, Device, DeviceConfig, DeviceTables, Driver, DriverConfig, Layout, Legacy,
    Suppression,
};

/// Device tables for the test's life.
fn tables<const N: usize>() -> &'static DeviceTables<N> {
    Box::leak(Box::default())
}

const NUM: u16 = 2;
/// desc 0..32, avail 32..42, used 44..66.
const L: Layout = Layout::legacy(NUM, 4);
const AREA: BufferArea = BufferArea::new(80, 32);
const WINDOW: usize = 112;
const SLOT: usize = 16;

/// Executions explored per model (reported by `--nocapture`).
static ITERATIONS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn count() {
    ITERATIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

fn report(name: &str) {
    let n = ITERATIONS.swap(0, std::sync::atomic::Ordering::Relaxed);
    println!("loom model {name}: {n} executions");
    assert!(n > 1, "the model explored a single interleaving");
}

/// The shared window in loom primitives.
struct LoomMem {
    bytes: Vec<UnsafeCell<u8>>,
    indices: Vec<(usize, AtomicU16)>,
}

// SAFETY: every byte access goes through `loom::cell::UnsafeCell`, which
// checks (and reports) unsynchronised concurrent access; the index fields
// are loom atomics.
unsafe impl Sync for LoomMem {}
// SAFETY: as above; nothing is tied to a thread.
unsafe impl Send for LoomMem {}

impl LoomMem {
    fn new() -> Self {
        let fields = [
            L.avail_offset(),
            L.avail_offset() + 2,
            L.used_event_offset(),
            L.used_offset(),
            L.used_offset() + 2,
            L.avail_event_offset(),
        ];
        Self {
            bytes: (0..WINDOW).map(|_| UnsafeCell::new(0)).collect(),
            indices: fields.iter().map(|&o| (o, AtomicU16::new(0))).collect(),
        }
    }

    fn index(&self, offset: usize) -> Result<&AtomicU16, ShmError> {
        self.indices
            .iter()
            .find(|(o, _)| *o == offset)
            .map(|(_, a)| a)
            .ok_or(ShmError::Unavailable)
    }

    fn check(&self, offset: usize, len: usize) -> Result<(), ShmError> {
        ipc_traits::shm::check_range(WINDOW, offset, len)?;
        // A byte access to an index field would bypass the atomics.
        if self
            .indices
            .iter()
            .any(|&(o, _)| o < offset + len && offset < o + 2)
            && len != 0
        {
            return Err(ShmError::Unavailable);
        }
        Ok(())
    }
}

impl ErrorType for LoomMem {
    type Error = ShmError;
}

impl SharedMemory for LoomMem {
    const LINE: usize = 1;
    fn len(&self) -> usize {
        WINDOW
    }
    fn peer_base(&self) -> u64 {
        0x1000
    }
    fn read(&self, offset: usize, dst: &mut [u8]) -> Result<(), ShmError> {
        self.check(offset, dst.len())?;
        for (i, d) in dst.iter_mut().enumerate() {
            // SAFETY: loom tracks the access; the pointer is valid.
            *d = self.bytes[offset + i].with(|p| unsafe { *p });
        }
        Ok(())
    }
    fn write(&self, offset: usize, src: &[u8]) -> Result<(), ShmError> {
        // Initialisation zeroes whole areas, index fields included: the
        // atomics start at zero anyway, so skip those bytes.
        ipc_traits::shm::check_range(WINDOW, offset, src.len())?;
        for (i, &s) in src.iter().enumerate() {
            let o = offset + i;
            if self.indices.iter().any(|&(f, _)| o == f || o == f + 1) {
                if s != 0 {
                    return Err(ShmError::Unavailable);
                }
                continue;
            }
            // SAFETY: loom tracks the access; the pointer is valid.
            self.bytes[o].with_mut(|p| unsafe { *p = s });
        }
        Ok(())
    }
    fn release_fence(&self) {
        loom::sync::atomic::fence(Ordering::Release);
    }
    fn acquire_fence(&self) {
        loom::sync::atomic::fence(Ordering::Acquire);
    }
    fn full_fence(&self) {
        loom::sync::atomic::fence(Ordering::SeqCst);
    }
    fn load_u16_acquire(&self, offset: usize) -> Result<u16, ShmError> {
        Ok(self.index(offset)?.load(Ordering::Acquire))
    }
    fn store_u16_release(&self, offset: usize, value: u16) -> Result<(), ShmError> {
        self.index(offset)?.store(value, Ordering::Release);
        Ok(())
    }
    fn load_u32_acquire(&self, _: usize) -> Result<u32, ShmError> {
        Err(ShmError::Unavailable)
    }
    fn store_u32_release(&self, _: usize, _: u32) -> Result<(), ShmError> {
        Err(ShmError::Unavailable)
    }
    fn clean(&self, offset: usize, len: usize) -> Result<(), ShmError> {
        ipc_traits::shm::check_range(WINDOW, offset, len)
    }
    fn invalidate(&self, offset: usize, len: usize) -> Result<(), ShmError> {
        ipc_traits::shm::check_range(WINDOW, offset, len)
    }
}

/// A doorbell: a flag under a mutex and a condition variable.
#[derive(Default)]
struct Bell {
    rung: Mutex<bool>,
    cv: Condvar,
}

impl Bell {
    fn ring(&self) {
        *self.rung.lock().unwrap() = true;
        self.cv.notify_one();
    }
    fn wait(&self) {
        let mut g = self.rung.lock().unwrap();
        while !*g {
            g = self.cv.wait(g).unwrap();
        }
        *g = false;
    }
}

fn slot(mem: &LoomMem, k: usize, text: u8) -> ShmBuf<'_, LoomMem, ipc_traits::buf::Clean> {
    // SAFETY: slot k is created once per model iteration.
    let mut b =
        unsafe { ShmBuf::<_, Dirty>::new_unchecked(mem, AREA.offset() + SLOT * k, SLOT) }.unwrap();
    b.write(0, &[text; 4]).unwrap();
    b.clean().unwrap()
}

fn driver(mem: &LoomMem, s: Suppression) -> Driver<'_, LoomMem, Legacy, 2> {
    let cfg = DriverConfig {
        suppression: s,
        write_flag_on_readable: false,
    };
    // SAFETY: every buffer handed to it is built over `mem`.
    unsafe { Driver::new(mem, L, cfg) }.unwrap()
}

fn device(mem: &LoomMem, s: Suppression) -> Device<'_, LoomMem, Legacy, 2> {
    let cfg = DeviceConfig {
        suppression: s,
        ..DeviceConfig::new(AREA)
    };
    // SAFETY: the driver's buffers over AREA are in flight whenever the
    // device holds them.
    unsafe { Device::new(mem, L, cfg, tables()) }.unwrap()
}

fn pop_and_check(dev: &mut Device<'_, LoomMem, Legacy, 2>, expect: &mut u8) -> bool {
    let Some(p) = dev.pop_readable().unwrap() else {
        return false;
    };
    let r = p.buf.invalidate().unwrap().validate(p.len).unwrap();
    let mut got = [0u8; 4];
    r.read(0, &mut got).unwrap();
    assert_eq!(got, [*expect; 4], "torn or reordered payload");
    *expect += 1;
    dev.push_used(p.head, r, 0).unwrap();
    true
}

#[test]
fn publish_then_observe() {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = None;
    b.check(|| {
        count();
        let mem = Arc::new(LoomMem::new());
        let mut drv = driver(&mem, Suppression::Flags);
        let m2 = mem.clone();
        let t = loom::thread::spawn(move || {
            let mut dev = device(&m2, Suppression::Flags);
            let mut expect = b'a';
            for _ in 0..3 {
                if pop_and_check(&mut dev, &mut expect) {
                    let _ = dev.publish_used().unwrap();
                }
            }
            expect - b'a'
        });
        let _ = drv.add_readable(slot(&mem, 0, b'a')).unwrap();
        let _ = drv.publish().unwrap();
        let _ = drv.add_readable(slot(&mem, 1, b'b')).unwrap();
        let _ = drv.publish().unwrap();
        let popped = t.join().unwrap();
        let mut reaped = 0;
        while let Some(u) = drv.pop_used().unwrap() {
            assert_eq!(u.id, reaped);
            reaped += 1;
        }
        assert_eq!(reaped, u16::from(popped));
        assert_eq!(drv.stats().failures.total(), 0);
    });
    report("publish_then_observe");
}

fn no_lost_wakeup(s: Suppression) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b.check(move || {
        count();
        let mem = Arc::new(LoomMem::new());
        let dev_bell = Arc::new(Bell::default());
        let drv_bell = Arc::new(Bell::default());
        let mut drv = driver(&mem, s);
        let (m2, db, rb) = (mem.clone(), dev_bell.clone(), drv_bell.clone());
        let t = loom::thread::spawn(move || {
            let mut dev = device(&m2, s);
            let mut expect = b'a';
            loop {
                while pop_and_check(&mut dev, &mut expect) {}
                if dev.publish_used().unwrap() {
                    rb.ring();
                }
                if expect == b'c' {
                    break;
                }
                if !dev.enable_notifications().unwrap() {
                    db.wait();
                }
                dev.disable_notifications().unwrap();
            }
        });
        for (k, text) in [b'a', b'b'].into_iter().enumerate() {
            let _ = drv.add_readable(slot(&mem, k, text)).unwrap();
            if drv.publish().unwrap() {
                dev_bell.ring();
            }
        }
        let mut back = 0;
        loop {
            while drv.pop_used().unwrap().is_some() {
                back += 1;
            }
            if back == 2 {
                break;
            }
            if !drv.enable_interrupts().unwrap() {
                drv_bell.wait();
            }
            drv.disable_interrupts().unwrap();
        }
        t.join().unwrap();
    });
    report(&format!("no_lost_wakeup({s:?})"));
}

#[test]
fn no_lost_wakeup_event_idx() {
    no_lost_wakeup(Suppression::EventIdx);
}

#[test]
fn no_lost_wakeup_flags() {
    no_lost_wakeup(Suppression::Flags);
}

#[test]
fn event_idx_rearms_on_empty() {
    let s = Suppression::EventIdx;
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b.check(move || {
        count();
        let mem = Arc::new(LoomMem::new());
        let dev_bell = Arc::new(Bell::default());
        let drv_bell = Arc::new(Bell::default());
        let mut drv = driver(&mem, s);
        let (m2, db, rb) = (mem.clone(), dev_bell.clone(), drv_bell.clone());
        let t = loom::thread::spawn(move || {
            let mut dev = device(&m2, s);
            let mut expect = b'a';
            loop {
                // `Ok(None)` from the pop is the licence to sleep.
                while pop_and_check(&mut dev, &mut expect) {}
                if dev.publish_used().unwrap() {
                    rb.ring();
                }
                if expect == b'c' {
                    break;
                }
                db.wait();
            }
        });
        for (k, text) in [b'a', b'b'].into_iter().enumerate() {
            let _ = drv.add_readable(slot(&mem, k, text)).unwrap();
            if drv.publish().unwrap() {
                dev_bell.ring();
            }
        }
        let mut back = 0;
        loop {
            while drv.pop_used().unwrap().is_some() {
                back += 1;
            }
            if back == 2 {
                break;
            }
            drv_bell.wait();
        }
        t.join().unwrap();
    });
    report("event_idx_rearms_on_empty");
}

#[test]
fn one_fence_per_pass_device() {
    let s = Suppression::EventIdx;
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b.check(move || {
        count();
        let mem = Arc::new(LoomMem::new());
        let dev_bell = Arc::new(Bell::default());
        let drv_bell = Arc::new(Bell::default());
        let mut drv = driver(&mem, s);
        let (m2, db, rb) = (mem.clone(), dev_bell.clone(), drv_bell.clone());
        let t = loom::thread::spawn(move || {
            let mut dev = device(&m2, s);
            let mut expect = b'a';
            loop {
                // One message per pass, returned and re-armed at once; the
                // next pop either finds work or is the licence to sleep.
                if pop_and_check(&mut dev, &mut expect) {
                    if dev.publish_used_and_rearm().unwrap() {
                        rb.ring();
                    }
                    continue;
                }
                if expect == b'c' {
                    break;
                }
                db.wait();
            }
        });
        for (k, text) in [b'a', b'b'].into_iter().enumerate() {
            let _ = drv.add_readable(slot(&mem, k, text)).unwrap();
            if drv.publish().unwrap() {
                dev_bell.ring();
            }
        }
        let mut back = 0;
        loop {
            while drv.pop_used().unwrap().is_some() {
                back += 1;
            }
            if back == 2 {
                break;
            }
            drv_bell.wait();
        }
        t.join().unwrap();
    });
    report("one_fence_per_pass_device");
}

#[test]
fn one_fence_per_pass_driver() {
    let s = Suppression::EventIdx;
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b.check(move || {
        count();
        let mem = Arc::new(LoomMem::new());
        let dev_bell = Arc::new(Bell::default());
        let drv_bell = Arc::new(Bell::default());
        let mut drv = driver(&mem, s);
        let (m2, db, rb) = (mem.clone(), dev_bell.clone(), drv_bell.clone());
        let t = loom::thread::spawn(move || {
            let mut dev = device(&m2, s);
            let mut filled = 0u8;
            loop {
                // The device fills what it is given and sleeps once a pop
                // finds the ring empty (re-armed inside the pop).
                while let Some(p) = dev.pop_writable().unwrap() {
                    let mut buf = p.buf;
                    buf.write(0, &[b'a' + filled; 4]).unwrap();
                    dev.push_used(p.head, buf.clean().unwrap(), 4).unwrap();
                    filled += 1;
                    if dev.publish_used().unwrap() {
                        rb.ring();
                    }
                }
                if filled == 2 {
                    break;
                }
                db.wait();
            }
        });
        // One buffer, posted twice: the driver reaps it, posts it back with
        // `publish_and_rearm` and sleeps once a pop finds nothing.
        let first = slot(&mem, 0, 0);
        let _ = drv.add_writable(first).unwrap();
        if drv.publish().unwrap() {
            dev_bell.ring();
        }
        let mut got = 0u8;
        loop {
            while let Some(u) = drv.pop_used().unwrap() {
                let r = u.buf.invalidate().unwrap().validate(u.len).unwrap();
                let mut text = [0u8; 4];
                r.read(0, &mut text).unwrap();
                assert_eq!(text, [b'a' + got; 4], "torn or reordered payload");
                got += 1;
                if got < 2 {
                    let _ = drv.add_writable(r.into_empty()).unwrap();
                    if drv.publish_and_rearm().unwrap() {
                        dev_bell.ring();
                    }
                }
            }
            if got == 2 {
                break;
            }
            drv_bell.wait();
        }
        t.join().unwrap();
    });
    report("one_fence_per_pass_driver");
}
