//! The shared mailbox suites on the Allwinner V853 msgbox simulation.
//!
//! Side A is the Cortex-A7 (processor 0), side B the E907 (processor 1).
//! The word fixture uses channel 0 (the rpmsg channel): A's `tx0` writes the
//! FIFO in the E907's block, B's `rx0` pops it (v853-msgbox.md §3).
//!
//! Capabilities: word FIFO of depth 8 (`word_mailbox_suite!`) and doorbells
//! through the word channel with the raw-queue-id convention
//! (`doorbell_suite!`). The msgbox has no peer-wake interrupt (nothing in the
//! sheet describes one), so `wake_suite!` does not apply.
//!
//! Interrupt lines: each block has one interrupt output, and in the model
//! both processors receive both outputs (UNCERTAIN for the E907, see
//! `msgbox_v853::sim::MsgboxSim::line`). `line_a` / `line_b` are the A7's
//! and the E907's inputs.

use conformance::mailbox::{Line, WordFixture, WordLink};
use ipc_traits::mailbox::{Events, InterruptSource};
use msgbox_v853::registers::Processor;
use msgbox_v853::sim::{MsgboxSim, SimRegs};
use msgbox_v853::{Channel, Interrupts, Msgbox, Parts, Rx, Tx};

type Regs = SimRegs<'static>;

/// One processor's interrupt entry, carrying the handles the fixture does
/// not expose so `reassemble` can join the full `Parts` back.
struct Side<T> {
    irq: Interrupts<Regs>,
    rest: T,
}

impl<T> InterruptSource for Side<T> {
    fn on_interrupt(&mut self) -> Events {
        self.irq.on_interrupt()
    }
}

/// Side A's handles except `tx0` (lent to the fixture).
struct RestA {
    tx1: Channel<Regs, 1, Tx>,
    tx2: Channel<Regs, 2, Tx>,
    tx3: Channel<Regs, 3, Tx>,
    rx0: Channel<Regs, 0, Rx>,
    rx1: Channel<Regs, 1, Rx>,
    rx2: Channel<Regs, 2, Rx>,
    rx3: Channel<Regs, 3, Rx>,
}

/// Side B's handles except `rx0` (lent to the fixture).
struct RestB {
    tx0: Channel<Regs, 0, Tx>,
    tx1: Channel<Regs, 1, Tx>,
    tx2: Channel<Regs, 2, Tx>,
    tx3: Channel<Regs, 3, Tx>,
    rx1: Channel<Regs, 1, Rx>,
    rx2: Channel<Regs, 2, Rx>,
    rx3: Channel<Regs, 3, Rx>,
}

struct V853Words;

impl V853Words {
    fn fixture(a: Parts<Regs>, b: Parts<Regs>, line_a: Line, line_b: Line) -> WordFixture<Self> {
        WordFixture {
            tx: a.tx0,
            rx: b.rx0,
            irq_a: Side {
                irq: a.irq,
                rest: RestA {
                    tx1: a.tx1,
                    tx2: a.tx2,
                    tx3: a.tx3,
                    rx0: a.rx0,
                    rx1: a.rx1,
                    rx2: a.rx2,
                    rx3: a.rx3,
                },
            },
            irq_b: Side {
                irq: b.irq,
                rest: RestB {
                    tx0: b.tx0,
                    tx1: b.tx1,
                    tx2: b.tx2,
                    tx3: b.tx3,
                    rx1: b.rx1,
                    rx2: b.rx2,
                    rx3: b.rx3,
                },
            },
            tx_channel: 0,
            rx_channel: 0,
            line_a,
            line_b,
        }
    }

    fn unpack(f: WordFixture<Self>) -> (Parts<Regs>, Parts<Regs>) {
        let (ra, rb) = (f.irq_a.rest, f.irq_b.rest);
        let a = Parts {
            tx0: f.tx,
            tx1: ra.tx1,
            tx2: ra.tx2,
            tx3: ra.tx3,
            rx0: ra.rx0,
            rx1: ra.rx1,
            rx2: ra.rx2,
            rx3: ra.rx3,
            irq: f.irq_a.irq,
        };
        let b = Parts {
            tx0: rb.tx0,
            tx1: rb.tx1,
            tx2: rb.tx2,
            tx3: rb.tx3,
            rx0: f.rx,
            rx1: rb.rx1,
            rx2: rb.rx2,
            rx3: rb.rx3,
            irq: f.irq_b.irq,
        };
        (a, b)
    }
}

impl WordLink for V853Words {
    const DEPTH: usize = 8;
    type Tx = Channel<Regs, 0, Tx>;
    type Rx = Channel<Regs, 0, Rx>;
    type IrqA = Side<RestA>;
    type IrqB = Side<RestB>;

    fn open() -> WordFixture<Self> {
        let sim = MsgboxSim::new_static();
        let a = sim.msgbox(Processor::Arm).split();
        let b = sim.msgbox(Processor::Riscv).split();
        let line_a = Line::new(move || sim.line(Processor::Arm));
        let line_b = Line::new(move || sim.line(Processor::Riscv));
        Self::fixture(a, b, line_a, line_b)
    }

    fn reassemble(fixture: WordFixture<Self>) -> WordFixture<Self> {
        let (line_a, line_b) = (fixture.line_a.clone(), fixture.line_b.clone());
        let (a, b) = Self::unpack(fixture);
        Self::fixture(
            Msgbox::join(a).split(),
            Msgbox::join(b).split(),
            line_a,
            line_b,
        )
    }
}

mod word {
    conformance::word_mailbox_suite!(super::V853Words);
}

#[path = "fixtures/v853.rs"]
mod fixture;
use fixture::V853Doorbells;

mod doorbell {
    conformance::doorbell_suite!(super::V853Doorbells);
}

/// The end-to-end rpmsg link suite over this backend's doorbells.
mod link {
    conformance::link_suite!(super::V853Doorbells);
}
/// The byte stream over an endpoint (`rpmsg::stream`) over this
/// backend's doorbells.
mod stream {
    conformance::stream_suite!(super::V853Doorbells);
}
