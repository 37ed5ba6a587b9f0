//! Interrupt-driven links: each side touches its rings only after a
//! doorbell, as firmware that sleeps in `wfi` between interrupts does.
//!
//! The link suite's echo tests poll (every loop iteration reads the rings),
//! which hides a receiver that is never notified again. Here a side is
//! *asleep* until its mailbox shows a doorbell; awake, it receives and sends
//! until neither makes progress, then goes back to sleep. Both sides run on
//! one thread in a seeded random order, each behind its own non-coherent
//! cache ([`crate::link`]'s geometry and line sizes), so the run is
//! deterministic and a lost wake-up is detected exactly: both sides asleep,
//! no doorbell pending or owed on either side, messages still to move. That
//! state can never change again, and the test fails at once with the
//! counts, instead of waiting out a time budget.

use ipc_traits::mailbox::{blocking_notify, Notify, NotifyRx, QueueId};
use rpmsg::link::{Endpoint, Link, Rx, Sent, Storage, Tx};
use rpmsg::rings::{Halves, MasterRings, RemoteRings};
use vring::{Legacy, Suppression};

use crate::link::{
    master_config, payload, remote_config, MasterLink, RemoteLink, GEOMETRY, MASTER_LINE,
    MAX_PAYLOAD, NUM, REMOTE_LINE,
};
use crate::mailbox::{DoorbellFixture, DoorbellLink, PATIENCE};
use crate::rng::SplitMix64;
use crate::sim::{CacheConfig, SimMemory, WeakOrder, WeakStats};

/// Ring tables, leaked: they live as long as the process.
fn remote_tables<const N: usize>() -> &'static rpmsg::rings::RemoteTables<N> {
    Box::leak(Box::default())
}

const PEER_BASE: u64 = 0x4000_0000;

/// How many messages each direction moves.
pub const fn message_count() -> u32 {
    if cfg!(miri) {
        50
    } else {
        20_000
    }
}

/// One side of the link and what it has done.
struct Side<'l, 'm, R: Halves<'m>, N: Notify, T: NotifyRx> {
    name: &'static str,
    tx: Tx<'l, 'm, R, N>,
    rx: Rx<'l, 'm, R, N>,
    take: T,
    ep: Endpoint,
    peer: u32,
    /// Handling a doorbell (reading the rings is allowed).
    awake: bool,
    /// A doorbell taken while awake (by the "interrupt handler"): the next
    /// attempt to sleep returns at once, as `wfi` does with an interrupt
    /// pending.
    latched: bool,
    /// Asleep and found no doorbell since the last progress of either side.
    quiet: bool,
    sent: u32,
    got: u32,
    wakeups: u32,
    out: [u8; MAX_PAYLOAD],
    want: [u8; MAX_PAYLOAD],
}

impl<'l, 'm, R: Halves<'m>, N: Notify, T: NotifyRx> Side<'l, 'm, R, N, T> {
    fn new(
        name: &'static str,
        link: &'l mut Link<'m, R, N>,
        take: T,
        ep: Endpoint,
        peer: u32,
    ) -> Self {
        let (tx, rx) = link.split();
        Self {
            name,
            tx,
            rx,
            take,
            ep,
            peer,
            awake: false,
            latched: false,
            quiet: false,
            sent: 0,
            got: 0,
            wakeups: 0,
            out: [0; MAX_PAYLOAD],
            want: [0; MAX_PAYLOAD],
        }
    }

    fn done(&self, count: u32) -> bool {
        self.sent == count && self.got == count
    }

    /// One scheduling slot; returns whether anything happened.
    fn step(&mut self, count: u32, rng: &mut SplitMix64) -> bool {
        if !self.awake {
            let set = self.take.take_pending().unwrap_or_default();
            if !set.is_empty() {
                self.awake = true;
                self.wakeups += 1;
                return true;
            }
            if self.tx.owes_doorbell() {
                // A timer tick retries a doorbell the mailbox refused; it
                // does not read the rings.
                self.tx.flush();
                return !self.tx.owes_doorbell();
            }
            self.quiet = true;
            return false;
        }
        if rng.one_in(2) {
            // The interrupt handler runs while awake and latches the wake-up.
            let set = self.take.take_pending().unwrap_or_default();
            if !set.is_empty() {
                self.latched = true;
            }
        }
        let mut progressed = false;
        match self.rx.try_recv(&mut self.out) {
            Ok(Some(r)) => {
                let n = payload(self.got, &mut self.want);
                assert_eq!(
                    (r.src, r.dst),
                    (self.peer, self.ep.addr()),
                    "{}: addresses",
                    self.name
                );
                assert_eq!(
                    r.len, n,
                    "{}: message {} length (lost, duplicated or reordered)",
                    self.name, self.got
                );
                assert_eq!(
                    &self.out[..n],
                    &self.want[..n],
                    "{}: message {} corrupted",
                    self.name,
                    self.got
                );
                self.got += 1;
                progressed = true;
            }
            Ok(None) => {}
            Err(e) => panic!("{}: receive {}: {e}", self.name, self.got),
        }
        if self.sent < count {
            let n = payload(self.sent, &mut self.out);
            match self.tx.try_send(&self.ep, self.peer, &self.out[..n]) {
                Ok(Sent::Sent) => {
                    self.sent += 1;
                    progressed = true;
                }
                Ok(Sent::NoBuffer) => {}
                Err(e) => panic!("{}: send {}: {e}", self.name, self.sent),
            }
        }
        if !progressed {
            // Nothing to receive (the ring was found empty) and nothing
            // could be sent: sleep until the next doorbell.
            self.awake = core::mem::take(&mut self.latched);
        }
        true
    }
}

fn q(i: u8) -> QueueId {
    QueueId::new(i).unwrap_or_else(|| panic!("queue {i}"))
}

/// `EVENT_IDX` negotiated, both sides interrupt-driven, `count` messages of
/// random sizes each way at once, checked for loss, duplication, order and
/// content. Fails with "starved" when both sides sleep with no doorbell
/// pending while messages remain.
pub fn event_idx_interrupt_driven_both_ways<L: DoorbellLink>(count: u32, seed: u64) {
    event_idx_interrupt_driven_in::<L>(count, seed, None);
}

/// [`event_idx_interrupt_driven_both_ways`] over memory ordered as `order`
/// says; returns what weak ordering did on the (master, remote) cores.
pub fn event_idx_interrupt_driven_in<L: DoorbellLink>(
    count: u32,
    seed: u64,
    order: Option<WeakOrder>,
) -> [Option<WeakStats>; 2] {
    let DoorbellFixture {
        mut ring_b,
        take_b,
        ring_a,
        take_a,
        ..
    } = L::open();
    let mem = SimMemory::new(GEOMETRY.size, PEER_BASE).with_order(order);
    let mcore = mem.core::<MASTER_LINE>(CacheConfig::write_back(seed));
    let rcore = mem.core::<REMOTE_LINE>(CacheConfig::write_back(seed ^ 0xB));
    let master_config = rpmsg::rings::MasterConfig {
        suppression: Suppression::EventIdx,
        ..master_config()
    };
    // SAFETY: the pool belongs to this link alone.
    let rings = unsafe { MasterRings::<_, Legacy, NUM>::new(&mcore, master_config) }
        .unwrap_or_else(|e| panic!("master rings: {e}"));
    // Linux kicks once when the virtqueues are ready (§2.1); the remote
    // starts asleep and wakes on it.
    blocking_notify(&mut ring_b, q(0), PATIENCE).unwrap_or_else(|e| panic!("first kick: {e:?}"));
    let mut ms = Storage::<1>::new();
    let mut master: MasterLink<'_, L::Ring> = Link::new(rings, ring_b, &mut ms);
    let remote_config = rpmsg::rings::RemoteConfig {
        suppression: Suppression::EventIdx,
        ..remote_config()
    };
    // SAFETY: the buffer areas are the master's pool halves, disjoint; the
    // remote's core builds no other buffer over them.
    let rings =
        unsafe { RemoteRings::<_, Legacy, NUM>::new(&rcore, remote_config, remote_tables()) }
            .unwrap_or_else(|e| panic!("remote rings: {e}"));
    let mut rs = Storage::<1>::new();
    let mut remote: RemoteLink<'_, L::Ring> = Link::new(rings, ring_a, &mut rs);
    let (maddr, raddr) = (1024, 40);
    let mep = master.bind(maddr).unwrap_or_else(|e| panic!("{e}"));
    let rep = remote.bind(raddr).unwrap_or_else(|e| panic!("{e}"));
    let mut m = Side::new("master", &mut master, take_a, mep, raddr);
    let mut r = Side::new("remote", &mut remote, take_b, rep, maddr);
    // The master has messages to send from the start: it is awake.
    m.awake = true;
    let mut rng = SplitMix64::new(seed);
    // A deadline against a livelock (not the starvation check, which is
    // exact): generous slots per message.
    let mut slots = 200u64 * u64::from(count) + 10_000;
    while !(m.done(count) && r.done(count)) {
        slots = slots.checked_sub(1).unwrap_or_else(|| {
            panic!(
                "no completion within the slot budget: master sent {} got {}, remote sent {} got {}",
                m.sent, m.got, r.sent, r.got
            )
        });
        // Run one side for a short random burst, so that batches form and
        // the other side's event index is sometimes stale, sometimes not.
        let burst = 1 + rng.below(6);
        let master_turn = rng.one_in(2);
        let mut progressed = false;
        for _ in 0..burst {
            progressed |= if master_turn {
                m.step(count, &mut rng)
            } else {
                r.step(count, &mut rng)
            };
        }
        if progressed {
            m.quiet = false;
            r.quiet = false;
        } else if m.quiet && r.quiet && !m.awake && !r.awake {
            panic!(
                "starved: both sides asleep with no doorbell pending or owed; \
                 master sent {} got {} (woken {} times), remote sent {} got {} \
                 (woken {} times) of {count} each way",
                m.sent, m.got, m.wakeups, r.sent, r.got, r.wakeups
            );
        }
    }
    let wakeups = (m.wakeups, r.wakeups);
    drop((m, r));
    for (who, tx, rx, rings, broken) in [
        (
            "master",
            master.tx_stats(),
            master.rx_stats(),
            master.ring_stats(),
            master.is_broken(),
        ),
        (
            "remote",
            remote.tx_stats(),
            remote.rx_stats(),
            remote.ring_stats(),
            remote.is_broken(),
        ),
    ] {
        assert_eq!(
            rings.0.failures.total() + rings.1.failures.total(),
            0,
            "{who}: ring failures {rings:?}"
        );
        assert_eq!(
            (rx.bad_header, rx.unbound, rx.return_failures, broken),
            (0, 0, 0, false),
            "{who}: {rx:?}"
        );
        assert_eq!((tx.messages, rx.messages), (count, count), "{who}");
    }
    // EVENT_IDX did its job both ways: doorbells were rung and some were
    // saved (a publication that did not cross the consumer's event).
    let suppressed = |s: (vring::Stats, vring::Stats)| {
        s.0.notifications_suppressed + s.1.notifications_suppressed
    };
    println!(
        "interrupt-driven EVENT_IDX: {count} messages each way; woken master {} remote {}; \
         doorbells suppressed master {} remote {}",
        wakeups.0,
        wakeups.1,
        suppressed(master.ring_stats()),
        suppressed(remote.ring_stats())
    );
    assert!(
        wakeups.0 > 1 && wakeups.1 > 1,
        "woken {} / {}",
        wakeups.0,
        wakeups.1
    );
    assert!(
        suppressed(master.ring_stats()) > 0 && suppressed(remote.ring_stats()) > 0,
        "no doorbell was ever suppressed: EVENT_IDX not in effect"
    );
    [mcore.weak_stats(), rcore.weak_stats()]
}
