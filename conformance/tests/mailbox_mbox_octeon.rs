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

#[path = "fixtures/octeon.rs"]
mod fixture;
use fixture::Octeon;

mod doorbell {
    conformance::doorbell_suite!(super::Octeon);
}

/// The end-to-end rpmsg link suite over this backend's doorbells.
mod link {
    conformance::link_suite!(super::Octeon);
}

/// The byte stream over an endpoint (`rpmsg::stream`) over this
/// backend's doorbells.
mod stream {
    conformance::stream_suite!(super::Octeon);
}

/// Weak mode (`conformance::sim::WeakOrder`), the interrupt entry: core 0
/// stores round `k` to shared memory, then rings bit 4 of core 2; core 2's
/// `MboxIrq::on_interrupt` reports it, core 2 loads the word *before*
/// taking the bit (so only the entry's I/O read barrier orders the load),
/// and the word must be `k`.
#[test]
fn weak_interrupt_entry_orders_shared_memory() {
    use conformance::sim::{CacheConfig, SimMemory, WeakOrder};
    use ipc_traits::mailbox::{Event, InterruptSource, Listen, Mailbox};
    use ipc_traits::shm::SharedMemory;
    use mbox_octeon::sim::Ciu;
    use mbox_octeon::CoreId;

    let rounds = conformance::mailbox::weak_rounds();
    let ciu = Ciu::cn7130();
    let a = ciu.mbox(0).split();
    let peer = CoreId::new(2).unwrap_or_else(|| panic!("core 2"));
    let mut tx = a.outbox.bit4.into_tx(&a.irq, peer);
    let mut b = ciu.mbox(2).split();
    let mut rx = b.inbox.bit4.into_rx(&mut b.irq);
    rx.listen(Event::DataAvailable)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut irq_b = b.irq;
    let mem = SimMemory::new(64, 0).weak(WeakOrder::arm_like(75).uncached());
    let (ack, acked) = std::sync::mpsc::channel::<()>();
    let reader = {
        let mem = mem.clone();
        std::thread::spawn(move || {
            let core = mem.core::<4>(CacheConfig::COHERENT);
            for k in 1..=rounds {
                let mut spins = 0u64;
                while irq_b.on_interrupt().data_available & (1 << 4) == 0 {
                    spins += 1;
                    assert!(spins < 50_000_000, "round {k}: no interrupt");
                }
                let mut w = [0u8; 4];
                core.read(0, &mut w).unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(
                    u32::from_ne_bytes(w),
                    k,
                    "round {k}: the load ran ahead of the interrupt entry"
                );
                assert!(rx.take_pending(), "round {k}: bit 4 taken");
                if ack.send(()).is_err() {
                    return;
                }
            }
        })
    };
    let core = mem.core::<4>(CacheConfig::COHERENT);
    for k in 1..=rounds {
        core.write(0, &k.to_ne_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
        tx.ring();
        if acked.recv().is_err() {
            break;
        }
    }
    reader
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p));
}
