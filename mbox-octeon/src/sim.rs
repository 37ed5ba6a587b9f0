//! Behavioural model of the CIU mailboxes of several OCTEON cores.
//!
//! [`Ciu`] is the executable form of `shared/docs/hw/octeon-ciu-mbox.md`
//! (called "the sheet"): one CSR space shared by all cores, with
//!
//! - one 32-bit mailbox per core: `CIU_MBOX_SET(c)` sets bits (write 1 to
//!   set), `CIU_MBOX_CLR(c)` clears them (write 1 to clear), either address
//!   reads the value, bits 63:32 read 0 and are ignored on write (§3);
//! - per INT line `x`: `SUM0` with the MBOX0/MBOX1 summary bits of core
//!   `x / 2` (§3.1), `EN0` with its W1S/W1C aliases and `EN1` (§2);
//! - level-sensitive lines: IP2 of core `c` is high while
//!   `SUM0(2c) & EN0(2c) != 0`, IP3 likewise on line `2c + 1`;
//! - the MIPS `WAIT` idle state: a waiting core wakes when one of its lines
//!   rises (cache-and-wake.md §7.4). There is no other power handshake.
//!
//! Any core's view can write any core's registers: core 0's view writing
//! `CIU_MBOX_SET(1)` rings core 1 (§3: "this is how an IPI is sent").
//!
//! Views are `Copy + Send + Sync + 'static` so handles can move into threads:
//! every [`Ciu::new`] leaks one small model (a few hundred bytes; test
//! support only), kept reachable from a static registry.
//! Unknown or misaligned offsets read 0, drop writes, and are counted
//! ([`Ciu::unknown_accesses`]).
//!
//! [`Ciu::set_faults`] arms seeded doorbell faults on chosen cores and
//! mailbox bits ([`Faults`], counted in [`FaultCounters`]; off by default).
//! The faults, their invariants and the engine are
//! [`ipc_traits::sim_faults`]; here each bit of a `CIU_MBOX_SET(c)` write is
//! a doorbell of its own that sets the bit in core `c`'s mailbox (a one-word
//! place: a held bit lands only once the receiver has cleared it), a muted
//! bit is in the mailbox but does not raise the line until it is cleared or
//! set again, and a spurious event sets a bit nobody rang (bits carry no
//! word, so there is no garbage). [`Ciu::deliver_delayed`] sets held bits at
//! once.
//!
//! Where the sheet is silent the model picks one behaviour, marked
//! `UNCERTAIN(...)` below and pinned by a test of the same name in
//! `tests/model.rs`.
//!
//! # Examples
//!
//! ```
//! use ipc_traits::regs::Regs64;
//! use mbox_octeon::registers::{mbox_clr, mbox_set};
//! use mbox_octeon::sim::Ciu;
//!
//! let ciu = Ciu::new(2);
//! ciu.core(0).write(mbox_set(1), 1 << 5); // core 0 rings bit 5 of core 1
//! assert_eq!(ciu.mailbox(1), 1 << 5);
//! assert_eq!(ciu.core(1).read(mbox_clr(1)), 1 << 5);
//! ciu.core(1).write(mbox_clr(1), 1 << 5);
//! assert_eq!(ciu.mailbox(1), 0);
//! ```

extern crate std;

use std::boxed::Box;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::vec::Vec;

pub use ipc_traits::sim_faults::FaultCounters;

use ipc_traits::regs::Regs64;
use ipc_traits::sim_faults::{FaultModel, Injector, Receivers, Room, Target, Targets};

use crate::registers::{
    self, CIU_INT_EN0, CIU_INT_EN0_W1C, CIU_INT_EN0_W1S, CIU_INT_EN1, CIU_INT_EN_STRIDE,
    CIU_INT_SUM0, CIU_INT_SUM0_STRIDE, CIU_MBOX_CLR, CIU_MBOX_SET, CIU_MBOX_STRIDE,
};
use crate::{CoreId, Mbox};

/// Every model made by [`Ciu::new`] (see the module docs on leaking).
static MODELS: Mutex<Vec<&'static Mutex<Model>>> = Mutex::new(Vec::new());

/// The simulated CIU of one chip (a `Copy` handle to a shared model).
#[derive(Debug, Clone, Copy)]
pub struct Ciu {
    model: &'static Mutex<Model>,
}

/// A read or a write as recorded by [`Ciu::record`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    /// The core whose view made the access.
    pub by: u8,
    /// Read or write.
    pub op: Op,
    /// The byte offset from the CIU base.
    pub offset: usize,
    /// The value read or written.
    pub value: u64,
}

/// The direction of an [`Access`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// A CSR load.
    Read,
    /// A CSR store.
    Write,
}

/// One core's view of the CIU CSRs (implements [`Regs64`]).
///
/// All views reach the same CSRs; the core index only labels the accesses
/// in the log.
#[derive(Debug, Clone, Copy)]
pub struct CoreRegs {
    model: &'static Mutex<Model>,
    by: u8,
}

/// A decoded CSR (sheet §2).
#[derive(Debug, Clone, Copy)]
enum Csr {
    Sum0(usize),
    En0(usize),
    En1(usize),
    En0W1c(usize),
    En0W1s(usize),
    MboxSet(usize),
    MboxClr(usize),
}

#[derive(Debug)]
struct Model {
    mbox: Vec<u32>,
    en0: Vec<u64>,
    en1: Vec<u64>,
    waiting: Vec<bool>,
    wakeups: Vec<u32>,
    unknown: u32,
    reserved_written: u32,
    ignored_writes: u32,
    log: Option<Vec<Access>>,
    faults: Injector,
}

ipc_traits::doorbell_faults! {
    /// Seeded doorbell faults on CIU mailboxes (fault injection; all off by
    /// default), for [`Ciu::set_faults`]. Only `bits` of the mailboxes of
    /// `cores` are affected.
    pub struct Faults {
        /// The cores whose mailboxes are faulted (bit c = core c).
        pub cores: u16,
        /// The mailbox bits faults apply to.
        pub bits: u32,
    }
}

/// The mailboxes as the fault engine sees them: a [`Target`] is bit `slot`
/// of core `unit`'s mailbox.
struct Receive<'a> {
    mbox: &'a mut [u32],
}

impl Receive<'_> {
    fn at(&mut self, to: Target) -> Option<(&mut u32, u32)> {
        let bit = 1u32.checked_shl(u32::from(to.slot))?;
        Some((self.mbox.get_mut(usize::from(to.unit))?, bit))
    }
}

impl Receivers for Receive<'_> {
    const CARRIES_WORDS: bool = false;

    fn room(&self, to: Target) -> Room {
        let bit = 1u32.checked_shl(u32::from(to.slot));
        match (self.mbox.get(usize::from(to.unit)), bit) {
            (Some(m), Some(bit)) => Room::register(m & bit == 0),
            _ => Room::NONE,
        }
    }

    /// The hardware side of setting the bit.
    fn land(&mut self, to: Target, _word: u32) {
        if let Some((m, bit)) = self.at(to) {
            *m |= bit;
        }
    }

    /// A bit nobody rang.
    fn phantom(&mut self, to: Target) {
        self.land(to, 0);
    }
}

impl FaultModel for Model {
    type Rx<'a> = Receive<'a>;

    /// The fault engine and the mailboxes it drives, borrowed apart.
    fn split(&mut self) -> (&mut Injector, Receive<'_>) {
        let rx = Receive {
            mbox: &mut self.mbox,
        };
        (&mut self.faults, rx)
    }
}

/// Index of `offset` in an array at `base` with `stride`, if inside `count`.
fn index_in(offset: usize, base: usize, stride: usize, count: usize) -> Option<usize> {
    let rel = offset.checked_sub(base)?;
    (rel % stride == 0 && rel / stride < count).then_some(rel / stride)
}

impl Model {
    fn new(cores: usize) -> Self {
        let lines = 2 * cores;
        Self {
            // UNCERTAIN(octeon-ciu-mbox.md §3): no reset value in the sheet;
            // mailboxes start at MBOX_RESET (0).
            mbox: std::vec![registers::MBOX_RESET as u32; cores],
            // UNCERTAIN(octeon-ciu-mbox.md §3.1): enables start at
            // INT_EN0_RESET (0, every source disabled).
            en0: std::vec![registers::INT_EN0_RESET; lines],
            en1: std::vec![0; lines],
            waiting: std::vec![false; cores],
            wakeups: std::vec![0; cores],
            unknown: 0,
            reserved_written: 0,
            ignored_writes: 0,
            log: None,
            faults: Injector::new(),
        }
    }

    fn cores(&self) -> usize {
        self.mbox.len()
    }

    /// The single decode of an offset (sheet §2 table).
    fn decode(&self, offset: usize) -> Option<Csr> {
        let cores = self.cores();
        let lines = 2 * cores;
        if offset % 8 != 0 {
            return None;
        }
        match offset {
            o if o < CIU_INT_EN0 => {
                index_in(o, CIU_INT_SUM0, CIU_INT_SUM0_STRIDE, lines).map(Csr::Sum0)
            }
            o if o < CIU_MBOX_SET => index_in(o, CIU_INT_EN0, CIU_INT_EN_STRIDE, lines)
                .map(Csr::En0)
                .or_else(|| index_in(o, CIU_INT_EN1, CIU_INT_EN_STRIDE, lines).map(Csr::En1)),
            o if o < CIU_MBOX_CLR => {
                index_in(o, CIU_MBOX_SET, CIU_MBOX_STRIDE, cores).map(Csr::MboxSet)
            }
            o if o < CIU_INT_EN0_W1C => {
                index_in(o, CIU_MBOX_CLR, CIU_MBOX_STRIDE, cores).map(Csr::MboxClr)
            }
            o if o < CIU_INT_EN0_W1S => {
                index_in(o, CIU_INT_EN0_W1C, CIU_INT_EN_STRIDE, lines).map(Csr::En0W1c)
            }
            o => index_in(o, CIU_INT_EN0_W1S, CIU_INT_EN_STRIDE, lines).map(Csr::En0W1s),
        }
    }

    /// `CIU_INT(line)_SUM0`: the mailbox summary of core `line / 2`.
    ///
    /// UNCERTAIN(octeon-ciu-mbox.md §3.1): the sheet names line 2·core (IP2)
    /// only; the model shows the same summary in SUM0 of line 2·core + 1
    /// (IP3) too. Other SUM0 sources are not modelled (read 0).
    fn sum0(&self, line: usize) -> u64 {
        self.mbox
            .get(line / 2)
            .map_or(0, |&m| registers::summary_bits_of(m))
    }

    /// UNCERTAIN(octeon-ciu-mbox.md §3.1): level-sensitive, as the sheet
    /// infers: high while an enabled half has any bit set, low as soon as
    /// the last one is cleared or the half disabled.
    ///
    /// Bits muted by fault injection (dropped interrupts) are in the mailbox
    /// but do not reach the line.
    fn line(&self, line: usize) -> bool {
        let core = line / 2;
        let heard = self
            .mbox
            .get(core)
            .map_or(0, |&m| m & !(self.faults.muted(core as u8) as u32));
        registers::summary_bits_of(heard) & self.en0.get(line).copied().unwrap_or(0) != 0
    }

    fn core_interrupted(&self, core: usize) -> bool {
        self.line(2 * core) || self.line(2 * core + 1)
    }

    /// UNCERTAIN(cache-and-wake.md §7.4): WAIT ends when an IP line of the
    /// core is asserted, i.e. only for a mailbox half enabled in the CIU;
    /// the CP0 Status.IM masks are not modelled (taken as open).
    fn settle(&mut self) {
        for core in 0..self.cores() {
            if self.waiting[core] && self.core_interrupted(core) {
                self.waiting[core] = false;
                self.wakeups[core] = self.wakeups[core].saturating_add(1);
            }
        }
    }

    fn log(&mut self, by: u8, op: Op, offset: usize, value: u64) {
        if let Some(log) = &mut self.log {
            log.push(Access {
                by,
                op,
                offset,
                value,
            });
        }
    }

    fn read(&mut self, by: u8, offset: usize) -> u64 {
        self.tick();
        let value = match self.decode(offset) {
            // UNCERTAIN(octeon-ciu-mbox.md §3): both SET and CLR read the
            // current mailbox ([inferred] from Linux and the SDK reading
            // them); bits 63:32 read 0.
            Some(Csr::MboxSet(c) | Csr::MboxClr(c)) => u64::from(self.mbox[c]),
            Some(Csr::Sum0(x)) => self.sum0(x),
            Some(Csr::En0(x)) => self.en0[x],
            // UNCERTAIN(octeon-ciu-mbox.md §2): reading a W1S/W1C alias
            // returns EN0 (the sheet gives only their write behaviour).
            Some(Csr::En0W1c(x) | Csr::En0W1s(x)) => self.en0[x],
            Some(Csr::En1(x)) => self.en1[x],
            None => {
                self.unknown = self.unknown.saturating_add(1);
                0
            }
        };
        self.log(by, Op::Read, offset, value);
        value
    }

    fn write(&mut self, by: u8, offset: usize, value: u64) {
        self.tick();
        self.log(by, Op::Write, offset, value);
        // Sheet §3: bits 63:32 of SET/CLR are ignored.
        let bits = (value & 0xFFFF_FFFF) as u32;
        match self.decode(offset) {
            Some(Csr::MboxSet(c)) => {
                self.note_reserved(value);
                self.ring(c, bits);
            }
            Some(Csr::MboxClr(c)) => {
                self.note_reserved(value);
                self.mbox[c] &= !bits;
                self.faults.unmute(c as u8, u64::from(bits));
            }
            // UNCERTAIN(octeon-ciu-mbox.md §3.1): the mailbox summary bits of
            // SUM0 only reflect the mailbox; a write changes nothing.
            Some(Csr::Sum0(_)) => self.ignored_writes = self.ignored_writes.saturating_add(1),
            Some(Csr::En0(x)) => self.en0[x] = value,
            Some(Csr::En0W1s(x)) => self.en0[x] |= value,
            Some(Csr::En0W1c(x)) => self.en0[x] &= !value,
            Some(Csr::En1(x)) => self.en1[x] = value,
            None => self.unknown = self.unknown.saturating_add(1),
        }
        self.settle();
    }

    /// A `CIU_MBOX_SET(c)` write of `bits`: each bit is a doorbell of its
    /// own, through the armed faults.
    fn ring(&mut self, c: usize, bits: u32) {
        let (faults, mut rx) = self.split();
        for bit in (0..32u8).filter(|b| bits & (1 << b) != 0) {
            // At most 16 cores (clamped in `Ciu::new`).
            faults.send(&mut rx, Target::new(c as u8, bit), 0);
        }
    }

    /// One CSR access goes by: due held bits land (once clear), a spurious
    /// bit may appear, and a waiting core may wake.
    fn tick(&mut self) {
        self.tick_faults();
        self.settle();
    }

    fn note_reserved(&mut self, value: u64) {
        if value >> 32 != 0 {
            self.reserved_written = self.reserved_written.saturating_add(1);
        }
    }
}

impl Ciu {
    /// A chip with `cores` cores (clamped to 1..=16), every CSR at reset.
    #[must_use]
    pub fn new(cores: u8) -> Self {
        let cores = usize::from(cores.clamp(1, registers::MAX_CORES));
        let model: &'static Mutex<Model> = Box::leak(Box::new(Mutex::new(Model::new(cores))));
        // Keep every model reachable from a static: it lives for the rest of
        // the process on purpose, and leak checkers (Miri) see a global.
        MODELS
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(model);
        Self { model }
    }

    /// A CN7130: 4 cores.
    ///
    /// UNCERTAIN(octeon-ciu-mbox.md §1): "core count not re-checked".
    #[must_use]
    pub fn cn7130() -> Self {
        Self::new(registers::CN7130_CORES)
    }

    fn lock(&self) -> MutexGuard<'_, Model> {
        self.model.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The number of cores.
    #[must_use]
    pub fn cores(&self) -> u8 {
        // At most 16 (clamped in `new`).
        self.lock().cores() as u8
    }

    /// Core `index`'s view of the CSRs.
    #[must_use]
    pub fn core(&self, index: u8) -> CoreRegs {
        CoreRegs {
            model: self.model,
            by: index,
        }
    }

    /// The mailbox driver of core `index` over its view. The index is masked
    /// with `0x0F` as the CSR header does (sheet §2); a core the model does
    /// not have reaches only unknown offsets.
    #[must_use]
    pub fn mbox(&self, index: u8) -> Mbox<CoreRegs> {
        let index = index & 0x0F;
        let core = CoreId::new(index).unwrap_or(CoreId(0));
        Mbox::new(self.core(index), core)
    }

    /// The level of core `core`'s IP2 line (`CIU_INT(2·core)`).
    #[must_use]
    pub fn ip2_level(&self, core: u8) -> bool {
        self.lock().line(2 * usize::from(core))
    }

    /// The level of core `core`'s IP3 line (`CIU_INT(2·core + 1)`).
    #[must_use]
    pub fn ip3_level(&self, core: u8) -> bool {
        self.lock().line(2 * usize::from(core) + 1)
    }

    /// The mailbox of `core` (0 for a core the model does not have).
    #[must_use]
    pub fn mailbox(&self, core: u8) -> u32 {
        self.lock()
            .mbox
            .get(usize::from(core))
            .copied()
            .unwrap_or(0)
    }

    /// `CIU_INT(line)_EN0` (0 for a line the model does not have).
    #[must_use]
    pub fn en0(&self, line: u8) -> u64 {
        self.lock().en0.get(usize::from(line)).copied().unwrap_or(0)
    }

    /// Sets mailbox bits of `core` from outside the modelled drivers, as a
    /// Linux core's IPI or a confused peer would (bad-input injection).
    pub fn inject_mailbox_bits(&self, core: u8, bits: u32) {
        let mut m = self.lock();
        if let Some(mbox) = m.mbox.get_mut(usize::from(core)) {
            *mbox |= bits;
        }
        m.settle();
    }

    /// Core `core` executes `WAIT`: returns whether it now waits (`false`
    /// if one of its lines is already high, so WAIT returns at once).
    pub fn enter_wait(&self, core: u8) -> bool {
        let mut m = self.lock();
        let core = usize::from(core);
        if core >= m.cores() || m.core_interrupted(core) {
            return false;
        }
        m.waiting[core] = true;
        true
    }

    /// Whether core `core` is in `WAIT`.
    #[must_use]
    pub fn is_waiting(&self, core: u8) -> bool {
        self.lock()
            .waiting
            .get(usize::from(core))
            .copied()
            .unwrap_or(false)
    }

    /// How many times core `core` was woken from `WAIT`.
    #[must_use]
    pub fn wakeups(&self, core: u8) -> u32 {
        self.lock()
            .wakeups
            .get(usize::from(core))
            .copied()
            .unwrap_or(0)
    }

    /// Accesses to offsets that name no modelled CSR (misaligned, outside
    /// the arrays, or for cores the model does not have).
    #[must_use]
    pub fn unknown_accesses(&self) -> u32 {
        self.lock().unknown
    }

    /// Writes to `CIU_MBOX_SET/CLR` with reserved bits 63:32 set (ignored,
    /// sheet §3; a driver should never do it).
    #[must_use]
    pub fn reserved_bits_written(&self) -> u32 {
        self.lock().reserved_written
    }

    /// Writes that the model ignored (to `SUM0`).
    #[must_use]
    pub fn ignored_writes(&self) -> u32 {
        self.lock().ignored_writes
    }

    /// Arms (or, with `Faults::default()`, disarms) seeded doorbell faults.
    /// The generator restarts from `faults.seed`; counters and held bits are
    /// kept.
    pub fn set_faults(&self, faults: Faults) {
        let targets = Targets::new(u64::from(faults.cores), u64::from(faults.bits));
        self.lock().faults.arm(faults.rates(), targets);
    }

    /// What the armed faults did so far.
    #[must_use]
    pub fn fault_counters(&self) -> FaultCounters {
        self.lock().faults.counters()
    }

    /// Sets every held bit now (delayed ones and second rings), each once
    /// it is clear; returns how many landed. The rest land at later
    /// accesses.
    pub fn deliver_delayed(&self) -> u32 {
        let mut m = self.lock();
        let n = m.deliver_held();
        m.settle();
        n
    }

    /// How many doorbells are held (delayed or second rings not yet landed).
    #[must_use]
    pub fn held_doorbells(&self) -> usize {
        self.lock().faults.held()
    }

    /// Starts (`true`, with an empty log) or stops recording accesses.
    pub fn record(&self, on: bool) {
        self.lock().log = on.then(Vec::new);
    }

    /// Takes the accesses recorded so far (recording continues).
    #[must_use]
    pub fn take_log(&self) -> Vec<Access> {
        self.lock()
            .log
            .as_mut()
            .map(core::mem::take)
            .unwrap_or_default()
    }
}

impl CoreRegs {
    /// The core this view belongs to.
    #[must_use]
    pub fn index(&self) -> u8 {
        self.by
    }

    fn lock(&self) -> MutexGuard<'_, Model> {
        self.model.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

// SAFETY: the model never touches memory outside itself: (1) every offset is
// decoded by the one `Model::decode` to the same model register every time;
// (2) each access is one call under the model's mutex, executed in program
// order, never merged, split or elided; (3) the mutex orders the access
// after every write that precedes it in the calling thread (including those
// before an `io_wmb`, a SeqCst fence on the host), and the peer's later
// lock sees them; (4)
// unknown offsets read 0 and drop writes.
#[allow(unsafe_code)]
unsafe impl Regs64 for CoreRegs {
    fn read(self, offset: usize) -> u64 {
        self.lock().read(self.by, offset)
    }

    fn write(self, offset: usize, value: u64) {
        self.lock().write(self.by, offset, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registers::{int_en0, mbox_clr, mbox_set, summary_bit_of};
    use ipc_traits::sim_faults::Rates;

    /// A two-core chip with core 1 listening on bit 4; faults on core 1,
    /// bit 4.
    fn faulty(f: Faults) -> Ciu {
        let ciu = Ciu::new(2);
        ciu.core(1).write(int_en0(2), summary_bit_of(4));
        ciu.set_faults(Faults {
            cores: 1 << 1,
            bits: 1 << 4,
            ..f
        });
        ciu
    }

    fn take(ciu: Ciu) -> bool {
        let set = ciu.core(1).read(mbox_clr(1)) & (1 << 4) != 0;
        if set {
            ciu.core(1).write(mbox_clr(1), 1 << 4);
        }
        set
    }

    #[test]
    fn faults_are_off_by_default_and_only_on_chosen_bits() {
        let ciu = Ciu::new(2);
        for _ in 0..20 {
            ciu.core(0).write(mbox_set(1), 1 << 4);
            assert!(take(ciu));
        }
        assert_eq!(ciu.fault_counters(), FaultCounters::default());
        let ciu = faulty(Faults {
            drop_one_in: 1,
            ..Faults::default()
        });
        ciu.core(0).write(mbox_set(1), (1 << 4) | (1 << 5));
        assert_eq!(ciu.mailbox(1), 1 << 5, "bit 4 dropped, bit 5 not faulted");
        ciu.core(0).write(mbox_set(0), 1 << 4);
        assert_eq!(ciu.mailbox(0), 1 << 4, "core 0 is not faulted");
        assert_eq!(ciu.fault_counters().dropped, 1);
    }

    #[test]
    fn a_muted_bit_is_set_but_the_line_stays_low() {
        let ciu = faulty(Faults {
            mute_one_in: 1,
            ..Faults::default()
        });
        ciu.core(0).write(mbox_set(1), 1 << 4);
        assert_eq!(ciu.mailbox(1), 1 << 4);
        assert!(!ciu.ip2_level(1), "the interrupt was dropped");
        assert!(take(ciu));
        ciu.set_faults(Faults::default());
        ciu.core(0).write(mbox_set(1), 1 << 4);
        assert!(ciu.ip2_level(1));
        assert_eq!(ciu.fault_counters().muted, 1);
    }

    #[test]
    fn a_duplicate_rings_again_after_the_take_and_a_delay_after_n_accesses() {
        let ciu = faulty(Faults {
            duplicate_one_in: 1,
            ..Faults::default()
        });
        ciu.core(0).write(mbox_set(1), 1 << 4);
        assert!(take(ciu));
        assert!(take(ciu), "rung a second time");
        assert!(!take(ciu));
        ciu.set_faults(Faults {
            cores: 1 << 1,
            bits: 1 << 4,
            delay_one_in: 1,
            delay_accesses: 3,
            ..Faults::default()
        });
        ciu.core(0).write(mbox_set(1), 1 << 4); // access 1, due at 4
        assert_eq!(ciu.core(1).read(mbox_clr(1)), 0); // 2
        assert_eq!(ciu.core(1).read(mbox_clr(1)), 0); // 3
        assert_eq!(ciu.core(1).read(mbox_clr(1)), 1 << 4); // 4
        ciu.core(1).write(mbox_clr(1), 1 << 4);
        ciu.core(0).write(mbox_set(1), 1 << 4);
        assert_eq!(ciu.held_doorbells(), 1);
        assert_eq!(ciu.deliver_delayed(), 1);
        assert_eq!(ciu.mailbox(1), 1 << 4);
        assert!(ciu.ip2_level(1));
        let f = ciu.fault_counters();
        assert_eq!((f.duplicated, f.delayed, f.late_deliveries), (1, 2, 3));
    }

    #[test]
    fn spurious_bits_appear_only_where_chosen_and_are_counted() {
        let ciu = faulty(Faults {
            spurious_one_in: 3,
            seed: 4,
            ..Faults::default()
        });
        let seen = (0..300).filter(|_| take(ciu)).count();
        let f = ciu.fault_counters();
        assert!(f.spurious > 10, "{f:?}");
        assert!(seen as u32 <= f.spurious && seen > 10);
        assert_eq!(ciu.mailbox(0), 0);
    }

    #[test]
    fn the_same_seed_gives_the_same_faults() {
        let run = |seed| {
            let ciu = faulty(Faults::default().with_rates(Rates::every_kind(seed)));
            let got: Vec<bool> = (0..200)
                .map(|_| {
                    ciu.core(0).write(mbox_set(1), 1 << 4);
                    take(ciu)
                })
                .collect();
            (got, ciu.fault_counters())
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
    }
}
