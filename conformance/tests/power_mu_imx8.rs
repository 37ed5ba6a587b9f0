//! The power-domain suite for `mu-imx8`: a split-ownership link whose
//! doorbells (`vq_id << 16` on MU channel 1, sheet imx8-mu.md §6) are also
//! the wake interrupts (cache-and-wake.md §7.1).

use conformance::mailbox::{DoorbellFixture, DoorbellLink, Line};
use ipc_traits::mailbox::{Event, Listen};
use mu_imx8::sim::{Side, Sim, SimRegs};
use mu_imx8::{Mu, RpmsgNotify, RpmsgNotifyRx};

type R = SimRegs;

/// Channel 1 both ways.
struct DoorbellMu;

impl DoorbellLink for DoorbellMu {
    type Ring = RpmsgNotify<R>;
    type Take = RpmsgNotifyRx<R>;

    fn open() -> DoorbellFixture<Self> {
        let sim = Sim::new();
        let a = Mu::new(sim.side(Side::A)).split();
        let mut b = Mu::new(sim.side(Side::B)).split();
        b.rx1
            .listen(Event::DataAvailable)
            .unwrap_or_else(|e| panic!("{e}"));
        DoorbellFixture {
            ring_b: a.tx1.into_rpmsg_notify(),
            take_b: b.rx1.into_rpmsg_notify_rx(),
            ring_a: b.tx1.into_rpmsg_notify(),
            take_a: a.rx1.into_rpmsg_notify_rx(),
            line_b: Line::new(move || sim.line(Side::B)),
            queues: 2,
        }
    }
}

mod power {
    conformance::power_suite!(super::DoorbellMu);
}
