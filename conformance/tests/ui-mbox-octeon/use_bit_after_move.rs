//! Misuse: ringing a doorbell after handing it to another thread. The
//! `TxBit` moved into the closure (E0382).

use ipc_traits::mailbox::Mailbox;
use mbox_octeon::sim::Ciu;
use mbox_octeon::CoreId;

fn main() {
    let ciu = Ciu::new(2);
    let parts = ciu.mbox(0).split();
    let mut tx = parts
        .outbox
        .bit9
        .into_tx(&parts.irq, CoreId::new(1).unwrap());
    let worker = std::thread::spawn(move || tx.ring());
    tx.ring();
    worker.join().unwrap();
}
