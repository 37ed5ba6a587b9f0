//! Property tests: the peer scribbles arbitrary bytes over the shared window
//! between ring operations.
//!
//! Each operation must either succeed or return a typed error; nothing may
//! panic, and the ring must never even *ask* for an access outside the
//! window, nor touch bytes outside its own areas and (device) the buffer
//! area: a [`Watch`] wrapper around the memory records every request. The
//! device never holds two overlapping buffers, and the driver only ever
//! returns buffers it published and has not returned yet.
#![cfg(not(miri))] // proptest's case count makes this impractically slow under Miri
#![allow(clippy::unwrap_used, clippy::expect_used)]

use core::cell::Cell;
use core::ptr::NonNull;

use ipc_traits::buf::{Dirty, ShmBuf};
use ipc_traits::cache::{CacheMaintenance, Coherent, LineRange};
use ipc_traits::shm::{check_range, ErrorType, RawRegion, SharedMemory, ShmError};
use proptest::prelude::*;
use vring::{
    BufferArea, Device, DeviceConfig, DeviceTables, Driver, DriverConfig, Endian, Error, Layout,
    Legacy, Suppression, Virtio1,
};

/// Device tables for the test's life.
fn tables<const N: usize>() -> &'static DeviceTables<N> {
    Box::leak(Box::default())
}

const BASE: u64 = 0x4000_0000;
const WINDOW: usize = 4096;
const L: Layout = Layout::legacy(8, 64);
const AREA: BufferArea = BufferArea::new(2048, 2048);
const SLOT: usize = 64;

/// A no-op cache with 32-byte lines (line-granular checks on the host).
#[derive(Debug, Default)]
struct Line32;

impl CacheMaintenance for Line32 {
    const LINE: usize = 32;
    fn clean(&self, _: LineRange<Self>) {}
    unsafe fn invalidate(&self, _: LineRange<Self>) {}
    fn clean_invalidate(&self, _: LineRange<Self>) {}
}

/// Shared memory that records every request outside the window or outside
/// the ranges the ring may touch.
struct Watch<C> {
    inner: RawRegion<C>,
    allowed: Vec<(usize, usize)>,
    outside_window: Cell<u32>,
    outside_allowed: Cell<u32>,
    first_outside: Cell<Option<(usize, usize)>>,
    requests: Cell<u64>,
}

impl<C> Watch<C> {
    fn note(&self, offset: usize, len: usize) {
        self.requests.set(self.requests.get() + 1);
        if check_range(WINDOW, offset, len).is_err() {
            self.outside_window.set(self.outside_window.get() + 1);
            return;
        }
        let inside = self
            .allowed
            .iter()
            .any(|&(o, l)| offset >= o && offset + len <= o + l);
        if !inside {
            if self.first_outside.get().is_none() {
                self.first_outside.set(Some((offset, len)));
            }
            self.outside_allowed.set(self.outside_allowed.get() + 1);
        }
    }
}

impl<C> ErrorType for Watch<C> {
    type Error = ShmError;
}

impl<C: CacheMaintenance> SharedMemory for Watch<C> {
    const LINE: usize = C::LINE;
    fn len(&self) -> usize {
        self.inner.len()
    }
    fn peer_base(&self) -> u64 {
        self.inner.peer_base()
    }
    fn read(&self, offset: usize, dst: &mut [u8]) -> Result<(), ShmError> {
        self.note(offset, dst.len());
        self.inner.read(offset, dst)
    }
    fn write(&self, offset: usize, src: &[u8]) -> Result<(), ShmError> {
        self.note(offset, src.len());
        self.inner.write(offset, src)
    }
    fn load_u16_acquire(&self, offset: usize) -> Result<u16, ShmError> {
        self.note(offset, 2);
        self.inner.load_u16_acquire(offset)
    }
    fn store_u16_release(&self, offset: usize, value: u16) -> Result<(), ShmError> {
        self.note(offset, 2);
        self.inner.store_u16_release(offset, value)
    }
    fn load_u32_acquire(&self, offset: usize) -> Result<u32, ShmError> {
        self.note(offset, 4);
        self.inner.load_u32_acquire(offset)
    }
    fn store_u32_release(&self, offset: usize, value: u32) -> Result<(), ShmError> {
        self.note(offset, 4);
        self.inner.store_u32_release(offset, value)
    }
    fn clean(&self, offset: usize, len: usize) -> Result<(), ShmError> {
        self.note(offset, len);
        self.inner.clean(offset, len)
    }
    fn invalidate(&self, offset: usize, len: usize) -> Result<(), ShmError> {
        self.note(offset, len);
        self.inner.invalidate(offset, len)
    }
}

#[repr(C, align(64))]
#[derive(Clone, Copy)]
struct Chunk([u8; 64]);

fn with_watch<C: CacheMaintenance, R>(cache: C, f: impl FnOnce(&Watch<C>) -> R) -> R {
    let mut backing = vec![Chunk([0; 64]); WINDOW / 64];
    let base = NonNull::new(backing.as_mut_ptr().cast::<u8>()).unwrap();
    // SAFETY: `backing` outlives the region and is only used through it.
    let inner = unsafe { RawRegion::new(base, WINDOW, BASE, cache) }.unwrap();
    let line = C::LINE;
    let mut allowed: Vec<(usize, usize)> = L
        .areas()
        .iter()
        .map(|&(o, l)| {
            (
                o & !(line - 1),
                (o + l).next_multiple_of(line) - (o & !(line - 1)),
            )
        })
        .collect();
    allowed.push((AREA.offset(), AREA.len()));
    let w = Watch {
        inner,
        allowed,
        outside_window: Cell::new(0),
        outside_allowed: Cell::new(0),
        first_outside: Cell::new(None),
        requests: Cell::new(0),
    };
    let r = f(&w);
    assert_eq!(w.outside_window.get(), 0, "a request outside the window");
    assert_eq!(
        w.outside_allowed.get(),
        0,
        "a request outside the ring, first {:?}",
        w.first_outside.get()
    );
    assert!(w.requests.get() > 0);
    r
}

/// What the hostile peer and the local user do, one step at a time.
#[derive(Debug, Clone)]
enum Op {
    /// Overwrite `bytes` at a window offset (anywhere in the ring).
    Scribble(u16, Vec<u8>),
    /// Put plausible values in ring fields: an index, an entry or a
    /// descriptor pointing into the buffer area.
    Plausible(u8, u16, u32),
    Pop(bool),
    Return(u8, u32),
    Publish,
    Enable,
    Disable,
    Add(bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => (0u16..512, prop::collection::vec(any::<u8>(), 1..32)).prop_map(|(o, b)| Op::Scribble(o, b)),
        4 => (any::<u8>(), any::<u16>(), any::<u32>()).prop_map(|(k, a, b)| Op::Plausible(k, a, b)),
        3 => any::<bool>().prop_map(Op::Pop),
        2 => (any::<u8>(), 0u32..80).prop_map(|(k, l)| Op::Return(k, l)),
        2 => Just(Op::Publish),
        1 => Just(Op::Enable),
        1 => Just(Op::Disable),
        3 => any::<bool>().prop_map(Op::Add),
    ]
}

/// Writes a field the peer owns with a value that is usually almost right:
/// indices move by a few entries (a jump now and then), entries and
/// descriptors name plausible heads and buffer-area addresses.
fn plausible<M: SharedMemory>(shm: &M, k: u8, a: u16, b: u32) {
    let n = L.num();
    let bump = |off: usize| {
        let cur = shm.load_u16_acquire(off).unwrap();
        let step = if a % 16 == 15 { a } else { a % 4 };
        shm.store_u16_release(off, cur.wrapping_add(step)).unwrap();
    };
    match k % 6 {
        0 => bump(L.avail_offset() + 2),
        1 => {
            let head = (b as u16) % (n + 2);
            shm.write(L.avail_entry_offset(a % n), &head.to_ne_bytes())
                .unwrap();
        }
        2 => {
            let mut d = [0u8; 16];
            let addr = BASE + (AREA.offset() + (b as usize % 64) * 32) as u64;
            let len = [32u32, 64, 40, 0, 96, 31][usize::from(a % 6)];
            let flags = [0u16, 2, 0, 2, 1, 4, 2, 0][(b >> 8) as usize % 8];
            d[0..8].copy_from_slice(&addr.to_ne_bytes());
            d[8..12].copy_from_slice(&len.to_ne_bytes());
            d[12..14].copy_from_slice(&flags.to_ne_bytes());
            shm.write(L.desc_entry_offset((b >> 12) as u16 % n), &d)
                .unwrap();
        }
        3 => bump(L.used_offset() + 2),
        4 => {
            let mut e = [0u8; 8];
            e[0..4].copy_from_slice(&(b % 10).to_ne_bytes());
            e[4..8].copy_from_slice(&u32::from(a % 80).to_ne_bytes());
            shm.write(L.used_entry_offset((b >> 8) as u16 % n), &e)
                .unwrap();
        }
        _ => shm.write(L.used_event_offset(), &a.to_ne_bytes()).unwrap(),
    }
}

fn scribble<M: SharedMemory>(shm: &M, o: u16, bytes: &[u8]) {
    let end = L.end();
    let o = usize::from(o) % end;
    let n = bytes.len().min(end - o);
    shm.write(o, &bytes[..n]).unwrap();
}

fn run_device<C: CacheMaintenance, E: Endian>(cache: C, ops: &[Op]) {
    with_watch(cache, |shm| {
        // SAFETY: this test creates no buffer handle over AREA except
        // through the ring.
        let mut dev =
            unsafe { Device::<_, E, 8>::new(shm, L, DeviceConfig::new(AREA), tables()) }.unwrap();
        let mut readable = Vec::new();
        let mut writable = Vec::new();
        let mut peer_errors = 0u32;
        for op in ops {
            match op {
                Op::Scribble(o, b) => scribble(&shm.inner, *o, b),
                Op::Plausible(k, a, b) => plausible(&shm.inner, *k, *a, *b),
                Op::Pop(w) => {
                    let r = if *w {
                        dev.pop_writable().map(|p| p.map(|p| writable.push(p)))
                    } else {
                        dev.pop_readable().map(|p| p.map(|p| readable.push(p)))
                    };
                    if let Err(e) = r {
                        assert!(e.is_peer_error() || e == Error::Broken, "{e:?}");
                        peer_errors += u32::from(e.is_peer_error());
                    }
                }
                Op::Return(k, len) => {
                    let k = usize::from(*k);
                    if k % 2 == 0 && !readable.is_empty() {
                        let p = readable.swap_remove(k / 2 % readable.len());
                        if let Err((buf, e)) = dev.push_used(p.head, p.buf, *len) {
                            assert!(matches!(e, Error::InvalidLength | Error::Broken), "{e:?}");
                            readable.push(vring::Popped { buf, ..p });
                        }
                    } else if !writable.is_empty() {
                        let p = writable.swap_remove(k / 2 % writable.len());
                        let clean = p.buf.clean().unwrap();
                        if let Err((buf, e)) = dev.push_used(p.head, clean, *len) {
                            assert!(matches!(e, Error::InvalidLength | Error::Broken), "{e:?}");
                            writable.push(vring::Popped {
                                buf: buf.recycle(),
                                ..p
                            });
                        }
                    }
                }
                Op::Publish => {
                    let r = dev.publish_used();
                    assert!(r.is_ok() || r == Err(Error::Broken));
                }
                Op::Enable => {
                    let r = dev.enable_notifications();
                    assert!(r.is_ok() || r == Err(Error::Broken));
                }
                Op::Disable | Op::Add(_) => {
                    let r = dev.disable_notifications();
                    assert!(r.is_ok() || r == Err(Error::Broken));
                }
            }
            // Invariant: the held buffers lie in the area and never share a
            // cache line.
            let mut spans: Vec<(usize, usize)> = readable
                .iter()
                .map(|p| (p.buf.offset(), p.buf.capacity()))
                .chain(writable.iter().map(|p| (p.buf.offset(), p.buf.capacity())))
                .map(|(o, c)| (o, (o + c).next_multiple_of(C::LINE)))
                .collect();
            spans.sort_unstable();
            for w in spans.windows(2) {
                assert!(w[0].1 <= w[1].0, "overlapping handles {spans:?}");
            }
            for &(lo, hi) in &spans {
                assert!(lo >= AREA.offset() && hi <= AREA.offset() + AREA.len());
            }
            assert_eq!(usize::from(dev.held()), spans.len());
        }
        assert_eq!(dev.stats().failures.total(), peer_errors);
    });
}

fn run_driver<C: CacheMaintenance, E: Endian>(cache: C, ops: &[Op], s: Suppression) {
    with_watch(cache, |shm| {
        let cfg = DriverConfig {
            suppression: s,
            write_flag_on_readable: false,
        };
        // SAFETY: every buffer handed to it is built over `shm`.
        let mut drv = unsafe { Driver::<_, E, 8>::new(shm, L, cfg) }.unwrap();
        // 12 slots for 8 descriptors: `Full` happens too.
        let mut pool: Vec<_> = (0..12)
            .map(|k| {
                // SAFETY: slot k, created once.
                unsafe { ShmBuf::<_, Dirty>::new_unchecked(shm, AREA.offset() + SLOT * k, SLOT) }
                    .unwrap()
            })
            .collect();
        let mut added: Vec<usize> = Vec::new(); // handed to the ring, not published
        let mut out: Vec<usize> = Vec::new(); // published, not returned
        let mut peer_errors = 0u32;
        for op in ops {
            match op {
                Op::Scribble(o, b) => scribble(&shm.inner, *o, b),
                Op::Plausible(k, a, b) => plausible(&shm.inner, *k, *a, *b),
                Op::Add(w) => {
                    let Some(mut b) = pool.pop() else { continue };
                    b.write(0, b"data").unwrap();
                    let off = b.offset();
                    let clean = b.clean().unwrap();
                    let r = if *w {
                        drv.add_writable(clean)
                    } else {
                        drv.add_readable(clean)
                    };
                    match r {
                        Ok(_) => added.push(off),
                        Err((b, e)) => {
                            assert!(matches!(e, Error::Full | Error::Broken), "{e:?}");
                            pool.push(b.recycle());
                        }
                    }
                }
                Op::Pop(_) | Op::Return(..) => {
                    let back = match drv.pop_used() {
                        Ok(Some(u)) => {
                            assert!(u.len as usize <= u.buf.capacity());
                            Some(u.buf)
                        }
                        Ok(None) => None,
                        Err(e) => {
                            assert!(e.error.is_peer_error() || e.error == Error::Broken);
                            peer_errors += u32::from(e.error.is_peer_error());
                            e.buf
                        }
                    };
                    if let Some(b) = back {
                        // Only a buffer we handed out, and only once.
                        let i = out
                            .iter()
                            .position(|&o| o == b.offset())
                            .expect("never published, or returned twice");
                        out.swap_remove(i);
                        pool.push(b.recycle());
                    }
                }
                Op::Publish => {
                    let r = drv.publish();
                    assert!(r.is_ok() || r == Err(Error::Broken));
                    if r.is_ok() {
                        out.append(&mut added);
                    }
                }
                Op::Enable => {
                    let r = drv.enable_interrupts();
                    assert!(r.is_ok() || r == Err(Error::Broken));
                }
                Op::Disable => {
                    let r = drv.disable_interrupts();
                    assert!(r.is_ok() || r == Err(Error::Broken));
                }
            }
            assert_eq!(
                pool.len() + added.len() + out.len(),
                12,
                "a buffer was lost or duplicated"
            );
            assert!(usize::from(drv.in_flight()) + usize::from(drv.unpublished()) <= 8);
        }
        assert_eq!(drv.stats().failures.total(), peer_errors);
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn device_survives_arbitrary_memory(ops in prop::collection::vec(op(), 1..200)) {
        run_device::<_, Legacy>(Coherent, &ops);
        run_device::<_, Virtio1>(Line32, &ops);
    }

    #[test]
    fn driver_survives_arbitrary_memory(ops in prop::collection::vec(op(), 1..200)) {
        run_driver::<_, Legacy>(Coherent, &ops, Suppression::Flags);
        run_driver::<_, Virtio1>(Line32, &ops, Suppression::EventIdx);
    }
}
