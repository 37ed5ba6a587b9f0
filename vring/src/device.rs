//! The device role: pops available buffers, returns them as used.
//!
//! This is the remote firmware's side of a remoteproc vring (rpmsg-lite's
//! remote, OpenAMP's `VIRTIO_DEV_DEVICE`). Everything the driver wrote is
//! hostile: every available entry, descriptor, address and length is read
//! once into a local and validated before a buffer handle exists
//! ([`Error`] lists each check; each failure is counted in
//! [`crate::error::Failures`]).
//!
//! # Protocol, step by step (virtio 1.x §2.7.13 from the device side;
//! Linux `vhost` `vhost_get_vq_desc` / `vhost_add_used_n` / `vhost_notify`)
//!
//! 1. [`Device::pop_readable`] / [`Device::pop_writable`] invalidate and
//!    load `avail.idx` (acquire) when the known entries are used up, check
//!    the jump, then invalidate and read one entry and its descriptor. With
//!    `EVENT_IDX` and notifications on, a pop that finds the ring empty
//!    first re-arms `avail_event` (store, clean, `fence(SeqCst)`, load
//!    `avail.idx` again; §2.7.10), so a device may sleep until the next
//!    doorbell once a pop returned `Ok(None)`.
//! 2. The buffer comes out as [`ShmBuf<Received>`] (invalidate, then
//!    validate [`Popped::len`], then read) or [`ShmBuf<Dirty>`] (write, then
//!    clean).
//! 3. [`Device::push_used`] takes the buffer back (so it cannot be used
//!    again) and writes the used entry; [`Device::publish_used`] cleans the
//!    batch, stores `used.idx` (release), cleans it, and reads the driver's
//!    `avail.flags` or `used_event` to say whether to notify: a "yes" is
//!    final, a "no" is read again after `fence(SeqCst)`.
//!    [`Device::publish_used_and_rearm`] ends a receive pass: it also
//!    re-arms `avail_event` when every known entry was consumed, under the
//!    same fence, so the pop that then finds the ring empty pays none.
//!
//! # Fences
//!
//! The one ordering the protocol needs a full fence for is store -> load
//! between publishing an index and reading the peer's suppression field
//! (and, going idle, between re-arming and re-reading the peer's index).
//! Per pass the device pays at most one: the publication's "yes" needs
//! none, a re-arm shares the publication's fence, and an empty ring already
//! armed at this position needs none. In a one-way stream at steady state
//! the device pays one per pass and the driver none (the device is armed,
//! so the driver's read says "notify": see [`crate::Driver::publish`]).
//!
//! # Buffers the driver can lie about
//!
//! A hostile driver can name the same memory twice, or name ring metadata as
//! a buffer. The device therefore keeps a record of every buffer it holds
//! and refuses a new one that overlaps it ([`Error::OverlappingBuffer`]; in
//! O(1) while each descriptor keeps naming its own buffer, see
//! `Device::claim`), and
//! accepts buffers only inside a [`BufferArea`] that excludes the ring
//! ([`Error::OutsideBufferArea`]). Both checks work on whole cache lines, so
//! maintenance on one buffer never touches another. A descriptor refused
//! for its contents goes back as a used entry of length 0 (so a corrupted
//! descriptor costs the driver one message, not the buffer for good).
//!
//! # Design notes
//!
//! - Single-descriptor buffers only (rpmsg never chains):
//!   [`Error::UnexpectedNext`], [`Error::UnexpectedIndirect`].
//! - A driver-readable/writable mismatch in the `WRITE` flag is tolerated for
//!   [`Device::pop_readable`]: rpmsg-lite's master marks its transmit
//!   buffers writable (vector 03).
//! - Not enforced by types: that the buffer areas of all rings sharing one
//!   memory are disjoint and hold no other buffer handle; this is the
//!   `# Safety` contract of [`Device::new`].
#![allow(unsafe_code)]

use core::cell::UnsafeCell;
use core::fmt;
use core::sync::atomic::{AtomicU8, Ordering};

use ipc_traits::buf::{BufState, Clean, Dirty, Invalidated, Readable, Received, ShmBuf, Unwritten};
use ipc_traits::shm::SharedMemory;

use crate::endian::Endian;
use crate::error::{broken, Error, Stats};
use crate::layout::{
    align_up, avail_size, desc_table_size, used_size, InWindow, Layout, DESC_SIZE, USED_ELEM_SIZE,
};
use crate::notify::{
    need_event, Suppression, AVAIL_F_NO_INTERRUPT, DESC_F_INDIRECT, DESC_F_NEXT, DESC_F_WRITE,
    USED_F_NO_NOTIFY,
};
use crate::ring::{Field, Fresh, RingMem};

/// The window range buffers named by the driver may occupy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferArea {
    offset: usize,
    len: usize,
}

impl BufferArea {
    /// `offset..offset + len` of the window.
    pub const fn new(offset: usize, len: usize) -> Self {
        Self { offset, len }
    }

    /// The first offset.
    pub const fn offset(&self) -> usize {
        self.offset
    }

    /// The length in bytes.
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Whether the area is empty (no buffer is ever accepted).
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// How a device ring behaves; fixed at creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceConfig {
    /// Flags or `EVENT_IDX` (what was negotiated).
    pub suppression: Suppression,
    /// Where buffers may lie: never over any ring, and disjoint from the
    /// areas of the other rings sharing the memory.
    pub buffers: BufferArea,
    /// The first available position to consume. 0 for a ring the driver
    /// just initialised (Linux zeroes it, rpmsg-lite's remote starts at 0);
    /// to attach to a running ring, the position the previous device
    /// instance reached.
    pub first_avail: u16,
}

impl DeviceConfig {
    /// Flags mode, starting at available position 0.
    pub const fn new(buffers: BufferArea) -> Self {
        Self {
            suppression: Suppression::Flags,
            buffers,
            first_avail: 0,
        }
    }
}

/// A buffer a ring popped and validated, as a plain record (no handle):
/// what [`Device::pop_readable_slot`], [`Device::pop_writable_slot`] and
/// [`crate::Driver::pop_used_slot`] return, and what goes back by `id`.
#[derive(Debug, PartialEq, Eq)]
#[must_use = "a popped slot must go back to its ring, or the peer loses it"]
// `repr(C)`, id first: in `Result<Option<Slot>, Error>` the error sits where
// the slot's first field does, and the compiler then carries that field in
// pieces (a byte apart from the rest) through every inlined step; the
// small id, not the offset, costs nothing there (as rpmsg's `RxSlot`).
#[repr(C)]
pub struct Slot {
    /// The descriptor id.
    pub id: u16,
    /// The length the peer reported (a readable buffer's descriptor length
    /// or a used length, at most the buffer's capacity), or for a buffer to
    /// fill the room offered.
    pub len: u32,
    /// The buffer's window offset (line-aligned, checked against the
    /// window and the buffer area).
    pub offset: usize,
}

/// What a one-pass pop ([`Device::pop_readable_with`],
/// [`Device::pop_writable_with`]) did: one flat value (a nested
/// `Option<Result<..>>` costs its caller tests and moves per message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Passed {
    /// The ring was empty (a pop's `Ok(None)`): nothing was read.
    Empty,
    /// The buffer was read and kept: it stays held.
    Kept,
    /// The buffer was read and went back, published; whether the driver
    /// wants a notification.
    Returned(bool),
    /// The buffer was read; giving it back failed (the push's or the
    /// publication's error).
    NotReturned(Error),
}

/// A buffer popped from the available ring.
#[must_use = "a popped buffer must go back with `push_used`, or the driver loses it"]
pub struct Popped<'m, M: ?Sized, S: BufState> {
    /// The descriptor index (what goes back in the used entry).
    pub head: u16,
    /// The descriptor's length: for a readable buffer the length to
    /// validate before reading, for a writable one the space offered.
    pub len: u32,
    /// The buffer.
    pub buf: ShmBuf<'m, M, S>,
}

impl<M: ?Sized, S: BufState> fmt::Debug for Popped<'_, M, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Popped")
            .field("head", &self.head)
            .field("len", &self.len)
            .field("buf", &self.buf)
            .finish()
    }
}

mod sealed {
    pub trait Sealed {}
}

/// Buffer states the device may hand back with [`Device::push_used`]:
/// everything except [`Dirty`] (a dirty buffer must be cleaned first, or
/// the driver reads stale bytes), that is the states with no dirty line
/// ([`Unwritten`]). Sealed.
pub trait Returnable: BufState + Unwritten + sealed::Sealed {}

macro_rules! returnable {
    ($($s:ty),+) => {$(
        impl sealed::Sealed for $s {}
        impl Returnable for $s {}
    )+};
}
returnable!(Received, Invalidated, Readable, Clean);

/// A line-rounded window range `lo..hi`, and the descriptor `addr`, `len`
/// that named it (so a descriptor naming the same again is recognised with
/// two compares: the O(1) path of [`Device::check`]).
#[derive(Clone, Copy)]
struct Span {
    lo: usize,
    hi: usize,
    addr: u64,
    /// Never 0 ([`Error::EmptyBuffer`]; an [`Entry`] of length 0 knows no
    /// span).
    len: u32,
}

/// Whether the device holds a descriptor's buffer, and as which kind of
/// handle. A held descriptor's span is its known span (set when it was
/// popped, and left alone while it is held: see [`Device::claim`]), so one
/// byte per entry records it.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Held {
    /// Not popped, or pushed back (0: an all-zero [`Entry`] holds nothing).
    No = 0,
    /// Popped for reading: the handle covers the span's whole lines.
    Readable,
    /// Popped for writing: the handle covers the descriptor's bytes.
    Writable,
}

/// What the device knows of one descriptor id: the span it last named
/// (see [`Device::claim`]; `len` 0: none) and whether the device holds it,
/// in one record (the `Held` byte sits where `Option<Span>` had padding).
/// All-zero bytes are "nothing known, not held" (`repr(C)`, plain integers,
/// `Held::No` = 0), so tables reset with one clear.
///
/// Without the feature `small`, `held`, `known` and `_zero` side by side
/// are one 32-bit value ([`Entry::state`]): one compare says "known, not
/// held" (the pop's usual case; with the feature, the pop tests `held` and
/// `len`, and no store keeps a `known` byte).
#[derive(Clone, Copy)]
#[repr(C)]
struct Entry {
    lo: usize,
    hi: usize,
    addr: u64,
    /// The descriptor's length; 0 when no span is known.
    len: u32,
    held: Held,
    /// Whether a span is known: `len != 0`, as a byte beside `held`.
    #[cfg(not(feature = "small"))]
    known: bool,
    /// Always 0: with `held` and `known`, one 32-bit word
    /// ([`Entry::state`]).
    #[cfg(not(feature = "small"))]
    _zero: u16,
}

impl Entry {
    /// Nothing known, not held.
    const NONE: Self = Self {
        lo: 0,
        hi: 0,
        addr: 0,
        len: 0,
        held: Held::No,
        #[cfg(not(feature = "small"))]
        known: false,
        #[cfg(not(feature = "small"))]
        _zero: 0,
    };

    /// `held`, `known` and `_zero` as one 32-bit value, as
    /// [`Entry::IDLE`] gives them for a known entry not held.
    #[cfg(not(feature = "small"))]
    #[inline(always)]
    fn state(&self) -> u32 {
        const AT: usize = core::mem::offset_of!(Entry, held);
        const {
            assert!(
                AT % 4 == 0
                    && core::mem::offset_of!(Entry, known) == AT + 1
                    && core::mem::offset_of!(Entry, _zero) == AT + 2
            )
        };
        // SAFETY: `Entry` is `repr(C)` with the bytes `held`, `known` and
        // `_zero` side by side at a 4-aligned offset (checked above; the
        // struct is 8-aligned), all initialised integers (a `Held` and a
        // `bool` are bytes); the pointer comes from `self`, whose bytes it
        // reads.
        unsafe {
            core::ptr::from_ref(self)
                .cast::<u8>()
                .add(AT)
                .cast::<u32>()
                .read()
        }
    }

    /// [`Entry::state`] of a known entry not held.
    #[cfg(not(feature = "small"))]
    const IDLE: u32 = u32::from_ne_bytes([Held::No as u8, 1, 0, 0]);

    /// The span this id last named, if any.
    #[cfg(not(feature = "small"))]
    #[inline(always)]
    fn span(&self) -> Option<Span> {
        (self.len != 0).then_some(self.as_span())
    }

    /// The entry's fields as a span (known only when `len` is not 0).
    #[inline(always)]
    fn as_span(&self) -> Span {
        Span {
            lo: self.lo,
            hi: self.hi,
            addr: self.addr,
            len: self.len,
        }
    }

    /// Records `span` as known (whether held is left alone).
    #[inline(always)]
    fn know(&mut self, span: Span) {
        self.lo = span.lo;
        self.hi = span.hi;
        self.addr = span.addr;
        self.len = span.len;
        #[cfg(not(feature = "small"))]
        {
            self.known = true;
        }
    }

    /// Forgets the known span (an entry not held).
    #[inline(always)]
    fn forget(&mut self) {
        self.len = 0;
        #[cfg(not(feature = "small"))]
        {
            self.known = false;
        }
    }

    /// Whether the device holds this id.
    #[inline(always)]
    fn is_held(&self) -> bool {
        self.held != Held::No
    }
}

impl Held {
    /// The capacity of the handle given out for `span`.
    #[inline(always)]
    fn capacity(self, span: &Span) -> usize {
        if self == Self::Writable {
            span.len as usize
        } else {
            span.hi - span.lo
        }
    }
}

/// A device's per-entry tables for up to `N` entries (which descriptor it
/// holds, and the span each descriptor last named: see `Device::claim`)
/// and its statistics, kept outside the [`Device`] so the ring value stays
/// small and moves cheaply. Declare it once (a `static`, or a local that outlives
/// the ring: embassy's `StackResources` pattern) and lend it to
/// [`Device::new`]; a `static` of it is zero bytes of image (`.bss`).
///
/// One device at a time: [`Device::new`] takes a lease on the tables
/// (refusing them with [`Error::TablesInUse`] while another device holds
/// them) and resets them; dropping the device gives them back, so a ring
/// attached again after a restart reuses them.
///
/// `K` tables side by side for `K` devices attached together
/// ([`Device::pair_in_window`] for `K` = 2): one lease and one reset for
/// all of them, given back when the last of the `K` devices is dropped
/// (they may be dropped apart).
pub struct DeviceTables<const N: usize, const K: usize = 1> {
    /// How many devices hold the tables: 0 when lent to none, set to `K`
    /// by the lease, one less per device dropped.
    leased: AtomicU8,
    tables: UnsafeCell<[Tables<N>; K]>,
}

/// What [`DeviceTables`] lends a device: what it knows of each descriptor
/// id and, with the feature `small`, its statistics, first (a short offset
/// from the tables' address: 16-bit Thumb loads and stores reach them,
/// where they would lie behind `N` entries otherwise). Without the
/// feature, the statistics live in the [`Device`] (a publication counts
/// without loading the tables' address). The entries come first otherwise
/// (an entry's address is the tables' plus the scaled id, with no offset
/// to add on the hot paths).
///
/// With the feature `small`, also the device's `fresh` (see [`Device`]),
/// which only non-coherent memory uses: a remote on coherent memory then
/// neither stores nor moves its two words (minimal-remote 16 bytes
/// smaller). All-zero bytes are [`Fresh::NONE`], what the attach sets.
#[repr(C)]
struct Tables<const N: usize> {
    #[cfg(feature = "small")]
    stats: Stats,
    #[cfg(feature = "small")]
    fresh: Fresh,
    /// By descriptor id: the span it last named, whether it is held.
    entries: [Entry; N],
}

/// The device's `fresh` (non-coherent memory only): in the [`Device`]
/// without the feature `small`, in its [`Tables`] with it.
#[cfg(not(feature = "small"))]
macro_rules! nc {
    ($d:expr) => {
        $d
    };
}
#[cfg(feature = "small")]
macro_rules! nc {
    ($d:expr) => {
        $d.t
    };
}

/// The device's statistics: in the [`Device`] without the feature `small`,
/// in its [`Tables`] with it.
#[cfg(not(feature = "small"))]
macro_rules! stats {
    ($d:expr) => {
        $d.stats
    };
}
#[cfg(feature = "small")]
macro_rules! stats {
    ($d:expr) => {
        $d.t.stats
    };
}

// SAFETY: the cell is reached only through the `&mut`s the devices of
// one lease build after winning it (`DeviceTables::lease`: an atomic
// compare-exchange of `leased` from 0 to `K`), one disjoint table each,
// and drop before they give it back (`Drop`: the last one brings the
// count to 0), so at most one device on any thread reaches each table at
// a time.
unsafe impl<const N: usize, const K: usize> Sync for DeviceTables<N, K> {}

impl<const N: usize, const K: usize> DeviceTables<N, K> {
    /// `K` tables for up to `N` entries each, lent to no device.
    pub const fn new() -> Self {
        Self {
            leased: AtomicU8::new(0),
            tables: UnsafeCell::new(
                [const {
                    Tables {
                        #[cfg(feature = "small")]
                        stats: Stats::ZERO,
                        #[cfg(feature = "small")]
                        fresh: Fresh::NONE,
                        entries: [Entry::NONE; N],
                    }
                }; K],
            ),
        }
    }

    /// Whether a device holds the tables now.
    pub fn is_leased(&self) -> bool {
        self.leased.load(Ordering::Relaxed) != 0
    }

    /// Leases the `K` tables to as many devices, reset (nothing known, not
    /// held, statistics zero), or [`Error::TablesInUse`] while devices of
    /// an earlier lease live. Each device built on one of them takes one
    /// count of the lease with it ([`Device`]'s `Drop` gives it back).
    #[inline(always)]
    #[expect(clippy::mut_from_ref, reason = "the lease hands the tables out once")]
    fn lease(&self) -> Result<&mut [Tables<N>; K], Error> {
        const { assert!(K >= 1 && K <= u8::MAX as usize) };
        // `K` fits a `u8` (asserted above).
        #[expect(clippy::cast_possible_truncation, reason = "asserted above")]
        let k = K as u8;
        if self
            .leased
            .compare_exchange(0, k, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return Err(Error::TablesInUse);
        }
        // SAFETY: the exchange above won the lease: no other device
        // reaches the cell until the `K` devices built on it, dropped,
        // give it back (`Drop`), and these references die with them.
        let t = unsafe { &mut *self.tables.get() };
        // All-zero bytes are `Stats::ZERO`, `Fresh::NONE` and `Entry::NONE` (`Tables`:
        // `repr(C)` of plain integers and `Held::No` = 0). One volatile
        // store per word, all `K` tables in one loop: LLVM turns a plain
        // zeroing loop (or `fill`) back into a `memset` call, which links
        // compiler_builtins' memclr8 (174 B on thumbv7em) for this one use.
        let words = core::ptr::from_mut(t).cast::<u32>();
        for i in 0..size_of::<[Tables<N>; K]>() / 4 {
            // SAFETY: `t` is the lease's exclusive reference (above) to
            // `[Tables<N>; K]`, aligned to at least 4 (it holds `u32`s) and
            // `size_of::<[Tables<N>; K]>()` bytes long, so word `i` lies
            // inside it; zero is a valid value of every field.
            unsafe { words.add(i).write_volatile(0) };
        }
        Ok(t)
    }
}

impl<const N: usize, const K: usize> Default for DeviceTables<N, K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize, const K: usize> fmt::Debug for DeviceTables<N, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceTables")
            .field("entries", &N)
            .field("tables", &K)
            .field("leased", &self.is_leased())
            .finish()
    }
}

/// [`Device`]'s `armed_at` while re-arming with `avail_event` not known
/// armed (no `u16` position; positive as an `i32` after an xor with
/// one, see [`Device::must_rearm`]).
const NOT_ARMED: u32 = 1 << 16;

/// [`Device`]'s `armed_at` while not re-arming (flags mode, or
/// notifications disabled): negative as an `i32` after an xor with any
/// `u16` position.
const NO_REARM: u32 = 1 << 31;

/// The device side of one split virtqueue over `M`, in byte order `E`, for
/// up to `N` entries, its per-entry tables lent by a [`DeviceTables`]. See
/// [`crate::driver::Driver`] for an example with both sides.
pub struct Device<'m, M: SharedMemory + ?Sized, E: Endian, const N: usize> {
    ring: RingMem<'m, M, E>,
    /// [`DeviceConfig::suppression`].
    suppression: Suppression,
    /// [`DeviceConfig::buffers`] as the range `area_lo..area_end` (the end
    /// computed once: the attach checked it; `first_avail` lives on as
    /// `last_avail`).
    area_lo: usize,
    /// The end of [`DeviceConfig::buffers`].
    area_end: usize,
    /// The leased tables: which descriptor is held, the span each last
    /// named (with the feature `small`, the statistics).
    t: &'m mut Tables<N>,
    /// The statistics (with the feature `small`, in `t`).
    #[cfg(not(feature = "small"))]
    stats: Stats,
    /// The lease on the tables `t` lives in: one count of it, given back
    /// when the device is dropped.
    lease: &'m AtomicU8,
    last_avail: u16,
    avail_seen: u16,
    used_idx: u16,
    used_published: u16,
    /// Whether `avail_event` is re-armed whenever the ring is found empty
    /// (`EVENT_IDX` and the driver is asked to notify; `NO_REARM` after
    /// [`Device::disable_notifications`] and in flags mode), and if so
    /// the position this device last stored in `avail_event` *and*
    /// executed a full fence after, so every later load of `avail.idx` is
    /// ordered after that store (the re-check a pop does on an empty
    /// ring); `NOT_ARMED` when unknown (at attach). One `u32` for both, so
    /// the per-pass question (`Device::must_rearm`) is one test.
    armed_at: u32,
    /// Available-entry lines invalidated since the last fetch of
    /// `avail.idx` ([`RingMem::invalidate_entry`]). With the feature
    /// `small`, in the tables.
    #[cfg(not(feature = "small"))]
    fresh: Fresh,
    /// The driver's last answer ([`Device::publish_used`]) was "no
    /// notification": the next publication skips the unfenced first read
    /// (it would most likely say "no" again and be read once more after
    /// the fence) and goes straight to the fence. Without the feature
    /// `small`, the last answer to a publication that did not re-arm (one
    /// that re-arms reads no first answer, and leaves this as it was). A
    /// hint only: either way the answer comes from the fenced read when
    /// the first read says "no". Unused with the feature `small` on
    /// coherent memory, where every publication reads after the fence.
    driver_declined: bool,
    /// Non-coherent memory, flags mode: the fenced read of `avail.flags` at
    /// the last publication loaded the line that also holds `avail.idx`,
    /// and nothing was stored into this device's suppression field since.
    /// A [`Device::pop_readable_after_publish`] that fetches the index reads
    /// it from that line without invalidating it again. Any fetch clears
    /// it.
    idx_line_loaded: bool,
    /// A used entry was written since the last publication (entries in
    /// the index's line already holding what was pushed are not written, nor cleaned).
    entries_dirty: bool,
    /// The ring's `num` while it works; 0 once an index jump broke it
    /// ([`Device::is_broken`]). The hot paths test ids and index jumps
    /// against it, so that one compare also refuses everything on a broken
    /// ring (no test of a separate flag first); breaking also leaves the
    /// device with nothing known to pop or pushed to publish
    /// (`Device::break_ring`), so every path reaches such a compare.
    live_num: u16,
}

impl<'m, M: SharedMemory + ?Sized, E: Endian, const N: usize> Device<'m, M, E, N> {
    /// A publication reads the driver's answer only after its fence (no
    /// unfenced first read): with the feature `small` on coherent memory.
    const FENCED_READ_ONLY: bool = cfg!(feature = "small") && M::COHERENT;

    /// Attaches to the ring at `layout`, which the driver initialised. Writes
    /// nothing (rpmsg-lite's remote init writes nothing either: vectors
    /// README); takes `used.idx` from memory (rpmsg-lite's master pre-loads
    /// used entries: vector 01) and starts consuming at
    /// `config.first_avail`. Leases `tables` (reset: no descriptor held or
    /// known) until the device is dropped.
    ///
    /// # Errors
    ///
    /// A layout error ([`Error::RingOutsideWindow`] and the others): the layout does not fit the window or the cache
    /// line rule, has more than `N` entries, or the buffer area lies outside
    /// the window or over the ring ([`Error::BadBufferArea`]);
    /// [`Error::TablesInUse`]: another device holds `tables`.
    ///
    /// # Safety
    ///
    /// While this ring or a buffer it handed out lives, no buffer handle
    /// over `config.buffers` exists on this core except those this ring
    /// hands out: the areas of rings sharing `mem` are disjoint, and no pool
    /// of this core covers them.
    pub unsafe fn new(
        mem: &'m M,
        layout: Layout,
        config: DeviceConfig,
        tables: &'m DeviceTables<N>,
    ) -> Result<Self, Error> {
        let ring = RingMem::new(mem, layout, N)?;
        // SAFETY: forwarded from this function's contract.
        unsafe { Self::attach(ring, config, tables) }
    }

    /// [`Device::new`] on a layout already checked against its window
    /// ([`Layout::check_in`]), which is not checked again.
    ///
    /// # Errors
    ///
    /// As [`Device::new`], less the layout's own window and cache-line
    /// errors.
    ///
    /// # Safety
    ///
    /// As [`Device::new`], for the window `layout` holds.
    pub unsafe fn in_window(
        layout: InWindow<'m, M>,
        config: DeviceConfig,
        tables: &'m DeviceTables<N>,
    ) -> Result<Self, Error> {
        let ring = RingMem::checked(layout, N)?;
        // SAFETY: forwarded from this function's contract.
        unsafe { Self::attach(ring, config, tables) }
    }

    /// Two devices, as [`Device::new`] each, on one lease of the two
    /// tables of `tables` (the first device gets the first): both rings
    /// are checked before the lease is taken, so an error leaves `tables`
    /// as it was. The tables go back once both devices are dropped.
    ///
    /// # Errors
    ///
    /// As [`Device::new`]: the first ring's layout and buffer area, the
    /// second's, then a memory error reading either used index,
    /// [`Error::TablesInUse`] last.
    ///
    /// # Safety
    ///
    /// As [`Device::new`], for both rings; the two buffer areas are
    /// disjoint.
    pub unsafe fn new_pair(
        mem: &'m M,
        layouts: [Layout; 2],
        configs: [DeviceConfig; 2],
        tables: &'m DeviceTables<N, 2>,
    ) -> Result<(Self, Self), Error> {
        let r0 = RingMem::new(mem, layouts[0], N)?;
        Self::areas_clear(&r0, &configs[0])?;
        let r1 = RingMem::new(mem, layouts[1], N)?;
        Self::areas_clear(&r1, &configs[1])?;
        let (u0, u1) = (Self::fresh_used(&r0)?, Self::fresh_used(&r1)?);
        Self::pair_of([r0, r1], configs, [u0, u1], tables)
    }

    /// [`Device::new_pair`] on layouts already checked against their
    /// window ([`Layout::check_in`]), which are not checked again.
    ///
    /// # Errors
    ///
    /// As [`Device::new_pair`], less the layouts' own window and
    /// cache-line errors.
    ///
    /// # Safety
    ///
    /// As [`Device::new_pair`].
    // Inlined: the boot's one call site then keeps the pair's fields in
    // registers up to the link's stores (a `Result` of two devices out of
    // line comes back through the stack: minimal-remote 94 bytes more).
    #[cfg_attr(feature = "small", inline(always))]
    pub unsafe fn pair_in_window(
        layouts: [InWindow<'m, M>; 2],
        configs: [DeviceConfig; 2],
        tables: &'m DeviceTables<N, 2>,
    ) -> Result<(Self, Self), Error> {
        let [l0, l1] = layouts;
        let r0 = RingMem::checked(l0, N)?;
        Self::areas_clear(&r0, &configs[0])?;
        let r1 = RingMem::checked(l1, N)?;
        Self::areas_clear(&r1, &configs[1])?;
        // Both rings' buffer areas checked before either ring is read: the
        // window's length is still known then (the reads' fences make the
        // compiler load it again for the second check).
        let (u0, u1) = (Self::fresh_used(&r0)?, Self::fresh_used(&r1)?);
        Self::pair_of([r0, r1], configs, [u0, u1], tables)
    }

    /// The two devices of [`Device::new_pair`] over rings checked
    /// ([`Device::areas_clear`]; `used`: [`Device::fresh_used`] of each),
    /// on one lease of `tables`.
    #[inline(always)]
    fn pair_of(
        rings: [RingMem<'m, M, E>; 2],
        configs: [DeviceConfig; 2],
        used: [u16; 2],
        tables: &'m DeviceTables<N, 2>,
    ) -> Result<(Self, Self), Error> {
        let [t0, t1] = tables.lease()?;
        Ok((
            Self::with(rings[0], configs[0], used[0], t0, &tables.leased),
            Self::with(rings[1], configs[1], used[1], t1, &tables.leased),
        ))
    }

    /// The rest of [`Device::new`] and [`Device::in_window`], over the
    /// ring's checked memory.
    ///
    /// # Safety
    ///
    /// As [`Device::new`].
    #[inline(always)]
    unsafe fn attach(
        ring: RingMem<'m, M, E>,
        config: DeviceConfig,
        tables: &'m DeviceTables<N>,
    ) -> Result<Self, Error> {
        Self::areas_clear(&ring, &config)?;
        let used = Self::fresh_used(&ring)?;
        let [t] = tables.lease()?;
        Ok(Self::with(ring, config, used, t, &tables.leased))
    }

    /// The buffer area of `config` inside the window and on no line of the
    /// ring.
    #[inline(always)]
    fn areas_clear(ring: &RingMem<'m, M, E>, config: &DeviceConfig) -> Result<(), Error> {
        let (mem, layout) = (ring.mem, ring.layout);
        let area = config.buffers;
        let end = area
            .offset
            .checked_add(area.len)
            .filter(|&e| e <= mem.len())
            .ok_or(Error::BadBufferArea)?;
        let line = M::LINE;
        // Each area by its scalars (no array of the three on the stack: a
        // loop over `Layout::areas` built one at each of the two inlined
        // attaches of a small image).
        let clear = |off: usize, len: usize| {
            let lo = off & !(line - 1);
            let hi = align_up(off + len, line).ok_or(Error::Overflow)?;
            if lo < end && area.offset < hi {
                return Err(Error::BadBufferArea);
            }
            Ok(())
        };
        let n = usize::from(layout.num());
        let (desc, avail) = (layout.desc_offset(), layout.avail_offset());
        if cfg!(feature = "small") && avail == desc + desc_table_size(n) {
            // The available ring right behind the descriptors (every
            // legacy layout: known at build time where the layout is): the
            // lines of the two are one run, and a range clear of the run
            // is clear of both.
            clear(desc, desc_table_size(n) + avail_size(n))?;
        } else {
            clear(desc, desc_table_size(n))?;
            clear(avail, avail_size(n))?;
        }
        clear(layout.used_offset(), used_size(n))
    }

    /// `used.idx`, the whole used ring invalidated first.
    #[inline(always)]
    fn fresh_used(ring: &RingMem<'m, M, E>) -> Result<u16, Error> {
        let layout = ring.layout;
        // The whole used ring, not only `used.idx`: this core may hold stale
        // lines of it (a warm cache from before the driver laid the ring
        // out, or from a previous session), and the device's first partial
        // store into such a line (`avail_event`, an entry, `used.flags`)
        // would write the stale bytes around it back over what the driver
        // wrote there — rpmsg-lite's master parks its transmit buffers as
        // used entries (vector 01), and a stale line clobbered the last one.
        // At attach this core has published nothing, so nothing of its own
        // is discarded.
        ring.invalidate(layout.used_offset(), used_size(usize::from(layout.num())))?;
        ring.load_u16(Field::UsedIdx)
    }

    /// The device over `ring`, attached with `used` as `used.idx`, on the
    /// leased (reset) table `t`, holding one count of `lease`.
    #[inline(always)]
    fn with(
        ring: RingMem<'m, M, E>,
        config: DeviceConfig,
        used: u16,
        t: &'m mut Tables<N>,
        lease: &'m AtomicU8,
    ) -> Self {
        let num = ring.layout.num();
        Self {
            ring,
            suppression: config.suppression,
            area_lo: config.buffers.offset,
            // Checked not to overflow by `areas_clear`.
            area_end: config.buffers.offset.wrapping_add(config.buffers.len),
            t,
            #[cfg(not(feature = "small"))]
            stats: Stats::ZERO,
            lease,
            last_avail: config.first_avail,
            avail_seen: config.first_avail,
            used_idx: used,
            used_published: used,
            // A zeroed ring asks for notifications (flags 0, event 0), and
            // so does a device that just attached.
            armed_at: if config.suppression == Suppression::EventIdx {
                NOT_ARMED
            } else {
                NO_REARM
            },
            driver_declined: false,
            idx_line_loaded: false,
            entries_dirty: false,
            #[cfg(not(feature = "small"))]
            fresh: Fresh::NONE,
            live_num: num,
        }
    }

    /// The window the ring and its buffers lie in.
    #[inline(always)]
    pub fn mem(&self) -> &'m M {
        self.ring.mem
    }

    /// The ring's layout.
    pub fn layout(&self) -> &Layout {
        &self.ring.layout
    }

    /// The statistics so far.
    pub fn stats(&self) -> &Stats {
        &stats!(self)
    }

    /// Whether an index jump broke the ring.
    pub fn is_broken(&self) -> bool {
        self.live_num == 0
    }

    /// Buffers popped and not yet pushed back: a pass over the per-entry
    /// table (O(`num`); the pop and push paths keep no count).
    pub fn held(&self) -> u16 {
        let n = self.t.entries.iter().filter(|e| e.is_held()).count();
        // Only ids below `num` (a `u16`) are ever held.
        u16::try_from(n).unwrap_or(u16::MAX)
    }

    /// The next available position to consume.
    pub fn next_avail(&self) -> u16 {
        self.last_avail
    }

    /// The notification suppression this ring was set up with.
    #[inline]
    pub fn suppression(&self) -> Suppression {
        self.suppression
    }

    /// Whether every entry the last read of `avail.idx` revealed was
    /// popped (the next pop reads the index again).
    #[inline]
    pub fn consumed_all_seen(&self) -> bool {
        self.last_avail == self.avail_seen
    }

    /// Entries the driver has made available that this device has not
    /// popped yet, from a fresh read of `avail.idx`. When the driver
    /// restarts, these are the buffers it handed over that nobody will
    /// consume: read them before the driver lays the ring out again.
    ///
    /// # Errors
    ///
    /// [`Error::AvailIndexJump`] (counted; the ring is broken from then on)
    /// when the index claims more entries than the ring holds;
    /// [`Error::Broken`], [`Error::Memory`].
    #[inline]
    pub fn pending(&mut self) -> Result<u16, Error> {
        self.pending_inner(false)
    }

    /// [`Device::pending`]; `reuse`: from the line the last fenced
    /// publication loaded, if that is still current (`idx_line_loaded`).
    #[inline]
    fn pending_inner(&mut self, reuse: bool) -> Result<u16, Error> {
        if self.is_broken() {
            return broken();
        }
        // Read before the acquire load of the index, after which fields of
        // `self` would be loaded again.
        let last = self.last_avail;
        let idx = self.fetch_avail_idx(reuse)?;
        let pending = idx.wrapping_sub(last);
        if pending > self.ring.layout.num() {
            return Err(self.jump());
        }
        Ok(pending)
    }

    /// A failed fetch of `avail.idx`: `e`, or on a broken ring
    /// [`Error::Broken`] (what a broken ring answers before touching
    /// memory elsewhere).
    #[cold]
    fn refuse_fetch(&self, e: Error) -> Error {
        if self.is_broken() {
            Error::Broken
        } else {
            e
        }
    }

    /// `avail.idx` moved more than `live_num` past `last_avail`: on a
    /// working ring an index jump, which breaks it (counted); on a broken
    /// one, [`Error::Broken`].
    #[cfg_attr(not(feature = "small"), cold, inline(never))]
    fn jump(&mut self) -> Error {
        if self.is_broken() {
            return Error::Broken;
        }
        self.break_ring();
        self.fail(Error::AvailIndexJump)
    }

    /// Marks the ring broken. Nothing is left known to pop
    /// (`avail_seen`), so every pop fetches the index and compares it
    /// against `live_num`, now 0; nothing is left to publish
    /// (`used_idx`), so a publication finds no entry and says the ring is
    /// broken. (Entries pushed and not published stay invisible to the
    /// driver, as every later call fails.)
    fn break_ring(&mut self) {
        self.live_num = 0;
        self.avail_seen = self.last_avail;
        self.used_idx = self.used_published;
    }

    /// Pops the next buffer to read (driver to device).
    ///
    /// Accepts descriptors with or without `VRING_DESC_F_WRITE`
    /// (rpmsg-lite's master sets it on its transmit buffers). `Ok(None)`
    /// means the ring is empty and, with notifications on, that the driver
    /// will notify for the next entry (`EVENT_IDX`: `avail_event` was
    /// re-armed and re-checked): it is safe to sleep until the doorbell.
    ///
    /// # Errors
    ///
    /// Peer errors (counted): [`Error::AvailIndexJump`] (the ring is broken
    /// from then on); the others consume the entry, which is skipped (call
    /// again): [`Error::DescriptorIndexOutOfRange`],
    /// [`Error::DescriptorInFlight`], [`Error::UnexpectedNext`],
    /// [`Error::UnexpectedIndirect`], [`Error::EmptyBuffer`],
    /// [`Error::AddressOutsideWindow`], [`Error::MisalignedBuffer`],
    /// [`Error::OutsideBufferArea`], [`Error::OverlappingBuffer`]. Also
    /// [`Error::Broken`], [`Error::Memory`].
    ///
    /// A descriptor rejected for its contents (every skipped error except
    /// the first two: its id is in range and not held) goes back to the
    /// driver as a used entry of length 0 with the next publication,
    /// counted in [`Stats::rejected_returned`]: the driver loses one
    /// message, not the buffer.
    #[allow(clippy::type_complexity)]
    #[inline]
    pub fn pop_readable(&mut self) -> Result<Option<Popped<'m, M, Received>>, Error> {
        self.pop_readable_inner(false)
    }

    /// [`Device::pop_readable`] as the look that straight follows a
    /// [`Device::publish_used`] or [`Device::publish_used_and_rearm`] in
    /// the same pass: in flags mode on non-coherent memory that
    /// publication's fenced read of `avail.flags` loaded the line of
    /// `avail.idx` too, and this look reads the index from it (the contract
    /// of [`crate::Driver::pop_used_after_publish`]: nothing between the
    /// two waited for or consumed a doorbell).
    ///
    /// # Errors
    ///
    /// As [`Device::pop_readable`].
    #[allow(clippy::type_complexity)]
    #[inline]
    pub fn pop_readable_after_publish(&mut self) -> Result<Option<Popped<'m, M, Received>>, Error> {
        self.pop_readable_inner(true)
    }

    #[allow(clippy::type_complexity)]
    #[inline(always)]
    fn pop_readable_inner(
        &mut self,
        reuse: bool,
    ) -> Result<Option<Popped<'m, M, Received>>, Error> {
        let Some(p) = self.pop(Held::Readable, reuse, true)? else {
            return Ok(None);
        };
        // SAFETY: `pop` recorded `p.offset..+p.capacity` (rounded to whole
        // lines) as held by this ring after checking it lies in the buffer
        // area and overlaps no other held buffer; the area holds no other
        // handle (`new`'s contract), and the record stays until the handle
        // comes back through `push_used`.
        // `check` validated the range: line-aligned, inside the buffer area,
        // which lies inside the window (`new`).
        let buf = unsafe {
            ShmBuf::<_, Received>::from_validated_slot(self.ring.mem, p.span.lo, p.capacity)
        };
        Ok(Some(Popped {
            head: p.head,
            len: p.span.len,
            buf,
        }))
    }

    /// Pops the next buffer to fill (device to driver); it must carry
    /// `VRING_DESC_F_WRITE`.
    ///
    /// # Errors
    ///
    /// As [`Device::pop_readable`], plus [`Error::NotDeviceWritable`].
    #[allow(clippy::type_complexity)]
    #[inline]
    pub fn pop_writable(&mut self) -> Result<Option<Popped<'m, M, Dirty>>, Error> {
        let Some(p) = self.pop(Held::Writable, false, true)? else {
            return Ok(None);
        };
        // SAFETY: as in `pop_readable`; a writable buffer covers exactly the
        // descriptor's bytes (its length is a whole number of lines).
        // The range was validated as in `pop_readable`.
        let buf = unsafe {
            ShmBuf::<_, Dirty>::from_validated_slot(self.ring.mem, p.span.lo, p.capacity)
        };
        Ok(Some(Popped {
            head: p.head,
            len: p.span.len,
            buf,
        }))
    }

    /// [`Device::pop_readable`] as a plain record ([`Slot`]): the
    /// descriptor id, the buffer's window offset and the descriptor's
    /// length, validated exactly as there (the length is at most the
    /// buffer's line-rounded capacity, and `offset + len` lies inside the
    /// buffer area). No handle is built and no line is invalidated: the
    /// caller invalidates what it reads. The slot goes back with
    /// [`Device::push_used_slot`].
    ///
    /// # Errors
    ///
    /// As [`Device::pop_readable`].
    #[inline]
    pub fn pop_readable_slot(&mut self) -> Result<Option<Slot>, Error> {
        self.pop_readable_slot_inner(false)
    }

    /// [`Device::pop_readable_slot`] as the look that straight follows a
    /// publication (the contract of [`Device::pop_readable_after_publish`]).
    ///
    /// # Errors
    ///
    /// As [`Device::pop_readable`].
    #[inline]
    pub fn pop_readable_slot_after_publish(&mut self) -> Result<Option<Slot>, Error> {
        self.pop_readable_slot_inner(true)
    }

    #[inline(always)]
    fn pop_readable_slot_inner(&mut self, reuse: bool) -> Result<Option<Slot>, Error> {
        self.pop_slot(Held::Readable, reuse)
    }

    /// The pop behind every slot pop, readable or writable. With the
    /// feature `small`, one out-of-line copy of the validation shared by a
    /// remote's two rings (a call per pop); without it, inlined into each
    /// caller (no call, a copy per call site).
    #[cfg_attr(feature = "small", inline(never))]
    #[cfg_attr(not(feature = "small"), inline(always))]
    fn pop_slot(&mut self, kind: Held, reuse: bool) -> Result<Option<Slot>, Error> {
        Ok(self.pop(kind, reuse, true)?.map(|p| Slot {
            id: p.head,
            offset: p.span.lo,
            len: p.span.len,
        }))
    }

    /// [`Device::pop_writable`] as a plain record ([`Slot`]): `len` is the
    /// room offered (a whole number of lines, the buffer's capacity).
    ///
    /// # Errors
    ///
    /// As [`Device::pop_writable`].
    #[inline]
    pub fn pop_writable_slot(&mut self) -> Result<Option<Slot>, Error> {
        self.pop_slot(Held::Writable, false)
    }

    /// Returns a slot popped with [`Device::pop_readable_slot`] or
    /// [`Device::pop_writable_slot`] as a used entry of `len` bytes (`None`:
    /// the descriptor's whole length, as [`Device::push_used_whole`]).
    /// Visible at the next [`Device::publish_used`]. A writer cleans what
    /// it wrote into the buffer before this.
    ///
    /// # Errors
    ///
    /// [`Error::ForeignBuffer`] (`id` is not held), [`Error::InvalidLength`]
    /// (`len` beyond the descriptor), [`Error::Broken`], [`Error::Memory`].
    #[cfg_attr(feature = "small", inline(never))]
    #[cfg_attr(not(feature = "small"), inline)]
    pub fn push_used_slot(&mut self, id: u16, len: Option<u32>) -> Result<(), Error> {
        // `live_num` is 0 on a broken ring: one compare refuses both.
        if id < self.live_num {
            // SAFETY: `id < live_num <= num <= N`: `RingMem::new` (in
            // `Device::new`) refused a layout of more than `N` entries.
            let e = unsafe { self.t.entries.get_unchecked_mut(usize::from(id)) };
            // A held entry's span is known (`len` not 0).
            #[cfg(feature = "small")]
            if e.is_held() {
                // Released before the entry is written (held again if that
                // fails), as `push_held` does; the write is `add_used`'s.
                let desc_len = e.len;
                let len = len.unwrap_or(desc_len);
                if len > desc_len {
                    return Err(Error::InvalidLength);
                }
                let held = core::mem::replace(&mut e.held, Held::No);
                return self.add_used(id, len).inspect_err(|_| {
                    // SAFETY: as above.
                    unsafe { self.t.entries.get_unchecked_mut(usize::from(id)) }.held = held;
                });
            }
            #[cfg(not(feature = "small"))]
            if e.is_held() {
                return Self::push_held(
                    &self.ring,
                    &mut self.used_idx,
                    &mut self.entries_dirty,
                    e,
                    id,
                    len,
                );
            }
        }
        Err(self.refuse_push())
    }

    /// [`Device::pop_readable_slot`], then `read` on the slot, then (when
    /// `read` says the buffer goes back: `true`) [`Device::push_used_slot`]
    /// of the descriptor's whole length and
    /// [`Device::publish_used_and_rearm`], in one call: a receive that
    /// copies out (what it read, `read` keeps in its captures). A buffer
    /// `read` keeps (`false`) stays held: it goes back later with
    /// [`Device::push_used_slot`]. See [`Passed`].
    ///
    /// The same errors, statistics and ring contents as those calls in
    /// that order. Without the feature `small`, on coherent direct memory,
    /// one pass: the entry is marked held only when `read` keeps it
    /// (nothing can look at the device while `read` runs: it holds
    /// `&mut self`), and the used entry of the id just popped is written
    /// without looking the id up and testing it again.
    ///
    /// # Errors
    ///
    /// As [`Device::pop_readable`] (nothing popped, `read` not called).
    #[inline(always)]
    pub fn pop_readable_with(&mut self, read: impl FnOnce(&Slot) -> bool) -> Result<Passed, Error> {
        self.pop_with(false, read)
    }

    /// [`Device::pop_writable_slot`], then `write` on the slot, then (when
    /// `write` says the buffer goes back: `true`) [`Device::push_used_slot`]
    /// of the descriptor's whole length and [`Device::publish_used`], in
    /// one call: a send that copies in. A buffer `write` keeps (`false`)
    /// stays held: it goes back later with [`Device::push_used_slot`]. A
    /// writer cleans what it wrote before it says `true`. See [`Passed`].
    ///
    /// As [`Device::pop_readable_with`]: the same errors, statistics and
    /// ring contents as the split calls; one pass without the feature
    /// `small` on coherent direct memory.
    ///
    /// # Errors
    ///
    /// As [`Device::pop_writable`] (nothing popped, `write` not called).
    #[inline(always)]
    pub fn pop_writable_with(
        &mut self,
        write: impl FnOnce(&Slot) -> bool,
    ) -> Result<Passed, Error> {
        self.pop_with(true, write)
    }

    /// [`Device::pop_readable_with`] (re-arming: the publication of a
    /// receive pass) or [`Device::pop_writable_with`].
    #[inline(always)]
    fn pop_with(&mut self, writable: bool, f: impl FnOnce(&Slot) -> bool) -> Result<Passed, Error> {
        let kind = if writable {
            Held::Writable
        } else {
            Held::Readable
        };
        #[cfg(not(feature = "small"))]
        if M::COHERENT && M::DIRECT {
            let Some(p) = self.pop(kind, false, false)? else {
                return Ok(Passed::Empty);
            };
            let slot = Slot {
                id: p.head,
                len: p.span.len,
                offset: p.span.lo,
            };
            let back = f(&slot);
            let id = slot.id;
            if !back {
                // SAFETY: `id < num <= N` (`check` tested it; `RingMem::new`
                // refused a layout of more than `N` entries).
                unsafe { self.t.entries.get_unchecked_mut(usize::from(id)) }.held = kind;
                return Ok(Passed::Kept);
            }
            // `push_held` of the id just popped (in range, on a working
            // ring, not held: `pop` would have refused it) with its
            // descriptor length; on coherent direct memory the entry's
            // stores cannot fail, and no line is dirty to record.
            let at = self.used_idx;
            if let Err(e) = self.ring.write_used_entry(at, u32::from(id), slot.len) {
                return Ok(Passed::NotReturned(e));
            }
            self.used_idx = at.wrapping_add(1);
            return Ok(match self.publish(!writable) {
                Ok(wanted) => Passed::Returned(wanted),
                Err(e) => Passed::NotReturned(e),
            });
        }
        let Some(slot) = self.pop_slot(kind, false)? else {
            return Ok(Passed::Empty);
        };
        if !f(&slot) {
            return Ok(Passed::Kept);
        }
        let returned = self.push_used_slot(slot.id, None).and_then(|()| {
            if writable {
                self.publish_used()
            } else {
                self.publish_used_and_rearm()
            }
        });
        Ok(match returned {
            Ok(wanted) => Passed::Returned(wanted),
            Err(e) => Passed::NotReturned(e),
        })
    }

    /// A push of an id this device does not hold: [`Error::Broken`] on a
    /// broken ring, else [`Error::ForeignBuffer`].
    #[cfg_attr(not(feature = "small"), cold, inline(never))]
    fn refuse_push(&self) -> Error {
        if self.is_broken() {
            Error::Broken
        } else {
            Error::ForeignBuffer
        }
    }

    /// The pop behind every pop. `mark`: the entry popped is marked held
    /// (`false`: the caller returns it before it gives up `&mut self`, or
    /// marks it then: [`Device::pop_readable_with`]).
    #[inline(always)]
    fn pop(&mut self, kind: Held, reuse: bool, mark: bool) -> Result<Option<Pop>, Error> {
        // A copy (see `RingMem`'s `Copy`) and the position, read before the
        // acquire load of `avail.idx` (after which fields of `self` would be
        // loaded again). Nothing below moves `last_avail` before the pop
        // does.
        let ring = self.ring;
        let pos = self.last_avail;
        // What `last_avail` becomes; also the fetch's test below
        // (`idx - next` is the count of entries beyond this one).
        let next = pos.wrapping_add(1);
        // A broken ring knows no entry (`break_ring`): it gets here, where
        // `fetch_pending` refuses any entry and the empty case below says
        // it is broken.
        if pos == self.avail_seen {
            // With the feature `small`, a loop that runs at most twice
            // (re-arming makes `must_rearm` false): one copy of the fetch.
            // Otherwise no loop (the re-check after re-arming has its own
            // copy, off the hot path, which then needs no loop header).
            #[cfg_attr(not(feature = "small"), allow(clippy::never_loop))]
            let seen = loop {
                // Checked against `live_num`: an index jump breaks the
                // ring, and on a broken ring (`live_num` 0) any entry at
                // all is refused (`jump`); the empty case tests for a
                // broken ring.
                let bound = self.live_num;
                let idx = match self.fetch_avail_idx(reuse) {
                    Ok(i) => i,
                    Err(e) => return Err(self.refuse_fetch(e)),
                };
                let pending = idx.wrapping_sub(pos);
                // When entries came, the index itself is what `avail_seen`
                // becomes.
                if cfg!(feature = "small") {
                    // Two tests (smaller code on a Cortex-M4 remote).
                    if pending > bound {
                        return Err(self.jump());
                    }
                    if pending != 0 {
                        break idx;
                    }
                } else {
                    // One test when entries came (the usual case: 1 to
                    // `bound`, wrapping 0 below them).
                    if idx.wrapping_sub(next) < bound {
                        break idx;
                    }
                    if pending != 0 {
                        return Err(self.jump());
                    }
                }
                if self.is_broken() {
                    // Through `Result<()>`: a `Result<Option<Pop>>` out of
                    // line puts the error byte over the span's offset,
                    // which the hot path then carries in pieces.
                    return broken::<()>().map(|()| None);
                }
                if !self.must_rearm() {
                    return Ok(None);
                }
                // Going idle with notifications on: re-arm, then re-check,
                // or an entry published before the driver saw the new
                // `avail_event` would never be notified (see `rearm`).
                self.rearm()?;
                #[cfg(not(feature = "small"))]
                match self.pending()? {
                    0 => return Ok(None),
                    p => break pos.wrapping_add(p),
                }
            };
            self.avail_seen = seen;
        }
        let l = ring.layout;
        ring.invalidate_entry(
            &mut nc!(self).fresh,
            l.avail_offset() + 2,
            l.avail_slot(ring.slot(pos)),
            2,
        )?;
        let head = ring.read_avail_entry(pos)?;
        self.last_avail = next;
        match self.check(&ring, head, kind, mark) {
            // `check` marked `head` held (`mark`) and counted it.
            Ok(p) => Ok(Some(p)),
            Err(e) => Err(self.reject(head, e)),
        }
    }

    /// Counts the rejection of descriptor `head` for `e` (returned) and,
    /// when the id is one the driver may post (in range) and not one this
    /// device holds, so the rejection concerns that descriptor's contents
    /// (flags, address, length), hands the buffer back as a used entry of
    /// length 0 with the next publication (counted in
    /// [`Stats::rejected_returned`]). So a corrupted descriptor costs the
    /// driver one message, not its buffer for good; ours writes a
    /// descriptor returned that way afresh on its next add. Golden
    /// exchanges never get here: honest drivers post valid descriptors.
    ///
    /// With the feature `small`, inlined into its one caller (the pop):
    /// minimal-remote 58 bytes smaller than the call and its own frame.
    #[cold]
    #[cfg_attr(feature = "small", inline(always))]
    fn reject(&mut self, head: u16, e: Error) -> Error {
        self.hand_back(head, &e);
        self.fail(e)
    }

    /// [`Device::reject`]'s hand-back.
    #[inline(always)]
    fn hand_back(&mut self, head: u16, e: &Error) {
        let contents = !matches!(
            e,
            Error::DescriptorIndexOutOfRange | Error::DescriptorInFlight | Error::Memory(_)
        );
        // A contents error comes from `validate`, after `check` found
        // `head < num` (its first test, `DescriptorIndexOutOfRange`).
        if contents && self.add_used(head, 0).is_ok() {
            stats!(self).rejected_returned = stats!(self).rejected_returned.wrapping_add(1);
        }
    }

    /// Validates descriptor `head` (read once into a local) and, when it
    /// passes, marks it held and counts it ([`Stats::completed`]). `ring`:
    /// this ring's (a copy).
    ///
    /// On coherent direct memory (no maintenance to order, no access that
    /// can fail), without the feature `small`: the descriptor is read
    /// first, and the usual case (the id idle, the descriptor naming its
    /// known span again, no chain flag) takes a few compares; anything
    /// else goes out of line to the tests one by one, in the order of
    /// `check_in_order`, on the values read (no second fetch).
    ///
    /// `mark`: marks the entry held (else the caller does, or returns it
    /// before anything can look).
    #[inline(always)]
    fn check(
        &mut self,
        ring: &RingMem<'m, M, E>,
        head: u16,
        kind: Held,
        mark: bool,
    ) -> Result<Pop, Error> {
        // `head < num`, tested against the mask (`num - 1`), which the pop
        // holds already for the entry's position.
        if u32::from(head) > ring.mask {
            return Err(Error::DescriptorIndexOutOfRange);
        }
        #[cfg(feature = "small")]
        return self.check_in_order(ring, head, kind, mark);
        #[cfg(not(feature = "small"))]
        {
            let h = usize::from(head);
            let writable = kind == Held::Writable;
            if !(M::COHERENT && M::DIRECT) {
                return self.check_in_order(ring, head, kind, mark);
            }
            // SAFETY: `h < num` (tested above): no mask to apply again. No
            // maintenance or memory error to order before the read
            // (coherent, direct).
            let d = unsafe { ring.read_desc_below_num(h) }?;
            let t = &mut *self.t;
            // SAFETY: `h < num <= N`: `RingMem::new` (in `Device::new`)
            // refused a layout of more than `N` entries.
            let entry = unsafe { t.entries.get_unchecked_mut(h) };
            // Known and not held, the same length and address (validated
            // then: window, alignment, buffer area, overlap, and unchanged
            // since), no chain flag; writable: the flag, and whole lines (a
            // span known from a readable pop need not be).
            let usual = entry.len == d.len
                && entry.state() == Entry::IDLE
                && d.flags & (DESC_F_INDIRECT | DESC_F_NEXT) == 0
                && entry.addr == d.addr
                && (!writable || (d.flags & DESC_F_WRITE != 0 && d.len as usize % M::LINE == 0));
            let entry = if usual {
                count!(self.stats.completed);
                // The entry's length and address are the descriptor's
                // (compared above): taken from there, not loaded again
                // after the count's store (which may alias the entry).
                return Ok(Self::take_as(entry, head, kind, d.addr, d.len, mark));
            } else {
                self.check_unusual(head, d.addr, d.len, d.flags, writable)?;
                // SAFETY: as above.
                unsafe { self.t.entries.get_unchecked_mut(h) }
            };
            Ok(Self::take(entry, head, kind, mark))
        }
    }

    /// Writes the used entry `head`, `len` at `used_idx` and moves
    /// `used_idx` past it (the entry marked for the next publication's
    /// clean). With the feature `small`, one out-of-line copy for the
    /// pop's hand-back and `push_used_slot`.
    #[cfg_attr(feature = "small", inline(never))]
    #[cfg_attr(not(feature = "small"), inline(always))]
    fn add_used(&mut self, head: u16, len: u32) -> Result<(), Error> {
        let at = self.used_idx;
        let wrote = self.ring.update_used_entry(at, u32::from(head), len)?;
        if !M::COHERENT {
            self.entries_dirty |= wrote;
        }
        self.used_idx = at.wrapping_add(1);
        Ok(())
    }

    /// [`Device::check`] test by test: the id not held, the descriptor
    /// read (after its invalidation), then [`Device::validate`].
    #[inline(always)]
    fn check_in_order(
        &mut self,
        ring: &RingMem<'m, M, E>,
        head: u16,
        kind: Held,
        mark: bool,
    ) -> Result<Pop, Error> {
        let l = ring.layout;
        let h = usize::from(head);
        // SAFETY: `h < num <= N` (`check`'s test; `RingMem::new` refused a
        // layout of more than `N` entries). (The compiler does not know
        // `num <= N`: `get` would test against `N` a second time.)
        if unsafe { self.t.entries.get_unchecked(h) }.is_held() {
            return Err(Error::DescriptorInFlight);
        }
        ring.invalidate(l.desc_entry_offset(head), DESC_SIZE)?;
        // SAFETY: `h < num` (tested by `check`): no mask to apply again.
        let d = unsafe { ring.read_desc_below_num(h) }?;
        self.validate(head, d.addr, d.len, d.flags, kind == Held::Writable)?;
        // SAFETY: as above.
        let entry = unsafe { self.t.entries.get_unchecked_mut(h) };
        Ok(Self::take(entry, head, kind, mark))
    }

    /// [`Device::check`]'s case other than the usual one: the tests one
    /// by one, on the descriptor's fields read there.
    #[cfg(not(feature = "small"))]
    #[cold]
    #[inline(never)]
    fn check_unusual(
        &mut self,
        head: u16,
        addr: u64,
        len: u32,
        flags: u16,
        writable: bool,
    ) -> Result<(), Error> {
        // SAFETY: `head < num <= N` (`check`'s test and `RingMem::new`).
        if unsafe { self.t.entries.get_unchecked(usize::from(head)) }.is_held() {
            return Err(Error::DescriptorInFlight);
        }
        self.validate(head, addr, len, flags, writable)
    }

    /// Validates descriptor `head` (not held, `head < num`), read into
    /// `addr`, `len`, `flags`: the flags, the length, then its span (the
    /// known one again, or located and claimed); counted when it passes
    /// ([`Device::take`] then marks it).
    #[inline(always)]
    fn validate(
        &mut self,
        head: u16,
        addr: u64,
        len: u32,
        flags: u16,
        writable: bool,
    ) -> Result<(), Error> {
        // One test for both chain flags; which one, only on the way out.
        if flags & (DESC_F_INDIRECT | DESC_F_NEXT) != 0 {
            return Err(if flags & DESC_F_INDIRECT != 0 {
                Error::UnexpectedIndirect
            } else {
                Error::UnexpectedNext
            });
        }
        if writable && flags & DESC_F_WRITE == 0 {
            return Err(Error::NotDeviceWritable);
        }
        if len == 0 {
            return Err(Error::EmptyBuffer);
        }
        if writable && len as usize % M::LINE != 0 {
            return Err(Error::MisalignedBuffer);
        }
        // SAFETY: `head < num <= N` (the caller's test; `RingMem::new`).
        let entry = unsafe { self.t.entries.get_unchecked(usize::from(head)) };
        // The span this descriptor named last time, validated then (window,
        // alignment, buffer area, overlap) and unchanged since: it names the
        // same bytes again. (`len` is not 0, so an equal `len` is a known
        // span.)
        // Otherwise `locate` validates it and records it as the id's
        // known span.
        if entry.len != len || entry.addr != addr {
            // SAFETY: `head < num` (the caller's test).
            unsafe { self.locate(head, addr, len, writable) }?;
        }
        // Counted here, before `take` marks the entry: the store through
        // the entry would make the tables' address load again.
        count!(stats!(self).completed);
        Ok(())
    }

    /// Marks `entry` (descriptor `head`'s, validated and counted) held
    /// (`mark`) and describes it.
    #[inline(always)]
    fn take(entry: &mut Entry, head: u16, held: Held, mark: bool) -> Pop {
        if mark {
            entry.held = held;
        }
        let span = entry.as_span();
        Pop {
            head,
            // A readable buffer's handle covers whole lines (invalidation
            // never splits a line); that is no length the driver posted, so
            // it never goes back as a used length (`push_used_whole`).
            capacity: held.capacity(&span),
            span,
        }
    }

    /// [`Device::take`] of an entry whose known span is `addr`, `len`
    /// (the descriptor's, found equal).
    #[cfg(not(feature = "small"))]
    #[inline(always)]
    fn take_as(entry: &mut Entry, head: u16, held: Held, addr: u64, len: u32, mark: bool) -> Pop {
        if mark {
            entry.held = held;
        }
        let span = Span {
            lo: entry.lo,
            hi: entry.hi,
            addr,
            len,
        };
        Pop {
            head,
            capacity: held.capacity(&span),
            span,
        }
    }

    /// Validates a descriptor's buffer `addr..+len` the slow way (window,
    /// alignment, buffer area) and claims its span for `head` (its entry
    /// knows it from then on). Cold: once
    /// per descriptor while the driver keeps posting the same buffers
    /// (`check` recognises them), so the recognised path is laid out
    /// straight. With the feature `small`, inlined (with `claim`) into the
    /// one out-of-line pop, its one caller: no call, frame or result to
    /// pass (minimal-remote 38 bytes smaller).
    ///
    /// # Safety
    ///
    /// `head < num` (`claim` indexes the tables with it unchecked).
    #[cfg_attr(not(feature = "small"), cold, inline(never))]
    #[cfg_attr(feature = "small", inline(always))]
    unsafe fn locate(
        &mut self,
        head: u16,
        addr: u64,
        len32: u32,
        writable: bool,
    ) -> Result<(), Error> {
        // `validate` (the one caller) refused a length of 0 before: a known
        // span is never empty.
        let outside = Error::AddressOutsideWindow;
        let len = usize::try_from(len32).map_err(|_| outside)?;
        let offset = self.ring.mem.translate(addr, len).map_err(|_| outside)?;
        let line = M::LINE;
        if offset % line != 0 || (writable && len % line != 0) {
            return Err(Error::MisalignedBuffer);
        }
        let hi = align_up(offset + len, line).ok_or(outside)?;
        if offset < self.area_lo || hi > self.area_end {
            return Err(Error::OutsideBufferArea);
        }
        let span = Span {
            lo: offset,
            hi,
            addr,
            len: len32,
        };
        // SAFETY: `head < num` (this function's contract).
        unsafe { self.claim(head, span) }
    }

    /// Claims the line span `lo..hi` for descriptor `head` (not held), or
    /// refuses it when it overlaps a buffer this device holds.
    ///
    /// The known span of `id` (its [`Entry`]) is the span it last named. Known spans are
    /// pairwise disjoint, and a held buffer's span is its id's known span
    /// (claimed when it was popped; an id is not claimed again while held).
    /// So a descriptor that names (part of) its own known span overlaps no
    /// held buffer: O(1), the steady state of every driver that gives each
    /// descriptor a fixed buffer (Linux, rpmsg-lite, ours); the known span
    /// becomes the part named. A new or moved span takes one pass over the
    /// known spans: one of a held buffer overlapping it is an
    /// [`Error::OverlappingBuffer`] (nothing changes; with the feature
    /// `small`, spans of ids not held met before it are forgotten
    /// already); the others give way (forgotten).
    ///
    /// # Safety
    ///
    /// `head < num`.
    #[cfg_attr(feature = "small", inline(always))]
    unsafe fn claim(&mut self, head: u16, span: Span) -> Result<(), Error> {
        let Span { lo, hi, .. } = span;
        let h = usize::from(head);
        // Without the feature `small`, O(1) when the span lies in the id's
        // own known span (no other known span overlaps it then). With the
        // feature, the pass below gets there too (it finds no overlap and
        // forgets nothing), in O(`N`) on this cold path, with less code.
        #[cfg(not(feature = "small"))]
        {
            // SAFETY: `head < num` (this function's contract) `<= N`
            // (`RingMem::new` refused a layout of more than `N` entries).
            let own = unsafe { self.t.entries.get_unchecked_mut(h) };
            if let Some(k) = own.span() {
                if k.lo <= lo && hi <= k.hi {
                    own.know(span);
                    return Ok(());
                }
            }
        }
        // An entry whose span overlaps `lo..hi`: known (`len` not 0), or
        // forgotten (its `lo`, `hi` left as they were; all-zero bytes
        // overlap nothing). A forgotten entry is never held (only an entry
        // not held is forgotten, and a pop makes its span known before it
        // is held), so no test of `len`: whether held, and forgetting one
        // again, come out the same.
        let overlaps = |e: &Entry| lo < e.hi && e.lo < hi;
        if cfg!(feature = "small") {
            // One pass with the feature `small`: the known spans of ids
            // not held give way as they are met, so a refusal may leave
            // some of them forgotten (each is located again when next
            // posted; the known spans stay disjoint, and no held one
            // changes). The id's own entry is not held (`check`): it
            // gives way as well, and takes the new span below.
            for e in &mut self.t.entries {
                if overlaps(e) {
                    if e.is_held() {
                        return Err(Error::OverlappingBuffer);
                    }
                    e.forget();
                }
            }
            // SAFETY: `head < num <= N`, as above.
            unsafe { self.t.entries.get_unchecked_mut(h) }.know(span);
            return Ok(());
        }
        // A held buffer's span is its id's known span.
        for (j, e) in self.t.entries.iter().enumerate() {
            if e.is_held() && j != h && overlaps(e) {
                return Err(Error::OverlappingBuffer);
            }
        }
        for (j, e) in self.t.entries.iter_mut().enumerate() {
            if j == h {
                e.know(span);
            } else if !e.is_held() && overlaps(e) {
                e.forget();
            }
        }
        Ok(())
    }

    /// Returns a popped buffer to the driver with the number of bytes
    /// written into it (0 for a buffer the device only read; rpmsg-lite
    /// reports the whole buffer: [`Device::push_used_whole`]). Visible at
    /// the next [`Device::publish_used`].
    ///
    /// # Errors
    ///
    /// [`Error::ForeignBuffer`] (not the buffer popped as `head`),
    /// [`Error::InvalidLength`] (`len` beyond the descriptor),
    /// [`Error::Broken`], [`Error::Memory`]; the buffer is handed back.
    #[allow(clippy::type_complexity)]
    #[inline]
    pub fn push_used<S: Returnable>(
        &mut self,
        head: u16,
        buf: ShmBuf<'m, M, S>,
        len: u32,
    ) -> Result<(), (ShmBuf<'m, M, S>, Error)> {
        self.push(head, buf, Some(len))
    }

    /// Returns a popped buffer to the driver reporting the descriptor's
    /// whole length as used: what rpmsg-lite's remote reports in both
    /// directions (vector 02 for a filled buffer, vector 04 for a read one:
    /// 512, the descriptor length).
    ///
    /// For a buffer the device only read this is the one length both peers
    /// accept: virtio's "bytes written" would be 0, which rpmsg-lite never
    /// writes (the vectors pin 512), and Linux accepts any length up to
    /// the descriptor's. It is never the handle's capacity: for a
    /// device-readable buffer that is rounded up to the cache line, so a
    /// driver posting exact lengths (Linux: header + payload) would be
    /// answered with more than it posted, which [`Device::push_used`]
    /// refuses.
    ///
    /// # Errors
    ///
    /// As [`Device::push_used`], except [`Error::InvalidLength`]; the
    /// buffer is handed back.
    #[allow(clippy::type_complexity)]
    #[inline]
    pub fn push_used_whole<S: Returnable>(
        &mut self,
        head: u16,
        buf: ShmBuf<'m, M, S>,
    ) -> Result<(), (ShmBuf<'m, M, S>, Error)> {
        self.push(head, buf, None)
    }

    /// [`Device::push_used`] with `len`, or the descriptor's length.
    #[allow(clippy::type_complexity)]
    #[inline]
    fn push<S: Returnable>(
        &mut self,
        head: u16,
        buf: ShmBuf<'m, M, S>,
        len: Option<u32>,
    ) -> Result<(), (ShmBuf<'m, M, S>, Error)> {
        let h = usize::from(head);
        let e = match self.t.entries.get_mut(h) {
            // A held entry's span is known (`len` not 0). On a broken ring
            // (`live_num` 0) no id passes.
            Some(e)
                if head < self.live_num
                    && e.is_held()
                    && e.lo == buf.offset()
                    && e.held.capacity(&e.as_span()) == buf.capacity() =>
            {
                e
            }
            _ => {
                return Err((buf, self.refuse_push()));
            }
        };
        match Self::push_held(
            &self.ring,
            &mut self.used_idx,
            &mut self.entries_dirty,
            e,
            head,
            len,
        ) {
            Ok(()) => {
                drop(buf);
                Ok(())
            }
            Err(e) => Err((buf, e)),
        }
    }

    /// Writes the used entry of held descriptor `head`, whose record is
    /// `e` (length `len`, or its descriptor length), at `used_idx`, and
    /// releases it. The caller found `head` held. The device's fields go
    /// one by one (`ring`, `used_idx`, `entries_dirty`) beside `e`, which
    /// borrows its tables: the record found by the caller's lookup is
    /// released through the same reference, not looked up again.
    #[inline(always)]
    fn push_held(
        ring: &RingMem<'m, M, E>,
        used_idx: &mut u16,
        entries_dirty: &mut bool,
        e: &mut Entry,
        head: u16,
        len: Option<u32>,
    ) -> Result<(), Error> {
        let desc_len = e.len;
        let len = len.unwrap_or(desc_len);
        if len > desc_len {
            return Err(Error::InvalidLength);
        }
        // Released before the entry is written (and held again if that
        // fails): the record's address is then dead before the stores.
        let held = core::mem::replace(&mut e.held, Held::No);
        let at = *used_idx;
        let wrote = match ring.update_used_entry(at, u32::from(head), len) {
            Ok(w) => w,
            Err(err) => {
                e.held = held;
                return Err(err);
            }
        };
        if !M::COHERENT {
            *entries_dirty |= wrote;
        }
        *used_idx = at.wrapping_add(1);
        Ok(())
    }

    /// Publishes every used entry pushed since the last call and says
    /// whether the driver wants an interrupt.
    ///
    /// Order: clean the new used entries; store `used.idx` (release) and
    /// clean it; invalidate and read the driver's `avail.flags` or
    /// `used_event`. When that read already asks for an interrupt, that is
    /// the answer (a stale read can only make a notification spurious,
    /// never lose one), and no fence is paid: the interrupt wakes the
    /// driver whatever it stored meanwhile. Otherwise `fence(SeqCst)` (the
    /// index store and the second read must not be reordered: the lost
    /// wake-up of the publish-then-check pattern) and the read again. With
    /// the feature `small` on coherent memory, only the fenced read (the
    /// same answer from less code; a fence on every publication).
    ///
    /// # Errors
    ///
    /// [`Error::Broken`], [`Error::Memory`].
    #[must_use = "a publication the driver wants to hear about needs a notification"]
    #[inline]
    pub fn publish_used(&mut self) -> Result<bool, Error> {
        self.publish(false)
    }

    /// [`Device::publish_used`] at the end of a receive pass: when this
    /// device has consumed every available entry it knows of and
    /// notifications are on (`EVENT_IDX`), it also re-arms `avail_event` at
    /// the next position to consume, and one full fence orders both stores
    /// (`used.idx`, `avail_event`) before both reads (`used_event` here,
    /// `avail.idx` at the next pop). A pop that then finds the ring empty
    /// needs no fence of its own: one fence per pass instead of one for the
    /// publication and one for going idle.
    ///
    /// For the ring whose entries are work (the remote's receive ring);
    /// a ring whose entries are resources the device takes only when it
    /// needs one (the remote's transmit ring) re-arms when a pop finds it
    /// empty, so the driver does not ring for every buffer it posts.
    ///
    /// # Errors
    ///
    /// As [`Device::publish_used`].
    #[must_use = "a publication the driver wants to hear about needs a notification"]
    #[inline]
    pub fn publish_used_and_rearm(&mut self) -> Result<bool, Error> {
        self.publish(true)
    }

    // With the feature `small`, one out-of-line copy for both rings'
    // publications (the remote's send and its receive returns).
    #[cfg_attr(feature = "small", inline(never))]
    #[cfg_attr(not(feature = "small"), inline(always))]
    fn publish(&mut self, rearm: bool) -> Result<bool, Error> {
        let (old, new) = (self.used_published, self.used_idx);
        // A broken ring has nothing to publish (`break_ring`).
        if old == new {
            return if self.is_broken() {
                broken()
            } else {
                Ok(false)
            };
        }
        // The ring itself, not a copy: each field access is one load of an
        // area's address (`RingMem`), loaded where a branch uses it (a
        // copy loads every address up front, the unused mode's too); with
        // the feature `small`, a copy would cost a Cortex-M4 remote
        // registers and stack (and ~170 bytes).
        let ring = &self.ring;
        let l = ring.layout;
        if M::COHERENT || self.entries_dirty {
            for (off, len) in ring.entry_spans(l.used_offset() + 4, USED_ELEM_SIZE, old, new) {
                if len > 0 {
                    ring.clean(off, len)?;
                }
            }
            if !M::COHERENT {
                self.entries_dirty = false;
            }
        }
        ring.store_u16(Field::UsedIdx, new)?;
        ring.clean(l.used_offset() + 2, 2)?;
        self.used_published = new;
        count!(stats!(self).published, u32::from(new.wrapping_sub(old)));
        // In a local: the fence would make the field load again.
        let last = self.last_avail;
        let arm = rearm && last == self.avail_seen && self.must_rearm();
        if arm {
            // With the feature `small`, the one out-of-line re-arm (store,
            // fence, `armed_at`) the pop and `enable_notifications` call too.
            #[cfg(feature = "small")]
            self.rearm()?;
            // Without it, the re-arming pass's own copy of the fenced read:
            // it knows the mode (re-arming is `EVENT_IDX` only), and leaves
            // `driver_declined` (read only by a publication that does not
            // re-arm) as the last of those set it.
            #[cfg(not(feature = "small"))]
            {
                Self::store_avail_event(ring, last)?;
                ring.mem.full_fence();
                self.armed_at = u32::from(last);
                let notify = self.driver_wants(ring, new, old, true, true)?;
                return Ok(self.count_notification(notify));
            }
        } else {
            // The unfenced first read (see `publish_used`), except with the
            // feature `small` on coherent memory: there the fenced read
            // alone, the same answer from less code (a fence on every
            // publication, where the first read only saves that fence).
            if !Self::FENCED_READ_ONLY
                && !self.driver_declined
                && self.driver_wants(ring, new, old, false, false)?
            {
                return Ok(self.count_notification(true));
            }
            ring.mem.full_fence();
        }
        let ring = &self.ring;
        // Re-arming happens only with `EVENT_IDX` (`must_rearm`).
        let notify = self.driver_wants(ring, new, old, arm, true)?;
        if !Self::FENCED_READ_ONLY {
            self.driver_declined = !notify;
        }
        if !M::COHERENT && self.suppression == Suppression::Flags {
            // `avail.flags` and `avail.idx` share a line (checked): the
            // read above left the index loaded after the fence, for the
            // look that straight follows (`pop_readable_after_publish`;
            // as in `Driver::publish_inner`).
            let off = l.avail_offset();
            self.idx_line_loaded = off & !(M::LINE - 1) == (off + 2) & !(M::LINE - 1);
        }
        Ok(self.count_notification(notify))
    }

    /// Whether the driver asks to hear about used entries `old..new`: a
    /// read of its `used_event` or `avail.flags`. `event_idx`: the caller
    /// knows the ring uses `EVENT_IDX` (no test of the mode). `fresh`: the
    /// line is invalidated first (the read after the fence). The unfenced
    /// first read is not: unordered, it may be stale anyway, and a stale
    /// answer can only be a spurious "yes" (a "no" goes on to the fence and
    /// the fresh read), so it takes the line as this core's cache holds it
    /// and spends no line operation when the driver is waiting, as it
    /// usually is between messages. The line is current again at the next
    /// fetch of `avail.idx`, which shares it in flags mode.
    ///
    /// `ring`: this ring's.
    #[inline(always)]
    fn driver_wants(
        &self,
        ring: &RingMem<'m, M, E>,
        new: u16,
        old: u16,
        event_idx: bool,
        fresh: bool,
    ) -> Result<bool, Error> {
        // Two calls per publication (the first read, the fenced one): with
        // the feature `small`, one out-of-line copy for both.
        #[cfg(feature = "small")]
        if !Self::FENCED_READ_ONLY {
            let _ = ring;
            return self.driver_wants_out_of_line(new, old, event_idx, fresh);
        }
        self.driver_wants_in(ring, new, old, event_idx, fresh)
    }

    /// [`Device::driver_wants`] out of line, with the feature `small`
    /// where a publication reads twice.
    #[cfg(feature = "small")]
    #[inline(never)]
    fn driver_wants_out_of_line(
        &self,
        new: u16,
        old: u16,
        event_idx: bool,
        fresh: bool,
    ) -> Result<bool, Error> {
        self.driver_wants_in(&self.ring, new, old, event_idx, fresh)
    }

    /// The body of [`Device::driver_wants`].
    #[inline(always)]
    fn driver_wants_in(
        &self,
        ring: &RingMem<'m, M, E>,
        new: u16,
        old: u16,
        event_idx: bool,
        fresh: bool,
    ) -> Result<bool, Error> {
        let l = ring.layout;
        Ok(if event_idx || self.suppression == Suppression::EventIdx {
            if fresh {
                ring.invalidate(l.used_event_offset(), 2)?;
            }
            let event = ring.load_u16(Field::UsedEvent)?;
            need_event(event, new, old)
        } else {
            if fresh {
                ring.invalidate(l.avail_offset(), 2)?;
            }
            ring.load_u16(Field::AvailFlags)? & AVAIL_F_NO_INTERRUPT == 0
        })
    }

    #[inline]
    fn count_notification(&mut self, notify: bool) -> bool {
        if notify {
            count!(stats!(self).notifications_sent);
        } else {
            count!(stats!(self).notifications_suppressed);
        }
        notify
    }

    /// Asks the driver to notify on new buffers again, then re-checks:
    /// returns whether buffers are already pending (pop them before
    /// sleeping, or the wake-up is lost).
    ///
    /// Flags: clears `VRING_USED_F_NO_NOTIFY`. `EVENT_IDX`: sets
    /// `avail_event` to the next position to consume, and from then on every
    /// pop that finds the ring empty sets it again (notifications stay on
    /// until [`Device::disable_notifications`], as with flags). Then
    /// `fence(SeqCst)` and a fresh load of `avail.idx`.
    ///
    /// # Errors
    ///
    /// [`Error::Broken`], [`Error::Memory`].
    pub fn enable_notifications(&mut self) -> Result<bool, Error> {
        if self.is_broken() {
            return Err(Error::Broken);
        }
        match self.suppression {
            Suppression::Flags => {
                self.armed_at = NO_REARM;
                self.set_used_flags(0)?;
                self.ring.mem.full_fence();
            }
            Suppression::EventIdx => {
                self.armed_at = NOT_ARMED;
                self.rearm()?;
            }
        }
        Ok(self.fetch_avail_idx(false)? != self.last_avail)
    }

    /// Asks the driver not to notify (flags mode: sets
    /// `VRING_USED_F_NO_NOTIFY`; `EVENT_IDX` mode: sets `avail_event` one
    /// behind the next position to consume, which the driver's index does
    /// not cross again for 2^16 entries, and stops re-arming it). Advisory:
    /// the driver may still notify.
    ///
    /// # Errors
    ///
    /// [`Error::Broken`], [`Error::Memory`].
    pub fn disable_notifications(&mut self) -> Result<(), Error> {
        if self.is_broken() {
            return Err(Error::Broken);
        }
        self.armed_at = NO_REARM;
        match self.suppression {
            Suppression::Flags => self.set_used_flags(USED_F_NO_NOTIFY)?,
            Suppression::EventIdx => {
                // Linux's `virtqueue_disable_cb_split` writes 0 ("a hack");
                // one behind the consumer is the value no publication
                // crosses soon. No fence: a late doorbell is harmless.
                Self::store_avail_event(&self.ring, self.last_avail.wrapping_sub(1))?;
            }
        }
        Ok(())
    }

    /// `EVENT_IDX` with notifications on, the ring found empty, and
    /// `avail_event` not yet armed at this position.
    ///
    /// Why re-arm when the ring runs dry rather than after every pop (what
    /// Linux's `virtqueue_get_buf_ctx_split` does for `used_event`): both
    /// promise the same thing — the driver notifies for the first entry
    /// published after the consumer found the ring empty — because a
    /// consumer that stops before the ring is empty already knows work is
    /// left (per-pop re-arming would not bring it a doorbell either: the
    /// driver's next publication does not cross an `avail_event` that lies
    /// behind entries already published). Re-arming on empty costs one
    /// store and one full fence per idle transition instead of per entry, so
    /// a batch of k entries pays one fence, and polling an empty ring again
    /// pays none (`armed_at`).
    ///
    /// One test: `armed_at ^ last_avail` is 0 when armed at this position,
    /// positive when re-arming and not armed here (another position, or
    /// `NOT_ARMED`), negative when not re-arming (`NO_REARM`).
    #[inline]
    fn must_rearm(&self) -> bool {
        (self.armed_at ^ u32::from(self.last_avail)) as i32 > 0
    }

    /// `EVENT_IDX`: `avail_event = last_avail`, written back, then
    /// `fence(SeqCst)` (virtio 1.x §2.7.10: the store must be visible before
    /// `avail.idx` is read again). The caller re-reads `avail.idx`: the
    /// driver either published before it could see the new event (the
    /// re-read finds the entry) or reads the event after publishing and
    /// notifies (its own store, fence, load in [`crate::Driver::publish`]).
    ///
    /// With the feature `small`, one out-of-line copy for the pop's
    /// re-arm, the re-arming publication and `enable_notifications`.
    #[cfg_attr(feature = "small", inline(never))]
    fn rearm(&mut self) -> Result<(), Error> {
        // In a local: the fences would make the field load again.
        let last = self.last_avail;
        Self::store_avail_event(&self.ring, last)?;
        self.ring.mem.full_fence();
        self.armed_at = u32::from(last);
        Ok(())
    }

    /// Writes `avail_event` through to memory (`ring`: this ring's).
    fn store_avail_event(ring: &RingMem<'m, M, E>, v: u16) -> Result<(), Error> {
        let off = ring.avail_event_offset();
        ring.store_u16(Field::AvailEvent, v)?;
        ring.clean(off, 2)
    }

    /// Writes `used.flags` through to memory.
    fn set_used_flags(&mut self, flags: u16) -> Result<(), Error> {
        // What the driver decides from now on follows the new flags: an
        // available index loaded before them is no last look.
        if !M::COHERENT {
            self.idx_line_loaded = false;
        }
        let off = self.ring.layout.used_offset();
        self.ring.store_u16(Field::UsedFlags, flags)?;
        self.ring.clean(off, 2)
    }

    /// A fresh `avail.idx` (invalidate, then acquire load): the one place
    /// the device reads it. `reuse`: without the invalidation when the last
    /// fenced publication left its line loaded (`idx_line_loaded`).
    #[inline]
    fn fetch_avail_idx(&mut self, reuse: bool) -> Result<u16, Error> {
        let off = self.ring.layout.avail_offset() + 2;
        if !M::COHERENT {
            nc!(self).fresh = Fresh::NONE;
            let loaded = core::mem::replace(&mut self.idx_line_loaded, false);
            if !(reuse && loaded) {
                self.ring.invalidate(off, 2)?;
            }
        }
        self.ring.load_u16(Field::AvailIdx)
    }

    #[cold]
    fn fail(&mut self, e: Error) -> Error {
        stats!(self).failures.record(&e);
        e
    }
}

/// A validated descriptor, before its handle is built.
struct Pop {
    head: u16,
    /// Where it lies (`span.lo` is the offset) and the descriptor's length
    /// (`span.len`).
    span: Span,
    capacity: usize,
}

/// Gives one count of a tables' lease back. With the feature `small`, one
/// out-of-line copy for the devices of a pair (dropped apart, each drop is
/// inlined where its device dies: the read-modify-write loop twice).
#[cfg_attr(feature = "small", inline(never))]
fn release(lease: &AtomicU8) {
    lease.fetch_sub(1, Ordering::Release);
}

impl<M: SharedMemory + ?Sized, E: Endian, const N: usize> Drop for Device<'_, M, E, N> {
    /// Gives its count of the tables' lease back ([`DeviceTables`]): the
    /// last device of a lease frees them for the next.
    fn drop(&mut self) {
        release(self.lease);
    }
}

impl<M: SharedMemory + ?Sized, E: Endian, const N: usize> fmt::Debug for Device<'_, M, E, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Device")
            .field("layout", &self.ring.layout)
            .field("last_avail", &self.last_avail)
            .field("used_idx", &self.used_idx)
            .field("used_published", &self.used_published)
            .field("held", &self.held())
            .field("broken", &self.is_broken())
            .field("stats", &stats!(self))
            .finish()
    }
}

#[cfg(test)]
mod tests_size10 {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use core::ptr::NonNull;

    use ipc_traits::cache::{CacheMaintenance, Coherent};
    use ipc_traits::shm::{RawRegion, SharedMemory};

    use super::{BufferArea, Device, DeviceConfig, DeviceTables};
    use crate::endian::Legacy;
    use crate::layout::{avail_size, desc_table_size, used_size, Layout};
    use crate::tests::{Chunk, Line32};
    use crate::Error;

    const WINDOW: usize = 8192;

    /// Whether `offset..offset + len` touches the lines of any of the
    /// ring's three areas: the rule the attach enforces, area by area.
    fn touches(l: &Layout, line: usize, offset: usize, len: usize) -> bool {
        let n = usize::from(l.num());
        [
            (l.desc_offset(), desc_table_size(n)),
            (l.avail_offset(), avail_size(n)),
            (l.used_offset(), used_size(n)),
        ]
        .iter()
        .any(|&(o, s)| {
            let lo = o / line * line;
            let hi = (o + s).div_ceil(line) * line;
            lo < offset + len && offset < hi
        })
    }

    /// Every buffer area around a ring (on each area, across the gap
    /// between the available and used rings, between areas of a split
    /// layout) is refused exactly when it touches a line of the ring,
    /// legacy layouts (whose first two areas the feature `small` checks as
    /// one run) and split ones alike.
    fn sweep<C: CacheMaintenance>(cache: C) {
        let mut backing = vec![Chunk([0; 64]); WINDOW / 64];
        let base = NonNull::new(backing.as_mut_ptr().cast::<u8>()).unwrap();
        // SAFETY: `backing` outlives the region and is only used through
        // it; no handle over it is made (the devices are only attached).
        let shm = unsafe { RawRegion::new(base, WINDOW, 0x1000, cache) }.unwrap();
        let layouts = [
            Layout::legacy(8, 64),
            Layout::legacy(16, 512),
            Layout::legacy_at(1024, 4, 16),
            // The available ring first, the descriptors after a gap.
            Layout::split(8, 1024, 512, 2048).unwrap(),
            // Adjacent in the other order.
            Layout::split(4, 64, 32, 512).unwrap(),
        ];
        let tables = DeviceTables::<16>::new();
        let mut refused = 0;
        // Layouts that break the cache-line rule are refused before the
        // area is looked at.
        for l in layouts.iter().filter(|l| l.check(WINDOW, C::LINE).is_ok()) {
            for offset in (0..3000).step_by(8) {
                for len in [1, 8, 30, 64, 200] {
                    let area = BufferArea::new(offset, len);
                    // SAFETY: no buffer handle exists over the window, and
                    // the device is dropped at once.
                    let r = unsafe {
                        Device::<_, Legacy, 16>::new(&shm, *l, DeviceConfig::new(area), &tables)
                    };
                    let bad = touches(l, C::LINE, offset, len);
                    assert_eq!(
                        r.err(),
                        bad.then_some(Error::BadBufferArea),
                        "{l:?} {offset} {len}"
                    );
                    refused += usize::from(bad);
                }
            }
        }
        assert!(refused > 100);
        drop(backing);
    }

    #[test]
    fn a_buffer_area_on_any_ring_line_is_refused() {
        sweep(Coherent);
        sweep(Line32);
    }

    /// A new span over a buffer held and a span known but not held (met
    /// first by the overlap scan) is refused; either way the feature
    /// `small` goes (the idle span forgotten on the way, or kept), the id
    /// that knew it is accepted again, and the held buffer is never handed
    /// out twice.
    #[test]
    fn a_refused_span_leaves_every_id_usable() {
        const BASE: u64 = 0x1000;
        let l = Layout::legacy(8, 64);
        let mut backing = vec![Chunk([0; 64]); WINDOW / 64];
        let base = NonNull::new(backing.as_mut_ptr().cast::<u8>()).unwrap();
        // SAFETY: `backing` outlives the region and is only used through
        // it; the test makes no buffer handle (slots only).
        let shm = unsafe { RawRegion::new(base, WINDOW, BASE, Coherent) }.unwrap();
        let tables = DeviceTables::<8>::new();
        let area = BufferArea::new(2048, 2048);
        // SAFETY: as above.
        let mut dev =
            unsafe { Device::<_, Legacy, 8>::new(&shm, l, DeviceConfig::new(area), &tables) }
                .unwrap();
        let desc = |i: u16, off: usize, len: u32| {
            let mut b = [0u8; 16];
            b[0..8].copy_from_slice(&(BASE + off as u64).to_ne_bytes());
            b[8..12].copy_from_slice(&len.to_ne_bytes());
            b[12..14].copy_from_slice(&crate::notify::DESC_F_WRITE.to_ne_bytes());
            shm.write(l.desc_entry_offset(i), &b).unwrap();
        };
        let mut idx = 0u16;
        let mut post = |head: u16| {
            shm.write(l.avail_entry_offset(idx % 8), &head.to_ne_bytes())
                .unwrap();
            idx = idx.wrapping_add(1);
            shm.write(l.avail_offset() + 2, &idx.to_ne_bytes()).unwrap();
        };
        // Id 0 knows 2112..2176 (returned), id 1 holds 2048..2112.
        desc(0, 2112, 64);
        desc(1, 2048, 64);
        post(0);
        post(1);
        let zero = dev.pop_writable_slot().unwrap().unwrap();
        let one = dev.pop_writable_slot().unwrap().unwrap();
        assert_eq!((zero.id, one.id, one.offset), (0, 1, 2048));
        dev.push_used_slot(0, Some(0)).unwrap();
        // Id 2 over both: id 0's idle span comes first in the scan, id 1's
        // held one refuses it.
        desc(2, 2048, 128);
        post(2);
        assert_eq!(dev.pop_writable_slot(), Err(Error::OverlappingBuffer));
        // Id 0 again: accepted, its own bytes.
        post(0);
        let again = dev.pop_writable_slot().unwrap().unwrap();
        assert_eq!((again.id, again.offset), (0, 2112));
        // Id 2 over the held buffers again: refused; elsewhere: accepted.
        post(2);
        assert_eq!(dev.pop_writable_slot(), Err(Error::OverlappingBuffer));
        desc(2, 2176, 128);
        post(2);
        let two = dev.pop_writable_slot().unwrap().unwrap();
        assert_eq!((two.id, two.offset), (2, 2176));
        assert_eq!(dev.stats().failures.overlapping_buffer(), 2);
        drop(dev);
        drop(backing);
    }
}

#[cfg(test)]
mod tests_fast10 {
    use core::ptr::NonNull;
    use std::vec::Vec;

    use ipc_traits::cache::{CacheMaintenance, Coherent};
    use ipc_traits::shm::{RawRegion, SharedMemory};

    use super::{Device, DeviceConfig, DeviceTables, Passed, Slot};
    use crate::endian::Legacy;
    use crate::error::Error;
    use crate::notify::{Suppression, DESC_F_NEXT, DESC_F_WRITE};
    use crate::tests::{Chunk, Line32, AREA, BASE, L, SLOT, WINDOW};

    /// One step's outcome, as the test compares it.
    #[derive(Debug, PartialEq, Eq)]
    enum Step {
        Empty,
        Refused(Error),
        Read(Slot, Option<Result<bool, Error>>),
        Late(Result<bool, Error>),
        /// What the device's fields in memory hold after a step:
        /// `used.flags`, `used.idx`, `avail_event`.
        Mem(u16, u16, u16),
    }

    /// The driver's posts: (descriptor id, flags of its descriptor) per
    /// entry, batches published at once; ids 2 and 6 are kept by the
    /// reader the first time and go back one batch later.
    const BATCHES: &[&[(u16, u16)]] = &[
        &[(0, 0)],
        &[(1, 0), (2, 0), (3, 0)],
        &[(9, 0), (4, DESC_F_NEXT), (2, 0), (5, 0)],
        &[(6, 0), (7, 0)],
        &[(0, 0), (1, 0), (3, 0), (5, 0), (6, 0), (4, 0)],
    ];

    /// The posts of `BATCHES` popped one by one, by the one-pass call
    /// (`fused`) or the split calls, readable or `writable` (then every
    /// descriptor carries the write flag but id 5's first post, which is
    /// refused, and the writer fills what it does not keep); what each
    /// step gave, the statistics and the memory after.
    fn run<C: CacheMaintenance + Default>(
        suppression: Suppression,
        writable: bool,
        fused: bool,
    ) -> (Vec<Step>, String, Vec<u8>) {
        let mut backing = vec![Chunk([0; 64]); WINDOW / 64];
        let base = NonNull::new(backing.as_mut_ptr().cast::<u8>()).unwrap();
        // SAFETY: `backing` outlives the region and is only used through it.
        let shm = unsafe { RawRegion::new(base, WINDOW, BASE, C::default()) }.unwrap();
        let tables: &'static DeviceTables<8> = Box::leak(Box::default());
        let cfg = DeviceConfig {
            suppression,
            ..DeviceConfig::new(AREA)
        };
        // SAFETY: no buffer handle over AREA exists but the ring's.
        let mut dev = unsafe { Device::<_, Legacy, 8>::new(&shm, L, cfg, tables) }.unwrap();
        let mut steps = Vec::new();
        let mut pos = 0u16;
        let mut kept: Vec<u16> = Vec::new();
        let mut seen_keep = [false; 8];
        for batch in BATCHES {
            for &(id, flags) in *batch {
                if usize::from(id) < 8 {
                    let mut b = [0u8; 16];
                    let addr = BASE + (AREA.offset() + SLOT * usize::from(id)) as u64;
                    b[0..8].copy_from_slice(&addr.to_ne_bytes());
                    let (len, w) = match (writable, id == 5 && pos < 8) {
                        (false, _) => (48u32, 0),
                        (true, true) => (64, 0),
                        (true, false) => (64, DESC_F_WRITE),
                    };
                    b[8..12].copy_from_slice(&len.to_ne_bytes());
                    b[12..14].copy_from_slice(&(flags | w).to_ne_bytes());
                    shm.write(L.desc_entry_offset(id), &b).unwrap();
                }
                shm.write(L.avail_entry_offset(pos % 8), &id.to_ne_bytes())
                    .unwrap();
                pos = pos.wrapping_add(1);
            }
            shm.store_u16_release(L.avail_offset() + 2, pos).unwrap();
            // The kept ones of the last batch go back first.
            for id in kept.drain(..) {
                let r = dev
                    .push_used_slot(id, None)
                    .and_then(|()| dev.publish_used());
                steps.push(Step::Late(r));
            }
            // One more look than entries: the last finds the ring empty.
            for _ in 0..=batch.len() {
                let mut keep = |s: &Slot| {
                    let k = (s.id == 2 || s.id == 6) && !seen_keep[usize::from(s.id)];
                    if k {
                        seen_keep[usize::from(s.id)] = true;
                    } else if writable {
                        shm.write(s.offset, &s.id.to_ne_bytes()).unwrap();
                    }
                    k
                };
                let step = if fused {
                    let mut seen = None;
                    let mut look = |s: &Slot| {
                        seen = Some(Slot {
                            id: s.id,
                            len: s.len,
                            offset: s.offset,
                        });
                        !keep(s)
                    };
                    let passed = if writable {
                        dev.pop_writable_with(look)
                    } else {
                        dev.pop_readable_with(&mut look)
                    };
                    match passed {
                        Ok(Passed::Empty) => Step::Empty,
                        Err(e) => Step::Refused(e),
                        Ok(Passed::Kept) => Step::Read(seen.unwrap(), None),
                        Ok(Passed::Returned(w)) => Step::Read(seen.unwrap(), Some(Ok(w))),
                        Ok(Passed::NotReturned(e)) => Step::Read(seen.unwrap(), Some(Err(e))),
                    }
                } else {
                    let popped = if writable {
                        dev.pop_writable_slot()
                    } else {
                        dev.pop_readable_slot()
                    };
                    match popped {
                        Ok(None) => Step::Empty,
                        Err(e) => Step::Refused(e),
                        Ok(Some(s)) => {
                            if keep(&s) {
                                Step::Read(s, None)
                            } else {
                                let r = dev.push_used_slot(s.id, None).and_then(|()| {
                                    if writable {
                                        dev.publish_used()
                                    } else {
                                        dev.publish_used_and_rearm()
                                    }
                                });
                                Step::Read(s, Some(r))
                            }
                        }
                    }
                };
                if let Step::Read(s, None) = &step {
                    kept.push(s.id);
                }
                steps.push(step);
                // After each step, not only at the end: a later pop
                // re-arming in place of a publication would hide it there.
                let field = |o: usize| shm.load_u16_acquire(o).unwrap();
                steps.push(Step::Mem(
                    field(L.used_offset()),
                    field(L.used_offset() + 2),
                    field(L.avail_event_offset()),
                ));
            }
        }
        // A foreign push and a double push are refused alike.
        steps.push(Step::Late(dev.push_used_slot(0, None).map(|()| false)));
        let stats = format!("{:?} held {}", dev.stats(), dev.held());
        let mut ring = vec![0u8; WINDOW];
        shm.read(0, &mut ring).unwrap();
        drop(dev);
        (steps, stats, ring)
    }

    #[test]
    fn pop_writable_with_does_what_pop_push_publish_do() {
        for s in [Suppression::EventIdx, Suppression::Flags] {
            let apart = run::<Coherent>(s, true, false);
            let fused = run::<Coherent>(s, true, true);
            assert!(
                apart
                    .0
                    .iter()
                    .any(|x| matches!(x, Step::Refused(Error::NotDeviceWritable))),
                "{s:?}: refusals exercised"
            );
            assert!(
                apart.0.iter().any(|x| matches!(x, Step::Late(Ok(_)))),
                "{s:?}: kept buffers exercised"
            );
            assert_eq!(fused, apart, "{s:?} coherent");
            assert_eq!(
                run::<Line32>(s, true, true),
                run::<Line32>(s, true, false),
                "{s:?} 32-byte lines"
            );
        }
    }

    #[test]
    fn pop_readable_with_does_what_pop_push_publish_do() {
        for s in [Suppression::EventIdx, Suppression::Flags] {
            let apart = run::<Coherent>(s, false, false);
            let fused = run::<Coherent>(s, false, true);
            assert!(
                apart.0.iter().any(|x| matches!(x, Step::Refused(_))),
                "{s:?}: refusals exercised"
            );
            assert!(
                apart.0.iter().any(|x| matches!(x, Step::Late(Ok(_)))),
                "{s:?}: kept buffers exercised"
            );
            assert_eq!(fused, apart, "{s:?} coherent");
            // Not coherent: the split calls themselves.
            assert_eq!(
                run::<Line32>(s, false, true),
                run::<Line32>(s, false, false),
                "{s:?} 32-byte lines"
            );
        }
    }
}

#[cfg(test)]
mod tests_size11 {
    use core::ptr::NonNull;

    use ipc_traits::cache::Coherent;
    use ipc_traits::shm::RawRegion;

    use super::{BufferArea, Device, DeviceConfig, DeviceTables};
    use crate::endian::Legacy;
    use crate::error::Error;
    use crate::layout::Layout;
    use crate::tests::Chunk;

    /// Two rings on one lease: an error of either takes none, the lease
    /// outlives the first device dropped (either one), and both tables
    /// start clean on the next lease.
    #[test]
    fn a_pair_lease_ends_with_the_last_device() {
        const WINDOW: usize = 4096;
        let mut backing = vec![Chunk([0; 64]); WINDOW / 64];
        let base = NonNull::new(backing.as_mut_ptr().cast::<u8>()).unwrap();
        // SAFETY: `backing` outlives the region and is only used through
        // it; the test makes no buffer handle.
        let shm = unsafe { RawRegion::new(base, WINDOW, 0x1000, Coherent) }.unwrap();
        let layouts = [Layout::legacy_at(0, 8, 64), Layout::legacy_at(512, 8, 64)];
        let configs = [
            DeviceConfig::new(BufferArea::new(2048, 1024)),
            DeviceConfig::new(BufferArea::new(3072, 1024)),
        ];
        let tables = DeviceTables::<8, 2>::new();
        // The second ring's buffer area over the first ring: refused, no
        // lease taken.
        let bad = [configs[0], DeviceConfig::new(BufferArea::new(512, 64))];
        // SAFETY: the areas are disjoint, and no buffer handle is made.
        let r = unsafe { Device::<_, Legacy, 8>::new_pair(&shm, layouts, bad, &tables) };
        assert_eq!(r.err(), Some(Error::BadBufferArea));
        assert!(!tables.is_leased());
        for first_dropped in 0..2 {
            // SAFETY: as above.
            let (a, b) =
                unsafe { Device::<_, Legacy, 8>::new_pair(&shm, layouts, configs, &tables) }
                    .unwrap();
            assert_eq!((a.held(), b.held()), (0, 0));
            assert_eq!(a.layout().desc_offset(), 0);
            assert_eq!(b.layout().desc_offset(), 512);
            let (gone, kept) = if first_dropped == 0 { (a, b) } else { (b, a) };
            drop(gone);
            assert!(tables.is_leased());
            // SAFETY: as above.
            let r = unsafe { Device::<_, Legacy, 8>::new_pair(&shm, layouts, configs, &tables) };
            assert_eq!(r.err(), Some(Error::TablesInUse));
            drop(kept);
            assert!(!tables.is_leased());
        }
        drop(backing);
    }
}
