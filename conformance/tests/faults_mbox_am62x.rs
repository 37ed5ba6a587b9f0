//! The fault-injection suite on `mbox-am62x`'s simulated K3 mailbox cluster.
//!
//! Side A, the master, is Linux (user 0), side B the M4F (user 2), with
//! Linux's queue assignment (sheet `am62x-mailbox.md` §3.1): Linux sends on
//! queue 1 and receives on queue 0. Kicks are raw vring ids (§4.1), taken
//! by [`KickRx`]. Faults are armed on queues 0 and 1
//! ([`mbox_am62x::sim::Faults`]). Each side's interrupt entry is its user's
//! line followed by the driver's [`Irq`] acknowledgement (the status is
//! latched, §2.1).

use std::sync::Arc;

use conformance::faults::{
    DoorbellFaults, FaultControl, FaultCounts, FaultFixture, FaultLink, Isr,
};
use conformance::mailbox::{DoorbellFixture, DoorbellLink, Line};
use mbox_am62x::convention::{LINUX_TO_M4F, M4F_TO_LINUX};
use mbox_am62x::sim::{Cluster, Faults, SimRegs};
use mbox_am62x::{
    AnyQueue, Event, InterruptSource, Irq, KickRx, Listen, Mbox, Rx, Tx, User, FIFO_DEPTH,
};

type R = SimRegs<'static>;

struct FaultyK3;

struct Control(&'static Cluster);

impl FaultControl for Control {
    fn arm(&self, f: DoorbellFaults) {
        self.0.set_faults(
            Faults {
                queues: (1 << M4F_TO_LINUX) | (1 << LINUX_TO_M4F),
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

/// The interrupt entry of `user`: its line, then the driver's handler,
/// which acknowledges the latched events.
fn isr(cluster: &'static Cluster, user: User, mut irq: Irq<R>) -> Isr {
    Isr::new(move || {
        let fired = cluster.line(user);
        if fired {
            let _events = irq.on_interrupt();
        }
        fired
    })
}

impl DoorbellLink for FaultyK3 {
    type Ring = AnyQueue<R, Tx>;
    type Take = KickRx<AnyQueue<R, Rx>>;

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

impl FaultLink for FaultyK3 {
    const WORD_FIFO: bool = true;

    fn open_faulty() -> FaultFixture<Self> {
        let cluster = Cluster::new_static();
        let linux = Mbox::new(cluster.regs(), User::A53).split();
        let m4f = Mbox::new(cluster.regs(), User::M4F).split();
        // Linux: tx on queue 1, rx on queue 0; the M4F the other way round.
        let mut linux_rx = linux.q0.into_rx();
        let mut m4f_rx = m4f.q1.into_rx();
        linux_rx
            .listen(Event::DataAvailable)
            .unwrap_or_else(|e| panic!("{e}"));
        m4f_rx
            .listen(Event::DataAvailable)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((M4F_TO_LINUX, LINUX_TO_M4F), (0, 1));
        FaultFixture {
            ring_b: linux.q1.into_tx().degrade(),
            take_b: KickRx::new(m4f_rx.degrade(), FIFO_DEPTH as u32),
            ring_a: m4f.q0.into_tx().degrade(),
            take_a: KickRx::new(linux_rx.degrade(), FIFO_DEPTH as u32),
            isr_a: isr(cluster, User::A53, linux.irq),
            isr_b: isr(cluster, User::M4F, m4f.irq),
            control: Arc::new(Control(cluster)),
        }
    }
}

conformance::fault_suite!(FaultyK3);
