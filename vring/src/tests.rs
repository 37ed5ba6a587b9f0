//! Unit tests of both roles: hostile input per error kind, notification
//! suppression, and a two-thread exchange (all of them run under Miri).
#![allow(unsafe_code)]

use core::ptr::NonNull;

use ipc_traits::buf::{Clean, Dirty, ShmBuf};
use ipc_traits::cache::{CacheMaintenance, Coherent, LineRange};
use ipc_traits::shm::{RawRegion, SharedMemory};

use crate::endian::{Endian, Legacy, Virtio1};
use crate::error::{Error, Stats};
use crate::layout::Layout;
use crate::notify::{Suppression, DESC_F_INDIRECT, DESC_F_NEXT, DESC_F_WRITE};
use crate::{BufferArea, Device, DeviceConfig, DeviceTables, Driver, DriverConfig};

pub(crate) const BASE: u64 = 0x4000_0000;
pub(crate) const WINDOW: usize = 4096;
/// 8 entries, 64-byte alignment: desc 0..128, avail 128..150, used 192..262.
pub(crate) const L: Layout = Layout::legacy(8, 64);
/// Where the buffers start: the upper half.
pub(crate) const AREA_AT: usize = 2048;
/// Buffers live in the upper half.
pub(crate) const AREA: BufferArea = BufferArea::new(AREA_AT, WINDOW - AREA_AT);
pub(crate) const SLOT: usize = 64;

/// Backing memory for a test window, 64-byte aligned (also used by the
/// test modules of `device.rs` and `driver.rs`).
#[repr(C, align(64))]
#[derive(Clone, Copy)]
pub(crate) struct Chunk(pub(crate) [u8; 64]);

/// A no-op cache with 32-byte lines, to exercise line-granular checks on
/// the host.
#[derive(Debug, Default)]
pub(crate) struct Line32;

impl CacheMaintenance for Line32 {
    const LINE: usize = 32;
    fn clean(&self, _: LineRange<Self>) {}
    unsafe fn invalidate(&self, _: LineRange<Self>) {}
    fn clean_invalidate(&self, _: LineRange<Self>) {}
}

pub(crate) fn with_region<C: CacheMaintenance, R>(
    cache: C,
    f: impl FnOnce(&RawRegion<C>) -> R,
) -> R {
    let mut backing = vec![Chunk([0; 64]); WINDOW / 64];
    let base = NonNull::new(backing.as_mut_ptr().cast::<u8>()).unwrap();
    // SAFETY: `backing` outlives the region and is only used through it.
    let shm = unsafe { RawRegion::new(base, WINDOW, BASE, cache) }.unwrap();
    f(&shm)
}

/// Tables for one device, for the test's life.
fn tables<const N: usize>() -> &'static DeviceTables<N> {
    Box::leak(Box::default())
}

fn device<'m, M: SharedMemory, E: Endian>(shm: &'m M) -> Device<'m, M, E, 8> {
    // SAFETY: the tests create buffer handles over AREA only through the
    // rings, and a hostile "driver" here only writes raw memory.
    unsafe { Device::new(shm, L, DeviceConfig::new(AREA), tables()) }.unwrap()
}

fn driver<'m, M: SharedMemory, E: Endian>(shm: &'m M, s: Suppression) -> Driver<'m, M, E, 8> {
    let cfg = DriverConfig {
        suppression: s,
        write_flag_on_readable: false,
    };
    // SAFETY: every buffer handed to it is built over `shm`.
    unsafe { Driver::new(shm, L, cfg) }.unwrap()
}

fn slot<M: SharedMemory>(shm: &M, k: usize) -> ShmBuf<'_, M, Dirty> {
    // SAFETY: slot k of the test pool, created once per test.
    unsafe { ShmBuf::<_, Dirty>::new_unchecked(shm, AREA.offset() + SLOT * k, SLOT) }.unwrap()
}

fn clean<'m, M: SharedMemory>(shm: &'m M, k: usize, text: &[u8]) -> ShmBuf<'m, M, Clean> {
    let mut b = slot(shm, k);
    b.write(0, text).unwrap();
    b.clean().unwrap()
}

/// A hostile driver writing raw ring fields (legacy, native endian).
struct RawDriver<'a, M>(&'a M);

impl<M: SharedMemory> RawDriver<'_, M> {
    fn desc(&self, i: u16, addr: u64, len: u32, flags: u16) {
        let mut b = [0u8; 16];
        b[0..8].copy_from_slice(&addr.to_ne_bytes());
        b[8..12].copy_from_slice(&len.to_ne_bytes());
        b[12..14].copy_from_slice(&flags.to_ne_bytes());
        self.0.write(L.desc_entry_offset(i), &b).unwrap();
    }
    fn avail(&self, pos: u16, head: u16) {
        self.0
            .write(L.avail_entry_offset(pos % L.num()), &head.to_ne_bytes())
            .unwrap();
    }
    fn avail_idx(&self, idx: u16) {
        self.0.store_u16_release(L.avail_offset() + 2, idx).unwrap();
    }
    /// Posts `heads` as the next entries from `from` and publishes.
    fn post(&self, from: u16, heads: &[u16]) {
        for (k, &h) in heads.iter().enumerate() {
            self.avail(from + k as u16, h);
        }
        self.avail_idx(from + heads.len() as u16);
    }
}

/// A hostile device writing raw used entries (legacy, native endian).
struct RawDevice<'a, M>(&'a M);

impl<M: SharedMemory> RawDevice<'_, M> {
    fn used(&self, pos: u16, id: u32, len: u32) {
        let mut b = [0u8; 8];
        b[0..4].copy_from_slice(&id.to_ne_bytes());
        b[4..8].copy_from_slice(&len.to_ne_bytes());
        self.0
            .write(L.used_entry_offset(pos % L.num()), &b)
            .unwrap();
    }
    fn used_idx(&self, idx: u16) {
        self.0.store_u16_release(L.used_offset() + 2, idx).unwrap();
    }
}

fn addr(k: usize) -> u64 {
    BASE + (AREA.offset() + SLOT * k) as u64
}

// ------------------------------------------------------------ device side

#[test]
fn avail_index_jump_breaks_the_ring() {
    for idx in [9u16, 0xffff, 0x8000] {
        with_region(Coherent, |shm| {
            let mut dev = device::<_, Legacy>(shm);
            RawDriver(shm).avail_idx(idx);
            assert_eq!(dev.pop_readable().unwrap_err(), Error::AvailIndexJump);
            assert!(dev.is_broken());
            assert_eq!(dev.pop_readable().unwrap_err(), Error::Broken);
            assert_eq!(dev.publish_used().unwrap_err(), Error::Broken);
            assert_eq!(dev.stats().failures.avail_index_jump(), 1);
        });
    }
    // A full ring (jump == num) is legal.
    with_region(Coherent, |shm| {
        let mut dev = device::<_, Legacy>(shm);
        let raw = RawDriver(shm);
        for i in 0..8 {
            raw.desc(i, addr(usize::from(i)), 8, 0);
        }
        raw.post(0, &[0, 1, 2, 3, 4, 5, 6, 7]);
        let held: Vec<_> = (0..8)
            .map(|_| dev.pop_readable().unwrap().unwrap())
            .collect();
        assert!(dev.pop_readable().unwrap().is_none());
        assert_eq!((held.len(), dev.held()), (8, 8));
    });
}

/// Runs `setup` as a hostile driver posting one bad head then a good one;
/// checks the bad one yields `want`, is counted once, and the good one still
/// pops (the ring stays usable).
fn skipped_then_usable(
    writable: bool,
    want: impl Fn(u16) -> Error,
    setup: impl Fn(&RawDriver<'_, RawRegion<Coherent>>) -> u16,
) {
    with_region(Coherent, |shm| {
        let mut dev = device::<_, Legacy>(shm);
        let raw = RawDriver(shm);
        let bad = setup(&raw);
        raw.desc(7, addr(7), 64, DESC_F_WRITE);
        raw.post(0, &[bad, 7]);
        let err = if writable {
            dev.pop_writable().map(|p| p.map(|p| p.head)).unwrap_err()
        } else {
            dev.pop_readable().map(|p| p.map(|p| p.head)).unwrap_err()
        };
        assert_eq!(err, want(bad));
        assert_eq!(dev.stats().failures.total(), 1, "{err:?}");
        assert!(!dev.is_broken());
        let p = dev.pop_writable().unwrap().unwrap();
        assert_eq!((p.head, p.len), (7, 64));
        dev.push_used(p.head, p.buf.clean().unwrap(), 3).unwrap();
        assert!(dev.pop_readable().unwrap().is_none());
        assert_eq!(dev.stats().completed, 1);
    });
}

#[test]
fn descriptor_index_out_of_range_is_skipped() {
    for head in [8u16, 9, 0xffff] {
        skipped_then_usable(false, |_| Error::DescriptorIndexOutOfRange, |_| head);
    }
}

#[test]
fn flags_the_ring_does_not_allow_are_skipped() {
    skipped_then_usable(
        false,
        |_| Error::UnexpectedNext,
        |raw| {
            raw.desc(1, addr(1), 64, DESC_F_NEXT);
            1
        },
    );
    skipped_then_usable(
        false,
        |_| Error::UnexpectedIndirect,
        |raw| {
            raw.desc(1, addr(1), 64, DESC_F_INDIRECT | DESC_F_NEXT);
            1
        },
    );
    skipped_then_usable(
        true,
        |_| Error::NotDeviceWritable,
        |raw| {
            raw.desc(1, addr(1), 64, 0);
            1
        },
    );
    skipped_then_usable(
        false,
        |_| Error::EmptyBuffer,
        |raw| {
            raw.desc(1, addr(1), 0, 0);
            1
        },
    );
}

#[test]
fn addresses_outside_the_window_are_skipped() {
    let cases: [(u64, u32); 6] = [
        (0, 64),
        (BASE - 1, 64),
        (BASE + WINDOW as u64 - 63, 64),
        (BASE + WINDOW as u64, 1),
        (u64::MAX, 2),
        (BASE + 2048, u32::MAX),
    ];
    for (a, len) in cases {
        skipped_then_usable(
            false,
            move |_| Error::AddressOutsideWindow,
            move |raw| {
                raw.desc(2, a, len, 0);
                2
            },
        );
    }
}

#[test]
fn buffers_over_the_ring_are_refused() {
    // The descriptor table itself, the used ring, and a buffer straddling
    // the start of the area.
    for (off, len) in [
        (0usize, 16u32),
        (L.used_offset(), 8),
        (AREA.offset() - 8, 16),
    ] {
        skipped_then_usable(
            false,
            move |_| Error::OutsideBufferArea,
            move |raw| {
                raw.desc(3, BASE + off as u64, len, 0);
                3
            },
        );
    }
}

#[test]
fn a_descriptor_posted_twice_is_in_flight() {
    with_region(Coherent, |shm| {
        let mut dev = device::<_, Legacy>(shm);
        let raw = RawDriver(shm);
        raw.desc(0, addr(0), 64, 0);
        raw.post(0, &[0, 0]);
        let p = dev.pop_readable().unwrap().unwrap();
        assert_eq!(dev.pop_readable().unwrap_err(), Error::DescriptorInFlight);
        dev.push_used(p.head, p.buf, 0).unwrap();
        // Once returned, the driver may post it again.
        raw.post(2, &[0]);
        let p = dev.pop_readable().unwrap().unwrap();
        assert_eq!(p.head, 0);
        dev.push_used(p.head, p.buf, 0).unwrap();
        assert_eq!(dev.stats().failures.descriptor_in_flight(), 1);
    });
}

#[test]
fn tables_serve_one_device_at_a_time_and_start_clean() {
    with_region(Coherent, |shm| {
        let tables = DeviceTables::<8>::new();
        // A refused construction takes no lease.
        // SAFETY: as in `device`; construction fails before any handle.
        let bad = unsafe {
            Device::<_, Legacy, 8>::new(shm, L, DeviceConfig::new(BufferArea::new(0, 64)), &tables)
        };
        assert_eq!(bad.unwrap_err(), Error::BadBufferArea);
        assert!(!tables.is_leased());
        // SAFETY: as in `device`.
        let mut dev =
            unsafe { Device::<_, Legacy, 8>::new(shm, L, DeviceConfig::new(AREA), &tables) }
                .unwrap();
        assert!(tables.is_leased());
        let raw = RawDriver(shm);
        raw.desc(0, addr(0), 64, 0);
        raw.post(0, &[0]);
        // Popped and never returned: descriptor 0 and its span stay held
        // in the tables while this device lives.
        let kept = dev.pop_readable_slot().unwrap().unwrap();
        assert_eq!(kept.id, 0);
        // SAFETY: as in `device`; construction fails before any handle.
        let second =
            unsafe { Device::<_, Legacy, 8>::new(shm, L, DeviceConfig::new(AREA), &tables) };
        assert_eq!(second.unwrap_err(), Error::TablesInUse);
        drop(dev);
        assert!(!tables.is_leased());

        // Attached again (as after a restart) over the same tables: nothing
        // of the old device is held or known.
        let cfg = DeviceConfig {
            first_avail: 1,
            ..DeviceConfig::new(AREA)
        };
        // SAFETY: as in `device`; the old device and its slot record are
        // gone (a record is no handle).
        let mut dev = unsafe { Device::<_, Legacy, 8>::new(shm, L, cfg, &tables) }.unwrap();
        assert_eq!(*dev.stats(), Stats::default(), "counts start again");
        raw.desc(1, addr(0), 64, 0); // the bytes descriptor 0 named
        raw.post(1, &[1]);
        let p = dev.pop_readable_slot().unwrap().unwrap();
        assert_eq!((p.id, p.offset), (1, AREA.offset()));
        dev.push_used_slot(p.id, Some(0)).unwrap();
        raw.desc(0, addr(1), 64, 0);
        raw.post(2, &[0]);
        let p = dev.pop_readable_slot().unwrap().unwrap();
        assert_eq!((p.id, p.offset), (0, AREA.offset() + SLOT));
        dev.push_used_slot(p.id, Some(0)).unwrap();
        assert_eq!(dev.stats().failures.total(), 0);
    });
}

#[test]
fn overlapping_buffers_never_get_two_handles() {
    with_region(Coherent, |shm| {
        let mut dev = device::<_, Legacy>(shm);
        let raw = RawDriver(shm);
        raw.desc(0, addr(0), 64, DESC_F_WRITE);
        raw.desc(1, addr(0), 64, DESC_F_WRITE); // same bytes
        raw.desc(2, addr(0) + 63, 2, DESC_F_WRITE); // last byte of 0
        raw.desc(3, addr(1), 64, DESC_F_WRITE); // the neighbour: fine
        raw.post(0, &[0, 1, 2, 3]);
        let held = dev.pop_writable().unwrap().unwrap();
        assert_eq!(dev.pop_writable().unwrap_err(), Error::OverlappingBuffer);
        assert_eq!(dev.pop_writable().unwrap_err(), Error::OverlappingBuffer);
        let next = dev.pop_writable().unwrap().unwrap();
        assert_eq!(next.head, 3);
        assert_eq!(dev.stats().failures.overlapping_buffer(), 2);
        dev.push_used(held.head, held.buf.clean().unwrap(), 0)
            .unwrap();
        dev.push_used(next.head, next.buf.clean().unwrap(), 0)
            .unwrap();
        // After the return the same bytes may be posted again.
        raw.post(4, &[1]);
        let again = dev.pop_writable().unwrap().unwrap();
        assert_eq!((again.head, again.buf.offset()), (1, AREA.offset()));
        dev.push_used(again.head, again.buf.clean().unwrap(), 0)
            .unwrap();
    });
}

#[test]
fn moved_descriptors_are_still_checked_against_every_held_buffer() {
    with_region(Coherent, |shm| {
        let mut dev = device::<_, Legacy>(shm);
        let raw = RawDriver(shm);
        // Each descriptor first names its own buffer (learned spans).
        for i in 0..4u16 {
            raw.desc(i, addr(usize::from(i)), 64, DESC_F_WRITE);
        }
        raw.post(0, &[0, 1, 2, 3]);
        let mut held = [None, None, None, None];
        for _ in 0..4 {
            let p = dev.pop_writable().unwrap().unwrap();
            let h = usize::from(p.head);
            held[h] = Some(p);
        }
        for p in [held[0].take(), held[2].take()].into_iter().flatten() {
            dev.push_used(p.head, p.buf.clean().unwrap(), 0).unwrap();
        }
        // Descriptor 0 moves onto buffer 1 (held): refused; onto buffer 2
        // (returned): accepted, and buffer 2's old owner can no longer
        // take it while 0 holds it.
        raw.desc(0, addr(1), 64, DESC_F_WRITE);
        raw.post(4, &[0]);
        assert_eq!(dev.pop_writable().unwrap_err(), Error::OverlappingBuffer);
        raw.desc(0, addr(2) + 16, 16, DESC_F_WRITE);
        raw.post(5, &[0]);
        let moved = dev.pop_writable().unwrap().unwrap();
        assert_eq!(moved.buf.offset(), AREA.offset() + 2 * 64 + 16);
        raw.post(6, &[2]);
        assert_eq!(dev.pop_writable().unwrap_err(), Error::OverlappingBuffer);
        // A part of its own (learned) span is fine for descriptor 3 once
        // it is back.
        let p3 = held[3].take().unwrap();
        dev.push_used(p3.head, p3.buf.clean().unwrap(), 0).unwrap();
        raw.desc(3, addr(3), 32, DESC_F_WRITE);
        raw.post(7, &[3]);
        let small = dev.pop_writable().unwrap().unwrap();
        assert_eq!((small.head, small.buf.capacity()), (3, 32));
        assert_eq!(dev.stats().failures.overlapping_buffer(), 2);
        for p in [Some(moved), Some(small), held[1].take()]
            .into_iter()
            .flatten()
        {
            dev.push_used(p.head, p.buf.clean().unwrap(), 0).unwrap();
        }
    });
}

#[test]
fn line_granular_checks_with_a_32_byte_cache() {
    with_region(Line32, |shm| {
        let mut dev = device::<_, Legacy>(shm);
        let raw = RawDriver(shm);
        let a = AREA.offset();
        raw.desc(0, BASE + a as u64 + 8, 32, 0); // start not on a line
        raw.desc(1, BASE + a as u64, 40, DESC_F_WRITE); // writable, partial line
        raw.desc(2, BASE + a as u64, 40, 0); // readable, 40 bytes: lines 0..64
        raw.desc(3, BASE + a as u64 + 32, 32, 0); // shares line 32..64 with 2
        raw.desc(4, BASE + a as u64 + 64, 32, DESC_F_WRITE);
        raw.post(0, &[0, 1, 2, 3, 4]);
        assert_eq!(dev.pop_readable().unwrap_err(), Error::MisalignedBuffer);
        assert_eq!(dev.pop_writable().unwrap_err(), Error::MisalignedBuffer);
        let p2 = dev.pop_readable().unwrap().unwrap();
        assert_eq!((p2.len, p2.buf.capacity()), (40, 64));
        assert_eq!(dev.pop_readable().unwrap_err(), Error::OverlappingBuffer);
        let p4 = dev.pop_writable().unwrap().unwrap();
        assert_eq!(p4.buf.capacity(), 32);
        assert_eq!(dev.stats().failures.misaligned_buffer(), 2);
        assert_eq!(dev.stats().failures.overlapping_buffer(), 1);
        dev.push_used(p2.head, p2.buf, 0).unwrap();
        dev.push_used(p4.head, p4.buf.clean().unwrap(), 32).unwrap();
    });
}

/// A driver posting an exact-length readable descriptor (Linux: header +
/// payload) to a device with 32-byte lines gets the buffer back with the
/// descriptor's length, never the line-rounded capacity of the handle.
#[test]
fn push_used_whole_reports_the_descriptor_length() {
    with_region(Line32, |shm| {
        let mut drv = driver::<_, Legacy>(shm, Suppression::Flags);
        let mut dev = device::<_, Legacy>(shm);
        let mut b = slot(shm, 0);
        b.write(0, &[7; 40]).unwrap();
        b.set_len(40).unwrap();
        let id = drv.add_readable(b.clean().unwrap()).unwrap();
        let _ = drv.publish().unwrap();
        let p = dev.pop_readable().unwrap().unwrap();
        assert_eq!((p.len, p.buf.capacity()), (40, 64));
        let r = p.buf.invalidate().unwrap().validate(p.len).unwrap();
        // The capacity is more than the driver posted: refused.
        let (r, e) = dev.push_used(p.head, r, 64).unwrap_err();
        assert_eq!(e, Error::InvalidLength);
        dev.push_used_whole(p.head, r).unwrap();
        assert_eq!(dev.held(), 0);
        let _ = dev.publish_used().unwrap();
        let used = drv.pop_used().unwrap().unwrap();
        assert_eq!((used.id, used.len), (id, 40));
    });
}

#[test]
fn device_refuses_foreign_returns_and_long_lengths() {
    with_region(Coherent, |shm| {
        let mut dev = device::<_, Legacy>(shm);
        let raw = RawDriver(shm);
        raw.desc(0, addr(0), 64, DESC_F_WRITE);
        raw.desc(1, addr(1), 32, DESC_F_WRITE);
        raw.post(0, &[0, 1]);
        let p0 = dev.pop_writable().unwrap().unwrap();
        let p1 = dev.pop_writable().unwrap().unwrap();
        // Wrong head for the buffer.
        let (b0, e) = dev
            .push_used(p1.head, p0.buf.clean().unwrap(), 1)
            .unwrap_err();
        assert_eq!(e, Error::ForeignBuffer);
        // Head never popped.
        let (b0, e) = dev.push_used(5, b0, 1).unwrap_err();
        assert_eq!(e, Error::ForeignBuffer);
        let (b0, e) = dev.push_used(p0.head, b0, 65).unwrap_err();
        assert_eq!(e, Error::InvalidLength);
        dev.push_used(p0.head, b0, 64).unwrap();
        dev.push_used(p1.head, p1.buf.clean().unwrap(), 32).unwrap();
        assert_eq!(
            dev.stats().failures.total(),
            0,
            "local misuse is not a peer error"
        );
        let _ = dev.publish_used().unwrap();
        assert_eq!(dev.stats().published, 2);
    });
}

#[test]
fn slot_records_go_back_by_id_and_only_once() {
    with_region(Line32, |shm| {
        let mut drv = driver::<_, Legacy>(shm, Suppression::Flags);
        let mut dev = device::<_, Legacy>(shm);
        // The driver binds a buffer to an id for good and lends it out.
        let lent = drv.lend(clean(shm, 0, b"")).unwrap();
        assert_eq!((lent.offset, lent.len), (AREA.offset(), 64));
        // An id that is not lent is refused, the lent one too long as well.
        assert_eq!(
            drv.add_slot(lent.id + 1, 4, false),
            Err(Error::ForeignBuffer)
        );
        assert_eq!(drv.add_slot(lent.id, 65, false), Err(Error::InvalidLength));
        drv.add_slot(lent.id, 40, false).unwrap();
        // Added again before it came back: no longer lent.
        assert_eq!(drv.add_slot(lent.id, 40, false), Err(Error::ForeignBuffer));
        let _ = drv.publish().unwrap();
        let p = dev.pop_readable_slot().unwrap().unwrap();
        assert_eq!((p.id, p.offset, p.len), (lent.id, AREA.offset(), 40));
        // Never popped, or beyond the descriptor: refused, nothing changes.
        assert_eq!(
            dev.push_used_slot(p.id + 1, None),
            Err(Error::ForeignBuffer)
        );
        assert_eq!(
            dev.push_used_slot(p.id, Some(41)),
            Err(Error::InvalidLength)
        );
        dev.push_used_slot(p.id, None).unwrap();
        assert_eq!(dev.push_used_slot(p.id, None), Err(Error::ForeignBuffer));
        let _ = dev.publish_used().unwrap();
        // The same id and buffer come back, lent again (the descriptor
        // length reported whole).
        let back = drv.pop_used_slot().unwrap().unwrap();
        assert_eq!(
            (back.id, back.offset, back.len),
            (lent.id, AREA.offset(), 40)
        );
        assert_eq!(drv.num_free(), 7, "a lent id is not on the free stack");
        drv.add_slot(back.id, 0, true).unwrap();
        assert_eq!(
            dev.stats().failures.total() + drv.stats().failures.total(),
            0,
            "local misuse is not a peer error"
        );
    });
}

#[test]
fn add_slot_and_publish_adds_publishes_and_says_which_step_failed() {
    with_region(Coherent, |shm| {
        let mut drv = driver::<_, Legacy>(shm, Suppression::Flags);
        let lent = drv.lend(clean(shm, 0, b"ping")).unwrap();
        // Not lent (an id never handed out): nothing added.
        assert_eq!(
            drv.add_slot_and_publish(lent.id + 1, 4, false),
            Err((Error::ForeignBuffer, false))
        );
        assert_eq!((drv.unpublished(), drv.in_flight()), (0, 0));
        // Beyond the buffer: nothing added, still lent.
        assert_eq!(
            drv.add_slot_and_publish(lent.id, 65, false),
            Err((Error::InvalidLength, false))
        );
        // The device did not suppress notifications: it wants one.
        assert_eq!(drv.add_slot_and_publish(lent.id, 4, false), Ok(true));
        assert_eq!((drv.unpublished(), drv.in_flight()), (0, 1));
        assert_eq!(drv.stats().published, 1);
        let mut idx = [0u8; 2];
        shm.read(L.avail_offset() + 2, &mut idx).unwrap();
        assert_eq!(u16::from_ne_bytes(idx), 1, "avail.idx published");
        let mut d = [0u8; 16];
        shm.read(L.desc_entry_offset(lent.id), &mut d).unwrap();
        assert_eq!(u64::from_ne_bytes(d[0..8].try_into().unwrap()), addr(0));
        assert_eq!(u32::from_ne_bytes(d[8..12].try_into().unwrap()), 4);
        // Taken: not lent any more.
        assert_eq!(
            drv.add_slot_and_publish(lent.id, 4, false),
            Err((Error::ForeignBuffer, false))
        );
    });
}

#[test]
fn a_used_length_past_the_buffer_still_returns_the_slot() {
    with_region(Coherent, |shm| {
        let mut drv = driver::<_, Legacy>(shm, Suppression::Flags);
        let raw = RawDevice(shm);
        let lent = drv.lend(clean(shm, 0, b"")).unwrap();
        drv.add_slot(lent.id, 0, true).unwrap();
        let _ = drv.publish().unwrap();
        // A hostile device reports more than the 64-byte buffer holds.
        raw.used(0, u32::from(lent.id), 65);
        raw.used_idx(1);
        let (e, back) = drv.pop_used_slot().unwrap_err();
        assert_eq!(e, Error::LengthOverflow);
        assert_eq!(drv.stats().failures.length_overflow(), 1);
        let back = back.expect("the slot comes back with the error");
        assert_eq!((back.id, back.len), (lent.id, 0));
        assert_eq!(drv.stats().failures.total(), 1);
        // Still lent: it can be posted again.
        drv.add_slot(back.id, 0, true).unwrap();
    });
}

#[test]
fn device_construction_checks_area_and_layout() {
    with_region(Coherent, |shm| {
        for area in [
            BufferArea::new(0, 64),
            BufferArea::new(200, 64),
            BufferArea::new(4000, 200),
            BufferArea::new(usize::MAX, 2),
        ] {
            // SAFETY: construction fails before any handle exists.
            let r =
                unsafe { Device::<_, Legacy, 8>::new(shm, L, DeviceConfig::new(area), tables()) };
            assert_eq!(r.unwrap_err(), Error::BadBufferArea);
        }
        // SAFETY: as above.
        let r = unsafe { Device::<_, Legacy, 4>::new(shm, L, DeviceConfig::new(AREA), tables()) };
        assert_eq!(r.unwrap_err(), Error::TooManyEntries);
    });
    with_region(Line32, |shm| {
        // avail ends at 294, used starts at 304: both in line 288..320.
        let small = Layout::legacy(16, 16);
        // SAFETY: as above.
        let r =
            unsafe { Device::<_, Legacy, 16>::new(shm, small, DeviceConfig::new(AREA), tables()) };
        assert_eq!(r.unwrap_err(), Error::SharedCacheLine);
    });
}

// ------------------------------------------------------------ driver side

#[test]
fn used_index_jump_breaks_the_ring() {
    with_region(Coherent, |shm| {
        let mut drv = driver::<_, Legacy>(shm, Suppression::Flags);
        for k in 0..3 {
            drv.add_writable(clean(shm, k, b"")).unwrap();
        }
        let _ = drv.publish().unwrap();
        RawDevice(shm).used_idx(4); // 4 > 3 in flight
        let e = drv.pop_used().unwrap_err();
        assert_eq!(e.error, Error::UsedIndexJump);
        assert!(e.buf.is_none());
        assert!(drv.is_broken());
        assert_eq!(drv.pop_used().unwrap_err().error, Error::Broken);
        let (_, e) = drv.add_writable(clean(shm, 5, b"")).unwrap_err();
        assert_eq!(e, Error::Broken);
        assert_eq!(drv.stats().failures.used_index_jump(), 1);
    });
}

#[test]
fn used_ids_never_published_or_already_reaped_are_skipped() {
    with_region(Coherent, |shm| {
        let mut drv = driver::<_, Legacy>(shm, Suppression::Flags);
        assert_eq!(drv.add_writable(clean(shm, 0, b"")).unwrap(), 0);
        assert_eq!(drv.add_writable(clean(shm, 1, b"")).unwrap(), 1);
        let _ = drv.publish().unwrap();
        // Added but never published: the device cannot know it.
        assert_eq!(drv.add_writable(clean(shm, 2, b"")).unwrap(), 2);
        let dev = RawDevice(shm);
        dev.used(0, 99, 0); // out of range
        dev.used(1, 0, 8); // valid
        dev.used(2, 0, 8); // already reaped
        dev.used(3, 5, 0); // free descriptor
        dev.used(4, 2, 0); // added, not published
        dev.used(5, 0x1_0001, 0); // truncates to 1 as u16: must not alias
        dev.used(6, 1, 64); // valid, full length
        dev.used_idx(2);
        assert_eq!(drv.pop_used().unwrap_err().error, Error::UnknownUsedId);
        let u = drv.pop_used().unwrap().unwrap();
        assert_eq!((u.id, u.len, u.buf.offset()), (0, 8, AREA.offset()));
        assert!(drv.pop_used().unwrap().is_none());
        // More entries: still at most the one in flight plus nothing else.
        dev.used_idx(7);
        let e = drv.pop_used().unwrap_err();
        assert_eq!(e.error, Error::UsedIndexJump);
    });
    with_region(Coherent, |shm| {
        let mut drv = driver::<_, Legacy>(shm, Suppression::Flags);
        for k in 0..4 {
            drv.add_writable(clean(shm, k, b"")).unwrap();
        }
        let _ = drv.publish().unwrap();
        let dev = RawDevice(shm);
        dev.used(0, 0, 8);
        dev.used(1, 0, 8); // duplicate
        dev.used(2, 0x1_0001, 0); // not 1
        dev.used(3, 6, 0); // never published
        dev.used_idx(4);
        assert_eq!(drv.pop_used().unwrap().unwrap().id, 0);
        for _ in [0, 0x1_0001, 6] {
            let e = drv.pop_used().unwrap_err();
            assert_eq!(e.error, Error::UnknownUsedId);
            assert!(e.buf.is_none());
        }
        assert_eq!(drv.stats().failures.unknown_used_id(), 3);
        assert_eq!(drv.in_flight(), 3);
        // The remaining buffers still complete.
        dev.used(4, 1, 1);
        dev.used_idx(5);
        assert_eq!(drv.pop_used().unwrap().unwrap().id, 1);
    });
}

#[test]
#[cfg_attr(miri, ignore = "65 536 publications: minutes under Miri")]
fn an_added_id_comes_back_only_once_published_even_after_the_index_wraps() {
    with_region(Coherent, |shm| {
        let mut drv = driver::<_, Legacy>(shm, Suppression::Flags);
        let dev = RawDevice(shm);
        let held = drv.lend(clean(shm, 0, b"")).unwrap();
        let cycled = drv.lend(clean(shm, 1, b"")).unwrap();
        // `held` goes out at position 0 and the device keeps it.
        drv.add_slot(held.id, 0, true).unwrap();
        let _ = drv.publish().unwrap();
        // `cycled` goes round until `avail.idx` wraps to 0 again.
        for pos in 1..=u16::MAX {
            drv.add_slot(cycled.id, 0, true).unwrap();
            let _ = drv.publish().unwrap();
            dev.used(pos - 1, u32::from(cycled.id), 4);
            dev.used_idx(pos);
            assert_eq!(drv.pop_used_slot().unwrap().unwrap().id, cycled.id);
        }
        // Added at position 0 again (the position `held` went out at) and
        // not published: the device cannot know it yet.
        drv.add_slot(cycled.id, 0, true).unwrap();
        dev.used(u16::MAX, u32::from(cycled.id), 4);
        dev.used_idx(0);
        assert_eq!(drv.pop_used_slot().unwrap_err().0, Error::UnknownUsedId);
        // The held one is published, its position aliasing the window.
        dev.used(0, u32::from(held.id), 4);
        dev.used_idx(1);
        let back = drv.pop_used_slot().unwrap().unwrap();
        assert_eq!((back.id, back.len), (held.id, 4));
        // Once published, the other comes back too.
        let _ = drv.publish().unwrap();
        dev.used(1, u32::from(cycled.id), 4);
        dev.used_idx(2);
        assert_eq!(drv.pop_used_slot().unwrap().unwrap().id, cycled.id);
        assert_eq!(drv.stats().failures.unknown_used_id(), 1);
    });
}

#[test]
fn length_overflow_hands_the_buffer_back() {
    with_region(Coherent, |shm| {
        let mut drv = driver::<_, Legacy>(shm, Suppression::Flags);
        let id = drv.add_writable(clean(shm, 0, b"")).unwrap();
        let _ = drv.publish().unwrap();
        RawDevice(shm).used(0, u32::from(id), 65);
        RawDevice(shm).used_idx(1);
        let e = drv.pop_used().unwrap_err();
        assert_eq!(e.error, Error::LengthOverflow);
        let buf = e.buf.expect("the slot comes back");
        assert_eq!(buf.offset(), AREA.offset());
        // It can be reposted.
        drv.add_writable(buf.recycle().clean().unwrap()).unwrap();
        assert_eq!(drv.stats().failures.length_overflow(), 1);
    });
}

#[test]
fn driver_local_errors() {
    with_region(Coherent, |shm| {
        let mut drv = driver::<_, Legacy>(shm, Suppression::Flags);
        // A buffer over the ring's own descriptor table.
        // SAFETY: the test owns these bytes (the ring never hands them out).
        let over = unsafe { ShmBuf::<_, Dirty>::new_unchecked(shm, 64, 64) }.unwrap();
        let (_, e) = drv.add_readable(over.clean().unwrap()).unwrap_err();
        assert_eq!(e, Error::ForeignBuffer);
        for k in 0..8 {
            drv.add_readable(clean(shm, k, b"x")).unwrap();
        }
        let (b, e) = drv.add_readable(clean(shm, 8, b"x")).unwrap_err();
        assert_eq!(e, Error::Full);
        assert_eq!(b.offset(), AREA.offset() + 8 * SLOT, "handed back");
        let (_, e) = drv.preload_used(clean(shm, 10, b""), 0).unwrap_err();
        assert_eq!(e, Error::InvalidState);
        assert_eq!(drv.unpublished(), 8);
        assert_eq!(drv.stats().failures.total(), 0);
    });
    with_region(Coherent, |shm| {
        let mut drv = driver::<_, Legacy>(shm, Suppression::Flags);
        let (_, e) = drv.preload_used(clean(shm, 0, b""), 65).unwrap_err();
        assert_eq!(e, Error::InvalidLength);
        assert_eq!(drv.preload_used(clean(shm, 0, b""), 64).unwrap(), 0);
        let u = drv.pop_used().unwrap().unwrap();
        assert_eq!((u.id, u.len), (0, 64));
    });
}

// --------------------------------------------------------- notifications

#[test]
fn flags_suppress_notifications_both_ways() {
    with_region(Coherent, |shm| {
        let mut drv = driver::<_, Legacy>(shm, Suppression::Flags);
        let mut dev = device::<_, Legacy>(shm);
        drv.add_readable(clean(shm, 0, b"a")).unwrap();
        assert!(drv.publish().unwrap());
        dev.disable_notifications().unwrap();
        drv.add_readable(clean(shm, 1, b"b")).unwrap();
        assert!(!drv.publish().unwrap());
        // Enabling reports the pending work so the device does not sleep.
        assert!(dev.enable_notifications().unwrap());
        for _ in 0..2 {
            let p = dev.pop_readable().unwrap().unwrap();
            dev.push_used(p.head, p.buf, 0).unwrap();
        }
        assert!(!dev.enable_notifications().unwrap());
        assert!(dev.publish_used().unwrap());
        drv.disable_interrupts().unwrap();
        drv.add_readable(clean(shm, 2, b"c")).unwrap();
        assert!(drv.publish().unwrap());
        let p = dev.pop_readable().unwrap().unwrap();
        dev.push_used(p.head, p.buf, 0).unwrap();
        assert!(!dev.publish_used().unwrap());
        assert!(drv.enable_interrupts().unwrap(), "3 completions pending");
        assert_eq!(drv.stats().notifications_sent, 2);
        assert_eq!(drv.stats().notifications_suppressed, 1);
        assert_eq!(dev.stats().notifications_sent, 1);
        assert_eq!(dev.stats().notifications_suppressed, 1);
    });
}

#[test]
fn event_idx_costs_one_doorbell_per_batch() {
    with_region(Coherent, |shm| {
        let mut drv = driver::<_, Virtio1>(shm, Suppression::EventIdx);
        let cfg = DeviceConfig {
            suppression: Suppression::EventIdx,
            ..DeviceConfig::new(AREA)
        };
        // SAFETY: as in `device`.
        let mut dev = unsafe { Device::<_, Virtio1, 8>::new(shm, L, cfg, tables()) }.unwrap();
        assert!(!dev.enable_notifications().unwrap()); // avail_event = 0
                                                       // A batch of 4 crosses avail_event once: one doorbell.
        for k in 0..4 {
            drv.add_readable(clean(shm, k, b"m")).unwrap();
        }
        assert!(drv.publish().unwrap());
        // The device has not re-armed: the next batch is suppressed.
        for k in 4..6 {
            drv.add_readable(clean(shm, k, b"m")).unwrap();
        }
        assert!(!drv.publish().unwrap());
        // The driver asks for an interrupt when entry 0 is used.
        assert!(!drv.enable_interrupts().unwrap());
        let mut popped = 0;
        while let Some(p) = dev.pop_readable().unwrap() {
            dev.push_used(p.head, p.buf, 0).unwrap();
            popped += 1;
        }
        assert_eq!(popped, 6);
        // The pop that found the ring empty re-armed: avail_event = 6.
        assert_eq!(avail_event(shm), 6);
        assert!(dev.publish_used().unwrap(), "crosses used_event 0");
        assert!(!dev.enable_notifications().unwrap(), "nothing pending");
        let mut ids = Vec::new();
        while let Some(u) = drv.pop_used().unwrap() {
            ids.push(u.id);
            let mut b = u.buf.recycle();
            b.write(0, b"n").unwrap();
            drv.add_readable(b.clean().unwrap()).unwrap();
        }
        assert_eq!(ids, [0, 1, 2, 3, 4, 5]);
        // The reap that found the used ring empty re-armed: used_event = 6.
        assert_eq!(used_event(shm), 6);
        assert!(drv.publish().unwrap(), "6 new entries cross avail_event 6");
        // Both sides keep re-arming as they consume: every batch is heard.
        while let Some(p) = dev.pop_readable().unwrap() {
            dev.push_used(p.head, p.buf, 0).unwrap();
        }
        assert!(dev.publish_used().unwrap(), "crosses used_event 6");
        assert!(
            drv.enable_interrupts().unwrap(),
            "work pending after re-arm"
        );
        let s = drv.stats();
        assert_eq!((s.notifications_sent, s.notifications_suppressed), (2, 1));
        let s = dev.stats();
        assert_eq!((s.notifications_sent, s.notifications_suppressed), (2, 0));
    });
}

fn avail_event<M: SharedMemory>(shm: &M) -> u16 {
    let mut b = [0u8; 2];
    shm.read(L.avail_event_offset(), &mut b).unwrap();
    u16::from_le_bytes(b)
}

fn used_event<M: SharedMemory>(shm: &M) -> u16 {
    let mut b = [0u8; 2];
    shm.read(L.used_event_offset(), &mut b).unwrap();
    u16::from_le_bytes(b)
}

/// `EVENT_IDX` with notifications off: consuming does not re-arm, and the
/// event lies behind the consumer, so the producer stops notifying; turning
/// them on again re-arms and reports what arrived meanwhile.
#[test]
fn event_idx_disabled_stops_the_rearm() {
    with_region(Coherent, |shm| {
        let mut drv = driver::<_, Virtio1>(shm, Suppression::EventIdx);
        let cfg = DeviceConfig {
            suppression: Suppression::EventIdx,
            ..DeviceConfig::new(AREA)
        };
        // SAFETY: as in `device`.
        let mut dev = unsafe { Device::<_, Virtio1, 8>::new(shm, L, cfg, tables()) }.unwrap();
        dev.disable_notifications().unwrap();
        drv.disable_interrupts().unwrap();
        assert_eq!((avail_event(shm), used_event(shm)), (u16::MAX, u16::MAX));
        for round in 0..3u16 {
            for k in 0..2 {
                drv.add_readable(clean(shm, k, b"m")).unwrap();
            }
            assert!(!drv.publish().unwrap(), "round {round}: silenced");
            while let Some(p) = dev.pop_readable().unwrap() {
                dev.push_used(p.head, p.buf, 0).unwrap();
            }
            assert!(!dev.publish_used().unwrap(), "round {round}: silenced");
            while let Some(u) = drv.pop_used().unwrap() {
                drop(u);
            }
            // Nothing advanced the events.
            assert_eq!((avail_event(shm), used_event(shm)), (u16::MAX, u16::MAX));
        }
        drv.add_readable(clean(shm, 0, b"m")).unwrap();
        assert!(!drv.publish().unwrap());
        assert!(dev.enable_notifications().unwrap(), "one entry pending");
        assert_eq!(avail_event(shm), 6);
        let p = dev.pop_readable().unwrap().unwrap();
        dev.push_used(p.head, p.buf, 0).unwrap();
        assert!(dev.pop_readable().unwrap().is_none());
        assert_eq!(avail_event(shm), 7, "re-armed on empty once on again");
        drv.add_readable(clean(shm, 1, b"m")).unwrap();
        assert!(drv.publish().unwrap(), "heard again");
    });
}

#[test]
fn virtio1_ring_is_little_endian_in_memory() {
    with_region(Coherent, |shm| {
        let mut drv = driver::<_, Virtio1>(shm, Suppression::Flags);
        drv.add_readable(clean(shm, 3, b"le")).unwrap();
        let _ = drv.publish().unwrap();
        let mut d = [0u8; 16];
        shm.read(L.desc_offset(), &mut d).unwrap();
        assert_eq!(&d[0..8], &addr(3).to_le_bytes());
        assert_eq!(&d[8..12], &2u32.to_le_bytes());
        assert_eq!(&d[14..16], &1u16.to_le_bytes());
        let mut idx = [0u8; 2];
        shm.read(L.avail_offset() + 2, &mut idx).unwrap();
        assert_eq!(idx, [1, 0]);
    });
}

// ------------------------------------------------------------ two threads

/// Driver and device on two threads over one coherent region: every
/// message arrives once, in order, intact; every buffer comes back.
#[test]
fn two_threads_exchange_in_order() {
    const MSGS: u32 = if cfg!(miri) { 40 } else { 5000 };
    const SPIN_LIMIT: u32 = 10_000_000;
    with_region(Coherent, |shm| {
        // Both rings exist before either thread runs (the driver initialises
        // the ring memory the device then reads).
        let mut drv = driver::<_, Legacy>(shm, Suppression::Flags);
        let mut dev = device::<_, Legacy>(shm);
        let mut pool: Vec<_> = (0..8).map(|k| slot(shm, k)).collect();
        std::thread::scope(|s| {
            s.spawn(move || {
                let mut expect = 0u32;
                let mut spins = 0;
                while expect < MSGS {
                    match dev.pop_readable().unwrap() {
                        Some(p) => {
                            let r = p.buf.invalidate().unwrap().validate(p.len).unwrap();
                            let mut v = [0u8; 4];
                            r.read(0, &mut v).unwrap();
                            assert_eq!(u32::from_ne_bytes(v), expect);
                            assert_eq!(p.len, 4 + expect % 60);
                            expect += 1;
                            dev.push_used(p.head, r, 0).unwrap();
                            if expect % 3 == 0 {
                                let _ = dev.publish_used().unwrap();
                            }
                        }
                        None => {
                            let _ = dev.publish_used().unwrap();
                            spins += 1;
                            assert!(spins < SPIN_LIMIT, "device starved");
                            std::thread::yield_now();
                        }
                    }
                }
                let _ = dev.publish_used().unwrap();
                assert_eq!(dev.stats().failures.total(), 0);
            });
            s.spawn(move || {
                let (mut sent, mut back, mut spins) = (0u32, 0u32, 0);
                while back < MSGS {
                    while sent < MSGS {
                        let Some(mut b) = pool.pop() else { break };
                        b.write(0, &sent.to_ne_bytes()).unwrap();
                        b.set_len(4 + (sent % 60) as usize).unwrap();
                        drv.add_readable(b.clean().unwrap()).unwrap();
                        sent += 1;
                        if sent % 5 == 0 {
                            break;
                        }
                    }
                    let _ = drv.publish().unwrap();
                    match drv.pop_used().unwrap() {
                        Some(u) => {
                            back += 1;
                            pool.push(u.buf.recycle());
                        }
                        None => {
                            spins += 1;
                            assert!(spins < SPIN_LIMIT, "driver starved");
                            std::thread::yield_now();
                        }
                    }
                }
                assert_eq!(pool.len(), 8);
                assert_eq!(drv.stats().completed, MSGS);
                assert_eq!(drv.stats().failures.total(), 0);
            });
        });
    });
}

// ------------------------------------------------- counts at a restart

#[test]
fn device_counts_entries_it_has_not_popped() {
    with_region(Coherent, |shm| {
        let mut dev = device::<_, Legacy>(shm);
        let raw = RawDriver(shm);
        for k in 0..3u16 {
            raw.desc(k, addr(usize::from(k)), SLOT as u32, 0);
        }
        raw.post(0, &[0, 1, 2]);
        assert_eq!(dev.pending(), Ok(3));
        let p = dev.pop_readable().unwrap().unwrap();
        assert_eq!(dev.pending(), Ok(2), "one popped, two left");
        dev.push_used(p.head, p.buf, 0).unwrap();
        assert_eq!(dev.pending(), Ok(2), "returning does not change it");
        // A hostile index: counted, the ring breaks, no count is invented.
        raw.avail_idx(1 + 9);
        assert_eq!(dev.pending(), Err(Error::AvailIndexJump));
        assert!(dev.is_broken());
        assert_eq!(dev.pending(), Err(Error::Broken));
        assert_eq!(dev.stats().failures.avail_index_jump(), 1);
    });
}

#[test]
fn driver_counts_used_entries_it_has_not_reaped() {
    with_region(Coherent, |shm| {
        let mut drv = driver::<_, Legacy>(shm, Suppression::Flags);
        for k in 0..3 {
            drv.add_writable(clean(shm, k, b"")).unwrap();
        }
        let _ = drv.publish().unwrap();
        let dev = RawDevice(shm);
        assert_eq!(drv.pending_used(), Ok(0));
        dev.used(0, 0, 4);
        dev.used(1, 1, 4);
        dev.used_idx(2);
        assert_eq!(drv.pending_used(), Ok(2));
        assert!(drv.pop_used().unwrap().is_some());
        assert_eq!(drv.pending_used(), Ok(1));
        dev.used_idx(5); // 4 past the last reaped, 2 in flight
        assert_eq!(drv.pending_used(), Err(Error::UsedIndexJump));
        assert!(drv.is_broken());
        assert_eq!(drv.stats().failures.used_index_jump(), 1);
    });
}

#[test]
fn a_known_descriptor_is_checked_again_when_its_address_or_length_moves() {
    // The device validates a descriptor that names the span it named last
    // time with two compares (`Device::check`): anything else that id
    // names goes through every check again.
    with_region(Coherent, |shm| {
        let raw = RawDriver(shm);
        let mut dev = device::<_, Legacy>(shm);
        let mut pos = 0u16;
        let mut round = |dev: &mut Device<'_, _, Legacy, 8>, a: u64, len: u32| {
            raw.desc(3, a, len, 0);
            raw.post(pos, &[3]);
            pos += 1;
            match dev.pop_readable() {
                Ok(Some(p)) => {
                    let (head, buf) = (p.head, p.buf);
                    dev.push_used(head, buf, 0).map_err(|(_, e)| e).unwrap();
                    dev.publish_used().unwrap();
                    Ok(())
                }
                Ok(None) => panic!("nothing popped"),
                Err(e) => Err(e),
            }
        };
        round(&mut dev, addr(1), 64).unwrap();
        // Same id, same length, the address moved out of the window, then
        // onto the ring.
        assert_eq!(
            round(&mut dev, BASE + WINDOW as u64, 64),
            Err(Error::AddressOutsideWindow)
        );
        assert!(matches!(
            round(&mut dev, BASE + L.used_offset() as u64, 64),
            Err(Error::OutsideBufferArea)
        ));
        // Same address, the length now reaches past the window.
        let past = (WINDOW - AREA.offset() - SLOT) as u32 + 1;
        assert!(matches!(
            round(&mut dev, addr(1), past),
            Err(Error::AddressOutsideWindow)
        ));
        // Moved to another slot: checked and accepted.
        round(&mut dev, addr(2), 64).unwrap();
        // And a valid buffer is still accepted, with no failure counted.
        let before = dev.stats().failures.total();
        round(&mut dev, addr(1), 64).unwrap();
        assert_eq!(dev.stats().failures.total(), before);
    });
}

/// A descriptor's 64-bit address survives the two 32-bit accesses of
/// `RingMem::read_desc` / `write_desc` in both byte orders, high half
/// included, and sits in memory as the byte order says (virtio 1.x:
/// little-endian; legacy: native).
#[test]
fn descriptor_addresses_keep_both_halves_in_each_byte_order() {
    fn round_trip<E: Endian>(expect: fn(u64) -> [u8; 8]) {
        with_region(Coherent, |shm| {
            let ring = crate::ring::RingMem::<_, E>::new(shm, L, 8).unwrap();
            let d = crate::ring::Desc {
                addr: 0x0123_4567_89AB_CDEF,
                len: 0x1122_3344,
                flags: 0x0102,
                next: 7,
            };
            ring.write_desc(3, &d).unwrap();
            assert_eq!(ring.read_desc(3).unwrap(), d);
            let mut raw = [0u8; 8];
            shm.read(L.desc_entry_offset(3), &mut raw).unwrap();
            assert_eq!(raw, expect(d.addr));
        });
    }
    round_trip::<Virtio1>(u64::to_le_bytes);
    round_trip::<Legacy>(u64::to_ne_bytes);
}

/// A memory that says its accesses are direct (`SharedMemory::DIRECT`) but
/// gives no base is refused when a ring is attached, before any access:
/// the ring accessors take the direct path without testing for a base.
#[test]
fn a_direct_memory_without_a_base_is_refused_at_attach() {
    struct NoBase<'a>(&'a RawRegion<Coherent>);
    impl ipc_traits::shm::ErrorType for NoBase<'_> {
        type Error = ipc_traits::shm::ShmError;
    }
    impl SharedMemory for NoBase<'_> {
        const LINE: usize = 1;
        const DIRECT: bool = true;
        fn len(&self) -> usize {
            self.0.len()
        }
        fn peer_base(&self) -> u64 {
            self.0.peer_base()
        }
        fn read(&self, o: usize, d: &mut [u8]) -> Result<(), Self::Error> {
            self.0.read(o, d)
        }
        fn write(&self, o: usize, s: &[u8]) -> Result<(), Self::Error> {
            self.0.write(o, s)
        }
        fn load_u16_acquire(&self, o: usize) -> Result<u16, Self::Error> {
            self.0.load_u16_acquire(o)
        }
        fn store_u16_release(&self, o: usize, v: u16) -> Result<(), Self::Error> {
            self.0.store_u16_release(o, v)
        }
        fn load_u32_acquire(&self, o: usize) -> Result<u32, Self::Error> {
            self.0.load_u32_acquire(o)
        }
        fn store_u32_release(&self, o: usize, v: u32) -> Result<(), Self::Error> {
            self.0.store_u32_release(o, v)
        }
        fn clean(&self, o: usize, l: usize) -> Result<(), Self::Error> {
            self.0.clean(o, l)
        }
        fn invalidate(&self, o: usize, l: usize) -> Result<(), Self::Error> {
            self.0.invalidate(o, l)
        }
    }
    with_region(Coherent, |shm| {
        let mem = NoBase(shm);
        let unavailable = Error::Memory(ipc_traits::shm::Error::kind(
            &ipc_traits::shm::ShmError::Unavailable,
        ));
        // SAFETY: no buffer handle is made over AREA here.
        let dev =
            unsafe { Device::<_, Legacy, 8>::new(&mem, L, DeviceConfig::new(AREA), tables()) };
        assert_eq!(dev.err(), Some(unavailable));
        let cfg = DriverConfig {
            suppression: Suppression::Flags,
            write_flag_on_readable: false,
        };
        // SAFETY: no buffer is handed to it.
        let drv = unsafe { Driver::<_, Legacy, 8>::new(&mem, L, cfg) };
        assert_eq!(drv.err(), Some(unavailable));
    });
}

// ------------------------------------------- driver bookkeeping (publication marks)

#[test]
#[cfg_attr(miri, ignore = "65 536 publications: minutes under Miri")]
fn an_id_published_at_once_comes_back_while_another_waits_unpublished() {
    with_region(Coherent, |shm| {
        let mut drv = driver::<_, Legacy>(shm, Suppression::Flags);
        let dev = RawDevice(shm);
        let held = drv.lend(clean(shm, 0, b"")).unwrap();
        let cycled = drv.lend(clean(shm, 1, b"")).unwrap();
        // `held` goes out at position 0 the long way (added, then marked
        // by the publication), comes back, then goes out at position 1
        // published at once (marked as it is added) and stays out.
        drv.add_slot(held.id, 0, true).unwrap();
        let _ = drv.publish().unwrap();
        dev.used(0, u32::from(held.id), 0);
        dev.used_idx(1);
        assert_eq!(drv.pop_used_slot().unwrap().unwrap().id, held.id);
        let _ = drv.add_slot_and_publish(held.id, 0, true).unwrap();
        assert_eq!((drv.unpublished(), drv.in_flight()), (0, 1));
        // `cycled` goes round, published at once, until `avail.idx` wraps
        // to 0 again.
        for pos in 2..=u16::MAX {
            let _ = drv.add_slot_and_publish(cycled.id, 0, true).unwrap();
            dev.used(pos - 1, u32::from(cycled.id), 4);
            dev.used_idx(pos);
            assert_eq!(drv.pop_used_slot().unwrap().unwrap().id, cycled.id);
        }
        // Added at position 0 (where `held` went out first), not
        // published.
        drv.add_slot(cycled.id, 0, true).unwrap();
        assert_eq!((drv.unpublished(), drv.in_flight()), (1, 1));
        dev.used(u16::MAX, u32::from(cycled.id), 4);
        dev.used_idx(0);
        assert_eq!(drv.pop_used_slot().unwrap_err().0, Error::UnknownUsedId);
        // `held` is published: it comes back, the other one does not.
        dev.used(0, u32::from(held.id), 4);
        dev.used_idx(1);
        let back = drv.pop_used_slot().unwrap().unwrap();
        assert_eq!((back.id, back.len), (held.id, 4));
        assert_eq!(drv.in_flight(), 0);
        let _ = drv.publish().unwrap();
        assert_eq!(drv.in_flight(), 1);
        dev.used(1, u32::from(cycled.id), 4);
        dev.used_idx(2);
        assert_eq!(drv.pop_used_slot().unwrap().unwrap().id, cycled.id);
        assert_eq!(drv.stats().failures.unknown_used_id(), 1);
        assert_eq!(drv.stats().published, 65_537);
        assert_eq!(drv.stats().completed, 65_537);
    });
}

#[test]
fn a_broken_ring_refuses_every_lent_id() {
    with_region(Coherent, |shm| {
        let mut drv = driver::<_, Legacy>(shm, Suppression::Flags);
        let out = drv.lend(clean(shm, 0, b"")).unwrap();
        let kept = drv.lend(clean(shm, 1, b"")).unwrap();
        assert_eq!(drv.add_slot_and_publish(out.id, 0, true), Ok(true));
        // Not lent, below and beyond `num`, beyond `N`: foreign.
        for id in [out.id, 7, 8, 9, u16::MAX] {
            assert_eq!(drv.add_slot(id, 0, true), Err(Error::ForeignBuffer));
        }
        RawDevice(shm).used_idx(2); // 2 > 1 in flight
        assert_eq!(
            drv.pop_used_slot().unwrap_err(),
            (Error::UsedIndexJump, None)
        );
        assert!(drv.is_broken());
        assert_eq!(drv.in_flight(), 1);
        for id in [kept.id, out.id, 7, 8, u16::MAX] {
            assert_eq!(drv.add_slot(id, 0, true), Err(Error::Broken));
            assert_eq!(
                drv.add_slot_and_publish(id, 0, true),
                Err((Error::Broken, false))
            );
        }
        assert_eq!(drv.publish(), Err(Error::Broken));
        assert_eq!(drv.unpublished(), 0);
        assert_eq!(drv.stats().published, 1);
    });
}

#[test]
fn a_lent_descriptor_on_coherent_memory_is_written_when_it_may_have_changed() {
    with_region(Coherent, |shm| {
        let mut drv = driver::<_, Legacy>(shm, Suppression::Flags);
        let dev = RawDevice(shm);
        let raw = RawDriver(shm);
        let lent = drv.lend(clean(shm, 0, b"")).unwrap();
        let desc = |shm: &RawRegion<Coherent>| {
            let mut d = [0u8; 16];
            shm.read(L.desc_entry_offset(lent.id), &mut d).unwrap();
            (
                u64::from_ne_bytes(d[0..8].try_into().unwrap()),
                u32::from_ne_bytes(d[8..12].try_into().unwrap()),
                u16::from_ne_bytes(d[12..14].try_into().unwrap()),
            )
        };
        let mut pos = 0;
        let mut round =
            |drv: &mut Driver<'_, _, Legacy, 8>, len: u32, writable: bool, back: u32| {
                let _ = drv.add_slot_and_publish(lent.id, len, writable).unwrap();
                let d = desc(shm);
                dev.used(pos, u32::from(lent.id), back);
                pos += 1;
                dev.used_idx(pos);
                assert_eq!(drv.pop_used_slot().unwrap().unwrap().id, lent.id);
                d
            };
        assert_eq!(round(&mut drv, 4, false, 4), (addr(0), 4, 0));
        // Another length, then writable: written each time.
        assert_eq!(round(&mut drv, 9, false, 9), (addr(0), 9, 0));
        assert_eq!(round(&mut drv, 0, true, 64), (addr(0), 64, DESC_F_WRITE));
        // A scribble the device does not reject stays (the driver never
        // reads the table); one it returns with length 0 is written over
        // at the next add.
        raw.desc(lent.id, 0xdead, 1, 0);
        assert_eq!(round(&mut drv, 0, true, 0), (0xdead, 1, 0));
        assert_eq!(round(&mut drv, 0, true, 64), (addr(0), 64, DESC_F_WRITE));
        // Rebound to another buffer: written for it.
        let _ = drv.add_slot_and_publish(lent.id, 4, false).unwrap();
        dev.used(pos, u32::from(lent.id), 4);
        dev.used_idx(pos + 1);
        let u = drv.pop_used().unwrap().unwrap();
        assert_eq!(u.id, lent.id);
        drop(u);
        let again = drv.lend(clean(shm, 1, b"")).unwrap();
        assert_eq!(again.id, lent.id);
        let _ = drv.add_slot_and_publish(again.id, 4, false).unwrap();
        assert_eq!(desc(shm), (addr(1), 4, 0));
    });
}

/// The pop's usual case on coherent direct memory (one compare of a
/// known span named again) refuses what the tests one by one refuse: an
/// id whose span is unknown posted as address 0 and length 0 (what an
/// all-zero entry records), a chain flag or a length of 0 on a known
/// span, a held id, and a writable pop without the flag.
#[test]
fn a_known_span_named_again_is_checked_like_a_new_one() {
    with_region(Coherent, |shm| {
        let mut dev = device::<_, Legacy>(shm);
        let raw = RawDriver(shm);
        raw.desc(1, 0, 0, 0);
        raw.desc(0, addr(0), 64, 0);
        raw.post(0, &[1, 0]);
        assert_eq!(dev.pop_readable().unwrap_err(), Error::EmptyBuffer);
        let p = dev.pop_readable().unwrap().unwrap();
        assert_eq!((p.head, p.len), (0, 64));
        dev.push_used(p.head, p.buf, 0).unwrap();
        let mut pos = 2;
        for (flags, len, want) in [
            (DESC_F_NEXT, 64, Error::UnexpectedNext),
            (DESC_F_INDIRECT, 64, Error::UnexpectedIndirect),
            (0, 0, Error::EmptyBuffer),
        ] {
            raw.desc(0, addr(0), len, flags);
            raw.post(pos, &[0]);
            pos += 1;
            assert_eq!(dev.pop_readable().unwrap_err(), want);
        }
        raw.desc(0, addr(0), 64, 0);
        raw.post(pos, &[0, 0]);
        pos += 2;
        let p = dev.pop_readable().unwrap().unwrap();
        assert_eq!((p.head, p.len), (0, 64));
        assert_eq!(dev.pop_readable().unwrap_err(), Error::DescriptorInFlight);
        dev.push_used(p.head, p.buf, 0).unwrap();
        raw.post(pos, &[0]);
        assert_eq!(
            dev.pop_writable().map(|p| p.map(|p| p.head)).unwrap_err(),
            Error::NotDeviceWritable
        );
        assert_eq!(dev.stats().failures.total(), 6);
        assert_eq!(dev.stats().completed, 2);
    });
}

/// A receive ring posting each buffer back as it reads it: the fused
/// `add_slot_and_publish_rearm` does what `add_slot` then
/// `publish_and_rearm` do (the same doorbell answers, the same `avail.idx`
/// and `used_event` in memory, the same statistics), with `EVENT_IDX` and
/// with flags, whether the device returns one buffer or a batch.
#[test]
fn add_slot_and_publish_rearm_does_what_add_then_publish_and_rearm_do() {
    fn run(suppression: Suppression, fused: bool) -> Vec<(bool, u16, u16, u32, u32)> {
        with_region(Coherent, |shm| {
            let mut drv = driver::<_, Virtio1>(shm, suppression);
            let cfg = DeviceConfig {
                suppression,
                ..DeviceConfig::new(AREA)
            };
            // SAFETY: as in `device`.
            let mut dev = unsafe { Device::<_, Virtio1, 8>::new(shm, L, cfg, tables()) }.unwrap();
            let mut trace = Vec::new();
            let mut note = |wanted: bool, drv: &Driver<'_, _, Virtio1, 8>| {
                let mut idx = [0u8; 2];
                shm.read(L.avail_offset() + 2, &mut idx).unwrap();
                let s = drv.stats();
                trace.push((
                    wanted,
                    u16::from_le_bytes(idx),
                    used_event(shm),
                    s.notifications_sent,
                    s.notifications_suppressed,
                ));
            };
            // Four receive buffers posted.
            for k in 0..4 {
                let lent = drv.lend(clean(shm, k, b"")).unwrap();
                drv.add_slot(lent.id, 0, true).unwrap();
            }
            let wanted = drv.publish_and_rearm().unwrap();
            note(wanted, &drv);
            // Rounds of 1, 3, 2 and 1 messages: the device fills and
            // returns them, the driver reads each and posts it back.
            for batch in [1, 3, 2, 1, 4] {
                for _ in 0..batch {
                    let p = dev.pop_writable_slot().unwrap().unwrap();
                    dev.push_used_slot(p.id, Some(8)).unwrap();
                }
                let _ = dev.publish_used().unwrap();
                while let Some(u) = drv.pop_used_slot().unwrap() {
                    let wanted = if fused {
                        drv.add_slot_and_publish_rearm(u.id, 0, true).unwrap()
                    } else {
                        drv.add_slot(u.id, 0, true).unwrap();
                        drv.publish_and_rearm().unwrap()
                    };
                    note(wanted, &drv);
                }
                // The device re-arms when it runs dry, as a remote would.
                let _ = dev.enable_notifications().unwrap();
            }
            assert_eq!(drv.in_flight(), 4, "every buffer posted again");
            trace
        })
    }
    for s in [Suppression::EventIdx, Suppression::Flags] {
        let (apart, fused) = (run(s, false), run(s, true));
        assert_eq!(apart.len(), 12, "{s:?}: one publication per buffer");
        assert_eq!(fused, apart, "{s:?}");
    }
}
