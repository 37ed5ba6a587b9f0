//! A direction transition consumes the unconfigured queue: it cannot also
//! become a receiver (a queue is owned in one direction at a time).
use mbox_am62x::sim::Cluster;
use mbox_am62x::{Mbox, User};

fn main() {
    let cluster = Cluster::new();
    let parts = Mbox::new(cluster.regs(), User::M4F).split();
    let tx = parts.q0.into_tx();
    let rx = parts.q0.into_rx();
    drop((tx, rx));
}
