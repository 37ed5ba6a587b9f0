//! Split ownership: each side owns the region holding its transmit ring and
//! its transmit buffers, and may sleep on its own.
//!
//! Where the default roles ([`crate::rings::RemoteRings`],
//! [`crate::rings::MasterRings`]) put both rings and every buffer in memory
//! the master owns, a split-ownership link gives each side a [`Region`]:
//!
//! | | region A (owned and initialised by side A) | region B (owned and initialised by side B) |
//! |---|---|---|
//! | side A | virtio **driver** of ring A: publishes its messages from pool A, reaps them | virtio **device** of ring B: reads B's messages, returns them |
//! | side B | virtio **device** of ring A | virtio **driver** of ring B |
//!
//! Each region also holds a *consumed word* that only the peer writes (see
//! below). Nothing in a region is written by its owner while the peer may
//! rely on it, and nothing but the ring's device fields and the consumed
//! word is written by the peer.
//!
//! # Sleeping (shared/docs/hw/cache-and-wake.md §7)
//!
//! A core may not sleep while the peer may still read memory it owns. With
//! a [`WakeLock`] in the [`SplitConfig`], sending holds a guard that is
//! *parked with the in-flight buffer* (per descriptor, STYLE R11) and
//! released only when the buffer has come back; the idle loop asks the lock
//! [`WakeLock::deep_sleep_allowed`].
//!
//! "Come back" is not enough on its own: after returning the last buffer
//! the receiver still reads the ring's `avail.idx` to look for more. With
//! the **consumed-buffer notification** on ([`SplitConfig::consumed_notify`],
//! to be set on both sides), the protocol closes that window:
//!
//! 1. The receiver touches the peer's ring only between a "message
//!    available" doorbell and the end of the pass it starts (the pass ends
//!    when no more messages are available), or to return a buffer it
//!    still holds.
//! 2. At the end of a pass and after a late return, as its **last** access,
//!    the receiver stores the consumed word (one 32-bit store: the
//!    available index it has seen, the used index it has published) and
//!    rings the ring's doorbell (the consumed-buffer notification).
//! 3. The sender keeps a guard for each buffer in flight and one more while
//!    it has reaped buffers the consumed word does not cover yet; it rings
//!    the "message available" doorbell at most once per consumed-word value,
//!    and only when it published something the receiver has not seen.
//!
//! So the peer's reads always happen while the owner holds a guard. With
//! the notification off (the default, what a Linux or rpmsg-lite peer does)
//! guards are released when the buffer is reaped, the receiver polls the
//! ring freely, and doorbells follow the ring's notification suppression:
//! byte-compatible, but a sleeping owner is then only safe if the receiver
//! does not poll while it sleeps.
//!
//! Waking: the doorbell itself is the wake interrupt (the i.MX8 MU's
//! receive interrupt brings the Cortex-M out of WFI, and out of STOP when
//! the GPC has it enabled [cache-and-wake.md §7.1, GPC UNVERIFIED]; an
//! OCTEON mailbox write wakes a core from `WAIT` [§7.4, inferred]). A
//! doorbell is rung only by a side that holds a guard for what it
//! announces, so the woken side finds the announcing side awake.
//!
//! # A peer that never answers
//!
//! [`crate::link::watch::Watchdog::tick`] ages what is held; after
//! [`SplitConfig::unresponsive_after`] ticks without the peer returning or
//! confirming anything, the guards are released (the buffers stay lent: the
//! peer may still own them, so they are not reused before they come back or
//! the link restarts) and the watchdog counts the episode
//! ([`crate::link::watch::Watchdog::unresponsive`]).
//!
//! # Doorbells
//!
//! The receive part reads the peer's ring only after a "message available"
//! doorbell, and the transmit part learns from the consumed-buffer
//! notification that the peer's pass ended: the mailbox interrupt hands
//! every doorbell to both halves ([`crate::link::Rx::on_notify`],
//! [`crate::link::Tx::on_notify`]). A receive pass ends when
//! [`crate::link::Rx::try_recv`] finds the ring empty (`Ok(None)`),
//! which stores the consumed word and rings.
//!
//! # Placement
//!
//! A [`SplitLayout`] is a `const` description checked by a `const fn`, so a
//! bad one is a compile error when it is a `const`:
//!
//! ```
//! use rpmsg::split::{Region, SplitLayout};
//!
//! // Two regions of one 64 KiB window, 16 buffers of 512 bytes each,
//! // 64-byte cache lines.
//! const LAYOUT: SplitLayout = SplitLayout::checked(
//!     Region::packed(0x0000, 16, 512, 64),
//!     Region::packed(0x8000, 16, 512, 64),
//!     64,
//! );
//! assert_eq!(LAYOUT.a.pool % 64, 0);
//! ```
//!
//! ```compile_fail
//! use rpmsg::split::{Region, SplitLayout};
//!
//! // Region B starts inside region A.
//! const BAD: SplitLayout = SplitLayout::checked(
//!     Region::packed(0x0000, 16, 512, 64),
//!     Region::packed(0x0800, 16, 512, 64),
//!     64,
//! );
//! let _ = BAD;
//! ```
//!
//! Placement is in offsets of the link's [`SharedMemory`] window; the
//! addresses written into descriptors are the window's peer-visible ones
//! ([`SharedMemory::peer_addr`]), so two regions far apart in the peer's
//! address map are one window per side only if the window maps them; at
//! link start the regions are checked against the window again
//! ([`Error::PartOutside`] and the others).
#![allow(unsafe_code)]

use core::fmt;

use ipc_traits::buf::{Dirty, ShmBuf};
use ipc_traits::mailbox::{QueueId, QueueSet};
use ipc_traits::power::{MaybeWakeGuard, WakeGuard, WakeLock};
use ipc_traits::shm::SharedMemory;
use vring::{
    BufferArea, Device, DeviceConfig, DeviceTables, Driver, DriverConfig, Endian,
    Error as RingError, Layout, Stats, Suppression,
};

use crate::rings::{skipped_entry, Halves, QueueIds, RxRing, RxSlot, SendFailure, TxRing, TxSlot};
use crate::Error;

/// Bytes of the consumed word (seen available index, published used index).
pub const CONSUMED_WORD: usize = 4;

/// One side's region: its transmit ring, the consumed word the peer writes,
/// and its transmit buffer pool (`ring.num()` buffers of `buf_size` bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    /// First byte of the region (window offset).
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
    /// The transmit ring.
    pub ring: Layout,
    /// Offset of the consumed word (alone in its cache line).
    pub consumed: usize,
    /// Offset of the buffer pool.
    pub pool: usize,
    /// Bytes per buffer.
    pub buf_size: usize,
}

const fn up(v: usize, align: usize) -> usize {
    (v + align - 1) & !(align - 1)
}

impl Region {
    /// The packed placement from `base` (aligned up to `line`): the ring
    /// (legacy layout, `line` alignment), the consumed word at the next
    /// line, the pool at the line after it; the region ends after the pool.
    pub const fn packed(base: usize, num: u16, buf_size: usize, line: usize) -> Self {
        let start = up(base, line);
        let ring = Layout::legacy_at(start, num, line);
        let consumed = up(ring.end(), line);
        let pool = consumed + line;
        let end = pool + num as usize * buf_size;
        Self {
            start,
            end,
            ring,
            consumed,
            pool,
            buf_size,
        }
    }

    /// Bytes of the pool.
    pub const fn pool_len(&self) -> usize {
        self.ring.num() as usize * self.buf_size
    }

    /// Checks the region on its own (`line` is the cache granule, 1 when
    /// coherent).
    ///
    /// # Errors
    ///
    /// [`Error::BadLine`], [`Error::PartOutside`], [`Error::PartMisaligned`],
    /// [`Error::PartsOverlap`], [`Error::BadBufSize`], a ring's layout error
    /// ([`Error::Ring`]).
    pub const fn check(&self, line: usize) -> Result<(), Error> {
        if line == 0 || !line.is_power_of_two() {
            return Err(Error::BadLine);
        }
        if self.start > self.end {
            return Err(Error::PartOutside);
        }
        if self.ring.start() < self.start {
            return Err(Error::PartOutside);
        }
        if let Err(e) = self.ring.check(self.end, line) {
            return Err(Error::Ring(e));
        }
        if self.buf_size == 0 || self.buf_size % line != 0 {
            return Err(Error::BadBufSize);
        }
        if self.consumed % line != 0 || self.consumed % 4 != 0 {
            return Err(Error::PartMisaligned);
        }
        if self.pool % line != 0 {
            return Err(Error::PartMisaligned);
        }
        let cons_len = if line > CONSUMED_WORD {
            line
        } else {
            CONSUMED_WORD
        };
        let pool_len = match (self.ring.num() as usize).checked_mul(self.buf_size) {
            Some(l) => l,
            None => return Err(Error::Ring(RingError::Overflow)),
        };
        let parts = [(self.consumed, cons_len), (self.pool, pool_len)];
        let mut i = 0;
        while i < 2 {
            let (off, len) = parts[i];
            let end = match off.checked_add(len) {
                Some(e) => e,
                None => return Err(Error::Ring(RingError::Overflow)),
            };
            if off < self.start || end > self.end {
                return Err(Error::PartOutside);
            }
            // The ring, rounded out to whole lines.
            let r0 = self.ring.start() & !(line - 1);
            let r1 = up(self.ring.end(), line);
            if off < r1 && r0 < end {
                return Err(Error::PartsOverlap);
            }
            i += 1;
        }
        if self.consumed < self.pool + pool_len && self.pool < self.consumed + cons_len {
            return Err(Error::PartsOverlap);
        }
        Ok(())
    }
}

/// Which side of a split link this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Owns region A (its ring is signalled with [`QueueIds::vring0`]).
    A,
    /// Owns region B (its ring is signalled with [`QueueIds::vring1`]).
    B,
}

/// Both regions of a split-ownership link and the cache granule they were
/// checked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SplitLayout {
    /// Side A's region.
    pub a: Region,
    /// Side B's region.
    pub b: Region,
    /// The largest cache line of the two cores (1 when coherent).
    pub line: usize,
}

impl SplitLayout {
    /// Checks both regions and that they are disjoint (whole lines).
    ///
    /// # Errors
    ///
    /// [`Error::BadLine`], [`Error::PartOutside`], [`Error::PartMisaligned`],
    /// [`Error::PartsOverlap`], [`Error::BadBufSize`], a ring's layout error
    /// ([`Error::Ring`]).
    pub const fn new(a: Region, b: Region, line: usize) -> Result<Self, Error> {
        if let Err(e) = a.check(line) {
            return Err(e);
        }
        if let Err(e) = b.check(line) {
            return Err(e);
        }
        let (a0, a1) = (a.start & !(line - 1), up(a.end, line));
        let (b0, b1) = (b.start & !(line - 1), up(b.end, line));
        if a0 < b1 && b0 < a1 {
            return Err(Error::PartsOverlap);
        }
        Ok(Self { a, b, line })
    }

    /// [`SplitLayout::new`] for `const` items: an invalid layout fails to
    /// compile.
    ///
    /// # Panics
    ///
    /// If the layout is invalid (at compile time in a `const`).
    pub const fn checked(a: Region, b: Region, line: usize) -> Self {
        match Self::new(a, b, line) {
            Ok(l) => l,
            Err(_) => panic!("invalid split layout"),
        }
    }

    /// The region `side` owns and the peer's.
    pub const fn regions(&self, side: Side) -> (Region, Region) {
        match side {
            Side::A => (self.a, self.b),
            Side::B => (self.b, self.a),
        }
    }

    /// One past the last byte of either region (the window must be at least
    /// this long).
    pub const fn end(&self) -> usize {
        if self.a.end > self.b.end {
            self.a.end
        } else {
            self.b.end
        }
    }
}

/// How one side runs a split-ownership link. Both sides must agree on
/// everything but `side`, `wake` and `unresponsive_after`.
#[derive(Debug, Clone, Copy)]
pub struct SplitConfig<'w> {
    /// The placement.
    pub layout: SplitLayout,
    /// Which region this side owns.
    pub side: Side,
    /// Notification suppression of both rings (used when
    /// `consumed_notify` is off).
    pub suppression: Suppression,
    /// The consumed-buffer notification (configure both sides alike; off
    /// for Linux compatibility).
    pub consumed_notify: bool,
    /// Doorbell ids: ring A's and ring B's.
    pub queues: QueueIds,
    /// The lock this core's idle loop asks; `None` holds nothing.
    pub wake: Option<&'w WakeLock>,
    /// Ticks ([`crate::link::watch::Watchdog::tick`]) without progress from the peer
    /// after which held guards are released and the peer counted as
    /// unresponsive; 0 never gives up.
    pub unresponsive_after: u32,
}

impl<'w> SplitConfig<'w> {
    /// `side` of `layout`, consumed-buffer notification on, flags
    /// suppression, default doorbell ids, no wake lock, never giving up.
    pub const fn new(layout: SplitLayout, side: Side) -> Self {
        Self {
            layout,
            side,
            suppression: Suppression::Flags,
            consumed_notify: true,
            queues: QueueIds::DEFAULT,
            wake: None,
            unresponsive_after: 0,
        }
    }
}

/// The bytes maintained for a consumed word: its whole cache line (the
/// layout keeps the line for the word alone).
fn word_span<M: SharedMemory + ?Sized>() -> usize {
    if M::LINE > CONSUMED_WORD {
        M::LINE
    } else {
        CONSUMED_WORD
    }
}

fn mem_err<E: ipc_traits::shm::Error>(e: &E) -> RingError {
    RingError::Memory(e.kind())
}

/// One side of a split-ownership link: driver of its own ring over its own
/// pool ([`SplitTx`]), device of the peer's ring ([`SplitRx`]). It comes
/// apart into those two parts ([`Halves`]) for [`crate::link::Link`].
pub struct SplitRings<'m, M: SharedMemory + ?Sized, E: Endian, const NUM: usize> {
    tx: SplitTx<'m, M, E, NUM>,
    rx: SplitRx<'m, M, E, NUM>,
}

/// The transmit part of a split-ownership link: the driver of this side's
/// ring over its own pool, the wake guards parked with in-flight buffers,
/// and the unresponsive-peer bound.
pub struct SplitTx<'m, M: SharedMemory + ?Sized, E: Endian, const NUM: usize> {
    mem: &'m M,
    ring: Driver<'m, M, E, NUM>,
    spare: [Option<TxSlot>; NUM],
    queue: QueueId,
    buf_size: usize,
    consumed_notify: bool,
    /// Our consumed word (the peer writes it).
    own_word: usize,
    lock: Option<&'m WakeLock>,
    /// The guard of each in-flight buffer, by descriptor id.
    parked: [Option<WakeGuard<'m>>; NUM],
    /// Held while reaped buffers are not covered by the consumed word.
    unconfirmed: Option<MaybeWakeGuard<'m>>,
    /// Messages published (our avail index).
    published: u16,
    /// Buffers reaped (our used index as seen).
    reaped: u16,
    /// The consumed-word value the last "message available" kick was for.
    kicked_for: Option<u16>,
    /// Ticks since the peer last made progress while we held something.
    idle_ticks: u32,
    unresponsive_after: u32,
    /// The consumed word at the last tick.
    last_word: u32,
}

/// The receive part of a split-ownership link: the device of the peer's
/// ring, attached at the first "message available" doorbell when the
/// consumed-buffer notification is on.
pub struct SplitRx<'m, M: SharedMemory + ?Sized, E: Endian, const NUM: usize> {
    mem: &'m M,
    /// Attached at the first "message available" doorbell when the
    /// consumed-buffer notification is on (attaching reads the peer's ring,
    /// which may be asleep before then), at once otherwise.
    ring: Option<Device<'m, M, E, NUM>>,
    peer_ring: Layout,
    devcfg: DeviceConfig,
    /// The device's per-entry tables.
    tables: &'m DeviceTables<NUM>,
    /// The receive ring's statistics before it is attached.
    no_stats: Stats,
    queue: QueueId,
    consumed_notify: bool,
    /// The peer's consumed word (we write it).
    peer_word: usize,
    /// Waiting for a "message available" doorbell before reading the peer's
    /// ring again.
    quiet: bool,
    /// Keeps this core awake during a pass and while holding the peer's
    /// buffers.
    busy: Option<MaybeWakeGuard<'m>>,
    held: u16,
    /// Buffers of the peer's ring we returned.
    returned: u16,
    /// The peer's available index we have seen.
    seen: u16,
    /// The consumed-buffer notification is due (stored, not rung yet).
    kick: bool,
}

impl<M: SharedMemory + ?Sized, E: Endian, const NUM: usize> fmt::Debug
    for SplitRings<'_, M, E, NUM>
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SplitRings")
            .field("tx", &self.tx)
            .field("rx", &self.rx)
            .finish()
    }
}

impl<M: SharedMemory + ?Sized, E: Endian, const NUM: usize> fmt::Debug for SplitTx<'_, M, E, NUM> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SplitTx")
            .field("published", &self.published)
            .field("reaped", &self.reaped)
            .finish_non_exhaustive()
    }
}

impl<M: SharedMemory + ?Sized, E: Endian, const NUM: usize> fmt::Debug for SplitRx<'_, M, E, NUM> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SplitRx")
            .field("quiet", &self.quiet)
            .field("held", &self.held)
            .finish_non_exhaustive()
    }
}

impl<'m, M: SharedMemory + ?Sized, E: Endian, const NUM: usize> SplitRings<'m, M, E, NUM> {
    /// Initialises this side's region (ring, consumed word, pool) and
    /// attaches to the peer's ring (reading nothing yet), whose per-entry
    /// tables live in `tables` (lent until these rings are dropped).
    ///
    /// # Errors
    ///
    /// A placement error ([`Error::PartOutside`] and the others) for a layout that does not fit the window
    /// or this core's cache line; ring errors
    /// ([`vring::Error::TablesInUse`]: rings still alive hold `tables`).
    ///
    /// # Safety
    ///
    /// This link alone owns both pools on this core: no other buffer handle
    /// covers them.
    pub unsafe fn new(
        mem: &'m M,
        config: SplitConfig<'m>,
        tables: &'m DeviceTables<NUM>,
    ) -> Result<Self, Error> {
        let layout = &config.layout;
        let line = if M::LINE > layout.line {
            M::LINE
        } else {
            layout.line
        };
        let layout = SplitLayout::new(layout.a, layout.b, line)?;
        if layout.end() > mem.len() {
            return Err(Error::PartOutside);
        }
        let (own, peer) = layout.regions(config.side);
        let (tx_queue, rx_queue) = match config.side {
            Side::A => (config.queues.vring0, config.queues.vring1),
            Side::B => (config.queues.vring1, config.queues.vring0),
        };
        let dcfg = DriverConfig {
            suppression: config.suppression,
            write_flag_on_readable: false,
        };
        // SAFETY: every buffer handed to this driver is built over `mem`
        // below, from our own pool.
        let mut tx = unsafe { Driver::<M, E, NUM>::new(mem, own.ring, dcfg) }?;
        let devcfg = DeviceConfig {
            suppression: config.suppression,
            buffers: BufferArea::new(peer.pool, peer.pool_len()),
            first_avail: 0,
        };
        let rx = if config.consumed_notify {
            None
        } else {
            // SAFETY: the peer's pool is disjoint from ours (checked above)
            // and holds no other handle on this core (this function's
            // contract).
            Some(unsafe { Device::<M, E, NUM>::new(mem, peer.ring, devcfg, tables) }?)
        };
        mem.store_u32_release(own.consumed, 0)
            .map_err(|e| mem_err(&e))?;
        mem.clean(own.consumed, word_span::<M>())
            .map_err(|e| mem_err(&e))?;
        let mut spare = [const { None }; NUM];
        let num = usize::from(own.ring.num()).min(NUM);
        for (k, s) in spare.iter_mut().enumerate().take(num) {
            let offset = own.pool + k * own.buf_size;
            // SAFETY: slot k of our pool, owned by this link alone; each
            // slot is built once.
            let buf = unsafe { ShmBuf::<M, Dirty>::new_unchecked(mem, offset, own.buf_size) }
                .map_err(|e| mem_err(&e))?;
            // Bound to a descriptor id for good; written back whole now
            // (nothing is known of what this core wrote there before), so a
            // send cleans only the lines it writes.
            let clean = buf.clean().map_err(|(_, e)| mem_err(&e))?;
            let slot = tx.lend(clean).map_err(|(_, e)| e)?;
            *s = Some(TxSlot {
                token: slot.id,
                offset: slot.offset,
                room: own.buf_size,
            });
        }
        Ok(Self {
            tx: SplitTx {
                mem,
                ring: tx,
                spare,
                queue: tx_queue,
                buf_size: own.buf_size,
                consumed_notify: config.consumed_notify,
                own_word: own.consumed,
                lock: config.wake,
                parked: [const { None }; NUM],
                unconfirmed: config.wake.map(MaybeWakeGuard::new),
                published: 0,
                reaped: 0,
                kicked_for: None,
                idle_ticks: 0,
                unresponsive_after: config.unresponsive_after,
                last_word: 0,
            },
            rx: SplitRx {
                mem,
                ring: rx,
                peer_ring: peer.ring,
                devcfg,
                tables,
                no_stats: Stats::default(),
                queue: rx_queue,
                consumed_notify: config.consumed_notify,
                peer_word: peer.consumed,
                quiet: config.consumed_notify,
                busy: config.wake.map(MaybeWakeGuard::new),
                held: 0,
                returned: 0,
                seen: 0,
                kick: false,
            },
        })
    }

    /// Buffers published and not yet reaped.
    pub fn in_flight(&self) -> u16 {
        self.tx.in_flight()
    }

    /// Whether the receive side waits for a doorbell before reading the
    /// peer's ring again.
    pub fn is_quiet(&self) -> bool {
        self.rx.is_quiet()
    }
}

impl<'m, M: SharedMemory + ?Sized, E: Endian, const NUM: usize> SplitTx<'m, M, E, NUM> {
    /// Buffers published and not yet reaped.
    pub fn in_flight(&self) -> u16 {
        self.ring.in_flight()
    }

    fn load_own_word(&self) -> Result<u32, RingError> {
        self.mem
            .invalidate(self.own_word, word_span::<M>())
            .map_err(|e| mem_err(&e))?;
        self.mem
            .load_u32_acquire(self.own_word)
            .map_err(|e| mem_err(&e))
    }

    /// Reaps one returned buffer of our ring (dropping its parked guard).
    fn reap_one(&mut self) -> Result<Option<TxSlot>, RingError> {
        for _ in 0..=NUM {
            let (id, used) = match self.ring.pop_used_slot() {
                Ok(Some(used)) => (used.id, used),
                Ok(None) => return Ok(None),
                Err((e, used)) => match used {
                    // A lying length on a returned buffer: the slot itself
                    // is ours again (its guard is not looked up by id).
                    Some(used) => (u16::MAX, used),
                    None if skipped_entry(&e) => continue,
                    None => return Err(e),
                },
            };
            self.reaped = self.reaped.wrapping_add(1);
            if let Some(g) = self.parked.get_mut(usize::from(id)).and_then(Option::take) {
                if self.consumed_notify {
                    // The peer may still read our ring until the consumed
                    // word covers this return.
                    if let Some(u) = self.unconfirmed.as_mut() {
                        u.enable();
                    }
                }
                drop(g);
            } else if id == u16::MAX && self.consumed_notify {
                if let Some(u) = self.unconfirmed.as_mut() {
                    u.enable();
                }
            }
            // Every slot of the pool is `buf_size` long.
            return Ok(Some(TxSlot {
                token: used.id,
                offset: used.offset,
                room: self.buf_size,
            }));
        }
        Ok(None)
    }

    /// Reaps everything returned into the spare list.
    fn reap_all(&mut self) -> Result<(), RingError> {
        while self.spare.iter().any(Option::is_none) {
            match self.reap_one()? {
                Some(slot) => {
                    if let Some(free) = self.spare.iter_mut().find(|s| s.is_none()) {
                        *free = Some(slot);
                    }
                }
                None => break,
            }
        }
        Ok(())
    }

    /// Releases the unconfirmed guard when the consumed word covers every
    /// reaped buffer; returns the available index the peer has seen.
    fn apply_word(&mut self, word: u32) -> u16 {
        let (seen, used) = (word as u16, (word >> 16) as u16);
        // The peer cannot have published more than it was given: a larger
        // value is hostile and confirms nothing.
        let ahead = self.reaped.wrapping_sub(used);
        if ahead == 0 {
            if let Some(u) = self.unconfirmed.as_mut() {
                u.disable();
            }
        }
        seen
    }

    /// Reaps everything returned into the spare list, then applies the
    /// consumed word: releases the unconfirmed guard when it covers every
    /// reaped buffer, and decides the "message available" kick.
    fn service(&mut self) -> Result<bool, RingError> {
        self.reap_all()?;
        if !self.consumed_notify {
            return Ok(false);
        }
        let word = self.load_own_word()?;
        let seen = self.apply_word(word);
        let unseen = self.published != seen;
        if unseen && self.kicked_for != Some(seen) {
            self.kicked_for = Some(seen);
            return Ok(true);
        }
        Ok(false)
    }

    /// Releases every guard held for the peer (it stopped answering); the
    /// buffers stay lent.
    fn give_up(&mut self) {
        for g in self.parked.iter_mut() {
            *g = None;
        }
        if let Some(u) = self.unconfirmed.as_mut() {
            u.disable();
        }
    }

    /// Messages handed to the peer and not confirmed back.
    fn unconfirmed(&mut self) -> u32 {
        // Reaps what came back; a kick due is moot (the session ends) and a
        // ring error leaves the count below as it is.
        let _kick: Result<bool, RingError> = self.service();
        u32::from(self.ring.in_flight()) + u32::from(self.ring.unpublished())
    }
}

impl<'m, M: SharedMemory + ?Sized, E: Endian, const NUM: usize> SplitRx<'m, M, E, NUM> {
    /// Whether this part waits for a doorbell before reading the peer's
    /// ring again.
    pub fn is_quiet(&self) -> bool {
        self.quiet
    }

    /// Stores our progress on the peer's ring as our last access to it.
    fn confirm(&mut self) -> Result<(), RingError> {
        self.seen = self.ring.as_ref().map_or(0, Device::next_avail);
        let word = u32::from(self.seen) | (u32::from(self.returned) << 16);
        self.mem
            .store_u32_release(self.peer_word, word)
            .map_err(|e| mem_err(&e))?;
        self.mem
            .clean(self.peer_word, word_span::<M>())
            .map_err(|e| mem_err(&e))?;
        self.kick = true;
        Ok(())
    }

    fn set_busy(&mut self) {
        let busy = (self.consumed_notify && !self.quiet) || self.held > 0;
        if let Some(b) = self.busy.as_mut() {
            if busy {
                b.enable();
            } else {
                b.disable();
            }
        }
    }

    /// Returns a buffer; `true` when the ring's suppression asks for a
    /// doorbell (the consumed-buffer notification, when on, is left in
    /// `kick`).
    fn release_raw(&mut self, slot: RxSlot) -> Result<bool, RingError> {
        // A buffer to return came from the attached ring.
        let Some(rx) = self.ring.as_mut() else {
            return Err(RingError::InvalidState);
        };
        // The descriptor's length, as for `RemoteRx::release`.
        rx.push_used_slot(slot.token, None)?;
        self.held = self.held.saturating_sub(1);
        self.returned = self.returned.wrapping_add(1);
        let notify = rx.publish_used();
        self.set_busy();
        let notify = notify?;
        if !self.consumed_notify {
            return Ok(notify);
        }
        if self.quiet {
            // A late return: confirm it as the last access.
            self.confirm()?;
        }
        Ok(false)
    }
}

impl<M: SharedMemory + ?Sized, E: Endian, const NUM: usize> crate::rings::sealed::Sealed
    for SplitRings<'_, M, E, NUM>
{
}
impl<M: SharedMemory + ?Sized, E: Endian, const NUM: usize> crate::rings::sealed::Sealed
    for SplitTx<'_, M, E, NUM>
{
}
impl<M: SharedMemory + ?Sized, E: Endian, const NUM: usize> crate::rings::sealed::Sealed
    for SplitRx<'_, M, E, NUM>
{
}

impl<'m, M: SharedMemory + ?Sized + 'm, E: Endian, const NUM: usize> TxRing<'m>
    for SplitTx<'m, M, E, NUM>
{
    type Mem = M;
    type Order = E;

    fn queue(&self) -> QueueId {
        self.queue
    }

    fn mem(&self) -> &'m M {
        self.mem
    }

    fn take(&mut self) -> Result<Option<TxSlot>, RingError> {
        if let Some(slot) = self.spare.iter_mut().find_map(Option::take) {
            return Ok(Some(slot));
        }
        self.reap_one()
    }

    fn give_back(&mut self, slot: TxSlot) {
        if let Some(free) = self.spare.iter_mut().find(|s| s.is_none()) {
            *free = Some(slot);
        }
    }

    fn send(&mut self, slot: TxSlot) -> Result<bool, SendFailure> {
        // The guard is taken before the peer can see the buffer.
        let guard = self.lock.map(WakeLock::hold);
        let id = slot.token;
        // The whole buffer, as `MasterTx::send`.
        let len = u32::try_from(slot.room).unwrap_or(u32::MAX);
        if let Err(error) = self.ring.add_slot(id, len, false) {
            return Err(SendFailure {
                slot: Some(slot),
                error,
            });
        }
        if let Some(slot) = self.parked.get_mut(usize::from(id)) {
            *slot = guard;
        }
        self.published = self.published.wrapping_add(1);
        let notify = self
            .ring
            .publish()
            .map_err(|error| SendFailure { slot: None, error })?;
        if !self.consumed_notify {
            return Ok(notify);
        }
        self.service()
            .map_err(|error| SendFailure { slot: None, error })
    }

    fn stats(&self) -> &Stats {
        self.ring.stats()
    }

    fn is_broken(&self) -> bool {
        self.ring.is_broken()
    }

    /// Any doorbell may carry the consumed-buffer notification: reaps what
    /// came back, applies the consumed word (releasing the guards it
    /// covers), and asks for a "message available" doorbell when the
    /// peer's pass ended before it saw everything published.
    fn on_notify(&mut self, queues: QueueSet) -> Result<bool, RingError> {
        if queues.is_empty() {
            return Ok(false);
        }
        self.service()
    }

    fn tick(&mut self) -> bool {
        // A buffer that came back is an answer (its guard goes with it). A
        // ring error is counted by the ring; what is held stays held.
        let _reaped: Result<(), RingError> = self.reap_all();
        let holding = self.parked.iter().any(Option::is_some)
            || self
                .unconfirmed
                .as_ref()
                .is_some_and(MaybeWakeGuard::is_enabled);
        let word = if self.consumed_notify {
            let word = self.load_own_word().unwrap_or(self.last_word);
            // Confirmation is an answer too (the "message available" kick
            // it may call for is decided by `on_notify`, not here).
            let _seen: u16 = self.apply_word(word);
            word
        } else {
            u32::from(self.reaped)
        };
        if !holding || word != self.last_word || self.unresponsive_after == 0 {
            self.last_word = word;
            self.idle_ticks = 0;
            return false;
        }
        self.idle_ticks = self.idle_ticks.saturating_add(1);
        if self.idle_ticks < self.unresponsive_after {
            return false;
        }
        self.idle_ticks = 0;
        self.give_up();
        true
    }
}

impl<'m, M: SharedMemory + ?Sized + 'm, E: Endian, const NUM: usize> RxRing<'m>
    for SplitRx<'m, M, E, NUM>
{
    type Mem = M;
    type Order = E;
    const NUM: usize = NUM;

    fn queue(&self) -> QueueId {
        self.queue
    }

    fn mem(&self) -> &'m M {
        self.mem
    }

    fn take(&mut self) -> Result<Option<RxSlot>, RingError> {
        if self.quiet {
            return Ok(None);
        }
        let rx = match self.ring.as_mut() {
            Some(rx) => rx,
            None => {
                // SAFETY: as in `SplitRings::new` (this link alone owns both
                // pools on this core); the peer rang, so it is awake and its
                // ring initialised.
                let dev =
                    unsafe { Device::new(self.mem, self.peer_ring, self.devcfg, self.tables) }?;
                self.ring.insert(dev)
            }
        };
        for _ in 0..=NUM {
            match rx.pop_readable_slot() {
                Ok(Some(p)) => {
                    self.held = self.held.saturating_add(1);
                    self.set_busy();
                    return Ok(Some(RxSlot {
                        token: p.id,
                        offset: p.offset,
                        len: p.len,
                    }));
                }
                Ok(None) => break,
                Err(e) if skipped_entry(&e) => {}
                Err(e) => return Err(e),
            }
        }
        if self.consumed_notify {
            // End of the pass: nothing more available.
            self.confirm()?;
            self.quiet = true;
            self.set_busy();
        }
        Ok(None)
    }

    fn release(&mut self, slot: RxSlot) -> Result<bool, RingError> {
        let wanted = self.release_raw(slot)?;
        Ok(wanted || core::mem::take(&mut self.kick))
    }

    fn stats(&self) -> &Stats {
        self.ring.as_ref().map_or(&self.no_stats, Device::stats)
    }

    fn is_broken(&self) -> bool {
        self.ring.as_ref().is_some_and(Device::is_broken)
    }

    fn on_notify(&mut self, queues: QueueSet) {
        if queues.contains(self.queue) {
            self.quiet = false;
            self.set_busy();
        }
    }

    fn take_kick(&mut self) -> bool {
        core::mem::take(&mut self.kick)
    }
}

impl<'m, M: SharedMemory + ?Sized + 'm, E: Endian, const NUM: usize> Halves<'m>
    for SplitRings<'m, M, E, NUM>
{
    type Mem = M;
    type Order = E;
    type Tx = SplitTx<'m, M, E, NUM>;
    type Rx = SplitRx<'m, M, E, NUM>;

    fn into_halves(self) -> (Self::Tx, Self::Rx) {
        (self.tx, self.rx)
    }

    fn from_halves(tx: Self::Tx, rx: Self::Rx) -> Self {
        Self { tx, rx }
    }

    fn unconfirmed_tx(&mut self) -> u32 {
        self.tx.unconfirmed()
    }
}
