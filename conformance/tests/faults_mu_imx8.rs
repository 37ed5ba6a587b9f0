//! The fault-injection suite on `mu-imx8`'s simulation.
//!
//! Doorbells are rpmsg kicks (`vq_id << 16`) on channel 1 both ways (sheet
//! imx8-mu.md §6), side A the master, side B the remote; faults are armed on
//! channel 1 only ([`mu_imx8::sim::Faults`]). Each side's interrupt entry is
//! its MU line (level: `RF1 & RIE1`, falling when `RR1` is read, §2.4).

use std::sync::Arc;

use conformance::faults::{
    DoorbellFaults, FaultControl, FaultCounts, FaultFixture, FaultLink, Isr,
};
use conformance::mailbox::{DoorbellFixture, DoorbellLink, Line};
use ipc_traits::mailbox::{Event, Listen};
use mu_imx8::sim::{Faults, Side, Sim, SimRegs};
use mu_imx8::{Mu, RpmsgNotify, RpmsgNotifyRx};

type R = SimRegs;

struct FaultyMu;

struct Control(Sim);

impl FaultControl for Control {
    fn arm(&self, f: DoorbellFaults) {
        self.0.set_faults(
            Faults {
                channels: 1 << mu_imx8::RPMSG_CHANNEL,
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

impl DoorbellLink for FaultyMu {
    type Ring = RpmsgNotify<R>;
    type Take = RpmsgNotifyRx<R>;

    fn open() -> DoorbellFixture<Self> {
        let f = Self::open_faulty();
        DoorbellFixture {
            ring_b: f.ring_b,
            take_b: f.take_b,
            ring_a: f.ring_a,
            take_a: f.take_a,
            line_b: Line::new(|| false),
            queues: 2,
        }
    }
}

impl FaultLink for FaultyMu {
    const WORD_FIFO: bool = true;

    fn open_faulty() -> FaultFixture<Self> {
        let sim = Sim::new();
        let mut a = Mu::new(sim.side(Side::A)).split();
        let mut b = Mu::new(sim.side(Side::B)).split();
        for rx in [&mut a.rx1, &mut b.rx1] {
            rx.listen(Event::DataAvailable)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        FaultFixture {
            ring_b: a.tx1.into_rpmsg_notify(),
            take_b: b.rx1.into_rpmsg_notify_rx(),
            ring_a: b.tx1.into_rpmsg_notify(),
            take_a: a.rx1.into_rpmsg_notify_rx(),
            isr_a: Isr::new(move || sim.line(Side::A)),
            isr_b: Isr::new(move || sim.line(Side::B)),
            control: Arc::new(Control(sim)),
        }
    }
}

conformance::fault_suite!(FaultyMu);
