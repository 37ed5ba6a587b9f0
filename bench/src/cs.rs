//! The critical-section implementation of this binary, modelling a single
//! core's interrupt mask.
//!
//! `rpmsg::duplex` rings its doorbell inside a critical section. On the
//! single-core firmware it is written for that is `cpsid`/`cpsie` (a few
//! instructions, no memory barrier); `critical-section`'s `std`
//! implementation is a process-wide mutex (locked instructions, which
//! `callgrind.sh` counts as fences and which no single-core target pays).
//! Only the single-threaded `instr` variant uses the split API, so this
//! binary claims critical sections for the first thread that enters one
//! and refuses (panics) on any other: there it costs a thread-local read,
//! like the interrupt mask it models, and stays sound.
#![allow(unsafe_code)]

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};

/// Some thread owns the critical sections of this process.
static CLAIMED: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// This thread is the owner.
    static OWNER: Cell<bool> = const { Cell::new(false) };
}

struct SingleThread;
critical_section::set_impl!(SingleThread);

// SAFETY: every critical section runs on the one thread that claimed them
// (any other panics before entering), so sections never overlap across
// threads; on that thread there are no interrupts to mask, so a section is
// mutually exclusive with every other context that could run its code.
unsafe impl critical_section::Impl for SingleThread {
    unsafe fn acquire() -> critical_section::RawRestoreState {
        if !OWNER.with(Cell::get) {
            assert!(
                !CLAIMED.swap(true, Ordering::AcqRel),
                "bench: critical sections are single-threaded in this binary"
            );
            OWNER.with(|o| o.set(true));
        }
    }

    unsafe fn release(_: critical_section::RawRestoreState) {}
}
