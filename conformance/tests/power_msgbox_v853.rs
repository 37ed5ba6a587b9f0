//! The power-domain suite for `msgbox-v853`: a split-ownership link whose
//! doorbells (channel 0, raw vring ids) are also the wake interrupts: the
//! msgbox read interrupt brings the core out of WFI. Allwinner's standby
//! flow (cache-and-wake.md §7.3) is out of scope.

use conformance::mailbox::{DoorbellFixture, DoorbellLink, Line};
use ipc_traits::mailbox::{Event, Listen};
use msgbox_v853::registers::Processor;
use msgbox_v853::sim::{MsgboxSim, SimRegs};
use msgbox_v853::{Notifier, NotifyReceiver};

type Regs = SimRegs<'static>;

/// Channel 0 both ways: ARM (side A) and the E907 (side B).
struct V853Doorbells;

impl DoorbellLink for V853Doorbells {
    type Ring = Notifier<Regs, 0>;
    type Take = NotifyReceiver<Regs, 0>;

    fn open() -> DoorbellFixture<Self> {
        let sim = MsgboxSim::new_static();
        let a = sim.msgbox(Processor::Arm).split();
        let mut b = sim.msgbox(Processor::Riscv).split();
        b.rx0
            .listen(Event::DataAvailable)
            .unwrap_or_else(|e| panic!("{e:?}"));
        DoorbellFixture {
            ring_b: a.tx0.into_notify(),
            take_b: b.rx0.into_notify_rx(8),
            ring_a: b.tx0.into_notify(),
            take_a: a.rx0.into_notify_rx(8),
            line_b: Line::new(move || sim.line(Processor::Riscv)),
            queues: 32,
        }
    }
}

mod power {
    conformance::power_suite!(super::V853Doorbells);
}
