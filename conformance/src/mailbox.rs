//! The mailbox conformance suite: one set of behaviours every backend's
//! simulation must show.
//!
//! A backend is described to the suite by a *link fixture*: a freshly reset
//! simulated peripheral, split into the handles of one direction (side A
//! sends, side B receives), with both sides' interrupt entries and observable
//! interrupt lines. Word backends implement [`WordLink`], doorbell backends
//! (OCTEON) implement [`DoorbellLink`], and backends with a peer-wake
//! interrupt implement [`WakeLink`]. The suites are generic functions; the
//! macros [`word_mailbox_suite!`](crate::word_mailbox_suite), [`doorbell_suite!`](crate::doorbell_suite) and [`wake_suite!`](crate::wake_suite)
//! expand them into named `#[test]`s, so each backend shows up as its own
//! list of tests.
//!
//! Fixtures live in `conformance/tests/mailbox_<backend>.rs` (the backends
//! cannot depend on this crate without a dependency cycle).
//!
//! # For backend authors
//!
//! - `open()` returns a *fresh* peripheral at reset values every call.
//! - Lines are level signals read from the model: high while an enabled
//!   event is pending, low once it is acknowledged or serviced.
//! - `reassemble` must `join` every handle back into the peripheral and
//!   `split` it again: the suite checks that traffic still flows.

use std::sync::Arc;
use std::thread;

use ipc_traits::mailbox::{
    blocking_notify, blocking_recv, blocking_send, Error, ErrorKind, Event, InterruptSource,
    Listen, Notify, NotifyRx, QueueId, Spins, WordRx, WordTx,
};
use ipc_traits::power::{Asleep, Peer, WakeError, WakePeer};

use crate::rng::SplitMix64;
use crate::sim::{CacheConfig, SimCore, SimMemory, WeakOrder};

/// An observable interrupt line of a simulated peripheral.
#[derive(Clone)]
pub struct Line(Arc<dyn Fn() -> bool + Send + Sync>);

impl Line {
    /// A line whose level is read by `level`.
    pub fn new(level: impl Fn() -> bool + Send + Sync + 'static) -> Self {
        Self(Arc::new(level))
    }

    /// Whether the line is asserted now.
    pub fn is_high(&self) -> bool {
        (self.0)()
    }
}

impl core::fmt::Debug for Line {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Line({})", if self.is_high() { "high" } else { "low" })
    }
}

/// One direction of a word mailbox: side A's transmit channel and side B's
/// receive channel, connected by the simulated hardware.
pub struct WordFixture<L: WordLink> {
    /// Side A's transmit handle.
    pub tx: L::Tx,
    /// Side B's receive handle.
    pub rx: L::Rx,
    /// Side A's interrupt entry (reports `SpaceAvailable` for `tx`).
    pub irq_a: L::IrqA,
    /// Side B's interrupt entry (reports `DataAvailable` for `rx`).
    pub irq_b: L::IrqB,
    /// The bit that stands for `tx` in side A's [`ipc_traits::mailbox::Events`].
    pub tx_channel: u8,
    /// The bit that stands for `rx` in side B's events.
    pub rx_channel: u8,
    /// Side A's interrupt line.
    pub line_a: Line,
    /// Side B's interrupt line.
    pub line_b: Line,
}

/// A word-FIFO backend under test.
pub trait WordLink: Sized + 'static {
    /// The FIFO depth the hardware sheet gives for one channel.
    const DEPTH: usize;
    /// Side A's transmit handle.
    type Tx: WordTx + Listen + Send + 'static;
    /// Side B's receive handle.
    type Rx: WordRx + Listen + Send + 'static;
    /// Side A's interrupt entry.
    type IrqA: InterruptSource + Send + 'static;
    /// Side B's interrupt entry.
    type IrqB: InterruptSource + Send + 'static;
    /// A fresh peripheral at reset, split.
    fn open() -> WordFixture<Self>;
    /// Joins every handle back into the peripheral and splits it again.
    fn reassemble(fixture: WordFixture<Self>) -> WordFixture<Self>;
}

/// One direction of a doorbell mailbox (side A rings, side B takes).
pub struct DoorbellFixture<L: DoorbellLink> {
    /// Side A's doorbell towards B.
    pub ring_b: L::Ring,
    /// Side B's pending-notification reader.
    pub take_b: L::Take,
    /// Side B's doorbell towards A (for round trips).
    pub ring_a: L::Ring,
    /// Side A's pending-notification reader.
    pub take_a: L::Take,
    /// Side B's interrupt line.
    pub line_b: Line,
    /// How many queues the backend can signal (ids `0..queues`).
    pub queues: u8,
}

/// A doorbell backend under test (bits, not words).
pub trait DoorbellLink: Sized + 'static {
    /// A doorbell towards the peer.
    type Ring: Notify + Send + 'static;
    /// The pending-notification reader of a side.
    type Take: NotifyRx + Send + 'static;
    /// A fresh peripheral at reset, split, with side B listening.
    fn open() -> DoorbellFixture<Self>;
}

/// The peer-wake path of a backend (for example MU general-purpose
/// interrupts).
pub struct WakeFixture<L: WakeLink> {
    /// Side A's view of the peer, asleep until woken.
    pub peer: Peer<Asleep, L::Waker>,
    /// The peer's interrupt line for the wake request.
    pub peer_wake_line: Line,
    /// Sets whether the peer model reports itself awake (what the peer's
    /// firmware would do once its wake interrupt ran).
    pub set_peer_awake: Box<dyn Fn(bool) + Send + Sync>,
}

/// A backend with a peer-wake interrupt.
pub trait WakeLink: Sized + 'static {
    /// The wake channel.
    type Waker: WakePeer + Send + 'static;
    /// A fresh peripheral with the peer asleep.
    fn open() -> WakeFixture<Self>;
}

fn would_block<E: Error>(r: Result<impl core::fmt::Debug, E>) -> bool {
    matches!(r, Err(ref e) if e.kind() == ErrorKind::WouldBlock)
}

fn q(i: u8) -> QueueId {
    QueueId::new(i).unwrap_or_else(|| panic!("queue {i} out of range"))
}

/// Generous retry budget for the two-thread tests (never a hang: running out
/// fails the test). It yields the host thread on every retry, so a peer
/// thread on a loaded two-core machine gets to run.
#[derive(Debug, Clone, Copy)]
pub struct Patience(Spins);

/// The budget the two-thread tests wait with.
pub const PATIENCE: Patience = Patience(Spins::new(50_000_000));

impl ipc_traits::mailbox::Budget for Patience {
    fn next(&mut self) -> bool {
        thread::yield_now();
        self.0.next()
    }
}

// ---------------------------------------------------------------------------
// Word suite
// ---------------------------------------------------------------------------

/// Words come out in the order they went in, across many FIFO wraps.
pub fn order_preserved<L: WordLink>() {
    let mut f = L::open();
    let mut next = 0u32;
    let mut expect = 0u32;
    for round in 0..50 {
        let burst = 1 + round % L::DEPTH;
        for _ in 0..burst {
            f.tx.try_send(next)
                .unwrap_or_else(|e| panic!("send {next}: {e:?}"));
            next += 1;
        }
        for _ in 0..burst {
            assert_eq!(f.rx.try_recv().ok(), Some(expect), "round {round}");
            expect += 1;
        }
    }
}

/// A full FIFO refuses with `WouldBlock` and nothing queued is overwritten.
pub fn full_is_would_block_nothing_overwritten<L: WordLink>() {
    let mut f = L::open();
    for i in 0..L::DEPTH as u32 {
        f.tx.try_send(0xA000 + i)
            .unwrap_or_else(|e| panic!("send {i}: {e:?}"));
    }
    assert!(
        would_block(f.tx.try_send(0xDEAD)),
        "send to a full FIFO must be WouldBlock"
    );
    assert!(would_block(f.tx.try_send(0xBEEF)), "and stay WouldBlock");
    for i in 0..L::DEPTH as u32 {
        assert_eq!(f.rx.try_recv().ok(), Some(0xA000 + i));
    }
    assert!(
        would_block(f.rx.try_recv()),
        "the refused words must not appear"
    );
}

/// An empty FIFO is `WouldBlock`, also after draining.
pub fn empty_is_would_block<L: WordLink>() {
    let mut f = L::open();
    assert!(would_block(f.rx.try_recv()));
    f.tx.try_send(1).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(f.rx.try_recv().ok(), Some(1));
    assert!(would_block(f.rx.try_recv()));
}

/// The FIFO holds exactly the depth the sheet gives.
pub fn depth_exactly_as_sheet<L: WordLink>() {
    let mut f = L::open();
    let mut accepted = 0;
    while f.tx.try_send(accepted as u32).is_ok() {
        accepted += 1;
        assert!(
            accepted <= L::DEPTH,
            "FIFO accepted more than {} words",
            L::DEPTH
        );
    }
    assert_eq!(accepted, L::DEPTH);
}

/// The receive interrupt rises only when enabled, is reported for the right
/// channel, and falls once the data is consumed and acknowledged.
pub fn interrupt_only_when_enabled<L: WordLink>() {
    let mut f = L::open();
    f.tx.try_send(7).unwrap_or_else(|e| panic!("{e:?}"));
    assert!(!f.line_b.is_high(), "line raised without listen");
    let ev = f.irq_b.on_interrupt();
    assert!(
        !ev.has(f.rx_channel, Event::DataAvailable),
        "event reported while disabled: {ev:?}"
    );
    f.rx.listen(Event::DataAvailable)
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert!(
        f.line_b.is_high(),
        "enabled pending event must raise the line"
    );
    let ev = f.irq_b.on_interrupt();
    assert!(ev.has(f.rx_channel, Event::DataAvailable), "{ev:?}");
    assert_eq!(f.rx.try_recv().ok(), Some(7));
    let _ = f.irq_b.on_interrupt();
    assert!(
        !f.line_b.is_high(),
        "line must fall once serviced and acknowledged"
    );
    assert!(f.irq_b.on_interrupt().is_empty(), "nothing left to report");
    f.rx.unlisten(Event::DataAvailable)
        .unwrap_or_else(|e| panic!("{e:?}"));
    f.tx.try_send(8).unwrap_or_else(|e| panic!("{e:?}"));
    assert!(!f.line_b.is_high(), "line raised after unlisten");
}

/// `on_interrupt` acknowledges what it reports and no more: a word that
/// arrives after the status read is reported by the next call, not lost.
pub fn ack_clears_exactly_reported<L: WordLink>() {
    let mut f = L::open();
    f.rx.listen(Event::DataAvailable)
        .unwrap_or_else(|e| panic!("{e:?}"));
    f.tx.try_send(1).unwrap_or_else(|e| panic!("{e:?}"));
    let first = f.irq_b.on_interrupt();
    assert!(first.has(f.rx_channel, Event::DataAvailable));
    assert_eq!(f.rx.try_recv().ok(), Some(1));
    // A new word after the acknowledgement must raise a fresh event.
    f.tx.try_send(2).unwrap_or_else(|e| panic!("{e:?}"));
    assert!(f.line_b.is_high(), "second word must raise the line again");
    let second = f.irq_b.on_interrupt();
    assert!(
        second.has(f.rx_channel, Event::DataAvailable),
        "second word's event lost: {second:?}"
    );
    assert_eq!(f.rx.try_recv().ok(), Some(2));
    let _ = f.irq_b.on_interrupt();
    assert!(!f.line_b.is_high());
    // Reporting without servicing keeps the event: the data is still there.
    f.tx.try_send(3).unwrap_or_else(|e| panic!("{e:?}"));
    let _ = f.irq_b.on_interrupt();
    let again = f.irq_b.on_interrupt();
    assert!(
        again.has(f.rx_channel, Event::DataAvailable),
        "unserviced data must stay reported"
    );
    assert_eq!(f.rx.try_recv().ok(), Some(3));
}

/// A spurious `on_interrupt` (nothing pending) reports nothing and does not
/// disturb later traffic.
pub fn spurious_interrupt_reports_nothing<L: WordLink>() {
    let mut f = L::open();
    f.rx.listen(Event::DataAvailable)
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert!(f.irq_b.on_interrupt().is_empty());
    assert!(f.irq_a.on_interrupt().is_empty());
    f.tx.try_send(5).unwrap_or_else(|e| panic!("{e:?}"));
    assert!(f
        .irq_b
        .on_interrupt()
        .has(f.rx_channel, Event::DataAvailable));
    assert_eq!(f.rx.try_recv().ok(), Some(5));
}

/// The transmit side learns about free space through its own interrupt.
pub fn space_available_interrupt<L: WordLink>() {
    let mut f = L::open();
    for i in 0..L::DEPTH as u32 {
        f.tx.try_send(i).unwrap_or_else(|e| panic!("{e:?}"));
    }
    f.tx.listen(Event::SpaceAvailable)
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert!(
        !f.irq_a
            .on_interrupt()
            .has(f.tx_channel, Event::SpaceAvailable),
        "full FIFO reported space"
    );
    assert_eq!(f.rx.try_recv().ok(), Some(0));
    assert!(f.line_a.is_high(), "space freed must raise side A's line");
    assert!(f
        .irq_a
        .on_interrupt()
        .has(f.tx_channel, Event::SpaceAvailable));
    f.tx.unlisten(Event::SpaceAvailable)
        .unwrap_or_else(|e| panic!("{e:?}"));
    let _ = f.irq_a.on_interrupt();
    assert!(!f.line_a.is_high(), "unlisten must lower the line");
    f.tx.try_send(99)
        .unwrap_or_else(|e| panic!("a freed slot must take a word: {e:?}"));
}

/// Events the channel cannot raise are refused with `Unsupported`, not
/// silently accepted.
pub fn listen_rejects_wrong_direction<L: WordLink>() {
    let mut f = L::open();
    let e = f.tx.listen(Event::DataAvailable).err().map(|e| e.kind());
    assert_eq!(e, Some(ErrorKind::Unsupported));
    let e = f.rx.listen(Event::SpaceAvailable).err().map(|e| e.kind());
    assert_eq!(e, Some(ErrorKind::Unsupported));
}

/// The bounded helpers give up with `WouldBlock` when the budget runs out.
pub fn blocking_helpers_are_bounded<L: WordLink>() {
    let mut f = L::open();
    assert!(would_block(blocking_recv(&mut f.rx, Spins::new(1000))));
    for i in 0..L::DEPTH as u32 {
        blocking_send(&mut f.tx, i, Spins::new(10)).unwrap_or_else(|e| panic!("{e:?}"));
    }
    assert!(would_block(blocking_send(
        &mut f.tx,
        0xFF,
        Spins::new(1000)
    )));
    assert_eq!(blocking_recv(&mut f.rx, Spins::new(0)).ok(), Some(0));
}

/// Joining every handle and splitting again gives working handles.
pub fn split_join_round_trip<L: WordLink>() {
    let mut f = L::open();
    f.tx.try_send(11).unwrap_or_else(|e| panic!("{e:?}"));
    let mut f = L::reassemble(f);
    assert_eq!(
        f.rx.try_recv().ok(),
        Some(11),
        "a word in flight survives join/split"
    );
    f.tx.try_send(12).unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(f.rx.try_recv().ok(), Some(12));
}

/// A handle moved into another thread keeps working.
pub fn handle_moved_to_thread_keeps_working<L: WordLink>() {
    let f = L::open();
    let (mut tx, rx) = (f.tx, f.rx);
    let receiver = thread::spawn(move || {
        let mut rx = rx;
        (0..10u32)
            .map(|_| blocking_recv(&mut rx, PATIENCE).unwrap_or_else(|e| panic!("{e:?}")))
            .collect::<Vec<_>>()
    });
    for i in 0..10 {
        blocking_send(&mut tx, i, PATIENCE).unwrap_or_else(|e| panic!("{e:?}"));
    }
    assert_eq!(
        receiver
            .join()
            .unwrap_or_else(|_| panic!("receiver panicked")),
        (0..10).collect::<Vec<_>>()
    );
}

/// Two threads, one per side, exchange `count` words with randomised pacing:
/// nothing lost, duplicated or reordered.
pub fn two_threads_exchange<L: WordLink>(count: u32, seed: u64) {
    let f = L::open();
    let (mut tx, rx) = (f.tx, f.rx);
    let receiver = thread::spawn(move || {
        let mut rx = rx;
        let mut rng = SplitMix64::new(seed ^ 0x5555);
        for expect in 0..count {
            if rng.below(8) == 0 {
                thread::yield_now();
            }
            let got =
                blocking_recv(&mut rx, PATIENCE).unwrap_or_else(|e| panic!("word {expect}: {e:?}"));
            assert_eq!(
                got,
                expect.wrapping_mul(0x9E37_79B9),
                "word {expect} lost, duplicated or reordered"
            );
        }
        assert!(would_block(rx.try_recv()), "extra word after the stream");
    });
    let mut rng = SplitMix64::new(seed);
    for i in 0..count {
        if rng.below(8) == 0 {
            thread::yield_now();
        }
        blocking_send(&mut tx, i.wrapping_mul(0x9E37_79B9), PATIENCE)
            .unwrap_or_else(|e| panic!("word {i}: {e:?}"));
    }
    receiver
        .join()
        .unwrap_or_else(|_| panic!("receiver failed"));
}

/// How many words (or round trips) the two-thread tests move.
pub const fn stress_count() -> u32 {
    if cfg!(miri) {
        200
    } else {
        100_000
    }
}

/// Expands the word suite into named `#[test]`s for one fixture.
#[macro_export]
macro_rules! word_mailbox_suite {
    ($link:ty) => {
        #[test]
        fn order_preserved() {
            $crate::mailbox::order_preserved::<$link>();
        }
        #[test]
        fn full_is_would_block_nothing_overwritten() {
            $crate::mailbox::full_is_would_block_nothing_overwritten::<$link>();
        }
        #[test]
        fn empty_is_would_block() {
            $crate::mailbox::empty_is_would_block::<$link>();
        }
        #[test]
        fn depth_exactly_as_sheet() {
            $crate::mailbox::depth_exactly_as_sheet::<$link>();
        }
        #[test]
        fn interrupt_only_when_enabled() {
            $crate::mailbox::interrupt_only_when_enabled::<$link>();
        }
        #[test]
        fn ack_clears_exactly_reported() {
            $crate::mailbox::ack_clears_exactly_reported::<$link>();
        }
        #[test]
        fn spurious_interrupt_reports_nothing() {
            $crate::mailbox::spurious_interrupt_reports_nothing::<$link>();
        }
        #[test]
        fn space_available_interrupt() {
            $crate::mailbox::space_available_interrupt::<$link>();
        }
        #[test]
        fn listen_rejects_wrong_direction() {
            $crate::mailbox::listen_rejects_wrong_direction::<$link>();
        }
        #[test]
        fn blocking_helpers_are_bounded() {
            $crate::mailbox::blocking_helpers_are_bounded::<$link>();
        }
        #[test]
        fn split_join_round_trip() {
            $crate::mailbox::split_join_round_trip::<$link>();
        }
        #[test]
        fn handle_moved_to_thread_keeps_working() {
            $crate::mailbox::handle_moved_to_thread_keeps_working::<$link>();
        }
        #[test]
        fn two_threads_exchange_100k_words() {
            $crate::mailbox::two_threads_exchange::<$link>($crate::mailbox::stress_count(), 0x1234);
        }
        #[test]
        fn weak_interrupt_entry_orders_shared_memory() {
            $crate::mailbox::weak_interrupt_entry_orders_shared_memory::<$link>(
                $crate::mailbox::weak_rounds(),
            );
        }
    };
}

// ---------------------------------------------------------------------------
// Doorbell suite (native Notify/NotifyRx, and word backends through their
// Notify implementation)
// ---------------------------------------------------------------------------

/// Several `notify(q)` before the peer looks give one event for `q` and none
/// for other queues; taking acknowledges exactly what was returned.
pub fn notifications_coalesce<L: DoorbellLink>() {
    let mut f = L::open();
    let target = q(f.queues.saturating_sub(1).min(1));
    for _ in 0..3 {
        match f.ring_b.notify(target) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) => panic!("notify: {e:?}"),
        }
    }
    assert!(f.line_b.is_high(), "doorbell must raise the peer's line");
    let set = f.take_b.take_pending().unwrap_or_else(|e| panic!("{e:?}"));
    assert!(set.contains(target), "{set:?}");
    assert_eq!(set.iter().count(), 1, "only {target} was rung: {set:?}");
    let again = f.take_b.take_pending().unwrap_or_else(|e| panic!("{e:?}"));
    assert!(
        again.is_empty(),
        "taken notifications must be acknowledged: {again:?}"
    );
    assert!(!f.line_b.is_high(), "line must fall after the take");
}

/// Every queue id the backend supports travels to the right bit.
pub fn every_queue_arrives_as_itself<L: DoorbellLink>() {
    let mut f = L::open();
    for i in 0..f.queues {
        blocking_notify(&mut f.ring_b, q(i), Spins::new(10))
            .unwrap_or_else(|e| panic!("vq{i}: {e:?}"));
        let set = f.take_b.take_pending().unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(set.iter().collect::<Vec<_>>(), [q(i)]);
    }
}

/// Ping-pong of `count` doorbells between two threads: every ring is
/// answered, none is spurious.
pub fn doorbell_round_trips<L: DoorbellLink>(count: u32) {
    let f = L::open();
    let DoorbellFixture {
        mut ring_b,
        take_b,
        ring_a,
        mut take_a,
        ..
    } = f;
    let queues = f.queues.max(1);
    let peer = thread::spawn(move || {
        let (mut take_b, mut ring_a) = (take_b, ring_a);
        for i in 0..count {
            let want = q((i % u32::from(queues)) as u8);
            let set = wait_pending(&mut take_b);
            assert_eq!(set.iter().collect::<Vec<_>>(), [want], "round {i}");
            blocking_notify(&mut ring_a, want, PATIENCE).unwrap_or_else(|e| panic!("{e:?}"));
        }
    });
    for i in 0..count {
        let want = q((i % u32::from(queues)) as u8);
        blocking_notify(&mut ring_b, want, PATIENCE).unwrap_or_else(|e| panic!("{e:?}"));
        let set = wait_pending(&mut take_a);
        assert_eq!(set.iter().collect::<Vec<_>>(), [want], "answer {i}");
    }
    peer.join().unwrap_or_else(|_| panic!("peer failed"));
}

fn wait_pending<T: NotifyRx>(take: &mut T) -> ipc_traits::mailbox::QueueSet {
    let mut budget = PATIENCE;
    loop {
        let set = take.take_pending().unwrap_or_else(|e| panic!("{e:?}"));
        if !set.is_empty() {
            return set;
        }
        assert!(
            ipc_traits::mailbox::Budget::next(&mut budget),
            "doorbell never arrived"
        );
    }
}

/// Rounds of the weak-mode doorbell tests.
pub const fn weak_rounds() -> u32 {
    if cfg!(miri) {
        20
    } else {
        500
    }
}

/// A weakly ordered, uncached window of one word for the doorbell tests:
/// the writer's core and (built on the reader's thread) the reader's.
fn weak_word_memory(seed: u64) -> SimMemory {
    SimMemory::new(64, 0).weak(WeakOrder::arm_like(seed).uncached())
}

fn read_word(core: &SimCore<4>) -> u32 {
    let mut b = [0u8; 4];
    ipc_traits::shm::SharedMemory::read(core, 0, &mut b).unwrap_or_else(|e| panic!("{e}"));
    u32::from_ne_bytes(b)
}

fn write_word(core: &SimCore<4>, v: u32) {
    ipc_traits::shm::SharedMemory::write(core, 0, &v.to_ne_bytes())
        .unwrap_or_else(|e| panic!("{e}"));
}

/// Weak mode ([`crate::sim::WeakOrder`]): side A stores round `k` to shared
/// memory, then rings queue 0; side B takes the doorbell, then loads the
/// word, which must be `k`, and acknowledges outside the simulation. A's
/// store waits in its store buffer unless the backend's `notify` used the
/// I/O write barrier; B's load may run ahead of the doorbell unless
/// `take_pending` used the I/O read barrier. Each breaks the round.
pub fn weak_doorbells_order_shared_memory<L: DoorbellLink>(rounds: u32) {
    let DoorbellFixture {
        mut ring_b,
        mut take_b,
        ..
    } = L::open();
    let mem = weak_word_memory(71);
    let (ack, acked) = std::sync::mpsc::channel::<()>();
    let reader = {
        let mem = mem.clone();
        thread::spawn(move || {
            let core = mem.core::<4>(CacheConfig::COHERENT);
            for k in 1..=rounds {
                let set = wait_pending(&mut take_b);
                assert!(!set.is_empty());
                assert_eq!(
                    read_word(&core),
                    k,
                    "round {k}: the doorbell overtook the store it announces, or the load \
                     ran ahead of the doorbell"
                );
                if ack.send(()).is_err() {
                    return;
                }
            }
        })
    };
    let core = mem.core::<4>(CacheConfig::COHERENT);
    for k in 1..=rounds {
        write_word(&core, k);
        blocking_notify(&mut ring_b, q(0), PATIENCE).unwrap_or_else(|e| panic!("{e:?}"));
        if acked.recv().is_err() {
            break;
        }
    }
    reader
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p));
    // Every store waited in the buffer until something landed it.
    let weak = core.weak_stats();
    assert_eq!(weak.map(|w| w.stores_buffered), Some(u64::from(rounds)));
}

/// Weak mode, the interrupt entry: side A stores round `k`, then sends
/// word `k`; side B's interrupt entry reports the data, B loads the
/// shared word *before* it pops the FIFO (so only the entry's I/O read
/// barrier orders the load), then pops `k`.
pub fn weak_interrupt_entry_orders_shared_memory<L: WordLink>(rounds: u32) {
    let WordFixture {
        mut tx,
        mut rx,
        mut irq_b,
        rx_channel,
        ..
    } = L::open();
    rx.listen(Event::DataAvailable)
        .unwrap_or_else(|e| panic!("{e:?}"));
    let mem = weak_word_memory(72);
    let (ack, acked) = std::sync::mpsc::channel::<()>();
    let reader = {
        let mem = mem.clone();
        thread::spawn(move || {
            let core = mem.core::<4>(CacheConfig::COHERENT);
            for k in 1..=rounds {
                let mut budget = PATIENCE;
                while irq_b.on_interrupt().data_available & (1 << rx_channel) == 0 {
                    assert!(
                        ipc_traits::mailbox::Budget::next(&mut budget),
                        "round {k}: no interrupt"
                    );
                }
                assert_eq!(
                    read_word(&core),
                    k,
                    "round {k}: the load ran ahead of the interrupt entry"
                );
                assert_eq!(rx.try_recv().map_err(|e| e.kind()), Ok(k));
                if ack.send(()).is_err() {
                    return;
                }
            }
        })
    };
    let core = mem.core::<4>(CacheConfig::COHERENT);
    for k in 1..=rounds {
        write_word(&core, k);
        blocking_send(&mut tx, k, PATIENCE).unwrap_or_else(|e| panic!("{e:?}"));
        if acked.recv().is_err() {
            break;
        }
    }
    reader
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p));
}

/// Expands the doorbell suite into named `#[test]`s for one fixture.
#[macro_export]
macro_rules! doorbell_suite {
    ($link:ty) => {
        #[test]
        fn notifications_coalesce() {
            $crate::mailbox::notifications_coalesce::<$link>();
        }
        #[test]
        fn every_queue_arrives_as_itself() {
            $crate::mailbox::every_queue_arrives_as_itself::<$link>();
        }
        #[test]
        fn doorbell_round_trips() {
            $crate::mailbox::doorbell_round_trips::<$link>($crate::mailbox::stress_count() / 10);
        }
        #[test]
        fn weak_doorbells_order_shared_memory() {
            $crate::mailbox::weak_doorbells_order_shared_memory::<$link>(
                $crate::mailbox::weak_rounds(),
            );
        }
    };
}

// ---------------------------------------------------------------------------
// Wake suite
// ---------------------------------------------------------------------------

/// The wake request reaches the peer's interrupt line, and `Peer<Awake>` is
/// obtained only once the peer reports awake.
pub fn wake_reaches_peer<L: WakeLink>() {
    let f = L::open();
    assert!(
        !f.peer_wake_line.is_high(),
        "peer interrupted before any wake request"
    );
    let (peer, err) = match f.peer.wake(Spins::new(100)) {
        Ok(_) => panic!("peer reported awake without waking"),
        Err(pair) => pair,
    };
    assert!(matches!(err, WakeError::Timeout), "{err:?}");
    assert!(
        f.peer_wake_line.is_high(),
        "the wake request must reach the peer"
    );
    (f.set_peer_awake)(true);
    let awake = peer
        .wake(Spins::new(100))
        .unwrap_or_else(|(_, e)| panic!("{e:?}"));
    let _asleep = awake.release();
}

/// Expands the wake suite into named `#[test]`s for one fixture.
#[macro_export]
macro_rules! wake_suite {
    ($link:ty) => {
        #[test]
        fn wake_reaches_peer() {
            $crate::mailbox::wake_reaches_peer::<$link>();
        }
    };
}
