//! A transmit queue has no `try_recv`: `WordRx` exists only for `Rx`.
use mbox_am62x::sim::Cluster;
use mbox_am62x::{Mbox, User, WordRx};

fn main() {
    let cluster = Cluster::new();
    let parts = Mbox::new(cluster.regs(), User::M4F).split();
    let mut tx = parts.q0.into_tx();
    let _ = tx.try_recv();
}
