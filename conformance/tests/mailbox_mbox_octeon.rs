//! The mailbox conformance suite for `mbox-octeon` on its simulation.
//!
//! The OCTEON CIU mailbox is a doorbell (octeon-ciu-mbox.md §3: 32 bits per
//! core, write-1-to-set / write-1-to-clear, no payload), so only the
//! doorbell suite applies: there is no word FIFO to test, and no separate
//! peer-wake handshake (a mailbox write *is* the wake, cache-and-wake.md
//! §7.4), so no `WakeLink` either. The wake path is tested in the crate's
//! own tests (`the_doorbell_is_the_peer_wake`).
//!
//! Fixture: a CN7130 model (4 cores); side A is core 0, side B is core 2
//! (not adjacent, so a wrong CSR stride shows). Queue `i` is carried by bit
//! `BITS[i]` in both directions; the bits span both 16-bit halves of the
//! mailbox, which the CIU enables separately (§3.1).

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

mod doorbell {
    conformance::doorbell_suite!(super::Octeon);
}

/// The end-to-end rpmsg link suite over this backend's doorbells.
mod link {
    conformance::link_suite!(super::Octeon);
}
