//! Field access shared by both roles: one place that turns ring fields into
//! memory operations with the ring's byte order.
//!
//! Cache maintenance is *not* hidden in here: each role calls
//! [`RingMem::clean`] / [`RingMem::invalidate`] at the exact point its
//! protocol needs it, so every maintenance call is visible (and testable) at
//! its call site.
#![allow(unsafe_code)]

use core::marker::PhantomData;

#[cfg(feature = "small")]
use ipc_traits::shm::DirectBase;
use ipc_traits::shm::{DirectPart, SharedMemory, ShmError};

use crate::endian::Endian;
use crate::error::Error;
use crate::layout::{InWindow, Layout, DESC_SIZE, USED_ELEM_SIZE};

/// A decoded descriptor (read once into a local, then validated).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Desc {
    pub addr: u64,
    pub len: u32,
    pub flags: u16,
    pub next: u16,
}

/// The entry lines a consumer invalidated since it last fetched the peer's
/// index: `lo..hi`, whole lines (see [`RingMem::invalidate_entry`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fresh {
    lo: usize,
    hi: usize,
}

impl Fresh {
    /// No line: what a fetch of the index resets it to.
    pub const NONE: Self = Self { lo: 0, hi: 0 };
}

/// The 16-bit control fields of a split ring (virtio 1.x §2.7.6, §2.7.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Field {
    /// `avail.flags` (driver-written).
    AvailFlags,
    /// `avail.idx` (driver-written).
    AvailIdx,
    /// `used_event`, behind `avail.ring` (driver-written).
    UsedEvent,
    /// `used.flags` (device-written).
    UsedFlags,
    /// `used.idx` (device-written).
    UsedIdx,
    /// `avail_event`, behind `used.ring` (device-written).
    AvailEvent,
}

impl Field {
    /// The field as an area and an offset in it (each area's start
    /// 2-aligned: the areas' alignment, `Layout`'s constructors; the
    /// field inside the ring).
    #[inline(always)]
    fn at(self) -> (Area, usize) {
        match self {
            Self::AvailFlags => (Area::Avail, 0),
            Self::AvailIdx => (Area::Avail, 2),
            Self::UsedEvent => (Area::UsedEvent, 0),
            Self::UsedFlags => (Area::Used, 0),
            Self::UsedIdx => (Area::Used, 2),
            Self::AvailEvent => (Area::AvailEvent, 0),
        }
    }
}

/// A part of the ring an access is relative to: an area (descriptor
/// table, available ring, used ring) or one of the two event fields, which
/// lie behind the rings (their offsets depend on `num`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Area {
    /// The whole window (offsets are window offsets): with the feature
    /// `small`, the descriptor accesses, whose offset the Cortex-M4 code
    /// computes in fewer instructions from the window's base.
    #[cfg(feature = "small")]
    Window,
    Desc,
    Avail,
    Used,
    UsedEvent,
    AvailEvent,
}

/// Where each [`Area`] of a ring on direct memory lies, computed once
/// ([`RingMem::checked`]): an access is then one address and a constant or
/// a scaled index, with no window base and area offset to load and add
/// first. Not with the feature `small`, where the five addresses cost more
/// code (a larger ring to copy and pass) than they save.
#[cfg(not(feature = "small"))]
#[derive(Clone, Copy)]
struct Parts<'m> {
    desc: DirectPart<'m>,
    avail: DirectPart<'m>,
    used: DirectPart<'m>,
    used_event: DirectPart<'m>,
    avail_event: DirectPart<'m>,
}

/// The memory and offsets of one ring, with its byte order.
///
/// Only exists validated: [`RingMem::new`] checks the layout against the
/// window (every area ends inside it; each area is aligned to its fields'
/// width, which `Layout`'s constructors guarantee, and the window base is
/// aligned for them by the `SharedMemory` implementation). The field
/// accessors below therefore use the `_unchecked` accesses of
/// `SharedMemory`: no per-access bounds or alignment check. Their callers
/// pass in-range indices (`i < num`, positions masked), which is all the
/// offsets depend on.
pub(crate) struct RingMem<'m, M: ?Sized, E> {
    pub mem: &'m M,
    pub layout: Layout,
    /// `num - 1`, as a `u32`: a position is masked in 32 bits, whose
    /// result a 64-bit target has zero-extended already (a 32-bit
    /// operation clears the upper half), so the index costs no extension
    /// of its own ([`RingMem::slot`]).
    pub mask: u32,
    /// The window's base when `M::DIRECT` (always `Some` then: `new`),
    /// for the field accessors: a copy of it stays in a register across
    /// the stores of a hot path, where the base inside `*mem` is loaded
    /// again after each. `None` for any other memory, whose accesses all
    /// go through the trait (a simulated cache sees every one). Without
    /// the feature `small`, the address of each area instead ([`Parts`]).
    #[cfg(feature = "small")]
    direct: Option<DirectBase<'m>>,
    /// As with the feature `small`, each area's address.
    #[cfg(not(feature = "small"))]
    direct: Option<Parts<'m>>,
    /// `layout.used_event_offset()`, computed once: every check for a
    /// notification reads it (a load, not a load of `num`, a shift and
    /// two adds). Not with the feature `small`, where the field costs
    /// more code than it saves.
    #[cfg(not(feature = "small"))]
    used_event: usize,
    /// `layout.avail_event_offset()`, computed once (as `used_event`).
    #[cfg(not(feature = "small"))]
    avail_event: usize,
    _endian: PhantomData<E>,
}

// By hand: a derive would ask `M: Copy` and `E: Copy`.
impl<M: ?Sized, E> Clone for RingMem<'_, M, E> {
    #[inline(always)]
    fn clone(&self) -> Self {
        *self
    }
}

/// A copy is what the hot paths work on: a local copy of the fields stays
/// in registers, where the fields of a ring object behind a reference are
/// loaded again after every store into shared memory (the compiler cannot
/// tell the window from the object).
impl<M: ?Sized, E> Copy for RingMem<'_, M, E> {}

#[inline]
pub(crate) fn mem_err<T: ipc_traits::shm::Error>(e: T) -> Error {
    Error::Memory(e.kind())
}

impl<M: ?Sized, E> RingMem<'_, M, E> {
    /// The offset of `used_event` ([`Layout::used_event_offset`]).
    #[inline(always)]
    pub fn used_event_offset(&self) -> usize {
        #[cfg(not(feature = "small"))]
        return self.used_event;
        #[cfg(feature = "small")]
        self.layout.used_event_offset()
    }

    /// The offset of `avail_event` ([`Layout::avail_event_offset`]).
    #[inline(always)]
    pub fn avail_event_offset(&self) -> usize {
        #[cfg(not(feature = "small"))]
        return self.avail_event;
        #[cfg(feature = "small")]
        self.layout.avail_event_offset()
    }
}

impl<'m, M: SharedMemory + ?Sized, E: Endian> RingMem<'m, M, E> {
    /// Checks `layout` against the window, the cache line and the capacity.
    pub fn new(mem: &'m M, layout: Layout, capacity: usize) -> Result<Self, Error> {
        if usize::from(layout.num()) > capacity {
            return Err(Error::TooManyEntries);
        }
        // The capacity test again in `checked` is this one (folded).
        Self::checked(layout.check_in(mem)?, capacity)
    }

    /// [`RingMem::new`] for a layout already checked against its window:
    /// only the capacity is checked.
    pub fn checked(w: InWindow<'m, M>, capacity: usize) -> Result<Self, Error> {
        let (mem, layout) = (w.mem(), w.layout());
        if usize::from(layout.num()) > capacity {
            return Err(Error::TooManyEntries);
        }
        let direct = if M::DIRECT {
            // A memory that says it is direct but gives no base is
            // refused here, so that the accessors need not test for one.
            let base = mem
                .direct_base()
                .ok_or_else(|| mem_err(M::Error::from(ShmError::Unavailable)))?;
            #[cfg(feature = "small")]
            let direct = base;
            #[cfg(not(feature = "small"))]
            // SAFETY: every offset lies in the ring, which ends inside the
            // window (`check_in` made `w`), so each is `<= len`.
            let direct = unsafe {
                Parts {
                    desc: base.part(layout.desc_offset()),
                    avail: base.part(layout.avail_offset()),
                    used: base.part(layout.used_offset()),
                    used_event: base.part(layout.used_event_offset()),
                    avail_event: base.part(layout.avail_event_offset()),
                }
            };
            Some(direct)
        } else {
            None
        };
        Ok(Self {
            mem,
            layout,
            mask: u32::from(layout.num() - 1),
            direct,
            #[cfg(not(feature = "small"))]
            used_event: layout.used_event_offset(),
            #[cfg(not(feature = "small"))]
            avail_event: layout.avail_event_offset(),
            _endian: PhantomData,
        })
    }

    /// The window offset of `area`.
    #[inline(always)]
    fn area_offset(&self, area: Area) -> usize {
        let l = &self.layout;
        match area {
            #[cfg(feature = "small")]
            Area::Window => 0,
            Area::Desc => l.desc_offset(),
            Area::Avail => l.avail_offset(),
            Area::Used => l.used_offset(),
            Area::UsedEvent => self.used_event_offset(),
            Area::AvailEvent => self.avail_event_offset(),
        }
    }

    /// Where an access `at` bytes into `area` goes when `M::DIRECT`: an
    /// address and the offset from it. Without the feature `small`, the
    /// area's address and `at`; with it, the window's base and the whole
    /// offset (the area's offset added to `at` first, as a Cortex-M4 keeps
    /// it in fewer instructions).
    #[inline(always)]
    fn direct_at(&self, area: Area, at: usize) -> (DirectPart<'m>, usize) {
        // SAFETY: called only under `M::DIRECT`, and `new` (the only
        // constructor; the field is private to this module) stored
        // `Some` then.
        let direct = unsafe { self.direct.unwrap_unchecked() };
        #[cfg(feature = "small")]
        // SAFETY: offset 0 is `<= len`.
        return (unsafe { direct.part(0) }, self.area_offset(area) + at);
        #[cfg(not(feature = "small"))]
        (
            match area {
                Area::Desc => direct.desc,
                Area::Avail => direct.avail,
                Area::Used => direct.used,
                Area::UsedEvent => direct.used_event,
                Area::AvailEvent => direct.avail_event,
            },
            at,
        )
    }

    /// The index of ring position `pos`: `pos & (num - 1)`, `< num`.
    #[inline(always)]
    pub fn slot(&self, pos: u16) -> usize {
        // `u32` to `usize` is lossless on every target this crate builds
        // for (16-bit targets have no `u32`-wide `usize`, and no ring here).
        (u32::from(pos) & self.mask) as usize
    }

    /// Writes back the lines covering `offset..offset + len`.
    #[inline]
    pub fn clean(&self, offset: usize, len: usize) -> Result<(), Error> {
        if M::COHERENT {
            return Ok(());
        }
        let (o, l) = self.mem.covering_lines(offset, len).map_err(mem_err)?;
        self.mem.clean(o, l).map_err(mem_err)
    }

    /// Discards this core's copy of the lines covering `offset..offset +
    /// len`. Only ever called on lines the *other* side writes (the layout
    /// check keeps the two sides' fields on different lines), so no local
    /// write is lost.
    #[inline]
    pub fn invalidate(&self, offset: usize, len: usize) -> Result<(), Error> {
        if M::COHERENT {
            return Ok(());
        }
        let (o, l) = self.mem.covering_lines(offset, len).map_err(mem_err)?;
        self.mem.invalidate(o, l).map_err(mem_err)
    }

    /// [`RingMem::invalidate`] for a peer-written ring entry at
    /// `offset..offset + len`, skipping the lines already fresh for it.
    ///
    /// Fresh lines are the one holding the peer's index (`idx_offset`),
    /// which every fetch of that index invalidates and reloads, and the
    /// entry lines invalidated since that fetch (`fresh`, which the fetch
    /// resets). The peer writes (and cleans) an entry before the index that
    /// reveals it, and the consumer reads only entries the last fetched
    /// index revealed, so a line filled from memory after that fetch
    /// already holds them: one invalidation per line per fetch, and none
    /// for the entries beside the index. Neither side writes the other's
    /// lines (`Layout::check`), so nothing of this core's is dropped.
    #[inline(always)]
    pub fn invalidate_entry(
        &self,
        fresh: &mut Fresh,
        idx_offset: usize,
        offset: usize,
        len: usize,
    ) -> Result<(), Error> {
        if M::COHERENT {
            return Ok(());
        }
        self.invalidate_entry_lines(fresh, idx_offset, offset, len)
    }

    /// [`RingMem::invalidate_entry`] on non-coherent memory (out of line:
    /// one copy per ring type, not one per pop).
    #[inline(never)]
    fn invalidate_entry_lines(
        &self,
        fresh: &mut Fresh,
        idx_offset: usize,
        offset: usize,
        len: usize,
    ) -> Result<(), Error> {
        let line = M::LINE;
        let mut lo = offset & !(line - 1);
        // `offset + len` is inside the ring, inside the window (`new`).
        let hi = (offset + len - 1) & !(line - 1);
        if lo == idx_offset & !(line - 1) {
            lo += line;
        }
        if fresh.lo <= lo && lo <= fresh.hi {
            lo = fresh.hi;
        } else {
            *fresh = Fresh { lo, hi: lo };
        }
        if lo > hi {
            return Ok(());
        }
        fresh.hi = hi + line;
        let done = self.invalidate(lo, hi + line - lo);
        if done.is_err() {
            *fresh = Fresh::NONE;
        }
        done
    }

    /// Loads an index, flags or event field with acquire ordering.
    #[inline]
    pub fn load_u16(&self, field: Field) -> Result<u16, Error> {
        let (area, at) = field.at();
        if M::DIRECT {
            let (p, at) = self.direct_at(area, at);
            // SAFETY: as below; the part's accesses are the window's, and
            // an area's address is 2-aligned (its offset is, and the
            // window's base is 4-aligned: `DirectBase::new`).
            return Ok(E::u16_from_stored(unsafe { p.load_u16_acquire(at) }));
        }
        let offset = self.area_offset(area) + at;
        // SAFETY: a `Field` offset is 2-aligned and inside the ring, which
        // lies inside the window (`new` checked the layout's end).
        unsafe { self.mem.load_u16_acquire_unchecked(offset) }
            .map(E::u16_from_stored)
            .map_err(mem_err)
    }

    /// Stores an index, flags or event field with release ordering.
    #[inline]
    pub fn store_u16(&self, field: Field, v: u16) -> Result<(), Error> {
        let (area, at) = field.at();
        if M::DIRECT {
            let (p, at) = self.direct_at(area, at);
            // SAFETY: as in `load_u16`.
            unsafe { p.store_u16_release(at, E::u16_to_stored(v)) };
            return Ok(());
        }
        let offset = self.area_offset(area) + at;
        // SAFETY: as in `load_u16`.
        unsafe {
            self.mem
                .store_u16_release_unchecked(offset, E::u16_to_stored(v))
        }
        .map_err(mem_err)
    }

    /// Loads the 32-bit word at `at` bytes into `area` as stored.
    ///
    /// # Safety
    ///
    /// `area` is 4-aligned (the descriptor table, the used ring or the
    /// window), `at` is 4-aligned and `at + 4` inside the area.
    #[inline(always)]
    unsafe fn word(&self, area: Area, at: usize) -> Result<u32, Error> {
        if M::DIRECT {
            let (p, at) = self.direct_at(area, at);
            // SAFETY: the caller's contract is the access's (the window's
            // base is 4-aligned: `DirectBase::new`).
            return Ok(unsafe { p.load_u32(at) });
        }
        // SAFETY: the caller's contract is the accessor's.
        unsafe { self.mem.load_u32_unchecked(self.area_offset(area) + at) }.map_err(mem_err)
    }

    /// Stores `K` consecutive 32-bit words at `at` bytes into `area` as
    /// given, in order, through one accessor call.
    ///
    /// # Safety
    ///
    /// As [`RingMem::word`], for `at + 4 * K`.
    #[inline(always)]
    unsafe fn set_words<const K: usize>(
        &self,
        area: Area,
        at: usize,
        w: [[u8; 4]; K],
    ) -> Result<(), Error> {
        if M::DIRECT {
            let (part, at) = self.direct_at(area, at);
            // By index (see `store_u32s_unchecked` of `RawRegion`).
            let mut i = 0;
            while i < K {
                // SAFETY: word `i < K` of the caller's range: 4-aligned,
                // inside the ring.
                unsafe { part.store_u32(at + 4 * i, u32::from_ne_bytes(w[i])) };
                i += 1;
            }
            return Ok(());
        }
        // SAFETY: the caller's contract is the accessor's.
        unsafe {
            self.mem
                .store_u32s_unchecked(self.area_offset(area) + at, w.map(u32::from_ne_bytes))
        }
        .map_err(mem_err)
    }

    /// Reads descriptor `i` (`i < num`) into a local: four 32-bit loads,
    /// each field read once.
    #[inline(always)]
    pub fn read_desc(&self, i: u16) -> Result<Desc, Error> {
        // SAFETY: the masked index is `< num`.
        unsafe { self.read_desc_below_num(self.slot(i)) }
    }

    /// [`RingMem::read_desc`] of an index the caller checked against
    /// `num` already (no mask to apply again).
    ///
    /// # Safety
    ///
    /// `i < num`.
    #[inline(always)]
    pub unsafe fn read_desc_below_num(&self, i: usize) -> Result<Desc, Error> {
        #[cfg(not(feature = "small"))]
        let (area, off) = (Area::Desc, DESC_SIZE * i);
        #[cfg(feature = "small")]
        let (area, off) = (Area::Window, self.layout.desc_slot(i));
        // SAFETY: `i < num` (the caller's contract), so the entry lies in
        // the descriptor table, inside the window (`new`); the table is
        // 16-aligned (`Layout`), so each word is 4-aligned.
        // The words stay `u32` until decoded (a `Result` of byte arrays
        // is packed into registers with shifts the compiler keeps).
        let (a, b, len, fl) = unsafe {
            (
                self.word(area, off)?,
                self.word(area, off + 4)?,
                self.word(area, off + 8)?,
                self.word(area, off + 12)?,
            )
        };
        let [f0, f1, n0, n1] = fl.to_ne_bytes();
        // The 8 address bytes as a native `u64`, put together from the two
        // words with a shift (not byte by byte, which the compiler keeps
        // as byte masks), then in the ring's byte order.
        let native = if cfg!(target_endian = "little") {
            u64::from(a) | u64::from(b) << 32
        } else {
            u64::from(a) << 32 | u64::from(b)
        };
        Ok(Desc {
            addr: E::u64_from(native.to_ne_bytes()),
            len: E::u32_from(len.to_ne_bytes()),
            flags: E::u16_from([f0, f1]),
            next: E::u16_from([n0, n1]),
        })
    }

    /// Writes descriptor `i` (`i < num`): four 32-bit stores.
    #[cfg(test)]
    pub fn write_desc(&self, i: u16, d: &Desc) -> Result<(), Error> {
        // SAFETY: the masked index is `< num`.
        unsafe { self.write_desc_below_num(self.slot(i), d) }
    }

    /// [`RingMem::write_desc`] of an index the caller checked against
    /// `num` already (no mask to apply again).
    ///
    /// # Safety
    ///
    /// `i < num`.
    #[inline]
    pub unsafe fn write_desc_below_num(&self, i: usize, d: &Desc) -> Result<(), Error> {
        let [a0, a1, a2, a3, a4, a5, a6, a7] = E::u64_to(d.addr);
        let [f0, f1] = E::u16_to(d.flags);
        let [n0, n1] = E::u16_to(d.next);
        let off = DESC_SIZE * i;
        // SAFETY: as in `read_desc_below_num`.
        // One call for the four words: the window's base is read once.
        unsafe {
            self.set_words(
                Area::Desc,
                off,
                [
                    [a0, a1, a2, a3],
                    [a4, a5, a6, a7],
                    E::u32_to(d.len),
                    [f0, f1, n0, n1],
                ],
            )
        }
    }

    /// Reads `avail.ring[pos & mask]`: one 16-bit load.
    #[inline]
    pub fn read_avail_entry(&self, pos: u16) -> Result<u16, Error> {
        let at = 4 + 2 * self.slot(pos);
        if M::DIRECT {
            let (p, at) = self.direct_at(Area::Avail, at);
            // SAFETY: as below (the ring's address is 2-aligned, as its
            // offset and the window's base).
            let v = unsafe { p.load_u16(at) };
            return Ok(E::u16_from(v.to_ne_bytes()));
        }
        let off = self.layout.avail_offset() + at;
        // SAFETY: the masked position is `< num`: inside the available
        // ring, inside the window (`new`), 2-aligned (`Layout`).
        unsafe { self.mem.load_u16_unchecked(off) }
            .map(|v| E::u16_from(v.to_ne_bytes()))
            .map_err(mem_err)
    }

    /// Writes `avail.ring[pos & mask]`: one 16-bit store.
    #[inline]
    pub fn write_avail_entry(&self, pos: u16, head: u16) -> Result<(), Error> {
        let at = 4 + 2 * self.slot(pos);
        if M::DIRECT {
            let (p, at) = self.direct_at(Area::Avail, at);
            // SAFETY: as in `read_avail_entry`.
            unsafe { p.store_u16(at, u16::from_ne_bytes(E::u16_to(head))) };
            return Ok(());
        }
        let off = self.layout.avail_offset() + at;
        // SAFETY: as in `read_avail_entry`.
        unsafe {
            self.mem
                .store_u16_unchecked(off, u16::from_ne_bytes(E::u16_to(head)))
        }
        .map_err(mem_err)
    }

    /// Whether `offset..offset + len` lies in the cache line of the
    /// index at `idx_offset`: a line every publication stores into and
    /// cleans, so it is written back whole each time.
    #[inline(always)]
    fn in_index_line(idx_offset: usize, offset: usize, len: usize) -> bool {
        let line = idx_offset & !(M::LINE - 1);
        offset & !(M::LINE - 1) == line && (offset + len - 1) & !(M::LINE - 1) == line
    }

    /// Makes `avail.ring[pos & mask]` hold `head`; says whether it stored.
    ///
    /// On non-coherent memory an entry in the line of `avail.idx` that
    /// this core's view already shows holding `head` is not stored (its
    /// line is not dirtied before the publication, which stores and cleans
    /// `avail.idx` and so writes the whole line back anyway, this entry
    /// with it: a stray write that reached memory under a cached line is
    /// still repaired by the next publication). Any other entry, and
    /// every entry on coherent memory, is stored.
    #[inline]
    pub fn update_avail_entry(&self, pos: u16, head: u16) -> Result<bool, Error> {
        let off = self.layout.avail_slot(self.slot(pos));
        if !M::COHERENT
            && Self::in_index_line(self.layout.avail_offset() + 2, off, 2)
            && self.read_avail_entry(pos)? == head
        {
            return Ok(false);
        }
        self.write_avail_entry(pos, head).map(|()| true)
    }

    /// Reads `used.ring[pos & mask]` as `(id, len)`: two 32-bit loads.
    #[inline]
    pub fn read_used_entry(&self, pos: u16) -> Result<(u32, u32), Error> {
        let at = 4 + USED_ELEM_SIZE * self.slot(pos);
        // SAFETY: the masked position is `< num`: inside the used ring,
        // inside the window (`new`); the ring is 4-aligned (`Layout`).
        let (id, len) = unsafe { (self.word(Area::Used, at)?, self.word(Area::Used, at + 4)?) };
        Ok((
            E::u32_from(id.to_ne_bytes()),
            E::u32_from(len.to_ne_bytes()),
        ))
    }

    /// Writes `used.ring[pos & mask]`: two 32-bit stores.
    ///
    /// One accessor call for both words (the window's base is read once);
    /// with the feature `small`, one call per word: the two-word call
    /// comes out as a copy loop through the stack at `opt-level = "s"`,
    /// 14 bytes larger on a Cortex-M4 per call site.
    #[inline]
    pub fn write_used_entry(&self, pos: u16, id: u32, len: u32) -> Result<(), Error> {
        let at = 4 + USED_ELEM_SIZE * self.slot(pos);
        if M::DIRECT {
            let (part, at) = self.direct_at(Area::Used, at);
            // SAFETY: as in `read_used_entry`: both words lie in the entry.
            unsafe {
                part.store_u32(at, u32::from_ne_bytes(E::u32_to(id)));
                part.store_u32(at + 4, u32::from_ne_bytes(E::u32_to(len)));
            }
            return Ok(());
        }
        #[cfg(not(feature = "small"))]
        // SAFETY: as in `read_used_entry`.
        let written = unsafe { self.set_words(Area::Used, at, [E::u32_to(id), E::u32_to(len)]) };
        #[cfg(feature = "small")]
        let off = self.layout.used_offset() + at;
        #[cfg(feature = "small")]
        // SAFETY: as in `read_used_entry`: both words lie in the entry.
        let written = unsafe {
            self.mem
                .store_u32_unchecked(off, u32::from_ne_bytes(E::u32_to(id)))
                .and_then(|()| {
                    self.mem
                        .store_u32_unchecked(off + 4, u32::from_ne_bytes(E::u32_to(len)))
                })
                .map_err(mem_err)
        };
        written
    }

    /// Makes `used.ring[pos & mask]` hold `(id, len)`; says whether it
    /// stored.
    ///
    /// On non-coherent memory an entry this core's view already shows
    /// holding `(id, len)` is not stored, wherever it lies (so its line is
    /// not dirtied, nor cleaned by the publication): only this device
    /// writes the used ring, and the entry reached memory when it was
    /// published. rpmsg's entries come round unchanged (`{id, buffer
    /// length}` for a driver that posts its buffers in a fixed order), so
    /// this saves a line write-back per message. A stray write that
    /// reached memory under a cached line is repaired by the next
    /// publication only in the line of `used.idx` (as in
    /// [`RingMem::update_avail_entry`]); in another line it stays until
    /// that line leaves this core's cache (the driver counts the entry it
    /// reads there as unknown). Every entry on coherent memory is stored.
    #[inline]
    pub fn update_used_entry(&self, pos: u16, id: u32, len: u32) -> Result<bool, Error> {
        if !M::COHERENT && self.read_used_entry(pos)? == (id, len) {
            return Ok(false);
        }
        self.write_used_entry(pos, id, len).map(|()| true)
    }

    /// The `(offset, len)` pieces of ring entries `from..to` (wrapping), one
    /// or two contiguous ranges, for cleaning a batch at once.
    #[inline]
    pub fn entry_spans(
        &self,
        first_entry: usize,
        entry_size: usize,
        from: u16,
        to: u16,
    ) -> [(usize, usize); 2] {
        let n = usize::from(to.wrapping_sub(from)).min(usize::from(self.layout.num()));
        let start = self.slot(from);
        let num = usize::from(self.layout.num());
        let first = n.min(num - start);
        [
            (first_entry + entry_size * start, entry_size * first),
            (first_entry, entry_size * (n - first)),
        ]
    }

    /// Zeroes `offset..offset + len` (ring initialisation).
    pub fn zero(&self, offset: usize, len: usize) -> Result<(), Error> {
        const ZEROS: [u8; 64] = [0; 64];
        let mut done = 0;
        while done < len {
            let n = (len - done).min(ZEROS.len());
            self.mem
                .write(offset + done, &ZEROS[..n])
                .map_err(mem_err)?;
            done += n;
        }
        Ok(())
    }
}
