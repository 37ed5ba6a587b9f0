//! The critical-section implementation of this binary.
//!
//! `rpmsg::link` rings its doorbell inside a critical section. On the
//! single-core firmware it is written for that is `cpsid`/`cpsie` (a few
//! instructions, no memory barrier); `critical-section`'s `std`
//! implementation is a process-wide mutex (locked instructions, which
//! `callgrind.sh` counts as fences and which no single-core target pays).
//! So this binary has two modes, fixed by the first critical section and
//! never changed afterwards:
//!
//! - single core ([`single_core`], called by `bench instr` before it builds
//!   a link): the first thread that enters a critical section owns them
//!   all and any other thread panics, so a section costs a thread-local
//!   read, like the interrupt mask it models, and stays sound;
//! - locking (everything else: the two-thread runs, the tests): a
//!   process-wide spin lock, re-entrant per thread, as on a multi-core
//!   target whose implementation serialises the cores.
#![allow(unsafe_code)]

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

/// No critical section entered yet, no mode chosen.
const FRESH: u8 = 0;
/// The process-wide lock.
const LOCKING: u8 = 1;
/// One thread owns every critical section.
const SINGLE: u8 = 2;

/// The mode: leaves [`FRESH`] once, by a compare-exchange, and never
/// changes again.
static MODE: AtomicU8 = AtomicU8::new(FRESH);

/// Some thread owns the critical sections of this process ([`SINGLE`]).
static CLAIMED: AtomicBool = AtomicBool::new(false);

/// The lock of [`LOCKING`].
static LOCK: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// This thread is the owner ([`SINGLE`]).
    static OWNER: Cell<bool> = const { Cell::new(false) };
    /// Sections this thread is nested in ([`LOCKING`]).
    static DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// Chooses the single-core mode (see the module docs); `false` when a
/// critical section was entered already (the mode is locking then).
pub fn single_core() -> bool {
    MODE.compare_exchange(FRESH, SINGLE, Ordering::AcqRel, Ordering::Acquire)
        .map_or_else(|m| m == SINGLE, |_| true)
}

/// The mode, choosing locking if none was chosen yet.
#[inline]
fn mode() -> u8 {
    match MODE.load(Ordering::Acquire) {
        FRESH => match MODE.compare_exchange(FRESH, LOCKING, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => LOCKING,
            Err(m) => m,
        },
        m => m,
    }
}

struct BenchCs;
critical_section::set_impl!(BenchCs);

// SAFETY: the mode never changes once chosen (module docs). Single core:
// every critical section runs on the one thread that claimed them (any
// other panics before entering), so sections never overlap across threads;
// on that thread there are no interrupts to mask, so a section is mutually
// exclusive with every other context that could run its code. Locking: the
// outermost section of a thread holds `LOCK` (taken with Acquire, released
// with Release) until it ends, so sections of different threads never
// overlap; nested ones run inside the outer one on the same thread.
unsafe impl critical_section::Impl for BenchCs {
    unsafe fn acquire() -> critical_section::RawRestoreState {
        if mode() == SINGLE {
            if !OWNER.with(Cell::get) {
                assert!(
                    !CLAIMED.swap(true, Ordering::AcqRel),
                    "bench: critical sections are single-threaded in `bench instr`"
                );
                OWNER.with(|o| o.set(true));
            }
            return;
        }
        let depth = DEPTH.with(Cell::get);
        if depth == 0 {
            while LOCK
                .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
            {
                std::hint::spin_loop();
            }
        }
        DEPTH.with(|d| d.set(depth + 1));
    }

    unsafe fn release(_: critical_section::RawRestoreState) {
        if MODE.load(Ordering::Relaxed) == SINGLE {
            return;
        }
        let depth = DEPTH.with(Cell::get).saturating_sub(1);
        DEPTH.with(|d| d.set(depth));
        if depth == 0 {
            LOCK.store(false, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sections_of_two_threads_never_overlap() {
        use std::sync::atomic::{AtomicU32, Ordering};
        use std::sync::Barrier;
        static INSIDE: AtomicU32 = AtomicU32::new(0);
        let start = Barrier::new(2);
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    start.wait();
                    for _ in 0..2_000 {
                        critical_section::with(|_| {
                            critical_section::with(|_| {
                                assert_eq!(INSIDE.fetch_add(1, Ordering::Relaxed), 0);
                                // Long enough for the other thread to try.
                                std::thread::yield_now();
                                assert_eq!(INSIDE.fetch_sub(1, Ordering::Relaxed), 1);
                            });
                        });
                    }
                });
            }
        });
        // A section was entered, so the mode is fixed: locking.
        assert!(!super::single_core());
    }
}
