//! The AArch64 bare-metal pieces: entry, MMU, PSCI, event instructions,
//! generic timer, PL011 output, semihosting exit, critical section.
//!
//! QEMU `virt` starts core 0 at the ELF entry in EL1 with the MMU off and
//! the other cores powered off; PSCI `CPU_ON` over `hvc` starts them
//! (docs/toolchain.md, appendix B). With the MMU off every data access is
//! Device-nGnRnE, which is neither cacheable nor weakly ordered, so each
//! core turns its MMU on with an identity map: RAM as Normal write-back
//! memory, inner shareable (the two cores are coherent, and the memory
//! model is the weak one of Normal memory), the first GiB (UART, GIC) as
//! Device.
#![allow(unsafe_code)]

use core::arch::{asm, global_asm};
use core::fmt;

global_asm!(
    r#"
.section .text.boot, "ax"
.global _start
_start:
    mov x1, #(3 << 20)              // CPACR_EL1.FPEN = 0b11: Rust uses FP/SIMD
    msr cpacr_el1, x1
    isb
    mrs x0, mpidr_el1
    and x0, x0, #0xff
    ldr x1, =__stack_top
    mov x2, #0x20000                // 128 KiB of stack per core
    mul x3, x0, x2
    sub sp, x1, x3
    cbnz x0, 3f                     // core 0 zeroes .bss and the shared area
    ldr x1, =__bss_start
    ldr x2, =__bss_end
1:  cmp x1, x2
    b.hs 2f
    str xzr, [x1], #8
    b 1b
2:  ldr x1, =__shared_start
    ldr x2, =__shared_end
4:  cmp x1, x2
    b.hs 3f
    str xzr, [x1], #8
    b 4b
3:  bl rust_main
5:  wfe
    b 5b
"#
);

extern "C" {
    /// The entry point above (for PSCI `CPU_ON`).
    pub fn _start();
}

/// One level-1 translation table (4 KiB granule, 1 GiB blocks).
#[repr(C, align(4096))]
struct Table([u64; 512]);

/// Block descriptor bits (Arm ARM D8.3): valid block, AttrIndx, AF, SH.
const BLOCK: u64 = 0b01;
const AF: u64 = 1 << 10;
const SH_INNER: u64 = 0b11 << 8;
const ATTR_DEVICE: u64 = 0 << 2;
const ATTR_NORMAL: u64 = 1 << 2;
const PXN_UXN: u64 = (1 << 53) | (1 << 54);

/// Identity map of the first 4 GiB: GiB 0 is Device (flash, GIC, PL011),
/// GiB 1..=3 Normal write-back (RAM from 0x4000_0000).
static L1: Table = {
    let mut t = [0u64; 512];
    t[0] = BLOCK | AF | ATTR_DEVICE | PXN_UXN;
    let mut g = 1;
    while g < 4 {
        t[g] = ((g as u64) << 30) | BLOCK | AF | SH_INNER | ATTR_NORMAL;
        g += 1;
    }
    Table(t)
};

/// Turns this core's MMU and caches on with [`L1`].
///
/// # Safety
///
/// Called once per core, at start-up, in EL1, before anything relies on
/// memory attributes; the identity map keeps every address where it was.
pub unsafe fn enable_mmu() {
    // MAIR: attr0 Device-nGnRnE (0x00), attr1 Normal inner/outer WB RW-alloc.
    let mair: u64 = 0xFF << 8;
    // TCR: T0SZ = 25 (39-bit VA, walk starts at level 1), IRGN0/ORGN0 = WB
    // WA, SH0 = inner, TG0 = 4 KiB, EPD1 = 1 (no TTBR1 walks), IPS = 40 bits.
    let tcr: u64 = 25 | (0b01 << 8) | (0b01 << 10) | (0b11 << 12) | (1 << 23) | (0b010 << 32);
    let ttbr = core::ptr::addr_of!(L1) as u64;
    // SAFETY: programs this core's translation registers with a valid
    // identity map (the table is a static, 4 KiB aligned), invalidates
    // stale TLB entries, then sets SCTLR_EL1.{M, C, I}; addresses do not
    // move, so execution continues at the next instruction.
    unsafe {
        asm!(
            "msr mair_el1, {mair}",
            "msr tcr_el1, {tcr}",
            "msr ttbr0_el1, {ttbr}",
            "dsb ish",
            "isb",
            "tlbi vmalle1",
            "dsb ish",
            "isb",
            "mrs {t}, sctlr_el1",
            "orr {t}, {t}, #(1 << 0)",
            "orr {t}, {t}, #(1 << 2)",
            "orr {t}, {t}, #(1 << 12)",
            "msr sctlr_el1, {t}",
            "isb",
            mair = in(reg) mair,
            tcr = in(reg) tcr,
            ttbr = in(reg) ttbr,
            t = out(reg) _,
            options(nostack),
        );
    }
}

/// This core's number (`MPIDR_EL1.Aff0`).
pub fn core_id() -> u64 {
    let v: u64;
    // SAFETY: reads an identification register.
    unsafe { asm!("mrs {}, mpidr_el1", out(reg) v, options(nomem, nostack)) };
    v & 0xff
}

/// PSCI `CPU_ON` (SMC64 function 0xC400_0003) over `hvc`, QEMU virt's
/// conduit; 0 on success.
pub fn cpu_on(target: u64, entry: u64) -> i64 {
    let mut x0: u64 = 0xC400_0003;
    // SAFETY: a PSCI call to the hypervisor firmware QEMU emulates; it
    // starts `target` at `entry` and changes nothing on this core except
    // the result register (x0..x3 are clobbered per SMCCC).
    unsafe {
        asm!(
            "hvc #0",
            inout("x0") x0,
            inout("x1") target => _,
            inout("x2") entry => _,
            inout("x3") 0u64 => _,
            options(nostack),
        );
    }
    x0 as i64
}

/// Sends an event to every core (ends their `wfe`).
pub fn sev() {
    // SAFETY: `dsb` then `sev`: orders earlier stores, signals an event.
    unsafe { asm!("dsb ish", "sev", options(nostack, preserves_flags)) };
}

/// Waits for an event (or returns at once if one is pending).
pub fn wfe() {
    // SAFETY: waits for an event; no memory or register effect.
    unsafe { asm!("wfe", options(nomem, nostack, preserves_flags)) };
}

/// Enables the generic timer's event stream on this core (an event about
/// every 2^16 counter ticks), so every `wfe` ends within about a
/// millisecond even if an event is missed.
pub fn enable_event_stream() {
    // CNTKCTL_EL1: EVNTEN (bit 2), EVNTI = 15 (bits 7:4), keep EL0 access.
    // SAFETY: changes only when this core's timer generates events.
    unsafe {
        asm!(
            "mrs {t}, cntkctl_el1",
            "orr {t}, {t}, #(1 << 2)",
            "orr {t}, {t}, #(15 << 4)",
            "msr cntkctl_el1, {t}",
            "isb",
            t = out(reg) _,
            options(nostack),
        );
    }
}

/// The virtual counter.
pub fn ticks() -> u64 {
    let v: u64;
    // SAFETY: reads the virtual counter (accessible in EL1).
    unsafe { asm!("isb", "mrs {}, cntvct_el0", out(reg) v, options(nostack)) };
    v
}

/// Counter ticks per second.
pub fn tick_hz() -> u64 {
    let v: u64;
    // SAFETY: reads the counter frequency register.
    unsafe { asm!("mrs {}, cntfrq_el0", out(reg) v, options(nomem, nostack)) };
    v.max(1)
}

/// PL011 data register of QEMU virt's UART0.
const UART0_DR: usize = 0x0900_0000;

/// Text output on UART0 (core 0 only).
#[derive(Debug)]
pub struct Uart;

impl fmt::Write for Uart {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            // SAFETY: the PL011 data register, mapped as Device memory by
            // `L1`; a 32-bit write transmits one byte (QEMU's PL011 needs
            // no set-up). Only core 0 prints.
            unsafe { (UART0_DR as *mut u32).write_volatile(u32::from(b)) };
        }
        Ok(())
    }
}

/// Writes one line on UART0.
pub fn say(args: fmt::Arguments<'_>) {
    use fmt::Write as _;
    Uart.write_fmt(args).unwrap_or(());
    Uart.write_str("\n").unwrap_or(());
}

/// Ends the emulation with `code` as QEMU's exit status (semihosting
/// `SYS_EXIT` with `ADP_Stopped_ApplicationExit`, AArch64 form).
pub fn exit(code: u64) -> ! {
    let block: [u64; 2] = [0x20026, code];
    // SAFETY: a semihosting call (`hlt #0xf000`, operation 0x18 in w0, the
    // parameter block in x1); QEMU reads the block and stops.
    unsafe {
        asm!("hlt #0xf000", in("w0") 0x18u32, in("x1") block.as_ptr(), options(nostack));
    }
    loop {
        wfe();
    }
}

/// Masks interrupts on this core (DAIF). A critical section here excludes
/// this core's interrupt handlers only, not the other core (as documented
/// for `ipc_traits::regs::modify_shared`).
struct DaifCs;
critical_section::set_impl!(DaifCs);

// SAFETY: acquire saves DAIF and masks IRQ/FIQ, release restores exactly the
// saved state; nesting works because each level restores its own copy.
unsafe impl critical_section::Impl for DaifCs {
    unsafe fn acquire() -> u64 {
        let daif: u64;
        // SAFETY: reads DAIF, then masks IRQ and FIQ on this core.
        unsafe { asm!("mrs {}, daif", "msr daifset, #3", out(reg) daif, options(nostack)) };
        daif
    }

    unsafe fn release(daif: u64) {
        // SAFETY: restores the DAIF value `acquire` saved.
        unsafe { asm!("msr daif, {}", in(reg) daif, options(nostack)) };
    }
}
