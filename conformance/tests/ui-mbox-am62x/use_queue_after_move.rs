//! A queue handle moved elsewhere (here: into an interrupt-context owner)
//! cannot be used any more.
use mbox_am62x::sim::Cluster;
use mbox_am62x::{Mbox, User, WordTx};

fn main() {
    let cluster = Cluster::new();
    let parts = Mbox::new(cluster.regs(), User::M4F).split();
    let mut tx = parts.q0.into_tx();
    let owner = std::thread::scope(|s| {
        s.spawn(move || {
            let mut mine = tx;
            mine.try_send(1).unwrap();
        });
    });
    tx.try_send(2).unwrap();
    drop(owner);
}
