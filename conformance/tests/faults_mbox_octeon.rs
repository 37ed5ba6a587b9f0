//! The fault-injection suite on `mbox-octeon`'s simulated CIU.
//!
//! A CN7130 model; side A, the master, is core 0, side B the remote is core
//! 2. Queue `i` is mailbox bit `BITS[i]` both ways (octeon-ciu-mbox.md §3:
//! write-1-to-set doorbells that coalesce, no FIFO). Faults are armed on
//! those bits of both cores ([`mbox_octeon::sim::Faults`]). Each side's
//! interrupt entry is its IP2 line (level: pending and enabled bits, §3.1,
//! falling when the bits are written 1 to clear).

use std::sync::Arc;

use conformance::faults::{
    DoorbellFaults, FaultControl, FaultCounts, FaultFixture, FaultLink, Isr,
};
use conformance::mailbox::{DoorbellFixture, DoorbellLink, Line};
use ipc_traits::mailbox::{Event, Listen, Mailbox};
use mbox_octeon::sim::{Ciu, CoreRegs, Faults};
use mbox_octeon::{CoreId, MboxParts, RxQueues, TxQueues};

/// The mailbox bits of queues 0..=3.
const BITS: [u8; 4] = [4, 15, 16, 31];
const A: u8 = 0;
const B: u8 = 2;

struct FaultyCiu;

struct Control(Ciu);

impl FaultControl for Control {
    fn arm(&self, f: DoorbellFaults) {
        self.0.set_faults(
            Faults {
                cores: (1 << A) | (1 << B),
                bits: BITS.iter().fold(0, |m, &b| m | 1 << b),
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

/// Claims `BITS` on `me`: receive from anyone (listening), ring `peer`.
fn claim(ciu: Ciu, me: u8, peer: u8) -> (TxQueues<CoreRegs, 4>, RxQueues<CoreRegs, 4>) {
    let MboxParts {
        inbox,
        outbox,
        mut irq,
    } = ciu.mbox(me).split();
    let peer = CoreId::new(peer).unwrap_or_else(|| panic!("core {peer}"));
    let ring = TxQueues::new([
        outbox.bit4.into_tx(&irq, peer).degrade(),
        outbox.bit15.into_tx(&irq, peer).degrade(),
        outbox.bit16.into_tx(&irq, peer).degrade(),
        outbox.bit31.into_tx(&irq, peer).degrade(),
    ]);
    let mut take = RxQueues::new([
        inbox.bit4.into_rx(&mut irq).degrade(),
        inbox.bit15.into_rx(&mut irq).degrade(),
        inbox.bit16.into_rx(&mut irq).degrade(),
        inbox.bit31.into_rx(&mut irq).degrade(),
    ])
    .unwrap_or_else(|(_, e)| panic!("{e}"));
    take.listen(Event::DataAvailable)
        .unwrap_or_else(|e| panic!("{e}"));
    (ring, take)
}

impl DoorbellLink for FaultyCiu {
    type Ring = TxQueues<CoreRegs, 4>;
    type Take = RxQueues<CoreRegs, 4>;

    fn open() -> DoorbellFixture<Self> {
        let f = Self::open_faulty();
        DoorbellFixture {
            ring_b: f.ring_b,
            take_b: f.take_b,
            ring_a: f.ring_a,
            take_a: f.take_a,
            line_b: Line::new(|| false),
            queues: BITS.len() as u8,
        }
    }
}

impl FaultLink for FaultyCiu {
    const WORD_FIFO: bool = false;

    fn open_faulty() -> FaultFixture<Self> {
        let ciu = Ciu::cn7130();
        let (ring_b, take_a) = claim(ciu, A, B);
        let (ring_a, take_b) = claim(ciu, B, A);
        FaultFixture {
            ring_b,
            take_b,
            ring_a,
            take_a,
            isr_a: Isr::new(move || ciu.ip2_level(A)),
            isr_b: Isr::new(move || ciu.ip2_level(B)),
            control: Arc::new(Control(ciu)),
        }
    }
}

conformance::fault_suite!(FaultyCiu);
