//! A behavioural model of a whole K3 mailbox cluster, every user, for host
//! tests (feature `sim`).
//!
//! [`Cluster`] holds the hardware rules of sheet `am62x-mailbox.md` as plain
//! state behind a mutex: 16 queues of [`FIFO_DEPTH`] words, pop-on-read
//! `MESSAGE` registers, writes to a full queue discarded, per-user latched
//! event status that re-asserts while its condition holds, write-1-to-clear
//! and set/clear-alias registers, and one interrupt line per user that is
//! high while an enabled event is latched. [`Cluster::regs`] hands out a
//! `Copy`, `Send + Sync` register view ([`SimRegs`]) that the *unchanged*
//! driver uses; two drivers acting as two users (for example the M4F, user 2,
//! and Linux, user 0) talk through one cluster, from two threads if wanted.
//!
//! [`LinuxPeer`] plays Linux's side register by register: the
//! `omap-mailbox` send/receive/tx-done flow and the K3 remoteproc kick and
//! control-message handling (sheet §3.2, §4.1).
//!
//! # Model rules and the choices the sheet left open
//!
//! - Each user `u` has a latched status `S_u` (what `IRQSTATUS_RAW_u`
//!   reads). After every access the model sets `NEWMSG(m)` in every `S_u`
//!   while queue `m` holds a word, and `NOTFULL(m)` while it has room (sheet
//!   §2.1: level-like, re-asserts while the condition holds).
//!   UNCERTAIN(am62x-mailbox.md §2.1): a latched bit stays set after its
//!   condition goes away until it is write-1-cleared (sticky); the sheet says
//!   only that the event re-asserts while messages remain. Pinned by
//!   `uncertain_status_sticky_until_write_one_to_clear`.
//! - UNCERTAIN(am62x-mailbox.md §2 IRQSTATUS_RAW, "Still unverified"): because
//!   the `NOTFULL` condition holds for an empty queue, `IRQSTATUS_RAW_u`
//!   reads `0xAAAA_AAAA` right after reset, not the AM335x table's 0. Pinned
//!   by `uncertain_raw_notfull_reads_one_after_reset`.
//! - UNCERTAIN(am62x-mailbox.md §1 FIFO depth): 4 words (TRM), not MCU+'s 8.
//!   Pinned by `uncertain_fifo_depth_is_four_not_eight`.
//! - UNCERTAIN(am62x-mailbox.md §2 SYSCONFIG): writing `SOFTRESET` resets the
//!   cluster at once and the bit reads back 0. Pinned by
//!   `uncertain_softreset_completes_at_once`.
//! - UNCERTAIN(am62x-mailbox.md §2 IRQ_EOI): a write is recorded per user
//!   (counter) and changes neither status nor lines. Pinned by
//!   `uncertain_eoi_has_no_effect_on_level_lines`.
//! - UNCERTAIN(am62x-mailbox.md §2 REVISION): the sheet gives the fields, not
//!   the AM62x value; the model reads [`SIM_REVISION`] (0).
//! - `MSGSTATUS_m` reads exactly the count (sheet §2); `FIFOSTATUS_m` bit 0 is
//!   1 while the queue holds [`FIFO_DEPTH`] words.
//! - Reading `MESSAGE_m` on an empty queue returns 0 and pops nothing (sheet
//!   §1), and is counted in [`SimCounters::empty_reads`].
//! - Writing `MESSAGE_m` to a full queue loses the word (sheet §1), counted in
//!   [`SimCounters::discarded_writes`]. The driver never does this; the model
//!   shows what silicon would do if it did.
//! - Offsets that are no register (or misaligned) read 0 and are counted
//!   ([`SimCounters::unknown_reads`] / [`SimCounters::unknown_writes`]);
//!   writes to read-only registers are ignored and counted
//!   ([`SimCounters::ignored_writes`]).
//!
//! # Fault injection
//!
//! [`Cluster::set_faults`] arms seeded doorbell faults on chosen queues
//! ([`Faults`], counted in [`FaultCounters`]; off by default). The faults,
//! their invariants and the engine are [`ipc_traits::sim_faults`]; here a
//! doorbell is a `MESSAGE_q` write, its word is pushed into queue `q` (held
//! and garbage words keep the queue's last free slot), a muted word latches
//! `NEWMSG` in the status registers but reaches no user's line until
//! another word lands in that queue, and a phantom latches `NEWMSG` in
//! every user's status while the queue is empty. [`Cluster::deliver_delayed`]
//! lands held words at once.
//!
//! # Examples
//!
//! ```
//! use mbox_am62x::sim::Cluster;
//! use mbox_am62x::{Mbox, User, WordRx, WordTx};
//!
//! let cluster = Cluster::new();
//! let m4f = Mbox::new(cluster.regs(), User::M4F).split();
//! let linux = Mbox::new(cluster.regs(), User::A53).split();
//! let mut tx = m4f.q0.into_tx();
//! let mut rx = linux.q0.into_rx();
//! tx.try_send(0x1234)?;
//! assert_eq!(rx.try_recv()?, 0x1234);
//! # Ok::<(), mbox_am62x::Error>(())
//! ```
#![allow(unsafe_code)] // only the `unsafe impl Regs32 for SimRegs` below

mod linux;

pub use linux::{LinuxPeer, LinuxRx};

use std::sync::{Mutex, MutexGuard, PoisonError};

pub use ipc_traits::sim_faults::FaultCounters;

use ipc_traits::regs::Regs32;
use ipc_traits::sim_faults::{FaultModel, Injector, Receivers, Room, Target, Targets};

use crate::registers::{
    newmsg, notfull, FIFO_DEPTH, IRQ_EOI_OFFSET, MESSAGE0_OFFSET, QUEUES, REVISION_OFFSET,
    SYSCONFIG_OFFSET, USERS, USER_STRIDE,
};
use crate::User;

/// What `MAILBOX_REVISION` reads in the model (the sheet has no AM62x value).
pub const SIM_REVISION: u32 = 0;

/// Accesses the model saw that a correct driver does not make (and other
/// bookkeeping tests can assert on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SimCounters {
    /// Reads of offsets that are no register.
    pub unknown_reads: u32,
    /// Writes to offsets that are no register.
    pub unknown_writes: u32,
    /// Writes to read-only registers (`REVISION`, `FIFOSTATUS`, `MSGSTATUS`).
    pub ignored_writes: u32,
    /// Words written to a full queue and lost, as on silicon.
    pub discarded_writes: u32,
    /// `MESSAGE` reads on an empty queue (they return 0).
    pub empty_reads: u32,
    /// `IRQ_EOI` writes with the bit of each user set.
    pub eoi_writes: [u32; 4],
    /// Cluster soft resets.
    pub soft_resets: u32,
}

/// One queue: a ring of [`FIFO_DEPTH`] words.
#[derive(Debug, Clone, Copy, Default)]
struct Fifo {
    words: [u32; FIFO_DEPTH],
    head: usize,
    len: usize,
}

impl Fifo {
    fn push(&mut self, word: u32) -> bool {
        if self.len == FIFO_DEPTH {
            return false;
        }
        self.words[(self.head + self.len) % FIFO_DEPTH] = word;
        self.len += 1;
        true
    }

    fn pop(&mut self) -> Option<u32> {
        if self.len == 0 {
            return None;
        }
        let word = self.words[self.head];
        self.head = (self.head + 1) % FIFO_DEPTH;
        self.len -= 1;
        Some(word)
    }
}

/// A decoded register offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reg {
    Revision,
    Sysconfig,
    Message(u8),
    FifoStatus(u8),
    MsgStatus(u8),
    IrqStatusRaw(u8),
    IrqStatusClr(u8),
    IrqEnableSet(u8),
    IrqEnableClr(u8),
    IrqEoi,
}

const Q: usize = QUEUES as usize;
const U: usize = USERS as usize;

/// Decodes `offset` in one `match` (sheet §2 register table).
fn decode(offset: usize) -> Option<Reg> {
    if offset % 4 != 0 {
        return None;
    }
    // In range, the casts below cannot truncate: indices are < 16.
    let idx = |base: usize, stride: usize| ((offset - base) / stride) as u8;
    Some(match offset {
        REVISION_OFFSET => Reg::Revision,
        SYSCONFIG_OFFSET => Reg::Sysconfig,
        0x040..=0x07C => Reg::Message(idx(MESSAGE0_OFFSET, 4)),
        0x080..=0x0BC => Reg::FifoStatus(idx(0x080, 4)),
        0x0C0..=0x0FC => Reg::MsgStatus(idx(0x0C0, 4)),
        0x100..=0x13C => {
            let u = idx(0x100, USER_STRIDE);
            match (offset - 0x100) % USER_STRIDE {
                0x0 => Reg::IrqStatusRaw(u),
                0x4 => Reg::IrqStatusClr(u),
                0x8 => Reg::IrqEnableSet(u),
                _ => Reg::IrqEnableClr(u),
            }
        }
        IRQ_EOI_OFFSET => Reg::IrqEoi,
        _ => return None,
    })
}

/// The cluster state: the hardware rules of sheet §1, §2, §2.1.
#[derive(Debug, Clone)]
struct Model {
    fifos: [Fifo; Q],
    /// Latched event status per user (`IRQSTATUS_RAW_u`).
    status: [u32; U],
    /// Interrupt enables per user (`IRQENABLE_SET_u` reads).
    enable: [u32; U],
    sysconfig: u32,
    counters: SimCounters,
    faults: Injector,
}

impl Model {
    fn reset() -> Self {
        let mut m = Self {
            fifos: [Fifo::default(); Q],
            status: [0; U],
            enable: [0; U],
            sysconfig: 0,
            counters: SimCounters::default(),
            faults: Injector::new(),
        };
        m.settle();
        m
    }

    /// The event conditions of every queue (sheet §2.1): NEWMSG while a word
    /// is queued, NOTFULL while there is room.
    fn conditions(&self) -> u32 {
        (0..QUEUES).fold(0, |acc, q| {
            let f = &self.fifos[q as usize];
            acc | if f.len > 0 { newmsg(q) } else { 0 }
                | if f.len < FIFO_DEPTH { notfull(q) } else { 0 }
        })
    }

    /// Latches every condition that holds into every user's status.
    // UNCERTAIN(am62x-mailbox.md §2.1): latched bits are sticky once their
    // condition goes away (cleared only by write-1-to-clear). Because the
    // NOTFULL condition holds for an empty queue, this also makes RAW read
    // 0xAAAA_AAAA after reset (UNCERTAIN §2 IRQSTATUS_RAW reset value).
    fn settle(&mut self) {
        let c = self.conditions();
        for s in &mut self.status {
            *s |= c;
        }
    }

    fn line(&self, u: usize) -> bool {
        // Muted NEWMSG events (fault injection: a dropped interrupt) are
        // latched but do not reach the line.
        let muted = (0..QUEUES).fold(0, |acc, q| {
            acc | if self.faults.muted(0) & (1 << q) != 0 {
                newmsg(q)
            } else {
                0
            }
        });
        self.status[u] & self.enable[u] & !muted != 0
    }

    fn read(&mut self, offset: usize) -> u32 {
        self.tick_faults();
        let value = match decode(offset) {
            None => {
                self.counters.unknown_reads += 1;
                0
            }
            // UNCERTAIN(am62x-mailbox.md §2 REVISION): no AM62x value known.
            Some(Reg::Revision) => SIM_REVISION,
            Some(Reg::Sysconfig) => self.sysconfig,
            Some(Reg::Message(q)) => match self.fifos[q as usize].pop() {
                Some(w) => w,
                None => {
                    self.counters.empty_reads += 1;
                    0
                }
            },
            Some(Reg::FifoStatus(q)) => u32::from(self.fifos[q as usize].len == FIFO_DEPTH),
            Some(Reg::MsgStatus(q)) => self.fifos[q as usize].len as u32,
            Some(Reg::IrqStatusRaw(u)) => self.status[u as usize],
            Some(Reg::IrqStatusClr(u)) => self.status[u as usize] & self.enable[u as usize],
            Some(Reg::IrqEnableSet(u) | Reg::IrqEnableClr(u)) => self.enable[u as usize],
            Some(Reg::IrqEoi) => 0,
        };
        self.settle();
        value
    }

    fn write(&mut self, offset: usize, value: u32) {
        self.tick_faults();
        match decode(offset) {
            None => self.counters.unknown_writes += 1,
            Some(Reg::Revision | Reg::FifoStatus(_) | Reg::MsgStatus(_)) => {
                self.counters.ignored_writes += 1;
            }
            Some(Reg::Sysconfig) => {
                // UNCERTAIN(am62x-mailbox.md §2 SYSCONFIG): the reset
                // completes at once and SOFTRESET reads back 0.
                if value & 1 != 0 {
                    let counters = self.counters;
                    let mut faults = core::mem::take(&mut self.faults);
                    faults.clear();
                    *self = Self::reset();
                    self.counters = counters;
                    self.counters.soft_resets += 1;
                    self.faults = faults;
                }
                // Other bits (SIDLEMODE on older IP versions) are stored;
                // SOFTRESET reads 0 once done (at once, see module docs).
                self.sysconfig = value & !1;
            }
            Some(Reg::Message(q)) => {
                self.send_doorbell(Target::new(0, q), value);
            }
            Some(Reg::IrqStatusRaw(u)) => self.status[u as usize] |= value,
            Some(Reg::IrqStatusClr(u)) => self.status[u as usize] &= !value,
            Some(Reg::IrqEnableSet(u)) => self.enable[u as usize] |= value,
            Some(Reg::IrqEnableClr(u)) => self.enable[u as usize] &= !value,
            Some(Reg::IrqEoi) => {
                // UNCERTAIN(am62x-mailbox.md §2 IRQ_EOI): recorded, no
                // effect on the (level) status or lines.
                for (u, n) in self.counters.eoi_writes.iter_mut().enumerate() {
                    if value & (1 << u) != 0 {
                        *n += 1;
                    }
                }
            }
        }
        self.settle();
    }
}

/// The queues as the fault engine sees them: a [`Target`] is queue `slot`
/// of unit 0.
struct Receive<'a> {
    fifos: &'a mut [Fifo; Q],
    status: &'a mut [u32; U],
    discarded: &'a mut u32,
}

impl Receivers for Receive<'_> {
    fn room(&self, to: Target) -> Room {
        match self.fifos.get(usize::from(to.slot)) {
            Some(f) if to.unit == 0 => Room::fifo(f.len as u32, FIFO_DEPTH as u32),
            _ => Room::NONE,
        }
    }

    /// The hardware side of a `MESSAGE_q` write.
    fn land(&mut self, to: Target, word: u32) {
        // Sheet §1: a write to a full queue is discarded.
        // UNCERTAIN(am62x-mailbox.md §1): depth 4 (TRM), not 8 (MCU+).
        if let Some(f) = self.fifos.get_mut(usize::from(to.slot)) {
            if !f.push(word) {
                *self.discarded += 1;
            }
        }
    }

    /// `NEWMSG` latched in every user's status over an empty queue.
    fn phantom(&mut self, to: Target) {
        for s in self.status.iter_mut() {
            *s |= newmsg(to.slot);
        }
    }
}

impl FaultModel for Model {
    type Rx<'a> = Receive<'a>;

    /// The fault engine and the queues it drives, borrowed apart.
    fn split(&mut self) -> (&mut Injector, Receive<'_>) {
        let rx = Receive {
            fifos: &mut self.fifos,
            status: &mut self.status,
            discarded: &mut self.counters.discarded_writes,
        };
        (&mut self.faults, rx)
    }
}

ipc_traits::doorbell_faults! {
    /// Seeded doorbell faults on mailbox queues (fault injection; all off by
    /// default), for [`Cluster::set_faults`]. Only queues in `queues` are
    /// affected.
    pub struct Faults {
        /// The queues faults apply to (bit q = queue q).
        pub queues: u16,
    }
}

/// A simulated mailbox cluster: every queue and every user's interrupt state.
///
/// `Sync`: drivers on several threads share it through [`SimRegs`] views.
#[derive(Debug)]
pub struct Cluster {
    model: Mutex<Model>,
}

impl Default for Cluster {
    fn default() -> Self {
        Self::new()
    }
}

impl Cluster {
    /// A cluster at reset: queues empty, nothing enabled.
    pub fn new() -> Self {
        Self {
            model: Mutex::new(Model::reset()),
        }
    }

    /// A cluster that lives for the rest of the program (its few hundred
    /// bytes are leaked), so that views and lines are `'static` and handles
    /// can move into spawned threads.
    pub fn new_static() -> &'static Self {
        Box::leak(Box::new(Self::new()))
    }

    fn lock(&self) -> MutexGuard<'_, Model> {
        // A panicking test thread must not hide the model from the others.
        self.model.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A register view of the cluster. The same registers serve every user;
    /// the driver picks its user's offsets (sheet §2).
    pub fn regs(&self) -> SimRegs<'_> {
        SimRegs { cluster: self }
    }

    /// Whether `user`'s interrupt line is asserted: some enabled event is
    /// latched in its status.
    pub fn line(&self, user: User) -> bool {
        self.lock().line(user.index() as usize)
    }

    /// The words queue `q` holds, oldest first (no pop; `q` modulo 16).
    pub fn queue(&self, q: u8) -> Vec<u32> {
        let m = self.lock();
        let f = m.fifos[(q % QUEUES) as usize];
        (0..f.len)
            .map(|i| f.words[(f.head + i) % FIFO_DEPTH])
            .collect()
    }

    /// `user`'s latched status (what `IRQSTATUS_RAW_u` reads).
    pub fn status(&self, user: User) -> u32 {
        self.lock().status[user.index() as usize]
    }

    /// `user`'s interrupt enables.
    pub fn enabled(&self, user: User) -> u32 {
        self.lock().enable[user.index() as usize]
    }

    /// Arms (or, with `Faults::default()`, disarms) seeded doorbell faults.
    /// The generator restarts from `faults.seed`; counters and held words
    /// are kept.
    pub fn set_faults(&self, faults: Faults) {
        let targets = Targets::new(0b1, u64::from(faults.queues));
        self.lock().faults.arm(faults.rates(), targets);
    }

    /// What the armed faults did so far.
    pub fn fault_counters(&self) -> FaultCounters {
        self.lock().faults.counters()
    }

    /// Lands every held word now (delayed ones and duplicate copies), in
    /// order per queue, as long as the queue keeps a free slot; returns how
    /// many landed. The rest land at later accesses.
    pub fn deliver_delayed(&self) -> u32 {
        let mut m = self.lock();
        let landed = m.deliver_held();
        m.settle();
        landed
    }

    /// How many words are held (delayed or duplicate copies not yet landed).
    pub fn held_words(&self) -> usize {
        self.lock().faults.held()
    }

    /// The model's counters.
    pub fn counters(&self) -> SimCounters {
        self.lock().counters
    }

    /// Bad input: latches `bits` in `user`'s status as if the events had
    /// happened (what a write to `IRQSTATUS_RAW_u` does, sheet §2).
    pub fn inject_status(&self, user: User, bits: u32) {
        let mut m = self.lock();
        m.status[user.index() as usize] |= bits;
    }

    /// Bad input: another agent enables `bits` for `user` behind the
    /// driver's back (for example a stale enable from an earlier run).
    pub fn force_enable(&self, user: User, bits: u32) {
        let mut m = self.lock();
        m.enable[user.index() as usize] |= bits;
    }

    /// Another agent writes `word` into queue `q`, as any user can (sheet
    /// §1). Returns `false` if the queue was full and the word was lost.
    pub fn push(&self, q: u8, word: u32) -> bool {
        let mut m = self.lock();
        let ok = m.fifos[(q % QUEUES) as usize].push(word);
        if !ok {
            m.counters.discarded_writes += 1;
        }
        m.settle();
        ok
    }
}

/// A register view of a [`Cluster`]: `Copy`, `Send` and `Sync`; implements
/// [`Regs32`] by decoding the offset in one `match` and applying the model's
/// rules under the cluster's mutex.
#[derive(Debug, Clone, Copy)]
pub struct SimRegs<'c> {
    cluster: &'c Cluster,
}

impl<'c> SimRegs<'c> {
    /// The cluster behind this view.
    pub fn cluster(self) -> &'c Cluster {
        self.cluster
    }
}

// SAFETY: (1) every offset decodes to the same model register every time
// (`decode` is a pure function), and no offset reaches memory outside the
// model; (2) each access takes the mutex, so accesses happen one at a time in
// program order, never merged, split or elided; (3) the mutex lock/unlock
// pairs are acquire/release operations, so normal-memory writes before an
// `io_wmb` (a SeqCst fence on the host) and a `write` are visible to whoever
// observes the write
// through the model; (4) unknown offsets read 0 and writes to them are
// dropped (only counted).
unsafe impl Regs32 for SimRegs<'_> {
    fn read(self, offset: usize) -> u32 {
        let value = self.cluster.lock().read(offset);
        // A poll that finds a queue full or empty gives the host thread up,
        // so that on a loaded host the peer's thread gets to run. It changes
        // no register semantics (the model is the same before and after).
        let idle = match decode(offset) {
            Some(Reg::FifoStatus(_)) => value != 0,
            Some(Reg::MsgStatus(_)) => value == 0,
            _ => false,
        };
        if idle {
            std::thread::yield_now();
        }
        value
    }

    fn write(self, offset: usize, value: u32) {
        self.cluster.lock().write(offset, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registers::*;
    use ipc_traits::sim_faults::Rates;

    fn user(u: u8) -> User {
        User::from_index(u).unwrap()
    }

    #[test]
    fn decode_covers_every_register_once() {
        let mut seen = std::collections::HashSet::new();
        for off in (0..CLUSTER_LEN).step_by(4) {
            if let Some(r) = decode(off) {
                assert!(seen.insert(format!("{r:?}")), "{off:#x}");
            }
        }
        // REVISION, SYSCONFIG, 3 x 16 queue registers, 4 x 4 user registers, EOI.
        assert_eq!(seen.len(), 2 + 3 * 16 + 4 * 4 + 1);
        assert_eq!(decode(0x041), None);
        assert_eq!(decode(0x144), None);
        assert_eq!(decode(irqenable_clr_offset(3)), Some(Reg::IrqEnableClr(3)));
    }

    #[test]
    fn fifo_pops_in_order_and_empty_reads_zero() {
        let c = Cluster::new();
        let r = c.regs();
        r.write(message_offset(5), 10);
        r.write(message_offset(5), 11);
        assert_eq!(r.read(msgstatus_offset(5)), 2);
        assert_eq!(r.read(message_offset(5)), 10);
        assert_eq!(r.read(message_offset(5)), 11);
        assert_eq!(r.read(message_offset(5)), 0);
        assert_eq!(r.read(msgstatus_offset(5)), 0);
        assert_eq!(c.counters().empty_reads, 1);
    }

    #[test]
    fn uncertain_fifo_depth_is_four_not_eight() {
        let c = Cluster::new();
        let r = c.regs();
        for i in 0..8 {
            r.write(message_offset(2), 100 + i);
            assert_eq!(
                r.read(fifostatus_offset(2)),
                u32::from(i >= 3),
                "after {} words",
                i + 1
            );
        }
        assert_eq!(r.read(msgstatus_offset(2)), 4);
        // Silicon discards writes to a full queue (sheet §1): words 4..8 lost.
        assert_eq!(c.counters().discarded_writes, 4);
        assert_eq!(c.queue(2), [100, 101, 102, 103]);
    }

    #[test]
    fn uncertain_raw_notfull_reads_one_after_reset() {
        let c = Cluster::new();
        let r = c.regs();
        for u in 0..USERS {
            assert_eq!(r.read(irqstatus_raw_offset(u)), NOTFULL_MASK);
            // Masked status is empty: nothing is enabled at reset.
            assert_eq!(r.read(irqstatus_clr_offset(u)), 0);
            assert_eq!(r.read(irqenable_set_offset(u)), IRQENABLE_RESET);
            assert!(!c.line(user(u)));
        }
        // W1C cannot clear NOTFULL while the queue has room: it re-asserts.
        r.write(irqstatus_clr_offset(0), NOTFULL_MASK);
        assert_eq!(r.read(irqstatus_raw_offset(0)), NOTFULL_MASK);
    }

    #[test]
    fn uncertain_status_sticky_until_write_one_to_clear() {
        let c = Cluster::new();
        let r = c.regs();
        r.write(message_offset(1), 7);
        assert_ne!(r.read(irqstatus_raw_offset(2)) & newmsg(1), 0);
        // Drain: the condition is gone, the latched bit stays...
        assert_eq!(r.read(message_offset(1)), 7);
        assert_ne!(r.read(irqstatus_raw_offset(2)) & newmsg(1), 0, "sticky");
        // ...until this user clears it; other users keep theirs.
        r.write(irqstatus_clr_offset(2), newmsg(1));
        assert_eq!(r.read(irqstatus_raw_offset(2)) & newmsg(1), 0);
        assert_ne!(r.read(irqstatus_raw_offset(0)) & newmsg(1), 0);
        // While a word is queued, W1C does not stick (level-like, §2.1).
        r.write(message_offset(1), 8);
        r.write(irqstatus_clr_offset(2), newmsg(1));
        assert_ne!(r.read(irqstatus_raw_offset(2)) & newmsg(1), 0);
    }

    #[test]
    fn notfull_clears_only_when_full_and_returns_on_pop() {
        let c = Cluster::new();
        let r = c.regs();
        for i in 0..4 {
            r.write(message_offset(3), i);
        }
        r.write(irqstatus_clr_offset(1), notfull(3));
        assert_eq!(r.read(irqstatus_raw_offset(1)) & notfull(3), 0);
        r.write(irqenable_set_offset(1), notfull(3));
        assert!(!c.line(User::U1));
        let _ = r.read(message_offset(3));
        assert!(c.line(User::U1), "NOTFULL re-asserts once there is room");
        assert_eq!(r.read(irqstatus_clr_offset(1)), notfull(3));
    }

    #[test]
    fn line_only_when_enabled_and_per_user() {
        let c = Cluster::new();
        let r = c.regs();
        r.write(message_offset(0), 1);
        assert!(!c.line(User::U0));
        r.write(irqenable_set_offset(0), newmsg(0));
        assert!(c.line(User::U0));
        assert!(!c.line(User::U2), "user 2 enabled nothing");
        assert_eq!(r.read(irqenable_clr_offset(0)), newmsg(0));
        r.write(irqenable_clr_offset(0), newmsg(0));
        assert!(!c.line(User::U0));
        assert_eq!(r.read(irqenable_set_offset(0)), 0);
    }

    #[test]
    fn raw_write_sets_events_for_debug() {
        let c = Cluster::new();
        let r = c.regs();
        r.write(irqstatus_raw_offset(3), newmsg(9));
        assert_eq!(r.read(irqstatus_raw_offset(3)) & newmsg(9), newmsg(9));
        r.write(irqenable_set_offset(3), newmsg(9));
        assert_eq!(r.read(irqstatus_clr_offset(3)), newmsg(9));
        r.write(irqstatus_clr_offset(3), newmsg(9));
        assert_eq!(
            r.read(irqstatus_clr_offset(3)),
            0,
            "no word behind it: it stays clear"
        );
    }

    #[test]
    fn uncertain_softreset_completes_at_once() {
        let c = Cluster::new();
        let r = c.regs();
        r.write(message_offset(4), 1);
        r.write(irqenable_set_offset(2), u32::MAX);
        r.write(SYSCONFIG_OFFSET, 1);
        assert_eq!(r.read(SYSCONFIG_OFFSET) & 1, 0);
        assert_eq!(r.read(msgstatus_offset(4)), 0, "queued words are dropped");
        assert_eq!(r.read(irqenable_set_offset(2)), 0);
        assert_eq!(c.counters().soft_resets, 1);
    }

    #[test]
    fn uncertain_eoi_has_no_effect_on_level_lines() {
        let c = Cluster::new();
        let r = c.regs();
        r.write(message_offset(0), 1);
        r.write(irqenable_set_offset(0), newmsg(0));
        r.write(IRQ_EOI_OFFSET, 0b0101);
        assert!(c.line(User::U0));
        assert_eq!(r.read(irqstatus_clr_offset(0)), newmsg(0));
        assert_eq!(c.counters().eoi_writes, [1, 0, 1, 0]);
    }

    #[test]
    fn unknown_and_read_only_accesses_are_counted() {
        let c = Cluster::new();
        let r = c.regs();
        assert_eq!(r.read(0x20), 0);
        assert_eq!(r.read(0x1FC), 0);
        assert_eq!(r.read(0x42), 0);
        r.write(0x30, 5);
        r.write(msgstatus_offset(0), 3);
        r.write(fifostatus_offset(0), 1);
        r.write(REVISION_OFFSET, 1);
        let k = c.counters();
        assert_eq!(
            (k.unknown_reads, k.unknown_writes, k.ignored_writes),
            (3, 1, 3)
        );
        assert_eq!(r.read(msgstatus_offset(0)), 0);
        assert_eq!(r.read(REVISION_OFFSET), SIM_REVISION);
    }

    fn faulty(f: Faults) -> SimRegs<'static> {
        let c = Cluster::new_static();
        // Linux (user 0) listens for NEWMSG on queue 3.
        c.regs().write(irqenable_set_offset(0), newmsg(3));
        c.set_faults(Faults {
            queues: 1 << 3,
            ..f
        });
        c.regs()
    }

    fn count(r: SimRegs<'_>, q: u8) -> u32 {
        r.read(msgstatus_offset(q))
    }

    #[test]
    fn faults_are_off_by_default_and_only_on_chosen_queues() {
        let c = Cluster::new();
        let r = c.regs();
        for i in 0..50 {
            r.write(message_offset(3), i);
            assert_eq!(r.read(message_offset(3)), i);
        }
        assert_eq!(c.fault_counters(), FaultCounters::default());
        let r = faulty(Faults {
            drop_one_in: 1,
            ..Faults::default()
        });
        r.write(message_offset(2), 9);
        assert_eq!(count(r, 2), 1, "queue 2 is not faulted");
        r.write(message_offset(3), 9);
        assert_eq!(count(r, 3), 0, "queue 3 drops everything");
        assert_eq!(r.cluster().fault_counters().dropped, 1);
    }

    #[test]
    fn a_muted_word_is_queued_but_raises_no_line() {
        let r = faulty(Faults {
            mute_one_in: 1,
            ..Faults::default()
        });
        let c = r.cluster();
        r.write(message_offset(3), 1);
        assert_eq!(count(r, 3), 1);
        assert_ne!(c.status(User::A53) & newmsg(3), 0, "latched");
        assert!(!c.line(User::A53), "but the interrupt was dropped");
        c.set_faults(Faults::default());
        r.write(message_offset(3), 2);
        assert!(c.line(User::A53), "the next word raises the line");
        assert_eq!(c.fault_counters().muted, 1);
    }

    #[test]
    fn duplicates_and_delays_land_later_and_never_take_the_last_slot() {
        let r = faulty(Faults {
            duplicate_one_in: 1,
            ..Faults::default()
        });
        let c = r.cluster();
        r.write(message_offset(3), 5);
        // The copy lands at the next access (room for it and a spare slot).
        assert_eq!(count(r, 3), 2);
        assert_eq!(r.read(message_offset(3)), 5);
        assert_eq!(r.read(message_offset(3)), 5);
        // Fill to depth - 1 with faults off: a held word must then wait.
        c.set_faults(Faults::default());
        for w in 0..FIFO_DEPTH as u32 - 1 {
            r.write(message_offset(3), w);
        }
        c.set_faults(Faults {
            queues: 1 << 3,
            delay_one_in: 1,
            delay_accesses: 2,
            ..Faults::default()
        });
        r.write(message_offset(3), 99);
        for _ in 0..5 {
            assert_eq!(count(r, 3), FIFO_DEPTH as u32 - 1, "no spare slot");
        }
        assert_eq!(c.held_words(), 1);
        assert_eq!(r.read(message_offset(3)), 0);
        assert_eq!(c.deliver_delayed(), 1);
        assert_eq!(count(r, 3), FIFO_DEPTH as u32 - 1);
        assert_eq!(c.counters().discarded_writes, 0);
        let f = c.fault_counters();
        assert_eq!((f.duplicated, f.delayed, f.late_deliveries), (1, 1, 2));
    }

    #[test]
    fn a_delayed_word_lands_after_n_accesses() {
        let r = faulty(Faults {
            delay_one_in: 1,
            delay_accesses: 4,
            ..Faults::default()
        });
        r.write(message_offset(3), 7); // access 1, due at access 5
        for _ in 0..3 {
            assert_eq!(count(r, 3), 0); // accesses 2..=4
        }
        assert_eq!(count(r, 3), 1);
        assert_eq!(r.read(message_offset(3)), 7);
    }

    #[test]
    fn spurious_events_latch_newmsg_or_push_garbage_and_are_counted() {
        let r = faulty(Faults {
            spurious_one_in: 2,
            seed: 5,
            ..Faults::default()
        });
        let c = r.cluster();
        let (mut lines, mut words) = (0, 0);
        for _ in 0..400 {
            let _ = r.read(irqstatus_raw_offset(0)); // time passes
            if c.line(User::A53) {
                lines += 1;
                while count(r, 3) > 0 {
                    let _ = r.read(message_offset(3));
                    words += 1;
                }
                r.write(irqstatus_clr_offset(0), newmsg(3));
            }
        }
        let f = c.fault_counters();
        assert!(f.spurious > 10 && f.garbage > 10, "{f:?}");
        assert_eq!(words, f.garbage);
        assert!(lines >= f.spurious.min(1));
        assert_eq!(c.counters().discarded_writes, 0);
    }

    #[test]
    fn the_same_seed_gives_the_same_faults() {
        let run = |seed| {
            let r = faulty(Faults::default().with_rates(Rates::every_kind(seed)));
            let mut got = Vec::new();
            for i in 0..200u32 {
                if r.read(fifostatus_offset(3)) == 0 {
                    r.write(message_offset(3), i);
                }
                if count(r, 3) > 0 {
                    got.push(r.read(message_offset(3)));
                }
            }
            (got, r.cluster().fault_counters())
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
    }

    #[test]
    fn views_are_send_sync_copy() {
        fn check<T: Send + Sync + Copy>() {}
        check::<SimRegs<'static>>();
    }
}
