//! A doorbell in memory: one bit per queue in a 32-bit word that the ringing
//! side sets and the rung side takes.
//!
//! For cores that share coherent memory but have no mailbox between them
//! (the emulated images), and as a loopback between two roles on one core.
//! Ringing is a release read-modify-write, taking an acquire swap, so
//! everything written before [`Notify::notify`] is visible to whoever takes
//! the bit. A [`Wake`] hook then gets the rung side out of its idle
//! instruction (`sev` after a `wfe`, a pended exception after a `wfi`).
//!
//! Like the OCTEON mailbox (shared/docs/hw/octeon-ciu-mbox.md §3), bits
//! coalesce: ringing a queue twice before it is taken is one notification.
//!
//! # Examples
//!
//! ```
//! use fw_common::doorbell::{MemDoorbell, Polled};
//! use ipc_traits::mailbox::{Notify, NotifyRx, QueueId};
//!
//! static BELL: MemDoorbell = MemDoorbell::new();
//! let mut ring = BELL.ringer(Polled);
//! let mut take = BELL.taker();
//! let q1 = QueueId::new(1).unwrap();
//! ring.notify(q1).unwrap();
//! ring.notify(q1).unwrap(); // coalesces
//! assert!(BELL.is_pending());
//! assert_eq!(take.take_pending().unwrap().bits(), 0b10);
//! assert!(take.take_pending().unwrap().is_empty());
//! assert_eq!((BELL.rung(), BELL.taken(), BELL.coalesced()), (2, 1, 1));
//! ```
#![deny(unsafe_code)]

use core::convert::Infallible;
use core::fmt;
use core::sync::atomic::{AtomicU32, Ordering};

use ipc_traits::mailbox::{
    blocking_send, ErrorType, Notify, NotifyRx, QueueCodec, QueueId, QueueSet, Spins, WordTx,
};

/// How the ringing side wakes the rung side after setting a bit.
pub trait Wake {
    /// Makes the rung side leave its idle instruction (or does nothing).
    fn wake(&self);
}

/// No wake-up: the rung side polls.
#[derive(Debug, Clone, Copy, Default)]
pub struct Polled;

impl Wake for Polled {
    fn wake(&self) {}
}

impl<F: Fn()> Wake for F {
    fn wake(&self) {
        self()
    }
}

/// The doorbell word, usually a `static`.
#[derive(Default)]
pub struct MemDoorbell {
    pending: AtomicU32,
    rung: AtomicU32,
    taken: AtomicU32,
    coalesced: AtomicU32,
}

impl fmt::Debug for MemDoorbell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemDoorbell")
            .field("pending", &self.pending.load(Ordering::Relaxed))
            .field("rung", &self.rung.load(Ordering::Relaxed))
            .field("taken", &self.taken.load(Ordering::Relaxed))
            .field("coalesced", &self.coalesced.load(Ordering::Relaxed))
            .finish()
    }
}

impl MemDoorbell {
    /// A doorbell with nothing pending.
    pub const fn new() -> Self {
        Self {
            pending: AtomicU32::new(0),
            rung: AtomicU32::new(0),
            taken: AtomicU32::new(0),
            coalesced: AtomicU32::new(0),
        }
    }

    /// The ringing handle, waking the peer with `wake`.
    pub const fn ringer<W: Wake>(&self, wake: W) -> Ringer<'_, W> {
        Ringer { bell: self, wake }
    }

    /// The rung side's handle.
    pub const fn taker(&self) -> Taker<'_> {
        Taker { bell: self }
    }

    /// Whether any bit is set (a cheap check before sleeping).
    pub fn is_pending(&self) -> bool {
        self.pending.load(Ordering::Acquire) != 0
    }

    /// Notifications rung so far (coalesced ones included; wrapping).
    pub fn rung(&self) -> u32 {
        self.rung.load(Ordering::Relaxed)
    }

    /// Non-empty takes so far (wrapping).
    pub fn taken(&self) -> u32 {
        self.taken.load(Ordering::Relaxed)
    }

    /// Notifications rung while the same queue's bit was still pending
    /// (wrapping): the rung side had not taken the previous one yet, so it
    /// learnt nothing from this one (the peer was already notified).
    pub fn coalesced(&self) -> u32 {
        self.coalesced.load(Ordering::Relaxed)
    }
}

/// Rings a [`MemDoorbell`]: implements [`Notify`].
#[derive(Debug)]
pub struct Ringer<'a, W> {
    bell: &'a MemDoorbell,
    wake: W,
}

impl<W> ErrorType for Ringer<'_, W> {
    type Error = Infallible;
}

impl<W: Wake> Notify for Ringer<'_, W> {
    fn notify(&mut self, queue: QueueId) -> Result<(), Infallible> {
        // Release: the ring and buffer writes before this call are visible
        // to the acquire swap in `take_pending`.
        let bit = 1 << queue.index();
        let before = self.bell.pending.fetch_or(bit, Ordering::AcqRel);
        self.bell.rung.fetch_add(1, Ordering::Relaxed);
        if before & bit != 0 {
            self.bell.coalesced.fetch_add(1, Ordering::Relaxed);
        }
        self.wake.wake();
        Ok(())
    }
}

/// Takes a [`MemDoorbell`]'s bits: implements [`NotifyRx`].
#[derive(Debug)]
pub struct Taker<'a> {
    bell: &'a MemDoorbell,
}

impl ErrorType for Taker<'_> {
    type Error = Infallible;
}

impl NotifyRx for Taker<'_> {
    fn take_pending(&mut self) -> Result<QueueSet, Infallible> {
        let bits = self.bell.pending.swap(0, Ordering::AcqRel);
        if bits != 0 {
            self.bell.taken.fetch_add(1, Ordering::Relaxed);
        }
        Ok(QueueSet::from_bits(bits))
    }
}

/// A word-channel doorbell that waits (boundedly) for room: the peer drains
/// its receive register or FIFO in its interrupt handler, so a full channel
/// is normally a matter of microseconds. Like rpmsg-lite's `MU_SendMsg`,
/// which waits for the transmit register to empty, but never forever: after
/// `spins` retries the kick fails with `WouldBlock`, and the link
/// ([`rpmsg::link::Link`]) keeps it owed and rings it before its next
/// doorbell (or at [`rpmsg::link::Tx::flush`]).
#[derive(Debug)]
pub struct Patient<T, C> {
    tx: T,
    spins: u32,
    _codec: core::marker::PhantomData<C>,
}

impl<T: WordTx, C: QueueCodec> Patient<T, C> {
    /// Sends kicks on `tx`, encoded with `C`, retrying up to `spins` times.
    pub const fn new(tx: T, spins: u32) -> Self {
        Self {
            tx,
            spins,
            _codec: core::marker::PhantomData,
        }
    }

    /// The channel back.
    pub fn release(self) -> T {
        self.tx
    }
}

impl<T: WordTx, C> ErrorType for Patient<T, C> {
    type Error = T::Error;
}

impl<T: WordTx, C: QueueCodec> Notify for Patient<T, C> {
    fn notify(&mut self, queue: QueueId) -> Result<(), T::Error> {
        blocking_send(&mut self.tx, C::encode(queue), Spins::new(self.spins))
    }
}
