//! Forging a second handle for a channel someone already owns: handles can
//! only come from `split`.
use msgbox_v853::registers::Processor;
use msgbox_v853::sim::MsgboxSim;
use msgbox_v853::{Channel, Tx};

fn main() {
    let sim = MsgboxSim::new();
    let _tx: Channel<_, 0, Tx> = Channel {
        regs: sim.block(Processor::Riscv),
        bad_status: 0,
        _dir: core::marker::PhantomData,
    };
}
