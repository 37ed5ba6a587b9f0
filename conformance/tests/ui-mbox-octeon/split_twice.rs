//! Misuse: splitting the mailbox twice, which would give two owners per bit.
//! `split` consumes the `Mbox` (E0382).

use ipc_traits::mailbox::Mailbox;
use mbox_octeon::sim::Ciu;

fn main() {
    let ciu = Ciu::new(2);
    let mbox = ciu.mbox(0);
    let first = mbox.split();
    let second = mbox.split();
    let _ = (first, second);
}
