//! Misuse: taking doorbells through the transmit side (which would clear
//! the peer's mailbox). `TxQueues` does not implement `NotifyRx` (E0277).

use ipc_traits::mailbox::{Mailbox, NotifyRx};
use mbox_octeon::sim::Ciu;
use mbox_octeon::{CoreId, TxQueues};

fn main() {
    let ciu = Ciu::new(2);
    let parts = ciu.mbox(0).split();
    let peer = CoreId::new(1).unwrap();
    let mut tx = TxQueues::new([parts.outbox.bit4.into_tx(&parts.irq, peer).degrade()]);
    let _ = NotifyRx::take_pending(&mut tx);
}
