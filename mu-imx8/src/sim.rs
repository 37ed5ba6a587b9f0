//! Behavioural model of a whole MU v1, both sides (feature `sim`).
//!
//! The model is the executable form of shared/docs/hw/imx8-mu.md ("the
//! sheet"). It implements:
//!
//! - the transmit-empty / receive-full handshake of every channel in both
//!   directions (§2.4): a write to side X's `TRn` clears X's `SR.TEn`, fills
//!   the peer's `RRn` and sets its `SR.RFn`; the peer's read of `RRn` pops it
//!   (clears `RFn`) and sets X's `TEn` again;
//! - what silicon does when a driver ignores `TEn`: the second write
//!   **overwrites** the unread word (§2.4), counted in
//!   [`SimStats::overwrites`];
//! - general-purpose interrupts: writing 1 to `CR.GIRn` sets the peer's
//!   `SR.GIPn`; `GIPn` is write-1-to-clear, and clearing it clears the
//!   requester's `GIRn` (§2.2, §2.3);
//! - flags (`CR.F` → peer's `SR.F`), the peer's power mode in `SR.PM`
//!   (§2.1), side A's `MUR` reset and `BRDIP`;
//! - reset values (§2.1, §2.2) and one level-sensitive interrupt line per
//!   side, high while any event is both pending and enabled
//!   (`SR & CR` over `GIP/RF/TE` vs `GIE/RIE/TIE`, plus `BRDIP & BRDIE`).
//!
//! Transfers are instantaneous: `SR.EP` and `SR.FUP` always read 0, and
//! `SR.RS` reads 0 (the peer is never held in reset).
//!
//! Unknown or misaligned offsets read 0 and drop writes; both are counted
//! ([`SimStats::unknown_reads`], [`SimStats::unknown_writes`]).
//!
//! # Fault injection
//!
//! [`Sim::set_faults`] arms seeded doorbell faults on chosen channels
//! ([`Faults`], counted in [`FaultCounters`]; off by default). The faults,
//! their invariants and the engine are [`ipc_traits::sim_faults`]; on the
//! MU a doorbell is a `TRn` write, its word lands in the peer's `RRn` with
//! `RFn` (a one-word place: held and garbage words wait until `RRn` is
//! empty), a muted word shows `RFn` in `SR` but not on [`Sim::line`] until
//! `RRn` is read, and a phantom sets `RFn` over the stale `RRn`. Faults
//! apply to both directions of a chosen channel; [`Sim::deliver_delayed`]
//! lands held words at once.
//!
//! # Uncertain behaviour
//!
//! Where the sheet marks a fact `[UNVERIFIED]` or `[inferred]`, the model
//! picks one behaviour, marks it `UNCERTAIN(imx8-mu.md §x)` in the code, and
//! a test named `uncertain_*` pins it.
//!
//! # Threads and lifetimes
//!
//! The state sits behind one `Mutex`, so the two register views ([`SimRegs`])
//! can be used from two threads at once, one per side, as two cores would.
//! The views must be `Copy` and `'static` (driver handles store them and
//! move between threads), so [`Sim::new`] allocates one small model per
//! simulated MU that lives until the process ends (kept in a static list,
//! so leak checkers such as Miri do not report it). That is fine for tests,
//! which is what this module is for.
//!
//! # Examples
//!
//! ```
//! use ipc_traits::mailbox::{Event, Listen};
//! use mu_imx8::sim::{Side, Sim};
//! use mu_imx8::Mu;
//!
//! let sim = Sim::new();
//! let mut a = Mu::new(sim.side(Side::A)).split();
//! let mut b = Mu::new(sim.side(Side::B)).split();
//! b.rx1.listen(Event::DataAvailable).unwrap();
//! assert!(!sim.line(Side::B));
//! a.tx1.try_send(0x0001_0000).unwrap();
//! assert!(sim.line(Side::B));                  // RF1 & RIE1
//! assert!(b.irq.service().events.data_available & 0b10 != 0);
//! assert_eq!(b.rx1.try_recv(), Ok(0x0001_0000));
//! assert!(!sim.line(Side::B));                 // the read popped RR1
//! ```
#![allow(unsafe_code)] // `unsafe impl Regs32 for SimRegs` only.

pub use ipc_traits::sim_faults::FaultCounters;

use ipc_traits::regs::Regs32;
use ipc_traits::sim_faults::{FaultModel, Injector, Receivers, Room, Target, Targets};
use std::boxed::Box;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::vec::Vec;

use crate::registers::{
    self, CR_GIE_MASK, CR_GIR_MASK, CR_OFFSET, CR_RIE_MASK, CR_TIE_MASK, EVENT_MASK, FLAGS_MASK,
    SR_GIP_MASK, SR_OFFSET, SR_RF_MASK, SR_TE_MASK,
};
use crate::PowerMode;

/// One side of the MU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// Side A (the Cortex-A53 / Linux side on i.MX8M, sheet §1).
    A,
    /// Side B (the Cortex-M side on i.MX8M).
    B,
}

impl Side {
    /// The other side.
    #[must_use]
    pub const fn peer(self) -> Self {
        match self {
            Self::A => Self::B,
            Self::B => Self::A,
        }
    }

    const fn index(self) -> usize {
        match self {
            Self::A => 0,
            Self::B => 1,
        }
    }
}

/// Counters of what the model saw (indexed `[side A, side B]` where
/// per-side).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct SimStats {
    /// Reads at unknown or misaligned offsets (they returned 0).
    pub unknown_reads: u32,
    /// Writes at unknown or misaligned offsets (they were dropped).
    pub unknown_writes: u32,
    /// `TRn` writes while `TEn = 0`, by sending side: on silicon the unread
    /// word is lost (sheet §2.4). A correct driver never causes one.
    pub overwrites: [u32; 2],
    /// `RRn` reads while `RFn = 0`, by reading side (they returned the stale
    /// value). A correct driver never causes one.
    pub stale_reads: [u32; 2],
    /// Writes to read-only receive registers (dropped).
    pub read_only_writes: u32,
    /// MU resets through side A's `CR.MUR`.
    pub resets: u32,
}

/// The state of one side's block.
#[derive(Debug, Clone, Copy)]
struct SideState {
    /// Last value written to each `TRn` (read back, see `read`).
    tr: [u32; 4],
    /// Contents of each `RRn`.
    rr: [u32; 4],
    /// `SR.RFn` as a channel bitset (bit n = channel n).
    full: u8,
    /// `SR.GIPn` as a channel bitset.
    gip: u8,
    /// `CR` as stored (including `GIRn`, excluding the self-clearing `MUR`).
    cr: u32,
    /// `SR.BRDIP` (side A only).
    brdip: bool,
    /// This side's core power mode, seen by the peer in `SR.PM`.
    power: PowerMode,
    /// Status bits forced on by [`Sim::inject_status`].
    injected: u32,
}

impl SideState {
    const RESET: Self = Self {
        tr: [0; 4],
        rr: [0; 4],
        full: 0,
        gip: 0,
        cr: registers::CR_RESET,
        brdip: false,
        // UNCERTAIN(imx8-mu.md §2.1): PM has no reset value in the sheet
        // ("—"); it shows the peer's mode, and a core that just came out of
        // reset runs, so the model starts in Run.
        power: PowerMode::Run,
        injected: 0,
    };
}

/// `CR` bits a write stores on side A: enables, `BRDIE`, `BHR`, flags
/// (`GIRn` and `MUR` are handled separately; reserved bits read 0).
const CR_WRITABLE_A: u32 =
    CR_GIE_MASK | CR_RIE_MASK | CR_TIE_MASK | (1 << 6) | (1 << 4) | FLAGS_MASK;
/// `CR` bits a write stores on side B: no `BRDIE`, no `MUR` (8MM B side:
/// `FSL_FEATURE_MU_NO_MUR = 1`), bit 4 is `HRM` (sheet §2.2).
const CR_WRITABLE_B: u32 = CR_GIE_MASK | CR_RIE_MASK | CR_TIE_MASK | (1 << 4) | FLAGS_MASK;
const CR_MUR: u32 = 1 << 5;
const CR_BRDIE: u32 = 1 << 6;
const SR_BRDIP: u32 = 1 << 9;
const SR_PM_SHIFT: u32 = 5;

/// Spreads a channel bitset (bit n = channel n) into a reversed 4-bit
/// register field whose channel 0 sits at `top`.
const fn to_field(channels: u8, top: usize) -> u32 {
    let c = channels as u32;
    let nibble =
        ((c & 0b0001) << 3) | ((c & 0b0010) << 1) | ((c & 0b0100) >> 1) | ((c & 0b1000) >> 3);
    nibble << (top - 3)
}

const fn from_field(raw: u32, top: usize) -> u8 {
    // channels_of returns at most 4 bits.
    registers::channels_of(raw, top) as u8
}

/// The whole peripheral: both sides plus the counters.
#[derive(Debug)]
struct Model {
    sides: [SideState; 2],
    stats: SimStats,
    faults: Injector,
}

impl Model {
    const fn new() -> Self {
        Self {
            sides: [SideState::RESET; 2],
            stats: SimStats {
                unknown_reads: 0,
                unknown_writes: 0,
                overwrites: [0; 2],
                stale_reads: [0; 2],
                read_only_writes: 0,
                resets: 0,
            },
            faults: Injector::new(),
        }
    }

    fn side(&self, side: Side) -> &SideState {
        &self.sides[side.index()]
    }

    fn side_mut(&mut self, side: Side) -> &mut SideState {
        &mut self.sides[side.index()]
    }

    /// `SR` of `side` as the hardware composes it (no side effects).
    fn sr(&self, side: Side) -> u32 {
        let me = self.side(side);
        let peer = self.side(side.peer());
        let gip = to_field(me.gip, registers::GIP_TOP);
        let rf = to_field(me.full, registers::RF_TOP);
        // TEn = 1 while the peer's RRn is empty.
        let te = to_field(!peer.full & 0xF, registers::TE_TOP);
        let brdip = if side == Side::A && me.brdip {
            SR_BRDIP
        } else {
            0
        };
        let pm = u32::from(peer.power.bits()) << SR_PM_SHIFT;
        let flags = peer.cr & FLAGS_MASK;
        gip | rf | te | brdip | pm | flags | me.injected
    }

    fn line(&self, side: Side) -> bool {
        let me = self.side(side);
        // A muted receive event (fault injection: a dropped interrupt) is
        // in SR but does not reach the line.
        let muted = self.faults.muted(side.index() as u8) as u8 & me.full;
        let muted = to_field(muted, registers::RF_TOP);
        let sr = self.sr(side) & !muted;
        let brdi = side == Side::A && me.brdip && me.cr & CR_BRDIE != 0;
        sr & me.cr & EVENT_MASK != 0 || brdi
    }

    /// Decodes an offset: `None` for unknown or misaligned ones.
    fn decode(offset: usize) -> Option<Reg> {
        match offset {
            0x00 | 0x04 | 0x08 | 0x0C => Some(Reg::Tr((offset / 4) as u8)),
            0x10 | 0x14 | 0x18 | 0x1C => Some(Reg::Rr(((offset - 0x10) / 4) as u8)),
            SR_OFFSET => Some(Reg::Sr),
            CR_OFFSET => Some(Reg::Cr),
            _ => None,
        }
    }

    fn read(&mut self, side: Side, offset: usize) -> u32 {
        self.tick_faults();
        match Self::decode(offset) {
            // UNCERTAIN(imx8-mu.md §2, verification log "TR read-back
            // behaviour"): the sheet's table says TR "reads back last
            // value"; the model returns the last value written.
            Some(Reg::Tr(n)) => self.side(side).tr[usize::from(n)],
            Some(Reg::Rr(n)) => {
                let bit = 1u8 << n;
                let me = self.side_mut(side);
                let word = me.rr[usize::from(n)];
                if me.full & bit != 0 {
                    // Pop: RFn falls here, the peer's TEn rises (§2.4).
                    me.full &= !bit;
                    self.faults.unmute(side.index() as u8, u64::from(bit));
                } else {
                    // UNCERTAIN(imx8-mu.md §2.4): reading RRn while RFn = 0
                    // returns the stale value and has no other effect
                    // ([inferred] in the sheet).
                    self.stats.stale_reads[side.index()] += 1;
                }
                word
            }
            Some(Reg::Sr) => self.sr(side),
            Some(Reg::Cr) => self.side(side).cr,
            None => {
                self.stats.unknown_reads += 1;
                0
            }
        }
    }

    fn write(&mut self, side: Side, offset: usize, value: u32) {
        self.tick_faults();
        match Self::decode(offset) {
            Some(Reg::Tr(n)) => {
                self.side_mut(side).tr[usize::from(n)] = value;
                self.send_doorbell(Target::new(side.peer().index() as u8, n), value);
            }
            Some(Reg::Rr(_)) => self.stats.read_only_writes += 1,
            Some(Reg::Sr) => self.write_sr(side, value),
            Some(Reg::Cr) => self.write_cr(side, value),
            None => self.stats.unknown_writes += 1,
        }
    }

    fn write_sr(&mut self, side: Side, value: u32) {
        // GIPn: write-1-to-clear (§2.3, [src]).
        let clear = from_field(value & SR_GIP_MASK, registers::GIP_TOP) & self.side(side).gip;
        self.side_mut(side).gip &= !clear;
        // UNCERTAIN(imx8-mu.md §2.2): the requester's GIRn clears at once
        // when this side clears GIPn ([inferred] from the SDK's busy check;
        // the exact timing is not documented).
        self.side_mut(side.peer()).cr &= !to_field(clear, registers::GIR_TOP);
        // UNCERTAIN(imx8-mu.md §2.3): BRDIP is write-1-to-clear on side A
        // ([inferred]; the 8MM SDK never clears it).
        if side == Side::A && value & SR_BRDIP != 0 {
            self.side_mut(side).brdip = false;
        }
        // UNCERTAIN(imx8-mu.md §2.3): writes to every other SR bit have no
        // effect ([inferred]): TE/RF/PM/F/EP/FUP/RS are hardware-managed.
    }

    fn write_cr(&mut self, side: Side, value: u32) {
        if side == Side::A && value & CR_MUR != 0 {
            // UNCERTAIN(imx8-mu.md §2.2, §8 item 6): MUR returns *both*
            // sides' registers (TR/RR/SR/CR) to reset values ([UNVERIFIED]).
            // MUR self-clears; the rest of this write is discarded with the
            // reset. The cores' power modes are not MU state and stay.
            let powers = [self.sides[0].power, self.sides[1].power];
            self.sides = [SideState::RESET; 2];
            self.sides[0].power = powers[0];
            self.sides[1].power = powers[1];
            self.stats.resets += 1;
            self.faults.clear();
            return;
        }
        let writable = match side {
            Side::A => CR_WRITABLE_A,
            Side::B => CR_WRITABLE_B,
        };
        let old_gir = self.side(side).cr & CR_GIR_MASK;
        // UNCERTAIN(imx8-mu.md §2.2): writing 0 to a GIRn bit does not
        // cancel a pending request; only the peer's GIPn clear does
        // ([inferred]: the SDK masks GIR to 0 in every CR write, which would
        // cancel requests otherwise).
        let gir = old_gir | (value & CR_GIR_MASK);
        let rung = from_field(gir & !old_gir, registers::GIR_TOP);
        self.side_mut(side).cr = (value & writable) | gir;
        self.side_mut(side.peer()).gip |= rung;
    }

    fn inject(&mut self, side: Side, bits: u32) {
        let me = self.side_mut(side);
        me.gip |= from_field(bits & SR_GIP_MASK, registers::GIP_TOP);
        if side == Side::A && bits & SR_BRDIP != 0 {
            me.brdip = true;
        }
        let latched = SR_GIP_MASK | if side == Side::A { SR_BRDIP } else { 0 };
        me.injected |= bits & !(latched | SR_RF_MASK | SR_TE_MASK);
    }
}

ipc_traits::doorbell_faults! {
    /// Seeded doorbell faults on MU channels (fault injection; all off by
    /// default), for [`Sim::set_faults`]. Only channels in `channels` are
    /// affected, in both directions.
    pub struct Faults {
        /// The channels faults apply to (bit n = channel n).
        pub channels: u8,
    }
}

/// The receive registers of both sides, as the fault engine sees them: a
/// [`Target`] is channel `slot` of receiving side `unit` (0 = A, 1 = B).
struct Receive<'a> {
    sides: &'a mut [SideState; 2],
    overwrites: &'a mut [u32; 2],
}

impl Receive<'_> {
    fn at(&mut self, to: Target) -> Option<(&mut SideState, u8)> {
        let bit = (to.slot < registers::CHANNELS).then(|| 1u8 << to.slot)?;
        Some((self.sides.get_mut(usize::from(to.unit))?, bit))
    }
}

impl Receivers for Receive<'_> {
    fn room(&self, to: Target) -> Room {
        match self.sides.get(usize::from(to.unit)) {
            Some(me) if to.slot < registers::CHANNELS => {
                Room::register(me.full & (1 << to.slot) == 0)
            }
            _ => Room::NONE,
        }
    }

    /// The hardware transfer of a `TRn` write from the peer (§2.4).
    fn land(&mut self, to: Target, word: u32) {
        let Some((me, bit)) = self.at(to) else { return };
        let overwrote = me.full & bit != 0;
        // Silicon: a write while TEn = 0 overwrites the unread word (§2.4).
        // The model does the same and counts it against the sender.
        me.rr[usize::from(to.slot)] = word;
        me.full |= bit;
        if overwrote {
            self.overwrites[usize::from(to.unit ^ 1)] += 1;
        }
    }

    /// `RFn` rises over the stale `RRn`.
    fn phantom(&mut self, to: Target) {
        if let Some((me, bit)) = self.at(to) {
            me.full |= bit;
        }
    }
}

impl FaultModel for Model {
    type Rx<'a> = Receive<'a>;

    /// The fault engine and the receive registers it drives, borrowed
    /// apart.
    fn split(&mut self) -> (&mut Injector, Receive<'_>) {
        let rx = Receive {
            sides: &mut self.sides,
            overwrites: &mut self.stats.overwrites,
        };
        (&mut self.faults, rx)
    }
}

#[derive(Debug, Clone, Copy)]
enum Reg {
    Tr(u8),
    Rr(u8),
    Sr,
    Cr,
}

/// Every model [`Sim::new`] created (see the module docs on lifetimes).
static LIVE_MODELS: Mutex<Vec<&'static Mutex<Model>>> = Mutex::new(Vec::new());

fn lock(model: &Mutex<Model>) -> MutexGuard<'_, Model> {
    // A test that panicked while holding the lock leaves a consistent model
    // (every update is a few field writes); keep using it.
    model.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A simulated MU: both sides, one model. `Copy`: every copy is the same
/// peripheral.
#[derive(Clone, Copy)]
pub struct Sim {
    model: &'static Mutex<Model>,
}

impl core::fmt::Debug for Sim {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Sim")
            .field("model", &*lock(self.model))
            .finish()
    }
}

impl Default for Sim {
    fn default() -> Self {
        Self::new()
    }
}

impl Sim {
    /// A fresh MU at reset values, both cores in Run.
    ///
    /// The model lives until the process ends (see the module docs).
    #[must_use]
    pub fn new() -> Self {
        let model: &'static Mutex<Model> = Box::leak(Box::new(Mutex::new(Model::new())));
        // Keep the leaked model reachable from a static: it is meant to live
        // for the whole test process, and leak checkers (Miri) then see it
        // as owned rather than lost.
        LIVE_MODELS
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(model);
        Self { model }
    }

    /// The register view of `side`, for [`Mu::new`](crate::Mu::new).
    #[must_use]
    pub fn side(self, side: Side) -> SimRegs {
        SimRegs {
            model: self.model,
            side,
        }
    }

    /// The level of `side`'s MU interrupt line: high while any event is
    /// pending and enabled.
    #[must_use]
    pub fn line(self, side: Side) -> bool {
        lock(self.model).line(side)
    }

    /// Sets the power mode of `side`'s core; the peer reads it in its
    /// `SR.PM` (sheet §2.1). The model does not change it by itself: the
    /// test (or fixture) plays the core's firmware.
    pub fn set_power_mode(self, side: Side, mode: PowerMode) {
        lock(self.model).side_mut(side).power = mode;
    }

    /// The power mode of `side`'s core.
    #[must_use]
    pub fn power_mode(self, side: Side) -> PowerMode {
        lock(self.model).side(side).power
    }

    /// Forces status bits on `side`'s `SR`, to show the driver states it
    /// does not expect.
    ///
    /// - `GIPn` bits are latched as if the peer had rung (a doorbell nobody
    ///   requested) and clear by write-1-to-clear as usual; on side A,
    ///   `BRDIP` is latched likewise.
    /// - `RFn`/`TEn` bits are ignored: they mirror data-register state, which
    ///   only register accesses change.
    /// - Every other bit (reserved bits, `EP`, `FUP`, `RS`, `PM`, `F`) is
    ///   ORed into every later `SR` read until [`Sim::clear_injected`].
    ///   `PM` bits ORed onto Run (0) give any encoding, including the
    ///   reserved 2.
    pub fn inject_status(self, side: Side, bits: u32) {
        lock(self.model).inject(side, bits);
    }

    /// Removes the ORed-in bits of [`Sim::inject_status`].
    pub fn clear_injected(self, side: Side) {
        lock(self.model).side_mut(side).injected = 0;
    }

    /// Reads a register of `side` without side effects (a receive register
    /// is not popped; unknown offsets are not counted and read 0).
    #[must_use]
    pub fn peek(self, side: Side, offset: usize) -> u32 {
        let model = lock(self.model);
        match Model::decode(offset) {
            Some(Reg::Tr(n)) => model.side(side).tr[usize::from(n)],
            Some(Reg::Rr(n)) => model.side(side).rr[usize::from(n)],
            Some(Reg::Sr) => model.sr(side),
            Some(Reg::Cr) => model.side(side).cr,
            None => 0,
        }
    }

    /// Arms (or, with `Faults::default()`, disarms) seeded doorbell faults.
    /// The generator restarts from `faults.seed`; counters and words still
    /// held are kept.
    pub fn set_faults(self, faults: Faults) {
        let targets = Targets::new(0b11, u64::from(faults.channels));
        lock(self.model).faults.arm(faults.rates(), targets);
    }

    /// What the armed faults did so far.
    #[must_use]
    pub fn fault_counters(self) -> FaultCounters {
        lock(self.model).faults.counters()
    }

    /// Lands every held word now (delayed ones and duplicate copies), in
    /// order, each as soon as its `RRn` is empty; returns how many landed.
    /// Words whose register is still full stay held and land at a later
    /// access once it is read.
    pub fn deliver_delayed(self) -> u32 {
        lock(self.model).deliver_held()
    }

    /// How many words are held (delayed or duplicate copies not yet landed).
    #[must_use]
    pub fn held_words(self) -> usize {
        lock(self.model).faults.held()
    }

    /// The counters so far.
    #[must_use]
    pub fn stats(self) -> SimStats {
        lock(self.model).stats
    }
}

/// The register view of one side: implements [`Regs32`] over the model.
/// `Copy`, `Send`, `Sync` and `'static`.
#[derive(Clone, Copy)]
pub struct SimRegs {
    model: &'static Mutex<Model>,
    side: Side,
}

impl core::fmt::Debug for SimRegs {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "SimRegs({:?})", self.side)
    }
}

impl SimRegs {
    /// Which side this view is.
    #[must_use]
    pub const fn which(self) -> Side {
        self.side
    }

    /// The simulated MU this view belongs to.
    #[must_use]
    pub const fn sim(self) -> Sim {
        Sim { model: self.model }
    }

    /// The level of this side's interrupt line.
    #[must_use]
    pub fn line(self) -> bool {
        lock(self.model).line(self.side)
    }
}

// SAFETY: (1) every offset reaches the same model register each time (one
// `match` in `Model::decode`) and no memory outside the model; (2) each access
// is one locked model operation, never merged, split or elided, and the mutex
// keeps them in program order; (3) the mutex lock/unlock pair orders every
// earlier normal-memory write of this thread before the model update, and the
// peer's later lock acquires it; (4) unknown offsets read 0 and drop writes.
unsafe impl Regs32 for SimRegs {
    fn read(self, offset: usize) -> u32 {
        lock(self.model).read(self.side, offset)
    }

    fn write(self, offset: usize, value: u32) {
        lock(self.model).write(self.side, offset, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registers::{bits, gie, gip, gir, rf, rie, rr_offset, te, tie, tr_offset};
    use ipc_traits::sim_faults::Rates;

    fn regs() -> (Sim, SimRegs, SimRegs) {
        let sim = Sim::new();
        (sim, sim.side(Side::A), sim.side(Side::B))
    }

    #[test]
    fn reset_values_match_sheet() {
        let (sim, a, b) = regs();
        for r in [a, b] {
            assert_eq!(r.read(SR_OFFSET), registers::SR_RESET);
            assert_eq!(r.read(CR_OFFSET), registers::CR_RESET);
            assert!(!r.line());
        }
        assert_eq!(sim.stats(), SimStats::default());
    }

    #[test]
    fn handshake_both_directions_every_channel() {
        let (_, a, b) = regs();
        for (tx, rx) in [(a, b), (b, a)] {
            for n in 0..4 {
                tx.write(tr_offset(n), 0x100 + u32::from(n));
                assert_eq!(tx.read(SR_OFFSET) & bits(te(n)), 0, "TE{n} falls on write");
                assert_ne!(rx.read(SR_OFFSET) & bits(rf(n)), 0, "peer RF{n} rises");
                // Other channels untouched.
                assert_eq!(rx.read(SR_OFFSET) & SR_RF_MASK, bits(rf(n)));
                assert_eq!(rx.read(rr_offset(n)), 0x100 + u32::from(n));
                assert_eq!(rx.read(SR_OFFSET) & bits(rf(n)), 0, "read pops RF{n}");
                assert_ne!(tx.read(SR_OFFSET) & bits(te(n)), 0, "sender TE{n} rises");
            }
        }
    }

    #[test]
    fn silicon_overwrites_when_te_is_ignored() {
        let (sim, a, b) = regs();
        a.write(tr_offset(1), 1);
        a.write(tr_offset(1), 2);
        assert_eq!(b.read(rr_offset(1)), 2, "the first word is lost on silicon");
        assert_eq!(sim.stats().overwrites, [1, 0]);
    }

    #[test]
    fn lines_follow_enabled_pending_events() {
        let (sim, a, b) = regs();
        a.write(tr_offset(2), 5);
        assert!(!b.line(), "RF2 without RIE2");
        b.write(CR_OFFSET, bits(rie(2)));
        assert!(b.line());
        assert!(!a.line(), "side A has nothing enabled");
        a.write(CR_OFFSET, bits(tie(2)));
        assert!(!a.line(), "TE2 = 0 while the word is unread");
        let _ = b.read(rr_offset(2));
        assert!(!b.line(), "level falls with RF2");
        assert!(a.line(), "TE2 rises with the read");
        a.write(CR_OFFSET, 0);
        assert!(!sim.line(Side::A));
    }

    #[test]
    fn gir_rings_peer_gip_and_w1c_acknowledges() {
        let (_, a, b) = regs();
        b.write(CR_OFFSET, bits(gie(3)));
        a.write(CR_OFFSET, bits(gir(3)));
        assert_eq!(b.read(SR_OFFSET) & SR_GIP_MASK, bits(gip(3)));
        assert!(b.line());
        // Writing 0 to GIP or 1 to other GIP bits changes nothing.
        b.write(SR_OFFSET, bits(gip(0)));
        assert_eq!(b.read(SR_OFFSET) & SR_GIP_MASK, bits(gip(3)));
        b.write(SR_OFFSET, bits(gip(3)));
        assert_eq!(b.read(SR_OFFSET) & SR_GIP_MASK, 0);
        assert!(!b.line());
    }

    #[test]
    fn uncertain_gir_clears_when_peer_acks_gip() {
        let (_, a, b) = regs();
        a.write(CR_OFFSET, bits(gir(1)));
        assert_eq!(
            a.read(CR_OFFSET) & CR_GIR_MASK,
            bits(gir(1)),
            "GIR stays set until acknowledged"
        );
        b.write(SR_OFFSET, bits(gip(1)));
        assert_eq!(
            a.read(CR_OFFSET) & CR_GIR_MASK,
            0,
            "cleared at once by the peer's W1C"
        );
    }

    #[test]
    fn uncertain_writing_zero_to_gir_does_not_cancel() {
        let (_, a, b) = regs();
        a.write(CR_OFFSET, bits(gir(0)));
        a.write(CR_OFFSET, 0);
        assert_eq!(a.read(CR_OFFSET) & CR_GIR_MASK, bits(gir(0)));
        assert_ne!(b.read(SR_OFFSET) & bits(gip(0)), 0);
        // Writing 1 again while pending does not ring twice: one W1C clears.
        a.write(CR_OFFSET, bits(gir(0)));
        b.write(SR_OFFSET, bits(gip(0)));
        assert_eq!(b.read(SR_OFFSET) & SR_GIP_MASK, 0);
    }

    #[test]
    fn uncertain_other_sr_bits_ignore_writes() {
        let (_, a, b) = regs();
        a.write(tr_offset(0), 9);
        a.write(CR_OFFSET, 0b101); // flags to the peer
        let before = b.read(SR_OFFSET);
        b.write(SR_OFFSET, !SR_GIP_MASK);
        b.write(SR_OFFSET, 0);
        assert_eq!(b.read(SR_OFFSET), before);
        assert_eq!(before & FLAGS_MASK, 0b101);
    }

    #[test]
    fn uncertain_brdip_is_w1c_on_side_a_only() {
        let (sim, a, b) = regs();
        sim.inject_status(Side::A, SR_BRDIP);
        assert_ne!(a.read(SR_OFFSET) & SR_BRDIP, 0);
        assert!(!a.line(), "BRDIP without BRDIE");
        a.write(CR_OFFSET, CR_BRDIE);
        assert!(a.line());
        a.write(SR_OFFSET, SR_BRDIP);
        assert_eq!(a.read(SR_OFFSET) & SR_BRDIP, 0);
        assert!(!a.line());
        // Side B has no BRDIE: the bit is not stored.
        b.write(CR_OFFSET, CR_BRDIE);
        assert_eq!(b.read(CR_OFFSET), 0);
    }

    #[test]
    fn uncertain_stale_rr_read_returns_old_value_without_effect() {
        let (sim, a, b) = regs();
        a.write(tr_offset(3), 77);
        assert_eq!(b.read(rr_offset(3)), 77);
        let sr_a = a.read(SR_OFFSET);
        assert_eq!(b.read(rr_offset(3)), 77, "stale value");
        assert_eq!(a.read(SR_OFFSET), sr_a, "no effect on the sender");
        assert_eq!(sim.stats().stale_reads, [0, 1]);
    }

    #[test]
    fn uncertain_tr_reads_back_last_written_value() {
        let (_, a, b) = regs();
        a.write(tr_offset(2), 0xCAFE);
        assert_eq!(a.read(tr_offset(2)), 0xCAFE);
        let _ = b.read(rr_offset(2));
        assert_eq!(a.read(tr_offset(2)), 0xCAFE, "still after the peer read it");
    }

    #[test]
    fn uncertain_mur_resets_both_sides() {
        let (sim, a, b) = regs();
        a.write(tr_offset(0), 1);
        b.write(tr_offset(1), 2);
        b.write(CR_OFFSET, bits(rie(0)) | bits(gir(2)));
        sim.set_power_mode(Side::B, PowerMode::Wait);
        a.write(CR_OFFSET, CR_MUR | bits(tie(0)));
        for r in [a, b] {
            assert_eq!(r.read(CR_OFFSET), 0, "CR reset, MUR self-cleared");
        }
        assert_eq!(a.read(SR_OFFSET) & !(0b11 << 5), registers::SR_RESET);
        assert_eq!(b.read(SR_OFFSET), registers::SR_RESET);
        assert_eq!(
            sim.power_mode(Side::B),
            PowerMode::Wait,
            "core power is not MU state"
        );
        assert_eq!(sim.stats().resets, 1);
        // Side B has no MUR (sheet §2.2): the bit is ignored.
        b.write(tr_offset(0), 3);
        b.write(CR_OFFSET, CR_MUR);
        assert_ne!(a.read(SR_OFFSET) & bits(rf(0)), 0);
        assert_eq!(sim.stats().resets, 1);
    }

    #[test]
    fn uncertain_power_mode_resets_to_run() {
        let (sim, a, b) = regs();
        assert_eq!(sim.power_mode(Side::A), PowerMode::Run);
        assert_eq!(a.read(SR_OFFSET) & (0b11 << 5), 0);
        sim.set_power_mode(Side::A, PowerMode::Stop);
        assert_eq!(
            b.read(SR_OFFSET) & (0b11 << 5),
            3 << 5,
            "the peer sees side A's mode"
        );
        assert_eq!(a.read(SR_OFFSET) & (0b11 << 5), 0);
    }

    #[test]
    fn unknown_offsets_read_zero_and_are_counted() {
        let (sim, a, _) = regs();
        assert_eq!(a.read(0x28), 0);
        assert_eq!(a.read(0x21), 0);
        assert_eq!(a.read(usize::MAX), 0);
        a.write(0x100, 1);
        a.write(rr_offset(0), 1);
        let s = sim.stats();
        assert_eq!(
            (s.unknown_reads, s.unknown_writes, s.read_only_writes),
            (3, 1, 1)
        );
        assert_eq!(
            a.read(SR_OFFSET),
            registers::SR_RESET,
            "no write reached a register"
        );
    }

    #[test]
    fn injected_bits_are_or_ed_until_cleared() {
        let (sim, a, _) = regs();
        sim.inject_status(Side::A, (1 << 15) | SR_RF_MASK | (2 << 5));
        assert_eq!(
            a.read(SR_OFFSET),
            registers::SR_RESET | (1 << 15) | (2 << 5),
            "RF ignored"
        );
        sim.clear_injected(Side::A);
        assert_eq!(a.read(SR_OFFSET), registers::SR_RESET);
        sim.inject_status(Side::A, bits(gip(2)));
        a.write(SR_OFFSET, bits(gip(2)));
        assert_eq!(
            a.read(SR_OFFSET),
            registers::SR_RESET,
            "injected GIP clears by W1C"
        );
    }

    #[test]
    fn peek_has_no_side_effects() {
        let (sim, a, b) = regs();
        a.write(tr_offset(1), 42);
        assert_eq!(sim.peek(Side::B, rr_offset(1)), 42);
        assert_ne!(sim.peek(Side::B, SR_OFFSET) & bits(rf(1)), 0, "not popped");
        assert_eq!(b.read(rr_offset(1)), 42);
        assert_eq!(sim.peek(Side::A, 0x40), 0);
        assert_eq!(sim.stats().unknown_reads, 0);
    }

    fn faulty(f: Faults) -> (Sim, SimRegs, SimRegs) {
        let (sim, a, b) = regs();
        sim.set_faults(Faults {
            channels: 0b0010,
            ..f
        });
        (sim, a, b)
    }

    fn rf1(r: SimRegs) -> bool {
        r.read(SR_OFFSET) & bits(rf(1)) != 0
    }

    #[test]
    fn faults_are_off_by_default_and_only_on_chosen_channels() {
        let (sim, a, b) = regs();
        for i in 0..100 {
            a.write(tr_offset(1), i);
            assert_eq!(b.read(rr_offset(1)), i);
        }
        assert_eq!(sim.fault_counters(), FaultCounters::default());
        // Channel 0 is not in the mask: every word arrives.
        let (sim, a, b) = faulty(Faults {
            drop_one_in: 1,
            ..Faults::default()
        });
        a.write(tr_offset(0), 5);
        assert_eq!(b.read(rr_offset(0)), 5);
        a.write(tr_offset(1), 6);
        assert!(!rf1(b), "channel 1 words are all dropped");
        assert_eq!(sim.fault_counters().dropped, 1);
    }

    #[test]
    fn a_dropped_word_never_arrives_and_the_sender_sees_te() {
        let (sim, a, b) = faulty(Faults {
            drop_one_in: 1,
            ..Faults::default()
        });
        a.write(tr_offset(1), 0x1_0000);
        assert_ne!(a.read(SR_OFFSET) & bits(te(1)), 0);
        assert!(!rf1(b));
        assert_eq!(sim.held_words(), 0);
    }

    #[test]
    fn a_muted_word_is_in_sr_but_not_on_the_line_until_read() {
        let (sim, a, b) = faulty(Faults {
            mute_one_in: 1,
            ..Faults::default()
        });
        b.write(CR_OFFSET, bits(rie(1)));
        a.write(tr_offset(1), 7);
        assert!(rf1(b), "the word is there");
        assert!(!sim.line(Side::B), "but the interrupt was dropped");
        assert_eq!(b.read(rr_offset(1)), 7);
        // Unmuted words raise the line again.
        sim.set_faults(Faults::default());
        a.write(tr_offset(1), 8);
        assert!(sim.line(Side::B));
        assert_eq!(sim.fault_counters().muted, 1);
    }

    #[test]
    fn a_duplicated_word_lands_again_after_the_first_is_read() {
        let (sim, a, b) = faulty(Faults {
            duplicate_one_in: 1,
            ..Faults::default()
        });
        a.write(tr_offset(1), 0x2_0000);
        assert_eq!(sim.held_words(), 1);
        assert_eq!(b.read(rr_offset(1)), 0x2_0000);
        // The copy lands at the next access, since RR1 is empty now.
        assert!(rf1(b));
        assert_eq!(b.read(rr_offset(1)), 0x2_0000);
        assert!(!rf1(b));
        let c = sim.fault_counters();
        assert_eq!((c.duplicated, c.late_deliveries), (1, 1));
        assert_eq!(sim.stats().overwrites, [0, 0], "a copy never overwrites");
    }

    #[test]
    fn a_delayed_word_lands_after_n_accesses_or_on_request() {
        let (sim, a, b) = faulty(Faults {
            delay_one_in: 1,
            delay_accesses: 5,
            ..Faults::default()
        });
        a.write(tr_offset(1), 1); // access 1, held until access 6
        for _ in 0..4 {
            assert!(!rf1(b), "not yet"); // accesses 2..=5
        }
        assert!(rf1(b), "landed at access 6");
        assert_eq!(b.read(rr_offset(1)), 1);
        a.write(tr_offset(1), 2);
        assert_eq!(sim.held_words(), 1);
        sim.set_faults(Faults::default());
        assert_eq!(sim.deliver_delayed(), 1);
        assert_eq!(b.read(rr_offset(1)), 2);
        let c = sim.fault_counters();
        assert_eq!((c.delayed, c.late_deliveries), (2, 2));
    }

    #[test]
    fn spurious_events_only_fill_empty_registers_and_are_counted() {
        let (sim, a, b) = faulty(Faults {
            spurious_one_in: 3,
            seed: 11,
            ..Faults::default()
        });
        let mut seen = 0;
        let mut drain = || {
            for r in [a, b] {
                if rf1(r) {
                    let _ = r.read(rr_offset(1));
                    seen += 1;
                }
            }
        };
        for _ in 0..300 {
            drain();
        }
        // Events raised by the last accesses: collect them with faults off.
        sim.set_faults(Faults::default());
        drain();
        let c = sim.fault_counters();
        assert!(c.spurious > 10 && c.garbage > 10, "{c:?}");
        assert_eq!(seen, c.spurious + c.garbage);
        assert_eq!(sim.stats().overwrites, [0, 0]);
    }

    #[test]
    fn the_same_seed_gives_the_same_faults() {
        let run = |seed| {
            let (sim, a, b) = faulty(Faults::default().with_rates(Rates::every_kind(seed)));
            let mut got = Vec::new();
            for i in 0..200u32 {
                if a.read(SR_OFFSET) & bits(te(1)) != 0 {
                    a.write(tr_offset(1), i);
                }
                if rf1(b) {
                    got.push(b.read(rr_offset(1)));
                }
            }
            (got, sim.fault_counters())
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
    }

    #[test]
    fn views_are_send_sync_copy_static() {
        fn check<T: Send + Sync + Copy + 'static>() {}
        check::<SimRegs>();
        check::<Sim>();
    }
}
