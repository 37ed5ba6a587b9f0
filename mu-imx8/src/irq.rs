//! The interrupt entry of one MU side.
#![deny(unsafe_code)]

use ipc_traits::mailbox::{Events, InterruptSource};
use ipc_traits::regs::Regs32;

use crate::registers::{
    self, CR_OFFSET, EVENT_MASK, GIP_TOP, RF_TOP, SR_GIP_MASK, SR_OFFSET, SR_RESERVED_MASK, TE_TOP,
};

/// Something the status register showed that the driver does not expect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Anomaly {
    /// The interrupt entry ran with no enabled event pending (a spurious or
    /// shared interrupt: all v1 channels share one IRQ, sheet §2.5).
    Spurious,
    /// `SR` bits the v1 layout reserves (19:10, 3) read as 1 (value given,
    /// masked to the reserved bits; sheet §2.1).
    ReservedStatus(u32),
}

/// Counters of [`Anomaly`]s seen by one [`Irq`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct IrqStats {
    /// Interrupt entries with nothing enabled pending.
    pub spurious: u32,
    /// Status reads with reserved bits set.
    pub reserved_status: u32,
}

/// What one [`Irq::service`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Report {
    /// The enabled, pending events (as [`InterruptSource::on_interrupt`]
    /// returns them).
    pub events: Events,
    /// What was unexpected about this status read, if anything. A reserved
    /// bit wins over "spurious" when both apply.
    pub anomaly: Option<Anomaly>,
}

/// The interrupt entry of one MU side: reads `SR` once, reports the enabled
/// pending events, and acknowledges exactly the general-purpose interrupts
/// it reports.
///
/// Bits in the returned [`Events`]:
/// - `data_available` bit n: `SR.RFn` with `CR.RIEn` (channel n has a word;
///   the [`RxChannel`](crate::RxChannel) clears it by reading);
/// - `space_available` bit n: `SR.TEn` with `CR.TIEn` (the level stays high
///   until the [`TxChannel`](crate::TxChannel) sends or unlistens);
/// - `other` bit n: `SR.GIPn` with `CR.GIEn`, already acknowledged
///   (write-1-to-clear of exactly these bits).
///
/// Note the channel numbering: bit n is channel n, not the reversed
/// register bit.
#[derive(Debug)]
pub struct Irq<R> {
    regs: R,
    stats: IrqStats,
}

impl<R: Regs32> Irq<R> {
    pub(crate) const fn new(regs: R) -> Self {
        Self {
            regs,
            stats: IrqStats {
                spurious: 0,
                reserved_status: 0,
            },
        }
    }

    pub(crate) fn release(self) -> R {
        self.regs
    }

    /// Services the interrupt: one `SR` read, one `CR` read (this side's
    /// enables), then a write-1-to-clear of exactly the enabled pending
    /// `GIPn` bits. A GP interrupt that arrives after the `SR` read is not
    /// cleared and is reported by the next call.
    pub fn service(&mut self) -> Report {
        let sr = self.regs.read(SR_OFFSET);
        let cr = self.regs.read(CR_OFFSET);
        // Enable bits sit at the same positions as their status bits.
        let pending = sr & cr & EVENT_MASK;
        let gip = pending & SR_GIP_MASK;
        if gip != 0 {
            self.regs.write(SR_OFFSET, gip);
        }
        if pending != 0 {
            self.regs.io_rmb();
        }
        let events = Events {
            data_available: registers::channels_of(pending, RF_TOP),
            space_available: registers::channels_of(pending, TE_TOP),
            other: registers::channels_of(pending, GIP_TOP),
        };
        let reserved = sr & SR_RESERVED_MASK;
        let anomaly = if reserved != 0 {
            self.stats.reserved_status = self.stats.reserved_status.saturating_add(1);
            Some(Anomaly::ReservedStatus(reserved))
        } else {
            None
        };
        let anomaly = if pending == 0 {
            self.stats.spurious = self.stats.spurious.saturating_add(1);
            anomaly.or(Some(Anomaly::Spurious))
        } else {
            anomaly
        };
        Report { events, anomaly }
    }

    /// The anomaly counters so far.
    pub const fn stats(&self) -> IrqStats {
        self.stats
    }

    /// Whether any enabled event is pending now (the level of this side's MU
    /// interrupt), without acknowledging anything.
    pub fn is_pending(&mut self) -> bool {
        self.regs.read(SR_OFFSET) & self.regs.read(CR_OFFSET) & EVENT_MASK != 0
    }
}

impl<R: Regs32> InterruptSource for Irq<R> {
    /// [`Irq::service`]'s events; anomalies are counted in [`Irq::stats`].
    fn on_interrupt(&mut self) -> Events {
        self.service().events
    }
}
