//! Splitting the peripheral twice: `split` consumes the singleton.
use msgbox_v853::registers::Processor;
use msgbox_v853::sim::MsgboxSim;

fn main() {
    let sim = MsgboxSim::new();
    let msgbox = sim.msgbox(Processor::Arm);
    let first = msgbox.split();
    let second = msgbox.split();
    drop((first, second));
}
