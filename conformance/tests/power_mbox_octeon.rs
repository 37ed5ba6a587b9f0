//! The power-domain suite for `mbox-octeon`: a split-ownership link whose
//! doorbell bits are also the wake interrupts (a mailbox write raises CIU
//! IP2 and wakes a core from `WAIT`, cache-and-wake.md §7.4 [inferred]).
//! OCTEON memory is coherent and never powered down in hardware; the
//! simulation still powers the regions down to check the protocol.

use conformance::mailbox::{DoorbellFixture, DoorbellLink, Line};
use ipc_traits::mailbox::{Event, Listen, Mailbox};
use mbox_octeon::sim::{Ciu, CoreRegs};
use mbox_octeon::{CoreId, MboxParts, RxQueues, TxQueues};

/// The mailbox bits of queues 0..=3.
const BITS: [u8; 4] = [4, 15, 16, 31];
const A: u8 = 0;
const B: u8 = 2;

struct Octeon;

/// Claims `BITS` on `me`: receive from anyone, ring `peer`.
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
    let take = RxQueues::new([
        inbox.bit4.into_rx(&mut irq).degrade(),
        inbox.bit15.into_rx(&mut irq).degrade(),
        inbox.bit16.into_rx(&mut irq).degrade(),
        inbox.bit31.into_rx(&mut irq).degrade(),
    ])
    .unwrap_or_else(|(_, e)| panic!("{e}"));
    for (i, &bit) in BITS.iter().enumerate() {
        let queue =
            ipc_traits::mailbox::QueueId::new(i as u8).unwrap_or_else(|| panic!("queue {i}"));
        assert_eq!(
            (ring.bit_of(queue), take.bit_of(queue)),
            (Some(bit), Some(bit))
        );
    }
    (ring, take)
}
impl DoorbellLink for Octeon {
    type Ring = TxQueues<CoreRegs, 4>;
    type Take = RxQueues<CoreRegs, 4>;

    fn open() -> DoorbellFixture<Self> {
        let ciu = Ciu::cn7130();
        let (ring_b, take_a) = claim(ciu, A, B);
        let (ring_a, mut take_b) = claim(ciu, B, A);
        take_b
            .listen(Event::DataAvailable)
            .unwrap_or_else(|e| panic!("{e}"));
        DoorbellFixture {
            ring_b,
            take_b,
            ring_a,
            take_a,
            line_b: Line::new(move || ciu.ip2_level(B)),
            queues: BITS.len() as u8,
        }
    }
}

mod power {
    conformance::power_suite!(super::Octeon);
}
