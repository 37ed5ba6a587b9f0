//! The I/O barriers as the simulated cores of the calling thread see them
//! (feature `sim`, host tests only: links `std`).
//!
//! A weakly ordered memory model (`conformance::sim`'s weak mode) keeps a
//! core's stores in a store buffer and lets its loads run early. What
//! orders them against a *register* access is the I/O barrier the driver
//! calls through its register handle:
//! [`Regs32::io_wmb`](crate::regs::Regs32::io_wmb) before a doorbell write,
//! [`Regs32::io_rmb`](crate::regs::Regs32::io_rmb) after a doorbell read.
//! Their defaults are [`barrier::io_wmb`](crate::barrier::io_wmb) /
//! [`barrier::io_rmb`](crate::barrier::io_rmb), which on the host with this
//! feature call [`io_wmb`] / [`io_rmb`] here, so the backends' register
//! models need nothing of their own, and a barrier a driver leaves out is
//! missing in the simulation exactly as on silicon.
//!
//! Every weakly ordered core registers itself ([`register`]) with each
//! thread that uses it, at every access: a thread plays a core, or several
//! in turn. [`io_wmb`] applies to the core that made the calling thread's
//! last memory access (the stores a doorbell announces are its own),
//! [`io_rmb`] to every live core of the thread; no barrier reaches another
//! thread's cores. A doorbell written without [`io_wmb`] does not wait for
//! the buffered stores. With no core registered the functions do nothing.
extern crate std;

use std::cell::RefCell;
use std::sync::{Arc, Weak};
use std::vec::Vec;

/// A simulated core that an I/O barrier orders.
pub trait IoOrder: Send + Sync {
    /// The I/O write barrier: every store this core made so far reaches
    /// memory before the call returns (before the doorbell write that
    /// follows).
    fn io_wmb(&self);
    /// The I/O read barrier: no load this core makes after the call is
    /// satisfied with memory older than the call (older than the doorbell
    /// read that preceded it).
    fn io_rmb(&self);
}

/// The cores a thread has used, the last one last.
struct Cores {
    all: Vec<Weak<dyn IoOrder>>,
}

std::thread_local! {
    static CORES: RefCell<Cores> = const { RefCell::new(Cores { all: Vec::new() }) };
}

/// Registers `core` with the calling thread as the core it runs now (the
/// one that made the last memory access). Dropped cores unregister
/// themselves: the thread keeps only a weak reference.
pub fn register(core: &Arc<dyn IoOrder>) {
    CORES.with(|cores| {
        let all = &mut cores.borrow_mut().all;
        let weak = Arc::downgrade(core);
        if all.last().is_some_and(|c| Weak::ptr_eq(c, &weak)) {
            return;
        }
        all.retain(|c| c.strong_count() > 0 && !Weak::ptr_eq(c, &weak));
        all.push(weak);
    });
}

/// Runs `f` on the live cores registered with the calling thread: the
/// current one only, or all.
fn each(current_only: bool, f: impl Fn(&dyn IoOrder)) {
    let live: Vec<Arc<dyn IoOrder>> = CORES.with(|cores| {
        let all = &cores.borrow().all;
        let from = if current_only {
            all.len().saturating_sub(1)
        } else {
            0
        };
        all[from..].iter().filter_map(Weak::upgrade).collect()
    });
    for core in &live {
        f(core.as_ref());
    }
}

/// [`IoOrder::io_wmb`] on the calling thread's current core: the one whose
/// memory accesses came last, which are what a doorbell announces (called
/// by the host's [`barrier::io_wmb`](crate::barrier::io_wmb)).
pub fn io_wmb() {
    each(true, |c| c.io_wmb());
}

/// [`IoOrder::io_rmb`] on every core of the calling thread (the core that
/// reads the ring next may not have touched memory yet; raising the others'
/// floors only makes them more ordered). Called by the host's
/// [`barrier::io_rmb`](crate::barrier::io_rmb).
pub fn io_rmb() {
    each(false, |c| c.io_rmb());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A register handle with the default barriers.
    #[derive(Clone, Copy)]
    struct Null;

    // SAFETY: touches no memory at all: reads 0, drops writes.
    unsafe impl crate::regs::Regs32 for Null {
        fn read(self, _: usize) -> u32 {
            0
        }
        fn write(self, _: usize, _: u32) {}
    }

    #[derive(Default)]
    struct Counting {
        wmb: AtomicU32,
        rmb: AtomicU32,
    }

    impl IoOrder for Counting {
        fn io_wmb(&self) {
            self.wmb.fetch_add(1, Ordering::Relaxed);
        }
        fn io_rmb(&self) {
            self.rmb.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn io_wmb_reaches_the_current_core_io_rmb_every_core_of_the_thread() {
        let a = Arc::new(Counting::default());
        let b = Arc::new(Counting::default());
        let (da, db): (Arc<dyn IoOrder>, Arc<dyn IoOrder>) = (a.clone(), b.clone());
        register(&da);
        register(&da);
        crate::barrier::io_wmb();
        register(&db);
        crate::regs::Regs32::io_wmb(Null);
        crate::barrier::io_rmb();
        crate::regs::Regs32::io_rmb(Null);
        register(&da);
        crate::barrier::io_wmb();
        std::thread::spawn(|| {
            crate::barrier::io_wmb();
            crate::barrier::io_rmb();
        })
        .join()
        .unwrap();
        let count = |c: &Counting| (c.wmb.load(Ordering::Relaxed), c.rmb.load(Ordering::Relaxed));
        assert_eq!(count(&a), (2, 2));
        assert_eq!(count(&b), (1, 2));
        drop((da, db, a, b));
        io_wmb(); // dropped cores are skipped
        io_rmb();
    }
}
