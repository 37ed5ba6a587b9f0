//! Using a channel after moving it into another thread: handles are owned,
//! neither `Copy` nor `Clone`.
use ipc_traits::mailbox::WordTx;
use msgbox_v853::registers::Processor;
use msgbox_v853::sim::MsgboxSim;

fn main() {
    let sim = MsgboxSim::new_static();
    let mut parts = sim.msgbox(Processor::Arm).split();
    let worker = std::thread::spawn(move || {
        let mut tx = parts.tx0;
        let _ = tx.try_send(1);
    });
    let _ = parts.tx0.try_send(2);
    let _ = worker.join();
}
