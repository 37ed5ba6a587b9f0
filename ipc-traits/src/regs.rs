//! Register access: the tiny contract every driver is generic over.
//!
//! Drivers never dereference device memory themselves. They read and write
//! registers at an offset through [`Regs32`] (or [`Regs64`] for OCTEON CSRs).
//! On silicon [`Mmio32`] / [`Mmio64`] implement the traits with volatile
//! accesses through raw pointers; in tests each backend's simulation
//! implements them with a behavioural model, so the very same driver code runs
//! in both places.
//!
//! # For backend authors
//!
//! - Registers with read side effects (FIFO pops, flags cleared on read) must
//!   only be read by the handle that owns them.
//! - Registers shared by several handles must be changed through hardware
//!   set/clear aliases or [`modify_shared`], never a bare read-modify-write.
//!
//! # Design notes
//!
//! Out-of-window offsets are a driver bug, not peer input (offsets come from
//! `registers.rs` constants). [`Mmio32`] still checks every offset: a read
//! outside its window yields 0 and a write is dropped, so no safe call can
//! reach memory outside the device.
#![allow(unsafe_code)]

use core::marker::PhantomData;
use core::ptr::NonNull;

/// 32-bit register access at a byte offset from a peripheral base.
///
/// The methods are safe: once an implementation exists, reading or writing a
/// register of that peripheral cannot break memory safety by itself.
///
/// # Implementation safety
///
/// Implementors promise that:
/// 1. each in-window, 4-byte-aligned offset reaches the same device register
///    (or model register) every time, and no other memory;
/// 2. accesses are neither merged, split, elided nor reordered with each
///    other;
/// 3. a `write` issued after [`io_wmb`](crate::barrier::io_wmb) is not
///    observed by the device before the normal-memory writes that precede
///    the barrier, and a `read` followed by
///    [`io_rmb`](crate::barrier::io_rmb) completes before the normal-memory
///    reads that follow the barrier (this is what lets a driver ring a
///    doorbell after publishing a ring entry, and read the entries a
///    doorbell announced);
/// 4. offsets outside the window never touch memory.
///
/// *NOTE*: `core::sync::atomic::fence` is **not** enough for (3) on real
/// hardware. `fence(Release)` is `dmb ish` on AArch64 and `fence rw,w` on
/// RISC-V; neither orders a normal-memory store before a store to a Device
/// / I/O region. Drivers call the [`barrier`](crate::barrier) functions,
/// which emit the instruction that does (`dmb oshst`, `fence w,o`, `sync`,
/// ...); a model implementation must make the same promise for them (on the
/// host they are `fence(SeqCst)`).
pub unsafe trait Regs32: Copy {
    /// Reads the 32-bit register at `offset` (bytes).
    fn read(self, offset: usize) -> u32;
    /// Writes the 32-bit register at `offset` (bytes).
    fn write(self, offset: usize, value: u32);
    /// The I/O write barrier, called right before the register write that
    /// rings a doorbell. The default is [`io_wmb`](crate::barrier::io_wmb),
    /// the instruction of the target; a model overrides it to order its
    /// simulated core's buffered stores (`crate::sim_order`).
    #[inline(always)]
    fn io_wmb(self) {
        crate::barrier::io_wmb();
    }
    /// The I/O read barrier, called right after the register read that
    /// observed a doorbell. The default is
    /// [`io_rmb`](crate::barrier::io_rmb); a model overrides it as
    /// [`Regs32::io_wmb`].
    #[inline(always)]
    fn io_rmb(self) {
        crate::barrier::io_rmb();
    }
}

/// 64-bit register access at a byte offset (OCTEON CSRs).
///
/// # Implementation safety
///
/// The same promises as [`Regs32`], for 8-byte-aligned offsets, including
/// (3): ordering against normal memory comes from
/// [`io_wmb`](crate::barrier::io_wmb) / [`io_rmb`](crate::barrier::io_rmb),
/// not from `core` fences (on OCTEON both are `sync`).
pub unsafe trait Regs64: Copy {
    /// Reads the 64-bit register at `offset` (bytes).
    fn read(self, offset: usize) -> u64;
    /// Writes the 64-bit register at `offset` (bytes).
    fn write(self, offset: usize, value: u64);
    /// As [`Regs32::io_wmb`].
    #[inline(always)]
    fn io_wmb(self) {
        crate::barrier::io_wmb();
    }
    /// As [`Regs32::io_rmb`].
    #[inline(always)]
    fn io_rmb(self) {
        crate::barrier::io_rmb();
    }
}

macro_rules! mmio {
    ($name:ident, $ty:ty, $trait:ident, $bytes:literal) => {
        #[doc = concat!("Memory-mapped ", stringify!($ty), " registers: volatile accesses through a raw base pointer.")]
        ///
        /// Never forms a reference to device memory (the soundness problem of
        /// reference-based register blocks). `Copy`, `Send` and not `Sync`:
        /// ownership of a channel is carried by the driver's handle types, the
        /// register view is only an address.
        #[derive(Debug, Clone, Copy)]
        pub struct $name {
            base: NonNull<$ty>,
            len: usize,
            _not_sync: PhantomData<*mut ()>,
        }

        impl $name {
            /// Creates a register view over `len` bytes at `base`.
            ///
            /// # Safety
            ///
            /// 1. A device of the kind the driver expects is mapped at `base`
            ///    for at least `len` bytes, and stays mapped while any copy of
            ///    this value exists.
            /// 2. `base` is aligned to the register width.
            /// 3. Nothing else accesses those registers in a conflicting way
            ///    (one driver instance per peripheral).
            #[must_use]
            pub const unsafe fn new(base: NonNull<$ty>, len: usize) -> Self {
                Self { base, len, _not_sync: PhantomData }
            }

            /// The window length in bytes.
            #[must_use]
            pub const fn len(&self) -> usize {
                self.len
            }

            /// Whether the window is empty.
            #[must_use]
            pub const fn is_empty(&self) -> bool {
                self.len == 0
            }

            fn in_window(self, offset: usize) -> bool {
                offset % $bytes == 0
                    && offset.checked_add($bytes).is_some_and(|end| end <= self.len)
            }
        }

        // SAFETY: the pointer is an address of device registers, not of data
        // owned by a thread; moving the view to another context (for example an
        // interrupt handler) is how drivers hand over channels. Not `Sync`:
        // shared use from two contexts goes through the driver's handles.
        unsafe impl Send for $name {}

        // SAFETY: (1) comes from the `new` contract; (2) volatile accesses
        // are never merged, split, elided or reordered with each other; (3)
        // the window is a device (`new` contract, item 1), and the barrier
        // functions emit the instruction that orders normal memory against
        // device accesses on each architecture (`crate::barrier`); (4)
        // `in_window` rejects every offset outside `len` or misaligned.
        unsafe impl $trait for $name {
            #[inline]
            fn read(self, offset: usize) -> $ty {
                if !self.in_window(offset) {
                    return 0;
                }
                // SAFETY: offset is aligned and inside the mapped window (checked
                // above; mapping guaranteed by `new`'s contract). No reference is
                // created.
                unsafe { self.base.byte_add(offset).as_ptr().read_volatile() }
            }

            #[inline]
            fn write(self, offset: usize, value: $ty) {
                if !self.in_window(offset) {
                    return;
                }
                // SAFETY: as in `read`.
                unsafe { self.base.byte_add(offset).as_ptr().write_volatile(value) }
            }
        }
    };
}

mmio!(Mmio32, u32, Regs32, 4);
mmio!(Mmio64, u64, Regs64, 8);

/// Interrupt-safe read-modify-write of a register shared by several handles.
///
/// Runs `f` on the current value and writes the result inside a
/// `critical_section`, so an interrupt handler owning another channel of the
/// same peripheral cannot interleave its own read-modify-write. Use it only
/// for registers that this core alone writes (for example the MU control
/// register of this core's side): a critical section does not exclude the
/// other core.
pub fn modify_shared<R: Regs32>(regs: R, offset: usize, f: impl FnOnce(u32) -> u32) {
    critical_section::with(|_| {
        let value = regs.read(offset);
        regs.write(offset, f(value));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mmio_reads_and_writes_through_volatile_pointer() {
        let mut words = [0u32; 4];
        let base = NonNull::from(&mut words).cast::<u32>();
        // SAFETY: `words` lives for the whole test, is 4-aligned and nothing
        // else touches it while `regs` is used.
        let regs = unsafe { Mmio32::new(base, 16) };
        regs.write(4, 0xdead_beef);
        modify_shared(regs, 4, |v| v | 1);
        assert_eq!(regs.read(4), 0xdead_beef);
        regs.write(12, 7);
        assert_eq!(regs.read(12), 7);
        assert_eq!(words, [0, 0xdead_beef, 0, 7]);
    }

    #[test]
    fn mmio_ignores_offsets_outside_window() {
        let mut words = [1u32; 4];
        let base = NonNull::from(&mut words).cast::<u32>();
        // SAFETY: as above.
        let regs = unsafe { Mmio32::new(base, 8) };
        assert_eq!(regs.read(8), 0);
        assert_eq!(regs.read(2), 0);
        regs.write(8, 5);
        assert_eq!(words, [1, 1, 1, 1]);
    }

    #[test]
    fn mmio64_round_trip() {
        let mut words = [0u64; 2];
        let base = NonNull::from(&mut words).cast::<u64>();
        // SAFETY: as above.
        let regs = unsafe { Mmio64::new(base, 16) };
        regs.write(8, 1 << 40);
        assert_eq!(regs.read(8), 1 << 40);
        assert_eq!(words[1], 1 << 40);
    }
}
