//! A receive queue cannot ring the peer's doorbell: `Notify` exists only for
//! `Tx`, so a generic doorbell user refuses it.
use mbox_am62x::sim::Cluster;
use mbox_am62x::{Mbox, Notify, User};

fn ring(_doorbell: impl Notify) {}

fn main() {
    let cluster = Cluster::new();
    let parts = Mbox::new(cluster.regs(), User::M4F).split();
    ring(parts.q1.into_rx());
}
