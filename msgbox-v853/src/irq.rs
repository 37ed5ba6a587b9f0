//! The interrupt entry of one processor's side of the msgbox.
#![deny(unsafe_code)]

use ipc_traits::mailbox::{Events, InterruptSource};
use ipc_traits::regs::Regs32;

use crate::registers::{self, READ_IRQ_MASK, WRITE_IRQ_MASK};

/// Bit of [`Events::other`] set when a status register carried bits that no
/// channel can raise (odd bits of `READ_IRQ_STATUS`, even bits of
/// `WRITE_IRQ_STATUS`, anything above bit 7). They are acknowledged and
/// counted in [`IrqStats::foreign_status_bits`].
pub const OTHER_FOREIGN_STATUS: u32 = 1 << 0;

/// Counters of unexpected interrupt states (hostile-input bookkeeping).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct IrqStats {
    /// `on_interrupt` calls that found nothing enabled and pending.
    pub spurious: u32,
    /// Status bits seen that belong to no channel (see
    /// [`OTHER_FOREIGN_STATUS`]), summed over all calls.
    pub foreign_status_bits: u32,
}

/// The interrupt entry of this processor: reads this side's receive events
/// (`READ_IRQ_*` in the own block) and transmit events (`WRITE_IRQ_*` in the
/// peer's block), acknowledges exactly what it reports.
///
/// # Which line calls it
///
/// Each block has one interrupt output (sheet §1: one interrupt per block in
/// the device tree). The A7's device tree lists both blocks' interrupts (GIC
/// SPI 0 and SPI 1) and the vendor driver runs the same handler for both.
/// Call `on_interrupt` from the handler of every msgbox line this processor
/// receives. The E907-side IRQ number is not known (sheet §1, §7).
#[derive(Debug)]
pub struct Interrupts<R> {
    pub(crate) local: R,
    pub(crate) remote: R,
    stats: IrqStats,
}

impl<R: Regs32> Interrupts<R> {
    pub(crate) const fn new(local: R, remote: R) -> Self {
        Self {
            local,
            remote,
            stats: IrqStats {
                spurious: 0,
                foreign_status_bits: 0,
            },
        }
    }

    /// The counters of unexpected interrupt states so far.
    #[must_use]
    pub const fn stats(&self) -> IrqStats {
        self.stats
    }
}

/// Bit `2p + offset` of `bits` → bit `p` of the result.
fn per_channel(bits: u32, offset: u32) -> u32 {
    (0..u32::from(registers::CHANNELS))
        .filter(|p| bits & (1 << (2 * p + offset)) != 0)
        .fold(0, |acc, p| acc | (1 << p))
}

impl<R: Regs32> InterruptSource for Interrupts<R> {
    /// Reads each status register once, reports the enabled pending events,
    /// and write-1-to-clears exactly the bits it reports.
    ///
    /// - `data_available` bit `p`: channel `p` received data. Acknowledging
    ///   does not lose a word: the hardware keeps the bit set while the FIFO
    ///   is not empty (sheet §2), so unserviced data stays reported.
    /// - `space_available` bit `p`: channel `p`'s FIFO in the peer's block
    ///   has at least the threshold of empty slots. It stays set while that
    ///   holds, so unlisten when there is nothing to send.
    /// - `other` bit [`OTHER_FOREIGN_STATUS`]: status bits that belong to no
    ///   channel (acknowledged and counted, never a panic).
    ///
    /// A call that finds nothing counts as spurious ([`IrqStats::spurious`]).
    fn on_interrupt(&mut self) -> Events {
        let read_status = self.local.read(registers::READ_IRQ_STATUS);
        let read_enable = self.local.read(registers::READ_IRQ_ENABLE);
        let write_status = self.remote.read(registers::WRITE_IRQ_STATUS);
        let write_enable = self.remote.read(registers::WRITE_IRQ_ENABLE);

        let read = read_status & read_enable & READ_IRQ_MASK;
        let write = write_status & write_enable & WRITE_IRQ_MASK;
        let foreign_read = read_status & !READ_IRQ_MASK;
        let foreign_write = write_status & !WRITE_IRQ_MASK;

        let read_ack = read | foreign_read;
        if read_ack != 0 {
            self.local.write(registers::READ_IRQ_STATUS, read_ack);
        }
        let write_ack = write | foreign_write;
        if write_ack != 0 {
            self.remote.write(registers::WRITE_IRQ_STATUS, write_ack);
        }

        let foreign = foreign_read.count_ones() + foreign_write.count_ones();
        self.stats.foreign_status_bits = self.stats.foreign_status_bits.saturating_add(foreign);
        let events = Events {
            data_available: per_channel(read, 0),
            space_available: per_channel(write, 1),
            other: if foreign != 0 {
                OTHER_FOREIGN_STATUS
            } else {
                0
            },
        };
        if events.is_empty() {
            self.stats.spurious = self.stats.spurious.saturating_add(1);
        } else {
            self.local.io_rmb();
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_channel_compresses_interleaved_bits() {
        assert_eq!(per_channel(0b0100_0001, 0), 0b1001);
        assert_eq!(per_channel(0b1000_0010, 1), 0b1001);
        assert_eq!(per_channel(0b1000_0010, 0), 0);
        assert_eq!(per_channel(READ_IRQ_MASK, 0), 0b1111);
        assert_eq!(per_channel(WRITE_IRQ_MASK, 1), 0b1111);
    }
}
