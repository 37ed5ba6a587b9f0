//! Sending on a receive handle: `WordTx` exists only for `Channel<_, _, Tx>`.
use ipc_traits::mailbox::WordTx;
use msgbox_v853::registers::Processor;
use msgbox_v853::sim::MsgboxSim;

fn main() {
    let sim = MsgboxSim::new();
    let mut parts = sim.msgbox(Processor::Arm).split();
    let _ = parts.rx0.try_send(1);
}
