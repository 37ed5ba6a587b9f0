//! `split` consumes the driver: the queues cannot be handed out twice.
use mbox_am62x::sim::Cluster;
use mbox_am62x::{Mbox, User};

fn main() {
    let cluster = Cluster::new();
    let mbox = Mbox::new(cluster.regs(), User::M4F);
    let first = mbox.split();
    let second = mbox.split();
    drop((first, second));
}
