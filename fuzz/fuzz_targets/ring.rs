//! Both ring roles over a window the fuzzer scribbles on (see README.md).
#![no_main]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::Cell;
use std::ptr::NonNull;

use ipc_traits::buf::{Dirty, ShmBuf};
use ipc_traits::cache::{CacheMaintenance, Coherent, LineRange};
use ipc_traits::shm::{check_range, ErrorType, RawRegion, SharedMemory, ShmError};
use libfuzzer_sys::fuzz_target;
use vring::{
    BufferArea, Device, DeviceConfig, DeviceTables, Driver, DriverConfig, Endian, Error, Layout,
    Legacy, Passed, Popped, Suppression, Virtio1,
};

const BASE: u64 = 0x4000_0000;
const WINDOW: usize = 8192;
/// The driver's ring and the device's ring (8 entries, 64-byte align).
const LD: Layout = Layout::legacy_at(0, 8, 64);
const LV: Layout = Layout::legacy_at(512, 8, 64);
/// The driver's pool and the device's buffer area.
const POOL: usize = 4096;
const AREA: BufferArea = BufferArea::new(6144, 2048);
const SLOT: usize = 64;
const POOL_SLOTS: usize = 12;

#[derive(Default)]
struct Line32;

impl CacheMaintenance for Line32 {
    const LINE: usize = 32;
    fn clean(&self, _: LineRange<Self>) {}
    unsafe fn invalidate(&self, _: LineRange<Self>) {}
    fn clean_invalidate(&self, _: LineRange<Self>) {}
}

/// Records requests outside the window or the allowed ranges.
struct Watch<C> {
    inner: RawRegion<C>,
    allowed: Vec<(usize, usize)>,
    bad: Cell<Option<(usize, usize)>>,
}

impl<C> Watch<C> {
    fn note(&self, o: usize, l: usize) {
        let ok = check_range(WINDOW, o, l).is_ok()
            && self.allowed.iter().any(|&(a, n)| o >= a && o + l <= a + n);
        if !ok && self.bad.get().is_none() {
            self.bad.set(Some((o, l)));
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
    fn read(&self, o: usize, d: &mut [u8]) -> Result<(), ShmError> {
        self.note(o, d.len());
        self.inner.read(o, d)
    }
    fn write(&self, o: usize, s: &[u8]) -> Result<(), ShmError> {
        self.note(o, s.len());
        self.inner.write(o, s)
    }
    fn load_u16_acquire(&self, o: usize) -> Result<u16, ShmError> {
        self.note(o, 2);
        self.inner.load_u16_acquire(o)
    }
    fn store_u16_release(&self, o: usize, v: u16) -> Result<(), ShmError> {
        self.note(o, 2);
        self.inner.store_u16_release(o, v)
    }
    fn load_u32_acquire(&self, o: usize) -> Result<u32, ShmError> {
        self.note(o, 4);
        self.inner.load_u32_acquire(o)
    }
    fn store_u32_release(&self, o: usize, v: u32) -> Result<(), ShmError> {
        self.note(o, 4);
        self.inner.store_u32_release(o, v)
    }
    fn clean(&self, o: usize, l: usize) -> Result<(), ShmError> {
        self.note(o, l);
        self.inner.clean(o, l)
    }
    fn invalidate(&self, o: usize, l: usize) -> Result<(), ShmError> {
        self.note(o, l);
        self.inner.invalidate(o, l)
    }
}

#[repr(C, align(64))]
#[derive(Clone, Copy)]
struct Chunk([u8; 64]);

/// A cursor over the fuzz input.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes([self.byte()?, self.byte()?]))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes([
            self.byte()?,
            self.byte()?,
            self.byte()?,
            self.byte()?,
        ]))
    }
}

fn plausible(raw: &RawRegion<impl CacheMaintenance>, l: &Layout, k: u8, a: u16, b: u32) {
    let n = l.num();
    let bump = |off: usize| {
        let cur = raw.load_u16_acquire(off).unwrap();
        let step = if a % 16 == 15 { a } else { a % 4 };
        raw.store_u16_release(off, cur.wrapping_add(step)).unwrap();
    };
    match k % 7 {
        0 => bump(l.avail_offset() + 2),
        1 => {
            let head = (b as u16) % (n + 2);
            raw.write(l.avail_entry_offset(a % n), &head.to_ne_bytes())
                .unwrap();
        }
        2 => {
            let mut d = [0u8; 16];
            let addr = BASE + (AREA.offset() + (b as usize % 72) * 32) as u64 - 128;
            let len = [32u32, 64, 40, 0, 96, 31, 128][usize::from(a % 7)];
            let flags = [0u16, 2, 0, 2, 1, 4, 2, 0][(b >> 8) as usize % 8];
            d[0..8].copy_from_slice(&addr.to_ne_bytes());
            d[8..12].copy_from_slice(&len.to_ne_bytes());
            d[12..14].copy_from_slice(&flags.to_ne_bytes());
            raw.write(l.desc_entry_offset((b >> 12) as u16 % n), &d)
                .unwrap();
        }
        3 => bump(l.used_offset() + 2),
        4 => {
            let mut e = [0u8; 8];
            e[0..4].copy_from_slice(&(b % 10).to_ne_bytes());
            e[4..8].copy_from_slice(&u32::from(a % 80).to_ne_bytes());
            raw.write(l.used_entry_offset((b >> 8) as u16 % n), &e)
                .unwrap();
        }
        5 => raw.write(l.used_event_offset(), &a.to_ne_bytes()).unwrap(),
        _ => raw.write(l.avail_event_offset(), &a.to_ne_bytes()).unwrap(),
    }
}

fn run<C: CacheMaintenance + Default, E: Endian>(s: Suppression, mut input: Input<'_>) {
    let mut backing = vec![Chunk([0; 64]); WINDOW / 64];
    let base = NonNull::new(backing.as_mut_ptr().cast::<u8>()).unwrap();
    // SAFETY: `backing` outlives the region and is only used through it.
    let inner = unsafe { RawRegion::new(base, WINDOW, BASE, C::default()) }.unwrap();
    let line = C::LINE;
    let mut allowed: Vec<(usize, usize)> = LD
        .areas()
        .into_iter()
        .chain(LV.areas())
        .map(|(o, l)| {
            let lo = o & !(line - 1);
            (lo, (o + l).next_multiple_of(line) - lo)
        })
        .collect();
    allowed.push((POOL, POOL_SLOTS * SLOT));
    allowed.push((AREA.offset(), AREA.len()));
    let shm = Watch {
        inner,
        allowed,
        bad: Cell::new(None),
    };
    let raw = &shm.inner;

    let cfg = DriverConfig {
        suppression: s,
        write_flag_on_readable: input.byte().unwrap_or(0) & 1 == 1,
    };
    // SAFETY: every buffer handed to it is built over `shm`.
    let mut drv = unsafe { Driver::<_, E, 8>::new(&shm, LD, cfg) }.unwrap();
    let dcfg = DeviceConfig {
        suppression: s,
        first_avail: u16::from(input.byte().unwrap_or(0) % 4),
        ..DeviceConfig::new(AREA)
    };
    let tables = DeviceTables::new();
    // SAFETY: no other buffer handle covers AREA (the pool is elsewhere).
    let mut dev = unsafe { Device::<_, E, 8>::new(&shm, LV, dcfg, &tables) }.unwrap();

    let mut pool: Vec<_> = (0..POOL_SLOTS)
        // SAFETY: slot k of the pool, created once.
        .map(|k| unsafe { ShmBuf::<_, Dirty>::new_unchecked(&shm, POOL + SLOT * k, SLOT) }.unwrap())
        .collect();
    let mut added: Vec<usize> = Vec::new();
    let mut out: Vec<usize> = Vec::new();
    let mut readable: Vec<Popped<'_, _, ipc_traits::buf::Received>> = Vec::new();
    let mut writable: Vec<Popped<'_, _, Dirty>> = Vec::new();
    // Ids a one-pass pop kept (held, returned by `push_used_slot`): id,
    // offset, length.
    let mut kept: Vec<(u16, usize, usize)> = Vec::new();
    let broken_ok = |e: &Error| e.is_peer_error() || *e == Error::Broken;

    while let Some(op) = input.byte() {
        match op % 17 {
            0 => {
                let (Some(o), Some(n)) = (input.u16(), input.byte()) else {
                    break;
                };
                let ring = if o & 1 == 0 { &LD } else { &LV };
                let o = ring.start() + usize::from(o >> 1) % (ring.end() - ring.start());
                let n = usize::from(n % 16 + 1).min(ring.end() - o);
                let bytes: Vec<u8> = (0..n).map(|_| input.byte().unwrap_or(0xff)).collect();
                raw.write(o, &bytes).unwrap();
            }
            1 | 2 => {
                let (Some(k), Some(a), Some(b)) = (input.byte(), input.u16(), input.u32()) else {
                    break;
                };
                plausible(raw, if op % 17 == 1 { &LD } else { &LV }, k, a, b);
            }
            3 => match dev.pop_readable() {
                Ok(Some(p)) => readable.push(p),
                Ok(None) => {}
                Err(e) => assert!(broken_ok(&e), "{e:?}"),
            },
            4 => match dev.pop_writable() {
                Ok(Some(p)) => writable.push(p),
                Ok(None) => {}
                Err(e) => assert!(broken_ok(&e), "{e:?}"),
            },
            5 => {
                let (Some(k), Some(len)) = (input.byte(), input.byte()) else {
                    break;
                };
                let len = u32::from(len);
                if k & 1 == 0 && !readable.is_empty() {
                    let p = readable.swap_remove(usize::from(k >> 1) % readable.len());
                    let r = p.buf.invalidate().unwrap();
                    let r = match r.validate(p.len) {
                        Ok(r) => r,
                        Err((_, e)) => panic!("the device handed out a short buffer: {e:?}"),
                    };
                    let mut v = vec![0u8; r.len()];
                    r.read(0, &mut v).unwrap();
                    if let Err((buf, e)) = dev.push_used(p.head, r, len) {
                        assert!(matches!(e, Error::InvalidLength | Error::Broken), "{e:?}");
                        // Refused: the buffer is still ours (and still held).
                        let buf = buf.recycle().clean().unwrap();
                        if let Err((buf, e)) = dev.push_used(p.head, buf, 0) {
                            assert_eq!(e, Error::Broken);
                            writable.push(Popped {
                                head: p.head,
                                len: p.len,
                                buf: buf.recycle(),
                            });
                        }
                    }
                } else if !writable.is_empty() {
                    let p = writable.swap_remove(usize::from(k >> 1) % writable.len());
                    let mut b = p.buf;
                    b.write(0, &[k; 8][..b.capacity().min(8)]).unwrap();
                    let c = b.clean().unwrap();
                    if let Err((buf, e)) = dev.push_used(p.head, c, len) {
                        assert!(matches!(e, Error::InvalidLength | Error::Broken), "{e:?}");
                        writable.push(Popped {
                            buf: buf.recycle(),
                            ..p
                        });
                    }
                }
            }
            6 => {
                let r = dev.publish_used();
                assert!(r.as_ref().map_or_else(broken_ok, |_| true), "{r:?}");
            }
            7 => {
                let r = dev.enable_notifications();
                assert!(r.as_ref().map_or_else(broken_ok, |_| true), "{r:?}");
            }
            8 => {
                let r = dev.disable_notifications();
                assert!(r.as_ref().map_or_else(broken_ok, |_| true), "{r:?}");
            }
            9 | 10 => {
                let Some(mut b) = pool.pop() else { continue };
                b.write(0, b"data").unwrap();
                let off = b.offset();
                let c = b.clean().unwrap();
                let r = if op % 17 == 9 {
                    drv.add_readable(c)
                } else {
                    drv.add_writable(c)
                };
                match r {
                    Ok(_) => added.push(off),
                    Err((b, e)) => {
                        assert!(matches!(e, Error::Full | Error::Broken), "{e:?}");
                        pool.push(b.recycle());
                    }
                }
            }
            11 => {
                let back = match drv.pop_used() {
                    Ok(Some(u)) => {
                        assert!(u.len as usize <= u.buf.capacity());
                        Some(u.buf)
                    }
                    Ok(None) => None,
                    Err(e) => {
                        assert!(broken_ok(&e.error), "{:?}", e.error);
                        e.buf
                    }
                };
                if let Some(b) = back {
                    let i = out
                        .iter()
                        .position(|&o| o == b.offset())
                        .expect("reaped a buffer never published, or twice");
                    out.swap_remove(i);
                    pool.push(b.recycle());
                }
            }
            14 | 15 => {
                // The one-pass pops: the slot read or written, kept or
                // returned at once as the input says.
                let Some(k) = input.byte() else { break };
                let mut seen = None;
                let look = |s: &vring::Slot| {
                    seen = Some((s.id, s.offset, s.len as usize));
                    k & 1 == 0
                };
                let r = if op % 17 == 14 {
                    dev.pop_readable_with(look)
                } else {
                    dev.pop_writable_with(look)
                };
                match r {
                    Ok(Passed::Kept) => kept.push(seen.expect("a kept slot was looked at")),
                    Ok(Passed::Empty) => assert!(seen.is_none()),
                    Ok(Passed::Returned(_)) => assert!(seen.is_some()),
                    Ok(Passed::NotReturned(e)) => assert!(broken_ok(&e), "{e:?}"),
                    Err(e) => assert!(broken_ok(&e), "{e:?}"),
                }
            }
            16 => {
                let Some(k) = input.byte() else { break };
                if !kept.is_empty() {
                    let (id, _, _) = kept[usize::from(k) % kept.len()];
                    match dev.push_used_slot(id, None) {
                        Ok(()) => kept.retain(|&(i, _, _)| i != id),
                        Err(e) => assert_eq!(e, Error::Broken),
                    }
                }
            }
            12 => {
                let r = drv.publish();
                assert!(r.as_ref().map_or_else(broken_ok, |_| true), "{r:?}");
                if r.is_ok() {
                    out.append(&mut added);
                }
            }
            _ => {
                let r = if op & 0x80 == 0 {
                    drv.enable_interrupts()
                } else {
                    drv.disable_interrupts().map(|()| false)
                };
                assert!(r.as_ref().map_or_else(broken_ok, |_| true), "{r:?}");
            }
        }
        // Invariants after every step.
        assert_eq!(
            pool.len() + added.len() + out.len(),
            POOL_SLOTS,
            "a buffer lost or duplicated"
        );
        let mut spans: Vec<(usize, usize)> = readable
            .iter()
            .map(|p| (p.buf.offset(), p.buf.capacity()))
            .chain(writable.iter().map(|p| (p.buf.offset(), p.buf.capacity())))
            .chain(kept.iter().map(|&(_, o, l)| (o, l)))
            .map(|(o, c)| (o, (o + c).next_multiple_of(line)))
            .collect();
        spans.sort_unstable();
        for w in spans.windows(2) {
            assert!(
                w[0].1 <= w[1].0,
                "two device buffers share bytes: {spans:?}"
            );
        }
        for &(lo, hi) in &spans {
            assert!(lo >= AREA.offset() && hi <= AREA.offset() + AREA.len());
        }
        assert_eq!(usize::from(dev.held()), spans.len());
        assert_eq!(
            shm.bad.get(),
            None,
            "a request outside the window or the ring"
        );
    }
    let _ = (drv.stats(), dev.stats());
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    match input.byte().unwrap_or(0) % 4 {
        0 => run::<Coherent, Legacy>(Suppression::Flags, input),
        1 => run::<Coherent, Virtio1>(Suppression::EventIdx, input),
        2 => run::<Line32, Legacy>(Suppression::EventIdx, input),
        _ => run::<Line32, Virtio1>(Suppression::Flags, input),
    }
});
