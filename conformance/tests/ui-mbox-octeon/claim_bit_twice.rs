//! Misuse: claiming the same inbox bit twice (two receivers would steal each
//! other's doorbells). `into_rx` consumes the `InBit` (E0382).

use ipc_traits::mailbox::Mailbox;
use mbox_octeon::sim::Ciu;

fn main() {
    let ciu = Ciu::new(2);
    let mut parts = ciu.mbox(1).split();
    let bit = parts.inbox.bit5;
    let first = bit.into_rx(&mut parts.irq);
    let second = bit.into_rx(&mut parts.irq);
    let _ = (first, second);
}
