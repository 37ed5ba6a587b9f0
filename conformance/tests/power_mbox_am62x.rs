//! The power-domain suite for `mbox-am62x`: a split-ownership link whose
//! kicks (raw vring ids, sheet am62x-mailbox.md §4.1) are also the wake
//! interrupts. The K3 mailbox has no wake interrupt of its own (sheet §2);
//! the `NEWMSG` interrupt brings the core out of WFI, which is the strategy
//! this suite models (cache-and-wake.md §7.2 covers the suspend handshake,
//! out of scope here).

use conformance::mailbox::{DoorbellFixture, DoorbellLink, Line};
use mbox_am62x::sim::{Cluster, SimRegs};
use mbox_am62x::{AnyQueue, Event, KickRx, Listen, Mbox, Rx, Tx, User, FIFO_DEPTH};

type R = SimRegs<'static>;

/// M4F (side A) rings Linux (side B) on queue 0, Linux rings back on 1.
struct KickPair;

impl DoorbellLink for KickPair {
    type Ring = AnyQueue<R, Tx>;
    type Take = KickRx<AnyQueue<R, Rx>>;

    fn open() -> DoorbellFixture<Self> {
        let cluster = Cluster::new_static();
        let m4f = Mbox::new(cluster.regs(), User::M4F).split();
        let linux = Mbox::new(cluster.regs(), User::A53).split();
        let mut linux_rx = linux.q0.into_rx();
        linux_rx
            .listen(Event::DataAvailable)
            .unwrap_or_else(|e| panic!("{e}"));
        DoorbellFixture {
            ring_b: m4f.q0.into_tx().degrade(),
            take_b: KickRx::new(linux_rx.degrade(), FIFO_DEPTH as u32),
            ring_a: linux.q1.into_tx().degrade(),
            take_a: KickRx::new(m4f.q1.into_rx().degrade(), FIFO_DEPTH as u32),
            line_b: Line::new(move || cluster.line(User::A53)),
            queues: 32,
        }
    }
}

mod power {
    conformance::power_suite!(super::KickPair);
}
