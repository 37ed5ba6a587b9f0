//! The cnMIPS64 bare-metal pieces: entry, exception vector, CP0 access,
//! `wait`, critical section.
//!
//! The boot loader starts every core of its core mask at the ELF entry in
//! kernel mode (UNVERIFIED: the exact register and `Status` state it leaves;
//! `_start` sets what this image needs). Each core gets 64 KiB of stack;
//! core 0 zeroes `.bss`, the other cores wait for it in Rust
//! (`crate::BSS_READY` lives in `.data`).
#![allow(unsafe_code)]

use core::arch::{asm, global_asm};

global_asm!(
    r#"
    .section .text.boot, "ax"
    .global _start
_start:
    # Status: 64-bit kernel addressing (KX, bit 7) for the XKPHYS CSRs;
    # EBase vectors (BEV, bit 22, clear); no error/exception level; IE off.
    mfc0    $t0, $12
    li      $t1, 0xFFBFFFF8
    and     $t0, $t0, $t1
    ori     $t0, $t0, 0x80
    mtc0    $t0, $12
    ehb
    # Cause.IV (bit 23) clear: interrupts use the general vector.
    mfc0    $t0, $13
    li      $t1, 0xFF7FFFFF
    and     $t0, $t0, $t1
    mtc0    $t0, $13
    ehb
    # EBase.CPUNum (CP0 15, select 1, bits 9:0): this core's number.
    mfc0    $a0, $15, 1
    andi    $a0, $a0, 0x3ff
    dla     $t0, __stack_top
    dsll    $t1, $a0, 16
    dsubu   $sp, $t0, $t1
    bnez    $a0, 2f
    dla     $t0, __bss_start
    dla     $t1, __bss_end
1:  beq     $t0, $t1, 2f
    sd      $zero, 0($t0)
    daddiu  $t0, $t0, 8
    b       1b
2:  jal     rust_main
3:  wait
    b       3b

    # The general exception vector at EBase + 0x180.
    .section .text.vectors, "ax"
    .space  0x180
    j       __exception_entry

    .section .text.boot, "ax"
__exception_entry:
    .set    noat
    daddiu  $sp, $sp, -160
    sd      $1, 0($sp)
    sd      $2, 8($sp)
    sd      $3, 16($sp)
    sd      $4, 24($sp)
    sd      $5, 32($sp)
    sd      $6, 40($sp)
    sd      $7, 48($sp)
    sd      $8, 56($sp)
    sd      $9, 64($sp)
    sd      $10, 72($sp)
    sd      $11, 80($sp)
    sd      $12, 88($sp)
    sd      $13, 96($sp)
    sd      $14, 104($sp)
    sd      $15, 112($sp)
    sd      $24, 120($sp)
    sd      $25, 128($sp)
    sd      $31, 136($sp)
    mfhi    $8
    sd      $8, 144($sp)
    mflo    $8
    sd      $8, 152($sp)
    .set    at
    mfc0    $a0, $13
    jal     octeon_exception
    .set    noat
    ld      $8, 144($sp)
    mthi    $8
    ld      $8, 152($sp)
    mtlo    $8
    ld      $1, 0($sp)
    ld      $2, 8($sp)
    ld      $3, 16($sp)
    ld      $4, 24($sp)
    ld      $5, 32($sp)
    ld      $6, 40($sp)
    ld      $7, 48($sp)
    ld      $8, 56($sp)
    ld      $9, 64($sp)
    ld      $10, 72($sp)
    ld      $11, 80($sp)
    ld      $12, 88($sp)
    ld      $13, 96($sp)
    ld      $14, 104($sp)
    ld      $15, 112($sp)
    ld      $24, 120($sp)
    ld      $25, 128($sp)
    ld      $31, 136($sp)
    daddiu  $sp, $sp, 160
    eret
    .set    at
"#
);

extern "C" {
    /// The exception vector base (see `link.ld`).
    static __vectors: u8;
}

/// `Cause.IP2`: the CIU's IP2 line (the mailbox, octeon-ciu-mbox.md §3.1).
pub const CAUSE_IP2: u64 = 1 << 10;
/// `Cause.IP7`: the CP0 timer.
pub const CAUSE_IP7: u64 = 1 << 15;
/// `Cause.ExcCode` (bits 6:2); 0 is an interrupt.
pub const CAUSE_EXCCODE: u64 = 0x7C;

/// Points this core's exception vectors at `__vectors`.
///
/// # Safety
///
/// Called once per core at start-up, with interrupts disabled.
pub unsafe fn set_vectors() {
    let base = core::ptr::addr_of!(__vectors) as u64;
    // SAFETY: EBase (CP0 15, select 1) takes the 4 KiB aligned KSEG0 base
    // of the vector code (its low 32 bits; CPUNum is read-only).
    unsafe {
        asm!(".set noat", "mtc0 {0}, $15, 1", "ehb", ".set at", in(reg) base, options(nostack))
    };
}

/// Enables the mailbox (IP2) and timer (IP7) interrupts and `Status.IE`.
///
/// # Safety
///
/// The exception vector is installed and the handlers' state is ready.
pub unsafe fn enable_interrupts() {
    // SAFETY: sets IM2, IM7 and IE in Status; the handler saves every
    // register the compiled code may use.
    unsafe {
        asm!(
            ".set noat",
            "mfc0 {t}, $12",
            "ori {t}, {t}, 0x8401",
            "mtc0 {t}, $12",
            "ehb",
            ".set at",
            t = out(reg) _,
            options(nostack),
        );
    }
}

/// Arms the CP0 timer `ticks` from now (a bounded `wait`).
pub fn arm_timer(ticks: u32) {
    // SAFETY: Compare := Count + ticks; writing Compare also clears a
    // pending timer interrupt.
    unsafe {
        asm!(
            ".set noat",
            "mfc0 {t}, $9",
            "addu {t}, {t}, {n}",
            "mtc0 {t}, $11",
            "ehb",
            ".set at",
            t = out(reg) _,
            n = in(reg) ticks,
            options(nostack),
        );
    }
}

/// Acknowledges the timer interrupt and pushes the next one far away.
pub fn ack_timer() {
    // SAFETY: Compare := Count - 1 (a full 32-bit period away), which also
    // clears the pending timer interrupt.
    unsafe {
        asm!(
            ".set noat",
            "mfc0 {t}, $9",
            "addiu {t}, {t}, -1",
            "mtc0 {t}, $11",
            "ehb",
            ".set at",
            t = out(reg) _,
            options(nostack),
        );
    }
}

/// Idles until an interrupt (`wait`); arm the timer first to bound it.
pub fn wait() {
    // SAFETY: waits for an interrupt; no memory or register effect.
    unsafe { asm!("wait", options(nomem, nostack)) };
}

/// A full memory barrier (`sync`).
pub fn sync() {
    // SAFETY: orders memory accesses; nothing else.
    unsafe { asm!("sync", options(nostack)) };
}

/// Masks interrupts on this core (`di`/`ei`). It excludes this core's
/// interrupt handler only, not the other cores.
struct StatusCs;
critical_section::set_impl!(StatusCs);

// SAFETY: acquire clears Status.IE and reports whether it was set; release
// sets it again only in that case, so nesting restores the outer state.
unsafe impl critical_section::Impl for StatusCs {
    unsafe fn acquire() -> bool {
        let status: u64;
        // SAFETY: `di` copies Status and clears IE atomically.
        unsafe { asm!(".set noat", "di {0}", "ehb", ".set at", out(reg) status, options(nostack)) };
        status & 1 != 0
    }

    unsafe fn release(was_enabled: bool) {
        if was_enabled {
            // SAFETY: sets IE again, as it was before `acquire`.
            unsafe { asm!("ei", "ehb", options(nostack)) };
        }
    }
}
