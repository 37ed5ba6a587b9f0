//! `join` takes queues back only unconfigured: a queue still configured as a
//! sender must be given up with `into_unconfigured` first.
use mbox_am62x::sim::Cluster;
use mbox_am62x::{Mbox, User};

fn main() {
    let cluster = Cluster::new();
    let mut parts = Mbox::new(cluster.regs(), User::M4F).split();
    let tx = parts.q0.into_tx();
    parts.q0 = tx;
    let _mbox = Mbox::join(parts);
}
