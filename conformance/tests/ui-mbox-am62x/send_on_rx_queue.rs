//! A receive queue has no `try_send`: `WordTx` exists only for `Tx`.
use mbox_am62x::sim::Cluster;
use mbox_am62x::{Mbox, User, WordTx};

fn main() {
    let cluster = Cluster::new();
    let parts = Mbox::new(cluster.regs(), User::M4F).split();
    let mut rx = parts.q1.into_rx();
    rx.try_send(1).unwrap();
}
