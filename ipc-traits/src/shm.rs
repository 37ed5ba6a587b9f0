//! Shared memory: a bounds-checked window the rings live in.
//!
//! [`SharedMemory`] is the only way `vring` and `rpmsg` touch shared memory.
//! It is implemented over real memory by [`RawRegion`] and over simulated
//! memory with per-core caches by `conformance::SimMemory`, so the same ring
//! code runs on silicon, in the non-coherent simulation and under fuzzing.
//!
//! Every access names an *offset* into the window and is checked against the
//! window; peer addresses (what the other side writes into descriptors) go
//! through [`SharedMemory::translate`] first.
//!
//! # For link users
//!
//! - Indices go through [`SharedMemory::load_u16_acquire`] /
//!   [`SharedMemory::store_u16_release`]; payloads through `read` / `write`.
//! - Values are native-endian as stored; `vring` converts for virtio 1.x
//!   (little-endian) or legacy (native) layouts.
//! - On a non-coherent system, `clean` what you wrote before publishing and
//!   `invalidate` what you are about to read: the window does not do it
//!   behind your back (that is the point of the buffer type-states in
//!   [`crate::buf`]).
//!
//! # Design notes
//!
//! Methods take `&self`, unlike the `&mut self` receivers of the mailbox
//! contracts: the two rings and the buffer pool of one link share one window,
//! and each implementation keeps its per-core state (a simulated cache) behind
//! interior mutability. The window's length and peer base never change after
//! construction, which is what lets buffer handles validate a range once.
#![allow(unsafe_code)]

use core::marker::PhantomData;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU16, AtomicU32, Ordering};

use crate::bytes::{copy_from_shared, copy_to_shared};
use crate::cache::{CacheMaintenance, LineRange};

crate::error_vocabulary! {
    /// What went wrong on a shared-memory access.
    kinds {
        /// The memory is not available now (peer asleep, region being reset).
        WouldBlock => "shared memory not available now, retry later",
        /// The peer supplied an address or length that lies outside the
        /// window.
        Protocol => "peer address outside the shared window",
        /// A local offset outside the window.
        OutOfWindow => "offset outside the shared window",
        /// An access not aligned to its width or a maintenance range not
        /// aligned to the cache line.
        Misaligned => "misaligned shared-memory access",
        /// Anything else.
        Other => "shared-memory error",
    }
}

/// The crate's error under the name the shared-memory contract has always
/// used for it.
pub use crate::Error as ShmError;

/// Checks `offset..offset + len` against a window of `window` bytes.
///
/// # Errors
///
/// [`ShmError::OffsetOutsideWindow`] if the range does not fit (overflow
/// included).
#[inline]
pub const fn check_range(window: usize, offset: usize, len: usize) -> Result<(), ShmError> {
    match offset.checked_add(len) {
        Some(end) if end <= window => Ok(()),
        _ => Err(ShmError::OffsetOutsideWindow),
    }
}

/// Checks that `offset` is aligned to `align` (a power of two).
///
/// # Errors
///
/// [`ShmError::Misaligned`].
#[inline]
pub const fn check_align(offset: usize, align: usize) -> Result<(), ShmError> {
    if offset & (align - 1) == 0 {
        Ok(())
    } else {
        Err(ShmError::Misaligned)
    }
}

/// A bounds-checked window of memory shared with a peer.
///
/// # For implementors
///
/// - `len` and `peer_base` never change after construction.
/// - `load_*_acquire` has acquire semantics and `store_*_release` release
///   semantics with respect to the other accesses of this core; index
///   accesses are single-copy atomic (never torn).
/// - `clean` / `invalidate` take ranges aligned to [`SharedMemory::LINE`]
///   (checked: [`ShmError::Misaligned`]); `invalidate` only discards bytes of
///   this window, so it is safe here.
pub trait SharedMemory: ErrorType<Error: From<ShmError>> {
    /// The cache-line granule maintenance ranges must be aligned to (1 when
    /// coherent).
    const LINE: usize;

    /// Whether [`SharedMemory::clean`] and [`SharedMemory::invalidate`] are
    /// no-ops (coherent or uncached memory). When `true`, callers skip
    /// maintenance, and the arithmetic that prepares it, at compile time:
    /// [`SharedMemory::covering_lines`] returns its input unchanged and the
    /// implementations in this crate return `Ok` without looking at the
    /// range. Implementations whose maintenance does anything (a simulated
    /// cache, a real one) keep the default `false`.
    const COHERENT: bool = false;

    /// Whether [`SharedMemory::direct_base`] returns the window's base,
    /// known at compile time so that callers which keep that base in a
    /// register (ring accessors) drop the trait path altogether. `true`
    /// promises nothing by itself: a caller still needs the
    /// [`DirectBase`] (and treats its absence as an error), so a wrong
    /// `true` costs an error, never soundness.
    const DIRECT: bool = false;

    /// The window length in bytes.
    fn len(&self) -> usize;

    // Barriers of this core's accesses to the window. Defaults: the `core`
    // fences (what real memory needs); a model overrides them to order its
    // simulated core (conformance's weak mode) and loom models to use loom's.

    /// Release fence: this core's earlier accesses are ordered before its
    /// later stores (`fence(Release)`).
    #[inline(always)]
    fn release_fence(&self) {
        core::sync::atomic::fence(Ordering::Release);
    }
    /// Acquire fence: this core's earlier loads are ordered before its later
    /// accesses (`fence(Acquire)`).
    #[inline(always)]
    fn acquire_fence(&self) {
        core::sync::atomic::fence(Ordering::Acquire);
    }
    /// Full fence: also orders earlier stores before later loads
    /// (`fence(SeqCst)`).
    #[inline(always)]
    fn full_fence(&self) {
        core::sync::atomic::fence(Ordering::SeqCst);
    }

    /// Whether the window is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The address at which the peer sees offset 0 of the window.
    fn peer_base(&self) -> u64;

    /// Copies `dst.len()` bytes from `offset` into `dst`.
    ///
    /// # Errors
    ///
    /// [`ShmError::OffsetOutsideWindow`] (nothing is copied).
    fn read(&self, offset: usize, dst: &mut [u8]) -> Result<(), Self::Error>;

    /// Copies `src` to `offset`.
    ///
    /// # Errors
    ///
    /// [`ShmError::OffsetOutsideWindow`] (nothing is written).
    fn write(&self, offset: usize, src: &[u8]) -> Result<(), Self::Error>;

    /// Loads a 16-bit ring index with acquire ordering.
    ///
    /// # Errors
    ///
    /// Out of window, or `offset` not 2-aligned.
    fn load_u16_acquire(&self, offset: usize) -> Result<u16, Self::Error>;

    /// Stores a 16-bit ring index with release ordering.
    ///
    /// # Errors
    ///
    /// Out of window, or `offset` not 2-aligned.
    fn store_u16_release(&self, offset: usize, value: u16) -> Result<(), Self::Error>;

    /// Loads a 32-bit control word with acquire ordering.
    ///
    /// # Errors
    ///
    /// Out of window, or `offset` not 4-aligned.
    fn load_u32_acquire(&self, offset: usize) -> Result<u32, Self::Error>;

    /// Stores a 32-bit control word with release ordering.
    ///
    /// # Errors
    ///
    /// Out of window, or `offset` not 4-aligned.
    fn store_u32_release(&self, offset: usize, value: u32) -> Result<(), Self::Error>;

    /// [`SharedMemory::read`] of a range the caller has already checked.
    ///
    /// The default forwards to `read`; [`RawRegion`] copies without a
    /// bounds check. The `Result` stays for memories that can be
    /// unavailable ([`ShmError::Unavailable`]); [`RawRegion`] never fails.
    ///
    /// # Errors
    ///
    /// Only what `read` returns for reasons other than the range.
    ///
    /// # Safety
    ///
    /// `offset + dst.len() <= self.len()` (no overflow).
    #[inline]
    unsafe fn read_unchecked(&self, offset: usize, dst: &mut [u8]) -> Result<(), Self::Error> {
        self.read(offset, dst)
    }

    /// [`SharedMemory::write`] of a range the caller has already checked.
    ///
    /// # Errors
    ///
    /// As [`SharedMemory::read_unchecked`].
    ///
    /// # Safety
    ///
    /// `offset + src.len() <= self.len()` (no overflow).
    #[inline]
    unsafe fn write_unchecked(&self, offset: usize, src: &[u8]) -> Result<(), Self::Error> {
        self.write(offset, src)
    }

    /// [`SharedMemory::load_u16_acquire`] at an offset the caller has
    /// already checked.
    ///
    /// # Errors
    ///
    /// As [`SharedMemory::read_unchecked`].
    ///
    /// # Safety
    ///
    /// `offset + 2 <= self.len()` and `offset` is a multiple of 2.
    #[inline]
    unsafe fn load_u16_acquire_unchecked(&self, offset: usize) -> Result<u16, Self::Error> {
        self.load_u16_acquire(offset)
    }

    /// [`SharedMemory::store_u16_release`] at an offset the caller has
    /// already checked.
    ///
    /// # Errors
    ///
    /// As [`SharedMemory::read_unchecked`].
    ///
    /// # Safety
    ///
    /// `offset + 2 <= self.len()` and `offset` is a multiple of 2.
    #[inline]
    unsafe fn store_u16_release_unchecked(
        &self,
        offset: usize,
        value: u16,
    ) -> Result<(), Self::Error> {
        self.store_u16_release(offset, value)
    }

    /// Loads a 16-bit ring field (an available entry) at an offset the
    /// caller has already checked: one plain access, no ordering (the
    /// ring's index accesses order it), read exactly once.
    ///
    /// The default reads two bytes through
    /// [`SharedMemory::read_unchecked`]; [`RawRegion`] does one volatile
    /// 16-bit load.
    ///
    /// # Errors
    ///
    /// As [`SharedMemory::read_unchecked`].
    ///
    /// # Safety
    ///
    /// `offset + 2 <= self.len()` and `offset` is a multiple of 2.
    #[inline]
    unsafe fn load_u16_unchecked(&self, offset: usize) -> Result<u16, Self::Error> {
        let mut b = [0u8; 2];
        // SAFETY: the caller's contract covers the two bytes.
        unsafe { self.read_unchecked(offset, &mut b) }?;
        Ok(u16::from_ne_bytes(b))
    }

    /// Stores a 16-bit ring field at an offset the caller has already
    /// checked (one plain access, no ordering).
    ///
    /// # Errors
    ///
    /// As [`SharedMemory::read_unchecked`].
    ///
    /// # Safety
    ///
    /// As [`SharedMemory::load_u16_unchecked`].
    #[inline]
    unsafe fn store_u16_unchecked(&self, offset: usize, value: u16) -> Result<(), Self::Error> {
        // SAFETY: the caller's contract covers the two bytes.
        unsafe { self.write_unchecked(offset, &value.to_ne_bytes()) }
    }

    /// Loads a 32-bit ring field (a descriptor or used-element word) at an
    /// offset the caller has already checked (one plain access, no
    /// ordering, read exactly once).
    ///
    /// # Errors
    ///
    /// As [`SharedMemory::read_unchecked`].
    ///
    /// # Safety
    ///
    /// `offset + 4 <= self.len()` and `offset` is a multiple of 4.
    #[inline]
    unsafe fn load_u32_unchecked(&self, offset: usize) -> Result<u32, Self::Error> {
        let mut b = [0u8; 4];
        // SAFETY: the caller's contract covers the four bytes.
        unsafe { self.read_unchecked(offset, &mut b) }?;
        Ok(u32::from_ne_bytes(b))
    }

    /// Stores a 32-bit ring field at an offset the caller has already
    /// checked (one plain access, no ordering).
    ///
    /// # Errors
    ///
    /// As [`SharedMemory::read_unchecked`].
    ///
    /// # Safety
    ///
    /// As [`SharedMemory::load_u32_unchecked`].
    #[inline]
    unsafe fn store_u32_unchecked(&self, offset: usize, value: u32) -> Result<(), Self::Error> {
        // SAFETY: the caller's contract covers the four bytes.
        unsafe { self.write_unchecked(offset, &value.to_ne_bytes()) }
    }

    /// Stores `K` consecutive 32-bit ring fields at an offset the caller
    /// has already checked: [`SharedMemory::store_u32_unchecked`] at
    /// `offset`, `offset + 4`, ... in order (one plain access each, no
    /// ordering). An implementation reaching the window through a base
    /// pointer computes the address once for all `K` stores (a volatile
    /// store does not let the compiler keep a base read before it).
    ///
    /// # Errors
    ///
    /// As [`SharedMemory::read_unchecked`]; a failed store leaves the
    /// later words unstored.
    ///
    /// # Safety
    ///
    /// `offset + 4 * K <= self.len()` and `offset` is a multiple of 4.
    #[inline(always)]
    unsafe fn store_u32s_unchecked<const K: usize>(
        &self,
        offset: usize,
        values: [u32; K],
    ) -> Result<(), Self::Error> {
        for (i, v) in values.into_iter().enumerate() {
            // SAFETY: word `i` lies in `offset..offset + 4 * K`, covered by
            // the caller's contract, and is 4-aligned.
            unsafe { self.store_u32_unchecked(offset + 4 * i, v) }?;
        }
        Ok(())
    }

    /// The window's base, when the `_unchecked` accesses are plain
    /// accesses at `base + offset` that need nothing else (no simulated
    /// cache to tell, no state to update): a caller may then make them
    /// itself from a base it keeps in a register, where a call through
    /// `&self` reloads the base after every store into the window (the
    /// compiler cannot tell the window from the object holding the base).
    /// `None` (the default) keeps every access going through the trait.
    fn direct_base(&self) -> Option<DirectBase<'_>> {
        None
    }

    /// Writes back this core's cached copy of `offset..offset + len`.
    ///
    /// # Errors
    ///
    /// Out of window, or the range not aligned to [`SharedMemory::LINE`].
    fn clean(&self, offset: usize, len: usize) -> Result<(), Self::Error>;

    /// Discards this core's cached copy of `offset..offset + len`, so the next
    /// read sees memory. Local writes to the range not yet cleaned are lost.
    ///
    /// # Errors
    ///
    /// Out of window, or the range not aligned to [`SharedMemory::LINE`].
    fn invalidate(&self, offset: usize, len: usize) -> Result<(), Self::Error>;

    /// The window offset of the peer address range `peer_addr..+len`.
    ///
    /// # Errors
    ///
    /// [`ShmError::AddressOutsideWindow`] when any byte of the range lies
    /// outside the window (overflow included). Peer addresses are hostile
    /// input: this is the only way to turn one into an offset.
    fn translate(&self, peer_addr: u64, len: usize) -> Result<usize, Self::Error> {
        let outside = ShmError::AddressOutsideWindow;
        let offset = peer_addr.checked_sub(self.peer_base()).ok_or(outside)?;
        let offset = usize::try_from(offset).map_err(|_| outside)?;
        check_range(self.len(), offset, len).map_err(|_| outside)?;
        Ok(offset)
    }

    /// The peer address of window offset `offset`.
    ///
    /// # Errors
    ///
    /// [`ShmError::OffsetOutsideWindow`] if `offset > len`.
    fn peer_addr(&self, offset: usize) -> Result<u64, Self::Error> {
        check_range(self.len(), offset, 0)?;
        Ok(self.peer_base() + offset as u64)
    }

    /// The smallest `LINE`-aligned range covering `offset..offset + len`
    /// (what to clean after writing a field that is not line-aligned).
    ///
    /// # Errors
    ///
    /// Out of window (the rounded range must fit too).
    fn covering_lines(&self, offset: usize, len: usize) -> Result<(usize, usize), Self::Error> {
        if Self::COHERENT {
            // Nothing will be maintained: no rounding, no check.
            return Ok((offset, len));
        }
        let mask = Self::LINE - 1;
        let end = offset
            .checked_add(len)
            .and_then(|e| e.checked_add(mask))
            .ok_or(ShmError::OffsetOutsideWindow)?
            & !mask;
        let start = offset & !mask;
        check_range(self.len(), start, end - start)?;
        Ok((start, end - start))
    }
}

macro_rules! forward_shm {
    ($($ref:tt)+) => {
        impl<T: SharedMemory + ?Sized> SharedMemory for $($ref)+ T {
            const LINE: usize = T::LINE;
            const COHERENT: bool = T::COHERENT;
            const DIRECT: bool = T::DIRECT;
            #[inline(always)] fn direct_base(&self) -> Option<DirectBase<'_>> { T::direct_base(self) }
            #[inline] fn len(&self) -> usize { T::len(self) }
            #[inline(always)] fn release_fence(&self) { T::release_fence(self) }
            #[inline(always)] fn acquire_fence(&self) { T::acquire_fence(self) }
            #[inline(always)] fn full_fence(&self) { T::full_fence(self) }
            #[inline] fn is_empty(&self) -> bool { T::is_empty(self) }
            #[inline] fn peer_base(&self) -> u64 { T::peer_base(self) }
            #[inline] fn read(&self, o: usize, d: &mut [u8]) -> Result<(), Self::Error> { T::read(self, o, d) }
            #[inline] fn write(&self, o: usize, s: &[u8]) -> Result<(), Self::Error> { T::write(self, o, s) }
            #[inline] fn load_u16_acquire(&self, o: usize) -> Result<u16, Self::Error> { T::load_u16_acquire(self, o) }
            #[inline] fn store_u16_release(&self, o: usize, v: u16) -> Result<(), Self::Error> { T::store_u16_release(self, o, v) }
            #[inline] fn load_u32_acquire(&self, o: usize) -> Result<u32, Self::Error> { T::load_u32_acquire(self, o) }
            #[inline] fn store_u32_release(&self, o: usize, v: u32) -> Result<(), Self::Error> { T::store_u32_release(self, o, v) }
            #[inline] fn clean(&self, o: usize, l: usize) -> Result<(), Self::Error> { T::clean(self, o, l) }
            #[inline] fn invalidate(&self, o: usize, l: usize) -> Result<(), Self::Error> { T::invalidate(self, o, l) }
            #[inline] fn translate(&self, a: u64, l: usize) -> Result<usize, Self::Error> { T::translate(self, a, l) }
            #[inline] fn peer_addr(&self, o: usize) -> Result<u64, Self::Error> { T::peer_addr(self, o) }
            #[inline] unsafe fn read_unchecked(&self, o: usize, d: &mut [u8]) -> Result<(), Self::Error> {
                // SAFETY: the caller's contract is `T`'s.
                unsafe { T::read_unchecked(self, o, d) }
            }
            #[inline] unsafe fn write_unchecked(&self, o: usize, s: &[u8]) -> Result<(), Self::Error> {
                // SAFETY: as above.
                unsafe { T::write_unchecked(self, o, s) }
            }
            #[inline] unsafe fn load_u16_acquire_unchecked(&self, o: usize) -> Result<u16, Self::Error> {
                // SAFETY: as above.
                unsafe { T::load_u16_acquire_unchecked(self, o) }
            }
            #[inline] unsafe fn store_u16_release_unchecked(&self, o: usize, v: u16) -> Result<(), Self::Error> {
                // SAFETY: as above.
                unsafe { T::store_u16_release_unchecked(self, o, v) }
            }
            #[inline] unsafe fn load_u16_unchecked(&self, o: usize) -> Result<u16, Self::Error> {
                // SAFETY: as above.
                unsafe { T::load_u16_unchecked(self, o) }
            }
            #[inline] unsafe fn store_u16_unchecked(&self, o: usize, v: u16) -> Result<(), Self::Error> {
                // SAFETY: as above.
                unsafe { T::store_u16_unchecked(self, o, v) }
            }
            #[inline] unsafe fn load_u32_unchecked(&self, o: usize) -> Result<u32, Self::Error> {
                // SAFETY: as above.
                unsafe { T::load_u32_unchecked(self, o) }
            }
            #[inline] unsafe fn store_u32_unchecked(&self, o: usize, v: u32) -> Result<(), Self::Error> {
                // SAFETY: as above.
                unsafe { T::store_u32_unchecked(self, o, v) }
            }
            #[inline(always)] unsafe fn store_u32s_unchecked<const K: usize>(&self, o: usize, v: [u32; K]) -> Result<(), Self::Error> {
                // SAFETY: as above.
                unsafe { T::store_u32s_unchecked(self, o, v) }
            }
            #[inline] fn covering_lines(&self, o: usize, l: usize) -> Result<(usize, usize), Self::Error> { T::covering_lines(self, o, l) }
        }
    };
}
forward_shm!(&);
forward_shm!(&mut);

/// The base address of a window whose ring-field accesses are plain
/// memory accesses ([`SharedMemory::direct_base`]), with the accesses
/// themselves. Only `unsafe` code makes one, so holding one proves the
/// contract of [`DirectBase::new`] for as long as `'a`.
#[derive(Debug, Clone, Copy)]
pub struct DirectBase<'a> {
    base: NonNull<u8>,
    _window: PhantomData<&'a ()>,
}

// SAFETY: a `DirectBase` is an address with `new`'s promise about the
// memory behind it: memory shared with another core, which every access
// method treats as changing under it (volatile or atomic accesses, never a
// reference), from whichever thread makes them. Handing the address to
// another thread gives access to nothing the window does not already share
// across cores; each access is `unsafe`, its caller keeps to its range.
unsafe impl Send for DirectBase<'_> {}
// SAFETY: as for `Send`: the methods take the value by copy and share no
// state of their own.
unsafe impl Sync for DirectBase<'_> {}

impl<'a> DirectBase<'a> {
    /// The base of a window.
    ///
    /// # Safety
    ///
    /// For the lifetime `'a`: `base..base + len` (`len` being the window's
    /// [`SharedMemory::len`]) is memory valid for reads and writes that
    /// holds no Rust object and is reached on this core only through the
    /// window; `base` is aligned to 4; and the window's `_unchecked`
    /// accesses at offset `o` are exactly the accesses of the methods
    /// below at `base + o` (so making them here instead changes nothing).
    #[inline(always)]
    pub const unsafe fn new(base: NonNull<u8>) -> Self {
        Self {
            base,
            _window: PhantomData,
        }
    }

    /// The base address.
    #[inline(always)]
    pub const fn as_ptr(self) -> NonNull<u8> {
        self.base
    }

    /// [`SharedMemory::load_u16_acquire_unchecked`], directly.
    ///
    /// # Safety
    ///
    /// `offset + 2 <= len` and `offset` is a multiple of 2.
    #[inline(always)]
    pub unsafe fn load_u16_acquire(self, offset: usize) -> u16 {
        // SAFETY: in the window and 2-aligned (caller's contract, base
        // 4-aligned: `new`'s contract), valid for `'a`; the peer accesses
        // it with atomic-width accesses. Never a reference.
        unsafe { AtomicU16::from_ptr(self.base.as_ptr().add(offset).cast()) }
            .load(Ordering::Acquire)
    }

    /// [`SharedMemory::store_u16_release_unchecked`], directly.
    ///
    /// # Safety
    ///
    /// As [`DirectBase::load_u16_acquire`].
    #[inline(always)]
    pub unsafe fn store_u16_release(self, offset: usize, value: u16) {
        // SAFETY: as in `load_u16_acquire`.
        unsafe { AtomicU16::from_ptr(self.base.as_ptr().add(offset).cast()) }
            .store(value, Ordering::Release);
    }

    /// [`SharedMemory::load_u16_unchecked`], directly: a volatile load.
    ///
    /// # Safety
    ///
    /// As [`DirectBase::load_u16_acquire`].
    #[inline(always)]
    pub unsafe fn load_u16(self, offset: usize) -> u16 {
        // SAFETY: in the window, 2-aligned, holding no Rust object (`new`'s
        // and the caller's contracts): a volatile load, read once.
        unsafe { self.base.as_ptr().add(offset).cast::<u16>().read_volatile() }
    }

    /// [`SharedMemory::store_u16_unchecked`], directly: a volatile store.
    ///
    /// # Safety
    ///
    /// As [`DirectBase::load_u16_acquire`].
    #[inline(always)]
    pub unsafe fn store_u16(self, offset: usize, value: u16) {
        // SAFETY: as in `load_u16`, a volatile store.
        unsafe {
            self.base
                .as_ptr()
                .add(offset)
                .cast::<u16>()
                .write_volatile(value);
        }
    }

    /// [`SharedMemory::load_u32_unchecked`], directly: a volatile load.
    ///
    /// # Safety
    ///
    /// `offset + 4 <= len` and `offset` is a multiple of 4.
    #[inline(always)]
    pub unsafe fn load_u32(self, offset: usize) -> u32 {
        // SAFETY: as in `load_u16`, 4-aligned.
        unsafe { self.base.as_ptr().add(offset).cast::<u32>().read_volatile() }
    }

    /// [`SharedMemory::store_u32_unchecked`], directly: a volatile store.
    ///
    /// # Safety
    ///
    /// As [`DirectBase::load_u32`].
    #[inline(always)]
    pub unsafe fn store_u32(self, offset: usize, value: u32) {
        // SAFETY: as in `load_u32`, a volatile store.
        unsafe {
            self.base
                .as_ptr()
                .add(offset)
                .cast::<u32>()
                .write_volatile(value);
        }
    }

    /// The part of the window from `offset` on, for accesses relative to
    /// it ([`DirectPart`]): its address is computed here, once, where an
    /// access through the base adds the part's offset each time.
    ///
    /// # Safety
    ///
    /// `offset <= len` (the window's).
    #[inline(always)]
    pub const unsafe fn part(self, offset: usize) -> DirectPart<'a> {
        DirectPart {
            // SAFETY: `offset <= len` (caller's contract): inside the
            // window's memory or one past its end, whose address keeps the
            // base's provenance.
            at: unsafe { self.base.add(offset) },
            _window: PhantomData,
        }
    }
}

/// The address of one place in a window of a [`DirectBase`] (an area of a
/// ring, say), with accesses relative to it. Only
/// [`DirectBase::part`] makes one, so it lies in (or just past) a window
/// with that contract, for as long as `'a`.
#[derive(Debug, Clone, Copy)]
pub struct DirectPart<'a> {
    at: NonNull<u8>,
    _window: PhantomData<&'a ()>,
}

// SAFETY: as for `DirectBase` (an address inside such a window).
unsafe impl Send for DirectPart<'_> {}
// SAFETY: as for `DirectBase`.
unsafe impl Sync for DirectPart<'_> {}

impl DirectPart<'_> {
    /// [`DirectBase::load_u16_acquire`] at `at` bytes past this part.
    ///
    /// # Safety
    ///
    /// `self + at .. self + at + 2` lies in the window this part was made
    /// from, and `self + at` is 2-aligned (an address, not an offset: a
    /// part is only as aligned as its offset in the window).
    #[inline(always)]
    pub unsafe fn load_u16_acquire(self, at: usize) -> u16 {
        // SAFETY: in the window and 2-aligned (caller's contract), valid
        // for `'a` (`DirectBase::new`'s contract); the peer accesses it
        // with atomic-width accesses. Never a reference.
        unsafe { AtomicU16::from_ptr(self.at.as_ptr().add(at).cast()) }.load(Ordering::Acquire)
    }

    /// [`DirectBase::store_u16_release`] at `at` bytes past this part.
    ///
    /// # Safety
    ///
    /// As [`DirectPart::load_u16_acquire`].
    #[inline(always)]
    pub unsafe fn store_u16_release(self, at: usize, value: u16) {
        // SAFETY: as in `load_u16_acquire`.
        unsafe { AtomicU16::from_ptr(self.at.as_ptr().add(at).cast()) }
            .store(value, Ordering::Release);
    }

    /// [`DirectBase::load_u16`] at `at` bytes past this part.
    ///
    /// # Safety
    ///
    /// As [`DirectPart::load_u16_acquire`].
    #[inline(always)]
    pub unsafe fn load_u16(self, at: usize) -> u16 {
        // SAFETY: in the window, 2-aligned (caller's contract), holding no
        // Rust object (`DirectBase::new`'s contract): a volatile load, read
        // once.
        unsafe { self.at.as_ptr().add(at).cast::<u16>().read_volatile() }
    }

    /// [`DirectBase::store_u16`] at `at` bytes past this part.
    ///
    /// # Safety
    ///
    /// As [`DirectPart::load_u16_acquire`].
    #[inline(always)]
    pub unsafe fn store_u16(self, at: usize, value: u16) {
        // SAFETY: as in `load_u16`, a volatile store.
        unsafe { self.at.as_ptr().add(at).cast::<u16>().write_volatile(value) }
    }

    /// [`DirectBase::load_u32`] at `at` bytes past this part.
    ///
    /// # Safety
    ///
    /// `self + at .. self + at + 4` lies in the window this part was made
    /// from, and `self + at` is 4-aligned.
    #[inline(always)]
    pub unsafe fn load_u32(self, at: usize) -> u32 {
        // SAFETY: as in `load_u16`, 4-aligned.
        unsafe { self.at.as_ptr().add(at).cast::<u32>().read_volatile() }
    }

    /// [`DirectBase::store_u32`] at `at` bytes past this part.
    ///
    /// # Safety
    ///
    /// As [`DirectPart::load_u32`].
    #[inline(always)]
    pub unsafe fn store_u32(self, at: usize, value: u32) {
        // SAFETY: as in `load_u32`, a volatile store.
        unsafe { self.at.as_ptr().add(at).cast::<u32>().write_volatile(value) }
    }
}

/// Shared memory the CPU can address directly, for zero-copy slices.
///
/// # Safety
///
/// Implementation safety: `as_ptr()` points at `len()` bytes of memory that
/// stay valid for the lifetime of `self`, hold no Rust object, and are
/// accessed by `read`/`write` at the same addresses (offset `o` is
/// `as_ptr() + o`).
pub unsafe trait DirectMemory: SharedMemory {
    /// The address of offset 0.
    fn as_ptr(&self) -> NonNull<u8>;
}

// SAFETY: forwards to `T`, whose implementation upholds the contract.
unsafe impl<T: DirectMemory + ?Sized> DirectMemory for &T {
    fn as_ptr(&self) -> NonNull<u8> {
        T::as_ptr(self)
    }
}

/// A window over real memory: pointer, length, the peer's base address and
/// the cache maintenance of the core we run on.
///
/// # Examples
///
/// ```
/// use ipc_traits::cache::Coherent;
/// use ipc_traits::shm::{RawRegion, SharedMemory};
///
/// #[repr(align(4))]
/// struct Backing([u8; 256]);
/// let mut backing = Backing([0; 256]);
/// let base = core::ptr::NonNull::new(backing.0.as_mut_ptr()).unwrap();
/// // SAFETY: `backing` outlives `shm` and is only accessed through it.
/// let shm = unsafe { RawRegion::new(base, 256, 0x4000_0000, Coherent) }.unwrap();
/// shm.store_u16_release(2, 7).unwrap();
/// assert_eq!(shm.load_u16_acquire(2).unwrap(), 7);
/// assert_eq!(shm.translate(0x4000_0010, 16).unwrap(), 0x10);
/// assert!(shm.translate(0x4000_00f8, 16).is_err());
/// ```
#[derive(Debug)]
pub struct RawRegion<C> {
    base: NonNull<u8>,
    len: usize,
    peer_base: u64,
    cache: C,
}

impl<C: CacheMaintenance> RawRegion<C> {
    /// The alignment the window's base needs: the cache line, and at least
    /// 4 so that the 16- and 32-bit atomics at aligned offsets are aligned.
    pub const BASE_ALIGN: usize = if C::LINE > 4 { C::LINE } else { 4 };

    /// A window over `len` bytes at `base`, seen by the peer at `peer_base`.
    ///
    /// # Errors
    ///
    /// [`ShmError::Misaligned`] if `base` is not aligned to `C::LINE` and
    /// to 4 ([`RawRegion::BASE_ALIGN`]: an offset aligned to an index's width
    /// is then an aligned address), or `len` is not aligned to `C::LINE`
    /// (maintenance of the window's first or last line would then touch
    /// memory outside it); [`ShmError::OffsetOutsideWindow`] if `len`
    /// exceeds `isize::MAX` (no pointer offset reaches that far);
    /// [`ShmError::AddressOutsideWindow`] if `peer_base + len` overflows.
    ///
    /// # Safety
    ///
    /// 1. `base..base + len` is memory shared with the peer, valid for reads
    ///    and writes for as long as this value (or a buffer borrowing it)
    ///    lives;
    /// 2. no Rust object lives in it and nothing else on this core accesses
    ///    it except through this value;
    /// 3. `cache` maintains the cache that sits in front of that memory on
    ///    this core.
    pub unsafe fn new(
        base: NonNull<u8>,
        len: usize,
        peer_base: u64,
        cache: C,
    ) -> Result<Self, ShmError> {
        check_align(base.as_ptr() as usize, Self::BASE_ALIGN)?;
        check_align(len, C::LINE)?;
        // No object reaches past `isize::MAX` bytes (`pointer::add` counts
        // offsets in `isize`): a longer window could not be reached whole.
        if len > isize::MAX as usize {
            return Err(ShmError::OffsetOutsideWindow);
        }
        if peer_base.checked_add(len as u64).is_none() {
            return Err(ShmError::AddressOutsideWindow);
        }
        Ok(Self {
            base,
            len,
            peer_base,
            cache,
        })
    }

    /// The cache maintenance this window uses.
    pub fn cache(&self) -> &C {
        &self.cache
    }

    fn ptr(&self, offset: usize, len: usize) -> Result<*mut u8, ShmError> {
        check_range(self.len(), offset, len)?;
        // SAFETY: offset + len <= self.len (checked), so the result stays
        // inside the allocation described in `new`'s contract.
        Ok(unsafe { self.base.as_ptr().add(offset) })
    }

    fn lines(&self, offset: usize, len: usize) -> Result<LineRange<C>, ShmError> {
        let p = self.ptr(offset, len)? as usize;
        LineRange::new(p, len).ok_or(ShmError::Misaligned)
    }
}

// SAFETY: the window is memory shared between cores, accessed only through
// atomics and copies; moving it to another context does not create aliasing
// beyond what `new`'s contract already allows.
unsafe impl<C: Send> Send for RawRegion<C> {}
// SAFETY: every method takes `&self` and accesses memory through atomics
// (indices) or raw copies of ranges owned by the caller's protocol role;
// the cache implementations are `&self` and stateless or atomic.
unsafe impl<C: Sync> Sync for RawRegion<C> {}

impl<C> ErrorType for RawRegion<C> {
    type Error = ShmError;
}

impl<C: CacheMaintenance> SharedMemory for RawRegion<C> {
    const LINE: usize = C::LINE;
    const COHERENT: bool = C::COHERENT;
    const DIRECT: bool = true;

    #[inline(always)]
    fn direct_base(&self) -> Option<DirectBase<'_>> {
        // SAFETY: `RawRegion::new`'s contract (valid, no Rust object, only
        // through this value, base aligned to `BASE_ALIGN` >= 4, checked),
        // for as long as `&self`; the `_unchecked` methods below are the
        // same volatile and atomic accesses at `base + offset`.
        Some(unsafe { DirectBase::new(self.base) })
    }

    #[inline]
    fn len(&self) -> usize {
        // SAFETY: `new` refused a longer window, and `len` never changes.
        // Told to the compiler, an offset inside the window plus a small
        // constant (a ring's size at a checked offset) cannot overflow,
        // and such overflow tests go.
        unsafe { core::hint::assert_unchecked(self.len <= isize::MAX as usize) };
        self.len
    }

    #[inline]
    fn peer_base(&self) -> u64 {
        self.peer_base
    }

    #[inline]
    fn read(&self, offset: usize, dst: &mut [u8]) -> Result<(), ShmError> {
        let src = self.ptr(offset, dst.len())?;
        // SAFETY: `src..+len` is inside the window (checked by `ptr`), which
        // holds no Rust object and is reached only through this value
        // (`new`'s contract): the sound copy of `crate::bytes`, never a
        // reference. A peer writing the range meanwhile changes values
        // only; they are validated before use.
        unsafe { copy_from_shared(src, dst) };
        Ok(())
    }

    #[inline]
    fn write(&self, offset: usize, src: &[u8]) -> Result<(), ShmError> {
        let dst = self.ptr(offset, src.len())?;
        // SAFETY: as in `read`, in the other direction.
        unsafe { copy_to_shared(src, dst) };
        Ok(())
    }

    // Always inline without the feature `small`, as the copies it makes.
    #[cfg_attr(not(feature = "small"), inline(always))]
    #[cfg_attr(feature = "small", inline)]
    unsafe fn read_unchecked(&self, offset: usize, dst: &mut [u8]) -> Result<(), ShmError> {
        // SAFETY: the caller guarantees `offset + dst.len() <= len`, so the
        // range is inside the allocation of `new`'s contract; otherwise as
        // in `read`.
        unsafe { copy_from_shared(self.base.as_ptr().add(offset), dst) };
        Ok(())
    }

    // Always inline without the feature `small`, as the copies it makes.
    #[cfg_attr(not(feature = "small"), inline(always))]
    #[cfg_attr(feature = "small", inline)]
    unsafe fn write_unchecked(&self, offset: usize, src: &[u8]) -> Result<(), ShmError> {
        // SAFETY: as in `read_unchecked`, in the other direction.
        unsafe { copy_to_shared(src, self.base.as_ptr().add(offset)) };
        Ok(())
    }

    #[inline]
    unsafe fn load_u16_acquire_unchecked(&self, offset: usize) -> Result<u16, ShmError> {
        // SAFETY: in the window and 2-aligned relative to a base aligned to
        // `BASE_ALIGN` (checked in `new`), hence 2-aligned (caller's
        // contract); otherwise as in `load_u16_acquire`.
        let a = unsafe { AtomicU16::from_ptr(self.base.as_ptr().add(offset).cast()) };
        Ok(a.load(Ordering::Acquire))
    }

    #[inline]
    unsafe fn store_u16_release_unchecked(
        &self,
        offset: usize,
        value: u16,
    ) -> Result<(), ShmError> {
        // SAFETY: as in `load_u16_acquire_unchecked`.
        let a = unsafe { AtomicU16::from_ptr(self.base.as_ptr().add(offset).cast()) };
        a.store(value, Ordering::Release);
        Ok(())
    }

    #[inline]
    unsafe fn load_u16_unchecked(&self, offset: usize) -> Result<u16, ShmError> {
        // SAFETY: in the window and 2-aligned (caller's contract, base
        // aligned to `BASE_ALIGN`); the window holds no Rust object
        // (`new`'s contract): a volatile load, never a reference, read once.
        Ok(unsafe { self.base.as_ptr().add(offset).cast::<u16>().read_volatile() })
    }

    #[inline]
    unsafe fn store_u16_unchecked(&self, offset: usize, value: u16) -> Result<(), ShmError> {
        // SAFETY: as in `load_u16_unchecked`, a volatile store.
        unsafe {
            self.base
                .as_ptr()
                .add(offset)
                .cast::<u16>()
                .write_volatile(value)
        };
        Ok(())
    }

    #[inline]
    unsafe fn load_u32_unchecked(&self, offset: usize) -> Result<u32, ShmError> {
        // SAFETY: as in `load_u16_unchecked`, 4-aligned.
        Ok(unsafe { self.base.as_ptr().add(offset).cast::<u32>().read_volatile() })
    }

    #[inline]
    unsafe fn store_u32_unchecked(&self, offset: usize, value: u32) -> Result<(), ShmError> {
        // SAFETY: as in `load_u32_unchecked`, a volatile store.
        unsafe {
            self.base
                .as_ptr()
                .add(offset)
                .cast::<u32>()
                .write_volatile(value)
        };
        Ok(())
    }

    #[inline(always)]
    unsafe fn store_u32s_unchecked<const K: usize>(
        &self,
        offset: usize,
        values: [u32; K],
    ) -> Result<(), ShmError> {
        // SAFETY: `offset..offset + 4 * K` is in the window and 4-aligned
        // (caller's contract, base aligned to `BASE_ALIGN`); as in
        // `store_u32_unchecked`, volatile stores, never a reference. The
        // address is computed once: the base is read before the first
        // store, not again after each.
        let p = unsafe { self.base.as_ptr().add(offset).cast::<u32>() };
        // By index, not `into_iter`: the array's by-value iterator keeps
        // its own copy and bounds on the stack where the loop is not
        // unrolled (opt-level "s").
        let mut i = 0;
        while i < K {
            // SAFETY: word `i < K` of the range above.
            unsafe { p.add(i).write_volatile(values[i]) };
            i += 1;
        }
        Ok(())
    }

    #[inline]
    fn load_u16_acquire(&self, offset: usize) -> Result<u16, ShmError> {
        check_align(offset, 2)?;
        let p = self.ptr(offset, 2)?;
        check_align(p as usize, 2)?;
        // SAFETY: `p` is in the window, 2-aligned (checked), valid for the
        // window's lifetime; the peer accesses it with atomic-width accesses.
        Ok(unsafe { AtomicU16::from_ptr(p.cast()) }.load(Ordering::Acquire))
    }

    #[inline]
    fn store_u16_release(&self, offset: usize, value: u16) -> Result<(), ShmError> {
        check_align(offset, 2)?;
        let p = self.ptr(offset, 2)?;
        check_align(p as usize, 2)?;
        // SAFETY: as in `load_u16_acquire`.
        unsafe { AtomicU16::from_ptr(p.cast()) }.store(value, Ordering::Release);
        Ok(())
    }

    #[inline]
    fn load_u32_acquire(&self, offset: usize) -> Result<u32, ShmError> {
        check_align(offset, 4)?;
        let p = self.ptr(offset, 4)?;
        check_align(p as usize, 4)?;
        // SAFETY: as in `load_u16_acquire`, 4-aligned.
        Ok(unsafe { AtomicU32::from_ptr(p.cast()) }.load(Ordering::Acquire))
    }

    #[inline]
    fn store_u32_release(&self, offset: usize, value: u32) -> Result<(), ShmError> {
        check_align(offset, 4)?;
        let p = self.ptr(offset, 4)?;
        check_align(p as usize, 4)?;
        // SAFETY: as in `load_u32_acquire`.
        unsafe { AtomicU32::from_ptr(p.cast()) }.store(value, Ordering::Release);
        Ok(())
    }

    #[inline]
    fn clean(&self, offset: usize, len: usize) -> Result<(), ShmError> {
        if C::COHERENT {
            return Ok(());
        }
        let range = self.lines(offset, len)?;
        self.cache.clean(range);
        Ok(())
    }

    #[inline]
    fn invalidate(&self, offset: usize, len: usize) -> Result<(), ShmError> {
        if C::COHERENT {
            return Ok(());
        }
        let range = self.lines(offset, len)?;
        // SAFETY: the range lies inside the window (checked by `lines`) and
        // is line-aligned, and the window's base and length are line-aligned
        // (checked in `new`), so no line outside the window is touched; the
        // window holds no Rust object (`new`'s contract), so discarding
        // unwritten bytes there loses shared-memory data only, never a value
        // the program relies on for soundness.
        unsafe { self.cache.invalidate(range) };
        Ok(())
    }
}

// SAFETY: offset `o` is `base + o` in every method above; validity and the
// absence of Rust objects come from `RawRegion::new`'s contract.
unsafe impl<C: CacheMaintenance> DirectMemory for RawRegion<C> {
    fn as_ptr(&self) -> NonNull<u8> {
        self.base
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::Coherent;

    #[repr(align(64))]
    struct Backing([u8; 512]);

    fn region(b: &mut Backing) -> RawRegion<Coherent> {
        let base = NonNull::new(b.0.as_mut_ptr()).unwrap();
        // SAFETY: the backing outlives the region in each test and is only
        // used through it.
        unsafe { RawRegion::new(base, 512, 0x4000_0000, Coherent) }.unwrap()
    }

    #[test]
    fn accesses_outside_the_window_are_errors() {
        let mut b = Backing([0; 512]);
        let shm = region(&mut b);
        let mut buf = [0u8; 8];
        assert_eq!(shm.read(508, &mut buf), Err(ShmError::OffsetOutsideWindow));
        assert_eq!(
            shm.write(usize::MAX, &buf).unwrap_err().kind(),
            ErrorKind::OutOfWindow
        );
        assert_eq!(
            shm.load_u16_acquire(511).unwrap_err().kind(),
            ErrorKind::Misaligned
        );
        assert!(shm.load_u16_acquire(512).is_err());
        assert!(shm.store_u32_release(510, 1).is_err());
        shm.write(504, &buf).unwrap();
        shm.read(0, &mut buf).unwrap();
    }

    #[test]
    fn translation_rejects_every_address_not_fully_inside() {
        let mut b = Backing([0; 512]);
        let shm = region(&mut b);
        assert_eq!(shm.translate(0x4000_0000, 512), Ok(0));
        assert_eq!(shm.translate(0x4000_01ff, 1), Ok(511));
        for (addr, len) in [
            (0x3fff_ffff, 1),
            (0x4000_01ff, 2),
            (0x4000_0200, 1),
            (u64::MAX, 1),
            (0, 0),
        ] {
            assert_eq!(
                shm.translate(addr, len).unwrap_err().kind(),
                ErrorKind::Protocol,
                "{addr:#x}+{len}"
            );
        }
        assert_eq!(shm.peer_addr(16), Ok(0x4000_0010));
        assert!(shm.peer_addr(513).is_err());
    }

    #[test]
    fn indices_and_payload_land_in_memory_native_endian() {
        let mut b = Backing([0; 512]);
        {
            let shm = region(&mut b);
            shm.store_u16_release(4, 0x0102).unwrap();
            shm.store_u32_release(8, 0x0304_0506).unwrap();
            shm.write(16, b"abc").unwrap();
            assert_eq!(shm.load_u32_acquire(8), Ok(0x0304_0506));
            shm.clean(0, 64).unwrap();
            shm.invalidate(64, 64).unwrap();
        }
        assert_eq!(b.0[4..6], 0x0102u16.to_ne_bytes());
        assert_eq!(&b.0[16..19], b"abc");
    }

    #[test]
    fn word_batches_land_in_order_at_the_offset_and_nowhere_else() {
        let mut b = Backing([0xee; 512]);
        {
            let shm = region(&mut b);
            // SAFETY: 32..48 and 496..504 are inside the 512-byte window,
            // 4-aligned.
            unsafe {
                shm.store_u32s_unchecked(32, [1, 2, 3, 0x0a0b_0c0d])
                    .unwrap();
                // Through the forwarding impl for `&T`.
                <&RawRegion<Coherent> as SharedMemory>::store_u32s_unchecked(&&shm, 504, [7, 8])
                    .unwrap();
                shm.store_u32s_unchecked(100, [0u32; 0]).unwrap();
            }
        }
        let word = |o: usize| u32::from_ne_bytes(b.0[o..o + 4].try_into().unwrap());
        assert_eq!(
            [word(32), word(36), word(40), word(44)],
            [1, 2, 3, 0x0a0b_0c0d]
        );
        assert_eq!([word(504), word(508)], [7, 8]);
        assert_eq!([b.0[31], b.0[48], b.0[503], b.0[100]], [0xee; 4]);
    }

    #[test]
    fn covering_lines_rounds_to_the_granule_and_stays_inside() {
        struct Line32;
        impl CacheMaintenance for Line32 {
            const LINE: usize = 32;
            fn clean(&self, _: LineRange<Self>) {}
            unsafe fn invalidate(&self, _: LineRange<Self>) {}
            fn clean_invalidate(&self, _: LineRange<Self>) {}
        }
        let mut b = Backing([0; 512]);
        let base = NonNull::new(b.0.as_mut_ptr()).unwrap();
        // SAFETY: as in `region`.
        let shm = unsafe { RawRegion::new(base, 512, 0, Line32) }.unwrap();
        assert_eq!(shm.covering_lines(40, 2), Ok((32, 32)));
        assert_eq!(shm.covering_lines(30, 4), Ok((0, 64)));
        assert!(shm.covering_lines(500, 20).is_err());
        assert_eq!(shm.clean(8, 32).unwrap_err().kind(), ErrorKind::Misaligned);
        assert_eq!(
            shm.invalidate(32, 33).unwrap_err().kind(),
            ErrorKind::Misaligned
        );
        // SAFETY: as in `region`; base + 8 is not 32-aligned.
        let bad = unsafe {
            RawRegion::new(
                NonNull::new(b.0.as_mut_ptr().wrapping_add(8)).unwrap(),
                64,
                0,
                Line32,
            )
        };
        assert!(matches!(bad, Err(ShmError::Misaligned)));
    }
}

#[cfg(test)]
mod tests_dev9 {
    use super::*;
    use crate::cache::Coherent;

    #[repr(align(64))]
    struct Backing([u8; 256]);

    /// A part's accesses are the window's at the part's offset plus theirs.
    #[test]
    fn part_accesses_are_the_windows_at_the_sum() {
        let mut b = Backing([0; 256]);
        let base = NonNull::new(b.0.as_mut_ptr()).unwrap();
        // SAFETY: the backing outlives the region and is only used
        // through it.
        let shm = unsafe { RawRegion::new(base, 256, 0x4000_0000, Coherent) }.unwrap();
        let direct = shm.direct_base().unwrap();
        // SAFETY: 6 and 256 are `<= len`.
        let (p, end) = unsafe { (direct.part(6), direct.part(256)) };
        // SAFETY: each access lies in the window, aligned to its width
        // (6 + 2 and 6 + 10: 8 and 16).
        unsafe {
            p.store_u16_release(2, 0x1234);
            p.store_u32(10, 0xdead_beef);
            p.store_u16(0, 7);
        }
        assert_eq!(shm.load_u16_acquire(8), Ok(0x1234));
        assert_eq!(shm.load_u32_acquire(16), Ok(0xdead_beef));
        assert_eq!(shm.load_u16_acquire(6), Ok(7));
        shm.store_u16_release(8, 9).unwrap();
        shm.store_u32_release(16, 5).unwrap();
        // SAFETY: as above.
        unsafe {
            assert_eq!(p.load_u16_acquire(2), 9);
            assert_eq!(p.load_u16(2), 9);
            assert_eq!(p.load_u32(10), 5);
        }
        // One past the end is a part too (nothing may be accessed there).
        let _ = end;
    }
}

#[cfg(test)]
mod tests_size10 {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use core::ptr::NonNull;

    use super::{RawRegion, SharedMemory, ShmError};
    use crate::cache::Coherent;

    /// A window longer than any pointer offset reaches is refused; up to
    /// `isize::MAX` bytes is a window (its length then bounds every
    /// offset the window hands out, which the compiler is told).
    #[test]
    fn a_window_past_isize_max_is_refused() {
        let mut b = [0u64; 8];
        let base = NonNull::new(b.as_mut_ptr().cast::<u8>()).unwrap();
        for len in [isize::MAX as usize + 1, usize::MAX - 3] {
            // SAFETY: refused before anything is accessed, and no value
            // that could reach the memory is made.
            let r = unsafe { RawRegion::new(base, len, 0, Coherent) };
            assert_eq!(r.err(), Some(ShmError::OffsetOutsideWindow), "{len}");
        }
        // SAFETY: the array outlives the region and is only used through
        // it.
        let shm = unsafe { RawRegion::new(base, 64, 0x1000, Coherent) }.unwrap();
        assert_eq!(shm.len(), 64);
        assert_eq!(shm.translate(0x1000 + 60, 4), Ok(60));
        assert_eq!(
            shm.translate(0x1000 + 61, 4),
            Err(ShmError::AddressOutsideWindow)
        );
        assert_eq!(
            shm.translate(u64::MAX, 1),
            Err(ShmError::AddressOutsideWindow)
        );
    }
}
