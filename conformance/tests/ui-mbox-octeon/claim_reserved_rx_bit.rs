//! Misuse: claiming mailbox bit 3 of this core as a receive doorbell. Bits
//! 0..=3 are Linux's IPIs (octeon-ciu-mbox.md §4); `Bit<3>` does not
//! implement `Claimable` (E0277).

use ipc_traits::mailbox::Mailbox;
use mbox_octeon::sim::Ciu;

fn main() {
    let ciu = Ciu::new(2);
    let mut parts = ciu.mbox(1).split();
    let _rx = parts.inbox.bit3.into_rx(&mut parts.irq);
}
