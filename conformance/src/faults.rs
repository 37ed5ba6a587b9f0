//! The fault-injection suite: the end-to-end echo of [`crate::link`] under
//! every fault the simulations can inject, on every backend.
//!
//! A master and a remote `rpmsg` link ([`rpmsg::link::Link`]) run on two threads over one
//! [`SimMemory`], each behind its own non-coherent write-back cache, and ring
//! each other through a backend's simulated mailbox. Backends plug in through
//! a [`FaultLink`] fixture (a [`DoorbellLink`] whose simulation can inject
//! doorbell faults and whose interrupt lines the suite can watch);
//! [`fault_suite!`](crate::fault_suite) expands the suite into named `#[test]`s.
//!
//! # How a side runs
//!
//! Like firmware: each step of a side first asks its interrupt entry
//! ([`Isr`]) whether the mailbox interrupt fired. Only then, or when a
//! periodic poll is due ([`Plan::poll_every`] idle steps without an
//! interrupt), does it take the pending doorbells and service its rings. The
//! master also tries to send on every step (an application with something to
//! send does not wait for an interrupt), and both sides retry deferred
//! doorbells ([`Tx::flush`]). The periodic poll is the recovery from
//! lost wake-ups: the ring indices, not the doorbells, say what there is to
//! do, so a side that re-checks its rings now and then cannot be stranded by
//! a doorbell that never came.
//!
//! # Deterministic scheduling
//!
//! With [`Schedule::Turns`] the two threads never run at once: a seeded
//! scheduler hands one of them the turn for one step at a time. A run is
//! then a pure function of its seeds and is reproduced exactly, stall
//! included. A torn write-back ([`MemFaults`]) hands the turn to the peer
//! *between* the two halves of the line, so the peer looks at a half-written
//! line deterministically. [`Schedule::Free`] lets both threads run freely
//! (real interleavings, not reproducible).
//!
//! # Peers that restart
//!
//! With [`Plan::restarts`] one side crashes and reboots over and over: its
//! cache is dropped (dirty lines lost), its link abandoned, and it starts a
//! new session in its session word. Both follow the restart handshake of
//! [`rpmsg::session`]: a rebooted master waits for the remote to let go of
//! the old rings (the remote counts what it had not taken with
//! [`Link::release_session`]) before laying them out again for it; a
//! rebooted remote attaches to the master's session and waits for rings
//! laid out for its new session. The other side checks the peer's word
//! every step and, on a new session, ends its session and restarts its
//! link over the new rings ([`Ended::restart`]); the remote announces its
//! service again ([`Announcements`]).
//!
//! # Invariants checked
//!
//! No panic; no access outside the shared window
//! ([`SimCore::accesses_outside_window`] is 0 on both cores); every
//! message the master sends carries its sequence number and a payload
//! derived from it, and both sides classify what they receive as new,
//! replayed or corrupted; bounded time (a run that stops making progress
//! ends as [`Outcome::Stalled`]; within one step each core panics past an
//! operation limit and each doorbell past a ring budget, so a call that
//! never returns fails the test instead of hanging it); and recovery, per
//! fault, as each test documents.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;

use ipc_traits::mailbox::{ErrorType, Notify, NotifyRx, QueueId, Spins};
use rpmsg::link::ns::{NsDirectory, NsEvent};
use rpmsg::link::restart::{Announcements, Ended, RestartReport};
use rpmsg::link::watch::Watchdog;
use rpmsg::link::{Endpoint, Link, RxStats, Sent, Storage, Tx, TxStats};
use rpmsg::rings::{Halves, RemoteRings};
use rpmsg::session::{PeerState, PeerWatch, SessionWord};
use rpmsg::wire::{ADDR_ANY, NS_ADDR};
use rpmsg::Error as LinkError;
use vring::Legacy;

use crate::link::{
    master_rings, remote_rings, MasterLink, RemoteLink, BUF, GEOMETRY, MASTER_LINE, MAX_PAYLOAD,
    NUM, REMOTE_LINE,
};
use crate::mailbox::DoorbellLink;
use crate::rng::SplitMix64;
use crate::sim::{CacheConfig, CacheStats, MemFaults, SimCore, SimMemory, WeakOrder, WeakStats};

/// Where the peer sees the shared window.
const PEER_BASE: u64 = 0x6000_0000;

// ---------------------------------------------------------------------------
// What a backend provides
// ---------------------------------------------------------------------------

/// Doorbell faults, as the suite asks for them: the rates shared by every
/// backend's model (`ipc_traits::sim_faults`); each fixture adds which of
/// its channels or queues they apply to.
pub use ipc_traits::sim_faults::Rates as DoorbellFaults;

/// What a simulation's doorbell faults did (the sum over the faulted
/// places).
pub use ipc_traits::sim_faults::FaultCounters as FaultCounts;

/// The fault controls of one simulated mailbox.
pub trait FaultControl: Send + Sync {
    /// Arms `faults` (or disarms with [`DoorbellFaults::NONE`]).
    fn arm(&self, faults: DoorbellFaults);
    /// What the faults did so far.
    fn counts(&self) -> FaultCounts;
    /// Delivers every held doorbell now (where there is room); returns how
    /// many.
    fn deliver_delayed(&self) -> u32;
}

/// One side's mailbox interrupt entry: returns whether the interrupt line
/// is asserted, and if so runs the driver's interrupt acknowledgement (what
/// the handler would do before taking the doorbells).
pub struct Isr(Box<dyn FnMut() -> bool + Send>);

impl Isr {
    /// An entry that runs `fired`.
    pub fn new(fired: impl FnMut() -> bool + Send + 'static) -> Self {
        Self(Box::new(fired))
    }

    fn fired(&mut self) -> bool {
        (self.0)()
    }
}

impl core::fmt::Debug for Isr {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Isr")
    }
}

/// Both directions of a backend's doorbells (side A is the master, side B
/// the remote, as in [`crate::mailbox::DoorbellFixture`]), the interrupt
/// entries of both sides, and the simulation's fault controls.
pub struct FaultFixture<L: DoorbellLink> {
    /// Side A's doorbell towards B.
    pub ring_b: L::Ring,
    /// Side B's pending-doorbell reader (listening).
    pub take_b: L::Take,
    /// Side B's doorbell towards A.
    pub ring_a: L::Ring,
    /// Side A's pending-doorbell reader (listening).
    pub take_a: L::Take,
    /// Side A's interrupt entry.
    pub isr_a: Isr,
    /// Side B's interrupt entry.
    pub isr_b: Isr,
    /// The simulation's fault controls (faults disarmed at first).
    pub control: Arc<dyn FaultControl>,
}

/// A doorbell backend whose simulation injects faults.
pub trait FaultLink: DoorbellLink {
    /// Whether doorbells are words in a FIFO that can fill (a dead peer
    /// makes `notify` fail), rather than bits that coalesce.
    const WORD_FIFO: bool;
    /// A fresh peripheral at reset, both sides listening, faults disarmed.
    fn open_faulty() -> FaultFixture<Self>;
}

// ---------------------------------------------------------------------------
// A doorbell that cannot be rung forever
// ---------------------------------------------------------------------------

/// A doorbell with a budget of rings that its owner refills (once per
/// step, say) and that panics when it runs out: a link that spins on a
/// doorbell the peer never takes fails the test instead of hanging it.
/// Clones ring the same doorbell (a rebooted side's new link uses it).
#[derive(Debug)]
pub struct Watched<N> {
    inner: Arc<Mutex<N>>,
    budget: Arc<AtomicU64>,
}

impl<N> Clone for Watched<N> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            budget: Arc::clone(&self.budget),
        }
    }
}

impl<N> Watched<N> {
    /// Wraps `inner`; each ring (attempt, failed ones included) takes one
    /// from `budget`.
    pub fn new(inner: N, budget: Arc<AtomicU64>) -> Self {
        Self {
            inner: Arc::new(Mutex::new(inner)),
            budget,
        }
    }
}

impl<N: Notify> ErrorType for Watched<N> {
    type Error = N::Error;
}

impl<N: Notify> Notify for Watched<N> {
    fn notify(&mut self, queue: QueueId) -> Result<(), Self::Error> {
        let left = self.budget.fetch_sub(1, Ordering::Relaxed);
        assert!(
            left > 0 && left <= u64::MAX / 2,
            "doorbell rung past its budget: a wait that never ends?"
        );
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .notify(queue)
    }
}

// ---------------------------------------------------------------------------
// Plans and reports
// ---------------------------------------------------------------------------

/// How the two threads are scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// One step at a time, the next side chosen by a seeded generator
    /// (reproducible).
    Turns,
    /// Both threads run freely.
    Free,
}

/// One of the two roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The virtio driver (owns the buffers).
    Master,
    /// The virtio device.
    Remote,
}

/// What a hostile side scribbles on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The ring areas it writes, except the index: for the remote the used
    /// rings' entries, flags and `avail_event`; for the master the
    /// descriptor tables and the available rings' entries, flags and
    /// `used_event`.
    Rings,
    /// The index it publishes: `used.idx` (remote) or `avail.idx` (master),
    /// overwritten with two random bytes.
    Index,
    /// The buffers it owns at that moment: for the remote, the master's
    /// receive buffers it has been given and not yet returned; for the
    /// master, its transmit buffers not in flight.
    Buffers,
}

/// A side that writes random bytes into what it owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hostile {
    /// Who scribbles.
    pub who: Role,
    /// On what.
    pub target: Target,
    /// Scribble before one step in N.
    pub one_in: u32,
    /// Scribbling stops once the master has sent this many messages; the
    /// rest of the run shows whether the link recovered.
    pub until_sent: u32,
}

/// A side that stops mid-transfer (its thread just ends).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stop {
    /// Who stops.
    pub who: Role,
    /// After how many messages: sent (master) or echoed (remote).
    pub after: u32,
}

/// A side that crashes and reboots during traffic (its cache and link are
/// lost; it starts a new session), `times` times; the other side notices
/// through the session words ([`rpmsg::session`]) and restarts its link
/// ([`Ended::restart`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Restarts {
    /// Who crashes.
    pub who: Role,
    /// How many times.
    pub times: u32,
}

/// What a run does.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Messages the master sends (an upper bound for restart runs, which
    /// end once every restart is done and traffic flowed again).
    pub count: u32,
    /// Most messages the master has outstanding (sent, echo not yet
    /// received); `None`: as many as the link takes (for runs that may
    /// lose messages).
    pub window: Option<u32>,
    /// Seed of the scheduler, the caches and the scribbler.
    pub seed: u64,
    /// Doorbell faults, armed once both links are up.
    pub doorbells: DoorbellFaults,
    /// Service the rings without an interrupt after this many idle steps
    /// (`Some(0)`: every step); `None`: interrupts only.
    pub poll_every: Option<u32>,
    /// Torn write-backs on both cores, one in N (0: none).
    pub torn_one_in: u32,
    /// Scheduling.
    pub schedule: Schedule,
    /// A scribbling side.
    pub hostile: Option<Hostile>,
    /// A side that stops.
    pub stop: Option<Stop>,
    /// A side that crashes and reboots.
    pub restarts: Option<Restarts>,
    /// Turns (or, free-running, steps of a side) without progress after
    /// which the run counts as stalled.
    pub stall_after: u32,
    /// On a stall, deliver the held doorbells
    /// ([`FaultControl::deliver_delayed`]) and go on, once per stall.
    pub rescue_delayed: bool,
    /// Weakly ordered cores ([`crate::sim::WeakOrder`]); `None`: sequentially
    /// consistent.
    pub weak: Option<WeakOrder>,
}

impl Plan {
    /// An exact echo of `count` messages, deterministic, no faults,
    /// interrupts only.
    pub const fn echo(count: u32, seed: u64) -> Self {
        Self {
            count,
            window: Some(8),
            seed,
            doorbells: DoorbellFaults::NONE,
            poll_every: None,
            torn_one_in: 0,
            schedule: Schedule::Turns,
            hostile: None,
            stop: None,
            restarts: None,
            stall_after: 4_000,
            rescue_delayed: false,
            weak: None,
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every message the plan needs went through (for runs that may lose
    /// messages: everything was sent and the link went quiet).
    Completed,
    /// No progress for [`Plan::stall_after`] turns.
    Stalled,
}

/// What one side saw.
#[derive(Debug, Clone, Copy, Default)]
pub struct SideReport {
    /// Transmit-half counters.
    pub tx: TxStats,
    /// Receive-half counters.
    pub rx: RxStats,
    /// Received messages the peer's restarts dropped (summed
    /// [`RestartReport::lost`]).
    pub lost_at_reset: u32,
    /// Sent messages unconfirmed at the peer's restarts (summed
    /// [`RestartReport::unconfirmed`]).
    pub unconfirmed_at_reset: u32,
    /// Ring statistics (transmit, receive).
    pub rings: (vring::Stats, vring::Stats),
    /// Whether the link reported itself broken at the end.
    pub broken: bool,
    /// The core's cache counters.
    pub cache: CacheStats,
    /// What weak ordering did on the core (`None`: sequentially consistent).
    pub weak: Option<WeakStats>,
    /// The core's accesses refused because they left the shared window.
    pub outside_window: u64,
    /// Messages sent (master) or echoed (remote).
    pub sent: u32,
    /// Messages received with a sequence number not seen before and the
    /// exact payload of that sequence number.
    pub fresh: u32,
    /// Messages received again, byte for byte (a replay of a stale buffer).
    pub replayed: u32,
    /// Messages whose payload matches no message ever sent.
    pub corrupted: u32,
    /// Received payloads longer than a buffer allows (never expected).
    pub oversized: u32,
    /// Link operations that failed (typed errors).
    pub link_errors: u32,
    /// The first such failure.
    pub first_error: Option<LinkError>,
    /// `take_pending` calls that reported a protocol error (a word that is
    /// not a doorbell).
    pub notify_errors: u32,
    /// Interrupts taken.
    pub interrupts: u32,
    /// Interrupts after which no doorbell was pending.
    pub empty_interrupts: u32,
    /// Ring checks without an interrupt (periodic polls).
    pub polls: u32,
    /// Scribbles this side made (hostile runs).
    pub scribbles: u32,
    /// After the run, with the peer gone: how many more sends the link
    /// accepted before `NoBuffer` (peer-stop runs; `None` otherwise).
    pub final_sends_accepted: Option<u32>,
    /// After that: whether a bounded `blocking_send` returned `NoBuffer`
    /// rather than hanging (peer-stop runs).
    pub final_send_would_block: Option<bool>,
    /// After the run: whether a receive found nothing (`Ok(None)`;
    /// peer-stop runs).
    pub final_recv_would_block: Option<bool>,
    /// After that: how often a [`Watchdog`] with a bound of 8 ticks found
    /// the peer unresponsive over 24 ticks (peer-stop runs: the silent
    /// peer counted once).
    pub final_ticks_unresponsive: Option<u32>,
    /// Times this side crashed and rebooted (restart runs).
    pub crashes: u32,
    /// Times this side restarted its link after the peer rebooted.
    pub restarts_handled: u32,
    /// Restarts (of either side) after which an echo came back again
    /// (master).
    pub resumed: u32,
    /// Restarts this side handled after the peer had already laid the
    /// rings out again, so what it had not taken could not be counted (the
    /// handshake makes this 0).
    pub uncounted_restarts: u32,
}

/// What a run did.
#[derive(Debug, Clone, Copy)]
pub struct RunReport {
    /// How it ended.
    pub outcome: Outcome,
    /// The master's view.
    pub master: SideReport,
    /// The remote's view.
    pub remote: SideReport,
    /// What the doorbell faults did.
    pub faults: FaultCounts,
    /// Turns scheduled (or steps, free-running).
    pub turns: u64,
    /// Stalls rescued by delivering held doorbells.
    pub rescues: u32,
    /// Whether each sequence number in the last quarter of
    /// [`Plan::count`] reached the master at least once (the recovery check
    /// of hostile runs; meaningless for runs that end early).
    pub tail_complete: bool,
}

// ---------------------------------------------------------------------------
// Payloads
// ---------------------------------------------------------------------------

/// The payload of message `seq`: 4 to 496 bytes, the sequence number first,
/// then bytes derived from it. Returns the length.
pub fn payload(seq: u32, out: &mut [u8; MAX_PAYLOAD]) -> usize {
    let mut rng = SplitMix64::new(u64::from(seq) ^ 0x5EED_F417);
    let len = 4 + rng.below(MAX_PAYLOAD as u64 - 3) as usize;
    out[..4].copy_from_slice(&seq.to_le_bytes());
    for (j, b) in out[4..len].iter_mut().enumerate() {
        *b = (seq.wrapping_mul(0x9E37) as usize ^ j.wrapping_mul(131)) as u8;
    }
    len
}

/// Sorts received bytes into fresh, replayed or corrupted.
#[derive(Debug)]
struct Classifier {
    seen: Vec<bool>,
    want: Box<[u8; MAX_PAYLOAD]>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Fresh(u32),
    Replayed,
    Corrupted,
}

impl Classifier {
    fn new(count: u32) -> Self {
        Self {
            seen: vec![false; count as usize],
            want: Box::new([0; MAX_PAYLOAD]),
        }
    }

    fn classify(&mut self, got: &[u8]) -> Kind {
        let Some(seq) = got
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
        else {
            return Kind::Corrupted;
        };
        let Some(seen) = self.seen.get_mut(seq as usize) else {
            return Kind::Corrupted;
        };
        let n = payload(seq, &mut self.want);
        if got != &self.want[..n] {
            return Kind::Corrupted;
        }
        if std::mem::replace(seen, true) {
            Kind::Replayed
        } else {
            Kind::Fresh(seq)
        }
    }

    fn note(&mut self, got: &[u8], report: &mut SideReport) -> Option<u32> {
        match self.classify(got) {
            Kind::Fresh(seq) => {
                report.fresh += 1;
                Some(seq)
            }
            Kind::Replayed => {
                report.replayed += 1;
                None
            }
            Kind::Corrupted => {
                report.corrupted += 1;
                None
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The scheduler
// ---------------------------------------------------------------------------

#[derive(Debug)]
struct TurnState {
    current: Role,
    done: bool,
    stalled: bool,
    rng: SplitMix64,
    turns: u64,
    idle: u32,
    rescues: u32,
    stopped: [bool; 2],
}

/// Hands out turns (or, free-running, only watches for the end).
struct Turns {
    schedule: Schedule,
    state: Mutex<TurnState>,
    wake: Condvar,
    stall_after: u32,
    rescue: Option<Arc<dyn FaultControl>>,
}

const fn index(role: Role) -> usize {
    match role {
        Role::Master => 0,
        Role::Remote => 1,
    }
}

const fn other(role: Role) -> Role {
    match role {
        Role::Master => Role::Remote,
        Role::Remote => Role::Master,
    }
}

impl Turns {
    fn new(plan: &Plan, rescue: Option<Arc<dyn FaultControl>>) -> Self {
        Self {
            schedule: plan.schedule,
            state: Mutex::new(TurnState {
                current: Role::Master,
                done: false,
                stalled: false,
                rng: SplitMix64::new(plan.seed ^ 0x7075_726E),
                turns: 0,
                idle: 0,
                rescues: 0,
                stopped: [false; 2],
            }),
            wake: Condvar::new(),
            stall_after: plan.stall_after.max(1),
            rescue,
        }
    }

    fn lock(&self) -> MutexGuard<'_, TurnState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for `me`'s turn; false once the run is over.
    fn wait(&self, me: Role) -> bool {
        let mut s = self.lock();
        if self.schedule == Schedule::Free {
            return !s.done;
        }
        while !s.done && s.current != me {
            s = self.wake.wait(s).unwrap_or_else(PoisonError::into_inner);
        }
        !s.done
    }

    /// Ends `me`'s step.
    fn end_step(&self, me: Role, progressed: bool) {
        let mut s = self.lock();
        s.turns += 1;
        if progressed {
            s.idle = 0;
        } else {
            s.idle += 1;
            if s.idle > self.stall_after {
                let rescued = self
                    .rescue
                    .as_ref()
                    .is_some_and(|c| c.deliver_delayed() > 0);
                if rescued {
                    s.rescues += 1;
                    s.idle = 0;
                } else {
                    s.stalled = true;
                    s.done = true;
                }
            }
        }
        if self.schedule == Schedule::Turns {
            s.current = self.pick(&mut s, me);
        }
        drop(s);
        self.wake.notify_all();
        if self.schedule == Schedule::Free {
            thread::yield_now();
        }
    }

    fn pick(&self, s: &mut TurnState, me: Role) -> Role {
        let peer = other(me);
        if s.stopped[index(peer)] {
            me
        } else if s.stopped[index(me)] || s.rng.one_in(2) {
            peer
        } else {
            me
        }
    }

    /// `me` stops for good (its thread ends).
    fn stop(&self, me: Role) {
        let mut s = self.lock();
        s.stopped[index(me)] = true;
        if s.stopped == [true; 2] {
            s.done = true;
        } else if s.current == me {
            s.current = other(me);
        }
        drop(s);
        self.wake.notify_all();
    }

    /// The run is over (success, or a side failed).
    fn finish(&self) {
        self.lock().done = true;
        self.wake.notify_all();
    }

    /// Between the two halves of a torn write-back on `me`'s core: the peer
    /// gets a turn (its step runs while the line is half written), then
    /// `me` goes on. Free-running: the host thread yields.
    fn hand_over(&self, me: Role) {
        if self.schedule == Schedule::Free {
            thread::yield_now();
            return;
        }
        let mut s = self.lock();
        if s.done || s.stopped[index(other(me))] {
            return;
        }
        s.current = other(me);
        drop(s);
        self.wake.notify_all();
        let mut s = self.lock();
        while !s.done && s.current != me {
            s = self.wake.wait(s).unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn is_done(&self) -> bool {
        self.lock().done
    }
}

/// Ends the run if the side's thread unwinds, so the other side never waits
/// for a turn that will not come.
struct FinishOnPanic<'a>(&'a Turns);

impl Drop for FinishOnPanic<'_> {
    fn drop(&mut self) {
        if thread::panicking() {
            self.0.finish();
        }
    }
}

// ---------------------------------------------------------------------------
// The two sides
// ---------------------------------------------------------------------------

/// Records a failed link operation.
fn failed(report: &mut SideReport, e: LinkError) {
    report.link_errors += 1;
    report.first_error.get_or_insert(e);
}

/// The interrupt part of a step: whether the side services its rings now.
fn enter<T: NotifyRx>(
    isr: &mut Isr,
    take: &mut T,
    poll_every: Option<u32>,
    idle: &mut u32,
    report: &mut SideReport,
) -> Option<ipc_traits::mailbox::QueueSet> {
    let fired = isr.fired();
    let poll = poll_every.is_some_and(|n| *idle >= n);
    if !fired && !poll {
        *idle += 1;
        return None;
    }
    *idle = 0;
    if fired {
        report.interrupts += 1;
    } else {
        report.polls += 1;
    }
    let set = match take.take_pending() {
        Ok(set) => set,
        Err(_) => {
            report.notify_errors += 1;
            ipc_traits::mailbox::QueueSet::EMPTY
        }
    };
    if fired && set.is_empty() {
        report.empty_interrupts += 1;
    }
    Some(set)
}

/// The scribbler of a hostile side: random bytes into what it owns.
struct Scribbler {
    plan: Hostile,
    rng: SplitMix64,
    mem: SimMemory,
}

impl Scribbler {
    fn u16_at(&self, offset: usize) -> u16 {
        let mut b = [0u8; 2];
        // The ring areas are inside the window; a failed peek reads as 0.
        match self.mem.peek(offset, &mut b) {
            Ok(()) => u16::from_le_bytes(b),
            Err(_) => 0,
        }
    }

    /// Writes 1 to 8 random bytes somewhere in `offset..offset + len`.
    fn scribble(&mut self, offset: usize, len: usize) {
        let n = (1 + self.rng.below(8) as usize).min(len);
        let at = offset + self.rng.below((len - n + 1) as u64) as usize;
        let bytes: Vec<u8> = (0..n).map(|_| self.rng.next_u64() as u8).collect();
        // `at..at + n` lies inside an area of the window.
        self.mem
            .poke(at, &bytes)
            .unwrap_or_else(|e| panic!("scribble at {at}: {e}"));
    }

    /// The buffers listed between `used.idx` and `avail.idx` of `layout`
    /// (given to the device and not yet returned), as window offsets.
    fn in_flight(&self, layout: &vring::Layout) -> Vec<usize> {
        let avail = self.u16_at(layout.avail_offset() + 2);
        let used = self.u16_at(layout.used_offset() + 2);
        let n = avail.wrapping_sub(used).min(NUM as u16);
        (0..n)
            .filter_map(|k| {
                let pos = used.wrapping_add(k) & (NUM as u16 - 1);
                let head = self.u16_at(layout.avail_entry_offset(pos));
                let desc = layout.desc_entry_offset(head & (NUM as u16 - 1));
                let mut addr = [0u8; 8];
                self.mem.peek(desc, &mut addr).ok()?;
                let off = u64::from_le_bytes(addr).checked_sub(PEER_BASE)?;
                usize::try_from(off).ok()
            })
            .collect()
    }

    /// One scribble by `role`, if the dice say so.
    fn maybe(&mut self, role: Role, report: &mut SideReport) {
        if !self.rng.one_in(self.plan.one_in) {
            return;
        }
        let (v0, v1) = (GEOMETRY.vring0, GEOMETRY.vring1);
        let pick = self.rng.one_in(2);
        let layout = if pick { v0 } else { v1 };
        let num = usize::from(layout.num());
        match (self.plan.target, role) {
            (Target::Rings, Role::Remote) => {
                let used = layout.used_offset();
                match self.rng.below(8) {
                    0 => self.scribble(used, 2),
                    1 => self.scribble(layout.avail_event_offset(), 2),
                    _ => self.scribble(used + 4, 8 * num),
                }
            }
            (Target::Rings, Role::Master) => {
                let avail = layout.avail_offset();
                match self.rng.below(8) {
                    0 => self.scribble(avail, 2),
                    1 => self.scribble(layout.used_event_offset(), 2),
                    2..=4 => self.scribble(avail + 4, 2 * num),
                    _ => self.scribble(layout.desc_offset(), 16 * num),
                }
            }
            (Target::Index, _) => {
                let idx = match role {
                    Role::Remote => layout.used_offset() + 2,
                    Role::Master => layout.avail_offset() + 2,
                };
                let bytes = (self.rng.next_u64() as u16).to_le_bytes();
                self.mem
                    .poke(idx, &bytes)
                    .unwrap_or_else(|e| panic!("scribble at {idx}: {e}"));
            }
            (Target::Buffers, Role::Remote) => {
                // The master's receive buffers on vring0 that the remote
                // was given and has not returned.
                let owned: Vec<usize> = self
                    .in_flight(&v0)
                    .into_iter()
                    .filter(|&o| o >= GEOMETRY.pool && o + BUF <= GEOMETRY.pool + NUM * BUF)
                    .collect();
                if owned.is_empty() {
                    return;
                }
                let at = owned[self.rng.below(owned.len() as u64) as usize];
                self.scribble(at, BUF);
            }
            (Target::Buffers, Role::Master) => {
                // The master's transmit buffers that are not in flight.
                let busy = self.in_flight(&v1);
                let first = GEOMETRY.pool + NUM * BUF;
                let free: Vec<usize> = (0..NUM)
                    .map(|k| first + k * BUF)
                    .filter(|o| !busy.contains(o))
                    .collect();
                if free.is_empty() {
                    return;
                }
                let at = free[self.rng.below(free.len() as u64) as usize];
                self.scribble(at, BUF);
            }
        }
        report.scribbles += 1;
    }
}

/// State shared by the two sides of a run.
struct Shared {
    turns: Arc<Turns>,
    hostile_active: AtomicBool,
    /// Set by the master when its part is done (all echoes in, or
    /// everything sent and quiet).
    master_done: AtomicBool,
}

/// Session words of the two sides (rpmsg::session), each alone on a line
/// after the buffer pool.
const MASTER_WORD: usize = GEOMETRY.size;
/// The remote's session word.
const REMOTE_WORD: usize = GEOMETRY.size + 64;
/// The shared window: rings, pool and the two session words.
const WINDOW: usize = GEOMETRY.size + 128;
/// Fresh echoes the master must see after the last restart of a restart
/// run before it is done.
const RESUME_TAIL: u32 = 20;

/// A rebooting core loses its cache: every line is dropped, dirty ones
/// without being written back.
fn lose_cache<const LINE: usize>(core: &SimCore<LINE>) {
    core.invalidate(0, WINDOW)
        .unwrap_or_else(|e| panic!("dropping the cache: {e}"));
}

/// Master steps a rebooted master waits for the remote to let go of the
/// old rings before it lays them out anyway (the remote checks every step).
const REBOOT_PATIENCE: u32 = 2_000;

/// Ticks a watchdog over a link whose peer stopped: 3 × a bound of 8
/// ticks; returns how often it found the peer unresponsive (1: the silence
/// was counted once).
fn silent_ticks<'m, R: Halves<'m>, N: Notify>(tx: &mut Tx<'_, 'm, R, N>) -> u32 {
    let mut dog = Watchdog::new(8);
    (0..24).map(|_| u32::from(dog.tick(tx))).sum()
}

/// Storage for a link of a run: a (re)booted side's new link borrows its
/// own for the rest of the run (the crashed link it replaces is forgotten,
/// never dropped, and keeps the old borrow).
fn storage() -> &'static mut Storage<2> {
    Box::leak(Box::new(Storage::new()))
}

/// Adds what a restart tore down to `report`.
fn count_reset(report: &mut SideReport, r: RestartReport) {
    report.lost_at_reset += r.lost;
    report.unconfirmed_at_reset += r.unconfirmed;
}

/// This side's session number (its word is valid while the run lasts).
fn own_session<const LINE: usize>(word: SessionWord, core: &SimCore<LINE>) -> u32 {
    word.read(core)
        .unwrap_or_else(|e| panic!("own session word: {e}"))
        .map_or(0, |s| s.session)
}

struct MasterSide<'m, N: Notify, T: NotifyRx> {
    /// Always `Some` between steps (taken only while a session ends).
    link: Option<MasterLink<'m, Watched<N>>>,
    /// The remote's services, from its announcements (address 53).
    dir: NsDirectory<2>,
    notifier: Watched<N>,
    core: &'m SimCore<MASTER_LINE>,
    rings: Arc<AtomicU64>,
    take: T,
    isr: Isr,
    ep: Endpoint,
    peer: Option<u32>,
    plan: Plan,
    classes: Classifier,
    idle: u32,
    quiet: u32,
    /// Messages sent whose echo has not come back (and was not lost to a
    /// restart).
    outstanding: u32,
    report: SideReport,
    out: Box<[u8; MAX_PAYLOAD]>,
    buf: Box<[u8; MAX_PAYLOAD]>,
    scribbler: Option<Scribbler>,
    /// This side's session word and the watch on the peer's.
    word: SessionWord,
    watch: PeerWatch,
    /// Fresh echoes since the last restart (of either side).
    this_life: u32,
    /// Fresh echoes after which this side crashes (restart runs).
    quota: u32,
    /// Rebooted and waiting for the remote to let go of the old rings:
    /// steps waited so far.
    rebooting: Option<u32>,
    rng: SplitMix64,
}

impl<'m, N: Notify, T: NotifyRx> MasterSide<'m, N, T> {
    fn restarts(&self, who: Role) -> Option<u32> {
        self.plan.restarts.filter(|r| r.who == who).map(|r| r.times)
    }

    /// Takes every message waiting and sorts it: announcements (address
    /// 53) to the directory, which names the peer; the rest is echoes.
    fn receive_all(&mut self) -> bool {
        let mut progressed = false;
        let link = self
            .link
            .as_mut()
            .unwrap_or_else(|| panic!("master: no link between steps"));
        let (_, mut rx) = link.split();
        for _ in 0..2 * NUM {
            match rx.try_recv(&mut self.buf[..]) {
                Ok(Some(r)) if r.dst == NS_ADDR => {
                    progressed = true;
                    if let Some(NsEvent::Created(s)) =
                        self.dir.on_message::<Legacy>(&self.buf[..r.len])
                    {
                        if s.name.as_str() == "rpmsg-echo" {
                            self.peer = Some(s.addr);
                        }
                    }
                }
                Ok(Some(r)) => {
                    progressed = true;
                    if r.len > MAX_PAYLOAD {
                        self.report.oversized += 1;
                    } else {
                        let got = &self.buf[..r.len];
                        if self.classes.note(got, &mut self.report).is_some() {
                            self.outstanding = self.outstanding.saturating_sub(1);
                            if self.this_life == 0
                                && self.report.crashes + self.report.restarts_handled > 0
                            {
                                self.report.resumed += 1;
                            }
                            self.this_life += 1;
                        }
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    failed(&mut self.report, e);
                    break;
                }
            }
        }
        progressed
    }

    /// The remote restarted (a new session word): deliver what it had
    /// published, end the session (counting what is lost, including what
    /// is still in the ring: this side owns the ring memory), lay the rings
    /// out again for the new remote session and restart the link over them.
    fn survive_peer_restart(&mut self, session: u32) {
        self.receive_all();
        let link = self
            .link
            .take()
            .unwrap_or_else(|| panic!("master: no link between steps"));
        let (ended, report) = link.release_session();
        count_reset(&mut self.report, report);
        // The old session's buffers are stale (`release_session`) and go
        // away with the old rings.
        self.link = Some(ended.restart(master_rings(self.core)));
        self.dir.on_peer_reset();
        self.word
            .attach(self.core, session)
            .unwrap_or_else(|e| panic!("attach: {e}"));
        self.watch.follow(session);
        self.report.restarts_handled += 1;
        self.peer = None;
        self.outstanding = 0;
        self.this_life = 0;
    }

    /// This core crashes and reboots: its cache and its link are gone, and
    /// it starts a new session (`peer_session` 0: the old rings are
    /// untouched). [`MasterSide::finish_reboot`] lays the rings out once
    /// the remote let go of them.
    fn crash_and_reboot(&mut self) {
        lose_cache(self.core);
        let seed = self.rng.next_u64() as u32;
        self.word
            .begin(self.core, seed)
            .unwrap_or_else(|e| panic!("master session: {e}"));
        self.rebooting = Some(0);
        self.report.crashes += 1;
        self.peer = None;
        self.outstanding = 0;
        self.this_life = 0;
        self.quota = 1 + self.rng.below(3 * NUM as u64) as u32;
    }

    /// The rebooted master's next step: once the remote attached to the new
    /// session (it counted what it had not taken from the old rings), or
    /// after [`REBOOT_PATIENCE`] steps, lay the rings out for the remote's
    /// session, with a new link and endpoint. The crashed link is never
    /// used again.
    fn finish_reboot(&mut self, waited: u32) -> bool {
        let own = own_session(self.word, self.core);
        let released = self
            .watch
            .attached_to(self.core, own)
            .unwrap_or_else(|e| panic!("remote word: {e}"));
        if released.is_none() && waited < REBOOT_PATIENCE {
            self.rebooting = Some(waited + 1);
            return false;
        }
        // The old link and its buffers are abandoned below and never used
        // again.
        let mut link = Link::new(master_rings(self.core), self.notifier.clone(), storage());
        let _ns = link.bind(NS_ADDR).unwrap_or_else(|e| panic!("{e}"));
        self.ep = link.bind(ADDR_ANY).unwrap_or_else(|e| panic!("{e}"));
        // A crashed core runs no destructor.
        std::mem::forget(self.link.replace(link));
        self.dir = NsDirectory::new();
        self.word
            .attach(self.core, released.unwrap_or(self.watch.seen()))
            .unwrap_or_else(|e| panic!("attach: {e}"));
        self.rebooting = None;
        true
    }

    /// Until the peer's service is known: read the rings and look for its
    /// announcement.
    fn learn_peer(&mut self) -> bool {
        self.receive_all();
        self.peer.is_some()
    }

    /// One step; returns whether anything moved.
    fn step(&mut self, shared: &Shared) -> bool {
        let mut progressed = false;
        self.rings.store(STEP_RINGS, Ordering::Relaxed);
        self.core.limit_operations(STEP_OPS);
        if let Some(waited) = self.rebooting {
            return self.finish_reboot(waited);
        }
        if self.restarts(Role::Remote).is_some() {
            if let Ok(PeerState::Restarted(session)) = self.watch.check(self.core) {
                self.survive_peer_restart(session);
                return true;
            }
        }
        if let Some(times) = self.restarts(Role::Master) {
            if self.report.crashes < times && self.this_life >= self.quota && self.rng.one_in(2) {
                self.crash_and_reboot();
                return true;
            }
        }
        if self.peer.is_none() && self.learn_peer() {
            progressed = true;
        }
        if let Some(s) = self.scribbler.as_mut() {
            if shared.hostile_active.load(Ordering::Relaxed) {
                s.maybe(Role::Master, &mut self.report);
            }
        }
        if let Some(set) = enter(
            &mut self.isr,
            &mut self.take,
            self.plan.poll_every,
            &mut self.idle,
            &mut self.report,
        ) {
            let _rang = set;
            progressed |= self.receive_all();
        }
        let stop_at = match self.plan.stop {
            Some(Stop {
                who: Role::Master,
                after,
            }) => after.min(self.plan.count),
            _ => self.plan.count,
        };
        // A restart run that is done restarting stops sending once traffic
        // flowed again for a while, and ends when every echo is back.
        let restarts_done = self.plan.restarts.is_some_and(|r| {
            r.times <= self.report.crashes + self.report.restarts_handled
                && self.this_life >= RESUME_TAIL
        });
        let open = self.plan.window.is_none_or(|w| self.outstanding < w) && !restarts_done;
        let link = self
            .link
            .as_mut()
            .unwrap_or_else(|| panic!("master: no link between steps"));
        let (mut tx, _) = link.split();
        if let (Some(peer), true) = (self.peer, self.report.sent < stop_at && open) {
            let n = payload(self.report.sent, &mut self.out);
            match tx.try_send(&self.ep, peer, &self.out[..n]) {
                Ok(Sent::Sent) => {
                    self.report.sent += 1;
                    self.outstanding += 1;
                    progressed = true;
                    if let Some(h) = self.plan.hostile {
                        if self.report.sent >= h.until_sent {
                            shared.hostile_active.store(false, Ordering::Relaxed);
                        }
                    }
                }
                Ok(Sent::NoBuffer) => {}
                Err(e) => failed(&mut self.report, e),
            }
        }
        tx.flush();
        // Done: every echo in (exact runs), everything sent and the link
        // quiet for a while (runs that may lose messages), or every restart
        // done and traffic flowing again (restart runs).
        let all_in = self.report.fresh >= self.plan.count;
        self.quiet = if progressed { 0 } else { self.quiet + 1 };
        let lossy_done = self.plan.window.is_none()
            && self.report.sent >= stop_at
            && self.quiet > self.plan.stall_after / 4;
        if all_in || lossy_done || (restarts_done && self.outstanding == 0) {
            shared.master_done.store(true, Ordering::Relaxed);
        }
        progressed
    }

    fn finish(mut self, peer_stopped: bool) -> (SideReport, Vec<bool>) {
        // A bounded `blocking_send` retries (and re-rings a deferred
        // doorbell) up to its budget: allow for it.
        self.rings
            .store(STEP_RINGS + 4 * FINAL_SPINS, Ordering::Relaxed);
        self.core.limit_operations(STEP_OPS);
        let link = self
            .link
            .as_mut()
            .unwrap_or_else(|| panic!("master: no link between steps"));
        let peer = self.peer.unwrap_or(ADDR_ANY);
        let n = payload(0, &mut self.out);
        let data = &self.out[..n];
        wrap_up(
            link,
            &self.ep,
            peer,
            data,
            &mut self.buf[..],
            &mut self.report,
            peer_stopped,
        );
        (self.report, self.classes.seen)
    }
}

struct RemoteSide<'m, N: Notify, T: NotifyRx> {
    /// `None` between a crash and the attach to the master's next session,
    /// and while the session is ended ([`RemoteSide::ended`]).
    link: Option<RemoteLink<'m, Watched<N>>>,
    /// The master restarted: this side let go of the old rings and waits
    /// for new ones laid out for it.
    ended: Option<Ended<'m, RemoteRings<'m, SimCore<REMOTE_LINE>, Legacy, NUM>, Watched<N>>>,
    /// The service announced, to announce again after a restart.
    ann: Announcements<1>,
    notifier: Watched<N>,
    core: &'m SimCore<REMOTE_LINE>,
    rings: Arc<AtomicU64>,
    take: T,
    isr: Isr,
    ep: Endpoint,
    plan: Plan,
    classes: Classifier,
    idle: u32,
    report: SideReport,
    /// An echo waiting for a transmit buffer: (destination, length).
    pending: Option<(u32, usize)>,
    buf: Box<[u8; MAX_PAYLOAD]>,
    scribbler: Option<Scribbler>,
    word: SessionWord,
    watch: PeerWatch,
    /// The service still has to be announced (after a reboot).
    announce: bool,
    /// Echoes sent since the last restart of this side.
    this_life: u32,
    quota: u32,
    rng: SplitMix64,
}

impl<N: Notify, T: NotifyRx> RemoteSide<'_, N, T> {
    fn restarts(&self, who: Role) -> Option<u32> {
        self.plan.restarts.filter(|r| r.who == who).map(|r| r.times)
    }

    /// The master restarted: end the session, counting what is lost (with
    /// what the old rings still hold when the master has not laid them out
    /// again), and attach to the new master session; the link restarts
    /// once the master laid the rings out for this side
    /// ([`RemoteSide::try_rejoin`]).
    fn survive_peer_restart(&mut self, session: u32) {
        let Some(link) = self.link.take() else {
            return;
        };
        let intact = self
            .watch
            .rings_intact(self.core)
            .unwrap_or_else(|e| panic!("master word: {e}"));
        let (ended, report) = if intact {
            link.release_session()
        } else {
            self.report.uncounted_restarts += 1;
            link.end_session()
        };
        count_reset(&mut self.report, report);
        self.ended = Some(ended);
        self.word
            .attach(self.core, session)
            .unwrap_or_else(|e| panic!("attach: {e}"));
        self.watch.follow(session);
        // The echo owed to the old session is not sent to the new one.
        self.pending = None;
    }

    /// After letting go: restart over the new rings once the master laid
    /// them out for this side's session.
    fn try_rejoin(&mut self) -> bool {
        let own = own_session(self.word, self.core);
        let ready = self
            .watch
            .attached_to(self.core, own)
            .unwrap_or_else(|e| panic!("master word: {e}"));
        if ready.is_none() {
            return false;
        }
        let Some(ended) = self.ended.take() else {
            return false;
        };
        // The old session's buffers are stale and went away with the old
        // rings.
        self.link = Some(ended.restart(remote_rings(self.core)));
        self.ann.on_restart();
        self.report.restarts_handled += 1;
        true
    }

    /// This core crashes and reboots: cache and link gone, a new session of
    /// its own; it attaches again once the master has laid out new rings
    /// for that session ([`RemoteSide::try_attach`]).
    fn crash(&mut self) {
        lose_cache(self.core);
        // A crashed core runs no destructor.
        std::mem::forget(self.link.take());
        std::mem::forget(self.ended.take());
        let seed = self.rng.next_u64() as u32;
        self.word
            .begin(self.core, seed)
            .unwrap_or_else(|e| panic!("remote session: {e}"));
        self.pending = None;
        self.report.crashes += 1;
        self.this_life = 0;
        self.quota = 1 + self.rng.below(3 * NUM as u64) as u32;
    }

    /// After a reboot: attach to the master's session, then build the
    /// link once the master laid the rings out for this side's new session.
    fn try_attach(&mut self) -> bool {
        let master = SessionWord::at(MASTER_WORD)
            .read(self.core)
            .unwrap_or_else(|e| panic!("master word: {e}"));
        let Some(master) = master else {
            return false;
        };
        let own = self
            .word
            .read(self.core)
            .unwrap_or_else(|e| panic!("own word: {e}"));
        let Some(own) = own else {
            return false;
        };
        if own.peer_session != master.session {
            self.word
                .attach(self.core, master.session)
                .unwrap_or_else(|e| panic!("attach: {e}"));
            self.watch.follow(master.session);
        }
        if master.peer_session != own.session {
            return false;
        }
        // This rebooted core holds no buffer of the old session.
        let mut link: RemoteLink<'_, _> =
            Link::new(remote_rings(self.core), self.notifier.clone(), storage());
        self.ep = link.bind(ADDR_ANY).unwrap_or_else(|e| panic!("{e}"));
        self.link = Some(link);
        self.ann = Announcements::new();
        self.announce = true;
        true
    }

    fn step(&mut self, shared: &Shared) -> bool {
        let mut progressed = false;
        self.rings.store(STEP_RINGS, Ordering::Relaxed);
        self.core.limit_operations(STEP_OPS);
        if self.ended.is_some() {
            return self.try_rejoin();
        }
        if self.link.is_none() {
            return self.try_attach();
        }
        if self.restarts(Role::Master).is_some() {
            if let Ok(PeerState::Restarted(session)) = self.watch.check(self.core) {
                self.survive_peer_restart(session);
                return true;
            }
        }
        if let Some(times) = self.restarts(Role::Remote) {
            if self.report.crashes < times && self.this_life >= self.quota && self.rng.one_in(2) {
                self.crash();
                return true;
            }
        }
        let Some(link) = self.link.as_mut() else {
            return progressed;
        };
        let (mut tx, mut rx) = link.split();
        if self.announce {
            // Remembered even when no buffer is free: owed, sent below.
            self.announce = false;
            match self.ann.announce(&mut tx, &self.ep, "rpmsg-echo") {
                Ok(Sent::Sent) => progressed = true,
                Ok(Sent::NoBuffer) => {}
                Err(e) => failed(&mut self.report, e),
            }
        } else if self.ann.owed() > 0 {
            match self.ann.reannounce(&mut tx) {
                Ok(0) => progressed = true,
                Ok(_) => {}
                Err(e) => failed(&mut self.report, e),
            }
        }
        if let Some(s) = self.scribbler.as_mut() {
            if shared.hostile_active.load(Ordering::Relaxed) {
                s.maybe(Role::Remote, &mut self.report);
            }
        }
        if let Some(set) = enter(
            &mut self.isr,
            &mut self.take,
            self.plan.poll_every,
            &mut self.idle,
            &mut self.report,
        ) {
            let _rang = set;
            // In restart runs the remote takes only a few messages per step,
            // so that a restart finds some queued (taken off the ring, not
            // yet given to the application).
            let batch = if self.plan.restarts.is_some() {
                1 + self.rng.below(3) as usize
            } else {
                2 * NUM
            };
            for _ in 0..batch {
                if let Some((dst, len)) = self.pending {
                    match tx.try_send(&self.ep, dst, &self.buf[..len]) {
                        Ok(Sent::Sent) => {
                            self.pending = None;
                            self.report.sent += 1;
                            self.this_life += 1;
                            progressed = true;
                        }
                        Ok(Sent::NoBuffer) => break,
                        Err(e) => {
                            self.pending = None;
                            failed(&mut self.report, e);
                            break;
                        }
                    }
                }
                if matches!(self.plan.stop, Some(Stop { who: Role::Remote, after }) if self.report.sent >= after)
                {
                    break;
                }
                match rx.try_recv(&mut self.buf[..]) {
                    Ok(Some(r)) => {
                        progressed = true;
                        if r.len > MAX_PAYLOAD {
                            self.report.oversized += 1;
                            continue;
                        }
                        let got = &self.buf[..r.len];
                        let _ = self.classes.note(got, &mut self.report);
                        self.pending = Some((r.src, r.len));
                    }
                    Ok(None) => break,
                    Err(e) => {
                        failed(&mut self.report, e);
                        break;
                    }
                }
            }
        }
        tx.flush();
        progressed
    }

    /// Whether the plan stops this side now.
    fn stopping(&self) -> bool {
        matches!(self.plan.stop, Some(Stop { who: Role::Remote, after }) if self.report.sent >= after)
    }

    fn finish(mut self, peer_stopped: bool) -> SideReport {
        // A bounded `blocking_send` retries (and re-rings a deferred
        // doorbell) up to its budget: allow for it.
        self.rings
            .store(STEP_RINGS + 4 * FINAL_SPINS, Ordering::Relaxed);
        self.core.limit_operations(STEP_OPS);
        let Some(link) = self.link.as_mut() else {
            return self.report;
        };
        let buf = &mut self.buf[..];
        wrap_up(
            link,
            &self.ep,
            1024,
            b"anyone?",
            buf,
            &mut self.report,
            peer_stopped,
        );
        self.report
    }
}

/// The end of a side's run: with the peer stopped, how the link behaves
/// towards it (sends until `NoBuffer`, a bounded `blocking_send` of `data`
/// to `dst`, a receive, the watchdog); then the link's counters.
fn wrap_up<'m, R: Halves<'m>, N: Notify>(
    link: &mut Link<'m, R, N>,
    ep: &Endpoint,
    dst: u32,
    data: &[u8],
    buf: &mut [u8],
    report: &mut SideReport,
    peer_stopped: bool,
) {
    if peer_stopped {
        let (mut tx, mut rx) = link.split();
        report.final_sends_accepted = Some(fill(&mut tx, ep, dst));
        report.final_send_would_block = Some(matches!(
            tx.blocking_send(ep, dst, data, Spins::new(FINAL_SPINS as u32)),
            Ok(Sent::NoBuffer)
        ));
        report.final_recv_would_block = Some(matches!(rx.try_recv(buf), Ok(None)));
        report.final_ticks_unresponsive = Some(silent_ticks(&mut tx));
    }
    report.tx = link.tx_stats();
    report.rx = link.rx_stats();
    report.rings = link.ring_stats();
    report.broken = link.is_broken();
}

/// Takes (and forgets) every pending doorbell: during the set-up the links
/// poll their rings, so the doorbells only need to be consumed.
fn drain<T: NotifyRx>(take: &mut T) {
    if take.take_pending().is_err() {
        // A word that is not a doorbell: nothing to forget.
    }
}

/// Sends until the link says `NoBuffer` (at most one ring's worth and one
/// more); returns how many it took. Errors count as the end too.
fn fill<'m, R: Halves<'m>, N: Notify>(tx: &mut Tx<'_, 'm, R, N>, ep: &Endpoint, dst: u32) -> u32 {
    let mut accepted = 0;
    for _ in 0..=NUM {
        match tx.try_send(ep, dst, b"still there?") {
            Ok(Sent::Sent) => accepted += 1,
            Ok(Sent::NoBuffer) | Err(_) => break,
        }
    }
    accepted
}

/// How many times a side may ring its doorbell in one step: a few per
/// message a step can move, with a wide margin; a link that spins on a
/// doorbell exceeds it at once.
const STEP_RINGS: u64 = 64 * NUM as u64 + 1_000;

/// The retry budget of the bounded `blocking_send` after a peer stopped.
const FINAL_SPINS: u64 = 1_000;

/// How many memory operations a core may make in one step (a generous
/// bound; a spinning wait exceeds it at once).
const STEP_OPS: u64 = 1_000_000;

/// Sets up both links (faults off), runs `plan` on two threads, and reports.
///
/// # Panics
///
/// If the set-up fails (the handshake runs without faults), or a side
/// panics (an invariant broke inside a link or a simulation).
pub fn run<L: FaultLink>(plan: Plan) -> RunReport {
    let FaultFixture {
        ring_b,
        mut take_b,
        ring_a,
        mut take_a,
        isr_a,
        isr_b,
        control,
    } = L::open_faulty();
    let mem = SimMemory::new(WINDOW, PEER_BASE).with_order(plan.weak);
    let mcore = mem.core::<MASTER_LINE>(CacheConfig::write_back(plan.seed));
    let rcore = mem.core::<REMOTE_LINE>(CacheConfig::write_back(plan.seed ^ 0xB));
    let (mrings_left, rrings_left) = (
        Arc::new(AtomicU64::new(u64::MAX / 4)),
        Arc::new(AtomicU64::new(u64::MAX / 4)),
    );

    // Set-up, faults off: sessions, rings, links, the name-service
    // handshake.
    let (mword, rword) = (SessionWord::at(MASTER_WORD), SessionWord::at(REMOTE_WORD));
    let msession = mword
        .begin(&mcore, plan.seed as u32)
        .unwrap_or_else(|e| panic!("master session: {e}"));
    let rsession = rword
        .begin(&rcore, (plan.seed >> 32) as u32 ^ 0x5E55)
        .unwrap_or_else(|e| panic!("remote session: {e}"));
    rword
        .attach(&rcore, msession)
        .unwrap_or_else(|e| panic!("attach: {e}"));
    let mrings = master_rings(&mcore);
    mword
        .attach(&mcore, rsession)
        .unwrap_or_else(|e| panic!("attach: {e}"));
    let rrings = remote_rings(&rcore);
    let (mnotifier, rnotifier) = (
        Watched::new(ring_b, Arc::clone(&mrings_left)),
        Watched::new(ring_a, Arc::clone(&rrings_left)),
    );
    let mut master: MasterLink<'_, _> = Link::new(mrings, mnotifier.clone(), storage());
    let mut remote: RemoteLink<'_, _> = Link::new(rrings, rnotifier.clone(), storage());
    // One thread plays both cores in the set-up, one after the other with
    // no doorbell between them: weakly ordered, time passing is what lands
    // the stores of one before the other looks.
    let settle = || {
        mcore.drain_stores();
        rcore.drain_stores();
    };
    settle();
    let rep = remote.bind(ADDR_ANY).unwrap_or_else(|e| panic!("{e}"));
    let mut ann = Announcements::new();
    assert_eq!(
        ann.announce(&mut remote.split().0, &rep, "rpmsg-echo"),
        Ok(Sent::Sent),
        "announce"
    );
    let _mns = master.bind(NS_ADDR).unwrap_or_else(|e| panic!("{e}"));
    let mut dir = NsDirectory::new();
    let mut peer = None;
    let mut ns_msg = [0u8; MAX_PAYLOAD];
    for _ in 0..100 {
        settle();
        drain(&mut take_a);
        drain(&mut take_b);
        let got = master
            .split()
            .1
            .try_recv(&mut ns_msg)
            .unwrap_or_else(|e| panic!("{e}"));
        if let Some(r) = got {
            assert_eq!(r.dst, NS_ADDR, "only the announcement");
            if let Some(NsEvent::Created(s)) = dir.on_message::<Legacy>(&ns_msg[..r.len]) {
                peer = Some(s.addr);
                break;
            }
        }
    }
    let peer = peer.unwrap_or_else(|| panic!("the announcement never arrived"));
    let mep = master.bind(ADDR_ANY).unwrap_or_else(|e| panic!("{e}"));
    settle();
    drain(&mut take_a);
    drain(&mut take_b);

    // Arm the faults.
    control.arm(plan.doorbells);
    let rescue = plan.rescue_delayed.then(|| Arc::clone(&control));
    let shared = Shared {
        turns: Arc::new(Turns::new(&plan, rescue)),
        hostile_active: AtomicBool::new(plan.hostile.is_some()),
        master_done: AtomicBool::new(false),
    };
    let hostile = |role: Role, seed: u64| {
        plan.hostile.filter(|h| h.who == role).map(|h| Scribbler {
            plan: h,
            rng: SplitMix64::new(seed),
            mem: mem.clone(),
        })
    };
    let mut mrng = SplitMix64::new(plan.seed ^ 0xC4A5);
    let mut rrng = SplitMix64::new(plan.seed ^ 0xC4A6);
    let mut master = MasterSide {
        link: Some(master),
        dir,
        notifier: mnotifier,
        core: &mcore,
        rings: mrings_left,
        take: take_a,
        isr: isr_a,
        ep: mep,
        peer: Some(peer),
        plan,
        classes: Classifier::new(plan.count),
        idle: 0,
        quiet: 0,
        outstanding: 0,
        report: SideReport::default(),
        out: Box::new([0; MAX_PAYLOAD]),
        buf: Box::new([0; MAX_PAYLOAD]),
        scribbler: hostile(Role::Master, plan.seed ^ 0x5C21),
        word: mword,
        watch: PeerWatch::new(rword, rsession),
        this_life: 0,
        quota: 1 + mrng.below(3 * NUM as u64) as u32,
        rebooting: None,
        rng: mrng,
    };
    let mut remote = RemoteSide {
        link: Some(remote),
        ended: None,
        ann,
        notifier: rnotifier,
        core: &rcore,
        rings: rrings_left,
        take: take_b,
        isr: isr_b,
        ep: rep,
        plan,
        classes: Classifier::new(plan.count),
        idle: 0,
        report: SideReport::default(),
        pending: None,
        buf: Box::new([0; MAX_PAYLOAD]),
        scribbler: hostile(Role::Remote, plan.seed ^ 0x5C22),
        word: rword,
        watch: PeerWatch::new(mword, msession),
        announce: false,
        this_life: 0,
        quota: 1 + rrng.below(3 * NUM as u64) as u32,
        rng: rrng,
    };
    let stop_of = |role: Role| plan.stop.is_some_and(|s| s.who == role);

    arm_core(&mcore, &plan, Role::Master, &shared.turns);
    arm_core(&rcore, &plan, Role::Remote, &shared.turns);
    let (mreport, seen, rreport) = thread::scope(|scope| {
        let shared = &shared;
        let m = scope.spawn(move || {
            let _guard = FinishOnPanic(&shared.turns);
            while shared.turns.wait(Role::Master) {
                let progressed = master.step(shared);
                let stopped =
                    stop_of(Role::Master) && master.report.sent >= plan.stop.map_or(0, |s| s.after);
                if shared.master_done.load(Ordering::Relaxed) {
                    shared.turns.finish();
                    break;
                }
                if stopped {
                    shared.turns.stop(Role::Master);
                    break;
                }
                shared.turns.end_step(Role::Master, progressed);
            }
            master.finish(stop_of(Role::Remote))
        });
        let r = scope.spawn(move || {
            let _guard = FinishOnPanic(&shared.turns);
            while shared.turns.wait(Role::Remote) {
                let progressed = remote.step(shared);
                if remote.stopping() {
                    shared.turns.stop(Role::Remote);
                    break;
                }
                shared.turns.end_step(Role::Remote, progressed);
            }
            remote.finish(stop_of(Role::Master))
        });
        let (mreport, seen) = m.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        let rreport = r.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        (mreport, seen, rreport)
    });
    debug_assert!(shared.turns.is_done() || stop_of(Role::Master));
    let state = shared.turns.lock();
    let outcome = if state.stalled {
        Outcome::Stalled
    } else {
        Outcome::Completed
    };
    let (turns, rescues) = (state.turns, state.rescues);
    drop(state);
    mcore.set_faults(MemFaults::default());
    rcore.set_faults(MemFaults::default());
    let tail_from = plan.count - plan.count / 4;
    let tail_complete = seen[tail_from as usize..].iter().all(|&s| s);
    let mut mreport = mreport;
    let mut rreport = rreport;
    mreport.cache = mcore.stats();
    rreport.cache = rcore.stats();
    mreport.weak = mcore.weak_stats();
    rreport.weak = rcore.weak_stats();
    mreport.outside_window = mcore.accesses_outside_window();
    rreport.outside_window = rcore.accesses_outside_window();
    control.arm(DoorbellFaults::NONE);
    RunReport {
        outcome,
        master: mreport,
        remote: rreport,
        faults: control.counts(),
        turns,
        rescues,
        tail_complete,
    }
}

/// Arms `role`'s core: torn write-backs that hand the turn to the peer
/// between the halves, and the operation limit.
fn arm_core<const LINE: usize>(core: &SimCore<LINE>, plan: &Plan, role: Role, turns: &Arc<Turns>) {
    let turns = Arc::clone(turns);
    core.set_faults(MemFaults {
        seed: plan.seed ^ ((index(role) as u64 + 1) * 0x70B2),
        torn_one_in: plan.torn_one_in,
        between_halves: Some(Arc::new(move || turns.hand_over(role))),
        op_limit: 0,
    });
}

// ---------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------

/// Messages per exact run.
pub const fn count() -> u32 {
    if cfg!(miri) {
        40
    } else {
        2_000
    }
}

/// Idle steps between periodic polls.
const POLL: u32 = 8;

/// A run with `doorbells` armed, interrupt-driven, polling or not.
fn doorbell_plan(doorbells: DoorbellFaults, poll: bool, seed: u64) -> Plan {
    Plan {
        doorbells,
        poll_every: poll.then_some(POLL),
        ..Plan::echo(count(), seed)
    }
}

/// Both cores made no access outside the window.
fn assert_in_window(r: &RunReport) {
    assert_eq!(
        (r.master.outside_window, r.remote.outside_window),
        (0, 0),
        "an access left the shared window: {r:#?}"
    );
}

/// Every message went through exactly once, unchanged, with no error of
/// any kind.
pub fn assert_exact(r: &RunReport, count: u32) {
    assert_eq!(r.outcome, Outcome::Completed, "stalled: {r:#?}");
    for (who, s) in [("master", &r.master), ("remote", &r.remote)] {
        assert_eq!(
            (s.fresh, s.replayed, s.corrupted, s.oversized),
            (count, 0, 0, 0),
            "{who}: lost, duplicated or corrupted messages: {r:#?}"
        );
        assert_eq!(s.link_errors, 0, "{who}: {:?}", s.first_error);
        assert_eq!(
            s.rings.0.failures.total() + s.rings.1.failures.total(),
            0,
            "{who}: ring validation failures {:?}",
            s.rings
        );
        assert!(!s.broken, "{who}: link broken");
    }
    assert_eq!(r.remote.sent, count, "every message echoed once");
    assert_in_window(r);
}

/// Lost doorbells: every message still arrives exactly once, because each
/// side re-checks its rings every few idle steps.
pub fn dropped_doorbells_recovered_by_polling<L: FaultLink>() {
    let faults = DoorbellFaults {
        seed: 1,
        drop_one_in: 2,
        ..DoorbellFaults::NONE
    };
    let r = run::<L>(doorbell_plan(faults, true, 11));
    assert_exact(&r, count());
    assert!(r.faults.dropped > 10, "{:?}", r.faults);
    assert!(r.master.polls + r.remote.polls > 0);
}

/// The same faults without the periodic poll: the run stalls (and ends, as
/// every wait is bounded), which shows the poll is what recovers, and that
/// nothing went wrong before the stall.
pub fn dropped_doorbells_stall_without_polling<L: FaultLink>() {
    let faults = DoorbellFaults {
        seed: 1,
        drop_one_in: 2,
        ..DoorbellFaults::NONE
    };
    let r = run::<L>(doorbell_plan(faults, false, 11));
    assert_eq!(r.outcome, Outcome::Stalled, "{r:#?}");
    assert!(r.master.fresh < count());
    assert_no_damage(&r);
}

/// Nothing received was replayed or corrupted, and no link failed.
fn assert_no_damage(r: &RunReport) {
    for (who, s) in [("master", &r.master), ("remote", &r.remote)] {
        assert_eq!(
            (s.replayed, s.corrupted, s.oversized, s.link_errors),
            (0, 0, 0, 0),
            "{who}: {r:#?}"
        );
    }
    assert_in_window(r);
}

/// Lost interrupts (the doorbell is pending, the line stays low): recovered
/// by the periodic poll.
pub fn dropped_interrupts_recovered_by_polling<L: FaultLink>() {
    let faults = DoorbellFaults {
        seed: 2,
        mute_one_in: 2,
        ..DoorbellFaults::NONE
    };
    let r = run::<L>(doorbell_plan(faults, true, 12));
    assert_exact(&r, count());
    assert!(r.faults.muted > 10, "{:?}", r.faults);
}

/// Lost interrupts without the poll: the run stalls, undamaged.
pub fn dropped_interrupts_stall_without_polling<L: FaultLink>() {
    let faults = DoorbellFaults {
        seed: 2,
        mute_one_in: 2,
        ..DoorbellFaults::NONE
    };
    let r = run::<L>(doorbell_plan(faults, false, 12));
    assert_eq!(r.outcome, Outcome::Stalled, "{r:#?}");
    assert_no_damage(&r);
}

/// Interrupts nobody raised (phantom doorbells, events over empty queues,
/// garbage words), with no poll to hide behind: every message arrives
/// exactly once, and every garbage word the receivers took was reported as
/// a protocol error rather than taken for a doorbell.
pub fn spurious_interrupts_are_harmless<L: FaultLink>() {
    let faults = DoorbellFaults {
        seed: 3,
        spurious_one_in: 40,
        ..DoorbellFaults::NONE
    };
    let r = run::<L>(doorbell_plan(faults, false, 13));
    assert_exact(&r, count());
    let f = r.faults;
    assert!(f.spurious + f.garbage > 10, "{f:?}");
    let errors = r.master.notify_errors + r.remote.notify_errors;
    // A phantom event over a stale register can show an old garbage word
    // again, so errors are bounded by both kinds together.
    assert!(
        errors <= f.garbage + f.spurious,
        "{errors} errors for {f:?}"
    );
    if f.garbage > 4 {
        assert!(errors > 0, "garbage words must be reported: {f:?}");
    }
    if L::WORD_FIFO {
        // Word backends also raise events over empty queues and garbage;
        // bit backends' phantom doorbells look like any other doorbell.
        let empty = r.master.empty_interrupts + r.remote.empty_interrupts;
        assert!(empty + errors > 0, "the spurious events were seen");
    }
}

/// Doorbells delivered twice, no poll: exactly-once delivery (the rings,
/// not the doorbells, say what is new), and the surplus doorbells were
/// taken.
pub fn duplicated_doorbells_are_harmless<L: FaultLink>() {
    let faults = DoorbellFaults {
        seed: 4,
        duplicate_one_in: 2,
        ..DoorbellFaults::NONE
    };
    let r = run::<L>(doorbell_plan(faults, false, 14));
    assert_exact(&r, count());
    assert!(r.faults.duplicated > 10, "{:?}", r.faults);
    assert!(r.faults.late_deliveries > 0);
}

/// Every doorbell arrives late (2000 register accesses after it was rung),
/// with the poll: exactly-once delivery, and the late doorbells do land
/// (finding nothing new). Without the poll the first late doorbell stalls
/// the run, since idle sides make no register accesses.
pub fn delayed_doorbells_recovered_by_polling<L: FaultLink>() {
    let faults = DoorbellFaults {
        seed: 5,
        delay_one_in: 1,
        delay_accesses: 2_000,
        ..DoorbellFaults::NONE
    };
    let r = run::<L>(doorbell_plan(faults, true, 15));
    assert_exact(&r, count());
    assert!(r.faults.delayed > 10, "{:?}", r.faults);
    assert!(r.faults.late_deliveries > 0, "{:?}", r.faults);
}

/// Every doorbell held back until somebody delivers it, no poll: each time
/// the run stalls the test delivers the held doorbells
/// ([`FaultControl::deliver_delayed`]) and traffic resumes, exactly once.
pub fn delayed_doorbells_delivered_on_request<L: FaultLink>() {
    let n = count() / 10;
    let plan = Plan {
        doorbells: DoorbellFaults {
            seed: 6,
            delay_one_in: 1,
            delay_accesses: u32::MAX / 2,
            ..DoorbellFaults::NONE
        },
        rescue_delayed: true,
        stall_after: 300,
        ..Plan::echo(n, 16)
    };
    let r = run::<L>(plan);
    assert_exact(&r, n);
    assert!(r.rescues > 0, "no stall needed a rescue: {r:#?}");
    assert!(r.faults.late_deliveries > 0);
}

/// Torn write-backs on both cores, the peer looking at the half-written
/// line (it gets the turn between the halves and polls every step):
/// exactly-once delivery, since no index is ever published in the same
/// write-back as what it covers and no side reads a line the other may be
/// writing back.
pub fn torn_write_backs_are_never_observed<L: FaultLink>() {
    let plan = Plan {
        torn_one_in: 3,
        poll_every: Some(0),
        ..Plan::echo(count(), 17)
    };
    let r = run::<L>(plan);
    assert_exact(&r, count());
    assert!(
        r.master.cache.torn_write_backs > 50 && r.remote.cache.torn_write_backs > 50,
        "{:?} {:?}",
        r.master.cache,
        r.remote.cache
    );
}

/// Every doorbell fault and torn write-backs at once, both threads running
/// freely (real interleavings), with the poll: exactly-once delivery.
pub fn all_faults_at_once_free_running<L: FaultLink>() {
    let plan = Plan {
        doorbells: DoorbellFaults {
            seed: 7,
            drop_one_in: 9,
            mute_one_in: 9,
            spurious_one_in: 200,
            duplicate_one_in: 9,
            delay_one_in: 9,
            delay_accesses: 30,
        },
        poll_every: Some(64),
        torn_one_in: 16,
        schedule: Schedule::Free,
        stall_after: 20_000_000,
        ..Plan::echo(count(), 18)
    };
    let r = run::<L>(plan);
    assert_exact(&r, count());
    let f = r.faults;
    assert!(f.dropped > 0 && f.muted > 0 && f.duplicated > 0 && f.delayed > 0);
}

/// A lossy run with a scribbling side.
fn hostile_plan(who: Role, target: Target, seed: u64) -> Plan {
    let n = count() / 2;
    Plan {
        window: None,
        poll_every: Some(4),
        hostile: Some(Hostile {
            who,
            target,
            one_in: 3,
            until_sent: n / 2,
        }),
        stall_after: 3_000,
        ..Plan::echo(n, seed)
    }
}

/// The checks of a run where the peer scribbled on its rings: the honest
/// `victim` detected it (typed, counted ring failures, or a broken link),
/// delivered nothing corrupted, nothing beyond a buffer, never left the
/// window; and the link either went back to full service once the
/// scribbling stopped (every message of the last quarter arrived), or one
/// side reports itself broken, or a hostile *master* starved itself (below).
///
/// A master that scribbles its own available rings can lose its own
/// buffers for good: the entry it overwrote named a buffer that is now
/// never handed over, and the id written in its place is rejected by the
/// victim (counted). Once every buffer of one of the master's rings is
/// gone that way, the link stalls through no fault of the victim; how many
/// are lost is a matter of which entries the dice hit before the victim
/// read them, so it depends on the interleaving. That stall is accepted
/// only when it is explained: all `NUM` buffers of a master ring are
/// outstanding (posted, never returned) and the victim counted failures on
/// the matching ring.
fn assert_survived_scribbles(r: &RunReport, victim: &SideReport) {
    assert_in_window(r);
    for (who, s) in [("master", &r.master), ("remote", &r.remote)] {
        assert_eq!(
            (s.corrupted, s.oversized),
            (0, 0),
            "{who} delivered corrupted data: {r:#?}"
        );
    }
    let failures = victim.rings.0.failures.total() + victim.rings.1.failures.total();
    let header = victim.rx.bad_header + victim.rx.unbound;
    assert!(
        failures + header > 0 || victim.broken,
        "the scribbles went unnoticed: {r:#?}"
    );
    let broken = r.master.broken || r.remote.broken;
    // Master ring `k` (transmit, receive) is the remote's ring `1 - k`.
    let outstanding = |s: &vring::Stats| s.published.wrapping_sub(s.completed);
    let self_starved = r.outcome == Outcome::Stalled
        && ((outstanding(&r.master.rings.0) >= NUM as u32
            && r.remote.rings.1.failures.total() > 0)
            || (outstanding(&r.master.rings.1) >= NUM as u32
                && r.remote.rings.0.failures.total() > 0));
    assert!(
        r.tail_complete || broken || self_starved,
        "neither recovered nor reported broken: {r:#?}"
    );
    if !broken && !self_starved {
        assert_eq!(r.outcome, Outcome::Completed, "{r:#?}");
    }
}

/// The remote writes random bytes into its used rings (entries, flags,
/// `avail_event`) for the first half of the run; the master is the victim.
/// A stale buffer the remote hands back by a valid id would be replayed
/// byte for byte (the protocol cannot tell; counted as `replayed`), but
/// nothing corrupted is ever delivered.
pub fn hostile_remote_scribbles_its_used_rings<L: FaultLink>() {
    let r = run::<L>(hostile_plan(Role::Remote, Target::Rings, 21));
    assert!(r.remote.scribbles > 20, "{r:#?}");
    assert_survived_scribbles(&r, &r.master);
}

/// The master writes random bytes into its descriptor tables and available
/// rings (entries, flags, `used_event`) for the first half of the run; the
/// remote is the victim.
pub fn hostile_master_scribbles_its_descriptors_and_avail_rings<L: FaultLink>() {
    let r = run::<L>(hostile_plan(Role::Master, Target::Rings, 22));
    assert!(r.master.scribbles > 20, "{r:#?}");
    assert_survived_scribbles(&r, &r.remote);
}

/// The checks of a run where the peer overwrote its published index with
/// random values: the victim saw an index jump (typed, counted), reports
/// its link broken, and every later operation fails with a typed error
/// instead of reading entries that do not exist; nothing corrupted was
/// delivered and the run ended (bounded).
fn assert_index_jump_breaks_the_link(r: &RunReport, victim: &SideReport) {
    assert_in_window(r);
    for s in [&r.master, &r.remote] {
        assert_eq!((s.corrupted, s.oversized), (0, 0), "{r:#?}");
    }
    let f = (victim.rings.0.failures, victim.rings.1.failures);
    let jumps = f.0.used_index_jump()
        + f.1.used_index_jump()
        + f.0.avail_index_jump()
        + f.1.avail_index_jump();
    assert!(jumps > 0 && victim.broken, "{r:#?}");
    assert!(
        matches!(
            victim.first_error,
            Some(LinkError::Ring(
                vring::Error::UsedIndexJump | vring::Error::AvailIndexJump
            ))
        ),
        "{r:#?}"
    );
    assert_eq!(r.outcome, Outcome::Stalled, "{r:#?}");
}

/// The remote overwrites `used.idx` with random values: the master detects
/// the jump and reports its link broken.
pub fn hostile_remote_scribbles_its_used_index<L: FaultLink>() {
    let r = run::<L>(hostile_plan(Role::Remote, Target::Index, 27));
    assert_index_jump_breaks_the_link(&r, &r.master);
}

/// The master overwrites `avail.idx` with random values: the remote detects
/// the jump and reports its link broken.
pub fn hostile_master_scribbles_its_avail_index<L: FaultLink>() {
    let r = run::<L>(hostile_plan(Role::Master, Target::Index, 28));
    assert_index_jump_breaks_the_link(&r, &r.remote);
}

/// The checks of a run where a side scribbled only on buffers it owned:
/// nobody reads a buffer it does not own, or past the length its header
/// declares, so every message still arrives exactly once.
fn assert_buffers_scribbled_harmlessly(r: &RunReport, scribbles: u32) {
    assert!(scribbles > 20, "{r:#?}");
    assert_exact(r, r.master.sent);
    assert_eq!(r.master.sent, count() / 2);
}

/// The remote writes random bytes into the master's receive buffers while
/// it holds them (given, not yet returned): harmless.
pub fn hostile_remote_scribbles_buffers_it_owns<L: FaultLink>() {
    let plan = Plan {
        window: Some(8),
        hostile: Some(Hostile {
            who: Role::Remote,
            target: Target::Buffers,
            one_in: 2,
            until_sent: count(),
        }),
        poll_every: Some(POLL),
        ..Plan::echo(count() / 2, 23)
    };
    let r = run::<L>(plan);
    assert_buffers_scribbled_harmlessly(&r, r.remote.scribbles);
}

/// The master writes random bytes into its transmit buffers that are not in
/// flight: harmless.
pub fn hostile_master_scribbles_buffers_it_owns<L: FaultLink>() {
    let plan = Plan {
        window: Some(8),
        hostile: Some(Hostile {
            who: Role::Master,
            target: Target::Buffers,
            one_in: 2,
            until_sent: count(),
        }),
        poll_every: Some(POLL),
        ..Plan::echo(count() / 2, 24)
    };
    let r = run::<L>(plan);
    assert_buffers_scribbled_harmlessly(&r, r.master.scribbles);
}

/// The remote stops after echoing 100 messages (its thread ends). The master
/// keeps going: every echo sent before the stop arrives, then sends run out
/// of transmit buffers (`WouldBlock`, counted), doorbells into a full FIFO
/// are deferred rather than waited for, a bounded `blocking_send` gives up
/// with `WouldBlock`, receives are `WouldBlock`: nothing hangs.
pub fn remote_stops_mid_transfer<L: FaultLink>() {
    let plan = Plan {
        window: None,
        poll_every: Some(POLL),
        stop: Some(Stop {
            who: Role::Remote,
            after: 100,
        }),
        stall_after: 2_000,
        ..Plan::echo(count(), 25)
    };
    let r = run::<L>(plan);
    assert_eq!(r.outcome, Outcome::Stalled, "{r:#?}");
    assert_no_damage(&r);
    assert_eq!((r.remote.sent, r.master.fresh), (100, 100), "{r:#?}");
    assert!(
        r.master.sent >= 100 && r.master.sent <= 100 + 2 * NUM as u32,
        "{r:#?}"
    );
    assert!(r.master.tx.buffer_waits > 0);
    assert_eq!(r.master.final_sends_accepted, Some(0), "{r:#?}");
    assert_eq!(r.master.final_send_would_block, Some(true));
    assert_eq!(r.master.final_recv_would_block, Some(true));
    assert_eq!(r.master.final_ticks_unresponsive, Some(1), "{r:#?}");
    if L::WORD_FIFO {
        assert!(
            r.master.tx.doorbells_deferred + r.master.rx.doorbells_deferred > 0,
            "a full FIFO defers doorbells: {r:#?}"
        );
    }
}

/// The master stops after sending 100 messages. The remote receives all of
/// them, echoes while the master's receive buffers last, then gets
/// `WouldBlock`: nothing hangs.
pub fn master_stops_mid_transfer<L: FaultLink>() {
    let plan = Plan {
        window: None,
        poll_every: Some(POLL),
        stop: Some(Stop {
            who: Role::Master,
            after: 100,
        }),
        stall_after: 2_000,
        ..Plan::echo(count(), 26)
    };
    let r = run::<L>(plan);
    assert_eq!(r.outcome, Outcome::Stalled, "{r:#?}");
    assert_no_damage(&r);
    assert_eq!((r.master.sent, r.remote.fresh), (100, 100), "{r:#?}");
    assert!(r.remote.sent <= 100);
    // The remote may still hold some of the master's receive buffers; once
    // they are used up, sending is `WouldBlock`.
    let extra = r.remote.final_sends_accepted.unwrap_or(u32::MAX);
    assert!(r.remote.sent + extra <= 100 + NUM as u32, "{r:#?}");
    assert!(r.remote.tx.buffer_waits > 0, "{r:#?}");
    assert_eq!(r.remote.final_send_would_block, Some(true));
    assert_eq!(r.remote.final_recv_would_block, Some(true));
    assert_eq!(r.remote.final_ticks_unresponsive, Some(1), "{r:#?}");
}

/// How many restarts the restart tests make.
pub const fn restarts() -> u32 {
    if cfg!(miri) {
        5
    } else {
        100
    }
}

/// A run where `who` crashes and reboots [`restarts`] times during traffic
/// (each incarnation echoes or receives a random 1 to 48 messages first,
/// and crashes at a random step after that, messages in flight).
fn restart_plan(who: Role, seed: u64) -> Plan {
    Plan {
        poll_every: Some(POLL),
        restarts: Some(Restarts {
            who,
            times: restarts(),
        }),
        ..Plan::echo(50_000, seed)
    }
}

/// The checks every restart run shares: it completed, both sides restarted
/// exactly as often as the plan says, traffic came back after every
/// restart, nothing was delivered twice or corrupted, no operation failed,
/// and no access left the window.
fn assert_restarted(r: &RunReport, crasher: &SideReport, survivor: &SideReport) {
    let times = restarts();
    assert_eq!(r.outcome, Outcome::Completed, "{r:#?}");
    assert_eq!(
        (crasher.crashes, survivor.restarts_handled),
        (times, times),
        "{r:#?}"
    );
    assert_eq!(
        r.master.resumed, times,
        "traffic resumed after every restart: {r:#?}"
    );
    for (who, s) in [("master", &r.master), ("remote", &r.remote)] {
        assert_eq!(
            (s.replayed, s.corrupted, s.oversized, s.link_errors),
            (0, 0, 0, 0),
            "{who}: {:?} {r:#?}",
            s.first_error
        );
    }
    assert_in_window(r);
}

/// The remote crashes and reboots 100 times during traffic; the master
/// notices each new remote session, takes what the remote had published,
/// ends the session, lays the rings out again and restarts. Traffic resumes
/// after every restart, and every message is accounted for: each master
/// message was delivered once to some remote incarnation or reported
/// unconfirmed at a reset, and each echo was delivered once or reported
/// lost at a reset.
pub fn remote_restarts_100_times_during_traffic<L: FaultLink>() {
    let r = run::<L>(restart_plan(Role::Remote, 31));
    assert_restarted(&r, &r.remote, &r.master);
    let m = r.master;
    assert_eq!(
        r.remote.fresh + m.unconfirmed_at_reset,
        r.master.sent,
        "master -> remote: delivered + unconfirmed = sent: {r:#?}"
    );
    assert_eq!(
        r.master.fresh + m.lost_at_reset,
        r.remote.sent,
        "remote -> master: delivered + lost = sent: {r:#?}"
    );
    assert!(
        m.unconfirmed_at_reset > 0,
        "restarts hit messages in flight"
    );
}

/// The master crashes and reboots 100 times during traffic. Each time the
/// rebooted master starts a new session and waits; the remote notices,
/// counts what it had not taken from the old rings
/// ([`Link::release_session`]) and attaches; the master lays the rings out
/// for it and the remote restarts over them. Traffic resumes after every
/// restart; nothing is delivered twice; every master message was delivered
/// once or reported lost by the remote (nothing is counted from ring
/// memory by the test). Echoes the crashed master had not taken are
/// unreportable (the crashed master forgot them, and the remote cannot
/// know which it read): the check there is that none is delivered twice.
pub fn master_restarts_100_times_during_traffic<L: FaultLink>() {
    let r = run::<L>(restart_plan(Role::Master, 32));
    assert_restarted(&r, &r.master, &r.remote);
    assert_eq!(
        r.remote.uncounted_restarts, 0,
        "the handshake let the remote count every time: {r:#?}"
    );
    assert_eq!(
        r.remote.fresh + r.remote.lost_at_reset,
        r.master.sent,
        "master -> remote: delivered + lost = sent: {r:#?}"
    );
    assert!(r.master.fresh <= r.remote.sent, "{r:#?}");
    assert!(
        r.remote.lost_at_reset > 0,
        "restarts found messages in flight: {r:#?}"
    );
}

/// Weak mode ([`crate::sim::WeakOrder`]): the exact echo on interrupts
/// only, every doorbell the only wake-up, so a doorbell that overtakes the
/// ring stores it announces, or a ring read that runs ahead of the doorbell,
/// loses a wake-up and stalls the run. `uncached`: over an uncached window.
pub fn weak_exact_echo_interrupts_only<L: FaultLink>(uncached: bool, seed: u64) {
    let plan = Plan {
        weak: crate::link::weak_order(seed, uncached),
        ..Plan::echo(count(), seed)
    };
    let r = run::<L>(plan);
    assert_exact(&r, count());
    crate::link::assert_weakly_ordered(&[r.master.weak, r.remote.weak]);
}

/// Weak mode and every doorbell fault and torn write-backs at once, both
/// threads running freely, with the poll: exactly-once delivery.
pub fn weak_all_faults_at_once_free_running<L: FaultLink>() {
    let plan = Plan {
        doorbells: DoorbellFaults {
            seed: 8,
            drop_one_in: 9,
            mute_one_in: 9,
            spurious_one_in: 200,
            duplicate_one_in: 9,
            delay_one_in: 9,
            delay_accesses: 30,
        },
        poll_every: Some(64),
        torn_one_in: 16,
        schedule: Schedule::Free,
        stall_after: 20_000_000,
        weak: crate::link::weak_order(19, false),
        ..Plan::echo(count(), 19)
    };
    let r = run::<L>(plan);
    assert_exact(&r, count());
    crate::link::assert_weakly_ordered(&[r.master.weak, r.remote.weak]);
}

/// Expands the fault-injection suite into named `#[test]`s for one
/// backend's [`FaultLink`] fixture.
#[macro_export]
macro_rules! fault_suite {
    ($link:ty) => {
        #[test]
        fn dropped_doorbells_recovered_by_polling() {
            $crate::faults::dropped_doorbells_recovered_by_polling::<$link>();
        }
        #[test]
        fn dropped_doorbells_stall_without_polling() {
            $crate::faults::dropped_doorbells_stall_without_polling::<$link>();
        }
        #[test]
        fn dropped_interrupts_recovered_by_polling() {
            $crate::faults::dropped_interrupts_recovered_by_polling::<$link>();
        }
        #[test]
        fn dropped_interrupts_stall_without_polling() {
            $crate::faults::dropped_interrupts_stall_without_polling::<$link>();
        }
        #[test]
        fn spurious_interrupts_are_harmless() {
            $crate::faults::spurious_interrupts_are_harmless::<$link>();
        }
        #[test]
        fn duplicated_doorbells_are_harmless() {
            $crate::faults::duplicated_doorbells_are_harmless::<$link>();
        }
        #[test]
        fn delayed_doorbells_recovered_by_polling() {
            $crate::faults::delayed_doorbells_recovered_by_polling::<$link>();
        }
        #[test]
        fn delayed_doorbells_delivered_on_request() {
            $crate::faults::delayed_doorbells_delivered_on_request::<$link>();
        }
        #[test]
        fn torn_write_backs_are_never_observed() {
            $crate::faults::torn_write_backs_are_never_observed::<$link>();
        }
        #[test]
        fn all_faults_at_once_free_running() {
            $crate::faults::all_faults_at_once_free_running::<$link>();
        }
        #[test]
        fn hostile_remote_scribbles_its_used_rings() {
            $crate::faults::hostile_remote_scribbles_its_used_rings::<$link>();
        }
        #[test]
        fn hostile_master_scribbles_its_descriptors_and_avail_rings() {
            $crate::faults::hostile_master_scribbles_its_descriptors_and_avail_rings::<$link>();
        }
        #[test]
        fn hostile_remote_scribbles_its_used_index() {
            $crate::faults::hostile_remote_scribbles_its_used_index::<$link>();
        }
        #[test]
        fn hostile_master_scribbles_its_avail_index() {
            $crate::faults::hostile_master_scribbles_its_avail_index::<$link>();
        }
        #[test]
        fn hostile_remote_scribbles_buffers_it_owns() {
            $crate::faults::hostile_remote_scribbles_buffers_it_owns::<$link>();
        }
        #[test]
        fn hostile_master_scribbles_buffers_it_owns() {
            $crate::faults::hostile_master_scribbles_buffers_it_owns::<$link>();
        }
        #[test]
        fn remote_stops_mid_transfer() {
            $crate::faults::remote_stops_mid_transfer::<$link>();
        }
        #[test]
        fn master_stops_mid_transfer() {
            $crate::faults::master_stops_mid_transfer::<$link>();
        }
        #[test]
        fn weak_exact_echo_interrupts_only() {
            $crate::faults::weak_exact_echo_interrupts_only::<$link>(false, 41);
        }
        #[test]
        fn weak_uncached_exact_echo_interrupts_only() {
            $crate::faults::weak_exact_echo_interrupts_only::<$link>(true, 42);
        }
        #[test]
        fn weak_all_faults_at_once_free_running() {
            $crate::faults::weak_all_faults_at_once_free_running::<$link>();
        }
        #[test]
        fn remote_restarts_100_times_during_traffic() {
            $crate::faults::remote_restarts_100_times_during_traffic::<$link>();
        }
        #[test]
        fn master_restarts_100_times_during_traffic() {
            $crate::faults::master_restarts_100_times_during_traffic::<$link>();
        }
    };
}
