//! Behavioural model of the whole V853 msgbox: both processor blocks.
//!
//! [`MsgboxSim`] is the executable form of `shared/docs/hw/v853-msgbox.md`.
//! It holds both blocks (ARM and RISC-V; only their offsets matter here) and
//! hands out one `Copy` register view per block, [`SimRegs`], implementing
//! [`Regs32`]. A view is the block as the bus sees it: either processor can
//! use it, exactly as on silicon, where the A7 writes the E907's block to
//! send and reads its own to receive. [`MsgboxSim::msgbox`] builds the
//! driver of one processor from the two views in the right order.
//!
//! # Hardware rules the model implements
//!
//! - `MSG_FIFO(p)`: 8 words deep; a write pushes, a **read pops** (sheet §2).
//! - `MSG_STATUS(p)`: the number of words, 0..=8.
//! - `READ_IRQ_STATUS` bit `2p`: set when a word arrives; **write 1 to
//!   clear**, but it re-asserts while the FIFO is not empty (sheet §2: "can
//!   only be cleared once the FIFO is empty").
//! - `WRITE_IRQ_STATUS` bit `2p + 1`: set while the FIFO has at least the
//!   threshold of empty slots (`WRITE_IRQ_THRESHOLD`, sheet §2); write 1 to
//!   clear, re-asserting while the condition holds.
//! - W1C is **per bit**: a read-modify-write acknowledgement (the Linux
//!   driver's style) also clears every other latched bit, as on hardware.
//! - Each block has **one interrupt output**: high while any enabled status
//!   bit of the block is pending.
//! - Unknown offsets read 0 and are counted, writes to them are counted and
//!   dropped; writes to read-only registers are counted and dropped.
//!
//! Where the sheet is silent or UNVERIFIED the model picks one behaviour and
//! says so in an `UNCERTAIN(...)` comment; each is pinned by a test named
//! `uncertain_*` below.
//!
//! # Fault injection
//!
//! [`MsgboxSim::set_faults`] arms seeded doorbell faults on chosen channels
//! ([`Faults`], counted in [`FaultCounters`]; off by default). The faults,
//! their invariants and the engine are [`ipc_traits::sim_faults`]; here a
//! doorbell is a `MSG_FIFO` write, its word is pushed into that block's
//! channel FIFO (held and garbage words keep the FIFO's last free slot), a
//! muted word sets its read-pending bit but not the block's interrupt
//! output until the FIFO drains or another word lands, and a phantom
//! latches the read-pending bit over an empty FIFO. Faults apply to a
//! chosen channel in both blocks; [`MsgboxSim::deliver_delayed`] lands held
//! words at once.
//!
//! # Threads
//!
//! The model sits behind a `Mutex`; views are `Copy + Send + Sync`, so the
//! two processors' drivers can run on two threads. Tests that move handles
//! into `'static` threads use [`MsgboxSim::new_static`]. A read of
//! `MSG_STATUS` that shows an empty or full FIFO yields the host thread
//! (the caller is waiting for the other processor), which keeps two-thread
//! tests fast on a loaded host; it changes timing only, never values.
#![deny(unsafe_code)]

use std::boxed::Box;
use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::vec::Vec;

pub use ipc_traits::sim_faults::FaultCounters;

use ipc_traits::regs::Regs32;
use ipc_traits::sim_faults::{FaultModel, Injector, Receivers, Room, Target, Targets};

use crate::registers::{self, Processor, CHANNELS, FIFO_DEPTH, READ_IRQ_MASK, WRITE_IRQ_MASK};
use crate::Msgbox;

const CH: usize = CHANNELS as usize;

/// Which W1C status register of a block (for [`MsgboxSim::inject_status`]
/// and [`MsgboxSim::status`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusReg {
    /// `READ_IRQ_STATUS` (receive events of the block's owner).
    Read,
    /// `WRITE_IRQ_STATUS` (transmit events of the processor sending into
    /// the block).
    Write,
}

/// What the model counted: accesses the hardware rules make harmless but a
/// correct driver should never perform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct SimCounters {
    /// Reads of offsets that are not a register (returned 0).
    pub unknown_reads: u32,
    /// Writes to offsets that are not a register (dropped).
    pub unknown_writes: u32,
    /// Writes to `VER`, `FIFO_STATUS` or `MSG_STATUS` (dropped).
    pub read_only_writes: u32,
    /// Writes to a full `MSG_FIFO` (dropped, see
    /// `uncertain_write_to_full_fifo_is_dropped`).
    pub overflow_writes: u32,
    /// Reads of an empty `MSG_FIFO` (returned 0).
    pub underflow_reads: u32,
    /// Reads of `FIFO_STATUS` (its meaning is UNVERIFIED; the driver must not
    /// depend on it).
    pub fifo_status_reads: u32,
}

/// A decoded register of one block (sub-block N = 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reg {
    Ver,
    ReadEnable,
    ReadStatus,
    WriteEnable,
    WriteStatus,
    Debug,
    FifoStatus(usize),
    MsgStatus(usize),
    MsgFifo(usize),
    Threshold(usize),
    Unknown,
}

fn per_channel(offset: usize, base: usize) -> Option<usize> {
    let rel = offset.checked_sub(base)?;
    (rel < 4 * CH && rel % 4 == 0).then_some(rel / 4)
}

/// The one place offsets are decoded.
fn decode(offset: usize) -> Reg {
    use registers as r;
    match offset {
        r::VER => Reg::Ver,
        r::READ_IRQ_ENABLE => Reg::ReadEnable,
        r::READ_IRQ_STATUS => Reg::ReadStatus,
        r::WRITE_IRQ_ENABLE => Reg::WriteEnable,
        r::WRITE_IRQ_STATUS => Reg::WriteStatus,
        r::DEBUG => Reg::Debug,
        o => {
            if let Some(p) = per_channel(o, r::FIFO_STATUS_BASE) {
                Reg::FifoStatus(p)
            } else if let Some(p) = per_channel(o, r::MSG_STATUS_BASE) {
                Reg::MsgStatus(p)
            } else if let Some(p) = per_channel(o, r::MSG_FIFO_BASE) {
                Reg::MsgFifo(p)
            } else if let Some(p) = per_channel(o, r::WRITE_IRQ_THRESHOLD_BASE) {
                Reg::Threshold(p)
            } else {
                // UNCERTAIN(v853-msgbox.md §2): sub-block N = 1 (0x100..) and
                // the gaps are not registers on the two-processor V853; the
                // model treats them as unknown.
                Reg::Unknown
            }
        }
    }
}

/// One processor block (its only sub-block, N = 0).
#[derive(Debug, Clone)]
struct Block {
    read_enable: u32,
    read_pending: u32,
    write_enable: u32,
    write_pending: u32,
    debug: u32,
    threshold: [u32; CH],
    fifo: [VecDeque<u32>; CH],
    forced_count: [Option<u32>; CH],
}

impl Block {
    fn reset() -> Self {
        let mut b = Self {
            read_enable: registers::READ_IRQ_ENABLE_RESET,
            read_pending: registers::READ_IRQ_STATUS_RESET,
            write_enable: registers::WRITE_IRQ_ENABLE_RESET,
            // Derived by `settle` from the empty FIFOs (see the register
            // docs of WRITE_IRQ_STATUS_RESET).
            write_pending: 0,
            debug: registers::DEBUG_RESET,
            threshold: [registers::WRITE_IRQ_THRESHOLD_RESET; CH],
            fifo: core::array::from_fn(|_| VecDeque::with_capacity(FIFO_DEPTH as usize)),
            forced_count: [None; CH],
        };
        b.settle();
        b
    }

    /// Re-asserts every status bit whose condition holds.
    fn settle(&mut self) {
        for p in 0..CH {
            let len = self.fifo[p].len() as u32;
            // Sheet §2: the read pending bit "can only be cleared once the
            // FIFO is empty" → it re-asserts while MSG_STATUS > 0 [inferred
            // in the sheet]. UNCERTAIN(v853-msgbox.md §2): after the FIFO
            // drains the bit stays latched until written 1 (the vendor ISR
            // drains, then clears), rather than falling by itself.
            if len > 0 {
                self.read_pending |= 1 << (2 * p);
            }
            // UNCERTAIN(v853-msgbox.md §2): the sheet gives the trigger
            // ("empty slots reach the threshold") and W1C, not whether the
            // bit is an edge latch or re-asserts like the read bit. The
            // model re-asserts while empty slots >= threshold (level, like
            // the read side), which also makes the reset value 0xAA.
            let empty = FIFO_DEPTH - len.min(FIFO_DEPTH);
            if empty >= 1 << (self.threshold[p] & 0x3) {
                self.write_pending |= 1 << (2 * p + 1);
            }
        }
    }

    /// The block's interrupt output; read-pending bits in `muted` (fault
    /// injection: dropped interrupts) do not reach it.
    fn line(&self, muted: u32) -> bool {
        (self.read_pending & self.read_enable & READ_IRQ_MASK & !muted)
            | (self.write_pending & self.write_enable & WRITE_IRQ_MASK)
            != 0
    }

    fn read(&mut self, offset: usize, counters: &mut SimCounters) -> u32 {
        let value = match decode(offset) {
            // UNCERTAIN(v853-msgbox.md §2, §7): the version value is unknown;
            // the model reads VER_RESET (0).
            Reg::Ver => registers::VER_RESET,
            Reg::ReadEnable => self.read_enable,
            Reg::ReadStatus => self.read_pending,
            Reg::WriteEnable => self.write_enable,
            Reg::WriteStatus => self.write_pending,
            Reg::Debug => self.debug,
            Reg::FifoStatus(p) => {
                counters.fifo_status_reads = counters.fifo_status_reads.saturating_add(1);
                // UNCERTAIN(v853-msgbox.md §2, §7): "probably bit 0 = FIFO
                // full", read by no driver. The model sets bit 0 exactly when
                // the FIFO holds 8 words, and nothing else.
                u32::from(self.fifo[p].len() as u32 >= FIFO_DEPTH)
            }
            Reg::MsgStatus(p) => self.forced_count[p].unwrap_or(self.fifo[p].len() as u32),
            Reg::MsgFifo(p) => match self.fifo[p].pop_front() {
                Some(word) => word,
                None => {
                    // UNCERTAIN(v853-msgbox.md §2): what an empty FIFO reads
                    // is undocumented; the model returns 0 and counts it.
                    counters.underflow_reads = counters.underflow_reads.saturating_add(1);
                    0
                }
            },
            Reg::Threshold(p) => self.threshold[p],
            Reg::Unknown => {
                counters.unknown_reads = counters.unknown_reads.saturating_add(1);
                0
            }
        };
        self.settle();
        value
    }

    fn write(&mut self, offset: usize, value: u32, counters: &mut SimCounters) {
        match decode(offset) {
            Reg::Ver | Reg::FifoStatus(_) | Reg::MsgStatus(_) => {
                counters.read_only_writes = counters.read_only_writes.saturating_add(1);
            }
            // UNCERTAIN(v853-msgbox.md §2): whether undefined enable bits are
            // writable is unknown; the model keeps only the channel bits.
            Reg::ReadEnable => self.read_enable = value & READ_IRQ_MASK,
            Reg::WriteEnable => self.write_enable = value & WRITE_IRQ_MASK,
            // Per-bit write-1-to-clear (sheet §2); `settle` re-asserts bits
            // whose condition still holds.
            Reg::ReadStatus => self.read_pending &= !value,
            Reg::WriteStatus => self.write_pending &= !value,
            // UNCERTAIN(v853-msgbox.md §2, §7): DEBUG semantics (loopback?)
            // are unknown; the model stores the value and nothing else.
            Reg::Debug => self.debug = value,
            Reg::MsgFifo(p) => {
                if self.fifo[p].len() < FIFO_DEPTH as usize {
                    self.fifo[p].push_back(value);
                    self.read_pending |= 1 << (2 * p);
                } else {
                    // UNCERTAIN(v853-msgbox.md §2): what silicon does with a
                    // write to a full FIFO is undocumented (every driver
                    // checks MSG_STATUS first). The model drops the word,
                    // keeps the queued ones intact, and counts it.
                    counters.overflow_writes = counters.overflow_writes.saturating_add(1);
                }
            }
            Reg::Threshold(p) => self.threshold[p] = value & 0x3,
            Reg::Unknown => {
                counters.unknown_writes = counters.unknown_writes.saturating_add(1);
            }
        }
        self.settle();
    }
}

#[derive(Debug)]
struct Model {
    blocks: [Block; 2],
    counters: SimCounters,
    faults: Injector,
}

impl Model {
    fn reset() -> Self {
        Self {
            blocks: [Block::reset(), Block::reset()],
            counters: SimCounters::default(),
            faults: Injector::new(),
        }
    }

    fn block(&mut self, which: Processor) -> &mut Block {
        &mut self.blocks[which.id() as usize]
    }

    /// The interrupt output of `which`, muted bits left out.
    fn block_line(&self, which: Processor) -> bool {
        let b = which.id() as usize;
        let muted = self.faults.muted(b as u8);
        // Channel p's receive event is read-pending bit 2p.
        let muted = (0..CH).fold(0, |acc, p| acc | ((muted >> p) as u32 & 1) << (2 * p));
        self.blocks[b].line(muted)
    }

    /// A register read, after the fault clock ticked.
    fn read(&mut self, which: Processor, offset: usize) -> u32 {
        self.tick_faults();
        let b = which.id() as usize;
        let value = self.blocks[b].read(offset, &mut self.counters);
        if let Reg::MsgFifo(p) = decode(offset) {
            if self.blocks[b].fifo[p].is_empty() {
                self.faults.unmute(b as u8, 1 << p);
            }
        }
        value
    }

    /// A register write, through the armed faults for `MSG_FIFO`.
    fn write(&mut self, which: Processor, offset: usize, value: u32) {
        self.tick_faults();
        let b = which.id() as usize;
        match decode(offset) {
            Reg::MsgFifo(p) => {
                self.send_doorbell(Target::new(b as u8, p as u8), value);
            }
            _ => self.blocks[b].write(offset, value, &mut self.counters),
        }
    }
}

/// The FIFOs as the fault engine sees them: a [`Target`] is channel `slot`
/// of block `unit` (the block of [`Processor::id`]).
struct Receive<'a> {
    blocks: &'a mut [Block; 2],
    counters: &'a mut SimCounters,
}

impl Receivers for Receive<'_> {
    fn room(&self, to: Target) -> Room {
        let fifo = self
            .blocks
            .get(usize::from(to.unit))
            .and_then(|b| b.fifo.get(usize::from(to.slot)));
        match fifo {
            Some(f) => Room::fifo(f.len() as u32, FIFO_DEPTH),
            None => Room::NONE,
        }
    }

    /// The hardware side of a `MSG_FIFO(p)` write into block `b`.
    fn land(&mut self, to: Target, word: u32) {
        if let Some(b) = self.blocks.get_mut(usize::from(to.unit)) {
            b.write(registers::msg_fifo(to.slot), word, self.counters);
        }
    }

    /// The read-pending bit latched over an empty FIFO.
    fn phantom(&mut self, to: Target) {
        if let Some(b) = self.blocks.get_mut(usize::from(to.unit)) {
            b.read_pending |= 1 << (2 * u32::from(to.slot));
        }
    }
}

impl FaultModel for Model {
    type Rx<'a> = Receive<'a>;

    /// The fault engine and the FIFOs it drives, borrowed apart.
    fn split(&mut self) -> (&mut Injector, Receive<'_>) {
        let rx = Receive {
            blocks: &mut self.blocks,
            counters: &mut self.counters,
        };
        (&mut self.faults, rx)
    }
}

ipc_traits::doorbell_faults! {
    /// Seeded doorbell faults on msgbox channels (fault injection; all off
    /// by default), for [`MsgboxSim::set_faults`]. Only channels in
    /// `channels` are affected, in both blocks.
    pub struct Faults {
        /// The channels faults apply to (bit p = channel p).
        pub channels: u8,
    }
}

/// The simulated msgbox: both processor blocks and their interrupt outputs.
#[derive(Debug)]
pub struct MsgboxSim {
    model: Mutex<Model>,
}

impl Default for MsgboxSim {
    fn default() -> Self {
        Self::new()
    }
}

impl MsgboxSim {
    /// A msgbox at reset: FIFOs empty, interrupts disabled.
    #[must_use]
    pub fn new() -> Self {
        Self {
            model: Mutex::new(Model::reset()),
        }
    }

    /// A msgbox at reset with a `'static` lifetime, for tests that move
    /// handles into spawned threads. Leaks one small model per call.
    #[must_use]
    pub fn new_static() -> &'static Self {
        Box::leak(Box::new(Self::new()))
    }

    fn lock(&self) -> MutexGuard<'_, Model> {
        // A panicking test thread must not hide the model from the others.
        self.model.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Puts both blocks back to their reset state (counters cleared).
    pub fn reset(&self) {
        *self.lock() = Model::reset();
    }

    /// The register view of `which` processor's block.
    #[must_use]
    pub fn block(&self, which: Processor) -> SimRegs<'_> {
        SimRegs {
            sim: self,
            block: which,
        }
    }

    /// The driver as `this` processor builds it: its own block as `local`,
    /// the peer's as `remote`.
    #[must_use]
    pub fn msgbox(&self, this: Processor) -> Msgbox<SimRegs<'_>> {
        Msgbox::new(self.block(this), self.block(this.peer()))
    }

    /// The interrupt output of `block`: high while any enabled status bit of
    /// that block is pending.
    #[must_use]
    pub fn block_line(&self, block: Processor) -> bool {
        self.lock().block_line(block)
    }

    /// The msgbox interrupt input of `processor`.
    ///
    /// UNCERTAIN(v853-msgbox.md §1, §7): the A7 receives both blocks'
    /// outputs (its device tree lists GIC SPI 0 and SPI 1, and the vendor
    /// driver handles read events of its own block and write events of the
    /// E907's block from both). The E907's routing is not known; the model
    /// gives it both outputs too, so its transmit-space events (which live in
    /// the ARM block) can reach it. Either processor therefore sees
    /// interrupts raised for the other and counts them as spurious.
    #[must_use]
    pub fn line(&self, processor: Processor) -> bool {
        let m = self.lock();
        let any = m.block_line(Processor::Arm) || m.block_line(Processor::Riscv);
        match processor {
            Processor::Arm | Processor::Riscv => any,
        }
    }

    /// The words waiting in channel `p`'s FIFO of `block` (oldest first),
    /// i.e. the words sent *to* `block`'s owner. Does not pop.
    #[must_use]
    pub fn queued(&self, block: Processor, p: u8) -> Vec<u32> {
        let mut m = self.lock();
        m.block(block)
            .fifo
            .get(usize::from(p))
            .map(|f| f.iter().copied().collect())
            .unwrap_or_default()
    }

    /// The raw value of a status register (no side effect).
    #[must_use]
    pub fn status(&self, block: Processor, reg: StatusReg) -> u32 {
        let mut m = self.lock();
        let b = m.block(block);
        match reg {
            StatusReg::Read => b.read_pending,
            StatusReg::Write => b.write_pending,
        }
    }

    /// The raw value of an interrupt-enable register (no side effect).
    #[must_use]
    pub fn enable(&self, block: Processor, reg: StatusReg) -> u32 {
        let mut m = self.lock();
        let b = m.block(block);
        match reg {
            StatusReg::Read => b.read_enable,
            StatusReg::Write => b.write_enable,
        }
    }

    /// Arms (or, with `Faults::default()`, disarms) seeded doorbell faults.
    /// The generator restarts from `faults.seed`; counters and held words
    /// are kept. [`MsgboxSim::reset`] disarms them.
    pub fn set_faults(&self, faults: Faults) {
        let targets = Targets::new(0b11, u64::from(faults.channels));
        self.lock().faults.arm(faults.rates(), targets);
    }

    /// What the armed faults did so far.
    #[must_use]
    pub fn fault_counters(&self) -> FaultCounters {
        self.lock().faults.counters()
    }

    /// Lands every held word now (delayed ones and duplicate copies), in
    /// order per FIFO, as long as the FIFO keeps a free slot; returns how
    /// many landed. The rest land at later accesses.
    pub fn deliver_delayed(&self) -> u32 {
        self.lock().deliver_held()
    }

    /// How many words are held (delayed or duplicate copies not yet landed).
    #[must_use]
    pub fn held_words(&self) -> usize {
        self.lock().faults.held()
    }

    /// What the model counted so far.
    #[must_use]
    pub fn counters(&self) -> SimCounters {
        self.lock().counters
    }

    /// Bad-input injection: sets `bits` in a status register as if the
    /// hardware had raised them (any bits, including ones no channel owns).
    /// They stay until written 1 to clear.
    pub fn inject_status(&self, block: Processor, reg: StatusReg, bits: u32) {
        let mut m = self.lock();
        let b = m.block(block);
        match reg {
            StatusReg::Read => b.read_pending |= bits,
            StatusReg::Write => b.write_pending |= bits,
        }
    }

    /// Bad-input injection: makes `MSG_STATUS(p)` of `block` read `count`
    /// (any 32-bit value) instead of the FIFO length, until called with
    /// `None`. The FIFO itself is unchanged.
    pub fn force_msg_status(&self, block: Processor, p: u8, count: Option<u32>) {
        let mut m = self.lock();
        if let Some(slot) = m.block(block).forced_count.get_mut(usize::from(p)) {
            *slot = count;
        }
    }

    fn read(&self, block: Processor, offset: usize) -> u32 {
        let value = self.lock().read(block, offset);
        // A poll of MSG_STATUS that shows an empty or a full FIFO means the
        // caller waits for the other processor: give the host thread away,
        // so two simulated processors on a loaded host make progress instead
        // of burning time slices. Timing only; the values are unaffected.
        if matches!(decode(offset), Reg::MsgStatus(_)) && (value == 0 || value >= FIFO_DEPTH) {
            std::thread::yield_now();
        }
        value
    }

    fn write(&self, block: Processor, offset: usize, value: u32) {
        self.lock().write(block, offset, value);
    }
}

/// The register view of one simulated block (`Copy`, `Send`, `Sync`).
#[derive(Debug, Clone, Copy)]
pub struct SimRegs<'a> {
    sim: &'a MsgboxSim,
    block: Processor,
}

impl SimRegs<'_> {
    /// The processor whose block this view shows.
    #[must_use]
    pub const fn block(&self) -> Processor {
        self.block
    }
}

// SAFETY: (1) every offset reaches the same model register of the same block
// each time (one `decode` match, one model behind one mutex); (2) each access
// is one locked call into the model, never merged, split, elided or
// reordered with other accesses; (3) the mutex acquire/release orders a
// writer's earlier normal-memory stores (and its `io_wmb`) before the model
// update, and a reader locking the mutex afterwards sees them; (4) unknown
// offsets only bump a counter, they touch no memory.
#[allow(unsafe_code)]
unsafe impl Regs32 for SimRegs<'_> {
    fn read(self, offset: usize) -> u32 {
        self.sim.read(self.block, offset)
    }

    fn write(self, offset: usize, value: u32) {
        self.sim.write(self.block, offset, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registers::*;
    use ipc_traits::sim_faults::Rates;

    const ARM: Processor = Processor::Arm;
    const RV: Processor = Processor::Riscv;

    #[test]
    fn uncertain_reset_values_match_the_register_constants() {
        let sim = MsgboxSim::new();
        for which in [ARM, RV] {
            let r = sim.block(which);
            assert_eq!(r.read(VER), VER_RESET);
            assert_eq!(r.read(READ_IRQ_ENABLE), READ_IRQ_ENABLE_RESET);
            assert_eq!(r.read(READ_IRQ_STATUS), READ_IRQ_STATUS_RESET);
            assert_eq!(r.read(WRITE_IRQ_ENABLE), WRITE_IRQ_ENABLE_RESET);
            assert_eq!(r.read(WRITE_IRQ_STATUS), WRITE_IRQ_STATUS_RESET);
            assert_eq!(r.read(DEBUG), DEBUG_RESET);
            for p in 0..CHANNELS {
                assert_eq!(r.read(msg_status(p)), MSG_STATUS_RESET);
                assert_eq!(r.read(fifo_status(p)), FIFO_STATUS_RESET);
                assert_eq!(r.read(write_irq_threshold(p)), WRITE_IRQ_THRESHOLD_RESET);
            }
        }
        assert!(!sim.line(ARM) && !sim.line(RV));
        assert_eq!(sim.counters().unknown_reads, 0);
    }

    #[test]
    fn fifo_is_eight_deep_and_pops_on_read() {
        let sim = MsgboxSim::new();
        let rv = sim.block(RV);
        for i in 0..8 {
            rv.write(msg_fifo(2), 100 + i);
            assert_eq!(rv.read(msg_status(2)), i + 1);
        }
        assert_eq!(sim.queued(RV, 2), (100..108).collect::<Vec<_>>());
        // Other channels and the other block are untouched.
        assert!(sim.queued(RV, 1).is_empty() && sim.queued(ARM, 2).is_empty());
        for i in 0..8 {
            assert_eq!(rv.read(msg_fifo(2)), 100 + i, "pop order");
            assert_eq!(rv.read(msg_status(2)), 7 - i);
        }
    }

    #[test]
    fn uncertain_write_to_full_fifo_is_dropped() {
        // UNCERTAIN(v853-msgbox.md §2): the 9th word is dropped and counted,
        // nothing queued is overwritten.
        let sim = MsgboxSim::new();
        let rv = sim.block(RV);
        for i in 0..9 {
            rv.write(msg_fifo(0), i);
        }
        assert_eq!(sim.queued(RV, 0), (0..8).collect::<Vec<_>>());
        assert_eq!(rv.read(msg_status(0)), 8);
        assert_eq!(sim.counters().overflow_writes, 1);
    }

    #[test]
    fn uncertain_read_of_empty_fifo_returns_zero() {
        let sim = MsgboxSim::new();
        let arm = sim.block(ARM);
        arm.write(msg_fifo(1), 0xABCD);
        assert_eq!(arm.read(msg_fifo(1)), 0xABCD);
        assert_eq!(arm.read(msg_fifo(1)), 0);
        assert_eq!(arm.read(msg_status(1)), 0);
        assert_eq!(sim.counters().underflow_reads, 1);
    }

    #[test]
    fn uncertain_fifo_status_bit0_is_full() {
        // UNCERTAIN(v853-msgbox.md §2, §7): bit 0 = full, nothing else.
        let sim = MsgboxSim::new();
        let rv = sim.block(RV);
        for i in 0..8 {
            assert_eq!(rv.read(fifo_status(3)), 0, "{i} words: not full");
            rv.write(msg_fifo(3), i);
        }
        assert_eq!(rv.read(fifo_status(3)), 1);
        assert_eq!(rv.read(fifo_status(2)), 0);
        let _ = rv.read(msg_fifo(3));
        assert_eq!(rv.read(fifo_status(3)), 0);
        assert_eq!(sim.counters().fifo_status_reads, 11);
    }

    #[test]
    fn uncertain_read_status_reasserts_until_fifo_empty() {
        let sim = MsgboxSim::new();
        let arm = sim.block(ARM);
        arm.write(msg_fifo(1), 1);
        arm.write(msg_fifo(1), 2);
        assert_eq!(arm.read(READ_IRQ_STATUS), 1 << 2);
        arm.write(READ_IRQ_STATUS, 1 << 2);
        assert_eq!(
            arm.read(READ_IRQ_STATUS),
            1 << 2,
            "W1C ineffective while data"
        );
        let _ = arm.read(msg_fifo(1));
        let _ = arm.read(msg_fifo(1));
        // Latched: still pending after the drain until acknowledged.
        assert_eq!(arm.read(READ_IRQ_STATUS), 1 << 2);
        arm.write(READ_IRQ_STATUS, 1 << 2);
        assert_eq!(arm.read(READ_IRQ_STATUS), 0);
    }

    #[test]
    fn uncertain_write_status_reasserts_while_space_and_resets_pending() {
        let sim = MsgboxSim::new();
        let rv = sim.block(RV);
        assert_eq!(rv.read(WRITE_IRQ_STATUS), 0xAA, "all FIFOs empty at reset");
        rv.write(WRITE_IRQ_STATUS, 0xAA);
        assert_eq!(
            rv.read(WRITE_IRQ_STATUS),
            0xAA,
            "W1C ineffective while space"
        );
        for i in 0..8 {
            rv.write(msg_fifo(0), i);
        }
        assert_eq!(rv.read(WRITE_IRQ_STATUS), 0xAA, "latched from before");
        rv.write(WRITE_IRQ_STATUS, 1 << 1);
        assert_eq!(rv.read(WRITE_IRQ_STATUS), 0xA8, "full FIFO: clear sticks");
        let _ = rv.read(msg_fifo(0));
        assert_eq!(
            rv.read(WRITE_IRQ_STATUS),
            0xAA,
            "one free slot reaches threshold 1"
        );
    }

    #[test]
    fn write_threshold_counts_empty_slots() {
        // Sheet §2: fires when the number of empty slots reaches the
        // threshold; encoding 2 = four slots.
        let sim = MsgboxSim::new();
        let rv = sim.block(RV);
        rv.write(write_irq_threshold(1), 2);
        for i in 0..8 {
            rv.write(msg_fifo(1), i);
        }
        rv.write(WRITE_IRQ_STATUS, 1 << 3);
        for popped in 1..=4 {
            let _ = rv.read(msg_fifo(1));
            let pending = rv.read(WRITE_IRQ_STATUS) & (1 << 3) != 0;
            assert_eq!(pending, popped >= 4, "{popped} empty slots");
        }
        assert_eq!(rv.read(write_irq_threshold(1)), 2);
        rv.write(write_irq_threshold(1), 0xFF);
        assert_eq!(rv.read(write_irq_threshold(1)), 3, "2-bit field");
    }

    #[test]
    fn w1c_is_per_bit_so_read_modify_write_clears_neighbours() {
        // Sheet §2: the Linux driver acknowledges with read-modify-write,
        // which on W1C hardware clears every other pending bit too.
        let sim = MsgboxSim::new();
        let rv = sim.block(RV);
        // Latch write-pending for channels 0 and 1, then fill both FIFOs so
        // neither condition holds any more.
        for p in [0, 1] {
            for i in 0..8 {
                rv.write(msg_fifo(p), i);
            }
        }
        assert_eq!(rv.read(WRITE_IRQ_STATUS) & 0b1010, 0b1010);
        // Single-bit acknowledgement: only channel 0's bit goes.
        rv.write(WRITE_IRQ_STATUS, 1 << 1);
        assert_eq!(rv.read(WRITE_IRQ_STATUS) & 0b1010, 0b1000);
        // Linux-style RMW for channel 0 clears channel 1's latched bit too.
        sim.inject_status(RV, StatusReg::Write, 1 << 1);
        let v = rv.read(WRITE_IRQ_STATUS);
        rv.write(WRITE_IRQ_STATUS, v | (1 << 1));
        assert_eq!(rv.read(WRITE_IRQ_STATUS) & 0b1010, 0);
    }

    #[test]
    fn line_rises_only_when_enabled_and_falls_when_acknowledged() {
        let sim = MsgboxSim::new();
        let arm = sim.block(ARM);
        arm.write(msg_fifo(0), 5);
        assert!(!sim.block_line(ARM), "disabled");
        arm.write(READ_IRQ_ENABLE, 1);
        assert!(sim.block_line(ARM) && sim.line(ARM));
        let _ = arm.read(msg_fifo(0));
        assert!(sim.block_line(ARM), "latched until acknowledged");
        arm.write(READ_IRQ_STATUS, 1);
        assert!(!sim.block_line(ARM));
        // Write events: pending at reset, visible only once enabled.
        assert!(!sim.block_line(RV));
        sim.block(RV).write(WRITE_IRQ_ENABLE, 1 << 5);
        assert!(sim.block_line(RV));
        sim.block(RV).write(WRITE_IRQ_ENABLE, 0);
        assert!(!sim.block_line(RV));
    }

    #[test]
    fn uncertain_one_interrupt_output_per_block_reaching_both_processors() {
        let sim = MsgboxSim::new();
        // An E907 receive event (RISC-V block) ...
        sim.block(RV).write(READ_IRQ_ENABLE, 1);
        sim.block(RV).write(msg_fifo(0), 1);
        assert!(sim.block_line(RV) && !sim.block_line(ARM));
        // ... reaches both processors' inputs in the model.
        assert!(sim.line(RV) && sim.line(ARM));
    }

    #[test]
    fn uncertain_enable_registers_keep_only_channel_bits() {
        let sim = MsgboxSim::new();
        let arm = sim.block(ARM);
        arm.write(READ_IRQ_ENABLE, u32::MAX);
        arm.write(WRITE_IRQ_ENABLE, u32::MAX);
        assert_eq!(arm.read(READ_IRQ_ENABLE), READ_IRQ_MASK);
        assert_eq!(arm.read(WRITE_IRQ_ENABLE), WRITE_IRQ_MASK);
    }

    #[test]
    fn uncertain_debug_register_is_plain_storage_without_loopback() {
        let sim = MsgboxSim::new();
        let arm = sim.block(ARM);
        arm.write(DEBUG, 0xFFFF_FFFF);
        assert_eq!(arm.read(DEBUG), 0xFFFF_FFFF);
        arm.write(msg_fifo(0), 1);
        assert_eq!(sim.queued(ARM, 0), [1]);
        assert!(
            sim.queued(RV, 0).is_empty(),
            "no loopback into the other block"
        );
    }

    #[test]
    fn uncertain_version_reads_zero_and_is_read_only() {
        let sim = MsgboxSim::new();
        let rv = sim.block(RV);
        rv.write(VER, 0x1234);
        rv.write(msg_status(0), 3);
        rv.write(fifo_status(0), 1);
        assert_eq!(rv.read(VER), 0);
        assert_eq!(rv.read(msg_status(0)), 0);
        assert_eq!(sim.counters().read_only_writes, 3);
    }

    #[test]
    fn unknown_offsets_read_zero_and_are_counted() {
        let sim = MsgboxSim::new();
        let arm = sim.block(ARM);
        for off in [
            0x00, 0x0C, 0x28, 0x44, 0x90, 0x100, 0x170, 0xFFC, 0x1000, 0x71,
        ] {
            assert_eq!(arm.read(off), 0, "{off:#x}");
            arm.write(off, 0xFFFF_FFFF);
        }
        let c = sim.counters();
        assert_eq!((c.unknown_reads, c.unknown_writes), (10, 10));
        // Nothing leaked into real registers.
        assert_eq!(arm.read(READ_IRQ_ENABLE), 0);
        assert!(sim.queued(ARM, 0).is_empty());
    }

    #[test]
    fn injection_and_forced_counts_show_through_the_views() {
        let sim = MsgboxSim::new();
        sim.inject_status(ARM, StatusReg::Read, 0x100);
        assert_eq!(sim.block(ARM).read(READ_IRQ_STATUS), 0x100);
        sim.force_msg_status(ARM, 2, Some(13));
        assert_eq!(sim.block(ARM).read(msg_status(2)), 13);
        sim.force_msg_status(ARM, 2, None);
        assert_eq!(sim.block(ARM).read(msg_status(2)), 0);
        sim.force_msg_status(ARM, 9, Some(1)); // out of range: ignored
        sim.reset();
        assert_eq!(sim.status(ARM, StatusReg::Read), 0);
    }

    #[test]
    fn views_are_send_sync_copy() {
        fn check<T: Send + Sync + Copy>() {}
        check::<SimRegs<'static>>();
    }

    fn faulty(f: Faults) -> MsgboxSim {
        let sim = MsgboxSim::new();
        // The E907 listens on channel 1 of its block.
        sim.block(RV).write(READ_IRQ_ENABLE, 1 << 2);
        sim.set_faults(Faults {
            channels: 1 << 1,
            ..f
        });
        sim
    }

    #[test]
    fn faults_are_off_by_default_and_only_on_chosen_channels() {
        let sim = MsgboxSim::new();
        let rv = sim.block(RV);
        for i in 0..50 {
            rv.write(msg_fifo(1), i);
            assert_eq!(rv.read(msg_fifo(1)), i);
        }
        assert_eq!(sim.fault_counters(), FaultCounters::default());
        let sim = faulty(Faults {
            drop_one_in: 1,
            ..Faults::default()
        });
        let rv = sim.block(RV);
        rv.write(msg_fifo(0), 3);
        assert_eq!(rv.read(msg_status(0)), 1, "channel 0 is not faulted");
        rv.write(msg_fifo(1), 3);
        assert_eq!(rv.read(msg_status(1)), 0, "channel 1 drops everything");
        assert_eq!(sim.fault_counters().dropped, 1);
    }

    #[test]
    fn a_muted_word_is_pending_but_off_the_line_until_drained() {
        let sim = faulty(Faults {
            mute_one_in: 1,
            ..Faults::default()
        });
        let rv = sim.block(RV);
        rv.write(msg_fifo(1), 1);
        assert_ne!(rv.read(READ_IRQ_STATUS) & (1 << 2), 0, "pending");
        assert!(!sim.block_line(RV), "but the interrupt was dropped");
        sim.set_faults(Faults::default());
        rv.write(msg_fifo(1), 2);
        assert!(sim.block_line(RV), "the next word raises the line");
        assert_eq!(sim.fault_counters().muted, 1);
    }

    #[test]
    fn duplicates_and_delays_land_later_and_keep_a_slot_free() {
        let sim = faulty(Faults {
            duplicate_one_in: 1,
            ..Faults::default()
        });
        let rv = sim.block(RV);
        rv.write(msg_fifo(1), 5);
        assert_eq!(rv.read(msg_status(1)), 2, "the copy landed");
        sim.set_faults(Faults::default());
        for w in 0..FIFO_DEPTH - 3 {
            rv.write(msg_fifo(1), w);
        }
        assert_eq!(rv.read(msg_status(1)), FIFO_DEPTH - 1);
        sim.set_faults(Faults {
            channels: 1 << 1,
            delay_one_in: 1,
            delay_accesses: 1,
            ..Faults::default()
        });
        rv.write(msg_fifo(1), 99);
        for _ in 0..4 {
            assert_eq!(rv.read(msg_status(1)), FIFO_DEPTH - 1, "no spare slot");
        }
        assert_eq!(sim.held_words(), 1);
        let _ = rv.read(msg_fifo(1));
        assert_eq!(sim.deliver_delayed(), 1);
        assert_eq!(rv.read(msg_status(1)), FIFO_DEPTH - 1);
        assert_eq!(sim.counters().overflow_writes, 0);
        let f = sim.fault_counters();
        assert_eq!((f.duplicated, f.delayed, f.late_deliveries), (1, 1, 2));
    }

    #[test]
    fn a_delayed_word_lands_after_n_accesses() {
        let sim = faulty(Faults {
            delay_one_in: 1,
            delay_accesses: 3,
            ..Faults::default()
        });
        let rv = sim.block(RV);
        rv.write(msg_fifo(1), 7); // access 1, due at access 4
        assert_eq!(rv.read(msg_status(1)), 0);
        assert_eq!(rv.read(msg_status(1)), 0);
        assert_eq!(rv.read(msg_status(1)), 1);
        assert_eq!(rv.read(msg_fifo(1)), 7);
    }

    #[test]
    fn spurious_events_latch_pending_bits_or_push_garbage_and_are_counted() {
        let sim = faulty(Faults {
            spurious_one_in: 2,
            seed: 9,
            ..Faults::default()
        });
        let drain = || {
            let mut n = 0;
            for b in [ARM, RV] {
                let r = sim.block(b);
                while r.read(msg_status(1)) > 0 {
                    let _ = r.read(msg_fifo(1));
                    n += 1;
                }
                r.write(READ_IRQ_STATUS, 1 << 2);
            }
            n
        };
        let mut words: u32 = (0..400).map(|_| drain()).sum();
        sim.set_faults(Faults::default());
        words += drain();
        let f = sim.fault_counters();
        assert!(f.spurious > 10 && f.garbage > 10, "{f:?}");
        assert_eq!(words, f.garbage);
        assert_eq!(sim.counters().overflow_writes, 0);
    }

    #[test]
    fn the_same_seed_gives_the_same_faults() {
        let run = |seed| {
            let sim = faulty(Faults::default().with_rates(Rates::every_kind(seed)));
            let rv = sim.block(RV);
            let mut got = Vec::new();
            for i in 0..200u32 {
                if rv.read(msg_status(1)) < FIFO_DEPTH {
                    rv.write(msg_fifo(1), i);
                }
                if rv.read(msg_status(1)) > 0 {
                    got.push(rv.read(msg_fifo(1)));
                }
            }
            (got, sim.fault_counters())
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
    }
}
