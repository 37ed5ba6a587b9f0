//! Misuse: ringing a doorbell through the receive side. `RxQueues` does not
//! implement `Notify` (E0277).

use ipc_traits::mailbox::{Mailbox, Notify, QueueId};
use mbox_octeon::sim::Ciu;
use mbox_octeon::RxQueues;

fn main() {
    let ciu = Ciu::new(2);
    let mut parts = ciu.mbox(1).split();
    let mut rx = RxQueues::new([parts.inbox.bit4.into_rx(&mut parts.irq).degrade()]).unwrap();
    Notify::notify(&mut rx, QueueId::new(0).unwrap()).unwrap();
}
