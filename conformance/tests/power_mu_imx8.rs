//! The power-domain suites for `mu-imx8`.
//!
//! - `power`: a split-ownership link whose doorbells (`vq_id << 16` on MU
//!   channel 1, sheet imx8-mu.md §6) are also the wake interrupts
//!   (cache-and-wake.md §7.1): a core waiting in WFI wakes on the receive
//!   interrupt.
//! - `stop`: the cores enter STOP (`SR.PM` = 3 as the peer reads it) and
//!   only the general-purpose interrupt wakes them. A sends its wake
//!   requests on GP0 (`CR.GIR0` → B's `SR.GIP0`), B on GP1; each doorbell
//!   goes through `rpmsg::wake::WakeNotify` (request, poll `SR.PM` for Run,
//!   ring holding the awake witness) and each idle loop acknowledges with
//!   `rpmsg::wake::WakeAck` (W1C of `SR.GIPn` once the announced doorbell was
//!   taken). The same run with plain doorbells stalls.
//!
//! UNCERTAIN(cache-and-wake.md §7.1): that a core in STOP is woken by the
//! general-purpose interrupt and *not* by the channel-1 receive interrupt is
//! a GPC routing choice of the firmware (the GPC part is UNVERIFIED there);
//! the model takes the case where only the GP interrupt is routed as a wake
//! source, so a receive doorbell waits in the MU until the core runs.

use std::sync::Arc;

use conformance::mailbox::{DoorbellFixture, DoorbellLink, Line};
use conformance::power::{WakeDoorbellFixture, WakeDoorbellLink};
use ipc_traits::mailbox::{Event, Listen};
use mu_imx8::sim::{Side, Sim, SimRegs};
use mu_imx8::{Gp, Mu, MuParts, PowerMode, RpmsgNotify, RpmsgNotifyRx};
use rpmsg::wake::WakeRequests;

type R = SimRegs;

/// Channel 1 both ways.
struct DoorbellMu;

/// One side's GP interrupts 0 and 1.
type Gps = (Gp<R, 0>, Gp<R, 1>);

/// The doorbells on channel 1 of a fresh MU, and each side's GP 0 and 1.
fn doorbells(sim: Sim) -> (DoorbellFixture<DoorbellMu>, Gps, Gps) {
    let MuParts {
        tx1: a_tx1,
        rx1: a_rx1,
        gp0: a_gp0,
        gp1: a_gp1,
        ..
    } = Mu::new(sim.side(Side::A)).split();
    let MuParts {
        tx1: b_tx1,
        rx1: mut b_rx1,
        gp0: b_gp0,
        gp1: b_gp1,
        ..
    } = Mu::new(sim.side(Side::B)).split();
    b_rx1
        .listen(Event::DataAvailable)
        .unwrap_or_else(|e| panic!("{e}"));
    let fixture = DoorbellFixture {
        ring_b: a_tx1.into_rpmsg_notify(),
        take_b: b_rx1.into_rpmsg_notify_rx(),
        ring_a: b_tx1.into_rpmsg_notify(),
        take_a: a_rx1.into_rpmsg_notify_rx(),
        line_b: Line::new(move || sim.line(Side::B)),
        queues: 2,
    };
    (fixture, (a_gp0, a_gp1), (b_gp0, b_gp1))
}

impl DoorbellLink for DoorbellMu {
    type Ring = RpmsgNotify<R>;
    type Take = RpmsgNotifyRx<R>;

    fn open() -> DoorbellFixture<Self> {
        doorbells(Sim::new()).0
    }
}

/// This side's `SR.GIPn`: the peer's wake requests.
struct Gip<const N: u8>(Gp<R, N>);

impl<const N: u8> WakeRequests for Gip<N> {
    fn is_requested(&mut self) -> bool {
        self.0.is_pending()
    }
    fn acknowledge(&mut self) -> bool {
        // Write-1-to-clear of exactly GIPn (sheet imx8-mu.md §2.3); the
        // peer's CR.GIRn clears with it (§2.2).
        self.0.take()
    }
}

impl WakeDoorbellLink for DoorbellMu {
    type WakeB = Gp<R, 0>;
    type RequestsB = Gip<0>;
    type WakeA = Gp<R, 1>;
    type RequestsA = Gip<1>;

    fn open_wake() -> WakeDoorbellFixture<Self> {
        let sim = Sim::new();
        let (doorbells, a, b) = doorbells(sim);
        WakeDoorbellFixture {
            doorbells,
            wake_b: a.0,
            requests_b: Gip(b.0),
            wake_a: b.1,
            requests_a: Gip(a.1),
            set_stopped: Arc::new(move |core, stopped| {
                let side = if core == 0 { Side::A } else { Side::B };
                let mode = if stopped {
                    PowerMode::Stop
                } else {
                    PowerMode::Run
                };
                sim.set_power_mode(side, mode);
            }),
        }
    }
}

mod power {
    conformance::power_suite!(super::DoorbellMu);
}

mod stop {
    conformance::stop_suite!(super::DoorbellMu);
}
