//! The fault-injection suite on the Allwinner V853 msgbox simulation.
//!
//! Side A, the master, is the Cortex-A7 (processor 0), side B the E907
//! (processor 1); doorbells are raw queue ids on channel 0, each direction
//! writing the FIFO in the receiver's block (v853-msgbox.md §3). Faults are
//! armed on channel 0 ([`msgbox_v853::sim::Faults`]). Each side's interrupt
//! entry is its own block's interrupt output followed by the driver's
//! [`Interrupts`] acknowledgement (the read-pending bit is latched, §2).
//! The model gives each processor both outputs (UNCERTAIN in the
//! simulation); the entry watches the processor's own block, whose events
//! are the ones its handler acknowledges.

use std::sync::Arc;

use conformance::faults::{
    DoorbellFaults, FaultControl, FaultCounts, FaultFixture, FaultLink, Isr,
};
use conformance::mailbox::{DoorbellFixture, DoorbellLink, Line};
use ipc_traits::mailbox::{Event, InterruptSource, Listen};
use msgbox_v853::registers::Processor;
use msgbox_v853::sim::{Faults, MsgboxSim, SimRegs};
use msgbox_v853::{Interrupts, Notifier, NotifyReceiver};

type Regs = SimRegs<'static>;

struct FaultyV853;

struct Control(&'static MsgboxSim);

impl FaultControl for Control {
    fn arm(&self, f: DoorbellFaults) {
        self.0.set_faults(
            Faults {
                channels: 1 << 0,
                ..Faults::default()
            }
            .with_rates(f),
        );
    }

    fn counts(&self) -> FaultCounts {
        self.0.fault_counters()
    }

    fn deliver_delayed(&self) -> u32 {
        self.0.deliver_delayed()
    }
}

/// The interrupt entry of `who`: its block's output, then the driver's
/// handler, which acknowledges the latched events.
fn isr(sim: &'static MsgboxSim, who: Processor, mut irq: Interrupts<Regs>) -> Isr {
    Isr::new(move || {
        let fired = sim.block_line(who);
        if fired {
            let _events = irq.on_interrupt();
        }
        fired
    })
}

impl DoorbellLink for FaultyV853 {
    type Ring = Notifier<Regs, 0>;
    type Take = NotifyReceiver<Regs, 0>;

    fn open() -> DoorbellFixture<Self> {
        let f = Self::open_faulty();
        DoorbellFixture {
            ring_b: f.ring_b,
            take_b: f.take_b,
            ring_a: f.ring_a,
            take_a: f.take_a,
            line_b: Line::new(|| false),
            queues: 32,
        }
    }
}

impl FaultLink for FaultyV853 {
    const WORD_FIFO: bool = true;

    fn open_faulty() -> FaultFixture<Self> {
        let sim = MsgboxSim::new_static();
        let mut a = sim.msgbox(Processor::Arm).split();
        let mut b = sim.msgbox(Processor::Riscv).split();
        for rx in [&mut a.rx0, &mut b.rx0] {
            rx.listen(Event::DataAvailable)
                .unwrap_or_else(|e| panic!("{e:?}"));
        }
        FaultFixture {
            ring_b: a.tx0.into_notify(),
            take_b: b.rx0.into_notify_rx(8),
            ring_a: b.tx0.into_notify(),
            take_a: a.rx0.into_notify_rx(8),
            isr_a: isr(sim, Processor::Arm, a.irq),
            isr_b: isr(sim, Processor::Riscv, b.irq),
            control: Arc::new(Control(sim)),
        }
    }
}

conformance::fault_suite!(FaultyV853);
