//! I/O barriers: ordering between normal (shared) memory and device
//! registers.
//!
//! A doorbell is a store to a device register that tells the peer "the ring
//! entries I just wrote are ready"; its receiving side is a load from a
//! device register that says "the peer published something". Neither is
//! ordered with normal memory by the atomic fences of `core`:
//! `fence(Release)` is `dmb ish` on AArch64 and `fence rw,w` on RISC-V, and
//! neither orders a normal-memory store before a store to a Device / I/O
//! region. Every mailbox backend therefore calls
//!
//! - [`io_wmb`] right before the register write that rings a doorbell, so the
//!   peer (or the device) cannot observe the doorbell before the normal
//!   memory writes that precede the call (ring entries, payloads, indices);
//! - [`io_rmb`] right after the register read (or read-and-acknowledge) that
//!   observed a doorbell, so no normal-memory load after the call can be
//!   satisfied before that register read.
//!
//! These are the same barriers Linux's `writel` / `readl` put around an MMIO
//! access. The one each target gets:
//!
//! | Target | `io_wmb` | `io_rmb` |
//! |---|---|---|
//! | Cortex-M (`arm`, `target_os = "none"`, ARMv6-M/7-M/7E-M/8-M) | `dmb` | `dmb` |
//! | ARMv7-A (`arm` with this crate's `armv7a` feature) | `dmb oshst` | `dmb osh` (ARMv7 has no `oshld`; the full outer-shareable barrier) |
//! | AArch64 | `dmb oshst` | `dmb oshld` |
//! | RISC-V (`riscv32`, `riscv64`) | `fence w,o` | `fence i,r` |
//! | MIPS (OCTEON is `mips64`) | `sync` | `sync` |
//! | anything else (the host: simulations, Miri, Linux user space) | `fence(SeqCst)` | `fence(SeqCst)` |
//!
//! On the host with the `sim` feature each barrier also reaches the
//! simulated cores of the calling thread (`sim_order`, feature `sim`), so a weakly
//! ordered simulation sees exactly the barriers the drivers execute.
//!
//! Facts behind the table:
//!
//! - shared/docs/hw/cache-and-wake.md §0: before publishing (writing an
//!   index or ringing the doorbell) a barrier must follow the writes (DSB /
//!   fence / SYNCW), and consuming follows the doorbell. With the window
//!   mapped non-cacheable (the usual case, §6) "only barriers are needed";
//!   these are those barriers.
//! - cache-and-wake.md §5 and octeon-ciu-mbox.md §5 (OCTEON): the write
//!   buffer can merge and reorder stores, the CSR write goes through the IO
//!   path and "can pass cached stores unless a barrier is used": `SYNCW`, or
//!   `SYNC`, which orders loads too. `sync` is used for both directions.
//! - imx8-mu.md, v853-msgbox.md and am62x-mailbox.md say nothing about
//!   ordering beyond the vendor code they quote; the instructions for Arm and
//!   RISC-V are the ones Linux uses for `writel` / `readl` (arm64
//!   `__iowmb` = `dmb oshst`, `__iormb` ends in `dmb oshld`; RISC-V
//!   `__io_bw` = `fence w,o`, `__io_ar` = `fence i,r`), as recorded in
//!   issue 14. On Cortex-M `dmb` (full system) is the only form ARMv6-M
//!   has and what CMSIS `__DMB()` emits.
//!
//! A 32-bit `arm` bare-metal build without the `armv7a` feature gets the
//! Cortex-M `dmb`; on an ARMv7-A core that is `dmb sy`, stronger than needed
//! but correct.
//!
//! Each barrier is one inline `asm!` block without `nomem`, so it is also a
//! compiler barrier: no memory access is moved across it. Each is a single
//! function so that a simulation can observe the barriers (one entry point
//! per barrier). Drivers reach them through their register handle
//! ([`Regs32::io_wmb`](crate::regs::Regs32::io_wmb) /
//! [`Regs32::io_rmb`](crate::regs::Regs32::io_rmb), which default to these),
//! so a register model may order them differently.
#![allow(unsafe_code)]

/// I/O write barrier: call right before the register write that rings a
/// doorbell.
///
/// The device (and the peer behind it) observes every normal-memory store
/// that precedes the call before any device store that follows it. See the
/// [module documentation](self) for the instruction per target.
#[inline(always)]
pub fn io_wmb() {
    wmb_impl();
}

/// I/O read barrier: call right after the register read that observed a
/// doorbell (a status, a FIFO pop or a read-and-acknowledge).
///
/// Every device load that precedes the call completes before any
/// normal-memory load that follows it, so the ring entries read after the
/// call are at least as new as the doorbell. See the
/// [module documentation](self) for the instruction per target.
#[inline(always)]
pub fn io_rmb() {
    rmb_impl();
}

// --- Cortex-M --------------------------------------------------------------

#[cfg(all(target_arch = "arm", target_os = "none", not(feature = "armv7a")))]
#[inline(always)]
fn wmb_impl() {
    // SAFETY: `dmb` only orders this core's memory accesses; it reads or
    // writes no register or memory. No `nomem`: it is a compiler barrier too.
    unsafe { core::arch::asm!("dmb", options(nostack, preserves_flags)) };
}

#[cfg(all(target_arch = "arm", target_os = "none", not(feature = "armv7a")))]
#[inline(always)]
fn rmb_impl() {
    // SAFETY: as in `wmb_impl`.
    unsafe { core::arch::asm!("dmb", options(nostack, preserves_flags)) };
}

// --- ARMv7-A ---------------------------------------------------------------

#[cfg(all(target_arch = "arm", feature = "armv7a"))]
#[inline(always)]
fn wmb_impl() {
    // SAFETY: `dmb oshst` only orders this core's stores (outer shareable
    // domain, which includes Device memory); no register or memory is
    // touched. No `nomem`: it is a compiler barrier too.
    unsafe { core::arch::asm!("dmb oshst", options(nostack, preserves_flags)) };
}

#[cfg(all(target_arch = "arm", feature = "armv7a"))]
#[inline(always)]
fn rmb_impl() {
    // SAFETY: `dmb osh` only orders this core's accesses (ARMv7 has no
    // load-only `oshld` option); no register or memory is touched.
    unsafe { core::arch::asm!("dmb osh", options(nostack, preserves_flags)) };
}

// --- AArch64 ---------------------------------------------------------------

#[cfg(target_arch = "aarch64")]
#[inline(always)]
fn wmb_impl() {
    // SAFETY: `dmb oshst` only orders this core's stores; it reads or writes
    // no register or memory. No `nomem`: it is a compiler barrier too.
    unsafe { core::arch::asm!("dmb oshst", options(nostack, preserves_flags)) };
}

#[cfg(target_arch = "aarch64")]
#[inline(always)]
fn rmb_impl() {
    // SAFETY: `dmb oshld` only orders this core's loads against later
    // accesses; it reads or writes no register or memory.
    unsafe { core::arch::asm!("dmb oshld", options(nostack, preserves_flags)) };
}

// --- RISC-V ----------------------------------------------------------------

#[cfg(any(target_arch = "riscv32", target_arch = "riscv64"))]
#[inline(always)]
fn wmb_impl() {
    // SAFETY: `fence w,o` orders earlier memory writes before later device
    // outputs; it touches no register or memory. No `nomem`: it is a
    // compiler barrier too.
    unsafe { core::arch::asm!("fence w,o", options(nostack, preserves_flags)) };
}

#[cfg(any(target_arch = "riscv32", target_arch = "riscv64"))]
#[inline(always)]
fn rmb_impl() {
    // SAFETY: `fence i,r` orders earlier device inputs before later memory
    // reads; it touches no register or memory.
    unsafe { core::arch::asm!("fence i,r", options(nostack, preserves_flags)) };
}

// --- MIPS (OCTEON) -----------------------------------------------------------

#[cfg(any(target_arch = "mips", target_arch = "mips64"))]
#[inline(always)]
fn wmb_impl() {
    // SAFETY: `sync` completes this core's earlier loads and stores before
    // later ones (octeon-ciu-mbox.md §5); it touches no register or memory.
    // No `nomem`: it is a compiler barrier too.
    unsafe { core::arch::asm!("sync", options(nostack, preserves_flags)) };
}

#[cfg(any(target_arch = "mips", target_arch = "mips64"))]
#[inline(always)]
fn rmb_impl() {
    // SAFETY: as in `wmb_impl`.
    unsafe { core::arch::asm!("sync", options(nostack, preserves_flags)) };
}

// --- everything else: the host --------------------------------------------------

#[cfg(not(any(
    all(target_arch = "arm", target_os = "none"),
    all(target_arch = "arm", feature = "armv7a"),
    target_arch = "aarch64",
    target_arch = "riscv32",
    target_arch = "riscv64",
    target_arch = "mips",
    target_arch = "mips64",
)))]
#[inline(always)]
fn wmb_impl() {
    core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
    // The simulated cores of this thread see the barrier too (a weakly
    // ordered simulation lands their buffered stores here).
    #[cfg(feature = "sim")]
    crate::sim_order::io_wmb();
}

#[cfg(not(any(
    all(target_arch = "arm", target_os = "none"),
    all(target_arch = "arm", feature = "armv7a"),
    target_arch = "aarch64",
    target_arch = "riscv32",
    target_arch = "riscv64",
    target_arch = "mips",
    target_arch = "mips64",
)))]
#[inline(always)]
fn rmb_impl() {
    core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
    #[cfg(feature = "sim")]
    crate::sim_order::io_rmb();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
    use std::sync::Arc;

    /// Message passing through a payload and a flag standing in for the
    /// doorbell register, both relaxed: the reader that sees the flag and
    /// then calls `io_rmb` always sees the payload written before `io_wmb`.
    /// On x86 this holds anyway; under Miri (`.ci/run miri-ipc-traits`),
    /// whose weak-memory emulation returns stale relaxed values, it fails at
    /// once (seed 0) when the host barriers are empty.
    #[test]
    fn io_barriers_order_payload_and_doorbell() {
        let rounds = if cfg!(miri) { 5 } else { 200 };
        for round in 0..rounds {
            let payload = Arc::new(AtomicU32::new(0));
            let doorbell = Arc::new(AtomicBool::new(false));
            let (p, d) = (Arc::clone(&payload), Arc::clone(&doorbell));
            let writer = std::thread::spawn(move || {
                p.store(round + 1, Ordering::Relaxed);
                io_wmb();
                d.store(true, Ordering::Relaxed);
            });
            let mut spins = 0u32;
            while !doorbell.load(Ordering::Relaxed) {
                spins += 1;
                assert!(spins < 100_000_000, "the writer never rang");
                std::hint::spin_loop();
            }
            io_rmb();
            assert_eq!(payload.load(Ordering::Relaxed), round + 1);
            writer.join().unwrap();
        }
    }
}
