//! Statics that shared-memory windows can be built over.
//!
//! A [`ipc_traits::shm::RawRegion`] needs a base and a length aligned to the
//! cache line of its [`ipc_traits::cache::CacheMaintenance`], so that
//! maintenance on the window's first and last line never touches a
//! neighbour. [`LineAligned`] pads any static (the resource table) to
//! [`MAX_LINE`]; [`SharedArea`] is a zeroed, line-aligned byte area that is
//! only ever accessed through raw pointers.
#![allow(unsafe_code)]

use core::cell::UnsafeCell;
use core::fmt;

/// The largest cache line of the cores these images run on (Cortex-A53:
/// 64 bytes, shared/docs/hw/cache-and-wake.md §3; E907: 32, Cortex-M7: 32,
/// LMEM: 16; OCTEON's 128-byte line matters for performance only, §5).
pub const MAX_LINE: usize = 64;

/// `T`, aligned and padded to [`MAX_LINE`] bytes.
#[repr(C, align(64))]
pub struct LineAligned<T>(pub T);

const _: () = assert!(core::mem::align_of::<LineAligned<u8>>() == MAX_LINE);

impl<T> LineAligned<T> {
    /// The whole padded size: a window over `T` may cover this many bytes.
    pub const SIZE: usize = core::mem::size_of::<Self>();
}

impl<T> fmt::Debug for LineAligned<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LineAligned({} bytes)", Self::SIZE)
    }
}

/// `N` zeroed bytes, aligned to [`MAX_LINE`], shared with another core (or
/// another role on this core). Rust code never forms a reference to the
/// bytes: [`SharedArea::as_ptr`] is the only way in.
#[repr(C, align(64))]
pub struct SharedArea<const N: usize> {
    bytes: UnsafeCell<[u8; N]>,
}

// SAFETY: the bytes are only reached through the raw pointer of `as_ptr`;
// whoever builds a window over them takes on the aliasing rules
// (`RawRegion::new`'s contract), and cross-core ordering comes from the
// ring protocol's acquire/release accesses.
unsafe impl<const N: usize> Sync for SharedArea<N> {}

impl<const N: usize> SharedArea<N> {
    /// A zeroed area (lands in `.bss`).
    pub const fn new() -> Self {
        const { assert!(N % MAX_LINE == 0, "a shared area is whole lines") };
        Self {
            bytes: UnsafeCell::new([0; N]),
        }
    }

    /// The first byte.
    pub const fn as_ptr(&self) -> *mut u8 {
        self.bytes.get().cast()
    }

    /// The size in bytes.
    pub const fn len(&self) -> usize {
        N
    }

    /// Whether the area is empty.
    pub const fn is_empty(&self) -> bool {
        N == 0
    }
}

impl<const N: usize> Default for SharedArea<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> fmt::Debug for SharedArea<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SharedArea({N} bytes at {:p})", self.as_ptr())
    }
}
