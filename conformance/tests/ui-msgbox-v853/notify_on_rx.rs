//! Turning a receive handle into a doorbell: `into_notify` exists only for
//! transmit handles.
use msgbox_v853::registers::Processor;
use msgbox_v853::sim::MsgboxSim;

fn main() {
    let sim = MsgboxSim::new();
    let parts = sim.msgbox(Processor::Riscv).split();
    let _kick = parts.rx0.into_notify();
}
