//! Doorbell bits grouped into virtqueue notifications (what `vring` needs).
//!
//! A CIU mailbox bit carries no payload, so a queue is named by the bit
//! that is rung (octeon-ciu-mbox.md §4.1: "use separate bits per vring"):
//! queue `i` of a group is the `i`-th bit it was built from. Build the
//! groups from erased bits ([`RxBit::degrade`](crate::RxBit::degrade),
//! [`TxBit::degrade`](crate::TxBit::degrade)); both sides of a link must
//! agree on the bit list.
#![deny(unsafe_code)]

use ipc_traits::mailbox::{
    retry, Budget, ErrorType, Event, Listen, Notify, NotifyRx, QueueId, QueueSet,
};
use ipc_traits::regs::Regs64;

use crate::channel::{listen_event, take_bits, AnyRxBit, AnyTxBit};
use crate::{CoreId, Error};

/// Receiving side of `Q` queues: bit `bits[i]` of this core's mailbox
/// announces queue `i`.
///
/// # Examples
///
/// ```
/// use ipc_traits::mailbox::{Mailbox, Notify, NotifyRx, QueueId};
/// use mbox_octeon::{RxQueues, TxQueues};
/// use mbox_octeon::sim::Ciu;
///
/// let ciu = Ciu::new(2);
/// let (mut a, mut b) = (ciu.mbox(0).split(), ciu.mbox(1).split());
/// let peer = b.irq.core();
/// let mut kick = TxQueues::new([
///     a.outbox.bit4.into_tx(&a.irq, peer).degrade(),
///     a.outbox.bit5.into_tx(&a.irq, peer).degrade(),
/// ]);
/// let mut pending = RxQueues::new([
///     b.inbox.bit4.into_rx(&mut b.irq).degrade(),
///     b.inbox.bit5.into_rx(&mut b.irq).degrade(),
/// ])
/// .map_err(|(_, e)| e)?;
///
/// let vq1 = QueueId::new(1).unwrap();
/// kick.notify(vq1)?;
/// kick.notify(vq1)?; // coalesces with the first ring
/// let set = pending.take_pending()?;
/// assert_eq!(set.iter().collect::<Vec<_>>(), [vq1]);
/// assert!(pending.take_pending()?.is_empty());
/// # Ok::<(), mbox_octeon::Error>(())
/// ```
#[derive(Debug)]
pub struct RxQueues<R, const Q: usize> {
    bits: [AnyRxBit<R>; Q],
    regs: R,
    core: CoreId,
    mask: u32,
}

impl<R: Regs64, const Q: usize> RxQueues<R, Q> {
    /// Groups `bits` (queue `i` = `bits[i]`). `Q` is 1..=32, checked at
    /// compile time.
    ///
    /// # Errors
    ///
    /// Gives the bits back with [`Error::MixedCores`] if they belong to
    /// different cores' mailboxes (one take must be one read), or with
    /// [`Error::DuplicateBit`] if a bit appears twice.
    pub fn new(bits: [AnyRxBit<R>; Q]) -> Result<Self, ([AnyRxBit<R>; Q], Error)> {
        const { assert!(Q >= 1 && Q <= QueueId::MAX as usize, "1..=32 queues") };
        let Some((regs, core)) = bits.first().map(|b| (b.regs, b.core)) else {
            // Unreachable: Q >= 1 is checked at compile time.
            return Err((bits, Error::MixedCores));
        };
        let mut mask = 0u32;
        for b in &bits {
            if b.core != core {
                return Err((bits, Error::MixedCores));
            }
            if mask & b.mask() != 0 {
                let bit = b.bit;
                return Err((bits, Error::DuplicateBit(bit)));
            }
            mask |= b.mask();
        }
        Ok(Self {
            bits,
            regs,
            core,
            mask,
        })
    }

    /// The mailbox bits of the group.
    #[must_use]
    pub fn mask(&self) -> u32 {
        self.mask
    }

    /// The core whose mailbox the group reads.
    #[must_use]
    pub fn core(&self) -> CoreId {
        self.core
    }

    /// The bit that announces `queue`, if the group carries it.
    #[must_use]
    pub fn bit_of(&self, queue: QueueId) -> Option<u8> {
        self.bits.get(usize::from(queue.index())).map(AnyRxBit::bit)
    }

    fn queues_of(&self, observed: u32) -> QueueSet {
        let mut set = QueueSet::EMPTY;
        for (i, b) in self.bits.iter().enumerate() {
            if observed & b.mask() != 0 {
                if let Some(q) = u8::try_from(i).ok().and_then(QueueId::new) {
                    set.insert(q);
                }
            }
        }
        set
    }

    /// Waits within `budget` until at least one queue is pending and takes
    /// every pending one.
    ///
    /// # Errors
    ///
    /// [`Error::WouldBlock`] if nothing arrived within the budget.
    pub fn blocking_take(&mut self, budget: impl Budget) -> Result<QueueSet, Error> {
        retry(budget, || {
            let set = self.queues_of(take_bits(self.regs, self.core, self.mask));
            if set.is_empty() {
                Err(Error::WouldBlock)
            } else {
                Ok(set)
            }
        })
    }

    /// Gives the bits back.
    pub fn release(self) -> [AnyRxBit<R>; Q] {
        self.bits
    }
}

impl<R: Regs64, const Q: usize> ErrorType for RxQueues<R, Q> {
    type Error = Error;
}

/// One read of the mailbox, then write-1-to-clear of exactly the group's
/// bits that were set (no write when none was), then
/// [`io_rmb`](ipc_traits::barrier::io_rmb).
/// Bits of other owners are never touched. Never fails.
impl<R: Regs64, const Q: usize> NotifyRx for RxQueues<R, Q> {
    fn take_pending(&mut self) -> Result<QueueSet, Error> {
        Ok(self.queues_of(take_bits(self.regs, self.core, self.mask)))
    }
}

/// Enables or disables the CIU halves holding the group's bits (see the
/// granularity note on [`RxBit`](crate::RxBit)'s `Listen`).
impl<R: Regs64, const Q: usize> Listen for RxQueues<R, Q> {
    fn listen(&mut self, event: Event) -> Result<(), Error> {
        listen_event(self.regs, self.core, self.mask, event, true)
    }

    fn unlisten(&mut self, event: Event) -> Result<(), Error> {
        listen_event(self.regs, self.core, self.mask, event, false)
    }
}

/// Sending side of `Q` queues: `notify(i)` rings `bits[i]`.
#[derive(Debug)]
pub struct TxQueues<R, const Q: usize> {
    bits: [AnyTxBit<R>; Q],
}

impl<R: Regs64, const Q: usize> TxQueues<R, Q> {
    /// Groups `bits` (queue `i` = `bits[i]`). `Q` is 1..=32, checked at
    /// compile time.
    pub fn new(bits: [AnyTxBit<R>; Q]) -> Self {
        const { assert!(Q >= 1 && Q <= QueueId::MAX as usize, "1..=32 queues") };
        Self { bits }
    }

    /// The bit that announces `queue`, if the group carries it.
    #[must_use]
    pub fn bit_of(&self, queue: QueueId) -> Option<u8> {
        self.bits.get(usize::from(queue.index())).map(AnyTxBit::bit)
    }

    /// Gives the bits back.
    pub fn release(self) -> [AnyTxBit<R>; Q] {
        self.bits
    }
}

impl<R: Regs64, const Q: usize> ErrorType for TxQueues<R, Q> {
    type Error = Error;
}

/// Rings the queue's bit ([`io_wmb`](ipc_traits::barrier::io_wmb), then one
/// write-1-to-set). A
/// doorbell is never full, so this never returns `WouldBlock`.
impl<R: Regs64, const Q: usize> Notify for TxQueues<R, Q> {
    fn notify(&mut self, queue: QueueId) -> Result<(), Error> {
        let bit = self
            .bits
            .get_mut(usize::from(queue.index()))
            .ok_or(Error::NoSuchQueue(queue))?;
        bit.ring();
        Ok(())
    }
}
