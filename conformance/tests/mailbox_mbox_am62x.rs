//! The shared mailbox suite on `mbox-am62x`'s simulated K3 mailbox cluster.
//!
//! Both sides are the unchanged driver acting as two users of one simulated
//! cluster, with Linux's queue assignment (sheet `am62x-mailbox.md` §3.1):
//! side A is the M4F (user 2), side B is Linux (user 0).
//!
//! - Word suite: A sends on queue 0 (M4F → A53), B receives on queue 0.
//! - Doorbell suite: kicks are raw vring ids (sheet §4.1). A rings B on
//!   queue 0, B rings A on queue 1; the receivers are [`KickRx`], which also
//!   recognises the `0xFFFF_FFxx` control messages.
//! - No wake suite: the K3 mailbox has no wake interrupt (sheet §2: only
//!   `NEWMSG` and `NOTFULL` events); TI's suspend messages are surfaced by
//!   `KickRx` as control events, not faked as a `WakeLink`.

use conformance::mailbox::{Line, WordFixture, WordLink};
use mbox_am62x::sim::{Cluster, SimRegs};
use mbox_am62x::{
    Events, InterruptSource, Irq, Mbox, MboxParts, Queue, Rx, Tx, Unconfigured, User, FIFO_DEPTH,
};

type R = SimRegs<'static>;

/// Generates `Rest` (every queue but `q0`) and the helpers that take `q0`
/// out of a split driver and put it back, so `reassemble` can `join` every
/// handle.
macro_rules! rest {
    ($($q:ident: $n:literal),+) => {
        struct Rest {
            $($q: Queue<R, $n, Unconfigured>,)+
        }

        fn take_q0(p: MboxParts<R>) -> (Queue<R, 0, Unconfigured>, Irq<R>, Rest) {
            let MboxParts { q0, irq, $($q,)+ } = p;
            (q0, irq, Rest { $($q,)+ })
        }

        fn put_q0(q0: Queue<R, 0, Unconfigured>, irq: Irq<R>, rest: Rest) -> MboxParts<R> {
            let Rest { $($q,)+ } = rest;
            MboxParts { q0, irq, $($q,)+ }
        }
    };
}

rest!(q1: 1, q2: 2, q3: 3, q4: 4, q5: 5, q6: 6, q7: 7, q8: 8, q9: 9, q10: 10, q11: 11,
      q12: 12, q13: 13, q14: 14, q15: 15);

/// One user's interrupt entry, carrying the rest of that user's handles.
struct Side {
    irq: Irq<R>,
    rest: Rest,
    cluster: &'static Cluster,
}

impl InterruptSource for Side {
    fn on_interrupt(&mut self) -> Events {
        self.irq.on_interrupt()
    }
}

/// M4F (user 2) → Linux (user 0) on queue 0.
struct WordPair;

impl WordPair {
    fn build(cluster: &'static Cluster, a: Mbox<R>, b: Mbox<R>) -> WordFixture<Self> {
        let (q0_a, irq_a, rest_a) = take_q0(a.split());
        let (q0_b, irq_b, rest_b) = take_q0(b.split());
        WordFixture {
            tx: q0_a.into_tx(),
            rx: q0_b.into_rx(),
            irq_a: Side {
                irq: irq_a,
                rest: rest_a,
                cluster,
            },
            irq_b: Side {
                irq: irq_b,
                rest: rest_b,
                cluster,
            },
            tx_channel: 0,
            rx_channel: 0,
            line_a: Line::new(move || cluster.line(User::M4F)),
            line_b: Line::new(move || cluster.line(User::A53)),
        }
    }
}

impl WordLink for WordPair {
    const DEPTH: usize = FIFO_DEPTH;
    type Tx = Queue<R, 0, Tx>;
    type Rx = Queue<R, 0, Rx>;
    type IrqA = Side;
    type IrqB = Side;

    fn open() -> WordFixture<Self> {
        let cluster = Cluster::new_static();
        let a = Mbox::new(cluster.regs(), User::M4F);
        let b = Mbox::new(cluster.regs(), User::A53);
        Self::build(cluster, a, b)
    }

    fn reassemble(f: WordFixture<Self>) -> WordFixture<Self> {
        let WordFixture {
            tx,
            rx,
            irq_a,
            irq_b,
            ..
        } = f;
        let cluster = irq_a.cluster;
        let a = Mbox::join(put_q0(tx.into_unconfigured(), irq_a.irq, irq_a.rest));
        let b = Mbox::join(put_q0(rx.into_unconfigured(), irq_b.irq, irq_b.rest));
        assert_eq!((a.user(), b.user()), (User::M4F, User::A53));
        Self::build(cluster, a, b)
    }
}

/// Kicks both ways: M4F → Linux on queue 0, Linux → M4F on queue 1.
#[path = "fixtures/am62x.rs"]
mod fixture;
use fixture::KickPair;

mod word {
    conformance::word_mailbox_suite!(super::WordPair);
}

mod doorbell {
    conformance::doorbell_suite!(super::KickPair);
}

/// The end-to-end rpmsg link suite over this backend's doorbells.
mod link {
    conformance::link_suite!(super::KickPair);
}
/// The byte stream over an endpoint (`rpmsg::stream`) over this
/// backend's doorbells.
mod stream {
    conformance::stream_suite!(super::KickPair);
}
