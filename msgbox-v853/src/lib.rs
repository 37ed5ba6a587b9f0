#![doc = include_str!("../README.md")]
#![cfg_attr(not(test), no_std)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(unsafe_code)]

#[cfg(feature = "sim")]
extern crate std;

mod channel;
mod error;
mod irq;
pub mod registers;
#[cfg(feature = "sim")]
#[cfg_attr(docsrs, doc(cfg(feature = "sim")))]
pub mod sim;

use core::ptr::NonNull;

use ipc_traits::mailbox::Mailbox;
use ipc_traits::regs::{modify_shared, Mmio32, Regs32};

pub use channel::{
    AnyChannel, Channel, Direction, Notifier, NotifyReceiver, Rx, SpaceThreshold, Tx,
};
pub use error::Error;
pub use irq::{Interrupts, IrqStats, OTHER_FOREIGN_STATUS};

/// The traits a user of this crate calls, re-exported from `ipc-traits`.
pub mod prelude {
    pub use ipc_traits::mailbox::{
        Event, Events, InterruptSource, Listen, Mailbox, Notify, NotifyRx, QueueId, Spins, WordRx,
        WordTx,
    };
}

/// The channel vendor remoteproc/rpmsg uses on V853 (sheet §4:
/// `e907_rproc` has `mboxes = <&msgbox 0>`).
pub const RPMSG_CHANNEL: u8 = 0;

/// The channel the vendor E907 standby node uses (sheet §4:
/// `mboxes = <&msgbox 1>`).
pub const STANDBY_CHANNEL: u8 = 1;

/// The msgbox as seen from one processor: its own block (receive side) and
/// the peer's block (transmit side).
///
/// A peripheral singleton: create it once per processor, [`split`] it into
/// owned channel handles, [`join`] them back.
///
/// [`split`]: Msgbox::split
/// [`join`]: Msgbox::join
#[derive(Debug)]
pub struct Msgbox<R> {
    local: R,
    remote: R,
}

impl Msgbox<Mmio32> {
    /// Creates the driver over memory-mapped blocks.
    ///
    /// `local` is the base of **this** processor's block, `remote` the base
    /// of the peer's block; on V853 the physical bases are
    /// [`Processor::block_base`](registers::Processor::block_base), the same
    /// for both processors (sheet §1).
    ///
    /// # Safety
    ///
    /// 1. A V853 msgbox block is mapped at `local` and at `remote` (so both
    ///    are at least 4-byte aligned), each for
    ///    [`registers::BLOCK_SIZE`] bytes, with device memory attributes, and
    ///    stays mapped while the driver or any handle exists; the msgbox
    ///    clock and reset are released (sheet §3).
    /// 2. `local` is this processor's block and `remote` the peer's.
    /// 3. No other driver instance on this processor accesses the msgbox.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use core::ptr::NonNull;
    /// use msgbox_v853::{registers::Processor, Msgbox};
    ///
    /// // On the E907 (no MMU): own block, then the A7's block.
    /// let local = NonNull::new(Processor::Riscv.block_base() as *mut u32).unwrap();
    /// let remote = NonNull::new(Processor::Arm.block_base() as *mut u32).unwrap();
    /// // SAFETY: both blocks are mapped at their physical addresses, the
    /// // msgbox clock is on, and this is the only driver instance.
    /// let msgbox = unsafe { Msgbox::new_unchecked(local, remote) };
    /// let parts = msgbox.split();
    /// # let _ = parts;
    /// ```
    #[allow(unsafe_code)]
    #[must_use]
    pub unsafe fn new_unchecked(local: NonNull<u32>, remote: NonNull<u32>) -> Self {
        // SAFETY: `Mmio32::new` needs a mapped device for `len` bytes, an
        // aligned base and exclusive use: the caller guarantees the mappings
        // of BLOCK_SIZE bytes at two block bases (which are 4-aligned) by (1)
        // and exclusive use by (3).
        let (local, remote) = unsafe {
            (
                Mmio32::new(local, registers::BLOCK_SIZE),
                Mmio32::new(remote, registers::BLOCK_SIZE),
            )
        };
        Self::new(local, remote)
    }
}

impl<R: Regs32> Msgbox<R> {
    /// Creates the driver from two register views: this processor's block
    /// (`local`) and the peer's (`remote`). Does not touch the hardware, so
    /// words already in flight survive.
    #[must_use]
    pub const fn new(local: R, remote: R) -> Self {
        Self { local, remote }
    }

    /// Gives the register views back (`(local, remote)`).
    #[must_use]
    pub fn release(self) -> (R, R) {
        (self.local, self.remote)
    }

    /// Disables every interrupt of this processor's side: the receive
    /// enables in the own block and the transmit enables in the peer's block
    /// (what the vendor probe does, sheet §3). Bits of other processors are
    /// left alone.
    pub fn disable_interrupts(&mut self) {
        modify_shared(self.local, registers::READ_IRQ_ENABLE, |v| {
            v & !registers::READ_IRQ_MASK
        });
        modify_shared(self.remote, registers::WRITE_IRQ_ENABLE, |v| {
            v & !registers::WRITE_IRQ_MASK
        });
    }

    /// Hands out one owned handle per channel and direction, plus the
    /// interrupt entry. Consumes the driver, so it cannot be split twice.
    #[must_use]
    pub fn split(self) -> Parts<R> {
        let (l, r) = (self.local, self.remote);
        Parts {
            tx0: Channel::new(r),
            tx1: Channel::new(r),
            tx2: Channel::new(r),
            tx3: Channel::new(r),
            rx0: Channel::new(l),
            rx1: Channel::new(l),
            rx2: Channel::new(l),
            rx3: Channel::new(l),
            irq: irq::Interrupts::new(l, r),
        }
    }

    /// Rebuilds the driver from every handle.
    #[must_use]
    pub fn join(parts: Parts<R>) -> Self {
        // Every handle must come back (so none is still in use elsewhere);
        // the register views themselves are all copies of the two in `irq`.
        let Parts {
            tx0: _,
            tx1: _,
            tx2: _,
            tx3: _,
            rx0: _,
            rx1: _,
            rx2: _,
            rx3: _,
            irq,
        } = parts;
        Self::new(irq.local, irq.remote)
    }
}

/// The owned handles of one processor's msgbox side (public fields: destructure
/// freely).
///
/// `txP` writes channel `P` of the peer's block, `rxP` reads channel `P` of
/// the own block; `irq` is the interrupt entry.
#[derive(Debug)]
pub struct Parts<R> {
    /// Transmit, channel 0 (the rpmsg channel, [`RPMSG_CHANNEL`]).
    pub tx0: Channel<R, 0, Tx>,
    /// Transmit, channel 1.
    pub tx1: Channel<R, 1, Tx>,
    /// Transmit, channel 2.
    pub tx2: Channel<R, 2, Tx>,
    /// Transmit, channel 3.
    pub tx3: Channel<R, 3, Tx>,
    /// Receive, channel 0 (the rpmsg channel, [`RPMSG_CHANNEL`]).
    pub rx0: Channel<R, 0, Rx>,
    /// Receive, channel 1.
    pub rx1: Channel<R, 1, Rx>,
    /// Receive, channel 2.
    pub rx2: Channel<R, 2, Rx>,
    /// Receive, channel 3.
    pub rx3: Channel<R, 3, Rx>,
    /// The interrupt entry.
    pub irq: Interrupts<R>,
}

impl<R: Regs32> Mailbox for Msgbox<R> {
    type Parts = Parts<R>;

    fn split(self) -> Parts<R> {
        Msgbox::split(self)
    }

    fn join(parts: Parts<R>) -> Self {
        Msgbox::join(parts)
    }
}
