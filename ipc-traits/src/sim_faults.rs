//! Seeded doorbell fault injection for the backends' behavioural models
//! (feature `sim`, host tests only: links `std`).
//!
//! Every backend's `sim` model can make the wire between two cores
//! misbehave on purpose, so that the layers above (the rpmsg link, the
//! conformance suites) can show that they survive it. The faults are
//! failures of the system *around* a mailbox: a lost write, an interrupt
//! controller that misses an edge, a peer firmware that glitches. No
//! hardware sheet describes them; the register behaviour of each model
//! stays exactly what its sheet says. This module holds the one
//! implementation the models share; each model keeps only what is specific
//! to its registers: which write is a doorbell, where its word lands and how
//! a receive event raises a line.
//!
//! # The faults
//!
//! Each kind is drawn "one in N" per event from a seeded generator
//! ([`Rates`]; 0 means never), and counted in [`FaultCounters`]:
//!
//! - **dropped doorbell** ([`Rates::drop_one_in`]): a doorbell write is lost;
//!   nothing reaches the receiver.
//! - **dropped interrupt** ([`Rates::mute_one_in`]): the word lands and the
//!   status registers show it, but the receive event does not reach the
//!   receiver's interrupt line until another word lands at the same place or
//!   the model clears the event ([`Injector::muted`], [`Injector::unmute`]).
//! - **duplicated doorbell** ([`Rates::duplicate_one_in`]): the word lands,
//!   and a copy lands again as soon as there is room for it.
//! - **delayed doorbell** ([`Rates::delay_one_in`]): the word is held back
//!   and lands [`Rates::delay_accesses`] register accesses later (accesses by
//!   any core), or when the test calls [`Injector::deliver_held`].
//! - **spurious interrupt** ([`Rates::spurious_one_in`], drawn on every
//!   register access): a receive event nobody sent. Where a place carries a
//!   data word, half of them are *phantoms* (the receive event with no new
//!   word; [`FaultCounters::spurious`]) and half push a random word
//!   (*garbage*; [`FaultCounters::garbage`]). Where it carries no word (a
//!   mailbox bit), all of them are phantoms.
//!
//! Faults apply only to the places a test chose ([`Targets`]); doorbells to
//! other places always land at once.
//!
//! # Invariants
//!
//! - **Determinism**: the same seed and the same sequence of register
//!   accesses give the same faults. The generator is SplitMix64 and draws
//!   only while a place is targeted or a word is held.
//! - **Words the model moves by itself never take a queue's last free
//!   slot**: held words and garbage land in a multi-word queue only while at
//!   least two slots are free, so a sender that has just seen room can
//!   always write without the hardware discarding its word. A one-word place
//!   (a data register, a mailbox bit) takes them only while empty
//!   ([`Room::takes_moved_word`]).
//! - **Phantoms only appear at empty places** ([`Room::is_empty`]): a
//!   spurious event never hides or overwrites a real word.
//! - **Held words land in order**: a later word for the same place waits
//!   behind an earlier one.
//!
//! # For backend authors
//!
//! 1. Declare the backend's public `Faults` with
//!    [`doorbell_faults!`](crate::doorbell_faults): the seed and rates of
//!    [`Rates`] plus the backend's own target fields
//!    (channels, queues, cores and bits), and re-export [`FaultCounters`].
//! 2. Name every place a doorbell word can land by a [`Target`] (a unit such
//!    as a side, block or core, and a slot such as a channel, queue or
//!    mailbox bit), and implement [`Receivers`] on a view of the register
//!    state: the room at a place, the hardware transfer of a word, a phantom
//!    receive event.
//! 3. Keep one [`Injector`] in the model and implement [`FaultModel`]
//!    (lend the injector and the view apart); route every doorbell write
//!    through [`FaultModel::send_doorbell`] and call
//!    [`FaultModel::tick_faults`] once per register access, before the
//!    access itself.
//! 4. Leave the slots of [`Injector::muted`] out of the interrupt line.
//!
//! # Examples
//!
//! A model with one data register per slot of one unit (an MU-like
//! channel: full or empty):
//!
//! ```
//! use ipc_traits::sim_faults::{Injector, Rates, Receivers, Room, Target, Targets};
//!
//! #[derive(Default)]
//! struct Regs {
//!     data: [Option<u32>; 4],
//! }
//!
//! impl Receivers for Regs {
//!     fn room(&self, to: Target) -> Room {
//!         let empty = self.data.get(usize::from(to.slot)).is_some_and(Option::is_none);
//!         Room::register(empty)
//!     }
//!     fn land(&mut self, to: Target, word: u32) {
//!         if let Some(d) = self.data.get_mut(usize::from(to.slot)) {
//!             *d = Some(word);
//!         }
//!     }
//!     fn phantom(&mut self, to: Target) {
//!         self.land(to, 0);
//!     }
//! }
//!
//! let mut regs = Regs::default();
//! let mut faults = Injector::new();
//! let ch1 = Target::new(0, 1);
//! faults.arm(
//!     Rates { delay_one_in: 1, delay_accesses: 2, ..Rates::default() },
//!     Targets { units: 0b1, slots: 0b10 },
//! );
//! faults.tick(&mut regs); // access 1: a doorbell write to channel 1 ...
//! faults.send(&mut regs, ch1, 7); // ... is held until access 3
//! faults.tick(&mut regs); // access 2
//! assert_eq!(regs.data[1], None);
//! faults.tick(&mut regs); // access 3
//! assert_eq!(regs.data[1], Some(7));
//! // Channel 0 is not targeted: its words land at once.
//! faults.send(&mut regs, Target::new(0, 0), 5);
//! assert_eq!(regs.data[0], Some(5));
//! assert_eq!(faults.counters().delayed, 1);
//! assert_eq!(faults.counters().late_deliveries, 1);
//! ```
#![deny(unsafe_code)]

extern crate std;

use std::vec::Vec;

crate::doorbell_faults! {
    /// The seed and the "one in N" rates of the doorbell faults, with no
    /// target fields: what [`Injector::arm`] takes.
    ///
    /// The backends' `Faults` (declared with
    /// [`doorbell_faults!`](crate::doorbell_faults)) carry the same fields
    /// next to their own target fields, and hand these over with their
    /// `rates()`.
    pub struct Rates {}
}

impl Rates {
    /// No faults (seed 0, every rate 0).
    pub const NONE: Self = Self {
        seed: 0,
        drop_one_in: 0,
        mute_one_in: 0,
        spurious_one_in: 0,
        duplicate_one_in: 0,
        delay_one_in: 0,
        delay_accesses: 0,
    };

    /// Every kind of fault at once, at rates that let traffic still flow
    /// (drop 1 in 3, mute 1 in 2, duplicate 1 in 4, delay 1 in 5 by 3
    /// accesses, spurious 1 in 7): for determinism and soak tests.
    #[must_use]
    pub const fn every_kind(seed: u64) -> Self {
        Self {
            seed,
            drop_one_in: 3,
            mute_one_in: 2,
            spurious_one_in: 7,
            duplicate_one_in: 4,
            delay_one_in: 5,
            delay_accesses: 3,
        }
    }
}

/// What the armed faults did so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct FaultCounters {
    /// Doorbell words lost ([`Rates::drop_one_in`]).
    pub dropped: u32,
    /// Doorbell words whose receive event did not reach the line
    /// ([`Rates::mute_one_in`]).
    pub muted: u32,
    /// Phantom receive events: the event with no new word (a stale data
    /// register, an empty queue, a mailbox bit nobody rang).
    pub spurious: u32,
    /// Random words that appeared at a place. Always 0 for models whose
    /// places carry no word ([`Receivers::CARRIES_WORDS`]).
    pub garbage: u32,
    /// Doorbell words delivered twice ([`Rates::duplicate_one_in`]).
    pub duplicated: u32,
    /// Doorbell words held back ([`Rates::delay_one_in`]).
    pub delayed: u32,
    /// Held words (delayed ones and duplicate copies) that have landed.
    pub late_deliveries: u32,
}

/// A place a doorbell word can land: a slot of a unit.
///
/// The model chooses the meaning: a unit is a receiving side, a processor
/// block or a core (0 when the model has one), a slot is a channel, a
/// queue or a mailbox bit (below 64).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Target {
    /// The unit (side, block, core).
    pub unit: u8,
    /// The slot in the unit (channel, queue, mailbox bit).
    pub slot: u8,
}

impl Target {
    /// Slot `slot` of unit `unit`.
    #[must_use]
    pub const fn new(unit: u8, slot: u8) -> Self {
        Self { unit, slot }
    }
}

/// The places faults apply to: every targeted slot of every targeted unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Targets {
    /// Targeted units (bit u = unit u).
    pub units: u64,
    /// Targeted slots (bit s = slot s), in each targeted unit.
    pub slots: u64,
}

impl Targets {
    /// Slots `slots` of units `units`.
    #[must_use]
    pub const fn new(units: u64, slots: u64) -> Self {
        Self { units, slots }
    }

    /// Whether `to` is targeted.
    #[must_use]
    pub const fn contains(self, to: Target) -> bool {
        self.units & bit(to.unit) != 0 && self.slots & bit(to.slot) != 0
    }

    /// Whether no place is targeted.
    #[must_use]
    pub const fn is_empty(self) -> bool {
        self.units == 0 || self.slots == 0
    }
}

/// How many words a place can take now, as its model sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Room {
    /// Free slots.
    pub free: u32,
    /// Capacity (1 for a data register or a mailbox bit, the FIFO depth for
    /// a queue, 0 for a place the model does not have).
    pub depth: u32,
}

impl Room {
    /// A place the model does not have: takes nothing.
    pub const NONE: Self = Self { free: 0, depth: 0 };

    /// A one-word place (a data register, a mailbox bit), `empty` or full.
    #[must_use]
    pub const fn register(empty: bool) -> Self {
        Self {
            free: empty as u32,
            depth: 1,
        }
    }

    /// A queue of `depth` words holding `len`.
    #[must_use]
    pub const fn fifo(len: u32, depth: u32) -> Self {
        Self {
            free: depth.saturating_sub(len),
            depth,
        }
    }

    /// Whether the place holds nothing (where a phantom event may appear).
    #[must_use]
    pub const fn is_empty(self) -> bool {
        self.depth > 0 && self.free >= self.depth
    }

    /// Whether a word the model moves by itself (a held word, garbage) may
    /// land: a queue keeps its last free slot for a real sender, a one-word
    /// place must be empty.
    #[must_use]
    pub const fn takes_moved_word(self) -> bool {
        if self.depth <= 1 {
            self.free >= 1
        } else {
            self.free >= 2
        }
    }
}

/// The receiving side of a model's registers, as the [`Injector`] drives
/// it: where a word lands, and how much room there is.
///
/// Implement it on a view of the model's register state that does not
/// include the injector itself (for example a struct of `&mut` borrows of
/// the other fields), so that the model can lend both at once.
pub trait Receivers {
    /// Whether places carry a data word. `false` (a mailbox bit): spurious
    /// events are all phantoms and [`FaultCounters::garbage`] stays 0.
    const CARRIES_WORDS: bool = true;

    /// The room at `to` now ([`Room::NONE`] for a place the model does not
    /// have).
    fn room(&self, to: Target) -> Room;

    /// The hardware effect of a doorbell word reaching `to` (what silicon
    /// does on the write, including its own overflow rules).
    fn land(&mut self, to: Target, word: u32);

    /// A receive event at `to` that brings no new word (a phantom doorbell);
    /// called only while `to` is empty.
    fn phantom(&mut self, to: Target);
}

/// A model that keeps an [`Injector`] next to its register state.
///
/// The model implements [`FaultModel::split`] only; the provided methods run
/// the injector over the model's [`Receivers`] view.
pub trait FaultModel {
    /// The register view the injector drives.
    type Rx<'a>: Receivers
    where
        Self: 'a;

    /// The injector and the register view, borrowed apart.
    fn split(&mut self) -> (&mut Injector, Self::Rx<'_>);

    /// A doorbell write ([`Injector::send`]).
    fn send_doorbell(&mut self, to: Target, word: u32) -> Delivery {
        let (faults, mut rx) = self.split();
        faults.send(&mut rx, to, word)
    }

    /// One register access goes by ([`Injector::tick`]).
    fn tick_faults(&mut self) {
        let (faults, mut rx) = self.split();
        faults.tick(&mut rx);
    }

    /// Lands every held word that has room ([`Injector::deliver_held`]).
    fn deliver_held(&mut self) -> u32 {
        let (faults, mut rx) = self.split();
        faults.deliver_held(&mut rx)
    }
}

/// What [`Injector::send`] did with a doorbell word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Delivery {
    /// It landed (through [`Receivers::land`]).
    Landed {
        /// Its receive event does not reach the line.
        muted: bool,
        /// A copy is held and lands again later.
        duplicated: bool,
    },
    /// It was lost.
    Dropped,
    /// It is held and lands later.
    Delayed,
}

impl Delivery {
    /// A word that landed with no fault.
    pub const CLEAN: Self = Self::Landed {
        muted: false,
        duplicated: false,
    };
}

/// A word on its way: delayed, or the copy of a duplicate.
#[derive(Debug, Clone, Copy)]
struct Held {
    to: Target,
    word: u32,
    /// The access count at which it may land.
    due: u64,
}

/// The fault engine of one model: the generator, the access clock, the
/// held words, the muted places and the counters. All off until
/// [`Injector::arm`].
#[derive(Debug, Clone)]
pub struct Injector {
    rates: Rates,
    targets: Targets,
    rng: u64,
    accesses: u64,
    held: Vec<Held>,
    /// Per unit: slots whose receive event does not reach the line.
    muted: Vec<u64>,
    counters: FaultCounters,
}

impl Default for Injector {
    fn default() -> Self {
        Self::new()
    }
}

/// Bit `n` of a 64-bit set (none for `n >= 64`).
const fn bit(n: u8) -> u64 {
    match 1u64.checked_shl(n as u32) {
        Some(b) => b,
        None => 0,
    }
}

impl Injector {
    /// An injector with every fault off and nothing held (`const`, for
    /// models built in a `const fn`).
    #[must_use]
    pub const fn new() -> Self {
        Self {
            rates: Rates {
                seed: 0,
                drop_one_in: 0,
                mute_one_in: 0,
                spurious_one_in: 0,
                duplicate_one_in: 0,
                delay_one_in: 0,
                delay_accesses: 0,
            },
            targets: Targets { units: 0, slots: 0 },
            rng: 0,
            accesses: 0,
            held: Vec::new(),
            muted: Vec::new(),
            counters: FaultCounters {
                dropped: 0,
                muted: 0,
                spurious: 0,
                garbage: 0,
                duplicated: 0,
                delayed: 0,
                late_deliveries: 0,
            },
        }
    }

    /// Arms `rates` on `targets` (or disarms, with no targets). The
    /// generator restarts from `rates.seed`; counters, held words and muted
    /// places are kept.
    pub fn arm(&mut self, rates: Rates, targets: Targets) {
        self.rates = rates;
        self.targets = targets;
        self.rng = rates.seed;
    }

    /// What the faults did so far.
    #[must_use]
    pub const fn counters(&self) -> FaultCounters {
        self.counters
    }

    /// How many words are held (delayed ones and duplicate copies not yet
    /// landed).
    #[must_use]
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Register accesses counted so far (the clock of delayed words; it runs
    /// only while a place is targeted or a word is held).
    #[must_use]
    pub const fn accesses(&self) -> u64 {
        self.accesses
    }

    /// The slots of `unit` whose receive event does not reach the line
    /// (bit s = slot s).
    #[must_use]
    pub fn muted(&self, unit: u8) -> u64 {
        self.muted.get(usize::from(unit)).copied().unwrap_or(0)
    }

    /// Lets the receive events of `slots` of `unit` reach the line again
    /// (the model cleared or drained them). Landing a word at a place
    /// unmutes it by itself.
    pub fn unmute(&mut self, unit: u8, slots: u64) {
        if let Some(m) = self.muted.get_mut(usize::from(unit)) {
            *m &= !slots;
        }
    }

    /// Forgets held words and muted places (the peripheral was reset); the
    /// rates, the generator and the counters stay.
    pub fn clear(&mut self) {
        self.held.clear();
        self.muted.clear();
    }

    /// A doorbell write of `word` to `to`, through the armed faults: it
    /// lands at once (maybe muted, maybe with a copy held), is lost, or is
    /// held back. Places that are not targeted always land at once, and
    /// draw nothing from the generator.
    pub fn send<R: Receivers + ?Sized>(&mut self, rx: &mut R, to: Target, word: u32) -> Delivery {
        if !self.targets.contains(to) {
            self.land(rx, to, word);
            return Delivery::CLEAN;
        }
        if self.roll(self.rates.drop_one_in) {
            self.counters.dropped = self.counters.dropped.saturating_add(1);
            return Delivery::Dropped;
        }
        if self.roll(self.rates.delay_one_in) {
            let due = self
                .accesses
                .saturating_add(u64::from(self.rates.delay_accesses));
            self.held.push(Held { to, word, due });
            self.counters.delayed = self.counters.delayed.saturating_add(1);
            return Delivery::Delayed;
        }
        let muted = self.roll(self.rates.mute_one_in);
        let duplicated = self.roll(self.rates.duplicate_one_in);
        self.land(rx, to, word);
        if muted {
            let unit = usize::from(to.unit);
            if self.muted.len() <= unit {
                self.muted.resize(unit + 1, 0);
            }
            self.muted[unit] |= bit(to.slot);
            self.counters.muted = self.counters.muted.saturating_add(1);
        }
        if duplicated {
            // Due now: the copy lands at the first access that finds room.
            let due = self.accesses;
            self.held.push(Held { to, word, due });
            self.counters.duplicated = self.counters.duplicated.saturating_add(1);
        }
        Delivery::Landed { muted, duplicated }
    }

    /// One register access goes by: held words that are due land (where
    /// there is room), and a spurious event may appear. Call it once per
    /// access, before the access takes effect. Does nothing (and draws
    /// nothing) while no place is targeted and no word is held.
    pub fn tick<R: Receivers + ?Sized>(&mut self, rx: &mut R) {
        if self.targets.is_empty() && self.held.is_empty() {
            return;
        }
        self.accesses = self.accesses.saturating_add(1);
        self.land_held(rx, false);
        if !self.roll(self.rates.spurious_one_in) {
            return;
        }
        let (Some(unit), Some(slot)) =
            (self.pick(self.targets.units), self.pick(self.targets.slots))
        else {
            return;
        };
        let to = Target::new(unit, slot);
        let room = rx.room(to);
        if R::CARRIES_WORDS && self.next() & 1 == 0 {
            // The low half of a draw: any 32-bit value.
            let word = self.next() as u32;
            if room.takes_moved_word() {
                self.land(rx, to, word);
                self.counters.garbage = self.counters.garbage.saturating_add(1);
            }
        } else if room.is_empty() {
            rx.phantom(to);
            self.counters.spurious = self.counters.spurious.saturating_add(1);
        }
    }

    /// Lands every held word now, due or not, in order, each where there is
    /// room for it ([`Room::takes_moved_word`]); returns how many landed.
    /// The others stay held and land at later accesses.
    pub fn deliver_held<R: Receivers + ?Sized>(&mut self, rx: &mut R) -> u32 {
        self.land_held(rx, true)
    }

    /// Lands held words in order: those due (or all, if `all`) whose place
    /// has room and that no earlier held word for the same place waits
    /// ahead of. Returns how many landed.
    fn land_held<R: Receivers + ?Sized>(&mut self, rx: &mut R, all: bool) -> u32 {
        let mut landed = 0;
        // Places with an earlier held word still waiting (one mask of slots
        // per unit): one pass, linear in the held words, not quadratic.
        let mut blocked: Vec<u64> = Vec::new();
        let mut i = 0;
        while let Some(&h) = self.held.get(i) {
            let unit = usize::from(h.to.unit);
            let waits_behind = blocked.get(unit).is_some_and(|m| m & bit(h.to.slot) != 0);
            if !waits_behind && (all || h.due <= self.accesses) && rx.room(h.to).takes_moved_word()
            {
                self.held.remove(i);
                self.land(rx, h.to, h.word);
                self.counters.late_deliveries = self.counters.late_deliveries.saturating_add(1);
                landed += 1;
            } else {
                if blocked.len() <= unit {
                    blocked.resize(unit + 1, 0);
                }
                blocked[unit] |= bit(h.to.slot);
                i += 1;
            }
        }
        landed
    }

    /// A word reaches `to`: the hardware transfer, and the place's receive
    /// event is heard again.
    fn land<R: Receivers + ?Sized>(&mut self, rx: &mut R, to: Target, word: u32) {
        self.unmute(to.unit, bit(to.slot));
        rx.land(to, word);
    }

    /// SplitMix64 (Steele, Lea and Flood 2014): deterministic and cheap.
    fn next(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// True with probability `1 / n` (never for 0, without a draw).
    fn roll(&mut self, n: u32) -> bool {
        n != 0 && self.next() % u64::from(n) == 0
    }

    /// A random member of `set` (its bit index).
    fn pick(&mut self, set: u64) -> Option<u8> {
        let count = u64::from(set.count_ones());
        if count == 0 {
            return None;
        }
        let k = self.next() % count;
        // At most 63: fits a u8.
        (0..64u8).filter(|&n| set & bit(n) != 0).nth(k as usize)
    }
}

/// Declares a backend's public `Faults`: the seed and the "one in N" rates
/// that [`Rates`] holds, plus the backend's own target fields, all public,
/// with `Debug, Clone, Copy, PartialEq, Eq, Default, Hash` derived and a
/// `rates()` method that returns the [`Rates`] part.
///
/// The backends' target fields differ (MU channels, K3 queues, OCTEON cores
/// and bits), so each backend declares its own struct; the rate fields and
/// their docs are written once, here.
///
/// # Examples
///
/// ```
/// ipc_traits::doorbell_faults! {
///     /// Seeded doorbell faults of a toy mailbox.
///     pub struct Faults {
///         /// The channels faults apply to (bit n = channel n).
///         pub channels: u8,
///     }
/// }
///
/// let f = Faults { channels: 0b10, drop_one_in: 3, seed: 7, ..Faults::default() };
/// assert_eq!(f.rates().drop_one_in, 3);
/// assert_eq!(f.rates().seed, 7);
/// ```
#[macro_export]
macro_rules! doorbell_faults {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $( $(#[$field_meta:meta])* $field_vis:vis $field:ident : $ty:ty ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        ///
        /// Rates are "one in N" per event (0: never), drawn from a generator
        /// seeded with `seed`: the same seed and the same sequence of
        /// register accesses give the same faults. The `sim_faults` module
        /// of `ipc-traits` describes each fault and the invariants the
        /// models keep.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
        $vis struct $name {
            /// Seed of the fault generator.
            pub seed: u64,
            $( $(#[$field_meta])* $field_vis $field: $ty, )*
            /// A doorbell write is lost (a dropped doorbell).
            pub drop_one_in: u32,
            /// A doorbell word lands, but its receive event does not reach
            /// the line (a dropped interrupt) until another word lands at
            /// the same place or the receiver clears the event; the status
            /// registers show it.
            pub mute_one_in: u32,
            /// On each register access: a receive event nobody sent at a
            /// random targeted place (a spurious interrupt): a phantom
            /// event over an empty place, or a random word (garbage) where
            /// places carry words.
            pub spurious_one_in: u32,
            /// A doorbell word is delivered twice; the copy lands as soon
            /// as there is room for it.
            pub duplicate_one_in: u32,
            /// A doorbell word is held back (a delayed doorbell) and lands
            /// `delay_accesses` register accesses later, or when the test
            /// delivers held words.
            pub delay_one_in: u32,
            /// How many register accesses a delayed word waits.
            pub delay_accesses: u32,
        }

        impl $name {
            /// These faults with the seed and rates of `rates` (the target
            /// fields kept).
            #[must_use]
            // `..self` copies the target fields; a struct without any (such
            // as `Rates`) has nothing left to copy.
            #[allow(clippy::needless_update)]
            pub const fn with_rates(self, rates: $crate::sim_faults::Rates) -> Self {
                Self {
                    seed: rates.seed,
                    drop_one_in: rates.drop_one_in,
                    mute_one_in: rates.mute_one_in,
                    spurious_one_in: rates.spurious_one_in,
                    duplicate_one_in: rates.duplicate_one_in,
                    delay_one_in: rates.delay_one_in,
                    delay_accesses: rates.delay_accesses,
                    ..self
                }
            }

            /// The seed and rates, target fields left out.
            #[must_use]
            pub const fn rates(&self) -> $crate::sim_faults::Rates {
                $crate::sim_faults::Rates {
                    seed: self.seed,
                    drop_one_in: self.drop_one_in,
                    mute_one_in: self.mute_one_in,
                    spurious_one_in: self.spurious_one_in,
                    duplicate_one_in: self.duplicate_one_in,
                    delay_one_in: self.delay_one_in,
                    delay_accesses: self.delay_accesses,
                }
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// Two units of four FIFO slots of `depth` words; records phantoms.
    #[derive(Debug, Clone, PartialEq)]
    struct Fifos {
        depth: u32,
        q: [[VecDeque<u32>; 4]; 2],
        phantoms: [[u32; 4]; 2],
        /// Words the "hardware" discarded because the FIFO was full.
        discarded: u32,
    }

    impl Fifos {
        fn new(depth: u32) -> Self {
            Self {
                depth,
                q: Default::default(),
                phantoms: [[0; 4]; 2],
                discarded: 0,
            }
        }

        fn at(&mut self, to: Target) -> &mut VecDeque<u32> {
            &mut self.q[usize::from(to.unit)][usize::from(to.slot)]
        }

        fn pop(&mut self, to: Target) -> Option<u32> {
            self.at(to).pop_front()
        }

        fn len(&self, to: Target) -> usize {
            self.q[usize::from(to.unit)][usize::from(to.slot)].len()
        }
    }

    impl Receivers for Fifos {
        fn room(&self, to: Target) -> Room {
            match self
                .q
                .get(usize::from(to.unit))
                .and_then(|u| u.get(usize::from(to.slot)))
            {
                Some(f) => Room::fifo(f.len() as u32, self.depth),
                None => Room::NONE,
            }
        }

        fn land(&mut self, to: Target, word: u32) {
            let depth = self.depth as usize;
            let f = self.at(to);
            if f.len() < depth {
                f.push_back(word);
            } else {
                self.discarded += 1;
            }
        }

        fn phantom(&mut self, to: Target) {
            assert_eq!(self.len(to), 0, "phantoms only at empty places");
            self.phantoms[usize::from(to.unit)][usize::from(to.slot)] += 1;
        }
    }

    /// Mailbox bits: one bit per slot, no data word.
    #[derive(Debug, Default)]
    struct Bits {
        set: [u64; 2],
    }

    impl Receivers for Bits {
        const CARRIES_WORDS: bool = false;

        fn room(&self, to: Target) -> Room {
            match self.set.get(usize::from(to.unit)) {
                Some(s) => Room::register(s & bit(to.slot) == 0),
                None => Room::NONE,
            }
        }

        fn land(&mut self, to: Target, _word: u32) {
            self.set[usize::from(to.unit)] |= bit(to.slot);
        }

        fn phantom(&mut self, to: Target) {
            self.land(to, 0);
        }
    }

    const T1: Target = Target::new(1, 2);
    const ONLY_T1: Targets = Targets {
        units: 0b10,
        slots: 0b100,
    };

    fn armed(rates: Rates) -> Injector {
        let mut inj = Injector::new();
        inj.arm(rates, ONLY_T1);
        inj
    }

    /// Armed on [`T1`] with one rate set by `set`.
    fn armed_with(set: impl FnOnce(&mut Rates)) -> Injector {
        let mut rates = Rates::default();
        set(&mut rates);
        armed(rates)
    }

    /// Traffic on every place of a depth-4 model: send to one place when it
    /// has room, drain another (places take turns). Returns the words received in order, the
    /// phantoms and the counters.
    fn traffic(rates: Rates, targets: Targets) -> (Vec<u32>, [[u32; 4]; 2], FaultCounters) {
        let mut m = Fifos::new(4);
        let mut inj = Injector::new();
        inj.arm(rates, targets);
        let mut got = Vec::new();
        for i in 0..600u32 {
            let to = Target::new((i % 2) as u8, ((i / 2) % 4) as u8);
            inj.tick(&mut m);
            if m.len(to) < 4 {
                inj.send(&mut m, to, i);
            }
            inj.tick(&mut m);
            let from = Target::new(((i + 1) % 2) as u8, ((i / 2 + 2) % 4) as u8);
            while let Some(w) = m.pop(from) {
                got.push(w);
            }
        }
        assert_eq!(
            m.discarded, 0,
            "sends checked for room; moved words kept a slot"
        );
        (got, m.phantoms, inj.counters())
    }

    const EVERYTHING: Rates = Rates {
        seed: 0,
        drop_one_in: 5,
        mute_one_in: 3,
        spurious_one_in: 6,
        duplicate_one_in: 4,
        delay_one_in: 5,
        delay_accesses: 3,
    };

    #[test]
    fn the_same_seed_gives_the_same_faults() {
        let all = Targets {
            units: 0b11,
            slots: 0b1111,
        };
        let run = |seed| traffic(Rates { seed, ..EVERYTHING }, all);
        assert_eq!(run(1), run(1));
        assert_eq!(run(99), run(99));
        assert_ne!(run(1), run(2));
    }

    #[test]
    fn every_fault_kind_happens_and_is_counted() {
        let all = Targets {
            units: 0b11,
            slots: 0b1111,
        };
        let (_, phantoms, c) = traffic(
            Rates {
                seed: 3,
                ..EVERYTHING
            },
            all,
        );
        for (name, n) in [
            ("dropped", c.dropped),
            ("muted", c.muted),
            ("spurious", c.spurious),
            ("garbage", c.garbage),
            ("duplicated", c.duplicated),
            ("delayed", c.delayed),
            ("late_deliveries", c.late_deliveries),
        ] {
            assert!(n > 5, "{name}: {c:?}");
        }
        let total: u32 = phantoms.iter().flatten().sum();
        assert_eq!(total, c.spurious, "each phantom reached the model once");
        assert!(c.late_deliveries <= c.delayed + c.duplicated);
    }

    #[test]
    fn untargeted_places_are_never_faulted_and_draw_nothing() {
        let mut m = Fifos::new(4);
        let mut inj = armed_with(|r| r.drop_one_in = 1);
        let before = inj.clone();
        for to in [Target::new(0, 2), Target::new(1, 1), Target::new(0, 3)] {
            assert_eq!(inj.send(&mut m, to, 9), Delivery::CLEAN);
        }
        assert_eq!(inj.rng, before.rng, "no draw for untargeted places");
        assert_eq!(inj.send(&mut m, T1, 9), Delivery::Dropped);
        assert_eq!(m.len(T1), 0);
        assert_eq!(inj.counters().dropped, 1);
    }

    #[test]
    fn rates_of_zero_never_fire_and_a_disarmed_injector_does_not_tick() {
        let mut m = Fifos::new(4);
        let mut inj = armed(Rates::default());
        for i in 0..100 {
            inj.tick(&mut m);
            assert_eq!(inj.send(&mut m, T1, i), Delivery::CLEAN);
            assert_eq!(m.pop(T1), Some(i));
        }
        assert_eq!(inj.counters(), FaultCounters::default());
        assert_eq!(inj.accesses(), 100);
        let mut off = Injector::new();
        off.tick(&mut m);
        assert_eq!(off.accesses(), 0);
    }

    #[test]
    fn a_muted_place_is_heard_again_when_a_word_lands_or_on_unmute() {
        let mut m = Fifos::new(4);
        let mut inj = armed_with(|r| r.mute_one_in = 1);
        let landed = inj.send(&mut m, T1, 1);
        assert_eq!(
            landed,
            Delivery::Landed {
                muted: true,
                duplicated: false
            }
        );
        assert_eq!(m.len(T1), 1, "the word is there");
        assert_eq!(inj.muted(1), 0b100);
        assert_eq!(inj.muted(0), 0);
        inj.unmute(1, 0b100);
        assert_eq!(inj.muted(1), 0);
        let _ = inj.send(&mut m, T1, 2);
        assert_eq!(inj.muted(1), 0b100);
        inj.arm(Rates::default(), ONLY_T1);
        let _ = inj.send(&mut m, T1, 3);
        assert_eq!(inj.muted(1), 0, "an unmuted word lands");
        assert_eq!(inj.counters().muted, 2);
    }

    #[test]
    fn a_delayed_word_lands_after_the_given_number_of_accesses() {
        for wait in [0u32, 1, 4, 9] {
            let mut m = Fifos::new(4);
            let mut inj = armed(Rates {
                delay_one_in: 1,
                delay_accesses: wait,
                ..Rates::default()
            });
            inj.tick(&mut m); // access 1: the doorbell write
            assert_eq!(inj.send(&mut m, T1, 7), Delivery::Delayed);
            assert_eq!(inj.held(), 1);
            // Due at access 1 + wait; never inside `send` itself.
            let lands_at = 1 + u64::from(wait.max(1));
            while inj.accesses() + 1 < lands_at {
                inj.tick(&mut m);
                assert_eq!(
                    m.len(T1),
                    0,
                    "wait {wait}: not at access {}",
                    inj.accesses()
                );
            }
            inj.tick(&mut m);
            assert_eq!(inj.accesses(), lands_at);
            assert_eq!(m.pop(T1), Some(7), "wait {wait}");
            assert_eq!(inj.held(), 0);
            assert_eq!(inj.counters().late_deliveries, 1);
        }
    }

    #[test]
    fn a_duplicate_copy_lands_at_the_next_access_with_room() {
        let mut m = Fifos::new(1);
        let mut inj = armed_with(|r| r.duplicate_one_in = 1);
        let _ = inj.send(&mut m, T1, 5);
        inj.tick(&mut m);
        assert_eq!(m.len(T1), 1, "the one-word place is full: the copy waits");
        assert_eq!(m.pop(T1), Some(5));
        inj.tick(&mut m);
        assert_eq!(m.pop(T1), Some(5), "the copy");
        let c = inj.counters();
        assert_eq!((c.duplicated, c.late_deliveries), (1, 1));
    }

    #[test]
    fn moved_words_never_take_a_queues_last_free_slot() {
        let mut m = Fifos::new(4);
        let mut inj = armed_with(|r| r.delay_one_in = 1);
        for w in 0..3 {
            m.land(T1, w);
        }
        let _ = inj.send(&mut m, T1, 99);
        for _ in 0..10 {
            inj.tick(&mut m);
            assert_eq!(m.len(T1), 3, "one free slot: kept for a real sender");
        }
        assert_eq!(inj.deliver_held(&mut m), 0, "not even on request");
        assert_eq!(m.pop(T1), Some(0));
        assert_eq!(inj.deliver_held(&mut m), 1);
        assert_eq!(m.len(T1), 3);
        // Garbage keeps the slot too: spurious events on a queue with one
        // free slot never fill it.
        inj.arm(
            Rates {
                seed: 5,
                spurious_one_in: 1,
                ..Rates::default()
            },
            ONLY_T1,
        );
        for _ in 0..200 {
            inj.tick(&mut m);
            assert_eq!(m.len(T1), 3);
        }
        assert_eq!(inj.counters().garbage, 0);
        assert_eq!(m.discarded, 0);
    }

    #[test]
    fn one_word_places_take_moved_words_only_while_empty() {
        assert!(Room::register(true).takes_moved_word());
        assert!(!Room::register(false).takes_moved_word());
        assert!(!Room::fifo(3, 4).takes_moved_word());
        assert!(Room::fifo(2, 4).takes_moved_word());
        assert!(!Room::NONE.takes_moved_word() && !Room::NONE.is_empty());
        assert!(Room::fifo(0, 4).is_empty() && !Room::fifo(1, 4).is_empty());
    }

    #[test]
    fn held_words_for_one_place_land_in_order() {
        let mut m = Fifos::new(8);
        let delays = |by| Rates {
            delay_one_in: 1,
            delay_accesses: by,
            ..Rates::default()
        };
        let mut inj = armed(delays(5));
        let _ = inj.send(&mut m, T1, 1); // due at 5
        inj.arm(delays(1), ONLY_T1);
        let _ = inj.send(&mut m, T1, 2); // due at 1, but behind word 1
        for _ in 0..4 {
            inj.tick(&mut m);
        }
        assert_eq!(m.len(T1), 0, "word 2 waits behind word 1");
        inj.tick(&mut m);
        assert_eq!((m.pop(T1), m.pop(T1)), (Some(1), Some(2)));
    }

    #[test]
    fn spurious_events_appear_only_at_targeted_empty_places() {
        let mut m = Fifos::new(4);
        let mut inj = armed(Rates {
            seed: 8,
            spurious_one_in: 2,
            ..Rates::default()
        });
        m.land(Target::new(0, 2), 1);
        for _ in 0..400 {
            inj.tick(&mut m);
            while m.pop(T1).is_some() {}
        }
        let c = inj.counters();
        assert!(c.spurious > 20 && c.garbage > 20, "{c:?}");
        assert_eq!(m.phantoms[1][2], c.spurious);
        let elsewhere: u32 = m.phantoms.iter().flatten().sum::<u32>() - m.phantoms[1][2];
        assert_eq!(elsewhere, 0);
        assert_eq!(m.len(Target::new(0, 2)), 1, "untargeted place untouched");
    }

    #[test]
    fn places_without_words_get_only_phantoms() {
        let mut b = Bits::default();
        let mut inj = Injector::new();
        inj.arm(
            Rates {
                seed: 2,
                spurious_one_in: 2,
                ..Rates::default()
            },
            Targets {
                units: 0b01,
                slots: 1 << 40,
            },
        );
        let mut seen = 0;
        for _ in 0..300 {
            inj.tick(&mut b);
            if b.set[0] != 0 {
                assert_eq!(b.set[0], 1 << 40);
                b.set[0] = 0;
                seen += 1;
            }
        }
        let c = inj.counters();
        assert_eq!(c.garbage, 0);
        assert_eq!(seen, c.spurious);
        assert!(seen > 50, "{c:?}");
    }

    #[test]
    fn clear_forgets_held_words_and_mutes_but_keeps_counters() {
        let mut m = Fifos::new(4);
        let mut inj = armed(Rates {
            mute_one_in: 1,
            duplicate_one_in: 1,
            ..Rates::default()
        });
        let _ = inj.send(&mut m, T1, 1);
        assert_eq!((inj.held(), inj.muted(1)), (1, 0b100));
        inj.clear();
        assert_eq!((inj.held(), inj.muted(1)), (0, 0));
        assert_eq!(inj.deliver_held(&mut m), 0);
        assert_eq!((inj.counters().muted, inj.counters().duplicated), (1, 1));
    }

    #[test]
    fn rearming_restarts_the_generator() {
        let mut m = Fifos::new(8);
        let rates = Rates {
            seed: 42,
            drop_one_in: 2,
            ..Rates::default()
        };
        let mut inj = armed(rates);
        let first: Vec<Delivery> = (0..20).map(|w| inj.send(&mut m, T1, w)).collect();
        inj.arm(rates, ONLY_T1);
        let again: Vec<Delivery> = (0..20).map(|w| inj.send(&mut m, T1, w)).collect();
        assert_eq!(first, again);
        assert!(first.contains(&Delivery::Dropped) && first.contains(&Delivery::CLEAN));
    }

    crate::doorbell_faults! {
        /// A test `Faults`.
        pub struct TestFaults {
            /// Targeted cores.
            pub cores: u16,
            /// Targeted bits.
            pub bits: u32,
        }
    }

    #[test]
    fn declared_faults_carry_the_rates_and_their_own_fields() {
        let f = TestFaults {
            seed: 1,
            cores: 2,
            bits: 3,
            drop_one_in: 4,
            mute_one_in: 5,
            spurious_one_in: 6,
            duplicate_one_in: 7,
            delay_one_in: 8,
            delay_accesses: 9,
        };
        assert_eq!(
            f.rates(),
            Rates {
                seed: 1,
                drop_one_in: 4,
                mute_one_in: 5,
                spurious_one_in: 6,
                duplicate_one_in: 7,
                delay_one_in: 8,
                delay_accesses: 9,
            }
        );
        assert_eq!(TestFaults::default().rates(), Rates::default());
        let g = f.with_rates(Rates::every_kind(11));
        assert_eq!((g.cores, g.bits), (2, 3), "target fields kept");
        assert_eq!(g.rates(), Rates::every_kind(11));
    }
}
