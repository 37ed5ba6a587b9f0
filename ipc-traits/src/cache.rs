//! Cache maintenance over line-aligned ranges.
//!
//! Shared memory between a Cortex-A and a Cortex-M (or the XuanTie E907) is
//! usually not coherent (shared/docs/hw/cache-and-wake.md §0). The sender
//! cleans the lines it wrote before ringing the doorbell; the receiver
//! invalidates the lines it is about to read. [`CacheMaintenance`] is that
//! contract, with one implementation per core family:
//!
//! | type | core | line (alignment granule) | compiled on |
//! |---|---|---|---|
//! | [`Coherent`] | host, OCTEON, any non-cacheable mapping | 1 | everywhere |
//! | `Scb` | Cortex-M7 (i.MX8MN/8MP) | 32 | `target_arch = "arm"`, bare metal |
//! | [`ImxLmem`] | i.MX8MM/8MQ Cortex-M4 LMEM | 16 | everywhere (it is MMIO over [`Regs32`]) |
//! | `ArmDc` | ARMv8-A (`DC CVAC/IVAC/CIVAC`), ARMv7-A (`DCCMVAC`...) | 64 | `aarch64`; `arm` with feature `armv7a` |
//! | `E907` | XuanTie E907 (V853) | 32 | `riscv32` |
//!
//! A [`LineRange<C>`] is a range proven aligned to `C::LINE` at construction,
//! and it carries `C` in its type: a range checked for one cache cannot be
//! handed to another with a larger line.
//!
//! # Design notes
//!
//! - `clean` is safe: writing back is never harmful. `invalidate` is `unsafe`
//!   (the Cortex-M crate split): it discards dirty lines, so the caller must
//!   own every byte of the range. Safe wrappers exist where ownership is a
//!   type invariant ([`crate::shm::RawRegion`], [`crate::buf::ShmBuf`]).
//! - `LINE` is the *alignment granule*; implementations may step in smaller
//!   units when the real line size is uncertain (E907) or read it from the
//!   hardware (`ArmDc`), and refuse to run when the real line is larger.
//! - OCTEON is coherent (§5) and uses [`Coherent`], whose barrier compiles to
//!   `sync` on MIPS; `syncw` needs inline assembly not yet stable on mips64.
#![allow(unsafe_code)]

use core::marker::PhantomData;
use core::sync::atomic::{compiler_fence, fence, Ordering};

#[cfg(doc)]
use crate::regs::Regs32;

/// Cache maintenance by address over line-aligned ranges.
///
/// # For implementors
///
/// Each operation must complete (and be ordered with later memory accesses,
/// DSB or equivalent) before it returns: a caller that cleans and then rings
/// a doorbell relies on the data having reached the point of coherency.
pub trait CacheMaintenance: Sized {
    /// The alignment granule of every range (a power of two, at least the
    /// real line size of the cache).
    const LINE: usize;

    /// Whether every operation is a no-op (the memory is coherent with the
    /// peer or not cached). When `true`, callers may skip maintenance
    /// altogether at compile time, range arithmetic included
    /// ([`crate::shm::SharedMemory::COHERENT`] forwards it); implementations
    /// that do real maintenance must leave it `false`.
    const COHERENT: bool = false;

    /// Writes back every dirty line of `range` to memory.
    fn clean(&self, range: LineRange<Self>);

    /// Discards every line of `range` so that the next read fetches memory.
    ///
    /// # Safety
    ///
    /// Dirty data in `range` is lost. The caller must own every byte of
    /// `range` (no Rust object it does not control lives there) and must
    /// accept losing any local write to it not yet cleaned.
    unsafe fn invalidate(&self, range: LineRange<Self>);

    /// Writes back and then discards every line of `range`. Safe: no data is
    /// lost, memory ends up holding what the CPU last wrote.
    fn clean_invalidate(&self, range: LineRange<Self>);
}

/// A range of addresses aligned to `C::LINE` at both ends; cannot be built
/// unaligned.
pub struct LineRange<C> {
    start: usize,
    len: usize,
    _cache: PhantomData<fn() -> C>,
}

impl<C> Clone for LineRange<C> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<C> Copy for LineRange<C> {}
impl<C> PartialEq for LineRange<C> {
    fn eq(&self, other: &Self) -> bool {
        self.start == other.start && self.len == other.len
    }
}
impl<C> Eq for LineRange<C> {}
impl<C> core::fmt::Debug for LineRange<C> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "LineRange({:#x}..{:#x})",
            self.start,
            self.start.wrapping_add(self.len)
        )
    }
}

impl<C: CacheMaintenance> LineRange<C> {
    const LINE_IS_POWER_OF_TWO: () = assert!(C::LINE.is_power_of_two());

    /// The range `start..start + len`, or `None` if either end is not aligned
    /// to `C::LINE` or the range wraps the address space.
    #[must_use]
    pub const fn new(start: usize, len: usize) -> Option<Self> {
        let () = Self::LINE_IS_POWER_OF_TWO;
        let mask = C::LINE - 1;
        if start & mask != 0 || len & mask != 0 || start.checked_add(len).is_none() {
            return None;
        }
        Some(Self {
            start,
            len,
            _cache: PhantomData,
        })
    }

    /// The smallest aligned range covering `start..start + len` (for
    /// cleaning, where touching neighbouring lines is harmless), or `None` if
    /// it would wrap the address space.
    #[must_use]
    pub const fn covering(start: usize, len: usize) -> Option<Self> {
        let () = Self::LINE_IS_POWER_OF_TWO;
        let mask = C::LINE - 1;
        let Some(end) = start.checked_add(len) else {
            return None;
        };
        let Some(end) = end.checked_add(mask) else {
            return None;
        };
        let first = start & !mask;
        Some(Self {
            start: first,
            len: (end & !mask) - first,
            _cache: PhantomData,
        })
    }

    /// Re-checks this range for another cache (`None` if `D::LINE` is larger
    /// and the range is not aligned to it).
    #[must_use]
    pub const fn retarget<D: CacheMaintenance>(self) -> Option<LineRange<D>> {
        LineRange::<D>::new(self.start, self.len)
    }

    /// The first address.
    #[must_use]
    pub const fn start(&self) -> usize {
        self.start
    }

    /// The length in bytes (a multiple of `C::LINE`).
    #[must_use]
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Whether the range is empty.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The start address of every `step`-byte unit of the range (`step` a
    /// power of two no larger than `C::LINE`; larger values step by
    /// `C::LINE`).
    pub fn units(&self, step: usize) -> impl Iterator<Item = usize> {
        let step = if step.is_power_of_two() && step <= C::LINE {
            step
        } else {
            C::LINE
        };
        (self.start..self.start + self.len).step_by(step)
    }
}

/// No maintenance: coherent systems (OCTEON, the host) and non-cacheable
/// mappings.
///
/// Each operation is only a compiler fence: it keeps the compiler from
/// moving memory accesses across the point where a non-coherent core would
/// maintain its cache, and costs no instruction. Its
/// [`CacheMaintenance::COHERENT`] is `true`, so the rings and buffers skip
/// the calls (and the line arithmetic in front of them) at compile time;
/// nothing relies on the compiler fence for ordering. Ordering between the cores
/// comes from where it belongs: the ring's release stores and acquire loads,
/// its explicit fences around notification suppression, and the fences the
/// mailbox drivers issue before a doorbell (a full fence here cost 14
/// barriers per message in the benchmark, for nothing).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Coherent;

impl CacheMaintenance for Coherent {
    const LINE: usize = 1;
    const COHERENT: bool = true;
    #[inline]
    fn clean(&self, _range: LineRange<Self>) {
        compiler_fence(Ordering::SeqCst);
    }
    #[inline]
    unsafe fn invalidate(&self, _range: LineRange<Self>) {
        compiler_fence(Ordering::SeqCst);
    }
    #[inline]
    fn clean_invalidate(&self, _range: LineRange<Self>) {
        compiler_fence(Ordering::SeqCst);
    }
}

/// Data synchronisation barrier of the core we run on (a full fence where
/// no instruction wrapper exists).
#[inline]
fn dsb() {
    #[cfg(target_arch = "aarch64")]
    // SAFETY: `dsb sy` only waits for outstanding memory accesses; it touches
    // no register or memory the compiler tracks.
    unsafe {
        core::arch::asm!("dsb sy", options(nostack, preserves_flags));
    }
    #[cfg(target_arch = "arm")]
    // SAFETY: as above (ARMv7 `dsb`).
    unsafe {
        core::arch::asm!("dsb sy", options(nostack, preserves_flags));
    }
    fence(Ordering::SeqCst);
}

// ---------------------------------------------------------------------------
// i.MX8MM / 8MQ Cortex-M4: LMEM system-bus cache (cache-and-wake.md §2)
// ---------------------------------------------------------------------------

/// LMEM register offsets and bits (shared/docs/hw/cache-and-wake.md §2).
pub mod lmem {
    /// LMEM base on the i.MX8MM/8MQ Cortex-M4 (§2 "LMEM base").
    pub const BASE: usize = 0xE008_2000;
    /// System-bus cache line control register (§2 table, offset 0x804).
    pub const PSCLCR: usize = 0x804;
    /// System-bus cache search address register (§2 table, offset 0x808).
    pub const PSCSAR: usize = 0x808;
    /// xCLCR.LCMD shift (bits 25:24): 1 invalidate, 2 push, 3 clear (§2).
    pub const LCMD_SHIFT: u32 = 24;
    /// LCMD value: invalidate.
    pub const LCMD_INVALIDATE: u32 = 1;
    /// LCMD value: push (clean).
    pub const LCMD_PUSH: u32 = 2;
    /// LCMD value: clear (clean + invalidate).
    pub const LCMD_CLEAR: u32 = 3;
    /// xCLCR.LADSEL (bit 26): 1 = the address comes from xCSAR (physical).
    pub const LADSEL: u32 = 1 << 26;
    /// xCSAR.LGO (bit 0): start the line command; hardware clears it.
    pub const LGO: u32 = 1 << 0;
    /// The LMEM line size used by the SDK (16 bytes, §2 step 4).
    pub const LINE: usize = 16;
    /// Polls of LGO before an operation is declared stuck.
    pub const POLL_LIMIT: u32 = 10_000;
}

/// The i.MX8MM/8MQ Cortex-M4 LMEM system-bus cache, by physical address.
///
/// Generic over [`Regs32`] so the command sequence is tested on the host
/// against a register model. Line commands are polled with a bound
/// ([`lmem::POLL_LIMIT`]); a command that never completes is counted
/// ([`ImxLmem::stuck_commands`]) instead of hanging the core.
///
/// Note: the usual rpmsg window 0xB800_0000 is Device memory in the default
/// ARMv7-M map and therefore not cached (§2, inferred); this type is for
/// systems whose MPU makes the window cacheable.
#[derive(Debug)]
pub struct ImxLmem<R> {
    regs: R,
    stuck: core::sync::atomic::AtomicU32,
}

impl<R: crate::regs::Regs32> ImxLmem<R> {
    /// Drives the LMEM controller through `regs` (base [`lmem::BASE`]).
    pub const fn new(regs: R) -> Self {
        Self {
            regs,
            stuck: core::sync::atomic::AtomicU32::new(0),
        }
    }

    /// Line commands that did not complete within [`lmem::POLL_LIMIT`] polls.
    pub fn stuck_commands(&self) -> u32 {
        self.stuck.load(Ordering::Relaxed)
    }

    fn line_command(&self, range: LineRange<Self>, lcmd: u32) {
        dsb();
        for addr in range.units(lmem::LINE) {
            // §2 by-address sequence: LCMD + LADSEL, then address | LGO, then
            // poll LGO. Addresses are 32-bit on the M4.
            self.regs
                .write(lmem::PSCLCR, (lcmd << lmem::LCMD_SHIFT) | lmem::LADSEL);
            self.regs
                .write(lmem::PSCSAR, (addr as u32 & !0x3) | lmem::LGO);
            let mut polls = 0;
            while self.regs.read(lmem::PSCSAR) & lmem::LGO != 0 {
                polls += 1;
                if polls >= lmem::POLL_LIMIT {
                    self.stuck.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            }
        }
        dsb();
    }
}

impl<R: crate::regs::Regs32> CacheMaintenance for ImxLmem<R> {
    const LINE: usize = lmem::LINE;
    fn clean(&self, range: LineRange<Self>) {
        self.line_command(range, lmem::LCMD_PUSH);
    }
    unsafe fn invalidate(&self, range: LineRange<Self>) {
        self.line_command(range, lmem::LCMD_INVALIDATE);
    }
    fn clean_invalidate(&self, range: LineRange<Self>) {
        self.line_command(range, lmem::LCMD_CLEAR);
    }
}

// ---------------------------------------------------------------------------
// Cortex-M7: SCB by-address maintenance (cache-and-wake.md §1)
// ---------------------------------------------------------------------------

#[cfg(any(
    all(target_arch = "arm", target_os = "none", not(feature = "armv7a")),
    doc
))]
pub use scb::Scb;

#[cfg(any(
    all(target_arch = "arm", target_os = "none", not(feature = "armv7a")),
    doc
))]
mod scb {
    use super::{dsb, CacheMaintenance, LineRange};

    /// DCIMVAC: invalidate D-cache line by address to PoC (§1 table).
    const DCIMVAC: usize = 0xE000_EF5C;
    /// DCCMVAC: clean D-cache line by address to PoC (§1 table).
    const DCCMVAC: usize = 0xE000_EF68;
    /// DCCIMVAC: clean and invalidate D-cache line by address (§1 table).
    const DCCIMVAC: usize = 0xE000_EF70;

    /// Cortex-M7 data cache maintenance through the SCB by-address registers
    /// (32-byte lines, §1).
    #[derive(Debug)]
    pub struct Scb {
        _private: (),
    }

    impl Scb {
        /// Takes the SCB cache-maintenance registers.
        ///
        /// # Safety
        ///
        /// The core is a Cortex-M7 (the registers exist and the line is 32
        /// bytes), and no other code issues set/way operations concurrently.
        pub const unsafe fn new() -> Self {
            Self { _private: () }
        }

        fn by_line(&self, reg: usize, range: LineRange<Self>) {
            dsb();
            for addr in range.units(32) {
                // SAFETY: `reg` is one of the write-only SCS maintenance
                // registers (§1), present on a Cortex-M7 per `new`'s contract;
                // the write takes an address operand and touches no Rust object.
                unsafe { (reg as *mut u32).write_volatile(addr as u32) };
            }
            dsb();
            // SAFETY: `isb` only flushes the pipeline.
            unsafe { core::arch::asm!("isb", options(nostack, preserves_flags)) };
        }
    }

    impl CacheMaintenance for Scb {
        const LINE: usize = 32;
        fn clean(&self, range: LineRange<Self>) {
            self.by_line(DCCMVAC, range);
        }
        unsafe fn invalidate(&self, range: LineRange<Self>) {
            self.by_line(DCIMVAC, range);
        }
        fn clean_invalidate(&self, range: LineRange<Self>) {
            self.by_line(DCCIMVAC, range);
        }
    }
}

// ---------------------------------------------------------------------------
// ARMv8-A / ARMv7-A: DC operations (cache-and-wake.md §3)
// ---------------------------------------------------------------------------

#[cfg(any(target_arch = "aarch64", all(target_arch = "arm", feature = "armv7a")))]
pub use arm_dc::ArmDc;

#[cfg(any(target_arch = "aarch64", all(target_arch = "arm", feature = "armv7a")))]
mod arm_dc {
    use super::{dsb, CacheMaintenance, LineRange};

    /// A-profile data cache maintenance by virtual address to the point of
    /// coherency (§3). Ranges are aligned to 64 bytes (the A53/A7 line);
    /// the loop steps by the line size read from `CTR` at construction.
    #[derive(Debug)]
    pub struct ArmDc {
        step: usize,
    }

    impl ArmDc {
        /// Reads the smallest D-cache line from `CTR(_EL0).DminLine` (§3:
        /// bytes = `4 << DminLine`). `None` if it is larger than 64 bytes, in
        /// which case 64-byte-aligned ranges would not be line-aligned.
        ///
        /// # Safety
        ///
        /// Runs at a privilege level that may execute `DC IVAC` (EL1 or
        /// higher; PL1 on ARMv7-A).
        pub unsafe fn new() -> Option<Self> {
            let ctr: usize;
            #[cfg(target_arch = "aarch64")]
            // SAFETY: reading CTR_EL0 has no side effect.
            unsafe {
                core::arch::asm!("mrs {}, ctr_el0", out(reg) ctr, options(nomem, nostack, preserves_flags));
            }
            #[cfg(target_arch = "arm")]
            // SAFETY: reading CTR (CP15 c0, c0, 1) has no side effect.
            unsafe {
                core::arch::asm!("mrc p15, 0, {}, c0, c0, 1", out(reg) ctr, options(nomem, nostack, preserves_flags));
            }
            let step = 4usize << ((ctr >> 16) & 0xf);
            (step <= Self::LINE).then_some(Self { step })
        }

        fn each(&self, range: LineRange<Self>, op: unsafe fn(usize)) {
            dsb();
            for addr in range.units(self.step) {
                // SAFETY: `op` is one of the by-VA maintenance wrappers below;
                // the caller of the trait method upholds its contract for the
                // whole range.
                unsafe { op(addr) };
            }
            dsb();
        }
    }

    macro_rules! dc_op {
        ($name:ident, $a64:literal, $a32:literal) => {
            /// # Safety
            ///
            /// `addr` lies in a range the caller may maintain.
            unsafe fn $name(addr: usize) {
                #[cfg(target_arch = "aarch64")]
                // SAFETY: maintenance by VA; contract forwarded from the caller.
                unsafe {
                    core::arch::asm!($a64, in(reg) addr, options(nostack, preserves_flags));
                }
                #[cfg(target_arch = "arm")]
                // SAFETY: as above (CP15 form).
                unsafe {
                    core::arch::asm!($a32, in(reg) addr, options(nostack, preserves_flags));
                }
            }
        };
    }
    dc_op!(dc_cvac, "dc cvac, {}", "mcr p15, 0, {}, c7, c10, 1");
    dc_op!(dc_ivac, "dc ivac, {}", "mcr p15, 0, {}, c7, c6, 1");
    dc_op!(dc_civac, "dc civac, {}", "mcr p15, 0, {}, c7, c14, 1");

    impl CacheMaintenance for ArmDc {
        const LINE: usize = 64;
        fn clean(&self, range: LineRange<Self>) {
            self.each(range, dc_cvac);
        }
        unsafe fn invalidate(&self, range: LineRange<Self>) {
            self.each(range, dc_ivac);
        }
        fn clean_invalidate(&self, range: LineRange<Self>) {
            self.each(range, dc_civac);
        }
    }
}

// ---------------------------------------------------------------------------
// XuanTie E907 (V853): T-Head CMO instructions (cache-and-wake.md §4.1)
// ---------------------------------------------------------------------------

#[cfg(target_arch = "riscv32")]
pub use e907::E907;

#[cfg(target_arch = "riscv32")]
mod e907 {
    use super::{CacheMaintenance, LineRange};

    /// XuanTie E907 D-cache maintenance by physical address (VA = PA on the
    /// MMU-less E907), followed by `sync.s`.
    ///
    /// UNCERTAIN(cache-and-wake.md §4): the V853 E907 line size is 32 bytes
    /// "likely", with an older CSI stepping by 16. Ranges are aligned to 32
    /// and the loop steps by 16, which is correct for either value (a 32-byte
    /// line is maintained twice, never skipped).
    #[derive(Debug)]
    pub struct E907 {
        _private: (),
    }

    impl E907 {
        /// Takes the E907 cache maintenance instructions.
        ///
        /// # Safety
        ///
        /// The core is a XuanTie E907 (the custom-0 encodings below are its
        /// CMO instructions, §4.1) running in machine mode.
        pub const unsafe fn new() -> Self {
            Self { _private: () }
        }
    }

    macro_rules! cmo {
        // Words for rs1 = a5 (x15) from the §4.1 table.
        ($name:ident, $word:literal) => {
            fn $name(range: LineRange<E907>) {
                for addr in range.units(16) {
                    // SAFETY: a T-Head CMO on a physical line address; the
                    // trait method's contract covers the range. `a5` holds
                    // the address operand of the fixed encoding.
                    unsafe {
                        core::arch::asm!(concat!(".4byte ", $word), in("a5") addr, options(nostack));
                    }
                }
                // SAFETY: sync.s (0x0190000B, §4.1 [src]) waits for the
                // maintenance to complete; sync.is is not used because its
                // word is UNVERIFIED in the sheet.
                unsafe { core::arch::asm!(".4byte 0x0190000B", options(nostack)) };
            }
        };
    }
    cmo!(dcache_cpa, "0x0297800B");
    cmo!(dcache_ipa, "0x02A7800B");
    cmo!(dcache_cipa, "0x02B7800B");

    impl CacheMaintenance for E907 {
        const LINE: usize = 32;
        fn clean(&self, range: LineRange<Self>) {
            core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
            dcache_cpa(range);
        }
        unsafe fn invalidate(&self, range: LineRange<Self>) {
            dcache_ipa(range);
        }
        fn clean_invalidate(&self, range: LineRange<Self>) {
            core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
            dcache_cipa(range);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::cell::RefCell;

    struct Line16;
    impl CacheMaintenance for Line16 {
        const LINE: usize = 16;
        fn clean(&self, _: LineRange<Self>) {}
        unsafe fn invalidate(&self, _: LineRange<Self>) {}
        fn clean_invalidate(&self, _: LineRange<Self>) {}
    }
    struct Line64;
    impl CacheMaintenance for Line64 {
        const LINE: usize = 64;
        fn clean(&self, _: LineRange<Self>) {}
        unsafe fn invalidate(&self, _: LineRange<Self>) {}
        fn clean_invalidate(&self, _: LineRange<Self>) {}
    }

    #[test]
    fn line_range_cannot_be_built_unaligned() {
        assert!(LineRange::<Line16>::new(0x1000, 32).is_some());
        assert!(LineRange::<Line16>::new(0x1008, 32).is_none());
        assert!(LineRange::<Line16>::new(0x1000, 24).is_none());
        assert!(LineRange::<Line16>::new(usize::MAX - 15, 32).is_none());
        assert!(LineRange::<Coherent>::new(3, 5).is_some());
    }

    #[test]
    fn covering_rounds_outward_and_retarget_rechecks() {
        let r = LineRange::<Line16>::covering(0x1008, 9).unwrap();
        assert_eq!((r.start(), r.len()), (0x1000, 32));
        assert!(LineRange::<Line16>::covering(usize::MAX - 3, 8).is_none());
        assert!(r.retarget::<Line64>().is_none());
        let big = LineRange::<Line16>::new(0x1000, 128).unwrap();
        assert_eq!(big.retarget::<Line64>().unwrap().len(), 128);
        assert_eq!(
            r.units(8).collect::<Vec<_>>(),
            [0x1000, 0x1008, 0x1010, 0x1018]
        );
        assert_eq!(r.units(3).collect::<Vec<_>>(), [0x1000, 0x1010]);
    }

    /// Records LMEM register traffic; LGO stays set for `busy` polls.
    #[derive(Clone, Copy)]
    struct LmemModel<'a>(&'a RefCell<(Vec<(usize, u32)>, u32)>);

    // SAFETY: a test model: every offset maps to the same recorded state and
    // touches no memory outside it.
    unsafe impl crate::regs::Regs32 for LmemModel<'_> {
        fn read(self, offset: usize) -> u32 {
            let mut s = self.0.borrow_mut();
            if offset == lmem::PSCSAR && s.1 > 0 {
                s.1 -= 1;
                return lmem::LGO;
            }
            0
        }
        fn write(self, offset: usize, value: u32) {
            self.0.borrow_mut().0.push((offset, value));
        }
    }

    #[test]
    fn lmem_issues_one_line_command_per_16_bytes() {
        let state = RefCell::new((Vec::new(), 3));
        let lmem = ImxLmem::new(LmemModel(&state));
        lmem.clean(LineRange::new(0x2000_0100, 32).unwrap());
        let push = (lmem::LCMD_PUSH << 24) | lmem::LADSEL;
        assert_eq!(
            state.borrow().0,
            [
                (lmem::PSCLCR, push),
                (lmem::PSCSAR, 0x2000_0101),
                (lmem::PSCLCR, push),
                (lmem::PSCSAR, 0x2000_0111)
            ]
        );
        assert_eq!(lmem.stuck_commands(), 0);
        state.borrow_mut().0.clear();
        // SAFETY: the model owns no memory; nothing is discarded.
        unsafe { lmem.invalidate(LineRange::new(0x2000_0000, 16).unwrap()) };
        assert_eq!(state.borrow().0[0], (lmem::PSCLCR, (1 << 24) | (1 << 26)));
    }

    #[test]
    fn lmem_stuck_command_is_bounded_and_counted() {
        let state = RefCell::new((Vec::new(), u32::MAX));
        let lmem = ImxLmem::new(LmemModel(&state));
        lmem.clean_invalidate(LineRange::new(0x2000_0000, 16).unwrap());
        assert_eq!(lmem.stuck_commands(), 1);
        assert_eq!(state.borrow().0[0].1 >> 24 & 3, lmem::LCMD_CLEAR);
    }
}
