//! Joining with a handle of another channel index: `Parts` fields are typed
//! by index and direction, so channels cannot be swapped or duplicated.
use msgbox_v853::registers::Processor;
use msgbox_v853::sim::MsgboxSim;
use msgbox_v853::{Msgbox, Parts};

fn main() {
    let sim = MsgboxSim::new();
    let p = sim.msgbox(Processor::Arm).split();
    let _ = Msgbox::join(Parts {
        tx0: p.tx1,
        tx1: p.tx0,
        tx2: p.tx2,
        tx3: p.tx3,
        rx0: p.rx0,
        rx1: p.rx1,
        rx2: p.rx2,
        rx3: p.rx3,
        irq: p.irq,
    });
}
