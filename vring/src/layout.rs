//! Where a split virtqueue's three areas sit in shared memory.
//!
//! Facts: shared/docs/hw/rpmsg-wire.md §1.1 (structures and their alignment)
//! and §1.2 (the legacy `vring_init` / `vring_size` placement); the
//! rpmsg-lite placement of the second vring comes from
//! shared/vectors/rpmsg-lite/README.md ("Offsets inside the region").
//!
//! ```text
//!  desc ─────────── 16·num ──┐ avail: flags idx ring[num] used_event ┐ pad to align ┐ used: flags idx ring[num]{id,len} avail_event
//! ```
//!
//! Every constructor is a `const fn`, so a layout can be a `const` or part
//! of a `static` resource table; an invalid layout in a `const` is a compile
//! error.
//!
//! ```
//! use vring::layout::{vring_size, Layout};
//!
//! // Linux remoteproc with the usual 4096 alignment (rpmsg-wire.md §1.2).
//! const RX: Layout = Layout::legacy(256, 4096);
//! assert_eq!(RX.used_offset(), 8192);
//! assert_eq!(vring_size(256, 4096), 10246);
//!
//! // rpmsg-lite MCU platforms: vring1 right behind vring0.
//! const V1: Layout = Layout::legacy_at(448, 16, 16);
//! assert_eq!((V1.desc_offset(), V1.avail_offset(), V1.used_offset()), (448, 704, 752));
//! ```
#![deny(unsafe_code)]

use ipc_traits::shm::SharedMemory;

use crate::Error;

/// Size of one descriptor (`struct vring_desc`, rpmsg-wire.md §1.1).
pub const DESC_SIZE: usize = 16;
/// Size of one used-ring element (`struct vring_used_elem`).
pub const USED_ELEM_SIZE: usize = 8;
/// Alignment of the descriptor table (`VRING_DESC_ALIGN_SIZE`).
pub const DESC_ALIGN: usize = 16;
/// Alignment of the available ring (`VRING_AVAIL_ALIGN_SIZE`).
pub const AVAIL_ALIGN: usize = 2;
/// Alignment of the used ring (`VRING_USED_ALIGN_SIZE`).
pub const USED_ALIGN: usize = 4;
/// The largest queue size the split ring allows (virtio 1.x §2.7).
pub const MAX_NUM: u16 = 32768;

/// `v` rounded up to a multiple of `align` (a power of two); `None` on
/// overflow or when `align` is not a power of two.
#[inline]
pub const fn align_up(v: usize, align: usize) -> Option<usize> {
    if !align.is_power_of_two() {
        return None;
    }
    match v.checked_add(align - 1) {
        Some(x) => Some(x & !(align - 1)),
        None => None,
    }
}

/// Bytes of the descriptor table for `num` entries.
#[inline]
pub const fn desc_table_size(num: usize) -> usize {
    DESC_SIZE * num
}

/// Bytes of the available ring for `num` entries, `used_event` included
/// (`flags`, `idx`, `ring[num]`, `used_event`).
#[inline]
pub const fn avail_size(num: usize) -> usize {
    2 * (3 + num)
}

/// Bytes of the used ring for `num` entries, `avail_event` included
/// (`flags`, `idx`, `ring[num]`, `avail_event`).
#[inline]
pub const fn used_size(num: usize) -> usize {
    2 * 3 + USED_ELEM_SIZE * num
}

/// Linux's `vring_size(num, align)` (rpmsg-wire.md §1.2):
/// `align_up(16·num + 2·(3 + num), align) + 2·3 + 8·num`.
///
/// # Panics
///
/// If `align` is not a power of two or the result overflows `usize` (a
/// compile error in `const` context).
pub const fn vring_size(num: usize, align: usize) -> usize {
    assert!(align.is_power_of_two(), "align must be a power of two");
    match checked_vring_size(num, align) {
        Some(size) => size,
        None => panic!("vring size overflows"),
    }
}

/// [`vring_size`] for values read at run time (a resource table, a
/// device tree): `None` instead of a panic when `align` is not a power of
/// two or the size does not fit `usize`.
///
/// ```
/// use vring::layout::checked_vring_size;
/// assert_eq!(checked_vring_size(16, 16), Some(438));
/// assert_eq!(checked_vring_size(16, 24), None);
/// assert_eq!(checked_vring_size(usize::MAX / 8, 4096), None);
/// ```
pub const fn checked_vring_size(num: usize, align: usize) -> Option<usize> {
    let (Some(desc), Some(used_ring)) =
        (num.checked_mul(DESC_SIZE), num.checked_mul(USED_ELEM_SIZE))
    else {
        return None;
    };
    let Some(before_used) = desc.checked_add(2 * 3) else {
        return None;
    };
    // `2 * num` fits: `DESC_SIZE * num` did.
    let Some(before_used) = before_used.checked_add(2 * num) else {
        return None;
    };
    let Some(used_at) = align_up(before_used, align) else {
        return None;
    };
    let Some(used_end) = used_at.checked_add(2 * 3) else {
        return None;
    };
    used_end.checked_add(used_ring)
}

/// rpmsg-lite's placement of its second vring.
///
/// rpmsg-lite puts vring1 at a platform constant `VRING_SIZE`, not at
/// [`vring_size`] (shared/vectors/rpmsg-lite/README.md, "Offsets inside the
/// region").
pub mod rpmsg_lite {
    use super::{align_up, vring_size};

    /// `VRING_SIZE` of the i.MX platforms that talk to Linux (vector set
    /// `linux-align4096`): vring1 starts 0x8000 bytes after vring0.
    pub const LINUX_VRING_STRIDE: usize = 0x8000;

    /// `VRING_ALIGN` of the i.MX platforms that talk to Linux.
    pub const LINUX_VRING_ALIGN: usize = 0x1000;

    /// `VRING_SIZE` of the NXP MCU-to-MCU platforms (vector set
    /// `mcu-align16`): the ring rounded up to `align` (448 for 16 entries
    /// with 16-byte alignment, against [`vring_size`]'s 438).
    ///
    /// # Panics
    ///
    /// As [`vring_size`].
    pub const fn mcu_vring_stride(num: usize, align: usize) -> usize {
        match align_up(vring_size(num, align), align) {
            Some(s) => s,
            None => panic!("vring size overflows"),
        }
    }
}

/// The offsets of one split virtqueue in the shared window.
///
/// Plain data: building one checks only the ring's own rules (sizes,
/// alignment, no overlap); the ring objects check it again against the
/// window and the cache line when they are created, unless it comes as
/// [`InWindow`] (checked already).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
// `repr(C)`, `num` first: in `Result<InWindow, _>` an error sits where the
// first field does, and a small one there is carried whole (the offsets
// behind it would otherwise be moved in pieces).
#[repr(C)]
pub struct Layout {
    num: u16,
    desc: usize,
    avail: usize,
    used: usize,
}

const fn ranges_overlap(a: usize, a_len: usize, b: usize, b_len: usize) -> bool {
    a < b + b_len && b < a + a_len
}

impl Layout {
    /// The legacy layout at window offset 0 (`vring_init(p, num, p, align)`).
    ///
    /// # Panics
    ///
    /// If [`Layout::try_legacy_at`] would fail (a compile error in `const`
    /// context).
    pub const fn legacy(num: u16, align: usize) -> Self {
        Self::legacy_at(0, num, align)
    }

    /// The legacy layout at window offset `base`.
    ///
    /// # Panics
    ///
    /// If [`Layout::try_legacy_at`] would fail (a compile error in `const`
    /// context).
    pub const fn legacy_at(base: usize, num: u16, align: usize) -> Self {
        match Self::try_legacy_at(base, num, align) {
            Ok(l) => l,
            Err(_) => panic!("invalid legacy vring layout"),
        }
    }

    /// The legacy layout at window offset `base`: descriptors at `base`, the
    /// available ring right behind them, the used ring at the next multiple
    /// of `align` after `used_event` (rpmsg-wire.md §1.2).
    ///
    /// Alignment is relative to the window: `base` must be a multiple of
    /// `align` so that the used ring lands where the peer computes it.
    ///
    /// # Errors
    ///
    /// [`Error::BadNum`], [`Error::BadAlign`],
    /// [`Error::MisalignedArea`] (`base` not a multiple of `align` and 16),
    /// [`Error::Overflow`].
    pub const fn try_legacy_at(base: usize, num: u16, align: usize) -> Result<Self, Error> {
        if !align.is_power_of_two() || align < USED_ALIGN {
            return Err(Error::BadAlign);
        }
        if !num.is_power_of_two() || num > MAX_NUM {
            return Err(Error::BadNum);
        }
        let need = if align > DESC_ALIGN {
            align
        } else {
            DESC_ALIGN
        };
        // `need` is a power of two (checked above, or `DESC_ALIGN`): a mask,
        // not a division.
        if base & (need - 1) != 0 {
            return Err(Error::MisalignedArea);
        }
        let n = num as usize;
        // The ring's shape from offset 0 first: with `num` and `align`
        // constants (a firmware's own resource table) it is all folded at
        // build time, and `base` costs one sum checked for overflow, not
        // one per area. The same errors as placing each area at `base`:
        // `base` is a multiple of `align`, so rounding `base + x` up to
        // `align` is `base` plus `x` rounded up, and that overflows exactly
        // when the ring's end does.
        let avail = desc_table_size(n);
        let used = match align_up(avail + avail_size(n), align) {
            Some(u) => u,
            None => return Err(Error::Overflow),
        };
        let end = match used.checked_add(used_size(n)) {
            Some(e) => e,
            None => return Err(Error::Overflow),
        };
        if base.checked_add(end).is_none() {
            return Err(Error::Overflow);
        }
        Ok(Self {
            num,
            desc: base,
            avail: base + avail,
            used: base + used,
        })
    }

    /// Three independent areas (virtio 1.x: the driver picks each address).
    ///
    /// # Errors
    ///
    /// [`Error::BadNum`]; [`Error::MisalignedArea`] if `desc` is not
    /// 16-aligned, `avail` not 2-aligned or `used` not 4-aligned;
    /// [`Error::AreasOverlap`]; [`Error::Overflow`].
    pub const fn split(num: u16, desc: usize, avail: usize, used: usize) -> Result<Self, Error> {
        if !num.is_power_of_two() || num > MAX_NUM {
            return Err(Error::BadNum);
        }
        let n = num as usize;
        let areas = [
            (desc, DESC_ALIGN, desc_table_size(n)),
            (avail, AVAIL_ALIGN, avail_size(n)),
            (used, USED_ALIGN, used_size(n)),
        ];
        let mut i = 0;
        while i < 3 {
            let (off, align, len) = areas[i];
            if off % align != 0 {
                return Err(Error::MisalignedArea);
            }
            if off.checked_add(len).is_none() {
                return Err(Error::Overflow);
            }
            i += 1;
        }
        let mut a = 0;
        while a < 3 {
            let mut b = a + 1;
            while b < 3 {
                if ranges_overlap(areas[a].0, areas[a].2, areas[b].0, areas[b].2) {
                    return Err(Error::AreasOverlap);
                }
                b += 1;
            }
            a += 1;
        }
        Ok(Self {
            num,
            desc,
            avail,
            used,
        })
    }

    /// The number of entries (queue size).
    #[inline]
    pub const fn num(&self) -> u16 {
        self.num
    }

    /// Offset of the descriptor table.
    #[inline]
    pub const fn desc_offset(&self) -> usize {
        self.desc
    }

    /// Offset of the available ring (`avail.flags`).
    #[inline]
    pub const fn avail_offset(&self) -> usize {
        self.avail
    }

    /// Offset of the used ring (`used.flags`).
    #[inline]
    pub const fn used_offset(&self) -> usize {
        self.used
    }

    /// Offset of `used_event` (`avail.ring[num]`, written by the driver).
    #[inline]
    pub const fn used_event_offset(&self) -> usize {
        self.avail + 4 + 2 * self.num as usize
    }

    /// Offset of `avail_event` (`used.ring[num]`, written by the device).
    #[inline]
    pub const fn avail_event_offset(&self) -> usize {
        self.used + 4 + USED_ELEM_SIZE * self.num as usize
    }

    /// Offset of descriptor `i` (no bound check: `i` must be `< num`).
    #[inline]
    pub const fn desc_entry_offset(&self, i: u16) -> usize {
        self.desc_slot(i as usize)
    }

    /// Offset of `avail.ring[pos]` (`pos < num`).
    #[inline]
    pub const fn avail_entry_offset(&self, pos: u16) -> usize {
        self.avail_slot(pos as usize)
    }

    /// Offset of `used.ring[pos]` (`pos < num`).
    #[inline]
    pub const fn used_entry_offset(&self, pos: u16) -> usize {
        self.used_slot(pos as usize)
    }

    /// [`Layout::desc_entry_offset`] of an index already widened (the
    /// rings mask positions as `usize`: no zero extension after the mask).
    #[inline(always)]
    pub(crate) const fn desc_slot(&self, i: usize) -> usize {
        self.desc + DESC_SIZE * i
    }

    /// [`Layout::avail_entry_offset`] of an index already widened.
    #[inline(always)]
    pub(crate) const fn avail_slot(&self, i: usize) -> usize {
        self.avail + 4 + 2 * i
    }

    /// [`Layout::used_entry_offset`] of an index already widened.
    #[inline(always)]
    pub(crate) const fn used_slot(&self, i: usize) -> usize {
        self.used + 4 + USED_ELEM_SIZE * i
    }

    /// The three areas as `(offset, len)`: descriptors, available ring (with
    /// `used_event`), used ring (with `avail_event`).
    pub const fn areas(&self) -> [(usize, usize); 3] {
        let n = self.num as usize;
        [
            (self.desc, desc_table_size(n)),
            (self.avail, avail_size(n)),
            (self.used, used_size(n)),
        ]
    }

    /// The lowest offset of the ring.
    pub const fn start(&self) -> usize {
        let [(d, _), (a, _), (u, _)] = self.areas();
        let m = if d < a { d } else { a };
        if m < u {
            m
        } else {
            u
        }
    }

    /// One past the highest byte of the ring (for the legacy layout,
    /// `base + vring_size(num, align)`).
    ///
    /// Three sums and two comparisons (no array of the areas: smaller
    /// code on a microcontroller).
    pub const fn end(&self) -> usize {
        let n = self.num as usize;
        let d = self.desc + desc_table_size(n);
        let a = self.avail + avail_size(n);
        let u = self.used + used_size(n);
        let m = if d > a { d } else { a };
        if m > u {
            m
        } else {
            u
        }
    }

    /// Whether `offset..offset + len` touches any ring area.
    pub const fn overlaps(&self, offset: usize, len: usize) -> bool {
        let areas = self.areas();
        let mut i = 0;
        while i < 3 {
            if ranges_overlap(areas[i].0, areas[i].1, offset, len) {
                return true;
            }
            i += 1;
        }
        false
    }

    /// Checks the layout against a window of `window` bytes whose cache
    /// maintenance granule is `line` (1 when coherent).
    ///
    /// With `line > 1`, the lines covering the driver's areas (descriptors,
    /// available ring) must be disjoint from the lines covering the device's
    /// area (used ring). Fields of the same side may share lines; what lies
    /// just before or after the ring (another ring, buffers) is the caller's
    /// layout and must follow the same rule.
    ///
    /// # Errors
    ///
    /// [`Error::RingOutsideWindow`], [`Error::SharedCacheLine`].
    pub const fn check(&self, window: usize, line: usize) -> Result<(), Error> {
        let end = self.end();
        if end > window {
            return Err(Error::RingOutsideWindow);
        }
        if line > 1 {
            let [(d, dl), (a, al), (u, ul)] = self.areas();
            let used_lo = u & !(line - 1);
            let used_hi = match align_up(u + ul, line) {
                Some(h) => h,
                None => return Err(Error::Overflow),
            };
            let drivers = [(d, dl), (a, al)];
            let mut i = 0;
            while i < 2 {
                let (o, l) = drivers[i];
                let lo = o & !(line - 1);
                let hi = match align_up(o + l, line) {
                    Some(h) => h,
                    None => return Err(Error::Overflow),
                };
                if lo < used_hi && used_lo < hi {
                    return Err(Error::SharedCacheLine);
                }
                i += 1;
            }
        }
        Ok(())
    }
}

/// A [`Layout`] checked against one window ([`Layout::check_in`]): the
/// ring lies inside it and keeps the cache-line rule of its memory. Only
/// that check makes one, and it holds the window it was checked against,
/// so a ring built from it ([`crate::Device::in_window`]) does not check
/// again: a boot path that checked the layout once (rpmsg's resource-table
/// boot) attaches without a second pass over the same arithmetic.
#[derive(Debug)]
// `repr(C)`, layout first: see `Layout`.
#[repr(C)]
pub struct InWindow<'m, M: ?Sized> {
    layout: Layout,
    mem: &'m M,
}

// By hand: a derive would ask `M: Clone`.
impl<M: ?Sized> Clone for InWindow<'_, M> {
    #[inline(always)]
    fn clone(&self) -> Self {
        *self
    }
}

impl<M: ?Sized> Copy for InWindow<'_, M> {}

impl<'m, M: ?Sized> InWindow<'m, M> {
    /// `layout` as checked against `mem`, taking the caller's word for it
    /// (a caller that made the same checks its own way, cheaper for the
    /// layouts it builds).
    ///
    /// # Safety
    ///
    /// `layout.check(mem.len(), M::LINE)` returns `Ok` (the ring constructors
    /// access the ring's fields without bounds checks).
    #[allow(unsafe_code)]
    #[inline(always)]
    pub const unsafe fn new_unchecked(layout: Layout, mem: &'m M) -> Self {
        Self { layout, mem }
    }

    /// The layout.
    #[inline(always)]
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The window it was checked against.
    #[inline(always)]
    pub fn mem(&self) -> &'m M {
        self.mem
    }
}

impl Layout {
    /// [`Layout::check`] against `mem` (its length and cache line), kept
    /// as proof with the window.
    ///
    /// # Errors
    ///
    /// As [`Layout::check`].
    #[inline]
    pub fn check_in<M: SharedMemory + ?Sized>(self, mem: &M) -> Result<InWindow<'_, M>, Error> {
        self.check(mem.len(), M::LINE)?;
        Ok(InWindow { layout: self, mem })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worked_examples_of_the_sheet() {
        // rpmsg-wire.md §1.2 table.
        assert_eq!(vring_size(256, 4096), 10246);
        assert_eq!(vring_size(16, 4096), 4230);
        assert_eq!(vring_size(16, 16), 438);
        assert_eq!(Layout::legacy(256, 4096).used_offset(), 8192);
        assert_eq!(Layout::legacy(16, 4096).used_offset(), 4096);
        assert_eq!(Layout::legacy(16, 16).used_offset(), 304);
        assert_eq!(Layout::legacy(16, 16).end(), 438);
        assert_eq!(rpmsg_lite::mcu_vring_stride(16, 16), 448);
    }

    #[test]
    fn bad_parameters_are_refused() {
        assert_eq!(Layout::try_legacy_at(0, 12, 16), Err(Error::BadNum));
        assert_eq!(Layout::try_legacy_at(0, 0, 16), Err(Error::BadNum));
        assert_eq!(Layout::try_legacy_at(0, 16, 24), Err(Error::BadAlign));
        assert_eq!(Layout::try_legacy_at(0, 16, 2), Err(Error::BadAlign));
        assert!(matches!(
            Layout::try_legacy_at(8, 16, 16),
            Err(Error::MisalignedArea)
        ));
        assert!(matches!(
            Layout::try_legacy_at(usize::MAX - 15, 16, 16),
            Err(Error::Overflow)
        ));
        assert_eq!(Layout::split(8, 0, 64, 100), Err(Error::AreasOverlap));
        assert!(matches!(
            Layout::split(8, 8, 256, 512),
            Err(Error::MisalignedArea)
        ));
        assert!(matches!(
            Layout::split(8, 0, 256, 514),
            Err(Error::MisalignedArea)
        ));
        let l = Layout::split(8, 1024, 512, 0).unwrap();
        assert_eq!((l.start(), l.end()), (0, 1024 + 128));
        assert_eq!(l.used_event_offset(), 512 + 4 + 16);
        assert_eq!(l.avail_event_offset(), 4 + 64);
    }

    #[test]
    fn cache_line_rule() {
        let small = Layout::legacy(16, 16);
        assert_eq!(small.check(448, 1), Ok(()));
        assert_eq!(small.check(448, 16), Ok(()));
        assert_eq!(small.check(448, 32), Err(Error::SharedCacheLine));
        assert_eq!(small.check(400, 1), Err(Error::RingOutsideWindow));
        let big = Layout::legacy(16, 64);
        assert_eq!(big.check(4096, 64), Ok(()));
        assert!(big.overlaps(big.used_offset() + 10, 1));
        assert!(!big.overlaps(big.end(), 64));
    }
}

#[cfg(test)]
mod tests_size10 {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use super::*;

    /// The legacy placement computed area by area, each sum checked: what
    /// [`Layout::try_legacy_at`] did before it placed the shape from
    /// offset 0, kept as the reference it must agree with.
    fn per_area(base: usize, num: u16, align: usize) -> Result<Layout, Error> {
        if !align.is_power_of_two() || align < USED_ALIGN {
            return Err(Error::BadAlign);
        }
        if !num.is_power_of_two() || num > MAX_NUM {
            return Err(Error::BadNum);
        }
        if base % align.max(DESC_ALIGN) != 0 {
            return Err(Error::MisalignedArea);
        }
        let n = usize::from(num);
        let avail = base
            .checked_add(desc_table_size(n))
            .ok_or(Error::Overflow)?;
        let used = avail
            .checked_add(avail_size(n))
            .and_then(|e| align_up(e, align))
            .ok_or(Error::Overflow)?;
        used.checked_add(used_size(n)).ok_or(Error::Overflow)?;
        Ok(Layout {
            num,
            desc: base,
            avail,
            used,
        })
    }

    /// Every shape and base, the edges of the address space included
    /// (where one area's sum overflows and the next would not), gives the
    /// reference's layout or error.
    #[test]
    fn legacy_placement_agrees_with_the_per_area_sums() {
        let nums = [0u16, 1, 2, 3, 4, 16, 48, 256, 4096, 32768, 65535];
        let mut aligns = vec![0usize, 1, 2, 3, 4, 8, 16, 24, 64, 4096, 1 << 20];
        aligns.push(1 << (usize::BITS - 1));
        let (mut checked, mut overflows) = (0, 0);
        for &num in &nums {
            for &align in &aligns {
                let mut bases = vec![0usize, 8, 16, 4096, 1 << 20];
                let step = align.max(DESC_ALIGN);
                // Aligned bases whose ring ends just below, at, and just
                // past the end of the address space.
                for k in 0..4 {
                    for back in [0usize, 1, 2, 3] {
                        let b = (usize::MAX - k * 1000).wrapping_sub(back.wrapping_mul(step))
                            & !(step - 1);
                        bases.push(b);
                        bases.push(b | 8);
                    }
                }
                if let Ok(shape) = per_area(0, num, align) {
                    let end = shape.end();
                    for d in [0usize, 1, 16, step, step.wrapping_mul(2)] {
                        let b = (usize::MAX - end + 1).wrapping_sub(d) & !(step - 1);
                        bases.extend([b, b.wrapping_add(step), b.wrapping_sub(step)]);
                    }
                }
                for &base in &bases {
                    assert_eq!(
                        Layout::try_legacy_at(base, num, align),
                        per_area(base, num, align),
                        "base {base:#x} num {num} align {align:#x}"
                    );
                    checked += 1;
                    overflows += usize::from(per_area(base, num, align) == Err(Error::Overflow));
                }
            }
        }
        assert!(checked > 1000 && overflows > 100, "{checked} {overflows}");
    }
}
