//! The mailbox conformance suite for `mu-imx8` on its simulation.
//!
//! - Word link: side A's `TR1` → side B's `RR1` (the rpmsg channel, sheet
//!   imx8-mu.md §5, §6), depth 1.
//! - Doorbell link: rpmsg kicks (`vq_id << 16` on channel 1) both ways,
//!   queues 0 and 1. With a one-word register a second kick before the peer
//!   read the first is `WouldBlock`, which the suite tolerates.
//! - Wake link: side A wakes side B with GP interrupt 0 (`CR.GIR0` →
//!   `SR.GIP0`) and reads side B's power mode in `SR.PM`.

use std::sync::Mutex;

use conformance::mailbox::{Line, WakeFixture, WakeLink, WordFixture, WordLink};
use ipc_traits::mailbox::{Event, Events, InterruptSource, Listen};
use ipc_traits::power::Peer;
use mu_imx8::sim::{Side, Sim, SimRegs};
use mu_imx8::{Flags, Gp, Irq, Mu, MuParts, PowerMode, RxChannel, TxChannel};

type R = SimRegs;

/// Side A's handles other than `tx1` and `irq`.
struct RestA {
    tx0: TxChannel<R, 0>,
    tx2: TxChannel<R, 2>,
    tx3: TxChannel<R, 3>,
    rx0: RxChannel<R, 0>,
    rx1: RxChannel<R, 1>,
    rx2: RxChannel<R, 2>,
    rx3: RxChannel<R, 3>,
    gp: (Gp<R, 0>, Gp<R, 1>, Gp<R, 2>, Gp<R, 3>),
    flags: Flags<R>,
}

/// Side B's handles other than `rx1` and `irq`.
struct RestB {
    tx0: TxChannel<R, 0>,
    tx1: TxChannel<R, 1>,
    tx2: TxChannel<R, 2>,
    tx3: TxChannel<R, 3>,
    rx0: RxChannel<R, 0>,
    rx2: RxChannel<R, 2>,
    rx3: RxChannel<R, 3>,
    gp: (Gp<R, 0>, Gp<R, 1>, Gp<R, 2>, Gp<R, 3>),
    flags: Flags<R>,
}

/// A side's interrupt entry, carrying the rest of that side's handles so
/// `reassemble` can join the whole side.
struct SideIrq<Rest> {
    irq: Irq<R>,
    rest: Rest,
    sim: Sim,
}

impl<Rest: Send> InterruptSource for SideIrq<Rest> {
    fn on_interrupt(&mut self) -> Events {
        self.irq.on_interrupt()
    }
}

/// A's `TR1` → B's `RR1`.
struct WordMu;

fn word_fixture(sim: Sim, a: MuParts<R>, b: MuParts<R>) -> WordFixture<WordMu> {
    let MuParts {
        tx0,
        tx1,
        tx2,
        tx3,
        rx0,
        rx1,
        rx2,
        rx3,
        gp0,
        gp1,
        gp2,
        gp3,
        flags,
        irq,
    } = a;
    let irq_a = SideIrq {
        irq,
        rest: RestA {
            tx0,
            tx2,
            tx3,
            rx0,
            rx1,
            rx2,
            rx3,
            gp: (gp0, gp1, gp2, gp3),
            flags,
        },
        sim,
    };
    let a_tx1 = tx1;
    let MuParts {
        tx0,
        tx1,
        tx2,
        tx3,
        rx0,
        rx1,
        rx2,
        rx3,
        gp0,
        gp1,
        gp2,
        gp3,
        flags,
        irq,
    } = b;
    let irq_b = SideIrq {
        irq,
        rest: RestB {
            tx0,
            tx1,
            tx2,
            tx3,
            rx0,
            rx2,
            rx3,
            gp: (gp0, gp1, gp2, gp3),
            flags,
        },
        sim,
    };
    WordFixture {
        tx: a_tx1,
        rx: rx1,
        irq_a,
        irq_b,
        tx_channel: 1,
        rx_channel: 1,
        line_a: Line::new(move || sim.line(Side::A)),
        line_b: Line::new(move || sim.line(Side::B)),
    }
}

impl WordLink for WordMu {
    /// One word per transmit register (sheet imx8-mu.md §2.4).
    const DEPTH: usize = TxChannel::<R, 1>::DEPTH;
    type Tx = TxChannel<R, 1>;
    type Rx = RxChannel<R, 1>;
    type IrqA = SideIrq<RestA>;
    type IrqB = SideIrq<RestB>;

    fn open() -> WordFixture<Self> {
        let sim = Sim::new();
        word_fixture(
            sim,
            Mu::new(sim.side(Side::A)).split(),
            Mu::new(sim.side(Side::B)).split(),
        )
    }

    fn reassemble(f: WordFixture<Self>) -> WordFixture<Self> {
        let WordFixture {
            tx,
            rx,
            irq_a,
            irq_b,
            ..
        } = f;
        let sim = irq_a.sim;
        let SideIrq { irq, rest: a, .. } = irq_a;
        let (gp0, gp1, gp2, gp3) = a.gp;
        let mu_a = Mu::join(MuParts {
            tx0: a.tx0,
            tx1: tx,
            tx2: a.tx2,
            tx3: a.tx3,
            rx0: a.rx0,
            rx1: a.rx1,
            rx2: a.rx2,
            rx3: a.rx3,
            gp0,
            gp1,
            gp2,
            gp3,
            flags: a.flags,
            irq,
        });
        let SideIrq { irq, rest: b, .. } = irq_b;
        let (gp0, gp1, gp2, gp3) = b.gp;
        let mu_b = Mu::join(MuParts {
            tx0: b.tx0,
            tx1: b.tx1,
            tx2: b.tx2,
            tx3: b.tx3,
            rx0: b.rx0,
            rx1: rx,
            rx2: b.rx2,
            rx3: b.rx3,
            gp0,
            gp1,
            gp2,
            gp3,
            flags: b.flags,
            irq,
        });
        word_fixture(sim, mu_a.split(), mu_b.split())
    }
}

mod word {
    conformance::word_mailbox_suite!(super::WordMu);
}

/// rpmsg kicks over channel 1, both ways.
#[path = "fixtures/mu_imx8.rs"]
mod fixture;
use fixture::DoorbellMu;

mod doorbell {
    conformance::doorbell_suite!(super::DoorbellMu);
}

/// Side A wakes side B through GP interrupt 0.
struct WakeMu;

impl WakeLink for WakeMu {
    type Waker = Gp<R, 0>;

    fn open() -> WakeFixture<Self> {
        let sim = Sim::new();
        sim.set_power_mode(Side::B, PowerMode::Stop);
        let a = Mu::new(sim.side(Side::A)).split();
        // Side B's firmware listens for the wake interrupt.
        let mut b = Mu::new(sim.side(Side::B)).split();
        b.gp0
            .listen(Event::DataAvailable)
            .unwrap_or_else(|e| panic!("{e}"));
        let b_irq = Mutex::new(b.irq);
        WakeFixture {
            peer: Peer::new(a.gp0),
            peer_wake_line: Line::new(move || sim.line(Side::B)),
            // What side B's firmware does: its MU interrupt handler takes
            // (acknowledges) the wake interrupt and the core runs; or it goes
            // back to STOP.
            set_peer_awake: Box::new(move |awake| {
                if awake {
                    // The handler acknowledges GIP0 (which clears side A's
                    // GIR0); what it reports is the suite's business.
                    let _events = b_irq
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .on_interrupt();
                    sim.set_power_mode(Side::B, PowerMode::Run);
                } else {
                    sim.set_power_mode(Side::B, PowerMode::Stop);
                }
            }),
        }
    }
}

mod wake {
    conformance::wake_suite!(super::WakeMu);
}

/// The end-to-end rpmsg link suite over this backend's doorbells.
mod link {
    conformance::link_suite!(super::DoorbellMu);
}

/// The byte stream over an endpoint (`rpmsg::stream`) over this
/// backend's doorbells.
mod stream {
    conformance::stream_suite!(super::DoorbellMu);
}

/// Weak mode (`conformance::sim::WeakOrder`): a general-purpose interrupt
/// announces shared memory as a doorbell does. Side A stores round `k`,
/// then requests GP0 (`Gp::try_request`: its I/O write barrier); side B
/// sees `GIP0` (by `Gp::take`, or by the interrupt entry `Irq::service`
/// with `GIE0` on: each with its I/O read barrier), then loads the word,
/// which must be `k`.
#[test]
fn weak_gp_interrupt_orders_shared_memory() {
    use conformance::sim::{CacheConfig, SimMemory, WeakOrder};
    use ipc_traits::shm::SharedMemory;

    let rounds = conformance::mailbox::weak_rounds();
    let sim = Sim::new();
    let mut gp_a = Mu::new(sim.side(Side::A)).split().gp0;
    let MuParts {
        gp0: mut gp_b,
        irq: mut irq_b,
        ..
    } = Mu::new(sim.side(Side::B)).split();
    let mem = SimMemory::new(64, 0).weak(WeakOrder::arm_like(74).uncached());
    let (ack, acked) = std::sync::mpsc::channel::<()>();
    let reader = {
        let mem = mem.clone();
        std::thread::spawn(move || {
            let core = mem.core::<4>(CacheConfig::COHERENT);
            for k in 1..=rounds {
                let by_entry = k % 2 == 0;
                if by_entry {
                    gp_b.listen(Event::DataAvailable)
                        .unwrap_or_else(|e| panic!("{e}"));
                }
                let mut spins = 0u64;
                loop {
                    let seen = if by_entry {
                        irq_b.service().events.other & 1 != 0
                    } else {
                        gp_b.take()
                    };
                    if seen {
                        break;
                    }
                    spins += 1;
                    assert!(spins < 50_000_000, "round {k}: GP0 never arrived");
                }
                if by_entry {
                    gp_b.unlisten(Event::DataAvailable)
                        .unwrap_or_else(|e| panic!("{e}"));
                }
                let mut b = [0u8; 4];
                core.read(0, &mut b).unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(
                    u32::from_ne_bytes(b),
                    k,
                    "round {k} (by {}): the GP interrupt overtook the store, or the load ran ahead of it",
                    if by_entry { "the interrupt entry" } else { "take" }
                );
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
        let mut spins = 0u64;
        while gp_a.try_request().is_err() {
            spins += 1;
            assert!(spins < 50_000_000, "round {k}: GP0 stays pending");
        }
        if acked.recv().is_err() {
            break;
        }
    }
    reader
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p));
}
