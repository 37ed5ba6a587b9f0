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

use conformance::power::{WakeDoorbellFixture, WakeDoorbellLink};
use mu_imx8::sim::{Side, Sim, SimRegs};
use mu_imx8::{Gp, PowerMode};
use rpmsg::wake::WakeRequests;

#[path = "fixtures/mu_imx8.rs"]
mod fixture;
use fixture::{doorbells, DoorbellMu};

type R = SimRegs;

/// This side's `SR.GIPn`: the peer's wake requests.
pub struct Gip<const N: u8>(Gp<R, N>);

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
