//! Misuse: ringing bit 0 of a peer (Linux's SMP_RESCHEDULE_YOURSELF IPI,
//! octeon-ciu-mbox.md §4). `Bit<0>` does not implement `Claimable` (E0277).

use ipc_traits::mailbox::Mailbox;
use mbox_octeon::sim::Ciu;
use mbox_octeon::CoreId;

fn main() {
    let ciu = Ciu::new(2);
    let parts = ciu.mbox(0).split();
    let linux_core = CoreId::new(1).unwrap();
    let mut tx = parts.outbox.bit0.into_tx(&parts.irq, linux_core);
    tx.ring();
}
