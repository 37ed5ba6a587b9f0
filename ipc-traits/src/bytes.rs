//! Sound byte access to memory the peer may write: copies, fills and
//! compares at memcpy speed, and the zero-copy views built on them.
//!
//! Bytes in shared memory are never reached through a `&[u8]` or
//! `&mut [u8]`: the compiler assumes such memory does not change while the
//! reference lives, so a peer that writes anyway (hostile, or buggy) could
//! make a checked length be loaded again unchecked, or two reads of one
//! byte disagree. Every access here is a volatile load or store, word-wise
//! (on x86_64 16 bytes wide for whole 16-aligned blocks, and from 256
//! bytes on 32 bytes wide with AVX, else 16) where
//! the shared side is aligned, and in the widest aligned pieces at an
//! unaligned head and tail: each byte is read exactly once per call, and
//! accesses are neither merged, duplicated nor elided. Volatile word
//! accesses compile to plain loads and stores on every target of this
//! family.
//!
//! | | what it gives |
//! |---|---|
//! | [`copy_from_shared`] / [`copy_to_shared`] | payload copies out of / into shared memory |
//! | [`fill_shared`] | zeroing what a lending did not write |
//! | [`eq_shared`] | comparing in place |
//! | [`ShmSlice`] | a zero-copy receive view: `len`, `read_at`, `copy_to`, `get`, `==`, `bytes` |
//! | [`ShmSliceMut`] | a zero-copy transmit view: `write_at`, `copy_from`, `fill` |
//!
//! (vm-memory's `VolatileSlice` is the model; Linux's `READ_ONCE` is the
//! discipline.)
//!
//! # Design notes
//!
//! - Volatile rather than relaxed atomic accesses (vm-memory's choice too).
//!   Both stop the compiler from inventing, merging or eliding accesses.
//!   The peer is another core or process, outside the Rust abstract
//!   machine, and volatile accesses are the tool for memory such an agent
//!   changes. Word-sized atomics would overlap the 16- and 32-bit atomic
//!   ring indices whenever a whole window is copied (a diagnostic snapshot,
//!   a golden image): mixed-size atomic accesses, which the memory model
//!   leaves undefined when they race and Miri's weak-memory emulation
//!   cannot run at all. Within this program, payload bytes change hands
//!   through the rings' acquire and release index accesses, which order
//!   volatile accesses like any other, so nothing races.
//! - The local side (`&[u8]` / `&mut [u8]`) is ordinary memory and is read
//!   and written with unaligned word accesses.
//! - Views are not `Send` or `Sync`: they borrow a buffer that is itself
//!   tied to one context.
//! - Feature `small` (firmware built for size): every copy and fill is the
//!   one out-of-line body per direction, one piece per loop turn (the
//!   widest aligned access that fits, so the same accesses). The fast
//!   paths inlined into each caller and the unrolled loop are ≈600 bytes on
//!   a Cortex-M4 remote; without them a 16-byte copy is a call and a few
//!   more branches.
#![allow(unsafe_code)]

use core::fmt;
use core::marker::PhantomData;
use core::ptr::NonNull;

const WORD: usize = core::mem::size_of::<usize>();

/// Bytes from `p` to the next word boundary, at most `len`.
#[inline(always)]
fn head_len(p: *const u8, len: usize) -> usize {
    (p.addr().wrapping_neg() & (WORD - 1)).min(len)
}

/// Loads one byte of shared memory.
///
/// # Safety
///
/// `p` is valid for reads (the contract of the public functions).
#[inline(always)]
unsafe fn load_u8(p: *const u8) -> u8 {
    // SAFETY: valid for reads (caller); a byte is always aligned.
    unsafe { p.read_volatile() }
}

/// Stores one byte of shared memory (the tests' tool).
///
/// # Safety
///
/// `p` is valid for writes.
#[cfg(test)]
#[inline(always)]
unsafe fn store_u8(p: *mut u8, v: u8) {
    // SAFETY: as in `load_u8`, for writes.
    unsafe { p.write_volatile(v) }
}

/// Loads one word of shared memory.
///
/// # Safety
///
/// `p` is word-aligned and valid for reads of a word.
#[inline(always)]
unsafe fn load_word(p: *const u8) -> usize {
    // SAFETY: aligned and valid (caller); every bit pattern is a `usize`.
    unsafe { p.cast::<usize>().read_volatile() }
}

/// Whether a range at `p` of `len` bytes is whole aligned `unit`s (a power
/// of two, at most `WORD`) and shorter than [`LARGE`]: one mask test
/// (`LARGE` is a power of two, or there is no large path and it is the
/// alignment test alone). With `unit = WORD` it is the common case
/// (payloads sit behind a 16-byte header in line-aligned buffers), which
/// the copies do inline with no head or tail.
#[inline(always)]
fn small_units(p: *const u8, len: usize, unit: usize) -> bool {
    let large_bits = if LARGE == usize::MAX { 0 } else { !(LARGE - 1) };
    (p.addr() & (unit - 1)) | (len & (large_bits | (unit - 1))) == 0
}

/// From this many bytes on, copies and fills go out of line to [`large`],
/// which moves the widest blocks the core has; below it (headers, short
/// messages, ring fields) the word loops run inline. Only x86_64 (SSE2's
/// 16-byte moves, AVX's 32-byte ones where the core runs AVX: what its
/// memcpy uses) has such blocks; the firmware targets copy words
/// everywhere, so the threshold is never met there and the test folds
/// away. 256: below it the inline word loop costs less than a call and
/// the block loop's set-up (callgrind, `bench instr_64_copy`).
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
const LARGE: usize = 256;
#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
const LARGE: usize = usize::MAX;
const _: () = assert!(LARGE == usize::MAX || (LARGE.is_power_of_two() && LARGE > WORD));

/// The 16-byte SSE2 block of x86_64: below [`LARGE`], a range of whole
/// blocks at a 16-aligned shared address (a payload behind its 16-byte
/// header in a line-aligned buffer, a multiple of 16 long) is copied in
/// them, one load and one store per block ([`blocks`]). Other targets have
/// no such block (`BLOCK` is never a unit there).
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
const BLOCK: usize = 16;

/// Moves the 16-byte blocks of `0..len`: one block (a 16-byte payload or
/// header) with one compare and no index; else four per loop turn, then
/// two and one straight-line, each tested by its bit of `len` (what the
/// loop leaves is `len` modulo 64).
///
/// # Safety
///
/// `shared` is 16-aligned, `len` a multiple of 16, both ranges valid (the
/// callers' contracts).
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline(always)]
unsafe fn blocks<D: Dir>(d: D, shared: *mut u8, local: *mut u8, len: usize) {
    use core::arch::x86_64::__m128i;
    // SAFETY: for the whole block, every block lies in `..len` and
    // `shared + i` stays 16-aligned (caller); SSE2 is baseline on x86_64.
    unsafe {
        if len == BLOCK {
            d.mv::<__m128i>(shared, local, 0);
            return;
        }
        let mut i = 0;
        while len - i >= 4 * BLOCK {
            for k in 0..4 {
                d.mv::<__m128i>(shared, local, i + k * BLOCK);
            }
            i += 4 * BLOCK;
        }
        if len & (2 * BLOCK) != 0 {
            d.mv::<__m128i>(shared, local, i);
            d.mv::<__m128i>(shared, local, i + BLOCK);
            i += 2 * BLOCK;
        }
        if len & BLOCK != 0 {
            d.mv::<__m128i>(shared, local, i);
        }
    }
}

/// The widest unit the inline copies move: [`BLOCK`] on x86_64, else a
/// word.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
const UNIT: usize = BLOCK;
#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
const UNIT: usize = WORD;

/// What keeps a copy of `len` bytes at `p` (below [`LARGE`]: the caller
/// tested [`is_large`] first) from the inline paths, as one value: the
/// address's and `len`'s bits below [`UNIT`]. 0: whole aligned units (the
/// 16-byte blocks on x86_64, else words); nothing but the `WORD` bit on
/// x86_64 ([`Fit::words`]): whole aligned words. One mask test each.
#[derive(Clone, Copy)]
struct Fit(usize);

impl Fit {
    #[inline(always)]
    fn new(p: *const u8, len: usize) -> Self {
        Self((p.addr() | len) & (UNIT - 1))
    }

    /// Whole aligned units.
    #[inline(always)]
    fn units(self) -> bool {
        self.0 == 0
    }

    /// Whole aligned words.
    #[inline(always)]
    fn words(self) -> bool {
        self.0 & !(UNIT - WORD) == 0
    }
}

/// Whether a copy of `len` bytes at `p` is one aligned 16-byte block (a
/// 16-byte payload behind its header, the commonest message): tested
/// before all else, one compare of the length and one of the address.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline(always)]
fn one_block(p: *const u8, len: usize) -> bool {
    len == BLOCK && p.addr() & (BLOCK - 1) == 0
}

/// Never: other targets have no 16-byte block.
#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
#[inline(always)]
fn one_block(_p: *const u8, _len: usize) -> bool {
    false
}

/// Whether a copy of `len` bytes takes the out-of-line wide path.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline(always)]
const fn is_large(len: usize) -> bool {
    len >= LARGE
}

/// Never: without wide blocks there is no large path (a `len >= LARGE`
/// test against `usize::MAX` is one clippy rejects as nearly always false).
#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
#[inline(always)]
const fn is_large(_len: usize) -> bool {
    false
}

/// One direction of a copy, or a fill: the shared side is accessed with
/// volatile loads or stores aligned to their width, the local side (none
/// for a fill) with plain unaligned ones. Copies and fills share one body
/// per shape ([`words`], [`general`], `large::copy_in`) instead of a
/// mirrored set.
trait Dir: Copy {
    /// Moves the `T` at offset `at` between the sides (or stores the fill
    /// byte's `T` there).
    ///
    /// # Safety
    ///
    /// `shared + at` is aligned for `T`; `at..at + size_of::<T>()` is
    /// valid on both sides (for writes on the side written: the local one
    /// for [`FromShared`], the shared one for [`ToShared`] and [`Fill`],
    /// which reaches no local side). `T` is a plain integer or vector type
    /// of at most 32 bytes (every bit pattern valid).
    unsafe fn mv<T: Copy>(self, shared: *mut u8, local: *mut u8, at: usize);
}

/// Shared memory to local memory (the shared pointer is only read).
#[derive(Clone, Copy)]
struct FromShared;

/// Local memory to shared memory (the local pointer is only read).
#[derive(Clone, Copy)]
struct ToShared;

/// Shared memory set to one byte (no local side).
#[derive(Clone, Copy)]
struct Fill(u8);

impl Dir for FromShared {
    #[inline(always)]
    unsafe fn mv<T: Copy>(self, shared: *mut u8, local: *mut u8, at: usize) {
        // SAFETY: aligned and valid (caller); every bit pattern is a `T`.
        unsafe {
            local
                .add(at)
                .cast::<T>()
                .write_unaligned(shared.add(at).cast::<T>().read_volatile());
        }
    }
}

impl Dir for ToShared {
    #[inline(always)]
    unsafe fn mv<T: Copy>(self, shared: *mut u8, local: *mut u8, at: usize) {
        // SAFETY: as for `FromShared`, the other way.
        unsafe {
            shared
                .add(at)
                .cast::<T>()
                .write_volatile(local.add(at).cast::<T>().read_unaligned());
        }
    }
}

impl Dir for Fill {
    #[inline(always)]
    unsafe fn mv<T: Copy>(self, shared: *mut u8, _: *mut u8, at: usize) {
        let bytes = [self.0; 32];
        const { assert!(core::mem::size_of::<T>() <= 32) };
        // SAFETY: `T` is at most 32 bytes and every bit pattern is a `T`
        // (caller), read from the array; the store as for `ToShared`.
        unsafe {
            let v: T = core::mem::transmute_copy(&bytes);
            shared.add(at).cast::<T>().write_volatile(v);
        }
    }
}

/// Large copies and fills: 32-byte volatile AVX moves on the shared side
/// where the core runs AVX, else 16-byte SSE2 ones (each still one access,
/// neither merged nor elided), 128 bytes per loop step, after the pieces
/// that align it to the block and before those of the tail, both
/// straight-line (one test per power of two, no piece loop).
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
mod large {
    use super::{Dir, Fill, FromShared, ToShared, LARGE};
    use core::arch::x86_64::{__m128i, __m256i};
    use core::mem::size_of;
    use core::sync::atomic::{AtomicU8, Ordering};

    const BLOCK: usize = size_of::<__m128i>();
    /// Bytes per loop step, either width (eight 16-byte or four 32-byte
    /// blocks).
    const STEP: usize = 128;
    const _: () = assert!(LARGE >= 2 * STEP);

    /// Moves `n` blocks of `V` from offset `at` (`n` a constant: the moves
    /// unroll).
    ///
    /// # Safety
    ///
    /// `shared + at` is aligned for `V`; `at..at + n * size_of::<V>()`
    /// valid on both sides; `V` is a vector type the caller's target
    /// features allow.
    #[inline(always)]
    unsafe fn blocks<D: Dir, V: Copy>(d: D, shared: *mut u8, local: *mut u8, at: usize, n: usize) {
        for k in 0..n {
            // SAFETY: inside the range, aligned (caller).
            unsafe { d.mv::<V>(shared, local, at + k * size_of::<V>()) };
        }
    }

    /// The copy of `len >= LARGE` bytes, either way, in blocks of `V`
    /// (16 or 32 bytes).
    ///
    /// # Safety
    ///
    /// `shared..shared + len` and `local..local + len` valid (for writes
    /// on the side written) and not overlapping; `V` is `__m128i`, or
    /// `__m256i` in a function compiled with AVX.
    #[inline(always)]
    unsafe fn copy_in<D: Dir, V: Copy>(d: D, shared: *mut u8, local: *mut u8, len: usize) {
        let w = size_of::<V>();
        // Up to the first `w`-byte boundary: `head < w < len`. Each piece
        // lands aligned: `shared + head` is `w`-aligned, so
        // `shared + (head & (p - 1))` is `p`-aligned for a piece of `p`.
        let head = shared.addr().wrapping_neg() & (w - 1);
        // SAFETY: for the whole block, every access is aligned to its
        // width on the shared side (above and below) and lies in `..len`:
        // the head pieces cover `..head`, the blocks `head..` in whole
        // steps, then the tail's powers of two the rest (`len - i < STEP`)
        // exactly once; a piece of 32 bytes only when `V` is `__m256i`.
        unsafe {
            // A buffer's payload is 16-aligned (behind its 16-byte
            // header): then only the 16-byte piece is to test.
            if head & (BLOCK - 1) != 0 {
                if head & 1 != 0 {
                    d.mv::<u8>(shared, local, 0);
                }
                if head & 2 != 0 {
                    d.mv::<u16>(shared, local, head & 1);
                }
                if head & 4 != 0 {
                    d.mv::<u32>(shared, local, head & 3);
                }
                if head & 8 != 0 {
                    d.mv::<u64>(shared, local, head & 7);
                }
            }
            if w > BLOCK && head & BLOCK != 0 {
                d.mv::<__m128i>(shared, local, head & (BLOCK - 1));
            }
            // What the loop leaves, worked out ahead: the tail's tests
            // need nothing of the loop but its end.
            let left = (len - head) % STEP;
            let end = len - left;
            let mut i = head;
            while i < end {
                blocks::<D, V>(d, shared, local, i, STEP / w);
                i += STEP;
            }
            let mut i = end;
            for bit in [STEP / 2, STEP / 4, STEP / 8] {
                if left & bit != 0 {
                    if bit >= w {
                        blocks::<D, V>(d, shared, local, i, bit / w);
                    } else {
                        blocks::<D, __m128i>(d, shared, local, i, bit / BLOCK);
                    }
                    i += bit;
                }
            }
            // Likewise a length of whole 16-byte blocks has no more tail.
            if left & (BLOCK - 1) != 0 {
                if left & 8 != 0 {
                    d.mv::<u64>(shared, local, i);
                    i += 8;
                }
                if left & 4 != 0 {
                    d.mv::<u32>(shared, local, i);
                    i += 4;
                }
                if left & 2 != 0 {
                    d.mv::<u16>(shared, local, i);
                    i += 2;
                }
                if left & 1 != 0 {
                    d.mv::<u8>(shared, local, i);
                }
            }
        }
    }

    /// [`copy_in`] with 16-byte SSE2 blocks (every x86_64 core; out of
    /// line like `copy_avx`, so the entries and `first` stay small).
    ///
    /// # Safety
    ///
    /// As for [`copy_in`].
    #[inline(never)]
    pub(super) unsafe fn copy_sse2<D: Dir>(d: D, shared: *mut u8, local: *mut u8, len: usize) {
        // SAFETY: the caller's contract; SSE2 is baseline on x86_64.
        unsafe { copy_in::<D, __m128i>(d, shared, local, len) }
    }

    /// [`copy_in`] with 32-byte AVX blocks.
    ///
    /// # Safety
    ///
    /// As for [`copy_in`], and the core supports AVX with the OS saving
    /// its registers ([`probe`]).
    #[target_feature(enable = "avx")]
    pub(super) unsafe fn copy_avx<D: Dir>(d: D, shared: *mut u8, local: *mut u8, len: usize) {
        // SAFETY: the caller's contract; compiled with AVX.
        unsafe { copy_in::<D, __m256i>(d, shared, local, len) }
    }

    /// [`probe`] asked and yes, asked and no, not yet asked (yes is 0: the
    /// test of the hot path is against zero).
    const YES: u8 = 0;
    const NO: u8 = 1;
    const UNKNOWN: u8 = 2;

    /// What [`probe`] found (a race only asks twice and finds the same).
    static AVX: AtomicU8 = AtomicU8::new(UNKNOWN);

    /// Whether this core runs AVX: at build time if the target has it,
    /// else asked once (CPUID, XGETBV) and remembered. Never under Miri,
    /// which runs no CPUID.
    #[cfg(test)]
    pub(super) fn avx() -> bool {
        cfg!(target_feature = "avx")
            || match AVX.load(Ordering::Relaxed) {
                YES => true,
                NO => false,
                _ => probe(),
            }
    }

    /// [`copy_in`] at the widest blocks the core runs: one load and test
    /// once [`probe`] has asked, a tail call either way.
    ///
    /// # Safety
    ///
    /// As for [`copy_in`].
    #[inline(always)]
    unsafe fn dispatch<D: Dir>(d: D, shared: *mut u8, local: *mut u8, len: usize) {
        // SAFETY: the caller's contract; AVX only where the core runs it.
        unsafe {
            if cfg!(target_feature = "avx") {
                return copy_avx::<D>(d, shared, local, len);
            }
            match AVX.load(Ordering::Relaxed) {
                YES => copy_avx::<D>(d, shared, local, len),
                NO => copy_sse2::<D>(d, shared, local, len),
                _ => first::<D>(d, shared, local, len),
            }
        }
    }

    /// [`dispatch`] the first time: asks, then dispatches.
    ///
    /// # Safety
    ///
    /// As for [`copy_in`].
    #[cold]
    #[inline(never)]
    unsafe fn first<D: Dir>(d: D, shared: *mut u8, local: *mut u8, len: usize) {
        probe();
        // SAFETY: the caller's contract.
        unsafe { dispatch::<D>(d, shared, local, len) }
    }

    /// Asks the core whether AVX can run and remembers the answer.
    #[cold]
    #[inline(never)]
    fn probe() -> bool {
        let yes = avx_usable();
        AVX.store(if yes { YES } else { NO }, Ordering::Relaxed);
        yes
    }

    /// AVX in CPUID leaf 1 (ECX bit 28), and the OS saving the YMM state:
    /// OSXSAVE (ECX bit 27), then XCR0 bits 1 (SSE) and 2 (AVX) set.
    #[cfg(not(miri))]
    fn avx_usable() -> bool {
        // `__cpuid` is an unsafe fn at the MSRV, a safe one in newer Rust.
        #[allow(unused_unsafe)]
        // SAFETY: CPUID exists on every x86_64 core.
        let ecx = unsafe { core::arch::x86_64::__cpuid(1) }.ecx;
        if ecx & (1 << 27) == 0 || ecx & (1 << 28) == 0 {
            return false;
        }
        // SAFETY: OSXSAVE is set, so XGETBV runs and XCR0 is readable.
        let xcr0 = unsafe { core::arch::x86_64::_xgetbv(0) };
        xcr0 & 0b110 == 0b110
    }

    /// Miri runs no CPUID: the SSE2 blocks.
    #[cfg(miri)]
    fn avx_usable() -> bool {
        false
    }

    /// [`super::copy_from_shared`] for `len >= LARGE` (the arguments in
    /// the order of the copies it calls).
    ///
    /// # Safety
    ///
    /// As for [`super::copy_from_shared`], for `dst..dst + len`.
    #[inline(never)]
    pub(super) unsafe fn from_shared(src: *const u8, dst: *mut u8, len: usize) {
        // SAFETY: the caller's contract; `FromShared` only reads `src`.
        unsafe { dispatch(FromShared, src.cast_mut(), dst, len) }
    }

    /// [`super::copy_to_shared`] for `len >= LARGE`, as `from_shared`.
    ///
    /// # Safety
    ///
    /// As for [`super::copy_to_shared`], for `src..src + len`.
    #[inline(never)]
    pub(super) unsafe fn to_shared(dst: *mut u8, src: *const u8, len: usize) {
        // SAFETY: the caller's contract; `ToShared` only reads `src`.
        unsafe { dispatch(ToShared, dst, src.cast_mut(), len) }
    }

    /// [`super::fill_shared`] for `len >= LARGE`, as `to_shared`.
    ///
    /// # Safety
    ///
    /// As for [`super::fill_shared`].
    #[inline(never)]
    pub(super) unsafe fn fill_shared(dst: *mut u8, byte: u8, len: usize) {
        // SAFETY: the caller's contract; `Fill` reaches no local side.
        unsafe { dispatch(Fill(byte), dst, core::ptr::null_mut(), len) }
    }
}

/// No blocks wider than a word: never called (`LARGE` is `usize::MAX`).
#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
mod large {
    /// # Safety
    ///
    /// None needed: touches nothing (never called).
    #[inline(always)]
    pub(super) unsafe fn from_shared(_: *const u8, _: *mut u8, _: usize) {}

    /// # Safety
    ///
    /// None needed: touches nothing (never called).
    #[inline(always)]
    pub(super) unsafe fn to_shared(_: *mut u8, _: *const u8, _: usize) {}

    /// # Safety
    ///
    /// None needed: touches nothing (never called).
    #[inline(always)]
    pub(super) unsafe fn fill_shared(_: *mut u8, _: u8, _: usize) {}
}

/// Moves the words of `i..end`, four at a time while it can, then a pair
/// and a single one straight-line (a 16-byte payload or header is one
/// pair, no loop).
///
/// # Safety
///
/// `shared + i` is word-aligned, `end - i` a multiple of `WORD`, both
/// ranges valid (the callers' contracts).
#[inline(always)]
unsafe fn words<D: Dir>(d: D, shared: *mut u8, local: *mut u8, mut i: usize, end: usize) {
    // SAFETY: for the whole block, every word lies in `i..end` (caller),
    // and `shared + i` stays word-aligned.
    unsafe {
        if cfg!(feature = "small") {
            // One word per turn: the loop is the whole body.
            while i < end {
                d.mv::<usize>(shared, local, i);
                i += WORD;
            }
            return;
        }
        while end - i >= 4 * WORD {
            for k in 0..4 {
                d.mv::<usize>(shared, local, i + k * WORD);
            }
            i += 4 * WORD;
        }
        if end - i >= 2 * WORD {
            d.mv::<usize>(shared, local, i);
            d.mv::<usize>(shared, local, i + WORD);
            i += 2 * WORD;
        }
        if i < end {
            d.mv::<usize>(shared, local, i);
        }
    }
}

/// A copy with an unaligned head or tail, either way: below a word the
/// widest naturally aligned pieces; from a word on, the head and the tail
/// in straight-line powers of two around the words (a used-ring element,
/// 4-aligned and 8 bytes long, is two 32-bit accesses on a 64-bit core).
///
/// # Safety
///
/// `shared..shared + len` and `local..local + len` valid (for writes on
/// the side written) and not overlapping.
#[inline(always)]
unsafe fn general<D: Dir>(d: D, shared: *mut u8, local: *mut u8, len: usize) {
    // SAFETY: for the whole block, every access is aligned to its width
    // on the shared side and the accesses cover `..len` exactly once:
    // below a word, `piece` chooses each width from the address and what
    // is left; from a word on, `head < WORD <= len` and `shared + head`
    // is word-aligned, so `shared + (head & (w - 1))` is `w`-aligned, and
    // after the words the tail (`< WORD`) goes down from 4 keeping the
    // alignment.
    unsafe {
        // With the feature `small`, every length: the greedy pieces are
        // the same accesses as the head, words and tail below (the widest
        // aligned piece that fits is the head's next power of two, then
        // words, then the tail's), in one loop instead of three shapes.
        if cfg!(feature = "small") || len < WORD {
            let mut i = 0;
            while i < len {
                let w = piece(shared.add(i), len - i);
                match w {
                    8 => d.mv::<u64>(shared, local, i),
                    4 => d.mv::<u32>(shared, local, i),
                    2 => d.mv::<u16>(shared, local, i),
                    _ => d.mv::<u8>(shared, local, i),
                }
                i += w;
            }
            return;
        }
        let head = shared.addr().wrapping_neg() & (WORD - 1);
        if head & 1 != 0 {
            d.mv::<u8>(shared, local, 0);
        }
        if head & 2 != 0 {
            d.mv::<u16>(shared, local, head & 1);
        }
        if WORD > 4 && head & 4 != 0 {
            d.mv::<u32>(shared, local, head & 3);
        }
        let body = head + (len - head) / WORD * WORD;
        words::<D>(d, shared, local, head, body);
        let (mut i, left) = (body, len - body);
        if WORD > 4 && left & 4 != 0 {
            d.mv::<u32>(shared, local, i);
            i += 4;
        }
        if left & 2 != 0 {
            d.mv::<u16>(shared, local, i);
            i += 2;
        }
        if left & 1 != 0 {
            d.mv::<u8>(shared, local, i);
        }
    }
}

/// The widest access (1, 2 or 4 bytes, and with the feature `small` a
/// whole word) that is aligned at `p` and fits in `left` bytes.
#[inline(always)]
fn piece(p: *const u8, left: usize) -> usize {
    let a = p.addr();
    if cfg!(feature = "small") && WORD > 4 && a & 7 == 0 && left >= 8 {
        // A whole word on a 64-bit core (only the feature `small` asks:
        // without it the pieces are shorter than a word).
        8
    } else if a & 3 == 0 && left >= 4 {
        4
    } else if a & 1 == 0 && left >= 2 {
        2
    } else {
        1
    }
}

/// Copies `dst.len()` bytes of shared memory from `src` into `dst`, each
/// byte read exactly once.
///
/// # Safety
///
/// `src..src + dst.len()` is valid for reads for the duration of the call
/// and no Rust reference to it exists (it holds no Rust object); no thread
/// of this program writes it during the call (the rings' acquire and
/// release accesses hand it over). The peer, outside this program, may
/// write it meanwhile: the copy then holds some mix of old and new values,
/// which the caller validates like any other peer input.
// Always inline without the feature `small`: the fast paths are a few
// instructions, and a call costs about as many.
#[cfg_attr(not(feature = "small"), inline(always))]
#[cfg_attr(feature = "small", inline)]
pub unsafe fn copy_from_shared(src: *const u8, dst: &mut [u8]) {
    let len = dst.len();
    let (shared, local) = (src.cast_mut(), dst.as_mut_ptr());
    // SAFETY: for the whole block, each branch stays inside the caller's
    // ranges and meets the alignment it tests; `FromShared` only reads
    // `src`.
    unsafe {
        if cfg!(feature = "small") {
            // Size first: every copy is the one out-of-line body.
            copy_from_shared_general(src, dst);
        } else if one_block(src, len) {
            // One aligned 16-byte block (x86_64), inline.
            #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
            FromShared.mv::<core::arch::x86_64::__m128i>(shared, local, 0);
        } else if is_large(len) {
            large::from_shared(src, local, len);
        } else if UNIT > WORD && Fit::new(src, len).units() {
            // Aligned whole 16-byte blocks (x86_64), inline.
            #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
            blocks(FromShared, shared, local, len);
        } else if Fit::new(src, len).words() {
            // Aligned whole words, the common case, inline.
            words(FromShared, shared, local, 0, len);
        } else if WORD > 4 && len == 4 && src.addr() & 3 == 0 {
            // A 32-bit field on a 64-bit core.
            FromShared.mv::<u32>(shared, local, 0);
        } else if len == 2 && src.addr() & 1 == 0 {
            // A 16-bit ring entry.
            FromShared.mv::<u16>(shared, local, 0);
        } else {
            copy_from_shared_general(src, dst);
        }
    }
}

/// [`copy_from_shared`] with an unaligned head or tail (out of line: it is
/// the rarer case, and inlining it everywhere costs code size).
///
/// # Safety
///
/// As for [`copy_from_shared`].
#[inline(never)]
unsafe fn copy_from_shared_general(src: *const u8, dst: &mut [u8]) {
    // SAFETY: the caller's contract; `FromShared` only reads `src`.
    unsafe { general(FromShared, src.cast_mut(), dst.as_mut_ptr(), dst.len()) }
}

/// Copies `src` into shared memory at `dst`, each byte written once.
///
/// # Safety
///
/// `dst..dst + src.len()` is valid for writes for the duration of the
/// call, holds no Rust object and no Rust reference to it exists; no other
/// thread of this program accesses it during the call.
// Always inline without the feature `small`: the fast paths are a few
// instructions, and a call costs about as many.
#[cfg_attr(not(feature = "small"), inline(always))]
#[cfg_attr(feature = "small", inline)]
pub unsafe fn copy_to_shared(src: &[u8], dst: *mut u8) {
    let len = src.len();
    let local = src.as_ptr().cast_mut();
    // SAFETY: for the whole block, as in `copy_from_shared`; `ToShared`
    // only reads `src`.
    unsafe {
        if cfg!(feature = "small") {
            // Size first, as in `copy_from_shared`.
            copy_to_shared_general(src, dst);
        } else if one_block(dst, len) {
            // One aligned 16-byte block (x86_64), inline.
            #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
            ToShared.mv::<core::arch::x86_64::__m128i>(dst, local, 0);
        } else if is_large(len) {
            large::to_shared(dst, local, len);
        } else if UNIT > WORD && Fit::new(dst, len).units() {
            // Aligned whole 16-byte blocks (x86_64), inline.
            #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
            blocks(ToShared, dst, local, len);
        } else if Fit::new(dst, len).words() {
            // Aligned whole words, the common case, inline.
            words(ToShared, dst, local, 0, len);
        } else if WORD > 4 && len == 4 && dst.addr() & 3 == 0 {
            // A 32-bit field on a 64-bit core.
            ToShared.mv::<u32>(dst, local, 0);
        } else if len == 2 && dst.addr() & 1 == 0 {
            // A 16-bit ring entry.
            ToShared.mv::<u16>(dst, local, 0);
        } else if len == 1 {
            // One byte (a flag, a check byte): no head or tail to work out.
            ToShared.mv::<u8>(dst, local, 0);
        } else {
            copy_to_shared_general(src, dst);
        }
    }
}

/// [`copy_to_shared`] with an unaligned head or tail (out of line, as
/// `copy_from_shared_general`).
///
/// # Safety
///
/// As for [`copy_to_shared`].
#[inline(never)]
unsafe fn copy_to_shared_general(src: &[u8], dst: *mut u8) {
    // SAFETY: the caller's contract; `ToShared` only reads `src`.
    unsafe { general(ToShared, dst, src.as_ptr().cast_mut(), src.len()) }
}

/// Sets `len` bytes of shared memory at `dst` to `byte`.
///
/// # Safety
///
/// As for [`copy_to_shared`], for `dst..dst + len`.
#[inline]
pub unsafe fn fill_shared(dst: *mut u8, byte: u8, len: usize) {
    if !cfg!(feature = "small") && small_units(dst, len, WORD) {
        // Aligned whole words (a payload behind the 16-byte header): the
        // word loop alone, inline.
        // SAFETY: aligned whole words (checked), the caller's range;
        // `Fill` reaches no local side.
        unsafe { words(Fill(byte), dst, core::ptr::null_mut(), 0, len) };
        return;
    }
    // SAFETY: the caller's contract.
    unsafe { fill_shared_general(dst, byte, len) }
}

/// [`fill_shared`] with a head and tail, or of [`LARGE`] bytes or more
/// (out of line, so the word loop above stays small enough to inline).
///
/// # Safety
///
/// As for [`fill_shared`].
#[inline(never)]
unsafe fn fill_shared_general(dst: *mut u8, byte: u8, len: usize) {
    // SAFETY: the caller's contract; `Fill` reaches no local side.
    unsafe {
        if is_large(len) {
            large::fill_shared(dst, byte, len);
        } else {
            general(Fill(byte), dst, core::ptr::null_mut(), len);
        }
    }
}

/// Whether the `other.len()` bytes of shared memory at `src` equal
/// `other`; each byte compared is read once (the comparison stops at the
/// first word that differs).
///
/// # Safety
///
/// As for [`copy_from_shared`], for `src..src + other.len()`.
#[inline]
pub unsafe fn eq_shared(src: *const u8, other: &[u8]) -> bool {
    let len = other.len();
    let o = other.as_ptr();
    let head = head_len(src, len);
    let mut i = 0;
    // SAFETY: for the whole block, as in `copy_from_shared`.
    unsafe {
        while i < head {
            if load_u8(src.add(i)) != *o.add(i) {
                return false;
            }
            i += 1;
        }
        while i + WORD <= len {
            if load_word(src.add(i)) != o.add(i).cast::<usize>().read_unaligned() {
                return false;
            }
            i += WORD;
        }
        while i < len {
            if load_u8(src.add(i)) != *o.add(i) {
                return false;
            }
            i += 1;
        }
    }
    true
}

/// `at..at + len` inside a view of `view` bytes?
#[inline]
fn check(at: usize, len: usize, view: usize) -> Result<(), crate::Error> {
    match at.checked_add(len) {
        Some(end) if end <= view => Ok(()),
        _ => Err(crate::Error::OutOfView),
    }
}

/// A zero-copy view of received bytes in shared memory: every accessor
/// copies or compares, none lends a reference (the volatile-slice pattern).
///
/// Each call reads each byte it covers once; two calls may see different
/// values if the peer writes the buffer it handed over (it must not, but
/// nothing here depends on it).
///
/// # Examples
///
/// ```
/// use ipc_traits::bytes::{ShmSlice, ShmSliceMut};
///
/// #[repr(align(8))]
/// struct Backing([u8; 16]);
/// let mut backing = Backing([0; 16]);
/// let p = core::ptr::NonNull::new(backing.0.as_mut_ptr()).unwrap();
/// // SAFETY: `backing` outlives both views and is only reached through them.
/// let mut w = unsafe { ShmSliceMut::new(p, 16) };
/// w.copy_from(b"hello").unwrap();
/// w.write_at(5, b"!").unwrap();
/// // SAFETY: as above.
/// let r = unsafe { ShmSlice::new(p, 6) };
/// assert!(r == *b"hello!");
/// let mut out = [0u8; 2];
/// r.read_at(1, &mut out).unwrap();
/// assert_eq!(&out, b"el");
/// assert_eq!(r.bytes().filter(|&b| b == b'l').count(), 2);
/// ```
#[derive(Clone, Copy)]
pub struct ShmSlice<'a> {
    ptr: NonNull<u8>,
    len: usize,
    _borrow: PhantomData<&'a [u8]>,
}

impl<'a> ShmSlice<'a> {
    /// A view of `len` bytes at `ptr`.
    ///
    /// # Safety
    ///
    /// For `'a`, `ptr..ptr + len` is valid for reads, holds no Rust object
    /// and is not written by another thread of this program (as for
    /// [`copy_from_shared`]; the peer may write it: values then change,
    /// soundness does not).
    #[inline]
    pub const unsafe fn new(ptr: NonNull<u8>, len: usize) -> Self {
        Self {
            ptr,
            len,
            _borrow: PhantomData,
        }
    }

    /// The number of bytes in view.
    #[inline]
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Whether the view is empty.
    #[inline]
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies `dst.len()` bytes starting at `at` into `dst`.
    ///
    /// # Errors
    ///
    /// [`crate::Error::OutOfView`] if the range exceeds the view (nothing is copied).
    #[inline]
    pub fn read_at(&self, at: usize, dst: &mut [u8]) -> Result<(), crate::Error> {
        check(at, dst.len(), self.len)?;
        // SAFETY: `at + dst.len() <= len` (checked), so the range is inside
        // the view, valid for reads for `'a` (`new`'s contract).
        unsafe { copy_from_shared(self.ptr.as_ptr().add(at), dst) };
        Ok(())
    }

    /// Copies the first `min(len, dst.len())` bytes into `dst` and returns
    /// that count.
    #[inline]
    pub fn copy_to(&self, dst: &mut [u8]) -> usize {
        let n = self.len.min(dst.len());
        // SAFETY: `n <= len`: inside the view (`new`'s contract).
        unsafe { copy_from_shared(self.ptr.as_ptr(), &mut dst[..n]) };
        n
    }

    /// The byte at `at`, if in view.
    #[inline]
    pub fn get(&self, at: usize) -> Option<u8> {
        if at < self.len {
            // SAFETY: `at < len`: inside the view.
            Some(unsafe { load_u8(self.ptr.as_ptr().add(at)) })
        } else {
            None
        }
    }

    /// Whether the view holds exactly `other` (same length, same bytes).
    #[inline]
    pub fn eq_bytes(&self, other: &[u8]) -> bool {
        // SAFETY: the lengths are equal, so the range is the view.
        self.len == other.len() && unsafe { eq_shared(self.ptr.as_ptr(), other) }
    }

    /// The part `at..at + len` of this view.
    ///
    /// # Errors
    ///
    /// [`crate::Error::OutOfView`] if it is not inside.
    #[inline]
    pub fn subslice(&self, at: usize, len: usize) -> Result<ShmSlice<'a>, crate::Error> {
        check(at, len, self.len)?;
        Ok(ShmSlice {
            // SAFETY: `at <= len` (checked): inside or one past the view,
            // so in bounds of the same allocation, and non-null.
            ptr: unsafe { self.ptr.add(at) },
            len,
            _borrow: PhantomData,
        })
    }

    /// The bytes, one at a time, each read once as the iterator reaches it.
    #[inline]
    pub fn bytes(&self) -> Bytes<'a> {
        Bytes {
            view: *self,
            next: 0,
        }
    }
}

impl PartialEq<[u8]> for ShmSlice<'_> {
    #[inline]
    fn eq(&self, other: &[u8]) -> bool {
        self.eq_bytes(other)
    }
}

impl PartialEq<&[u8]> for ShmSlice<'_> {
    #[inline]
    fn eq(&self, other: &&[u8]) -> bool {
        self.eq_bytes(other)
    }
}

impl<const N: usize> PartialEq<[u8; N]> for ShmSlice<'_> {
    #[inline]
    fn eq(&self, other: &[u8; N]) -> bool {
        self.eq_bytes(other)
    }
}

impl<const N: usize> PartialEq<&[u8; N]> for ShmSlice<'_> {
    #[inline]
    fn eq(&self, other: &&[u8; N]) -> bool {
        self.eq_bytes(*other)
    }
}

impl fmt::Debug for ShmSlice<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.bytes()).finish()
    }
}

/// The bytes of a [`ShmSlice`], in order ([`ShmSlice::bytes`]).
#[derive(Debug, Clone)]
pub struct Bytes<'a> {
    view: ShmSlice<'a>,
    next: usize,
}

impl Iterator for Bytes<'_> {
    type Item = u8;

    #[inline]
    fn next(&mut self) -> Option<u8> {
        let b = self.view.get(self.next)?;
        self.next += 1;
        Some(b)
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.view.len - self.next;
        (n, Some(n))
    }
}

impl ExactSizeIterator for Bytes<'_> {}

/// A zero-copy view of bytes to send, in shared memory: every accessor
/// copies in or fills, none lends a reference.
///
/// See [`ShmSlice`] for an example.
pub struct ShmSliceMut<'a> {
    ptr: NonNull<u8>,
    len: usize,
    _borrow: PhantomData<&'a mut [u8]>,
}

impl<'a> ShmSliceMut<'a> {
    /// A writable view of `len` bytes at `ptr`.
    ///
    /// # Safety
    ///
    /// For `'a`, `ptr..ptr + len` is valid for reads and writes, holds no
    /// Rust object, and no other thread of this program and no other view
    /// accesses it meanwhile.
    #[inline]
    pub const unsafe fn new(ptr: NonNull<u8>, len: usize) -> Self {
        Self {
            ptr,
            len,
            _borrow: PhantomData,
        }
    }

    /// The number of bytes in view.
    #[inline]
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Whether the view is empty.
    #[inline]
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies `src` to `at`.
    ///
    /// # Errors
    ///
    /// [`crate::Error::OutOfView`] if the range exceeds the view (nothing is written).
    #[inline]
    pub fn write_at(&mut self, at: usize, src: &[u8]) -> Result<(), crate::Error> {
        check(at, src.len(), self.len)?;
        // SAFETY: inside the view (checked), valid for writes for `'a`
        // and reached through no other view (`new`'s contract).
        unsafe { copy_to_shared(src, self.ptr.as_ptr().add(at)) };
        Ok(())
    }

    /// Copies `src` to the start of the view.
    ///
    /// # Errors
    ///
    /// [`crate::Error::OutOfView`] if `src` is longer than the view (nothing is written).
    #[inline]
    pub fn copy_from(&mut self, src: &[u8]) -> Result<(), crate::Error> {
        self.write_at(0, src)
    }

    /// Sets every byte of the view to `byte`.
    #[inline]
    pub fn fill(&mut self, byte: u8) {
        // SAFETY: exactly the view (`new`'s contract).
        unsafe { fill_shared(self.ptr.as_ptr(), byte, self.len) };
    }

    /// Reads back what the view holds (a read-only view for as long as
    /// this one is borrowed).
    #[inline]
    pub fn as_view(&self) -> ShmSlice<'_> {
        // SAFETY: the same range, valid for reads; `&self` keeps writes
        // through this view away while the read view lives.
        unsafe { ShmSlice::new(self.ptr, self.len) }
    }
}

impl fmt::Debug for ShmSliceMut<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShmSliceMut")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[repr(align(16))]
    struct Backing([u8; 96]);

    /// Every alignment of the shared side against every length up to
    /// several words, both directions, against a plain reference copy.
    #[test]
    fn copies_fills_and_compares_match_memcpy_at_every_alignment() {
        let mut b = Backing([0; 96]);
        let base = b.0.as_mut_ptr();
        let pattern: [u8; 80] = core::array::from_fn(|k| (k as u8).wrapping_mul(37) ^ 0xA5);
        for start in 0..WORD * 2 {
            for len in 0..=(80 - start).min(6 * WORD + 3) {
                let src = &pattern[..len];
                // SAFETY: inside `b`, only reached through this module here.
                unsafe {
                    fill_shared(base, 0xEE, 96);
                    copy_to_shared(src, base.add(start));
                }
                let mut out = [0u8; 80];
                // SAFETY: as above.
                unsafe { copy_from_shared(base.add(start), &mut out[..len]) };
                assert_eq!(&out[..len], src, "start {start} len {len}");
                // SAFETY: as above.
                unsafe {
                    assert!(eq_shared(base.add(start), src));
                    assert_eq!(load_u8(base.add(start + len)), 0xEE, "no overrun");
                    if start > 0 {
                        assert_eq!(load_u8(base.add(start - 1)), 0xEE, "no underrun");
                    }
                    if len > 0 {
                        store_u8(base.add(start + len - 1), !src[len - 1]);
                        assert!(!eq_shared(base.add(start), src), "last byte differs");
                        fill_shared(base.add(start), 0, len);
                        assert!(eq_shared(base.add(start), &[0u8; 80][..len]));
                    }
                }
            }
        }
    }

    #[repr(align(16))]
    struct Wide([u8; 320]);

    /// The large copies (16-byte blocks on x86_64): every alignment of the
    /// shared side modulo 16, lengths around the threshold and the block
    /// loops' steps, with the local side at two alignments.
    #[test]
    fn large_copies_match_memcpy_at_every_alignment() {
        let mut b = Wide([0; 320]);
        let base = b.0.as_mut_ptr();
        let pattern: [u8; 288] = core::array::from_fn(|k| (k as u8).wrapping_mul(29) ^ 0x5A);
        for start in 0..2 * 16 {
            for len in [
                63,
                64,
                65,
                71,
                79,
                80,
                81,
                127,
                128,
                129,
                143,
                200,
                256 - start,
                256,
                257,
                271,
                280,
            ] {
                for local in [0, 3] {
                    let src = &pattern[local..local + len];
                    // SAFETY: inside `b`, only reached through this module here.
                    unsafe {
                        fill_shared(base, 0xEE, 320);
                        copy_to_shared(src, base.add(start));
                        assert!(eq_shared(base.add(start), src), "start {start} len {len}");
                        assert_eq!(load_u8(base.add(start + len)), 0xEE, "no overrun");
                        if start > 0 {
                            assert_eq!(load_u8(base.add(start - 1)), 0xEE, "no underrun");
                        }
                        fill_shared(base.add(start), 0x11, len);
                        assert!(
                            eq_shared(base.add(start), &[0x11; 288][..len]),
                            "fill {len}"
                        );
                        assert_eq!(load_u8(base.add(start + len)), 0xEE, "fill overrun");
                        if start > 0 {
                            assert_eq!(load_u8(base.add(start - 1)), 0xEE, "fill underrun");
                        }
                        copy_to_shared(src, base.add(start));
                    }
                    let mut out = [0xCCu8; 288];
                    // SAFETY: as above.
                    unsafe { copy_from_shared(base.add(start), &mut out[local..local + len]) };
                    assert_eq!(&out[local..local + len], src, "start {start} len {len}");
                    assert!(out[..local].iter().all(|&x| x == 0xCC), "no underrun");
                    assert_eq!(out.get(local + len).copied().unwrap_or(0xCC), 0xCC);
                }
            }
        }
    }

    #[repr(align(64))]
    struct Region([u8; 576]);

    /// The cases of [`every_length_and_misalignment_both_sides`]: `(local
    /// misalignment, length, shared misalignment)`. Every length up to
    /// past the large threshold's first step and tail (`LARGE` on x86_64
    /// is 256, a step 128: 0..=400 covers every head, block count and
    /// tail bit) at every misalignment of the shared side modulo 32 and of
    /// the local side modulo 8. Under Miri, every short length at every
    /// shared misalignment, and each side of the thresholds at the
    /// misalignments that take every head piece (0, 5, 8, 15).
    fn cases() -> impl Iterator<Item = (usize, usize, usize)> {
        #[cfg(not(miri))]
        let it = (0..8).flat_map(|local| {
            (0..=400)
                .chain([511, 512])
                .flat_map(move |len| (0..32).map(move |at| (local, len, at)))
        });
        #[cfg(miri)]
        let it = [0, 3]
            .into_iter()
            .flat_map(|local| {
                (0..=2 * WORD + 3).flat_map(move |len| (0..16).map(move |at| (local, len, at)))
            })
            .chain(
                [127, 255, 256, 257, 399]
                    .into_iter()
                    .flat_map(|len| [0, 5, 8, 15].into_iter().map(move |at| (3, len, at))),
            );
        it
    }

    /// Every case of `cases`, both directions and the fill: the bytes
    /// arrive, and nothing outside the range changes on either side (the
    /// whole block; under Miri the 16 bytes past the range).
    #[test]
    fn every_length_and_misalignment_both_sides() {
        let mut shared = Region([0; 576]);
        let base = shared.0.as_mut_ptr();
        let pattern: [u8; 528] = core::array::from_fn(|k| (k as u8).wrapping_mul(151) ^ 0x3C);
        for (local, len, at) in cases() {
            let src = &pattern[local..local + len];
            let span = if cfg!(miri) { at + len + 16 } else { 576 };
            // SAFETY: `span <= 16 + 512 + 16 <= 576`: inside `shared`,
            // reached only through this module here.
            unsafe {
                fill_shared(base, 0xEE, span);
                copy_to_shared(src, base.add(at));
                assert!(eq_shared(base.add(at), src), "to: at {at} len {len}");
                for k in (0..at).chain(at + len..span) {
                    assert_eq!(load_u8(base.add(k)), 0xEE, "to {at}+{len}: byte {k}");
                }
            }
            let mut out = [0xCCu8; 528];
            let guard = if cfg!(miri) { local + len + 16 } else { 528 };
            // SAFETY: as above.
            unsafe { copy_from_shared(base.add(at), &mut out[local..local + len]) };
            assert_eq!(&out[local..local + len], src, "from: at {at} len {len}");
            assert!(
                out[..local]
                    .iter()
                    .chain(&out[local + len..guard])
                    .all(|&b| b == 0xCC),
                "from {at}+{len}: local bytes outside written"
            );
            // SAFETY: as above.
            unsafe {
                fill_shared(base.add(at), 0x11, len);
                for k in 0..span {
                    let want = if (at..at + len).contains(&k) {
                        0x11
                    } else {
                        0xEE
                    };
                    assert_eq!(load_u8(base.add(k)), want, "fill {at}+{len}: byte {k}");
                }
            }
        }
    }

    /// The large copies and fill at both block widths (16-byte SSE2
    /// always, 32-byte AVX where the core runs it, never under Miri),
    /// whichever the public functions pick: every length from the
    /// threshold to past a step and a tail at every shared misalignment
    /// modulo 32.
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    #[test]
    fn large_copies_and_fill_at_both_block_widths() {
        type To = unsafe fn(ToShared, *mut u8, *mut u8, usize);
        type From = unsafe fn(FromShared, *mut u8, *mut u8, usize);
        type Set = unsafe fn(Fill, *mut u8, *mut u8, usize);
        let sse2: (&str, To, From, Set) =
            ("sse2", large::copy_sse2, large::copy_sse2, large::copy_sse2);
        let mut widths = [sse2, sse2];
        if large::avx() {
            // SAFETY (for the calls below): `avx` found AVX on this core.
            widths[1] = ("avx", large::copy_avx, large::copy_avx, large::copy_avx);
        }
        #[cfg(not(miri))]
        let (lens, ats, locals) = (LARGE..=LARGE + 144, 0..32, [0, 1, 3, 4]);
        #[cfg(miri)]
        let (lens, ats, locals) = (
            [256, 257, 300, 399].into_iter(),
            [0, 5, 16, 21, 31].into_iter(),
            [3],
        );
        let mut shared = Region([0; 576]);
        let base = shared.0.as_mut_ptr();
        let pattern: [u8; 528] = core::array::from_fn(|k| (k as u8).wrapping_mul(73) ^ 0xC3);
        for len in lens {
            for at in ats.clone() {
                for local in locals {
                    for (name, to, from, set) in widths {
                        let src = &pattern[local..local + len];
                        let mut out = [0xCCu8; 528];
                        // SAFETY: `at + len + 1 <= 32 + 400 + 1 < 576`:
                        // inside `shared`, reached only through this module
                        // here; `src` and `out` are other objects; AVX only
                        // where the core runs it (above).
                        unsafe {
                            set(Fill(0xEE), base, core::ptr::null_mut(), 576);
                            to(ToShared, base.add(at), src.as_ptr().cast_mut(), len);
                            assert!(eq_shared(base.add(at), src), "{name} to: at {at} len {len}");
                            assert_eq!(load_u8(base.add(at + len)), 0xEE, "{name} overrun");
                            if at > 0 {
                                assert_eq!(load_u8(base.add(at - 1)), 0xEE, "{name} underrun");
                            }
                            from(FromShared, base.add(at), out.as_mut_ptr().add(local), len);
                            set(Fill(0x11), base.add(at), core::ptr::null_mut(), len);
                            assert!(eq_shared(base.add(at), &[0x11; 528][..len]), "{name} fill");
                            assert_eq!(load_u8(base.add(at + len)), 0xEE, "{name} fill overrun");
                            if at > 0 {
                                assert_eq!(load_u8(base.add(at - 1)), 0xEE, "{name} fill underrun");
                            }
                        }
                        assert_eq!(
                            &out[local..local + len],
                            src,
                            "{name} from: at {at} len {len}"
                        );
                        assert!(
                            out[..local]
                                .iter()
                                .chain(&out[local + len..])
                                .all(|&b| b == 0xCC),
                            "{name} from {at}+{len}: local bytes outside written"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn views_check_every_range_and_never_lend_a_slice() {
        let mut b = Backing([0; 96]);
        let p = NonNull::new(b.0.as_mut_ptr()).unwrap();
        // SAFETY: `b` outlives the views and is only reached through them.
        let mut w = unsafe { ShmSliceMut::new(p, 8) };
        assert_eq!(w.write_at(6, b"abc"), Err(crate::Error::OutOfView));
        assert!(w.write_at(usize::MAX, b"a").is_err());
        w.fill(b'x');
        w.write_at(0, b"ab").unwrap();
        assert!(w.as_view() == *b"abxxxxxx");
        // SAFETY: as above.
        let r = unsafe { ShmSlice::new(p, 8) };
        assert_eq!(r.get(7), Some(b'x'));
        assert_eq!(r.get(8), None);
        let mut big = [0u8; 12];
        assert_eq!(r.copy_to(&mut big), 8);
        assert_eq!(&big[..8], b"abxxxxxx");
        assert!(r.read_at(4, &mut big[..5]).is_err());
        let sub = r.subslice(1, 2).unwrap();
        assert!(sub == b"bx");
        assert!(sub != *b"bxx");
        assert!(r.subslice(7, 2).is_err());
        assert_eq!(format!("{sub:?}"), "[98, 120]");
        assert_eq!(r.bytes().len(), 8);
    }
}

#[cfg(test)]
mod tests_fast12 {
    use super::*;

    #[repr(align(64))]
    struct Region([u8; 1152]);

    /// Copies `len` bytes of a pattern to `shared + at` and back with the
    /// public copies, and checks against a plain copy that the bytes
    /// arrive and nothing else on either side changes.
    fn round_trip(region: &mut Region, at: usize, len: usize, local: usize) {
        let base = region.0.as_mut_ptr();
        let pattern: [u8; 1100] = core::array::from_fn(|k| (k as u8).wrapping_mul(89) ^ 0x6B);
        let src = &pattern[local..local + len];
        let mut reference = [0xEEu8; 1152];
        reference[at..at + len].copy_from_slice(src);
        // SAFETY: `at + len <= 1152`: inside `region`, reached only through
        // this function here; `src` is another object.
        unsafe {
            fill_shared(base, 0xEE, 1152);
            copy_to_shared(src, base.add(at));
            for (k, want) in reference.iter().enumerate() {
                assert_eq!(load_u8(base.add(k)), *want, "to {at}+{len}: byte {k}");
            }
        }
        let mut out = [0xCCu8; 1100];
        // SAFETY: as above; `out` is another object.
        unsafe { copy_from_shared(base.add(at), &mut out[local..local + len]) };
        assert_eq!(&out[local..local + len], src, "from {at}+{len}");
        assert!(
            out[..local]
                .iter()
                .chain(&out[local + len..])
                .all(|&b| b == 0xCC),
            "from {at}+{len}: local bytes outside written"
        );
    }

    /// The one-block test and the four-block loop with its two- and
    /// one-block tails (x86_64): every whole number of 16-byte blocks
    /// below the large threshold, none and one included, at 16-aligned
    /// shared addresses of both 32-alignments and an unaligned local side;
    /// and one byte more or less (the other paths), against a plain copy.
    #[test]
    fn whole_blocks_and_their_neighbours_match_a_plain_copy() {
        let mut region = Region([0; 1152]);
        let lens: core::ops::RangeInclusive<usize> = if cfg!(miri) { 0..=4 } else { 0..=16 };
        for blocks in lens {
            for len in [
                16 * blocks,
                (16 * blocks).saturating_sub(1),
                16 * blocks + 1,
            ] {
                for at in [0, 16, 48, 64] {
                    for local in [0, 3] {
                        round_trip(&mut region, at, len, local);
                    }
                }
            }
        }
    }

    /// The large copies' loop end and tail, worked out before the loop:
    /// lengths from the threshold to past several loop steps (one to
    /// seven turns) and every tail bit, at every shared misalignment
    /// modulo 32 (so every head), against a plain copy.
    #[test]
    fn large_copies_over_several_steps_match_a_plain_copy() {
        let mut region = Region([0; 1152]);
        #[cfg(not(miri))]
        let (lens, ats): (Vec<usize>, Vec<usize>) = (
            (256..=1056).step_by(7).chain([512, 768, 1024]).collect(),
            (0..32).collect(),
        );
        #[cfg(miri)]
        let (lens, ats): (Vec<usize>, Vec<usize>) = (vec![256, 401, 512], vec![0, 7, 16]);
        for len in lens {
            for &at in &ats {
                round_trip(&mut region, at, len, 1);
            }
        }
    }
}
