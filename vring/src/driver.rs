//! The driver role: makes buffers available, reaps used ones.
//!
//! This is Linux's side of a remoteproc vring and rpmsg-lite's master side.
//! The driver keeps a trusted shadow of everything it published (the
//! [`PublishedSlot`] fields of each descriptor, the available-ring entries) and
//! never reads its own fields back from shared memory; everything it reads
//! (used index, used entries, the device's flags and `avail_event`) is
//! checked against that shadow.
//!
//! # Protocol, step by step (virtio 1.x §2.7.13, Linux `virtqueue_add_split`
//! / `virtqueue_kick_prepare_split` / `virtqueue_get_buf_ctx_split`)
//!
//! 1. [`Driver::add_readable`] / [`Driver::add_writable`] take a
//!    [`ShmBuf<Clean>`] (payload already written back), write its descriptor
//!    and clean it (on non-coherent memory not when it already holds those
//!    bytes: see `Written`), and write the available entry.
//! 2. [`Driver::publish`] cleans the batch's available entries, stores
//!    `avail.idx` with release ordering and cleans it, then invalidates and
//!    reads `used.flags` or `avail_event` and says whether to notify. A
//!    "yes" is final; a "no" is read again after a `SeqCst` fence, so the
//!    index store and the flag load cannot be reordered (the lost wake-up
//!    of the publish-then-check pattern). [`Driver::publish_and_rearm`]
//!    also re-arms `used_event` under the same fence when every known used
//!    entry was reaped (the end of a receive pass).
//! 3. [`Driver::pop_used`] invalidates and loads `used.idx` (acquire), then
//!    invalidates and reads each entry, accepts only ids it published and not
//!    yet reaped, and hands the slot back as [`ShmBuf<Received>`]: the user
//!    invalidates it and validates the length before reading. With
//!    `EVENT_IDX` and interrupts on, a pop that finds the ring empty first
//!    re-arms `used_event` (store, clean, `fence(SeqCst)`, load `used.idx`
//!    again; §2.7.7).
//!
//! # Cache lines
//!
//! The driver writes the descriptor table and the available ring (with
//! `used_event`) and cleans what it wrote; it only ever invalidates lines of
//! the used ring (with `avail_event`), which it never writes after
//! initialisation. [`crate::layout::Layout::check`] refuses layouts where the
//! two sides' fields share a line.
//!
//! # Design notes
//!
//! - Not enforced by types: that buffers handed to the ring come from the
//!   ring's own memory object. `ipc-traits` gives no way to compare a
//!   buffer's memory with the ring's, so this is the `# Safety` contract of
//!   [`Driver::new`].
//! - `next` fields are written as `i + 1` (and [`DESC_CHAIN_END`] for the
//!   last descriptor) without `VRING_DESC_F_NEXT`, as rpmsg-lite does; the
//!   device ignores them.
#![allow(unsafe_code)]

use core::fmt;

use ipc_traits::buf::{Clean, PublishedSlot, Received, ShmBuf};
use ipc_traits::shm::SharedMemory;

use crate::device::Slot;
use crate::endian::Endian;
use crate::error::{broken, foreign, invalid_length, Error, Stats};
use crate::layout::Layout;
use crate::layout::USED_ELEM_SIZE;
use crate::notify::{
    need_event, Suppression, AVAIL_F_NO_INTERRUPT, DESC_CHAIN_END, DESC_F_WRITE, USED_F_NO_NOTIFY,
};
use crate::ring::{Desc, Field, Fresh, RingMem};

/// How a driver ring behaves; fixed at creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DriverConfig {
    /// Flags or `EVENT_IDX` (must match what the device negotiated).
    pub suppression: Suppression,
    /// Set `VRING_DESC_F_WRITE` on device-readable descriptors too, as
    /// rpmsg-lite's master does for its transmit buffers (vectors 01 and 03:
    /// every descriptor has `flags = 2`). Only for byte-compatibility with
    /// rpmsg-lite; a virtio device may refuse to read such a buffer.
    pub write_flag_on_readable: bool,
}

/// A completed buffer: the slot is back with the driver.
#[must_use = "a reaped buffer that is dropped is lost to its pool"]
pub struct Used<'m, M: ?Sized> {
    /// The descriptor id the device returned.
    pub id: u16,
    /// The length the device reports having written (already checked
    /// against the buffer's size).
    pub len: u32,
    /// The buffer: invalidate it, then validate `len`, before reading.
    pub buf: ShmBuf<'m, M, Received>,
}

/// A failed [`Driver::pop_used`]: the error and, when the slot itself was
/// valid (only [`Error::LengthOverflow`]), the buffer, so it is never lost.
pub struct ReapError<'m, M: ?Sized> {
    /// What went wrong.
    pub error: Error,
    /// The slot, when the id was valid.
    pub buf: Option<ShmBuf<'m, M, Received>>,
}

impl<M: ?Sized> fmt::Debug for Used<'_, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Used")
            .field("id", &self.id)
            .field("len", &self.len)
            .field("buf", &self.buf)
            .finish()
    }
}

impl<M: ?Sized> fmt::Debug for ReapError<'_, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReapError")
            .field("error", &self.error)
            .field("buf", &self.buf)
            .finish()
    }
}

impl<M: ?Sized> fmt::Display for ReapError<'_, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.fmt(f)
    }
}

impl<M: ?Sized> From<Error> for ReapError<'_, M> {
    fn from(error: Error) -> Self {
        Self { error, buf: None }
    }
}

/// The key part of a `tags` entry for a descriptor holding `len` and
/// `flags` (never [`UNKNOWN_DESC`]: `flags` is never `0xffff`).
#[inline(always)]
const fn desc_key(len: u32, flags: u16) -> u64 {
    (flags as u64) << 32 | len as u64
}

/// A bit of a key's flags that no descriptor has (virtio uses the low
/// three): the descriptor was written writable, its length the whole
/// buffer, so a key whose upper half says "writable, whole" needs no
/// length to compare (a readable descriptor may carry `DESC_F_WRITE` too,
/// see [`DriverConfig::write_flag_on_readable`], with a shorter length).
const WHOLE_WRITABLE: u16 = 0x8000;

/// Where a `tags` entry holds its [`State`]: the bits above the key.
const STATE_SHIFT: u32 = 48;

/// The key bits of a `tags` entry.
const KEY_MASK: u64 = (1 << STATE_SHIFT) - 1;

/// The key part of a `tags` entry whose descriptor bytes are not known:
/// every key bit set, so forgetting a key is one `|` that keeps the state.
const UNKNOWN_DESC: u64 = KEY_MASK;

/// The `tags` word of an id in `state` whose descriptor holds `key`.
#[inline(always)]
const fn tag(state: State, key: u64) -> u64 {
    (state as u64) << STATE_SHIFT | key
}

/// The byte of a [`Tag`] that holds the bits at `STATE_SHIFT`.
const STATE_BYTE: usize = if cfg!(target_endian = "little") {
    STATE_SHIFT as usize / 8
} else {
    7 - STATE_SHIFT as usize / 8
};

/// The byte of a [`Tag`] above the state's: no `tags` entry has a bit
/// of it set (states are below 256, keys below `STATE_SHIFT`), so a word
/// with it set matches none (`Driver::send_key`).
const PENDING_BYTE: usize = if cfg!(target_endian = "little") { 7 } else { 0 };

/// One `tags` entry: a `tag` word in native byte order. Bytes, so that
/// the state is a byte of its own to test and to store (the compiler
/// keeps a masked update of a `u64` as a load, two masks and a store),
/// and 8-aligned, so that the word is one load.
#[derive(Clone, Copy)]
#[repr(C, align(8))]
struct Tag([u8; 8]);

impl Tag {
    #[inline(always)]
    const fn new(state: State, key: u64) -> Self {
        Self(tag(state, key).to_ne_bytes())
    }

    /// The whole word (state and key).
    #[inline(always)]
    fn word(self) -> u64 {
        u64::from_ne_bytes(self.0)
    }

    /// The state's byte.
    #[inline(always)]
    fn state(self) -> u8 {
        self.0[STATE_BYTE]
    }
}

/// The flags of a device-readable descriptor (see
/// [`DriverConfig::write_flag_on_readable`]).
#[inline(always)]
const fn readable_flags(write_flag_on_readable: bool) -> u16 {
    if write_flag_on_readable {
        DESC_F_WRITE
    } else {
        0
    }
}

/// Where a descriptor id is in its life (one byte: what two flags and the
/// `Option` of the buffer's record said before, in one compare).
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum State {
    /// On the free stack: bound to no buffer (the record's buffer fields
    /// are stale).
    Free,
    /// Bound to its buffer and added, not yet published: the device
    /// cannot know it (a used entry naming it is refused). The
    /// publication makes it `InFlight` (`publish_new`, from the shadow of
    /// the available ring).
    Added,
    /// Bound to its buffer, published (or parked in the used ring) and not
    /// reaped: only such an id may come back.
    InFlight,
    /// Bound to its buffer and lent out as a [`Slot`]
    /// ([`Driver::pop_used_slot`], [`Driver::lend`]): not on the free stack
    /// until [`Driver::add_slot`] adds it again.
    Lent,
}

/// The driver's record of one descriptor id: the fields of the
/// [`PublishedSlot`] the id is bound to (while it is not free) that only
/// a descriptor write reads, and its fixed `next` field. The buffer's
/// range is in `spans`, the id's [`State`] in `tags`, beside what its
/// descriptor holds.
#[derive(Clone, Copy)]
struct Record {
    /// The buffer's peer address (what goes into the descriptor).
    peer_addr: u64,
    /// The descriptor's `next` field: `id + 1`, or [`DESC_CHAIN_END`] for
    /// the last id (the same for every write: computed once, in
    /// [`Driver::new`]).
    next: u16,
}

impl Record {
    const FREE: Self = Self {
        peer_addr: 0,
        next: DESC_CHAIN_END,
    };
}

/// The window range of the buffer an id is bound to, in 32 bits: 8 bytes,
/// so that a reap indexes it by the id scaled (no shift of its own), and
/// reads both fields from it. Every bound buffer lies in the first 4 GiB
/// of its window (`Driver::check_buffer`), so the fields are exact.
#[derive(Clone, Copy)]
struct Span {
    offset: u32,
    capacity: u32,
}

impl Span {
    const NONE: Self = Self {
        offset: 0,
        capacity: 0,
    };

    /// `slot`'s range. `slot` passed `Driver::check_buffer` (its range
    /// ends within 4 GiB), or is the same range as a handle that did
    /// (`Driver::add`'s recognition of a recycled buffer by its address
    /// and capacity): the conversions are exact.
    #[inline(always)]
    fn of(slot: &PublishedSlot) -> Self {
        Self {
            offset: slot.offset() as u32,
            capacity: slot.capacity() as u32,
        }
    }

    #[inline(always)]
    fn offset(self) -> usize {
        // Lossless: every target this crate builds for has a `usize` of at
        // least 32 bits (see `RingMem::slot`).
        self.offset as usize
    }

    #[inline(always)]
    fn capacity(self) -> usize {
        // Lossless (see `offset`).
        self.capacity as usize
    }
}

/// A used entry [`Driver::reap`] accepted: the id, the length the device
/// reported (not yet checked against the capacity) and the id's buffer
/// (its capacity as its `Span` holds it: 32 bits, exact, so the length
/// check is one 32-bit compare with no conversion).
struct Reaped {
    id: u16,
    len: u32,
    offset: usize,
    capacity: u32,
}

/// What this driver last wrote into descriptor `id`, for a buffer it had
/// checked ([`Driver::add_readable`]): the same buffer added again under
/// the same id (a recycled buffer) is not checked again.
///
/// On non-coherent memory an unchanged descriptor is not written (and its
/// line not cleaned) again, unless something says it may no longer hold
/// these bytes: the device returned the buffer with length 0 (what a
/// device rejecting the descriptor does, `Device` included: `trusted`
/// drops), or this core reads the table and finds other bytes (a stray
/// write, a scribble reaching memory while the line is not cached here).
/// A corrupted descriptor so costs one message, then is written again.
/// Coherent memory writes it every time (there is no clean to save) and
/// keeps the record only for [`Driver::add_readable`]'s recognition of a
/// checked buffer ([`Driver::add_slot`] records nothing there: a lent id
/// is bound to its buffer for good).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Written {
    addr: u64,
    /// The handle's capacity when it was checked (the overlap with the
    /// ring's areas depends on it).
    capacity: usize,
    len: u32,
    flags: u16,
    /// Whether the descriptor is believed to still hold these bytes.
    trusted: bool,
}

impl Written {
    /// What `Driver::post` is given for a descriptor known to hold its
    /// bytes already (on coherent memory, where it neither writes nor
    /// records it): nothing of it is read.
    const KNOWN: Self = Self {
        addr: 0,
        capacity: 0,
        len: 0,
        flags: 0,
        trusted: true,
    };
}

/// The driver side of one split virtqueue over `M`, in byte order `E`, for
/// up to `N` entries.
///
/// # Examples
///
/// ```
/// # use core::ptr::NonNull;
/// use ipc_traits::buf::{Dirty, ShmBuf};
/// use ipc_traits::cache::Coherent;
/// use ipc_traits::shm::RawRegion;
/// use vring::{device::{BufferArea, Device, DeviceConfig, DeviceTables}, driver::{Driver, DriverConfig}};
/// use vring::{endian::Legacy, layout::Layout};
///
/// #[repr(align(64))]
/// struct Backing([u8; 2048]);
/// let mut backing = Backing([0; 2048]);
/// let base = NonNull::new(backing.0.as_mut_ptr()).unwrap();
/// // SAFETY: `backing` outlives `shm` and is only accessed through it.
/// let shm = unsafe { RawRegion::new(base, 2048, 0x4000_0000, Coherent) }.unwrap();
///
/// const L: Layout = Layout::legacy(4, 64);
/// // SAFETY: every buffer below is built over `shm`, and the device's buffer
/// // area (1024..2048) holds no other buffer handle.
/// let mut drv = unsafe { Driver::<_, Legacy, 4>::new(&shm, L, DriverConfig::default()) }.unwrap();
/// let tables = DeviceTables::<4>::new();
/// let mut dev = unsafe {
///     Device::<_, Legacy, 4>::new(&shm, L, DeviceConfig::new(BufferArea::new(1024, 1024)), &tables)
/// }.unwrap();
///
/// // SAFETY: the slot 1024..1088 is owned by this test.
/// let mut buf = unsafe { ShmBuf::<_, Dirty>::new_unchecked(&shm, 1024, 64) }.unwrap();
/// buf.write(0, b"ping").unwrap();
/// let id = drv.add_readable(buf.clean().unwrap()).map_err(|(_, e)| e).unwrap();
/// assert!(drv.publish().unwrap()); // the device did not suppress notifications
///
/// let popped = dev.pop_readable().unwrap().unwrap();
/// assert_eq!((popped.head, popped.len), (id, 4));
/// let rx = popped.buf.invalidate().unwrap().validate(popped.len).unwrap();
/// let mut text = [0u8; 4];
/// rx.read(0, &mut text).unwrap();
/// assert_eq!(&text, b"ping");
/// dev.push_used(popped.head, rx, 0).map_err(|(_, e)| e).unwrap();
/// dev.publish_used().unwrap();
///
/// let used = drv.pop_used().unwrap().unwrap();
/// assert_eq!((used.id, used.len, used.buf.offset()), (id, 0, 1024));
/// ```
pub struct Driver<'m, M: SharedMemory + ?Sized, E: Endian, const N: usize> {
    ring: RingMem<'m, M, E>,
    config: DriverConfig,
    slots: [Record; N],
    /// The range of the buffer each id is bound to (while it is not free).
    spans: [Span; N],
    /// What each descriptor was last written with (see [`Written`]; on
    /// coherent memory, by [`Driver::add_readable`] or
    /// [`Driver::add_writable`] only).
    written: [Option<Written>; N],
    /// Per id, one word: its [`State`] (the byte at `STATE_SHIFT`) and,
    /// below it, the key: on coherent memory, for lent ids
    /// ([`Driver::add_slot`]), the length and flags descriptor `id` holds
    /// for its bound buffer (see `desc_key`). The address and `next` of a
    /// lent id are those of its binding, so an add with the same length
    /// and flags writes nothing: the device reads the descriptor (the
    /// driver never does), and a device that finds it changed returns it
    /// with length 0, which clears the key (as `Written::trusted` on
    /// non-coherent memory). Every binding (`bind_record`) clears it too.
    /// Cleared is [`UNKNOWN_DESC`] (always, on non-coherent memory). So
    /// the usual [`Driver::add_slot`] is one compare of the word with
    /// "lent, holding this length and these flags", which also stands for
    /// the length check (a key is recorded only for a length that passed
    /// it, and cleared at every binding); the state changes are byte
    /// stores.
    tags: [Tag; N],
    /// `tag(State::Lent, desc_key(0, flags))` for the flags of a
    /// device-readable descriptor (see `write_flag_on_readable`): what
    /// `tags` holds for a lent id whose descriptor is readable, but for
    /// the length (fixed at creation).
    readable_lent: u64,
    /// `readable_lent` while every entry added is published (`published
    /// == avail_idx`); with the byte at `PENDING_BYTE` set (matching no
    /// tag) whenever entries wait (set by every add that does not publish
    /// at once and by a failed publication; cleared by `publish_inner`
    /// and `add_slot_and_publish_any` once published). So the usual
    /// [`Driver::add_slot_and_publish`] tests "nothing waiting" and "lent,
    /// holding this length" in its one compare. Set while nothing waits
    /// only costs that add the general path.
    send_key: Tag,
    free: [u16; N],
    free_len: usize,
    avail_shadow: [u16; N],
    /// Entries added so far (wrapping; unpublished ones included): its low
    /// 16 bits are the next available position to write. What `avail.idx`
    /// holds in memory is the low 16 bits of `published`.
    avail_idx: u32,
    /// Entries published so far (wrapping): its low 16 bits are what
    /// `avail.idx` holds in memory ([`Driver::published_idx`]).
    published: u32,
    /// Next used position to read.
    last_used: u16,
    /// The last `used.idx` observed.
    used_seen: u16,
    /// Used positions that took no published entry back: the entries
    /// written by [`Driver::preload_used`] (which come back without being
    /// published; before anything is reaped, this is their count and so the
    /// next preload position) plus the entries skipped with
    /// [`Error::UnknownUsedId`]. The slots in flight (visible to the device,
    /// not reaped) are then `published_idx + credit - last_used`
    /// ([`Driver::in_flight`]): no count to keep per publication and per
    /// reap.
    credit: u16,
    /// Whether the device is asked to interrupt (cleared by
    /// [`Driver::disable_interrupts`]). `EVENT_IDX`: while set, `used_event`
    /// is re-armed whenever the used ring is found empty.
    interrupts_on: bool,
    /// `EVENT_IDX`: the position this driver last stored in `used_event`
    /// *and* executed a full fence after, so every later load of `used.idx`
    /// is ordered after that store; `None` when unknown.
    armed_at: Option<u16>,
    /// Used-entry lines invalidated since the last fetch of `used.idx`
    /// ([`RingMem::invalidate_entry`]).
    fresh: Fresh,
    /// The next publication takes the unfenced first read of
    /// `avail_event` (`EVENT_IDX`) or of `used.flags` (flags mode). Both
    /// false when the device's last answer ([`Driver::publish`]) was "no
    /// notification": the next publication skips that read, which would
    /// most likely say "no" again and be read once more after the fence,
    /// and goes straight to the fence. One flag per mode, so the usual
    /// case is one test (not one of the answer and one of the mode).
    look_event: bool,
    /// See `look_event`.
    look_flags: bool,
    /// Non-coherent memory, flags mode: the fenced read of `used.flags` at
    /// the last publication loaded the line that also holds `used.idx`, and
    /// nothing was stored into this driver's suppression field since. A
    /// [`Driver::pop_used_after_publish`] that fetches the index reads it
    /// from that line without invalidating it again: a value loaded after
    /// the publication's full fence. Any fetch clears it.
    idx_line_loaded: bool,
    /// An available entry was written since the last publication (an entry in
    /// the index's line already holding the id added is not written, nor cleaned).
    entries_dirty: bool,
    /// The ring's `num` while it works; 0 once an index jump broke it
    /// ([`Driver::is_broken`]). Breaking also frees every record, so
    /// [`Driver::add_slot`]'s test of the record refuses every id of a
    /// broken ring (no test of a separate flag first), and leaves the
    /// driver with no used entry known (`used_seen`), so a reap reaches the
    /// fetch of `used.idx`, where it tests for a broken ring.
    live_num: u16,
    stats: Stats,
}

impl<'m, M: SharedMemory + ?Sized, E: Endian, const N: usize> Driver<'m, M, E, N> {
    /// Initialises a ring at `layout` in `mem`: zeroes its three areas (as
    /// Linux and rpmsg-lite do before use) and writes them back.
    ///
    /// # Errors
    ///
    /// A layout error ([`Error::RingOutsideWindow`] and the others) if the layout does not fit the window, shares cache
    /// lines between the two sides, or has more than `N` entries;
    /// [`Error::Memory`].
    ///
    /// # Safety
    ///
    /// Every buffer later handed to this ring ([`Driver::add_readable`],
    /// [`Driver::add_writable`], [`Driver::preload_used`]) is built over
    /// `mem` itself (not another memory object of the same type): the ring
    /// hands each slot back as a new buffer over `mem`.
    pub unsafe fn new(mem: &'m M, layout: Layout, config: DriverConfig) -> Result<Self, Error> {
        let ring = RingMem::new(mem, layout, N)?;
        for (off, len) in layout.areas() {
            ring.zero(off, len)?;
            ring.clean(off, len)?;
        }
        // The used ring is the device's from now on: drop the zeroed lines
        // written back above, so the first unfenced read of `used.flags`
        // (`device_wants`) loads what the device wrote since, not this
        // core's zeroes (a spurious "notify me").
        let (used, used_len) = layout.areas()[2];
        ring.invalidate(used, used_len)?;
        let num = usize::from(layout.num());
        let mut free = [0u16; N];
        // A stack whose top is descriptor 0: buffers take ids 0, 1, 2, ...
        // in the order they are first added, as rpmsg-lite and Linux do.
        for (slot, id) in free.iter_mut().zip((0..layout.num()).rev()) {
            *slot = id;
        }
        let mut slots = [const { Record::FREE }; N];
        // Every id below `num` but the last chains to the next (`FREE`
        // holds the end of the chain).
        for (r, next) in slots.iter_mut().zip(1..layout.num()) {
            r.next = next;
        }
        Ok(Self {
            ring,
            config,
            slots,
            spans: [Span::NONE; N],
            written: [None; N],
            tags: [Tag::new(State::Free, UNKNOWN_DESC); N],
            readable_lent: tag(
                State::Lent,
                desc_key(0, readable_flags(config.write_flag_on_readable)),
            ),
            send_key: Tag(tag(
                State::Lent,
                desc_key(0, readable_flags(config.write_flag_on_readable)),
            )
            .to_ne_bytes()),
            free,
            free_len: num,
            avail_shadow: [0; N],
            avail_idx: 0,
            published: 0,
            last_used: 0,
            used_seen: 0,
            credit: 0,
            // The zeroed ring asks for interrupts (flags 0, event 0).
            interrupts_on: true,
            armed_at: None,
            look_event: config.suppression == Suppression::EventIdx,
            look_flags: config.suppression == Suppression::Flags,
            idx_line_loaded: false,
            entries_dirty: false,
            fresh: Fresh::NONE,
            live_num: layout.num(),
            stats: Stats::default(),
        })
    }

    /// The ring's layout.
    pub fn layout(&self) -> &Layout {
        &self.ring.layout
    }

    /// The statistics so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Whether an index jump broke the ring.
    pub fn is_broken(&self) -> bool {
        self.live_num == 0
    }

    /// Free descriptors.
    pub fn num_free(&self) -> usize {
        self.free_len
    }

    /// Buffers the device holds (published, not yet reaped).
    pub fn in_flight(&self) -> u16 {
        self.published_idx()
            .wrapping_add(self.credit)
            .wrapping_sub(self.last_used)
    }

    /// Buffers added but not yet published.
    pub fn unpublished(&self) -> u16 {
        self.avail_pos().wrapping_sub(self.published_idx())
    }

    /// What `avail.idx` holds in memory: the low 16 bits of the entries
    /// published so far (see `avail_idx`).
    #[inline(always)]
    fn published_idx(&self) -> u16 {
        self.published as u16
    }

    /// The next available position to write (see `avail_idx`).
    #[inline(always)]
    fn avail_pos(&self) -> u16 {
        self.avail_idx as u16
    }

    /// Makes a buffer available for the device to read: `buf.len()` bytes.
    ///
    /// Becomes visible at the next [`Driver::publish`].
    ///
    /// # Errors
    ///
    /// [`Error::Full`], [`Error::Broken`], [`Error::ForeignBuffer`] (the
    /// buffer overlaps this ring's areas, or ends beyond the first 4 GiB of
    /// its window), [`Error::InvalidLength`] (larger
    /// than a descriptor can say), [`Error::Memory`]; the buffer is handed
    /// back.
    #[allow(clippy::type_complexity)]
    #[inline]
    pub fn add_readable(
        &mut self,
        buf: ShmBuf<'m, M, Clean>,
    ) -> Result<u16, (ShmBuf<'m, M, Clean>, Error)> {
        let len = buf.len();
        let flags = readable_flags(self.config.write_flag_on_readable);
        self.add(buf, len, flags)
    }

    /// Makes an empty buffer available for the device to fill (its whole
    /// capacity, `VRING_DESC_F_WRITE`).
    ///
    /// # Errors
    ///
    /// As [`Driver::add_readable`].
    #[allow(clippy::type_complexity)]
    #[inline]
    pub fn add_writable(
        &mut self,
        buf: ShmBuf<'m, M, Clean>,
    ) -> Result<u16, (ShmBuf<'m, M, Clean>, Error)> {
        let len = buf.capacity();
        self.add(buf, len, DESC_F_WRITE)
    }

    fn check_buffer(&self, buf: &ShmBuf<'m, M, Clean>, len: usize) -> Result<u32, Error> {
        if self.is_broken() {
            return Err(Error::Broken);
        }
        if self.free_len == 0 {
            return Err(Error::Full);
        }
        // A handle is line-aligned, line-padded and inside its window (its
        // construction checked that), so its range is already whole lines:
        // only the ring's own areas and the window's identity (same peer
        // base) are left to compare, without re-deriving anything.
        // The range must also end within 4 GiB of the window's base: the
        // driver keeps it in 32 bits (`Span`). The end cannot overflow (the
        // handle lies inside its window).
        if self.ring.layout.overlaps(buf.offset(), buf.capacity())
            || buf.peer_addr().wrapping_sub(buf.offset() as u64) != self.ring.mem.peer_base()
            || u32::try_from(buf.offset() + buf.capacity()).is_err()
        {
            return Err(Error::ForeignBuffer);
        }
        u32::try_from(len).map_err(|_| Error::InvalidLength)
    }

    /// The descriptor this driver writes for `w`, with the id's `next`
    /// field ([`Record::next`]).
    #[inline]
    fn descriptor(w: &Written, next: u16) -> Desc {
        Desc {
            addr: w.addr,
            len: w.len,
            flags: w.flags,
            next,
        }
    }

    /// Writes descriptor `id` in full for `w` and cleans it. `w`'s fields
    /// go by value (in registers: a reference would put them in memory
    /// first, on the hot path of [`Driver::add_slot`]).
    ///
    /// # Safety
    ///
    /// `id < num` (no mask is applied: every id this driver hands out
    /// comes from its free stack, which holds the ids below `num`).
    #[inline]
    unsafe fn write_descriptor(
        ring: &RingMem<'m, M, E>,
        id: u16,
        addr: u64,
        len: u32,
        flags: u16,
        next: u16,
    ) -> Result<(), Error> {
        let w = Written {
            addr,
            capacity: 0,
            len,
            flags,
            trusted: true,
        };
        // SAFETY: `id < num` (the caller's contract).
        unsafe { ring.write_desc_below_num(usize::from(id), &Self::descriptor(&w, next)) }?;
        ring.clean(ring.layout.desc_entry_offset(id), crate::layout::DESC_SIZE)
    }

    #[allow(clippy::type_complexity)]
    #[inline(always)]
    fn add(
        &mut self,
        buf: ShmBuf<'m, M, Clean>,
        len: usize,
        flags: u16,
    ) -> Result<u16, (ShmBuf<'m, M, Clean>, Error)> {
        let Some(&id) = self.free.get(self.free_len.wrapping_sub(1)) else {
            let e = if self.is_broken() {
                Error::Broken
            } else {
                Error::Full
            };
            return Err((buf, e));
        };
        let addr = buf.peer_addr();
        let capacity = buf.capacity();
        // The buffer descriptor `id` last named, checked then: the same
        // handle range, nothing to check again.
        let known =
            self.written[usize::from(id)].is_some_and(|w| w.addr == addr && w.capacity == capacity);
        let len = if known && !self.is_broken() {
            u32::try_from(len).map_err(|_| Error::InvalidLength)
        } else {
            self.check_buffer(&buf, len)
        };
        let len = match len {
            Ok(l) => l,
            Err(e) => return Err((buf, e)),
        };
        let w = Written {
            addr,
            capacity,
            len,
            flags,
            trusted: true,
        };
        let next = self.slots[usize::from(id)].next;
        let ring = self.ring;
        // SAFETY: `id` came off the free stack, which holds ids below
        // `num` only (`new` fills it with `0..num`; an id goes back only
        // from a record bound when it was taken off).
        if let Err(e) = unsafe { self.post(&ring, id, w, next, false, false) } {
            return Err((buf, e));
        }
        if M::COHERENT {
            // The checked range, recognised next time (`post` records
            // it only on non-coherent memory).
            self.written[usize::from(id)] = Some(w);
        }
        self.free_len -= 1;
        self.bind_record(id, &buf.into_published(), State::Added);
        Ok(id)
    }

    /// Binds record `id` to `slot` (its record and span); what its
    /// descriptor was known to hold for the last binding is forgotten.
    #[inline(always)]
    fn bind_record(&mut self, id: u16, slot: &PublishedSlot, state: State) {
        self.slots[usize::from(id)].peer_addr = slot.peer_addr();
        self.spans[usize::from(id)] = Span::of(slot);
        self.tags[usize::from(id)] = Tag::new(state, UNKNOWN_DESC);
    }

    /// Sets the state of id `i` (`i < N`), keeping its key: a byte store.
    #[inline(always)]
    fn set_state(&mut self, i: usize, state: State) {
        if let Some(t) = self.tags.get_mut(i) {
            t.0[STATE_BYTE] = state as u8;
        }
    }

    /// Forgets what descriptor `i` (`i < N`) holds, keeping its state.
    #[inline(always)]
    fn forget_desc(&mut self, i: usize) {
        if let Some(t) = self.tags.get_mut(i) {
            *t = Tag((t.word() | UNKNOWN_DESC).to_ne_bytes());
        }
    }

    /// Writes descriptor `id` as `w` with `next` (unless it provably holds
    /// it already) and the next available entry; the caller records the id
    /// as taken.
    /// `ring`: a copy of this ring's (see `RingMem`'s `Copy`), so nothing
    /// of it is loaded again after each store; `published`: the entry is
    /// published straight after (no shadow entry, see `shadow`); `known`:
    /// the descriptor is known to hold `w` and `next` already (see
    /// `tags`).
    ///
    /// # Safety
    ///
    /// `id < num` (see `write_descriptor`).
    #[inline(always)]
    unsafe fn post(
        &mut self,
        ring: &RingMem<'m, M, E>,
        id: u16,
        w: Written,
        next: u16,
        published: bool,
        known: bool,
    ) -> Result<(), Error> {
        let added = self.avail_idx;
        let pos = added as u16;
        let unchanged = known
            || !M::COHERENT
                && self.written[usize::from(id)] == Some(w)
                && ring
                    .read_desc(id)
                    .is_ok_and(|d| d == Self::descriptor(&w, next));
        let written = if unchanged {
            Ok(())
        } else {
            // SAFETY: `id < num` (the caller's contract).
            unsafe { Self::write_descriptor(ring, id, w.addr, w.len, w.flags, next) }
        }
        .and_then(|()| ring.update_avail_entry(pos, id));
        match written {
            Ok(wrote) => {
                if !M::COHERENT {
                    self.entries_dirty |= wrote;
                }
            }
            Err(e) => {
                self.written[usize::from(id)] = None;
                if M::COHERENT {
                    // Perhaps written in part.
                    self.forget_desc(usize::from(id));
                }
                return Err(e);
            }
        }
        if !M::COHERENT {
            // Coherent memory writes every descriptor (the record is only
            // `add`'s, which keeps it itself): nothing to record for a
            // lent slot, bound to its buffer for good.
            self.written[usize::from(id)] = Some(w);
        }
        if !published {
            self.shadow(ring, pos, id);
            self.send_key.0[PENDING_BYTE] = 1;
        }
        self.avail_idx = added.wrapping_add(1);
        Ok(())
    }

    /// Records `id` as added at `pos`, for the publication to mark it
    /// `InFlight` (`mark_published`, which reads the shadow at the
    /// positions published, each written by the add there). An add
    /// published at once ([`Driver::add_slot_and_publish`], whose failure
    /// path records it) is marked as it is added and needs no entry.
    #[inline(always)]
    fn shadow(&mut self, ring: &RingMem<'m, M, E>, pos: u16, id: u16) {
        let at = ring.slot(pos);
        // SAFETY: `at <= mask < num <= N` (`RingMem::new` refused a layout
        // of more than `N` entries): the masked position is in bounds, so
        // the check `[]` would add is left out.
        *unsafe { self.avail_shadow.get_unchecked_mut(at) } = id;
    }

    /// Binds a buffer to a free descriptor id for good and lends it back
    /// as a [`Slot`] (`len` its capacity), to be added with
    /// [`Driver::add_slot`]: a pool the driver owns is bound once, at
    /// attach, and the per-id record replaces every later check (the
    /// buffer was checked here, as by [`Driver::add_readable`]).
    ///
    /// # Errors
    ///
    /// As [`Driver::add_readable`]; the buffer is handed back.
    #[allow(clippy::type_complexity)]
    pub fn lend(
        &mut self,
        buf: ShmBuf<'m, M, Clean>,
    ) -> Result<Slot, (ShmBuf<'m, M, Clean>, Error)> {
        let capacity = buf.capacity();
        let len = match self.check_buffer(&buf, capacity) {
            Ok(l) => l,
            Err(e) => return Err((buf, e)),
        };
        self.free_len -= 1;
        let id = self.free[self.free_len];
        let offset = buf.offset();
        self.bind_record(id, &buf.into_published(), State::Lent);
        Ok(Slot { id, offset, len })
    }

    /// Makes the buffer of lent descriptor `id` ([`Driver::lend`],
    /// [`Driver::pop_used_slot`]) available again: for the device to read
    /// `len` bytes, or (`writable`) to fill its whole capacity. Becomes
    /// visible at the next [`Driver::publish`]. A writer cleans what it
    /// wrote into the buffer before this.
    ///
    /// # Errors
    ///
    /// [`Error::ForeignBuffer`] (`id` is not lent), [`Error::InvalidLength`]
    /// (`len` beyond the buffer), [`Error::Broken`], [`Error::Memory`]; the
    /// id stays lent.
    #[inline(always)]
    pub fn add_slot(&mut self, id: u16, len: u32, writable: bool) -> Result<(), Error> {
        let ring = self.ring;
        self.add_slot_in(&ring, id, len, writable, false)
    }

    /// [`Driver::add_slot`] with a copy of this ring's `ring` (see
    /// `RingMem`'s `Copy`). `published`: the caller publishes the entry
    /// straight after (its failure path undoes this, see
    /// [`Driver::add_slot_and_publish`]), so the id is `InFlight` at once
    /// and no shadow entry is written.
    #[inline(always)]
    fn add_slot_in(
        &mut self,
        ring: &RingMem<'m, M, E>,
        id: u16,
        len: u32,
        writable: bool,
        published: bool,
    ) -> Result<(), Error> {
        let i = usize::from(id);
        // Only ids below `num` are ever lent (`lend` takes them off the
        // free stack, a reap lends only an id in flight), and breaking the
        // ring frees every id (`break_ring`): the one test of the tag
        // refuses a foreign id and a broken ring alike.
        let Some(t) = self.tags.get(i).map(|t| t.word()) else {
            return self.refuse_slot();
        };
        // Coherent memory, the usual case: one compare with "lent, its
        // descriptor holding this length" (see `tags`); for a writable
        // buffer, "lent, its descriptor writable" (the upper half of the
        // word: a writable key's length is always the buffer's capacity,
        // and every binding clears the key).
        let usual = if writable {
            (t >> 32) as u32
                == (tag(State::Lent, desc_key(0, DESC_F_WRITE | WHOLE_WRITABLE)) >> 32) as u32
        } else {
            t == self.readable_lent | u64::from(len)
        };
        if M::COHERENT && usual {
            // SAFETY: `id < num`: it is lent (the tag says so).
            unsafe { self.post(ring, id, Written::KNOWN, 0, published, true) }?;
            self.set_state(i, Self::added_state(published));
            return Ok(());
        }
        if (t >> STATE_SHIFT) as u8 != State::Lent as u8 {
            return self.refuse_slot();
        }
        // SAFETY: `i < N`: `tags` has `N` entries, as `slots` and `spans`.
        let r = unsafe { self.slots.get_unchecked(i) };
        let (addr, next) = (r.peer_addr, r.next);
        // SAFETY: as above.
        let capacity = unsafe { self.spans.get_unchecked(i) }.capacity();
        let (len, flags) = if writable {
            (u32::try_from(capacity).unwrap_or(u32::MAX), DESC_F_WRITE)
        } else if len as usize > capacity {
            return invalid_length();
        } else {
            (len, readable_flags(self.config.write_flag_on_readable))
        };
        // A writable key is marked apart from a readable one with the same
        // flags (`write_flag_on_readable`), whose length may be shorter.
        let key = desc_key(len, flags | if writable { WHOLE_WRITABLE } else { 0 });
        let known = M::COHERENT && t & KEY_MASK == key;
        // SAFETY: `id < num`: it is lent (tested above).
        unsafe {
            self.post(
                ring,
                id,
                Written {
                    addr,
                    capacity,
                    len,
                    flags,
                    trusted: true,
                },
                next,
                published,
                known,
            )
        }?;
        let state = Self::added_state(published);
        if M::COHERENT && !known {
            if let Some(t) = self.tags.get_mut(i) {
                *t = Tag::new(state, key);
            }
        } else {
            self.set_state(i, state);
        }
        Ok(())
    }

    /// The state of an id just added: `InFlight` when `published` at
    /// once, else `Added`.
    #[inline(always)]
    fn added_state(published: bool) -> State {
        if published {
            State::InFlight
        } else {
            State::Added
        }
    }

    /// Publishes every buffer added since the last call and says whether
    /// the device wants a notification (the ring does not own the doorbell).
    ///
    /// Order: clean the new available entries; store `avail.idx` (release)
    /// and clean it; invalidate and read the device's `used.flags` or
    /// `avail_event`. A read that asks for a notification is the answer
    /// without a fence (a stale value can only make the doorbell spurious,
    /// and the doorbell wakes the device whatever it stored meanwhile).
    /// Otherwise `fence(SeqCst)` — the index store and the second read must
    /// not be reordered (the lost wake-up of the publish-then-check
    /// pattern) — and the read again. So a publication costs a doorbell or
    /// a fence, not both: at steady state of a one-way stream the device is
    /// idle and armed, and the driver pays no fence.
    ///
    /// # Errors
    ///
    /// [`Error::Broken`], [`Error::Memory`].
    #[must_use = "a publication the device wants to hear about needs a notification"]
    #[inline]
    pub fn publish(&mut self) -> Result<bool, Error> {
        self.publish_inner(false)
    }

    /// [`Driver::publish`] at the end of a receive pass: when this driver
    /// has reaped every used entry it knows of and interrupts are on
    /// (`EVENT_IDX`), it also re-arms `used_event` at the next entry to
    /// reap, and one full fence orders both stores (`avail.idx`,
    /// `used_event`) before both reads (`avail_event` here, `used.idx` at
    /// the next [`Driver::pop_used`], which then pays no fence of its own).
    ///
    /// For the ring whose used entries are work (the master's receive
    /// ring, where it posts buffers back); the transmit ring, whose used
    /// entries are returned buffers the driver reaps only when it needs
    /// one, re-arms when a pop finds it empty, so the device does not
    /// interrupt for every buffer it returns.
    ///
    /// # Errors
    ///
    /// As [`Driver::publish`].
    #[must_use = "a publication the device wants to hear about needs a notification"]
    #[inline]
    pub fn publish_and_rearm(&mut self) -> Result<bool, Error> {
        self.publish_inner(true)
    }

    #[inline(always)]
    fn publish_inner(&mut self, rearm: bool) -> Result<bool, Error> {
        if self.is_broken() {
            return broken();
        }
        let (old, added) = (self.published, self.avail_idx);
        if old == added {
            return Ok(false);
        }
        let ring = self.ring;
        self.publish_new(&ring, old as u16, added, rearm, false, true)
    }

    /// [`Driver::add_slot`] and then [`Driver::publish`]: one call for a
    /// writer that publishes every buffer it adds (the add's checks stand
    /// for the publication's: the ring is not broken, an entry is new).
    ///
    /// # Errors
    ///
    /// `(error, false)`: as [`Driver::add_slot`], nothing added (the id
    /// stays lent); `(error, true)`: added, the publication failed as
    /// [`Driver::publish`] does.
    #[must_use = "a publication the device wants to hear about needs a notification"]
    #[inline(always)]
    pub fn add_slot_and_publish(
        &mut self,
        id: u16,
        len: u32,
        writable: bool,
    ) -> Result<bool, (Error, bool)> {
        if !M::COHERENT {
            return self.add_slot_and_publish_any(id, len, writable, false);
        }
        // Coherent memory: the usual case here, all else out of line (the
        // fewer values the inlined path keeps, the fewer its caller's
        // registers it takes).
        let i = usize::from(id);
        // One compare: lent, holding this length, and no entry waiting
        // (`send_key`: then `published == avail_idx`).
        let known = !writable
            && self
                .tags
                .get(i)
                .is_some_and(|t| t.word() == self.send_key.word() | u64::from(len));
        if !known {
            return self.add_slot_and_publish_out(id, len, writable);
        }
        // Lent, its descriptor holding this length and flags (so within
        // the buffer, see `tags`), and no entry waiting: the entry is the
        // only one published. Not broken (lent, see `add_slot_in`).
        let ring = self.ring;
        // SAFETY: `mask` is `num - 1` of a `u16` `num` (`RingMem::new`,
        // the only place it is set). Told, a masked 16-bit position needs
        // no truncation of its own.
        unsafe { core::hint::assert_unchecked(ring.mask <= u32::from(u16::MAX)) };
        // Nothing waits: the published index is where this entry goes.
        let old = self.avail_idx;
        // SAFETY: `id < num`: it is lent.
        unsafe { self.post(&ring, id, Written::KNOWN, 0, true, true) }.map_err(|e| (e, false))?;
        self.set_state(i, State::InFlight);
        // `old + 1`: the compiler then folds the marking's test and
        // `need_event` (to `avail_event == old`).
        let added = old.wrapping_add(1);
        self.publish_new(&ring, old as u16, added, false, true, false)
            .map_err(|e| {
                if self.published != added {
                    // Still unpublished: recorded as `add_slot` does.
                    self.set_state(i, State::Added);
                    self.shadow(&ring, old as u16, id);
                    self.send_key.0[PENDING_BYTE] = 1;
                }
                (e, true)
            })
    }

    /// [`Driver::add_slot_and_publish`] out of line (see there). Not
    /// `#[cold]`: that moved the caller's register saves about and cost
    /// the bench's loop 4 instructions per message.
    #[inline(never)]
    fn add_slot_and_publish_out(
        &mut self,
        id: u16,
        len: u32,
        writable: bool,
    ) -> Result<bool, (Error, bool)> {
        self.add_slot_and_publish_any(id, len, writable, false)
    }

    /// [`Driver::add_slot`] and then [`Driver::publish_and_rearm`]: one
    /// call for the ring whose used entries are work (a receive ring
    /// posting each buffer back as it is read), with the add's checks
    /// standing for the publication's, as in
    /// [`Driver::add_slot_and_publish`].
    ///
    /// # Errors
    ///
    /// As [`Driver::add_slot_and_publish`].
    #[must_use = "a publication the device wants to hear about needs a notification"]
    #[inline(always)]
    pub fn add_slot_and_publish_rearm(
        &mut self,
        id: u16,
        len: u32,
        writable: bool,
    ) -> Result<bool, (Error, bool)> {
        self.add_slot_and_publish_any(id, len, writable, true)
    }

    /// [`Driver::add_slot_and_publish`] (`rearm`: as
    /// [`Driver::publish_and_rearm`]) in every case.
    #[inline(always)]
    fn add_slot_and_publish_any(
        &mut self,
        id: u16,
        len: u32,
        writable: bool,
        rearm: bool,
    ) -> Result<bool, (Error, bool)> {
        // One copy of the ring for both (see `RingMem`'s `Copy`).
        let ring = self.ring;
        self.add_slot_in(&ring, id, len, writable, true)
            .map_err(|e| (e, false))?;
        // Not broken (`add_slot` checked, and only a fetch of `used.idx`
        // breaks the ring) and `published_idx..avail_idx` holds the
        // entries added before (if any) and, last, the one just added.
        let (old, added) = (self.published_idx(), self.avail_idx);
        self.publish_new(&ring, old, added, rearm, true, true)
            .map_err(|e| {
                if self.published != added {
                    // Still unpublished: recorded as `add_slot` does.
                    self.set_state(usize::from(id), State::Added);
                    self.shadow(&ring, added.wrapping_sub(1) as u16, id);
                    self.send_key.0[PENDING_BYTE] = 1;
                }
                (e, true)
            })
    }

    /// [`Driver::publish_inner`] of the new entries `old..added` (not
    /// empty; `old` the published index, `added` the count of entries
    /// added, see `avail_idx`) of a ring that is not broken; `last_marked`:
    /// the last of them is `InFlight` already (added and published at
    /// once); `settle`: clear `send_key`'s pending byte with the
    /// publication (`added` is `avail_idx`: nothing waits after it), which
    /// only the usual [`Driver::add_slot_and_publish`] leaves (it found
    /// the byte clear).
    #[inline(always)]
    fn publish_new(
        &mut self,
        ring: &RingMem<'m, M, E>,
        old: u16,
        added: u32,
        rearm: bool,
        last_marked: bool,
        settle: bool,
    ) -> Result<bool, Error> {
        let new = added as u16;
        let l = ring.layout;
        if M::COHERENT || self.entries_dirty {
            for (off, len) in ring.entry_spans(l.avail_offset() + 4, 2, old, new) {
                if len > 0 {
                    ring.clean(off, len)?;
                }
            }
            if !M::COHERENT {
                self.entries_dirty = false;
            }
        }
        ring.store_u16(Field::AvailIdx, new)?;
        ring.clean(l.avail_offset() + 2, 2)?;
        // The published index (and, with `stats`, the statistic).
        self.published = added;
        if settle {
            self.send_key.0[PENDING_BYTE] = 0;
        }
        count!(self.stats.published, u32::from(new.wrapping_sub(old)));
        // The ids added since the last publication may come back now.
        // One test when the only new entry is the one just published
        // (`new - old`: what `need_event` compares against as well).
        if new.wrapping_sub(old) != u16::from(last_marked) {
            self.mark_published(old, new.wrapping_sub(u16::from(last_marked)));
        }
        let arm = rearm && self.last_used == self.used_seen && self.must_rearm();
        if arm {
            self.store_used_event(self.last_used)?;
        } else {
            let yes = if self.look_event {
                self.device_wants(new, old, Suppression::EventIdx, false)?
            } else if self.look_flags {
                self.device_wants(new, old, Suppression::Flags, false)?
            } else {
                false
            };
            if yes {
                return Ok(self.count_notification(true));
            }
        }
        ring.mem.full_fence();
        if arm {
            self.armed_at = Some(self.last_used);
        }
        let mode = self.config.suppression;
        let notify = self.device_wants(new, old, mode, true)?;
        self.look_event = notify && mode == Suppression::EventIdx;
        self.look_flags = notify && mode == Suppression::Flags;
        if !M::COHERENT && self.config.suppression == Suppression::Flags {
            // `used.flags` and `used.idx` share a line (the used ring is
            // 4-aligned; checked all the same): the read above left the
            // index loaded after the fence, for the look that straight
            // follows (`pop_used_after_publish`). What the device
            // publishes after this load it rings for, unless this driver
            // asked it not to, which clears the flag (`set_avail_flags`).
            let off = l.used_offset();
            self.idx_line_loaded = off & !(M::LINE - 1) == (off + 2) & !(M::LINE - 1);
        }
        Ok(self.count_notification(notify))
    }

    /// Makes the ids added at positions `from..to` (their shadow entries)
    /// `InFlight`. Out of line and cold for placement: the path that
    /// publishes each entry as it adds it (a transmit ring) never comes
    /// here, and keeps its registers; a ring that publishes in batches
    /// pays one call per batch (and no test per reap).
    #[cold]
    #[inline(never)]
    fn mark_published(&mut self, from: u16, to: u16) {
        let mask = self.ring.mask;
        let mut pos = from;
        while pos != to {
            let id = self
                .avail_shadow
                .get((u32::from(pos) & mask) as usize)
                .copied();
            if let Some(id) = id {
                self.set_state(usize::from(id), State::InFlight);
            }
            pos = pos.wrapping_add(1);
        }
    }

    /// Whether the device asks to hear about available entries `old..new`:
    /// a read of its `avail_event` or `used.flags`, from a freshly
    /// invalidated line when `fresh` (the read after the fence); the
    /// unfenced first read takes the cached line, as
    /// `Device::driver_wants` explains. `mode`: its suppression mode.
    /// The ring's fields are read here, not taken from a caller's copy: a
    /// copy made ahead loads the field of either mode before the test of
    /// the mode (the used ring's address on every event-index
    /// publication).
    #[inline]
    fn device_wants(
        &self,
        new: u16,
        old: u16,
        mode: Suppression,
        fresh: bool,
    ) -> Result<bool, Error> {
        let ring = self.ring;
        let l = ring.layout;
        Ok(match mode {
            Suppression::EventIdx => {
                if fresh {
                    ring.invalidate(l.avail_event_offset(), 2)?;
                }
                let event = ring.load_u16(Field::AvailEvent)?;
                need_event(event, new, old)
            }
            Suppression::Flags => {
                if fresh {
                    ring.invalidate(l.used_offset(), 2)?;
                }
                ring.load_u16(Field::UsedFlags)? & USED_F_NO_NOTIFY == 0
            }
        })
    }

    #[inline]
    fn count_notification(&mut self, notify: bool) -> bool {
        if notify {
            count!(self.stats.notifications_sent);
        } else {
            count!(self.stats.notifications_suppressed);
        }
        notify
    }

    /// The notification suppression this ring was set up with.
    #[inline]
    pub fn suppression(&self) -> Suppression {
        self.config.suppression
    }

    /// Whether every used entry the last read of `used.idx` revealed was
    /// popped (the next [`Driver::pop_used`] reads the index again).
    #[inline]
    pub fn reaped_all_seen(&self) -> bool {
        self.last_used == self.used_seen
    }

    /// Used entries the device has returned that this driver has not
    /// popped yet, from a fresh read of `used.idx`. When the device
    /// restarts, these are the buffers it finished that nobody will reap.
    ///
    /// # Errors
    ///
    /// [`Error::UsedIndexJump`] (counted; the ring is broken from then on)
    /// when the index claims more entries than are in flight;
    /// [`Error::Broken`], [`Error::Memory`].
    #[inline]
    pub fn pending_used(&mut self) -> Result<u16, Error> {
        self.pending_used_inner(false)
    }

    /// [`Driver::pending_used`]; `reuse`: from the line the last fenced
    /// publication loaded, if that is still current (`idx_line_loaded`).
    #[inline]
    fn pending_used_inner(&mut self, reuse: bool) -> Result<u16, Error> {
        if self.is_broken() {
            return broken();
        }
        // Read before the acquire load of the index, after which fields of
        // `self` would be loaded again.
        let (last, in_flight) = (self.last_used, self.in_flight());
        let idx = self.fetch_used_idx(reuse)?;
        let pending = idx.wrapping_sub(last);
        if pending > in_flight {
            self.break_ring();
            return Err(self.fail(Error::UsedIndexJump));
        }
        Ok(pending)
    }

    /// Takes the next completed buffer, if any. `Ok(None)` means the used
    /// ring is empty and, with interrupts on, that the device will
    /// interrupt for the next completion (`EVENT_IDX`: `used_event` was
    /// re-armed and re-checked, as Linux's `virtqueue_get_buf_ctx_split`
    /// keeps it current): it is safe to sleep until the doorbell.
    ///
    /// # Errors
    ///
    /// Peer errors (counted): [`Error::UsedIndexJump`] (the ring is broken
    /// from then on), [`Error::UnknownUsedId`] (the entry is skipped; call
    /// again), [`Error::LengthOverflow`] (the buffer comes back in the
    /// error). Also [`Error::Broken`], [`Error::Memory`].
    #[inline(always)]
    pub fn pop_used(&mut self) -> Result<Option<Used<'m, M>>, ReapError<'m, M>> {
        self.pop_used_inner(false)
    }

    /// [`Driver::pop_used`] as the look that straight follows a
    /// [`Driver::publish`] or [`Driver::publish_and_rearm`] in the same
    /// pass: in flags mode on non-coherent memory that publication's
    /// fenced read of `used.flags` loaded the line of `used.idx` too, and
    /// this look reads the index from it instead of invalidating the line
    /// again (otherwise, or when anything was stored into this driver's
    /// suppression field since, it is [`Driver::pop_used`]).
    ///
    /// "Straight": nothing between the publication and this call may have
    /// waited for or consumed a doorbell. The index read is as of the
    /// publication's fence; the device rings for anything it publishes
    /// later (this driver asked for interrupts), and a doorbell taken
    /// before this call would announce an entry that load may predate.
    ///
    /// # Errors
    ///
    /// As [`Driver::pop_used`].
    #[inline(always)]
    pub fn pop_used_after_publish(&mut self) -> Result<Option<Used<'m, M>>, ReapError<'m, M>> {
        self.pop_used_inner(true)
    }

    #[inline(always)]
    fn pop_used_inner(&mut self, reuse: bool) -> Result<Option<Used<'m, M>>, ReapError<'m, M>> {
        let Some(Reaped {
            id,
            len,
            offset,
            capacity,
        }) = self.reap(reuse, State::Free)?
        else {
            return Ok(None);
        };
        self.free[self.free_len] = id;
        self.free_len += 1;
        // SAFETY: `offset..+capacity` is the record of a `ShmBuf<Clean>`
        // built over `self.ring.mem` (`new`'s contract) and consumed by
        // `into_published` in `add`/`preload_used`/`lend`: no other handle
        // covers it since. `reap` has just set the record `InFlight` ->
        // `Free`, so this slot is handed out exactly once until it is added
        // again.
        // The record's range (its `Span`, exact: every bound handle ends
        // within 4 GiB, `check_buffer`) is that of the handle it came from,
        // checked against the window and the line when that handle was
        // built.
        let buf = unsafe {
            ShmBuf::<_, Received>::from_validated_slot(self.ring.mem, offset, capacity as usize)
        };
        if len > capacity {
            let error = self.fail(Error::LengthOverflow);
            return Err(ReapError {
                error,
                buf: Some(buf),
            });
        }
        count!(self.stats.completed);
        Ok(Some(Used { id, len, buf }))
    }

    /// [`Driver::pop_used`] as a plain record ([`Slot`]: the id, the
    /// buffer's window offset, the used length, checked against the
    /// buffer's capacity). The id stays bound to its buffer, lent, until
    /// [`Driver::add_slot`] adds it again; no line is invalidated (the
    /// caller invalidates what it reads).
    ///
    /// # Errors
    ///
    /// As [`Driver::pop_used`]; with [`Error::LengthOverflow`] the slot
    /// comes back too (its `len` 0), so the buffer is never lost.
    #[inline(always)]
    pub fn pop_used_slot(&mut self) -> Result<Option<Slot>, (Error, Option<Slot>)> {
        self.pop_used_slot_inner(false)
    }

    /// [`Driver::pop_used_slot`] as the look that straight follows a
    /// publication (the contract of [`Driver::pop_used_after_publish`]).
    ///
    /// # Errors
    ///
    /// As [`Driver::pop_used_slot`].
    #[inline(always)]
    pub fn pop_used_slot_after_publish(&mut self) -> Result<Option<Slot>, (Error, Option<Slot>)> {
        self.pop_used_slot_inner(true)
    }

    #[inline(always)]
    fn pop_used_slot_inner(&mut self, reuse: bool) -> Result<Option<Slot>, (Error, Option<Slot>)> {
        let Some(Reaped {
            id,
            len,
            offset,
            capacity,
        }) = self.reap(reuse, State::Lent).map_err(|e| (e, None))?
        else {
            return Ok(None);
        };
        // Compared in 32 bits, as both are held. Coherent memory: one test
        // for a length of 0 too (see `tags`; a capacity is never above
        // `u32::MAX`, so 0 wraps to at least it).
        let unusual = if M::COHERENT {
            len.wrapping_sub(1) >= capacity
        } else {
            len > capacity
        };
        if unusual {
            if len > capacity {
                let error = self.fail(Error::LengthOverflow);
                return Err((error, Some(Slot { id, offset, len: 0 })));
            }
            // Perhaps a rejected descriptor: written again at its next add.
            self.forget_desc(usize::from(id));
        }
        count!(self.stats.completed);
        Ok(Some(Slot { id, offset, len }))
    }

    /// The next used entry, its id checked in flight and set to `then`
    /// (`Free` or `Lent`), with its buffer's range; `None` when the ring is
    /// empty (re-armed as [`Driver::pop_used`] says).
    #[inline(always)]
    fn reap(&mut self, reuse: bool, then: State) -> Result<Option<Reaped>, Error> {
        // The position, read before the acquire load of `used.idx` (after
        // which fields of `self` would be loaded again); nothing below
        // moves `last_used` before the reap does.
        let pos = self.last_used;
        // A broken ring knows no used entry (`used_seen`, set when it
        // broke): every reap of one gets here, where `pending_used_inner`
        // says it is broken.
        if pos == self.used_seen {
            let mut pending = self.pending_used_inner(reuse)?;
            // One test of `pending` when entries came (the usual case).
            if pending == 0 {
                if self.must_rearm() {
                    // Going idle with interrupts on: re-arm, then re-check
                    // (see `rearm`).
                    self.rearm()?;
                    pending = self.pending_used()?;
                }
                if pending == 0 {
                    self.used_seen = pos;
                    return Ok(None);
                }
            }
            self.used_seen = pos.wrapping_add(pending);
        }
        let l = self.ring.layout;
        self.ring.invalidate_entry(
            &mut self.fresh,
            l.used_offset() + 2,
            l.used_slot(self.ring.slot(pos)),
            USED_ELEM_SIZE,
        )?;
        let (id, len) = self.ring.read_used_entry(pos)?;
        self.last_used = pos.wrapping_add(1);
        // Ids at or beyond `num` are never taken (their record is free),
        // so the one lookup bounds the id.
        let i = match usize::try_from(id) {
            // `InFlight`: bound to a buffer, in the rings.
            Ok(i) if self.tags.get(i).map(|t| t.state()) == Some(State::InFlight as u8) => i,
            _ => {
                // Still in flight: the position taken is none of its.
                self.credit = self.credit.wrapping_add(1);
                return Err(self.fail(Error::UnknownUsedId));
            }
        };
        self.set_state(i, then);
        // SAFETY: `i < N`: `tags` has `N` entries, as `spans`.
        let s = unsafe { *self.spans.get_unchecked(i) };
        let (id, offset, capacity) = (id as u16, s.offset(), s.capacity);
        if !M::COHERENT && len == 0 {
            // Perhaps a rejected descriptor (see `Written`): write it again.
            if let Some(w) = &mut self.written[usize::from(id)] {
                w.trusted = false;
            }
        }
        Ok(Some(Reaped {
            id,
            len,
            offset,
            capacity,
        }))
    }

    /// rpmsg-lite master compatibility: parks a buffer in the *used* ring at
    /// initialisation, as rpmsg-lite's master does with its transmit buffers
    /// (vector 01: vring1 `used.idx = 16`, entries `{i, 512}`); the buffer
    /// then comes back through [`Driver::pop_used`] with `len`.
    ///
    /// The descriptor is written as for [`Driver::add_readable`].
    ///
    /// # Errors
    ///
    /// [`Error::InvalidState`] once anything was added or reaped (the device
    /// may be running: the used ring is its area); [`Error::InvalidLength`]
    /// if `len` exceeds the buffer; otherwise as [`Driver::add_readable`].
    #[allow(clippy::type_complexity)]
    pub fn preload_used(
        &mut self,
        buf: ShmBuf<'m, M, Clean>,
        len: u32,
    ) -> Result<u16, (ShmBuf<'m, M, Clean>, Error)> {
        if self.avail_idx != 0 || self.last_used != 0 {
            return Err((buf, Error::InvalidState));
        }
        let desc_len = match self.check_buffer(&buf, buf.len()) {
            Ok(l) => l,
            Err(e) => return Err((buf, e)),
        };
        let capacity = u32::try_from(buf.capacity()).unwrap_or(u32::MAX);
        if len > capacity {
            return Err((buf, Error::InvalidLength));
        }
        let flags = readable_flags(self.config.write_flag_on_readable);
        let id = self.free[self.free_len - 1];
        let l = self.ring.layout;
        // Nothing reaped yet (tested above): `credit` counts the preloads.
        let pos = self.credit;
        let w = Written {
            addr: buf.peer_addr(),
            capacity: buf.capacity(),
            len: desc_len,
            flags,
            trusted: true,
        };
        let next = self.slots[usize::from(id)].next;
        // SAFETY: `id` came off the free stack (see `add`).
        let written =
            unsafe { Self::write_descriptor(&self.ring, id, w.addr, w.len, w.flags, next) }
                .and_then(|()| self.ring.write_used_entry(pos, u32::from(id), len))
                .and_then(|()| {
                    self.ring
                        .clean(l.used_slot(self.ring.slot(pos)), USED_ELEM_SIZE)
                })
                .and_then(|()| self.ring.store_u16(Field::UsedIdx, pos.wrapping_add(1)))
                .and_then(|()| self.ring.clean(l.used_offset() + 2, 2));
        if let Err(e) = written {
            self.written[usize::from(id)] = None;
            return Err((buf, e));
        }
        self.written[usize::from(id)] = Some(w);
        self.credit = pos.wrapping_add(1);
        self.free_len -= 1;
        self.bind_record(id, &buf.into_published(), State::InFlight);
        Ok(id)
    }

    /// Asks the device to interrupt on completions again, then re-checks:
    /// returns whether completions are already pending (reap them before
    /// sleeping, or the wake-up is lost).
    ///
    /// Flags: clears `VRING_AVAIL_F_NO_INTERRUPT`. `EVENT_IDX`: sets
    /// `used_event` to the next entry to reap, and from then on every
    /// [`Driver::pop_used`] that finds the ring empty sets it again
    /// (interrupts stay on until [`Driver::disable_interrupts`], as with
    /// flags). Then `fence(SeqCst)` and a fresh load of `used.idx`.
    ///
    /// # Errors
    ///
    /// [`Error::Broken`], [`Error::Memory`].
    pub fn enable_interrupts(&mut self) -> Result<bool, Error> {
        if self.is_broken() {
            return Err(Error::Broken);
        }
        self.interrupts_on = true;
        match self.config.suppression {
            Suppression::Flags => {
                self.set_avail_flags(0)?;
                self.ring.mem.full_fence();
            }
            Suppression::EventIdx => self.rearm()?,
        }
        Ok(self.fetch_used_idx(false)? != self.last_used)
    }

    /// Asks the device not to interrupt on completions (flags mode: sets
    /// `VRING_AVAIL_F_NO_INTERRUPT`, as rpmsg-lite's `virtqueue_disable_cb`;
    /// `EVENT_IDX` mode, where virtio 1.x requires `flags = 0`: sets
    /// `used_event` one behind the next entry to reap, which the device's
    /// index does not cross again for 2^16 entries, and stops re-arming it).
    /// Advisory: the device may still interrupt.
    ///
    /// # Errors
    ///
    /// [`Error::Broken`], [`Error::Memory`].
    pub fn disable_interrupts(&mut self) -> Result<(), Error> {
        if self.is_broken() {
            return Err(Error::Broken);
        }
        self.interrupts_on = false;
        match self.config.suppression {
            Suppression::Flags => self.set_avail_flags(AVAIL_F_NO_INTERRUPT)?,
            Suppression::EventIdx => {
                // Linux's `virtqueue_disable_cb_split` writes 0 ("a hack");
                // one behind the reaper is the value no completion crosses
                // soon. No fence: a late interrupt is harmless.
                self.armed_at = None;
                self.store_used_event(self.last_used.wrapping_sub(1))?;
            }
        }
        Ok(())
    }

    /// `EVENT_IDX` with interrupts on, the used ring found empty, and
    /// `used_event` not yet armed at this position. Re-arming when the ring
    /// runs dry (not after every reap, as Linux does) is argued at
    /// `Device::must_rearm`: the same wake-up promise, one store and one
    /// full fence per idle transition instead of per entry.
    #[inline]
    fn must_rearm(&self) -> bool {
        self.config.suppression == Suppression::EventIdx
            && self.interrupts_on
            && self.armed_at != Some(self.last_used)
    }

    /// `EVENT_IDX`: `used_event = last_used`, written back, then
    /// `fence(SeqCst)` (virtio 1.x §2.7.7: the store must be visible before
    /// `used.idx` is read again). The caller re-reads `used.idx`: the device
    /// either published before it could see the new event (the re-read
    /// finds the entry) or reads the event after publishing and interrupts
    /// (its own store, fence, load in [`crate::Device::publish_used`]).
    fn rearm(&mut self) -> Result<(), Error> {
        self.store_used_event(self.last_used)?;
        self.ring.mem.full_fence();
        self.armed_at = Some(self.last_used);
        Ok(())
    }

    /// Writes `used_event` through to memory.
    fn store_used_event(&self, v: u16) -> Result<(), Error> {
        let off = self.ring.used_event_offset();
        self.ring.store_u16(Field::UsedEvent, v)?;
        self.ring.clean(off, 2)
    }

    /// Writes `avail.flags` through to memory.
    fn set_avail_flags(&mut self, flags: u16) -> Result<(), Error> {
        // What the device decides from now on follows the new flags: a
        // used index loaded before them is no last look.
        if !M::COHERENT {
            self.idx_line_loaded = false;
        }
        let off = self.ring.layout.avail_offset();
        self.ring.store_u16(Field::AvailFlags, flags)?;
        self.ring.clean(off, 2)
    }

    /// A fresh `used.idx` (invalidate, then acquire load): the one place
    /// the driver reads it. `reuse`: without the invalidation when the last
    /// fenced publication left its line loaded (`idx_line_loaded`).
    #[inline]
    fn fetch_used_idx(&mut self, reuse: bool) -> Result<u16, Error> {
        let off = self.ring.layout.used_offset() + 2;
        if !M::COHERENT {
            self.fresh = Fresh::NONE;
            let loaded = core::mem::replace(&mut self.idx_line_loaded, false);
            if !(reuse && loaded) {
                self.ring.invalidate(off, 2)?;
            }
        }
        self.ring.load_u16(Field::UsedIdx)
    }

    #[cold]
    fn fail(&mut self, e: Error) -> Error {
        self.stats.failures.record(&e);
        e
    }

    /// Breaks the ring for good (an index jump): no used entry is known to
    /// reap any more (see `reap`), and no record is lent (see
    /// `add_slot_in`), nor in flight.
    #[cold]
    fn break_ring(&mut self) {
        self.live_num = 0;
        self.used_seen = self.last_used;
        for t in &mut self.tags {
            *t = Tag::new(State::Free, UNKNOWN_DESC);
        }
    }

    /// [`Driver::add_slot`] of an id not lent: [`Error::Broken`] on a
    /// broken ring, else [`Error::ForeignBuffer`].
    #[cfg_attr(not(feature = "small"), cold, inline(never))]
    fn refuse_slot(&self) -> Result<(), Error> {
        if self.is_broken() {
            broken()
        } else {
            foreign()
        }
    }
}

impl<M: SharedMemory + ?Sized, E: Endian, const N: usize> fmt::Debug for Driver<'_, M, E, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Driver")
            .field("layout", &self.ring.layout)
            .field("avail_idx", &self.avail_idx)
            .field("published_idx", &self.published_idx())
            .field("last_used", &self.last_used)
            .field("in_flight", &self.in_flight())
            .field("free", &self.free_len)
            .field("broken", &self.is_broken())
            .field("stats", &self.stats)
            .finish()
    }
}

#[cfg(test)]
mod tests_drv9 {
    //! The lent-id fast path of `add_slot` (one compare of the id's tag)
    //! refuses what the full checks refuse.
    use ipc_traits::buf::{Dirty, ShmBuf};
    use ipc_traits::cache::Coherent;
    use ipc_traits::shm::{RawRegion, SharedMemory};

    use super::{Driver, DriverConfig};
    use crate::endian::Legacy;
    use crate::error::Error;
    use crate::notify::{Suppression, DESC_F_WRITE};

    use crate::tests::{with_region, AREA_AT as AREA, BASE, L, SLOT};

    fn driver(
        shm: &RawRegion<Coherent>,
        write_flag: bool,
    ) -> Driver<'_, RawRegion<Coherent>, Legacy, 8> {
        let cfg = DriverConfig {
            suppression: Suppression::EventIdx,
            write_flag_on_readable: write_flag,
        };
        // SAFETY: every buffer handed to it is built over `shm`.
        unsafe { Driver::new(shm, L, cfg) }.unwrap()
    }

    fn lend<'m>(
        drv: &mut Driver<'m, RawRegion<Coherent>, Legacy, 8>,
        shm: &'m RawRegion<Coherent>,
        k: usize,
    ) -> u16 {
        // SAFETY: slot `k` of the test pool, created once per test.
        let b = unsafe { ShmBuf::<_, Dirty>::new_unchecked(shm, AREA + SLOT * k, SLOT) }.unwrap();
        drv.lend(b.clean().unwrap()).unwrap().id
    }

    /// Descriptor `id` as `(addr, len, flags)`.
    fn desc(shm: &RawRegion<Coherent>, id: u16) -> (u64, u32, u16) {
        let mut d = [0u8; 16];
        shm.read(L.desc_entry_offset(id), &mut d).unwrap();
        (
            u64::from_ne_bytes(d[0..8].try_into().unwrap()),
            u32::from_ne_bytes(d[8..12].try_into().unwrap()),
            u16::from_ne_bytes(d[12..14].try_into().unwrap()),
        )
    }

    /// Returns `id` as used entry `pos` with `len`.
    fn used(shm: &RawRegion<Coherent>, pos: u16, id: u16, len: u32) {
        let mut b = [0u8; 8];
        b[0..4].copy_from_slice(&u32::from(id).to_ne_bytes());
        b[4..8].copy_from_slice(&len.to_ne_bytes());
        shm.write(L.used_entry_offset(pos % L.num()), &b).unwrap();
        shm.store_u16_release(L.used_offset() + 2, pos + 1).unwrap();
    }

    #[test]
    fn a_known_descriptor_is_still_checked_for_state_and_length() {
        with_region(Coherent, |shm| {
            let mut drv = driver(shm, false);
            let id = lend(&mut drv, shm, 0);
            let other = lend(&mut drv, shm, 1);
            let mut pos = 0;
            for round in 0..3 {
                // Recorded at the first add, known at the next ones.
                assert!(drv.add_slot_and_publish(id, 4, false).is_ok());
                assert_eq!(desc(shm, id), (BASE + AREA as u64, 4, 0), "{round}");
                // In flight: refused, whatever the length.
                assert_eq!(drv.add_slot(id, 4, false), Err(Error::ForeignBuffer));
                assert_eq!(
                    drv.add_slot_and_publish(id, 4, false),
                    Err((Error::ForeignBuffer, false))
                );
                used(shm, pos, id, 4);
                pos += 1;
                let back = drv.pop_used_slot().unwrap().unwrap();
                assert_eq!((back.id, back.len), (id, 4));
                // Lent again: a length past the buffer is refused even
                // though the descriptor holds another length.
                assert_eq!(drv.add_slot(id, 65, false), Err(Error::InvalidLength));
            }
            // Another id's key says nothing of this one.
            assert_eq!(drv.add_slot(other, 65, false), Err(Error::InvalidLength));
            assert_eq!(drv.add_slot(8, 4, false), Err(Error::ForeignBuffer));
            assert_eq!(drv.add_slot(u16::MAX, 4, false), Err(Error::ForeignBuffer));
            // Added, not published, then published with the batch path.
            drv.add_slot(id, 4, false).unwrap();
            drv.add_slot(other, 4, false).unwrap();
            assert_eq!(drv.unpublished(), 2);
            let _ = drv.publish().unwrap();
            assert_eq!((drv.unpublished(), drv.in_flight()), (0, 2));
            used(shm, pos, other, 4);
            assert_eq!(drv.pop_used_slot().unwrap().unwrap().id, other);
            used(shm, pos + 1, id, 4);
            assert_eq!(drv.pop_used_slot().unwrap().unwrap().id, id);
            assert_eq!(drv.stats().failures.total(), 0);
            // A broken ring refuses a known descriptor too.
            shm.store_u16_release(L.used_offset() + 2, pos + 9).unwrap();
            assert_eq!(drv.pop_used_slot().unwrap_err().0, Error::UsedIndexJump);
            assert_eq!(drv.add_slot(id, 4, false), Err(Error::Broken));
            assert_eq!(
                drv.add_slot_and_publish(id, 4, false),
                Err((Error::Broken, false))
            );
        });
    }

    #[test]
    fn the_key_tells_readable_from_writable_flags() {
        for write_flag in [false, true] {
            with_region(Coherent, |shm| {
                let mut drv = driver(shm, write_flag);
                let id = lend(&mut drv, shm, 0);
                let readable = if write_flag { DESC_F_WRITE } else { 0 };
                let a = BASE + AREA as u64;
                for (pos, (len, writable, want)) in [
                    (64, false, (a, 64, readable)),
                    (0, true, (a, 64, DESC_F_WRITE)),
                    (64, false, (a, 64, readable)),
                    (64, false, (a, 64, readable)),
                    (0, true, (a, 64, DESC_F_WRITE)),
                    (0, true, (a, 64, DESC_F_WRITE)),
                    (7, true, (a, 64, DESC_F_WRITE)),
                    (7, false, (a, 7, readable)),
                    (0, true, (a, 64, DESC_F_WRITE)),
                ]
                .into_iter()
                .enumerate()
                {
                    let _ = drv.add_slot_and_publish(id, len, writable).unwrap();
                    assert_eq!(desc(shm, id), want, "{write_flag} {len} {writable}");
                    used(shm, pos as u16, id, 64);
                    assert_eq!(drv.pop_used_slot().unwrap().unwrap().id, id);
                }
            });
        }
    }

    /// The writable fast path (a lent id whose descriptor is known to be
    /// writable) still refuses an id in flight, a foreign id and a broken
    /// ring, and a buffer lent again after a new binding is written whole.
    #[test]
    fn a_known_writable_descriptor_is_still_checked_for_state() {
        with_region(Coherent, |shm| {
            let mut drv = driver(shm, false);
            let id = lend(&mut drv, shm, 0);
            let a = BASE + AREA as u64;
            let mut pos = 0;
            for round in 0..3 {
                let _ = drv.add_slot_and_publish_rearm(id, 0, true).unwrap();
                assert_eq!(desc(shm, id), (a, 64, DESC_F_WRITE), "{round}");
                assert_eq!(drv.add_slot(id, 0, true), Err(Error::ForeignBuffer));
                assert_eq!(
                    drv.add_slot_and_publish_rearm(id, 0, true),
                    Err((Error::ForeignBuffer, false))
                );
                used(shm, pos, id, 10);
                pos += 1;
                let back = drv.pop_used_slot().unwrap().unwrap();
                assert_eq!((back.id, back.len), (id, 10));
            }
            assert_eq!(drv.add_slot(8, 0, true), Err(Error::ForeignBuffer));
            assert_eq!(drv.stats().failures.total(), 0);
            shm.store_u16_release(L.used_offset() + 2, pos + 9).unwrap();
            assert_eq!(drv.pop_used_slot().unwrap_err().0, Error::UsedIndexJump);
            assert_eq!(drv.add_slot(id, 0, true), Err(Error::Broken));
        });
    }

    #[test]
    fn an_add_and_publish_publishes_the_entries_added_before_it() {
        with_region(Coherent, |shm| {
            let mut drv = driver(shm, false);
            let (a, b) = (lend(&mut drv, shm, 0), lend(&mut drv, shm, 1));
            let mut pos = 0;
            // Both descriptors recorded, both back.
            for id in [a, b] {
                assert!(drv.add_slot_and_publish(id, 4, false).is_ok());
                used(shm, pos, id, 4);
                pos += 1;
                assert_eq!(drv.pop_used_slot().unwrap().unwrap().id, id);
            }
            // One added and waiting, then one added and published (its
            // descriptor known): both published, in flight, in order.
            drv.add_slot(a, 4, false).unwrap();
            assert!(drv.add_slot_and_publish(b, 4, false).is_ok());
            assert_eq!((drv.unpublished(), drv.in_flight()), (0, 2));
            assert_eq!(drv.stats().published, 4);
            let mut idx = [0u8; 2];
            shm.read(L.avail_offset() + 2, &mut idx).unwrap();
            assert_eq!(u16::from_ne_bytes(idx), 4);
            for (k, want) in [a, b].into_iter().enumerate() {
                let mut e = [0u8; 2];
                shm.read(L.avail_entry_offset(2 + k as u16), &mut e)
                    .unwrap();
                assert_eq!(u16::from_ne_bytes(e), want);
            }
            // The first one may come back: it was marked in flight too.
            used(shm, pos, a, 4);
            assert_eq!(drv.pop_used_slot().unwrap().unwrap().id, a);
            used(shm, pos + 1, b, 4);
            assert_eq!(drv.pop_used_slot().unwrap().unwrap().id, b);
            assert_eq!(drv.stats().failures.total(), 0);
        });
    }
}

#[cfg(test)]
mod tests_fast12 {
    //! `send_key` (the usual `add_slot_and_publish` tests "nothing
    //! waiting" in its compare of the tag) and the 32-bit length check of
    //! a reaped slot, against a model of the ring.
    use core::ptr::NonNull;

    use ipc_traits::buf::{Dirty, ShmBuf};
    use ipc_traits::cache::Coherent;
    use ipc_traits::shm::{RawRegion, SharedMemory};

    use super::{Driver, DriverConfig};
    use crate::endian::Legacy;
    use crate::error::Error;
    use crate::notify::Suppression;

    use crate::tests::{Chunk, AREA_AT as AREA, BASE, L, SLOT, WINDOW};

    fn u16_at(shm: &RawRegion<Coherent>, off: usize) -> u16 {
        let mut b = [0u8; 2];
        shm.read(off, &mut b).unwrap();
        u16::from_ne_bytes(b)
    }

    /// Returns `id` as used entry `pos` with `len`.
    fn used(shm: &RawRegion<Coherent>, pos: u16, id: u32, len: u32) {
        let mut b = [0u8; 8];
        b[0..4].copy_from_slice(&id.to_ne_bytes());
        b[4..8].copy_from_slice(&len.to_ne_bytes());
        shm.write(L.used_entry_offset(pos % L.num()), &b).unwrap();
        shm.store_u16_release(L.used_offset() + 2, pos.wrapping_add(1))
            .unwrap();
    }

    /// The available entries from position `from` on name `ids`, in order.
    fn check_batch(shm: &RawRegion<Coherent>, from: u16, ids: &[u16]) {
        for (k, &id) in ids.iter().enumerate() {
            let pos = from.wrapping_add(k as u16) % L.num();
            assert_eq!(u16_at(shm, L.avail_entry_offset(pos)), id, "entry {pos}");
        }
    }

    /// Random adds (waiting or published at once, readable and writable),
    /// publications and returns (in any order, with lengths around the
    /// capacity and ids out of flight), both suppression modes: what the
    /// ring holds and what the driver answers match the model after every
    /// step.
    #[test]
    fn adds_publications_and_reaps_match_a_model() {
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for suppression in [Suppression::EventIdx, Suppression::Flags] {
            let mut backing = vec![Chunk([0; 64]); WINDOW / 64];
            let base = NonNull::new(backing.as_mut_ptr().cast::<u8>()).unwrap();
            // SAFETY: `backing` outlives the region and is only used
            // through it.
            let shm = unsafe { RawRegion::new(base, WINDOW, BASE, Coherent) }.unwrap();
            let cfg = DriverConfig {
                suppression,
                write_flag_on_readable: false,
            };
            // SAFETY: every buffer handed to it is built over `shm`.
            let mut drv = unsafe { Driver::<_, Legacy, 8>::new(&shm, L, cfg) }.unwrap();
            let mut lent: Vec<u16> = (0..8)
                .map(|k| {
                    // SAFETY: slot `k` of the pool, built once.
                    let b =
                        unsafe { ShmBuf::<_, Dirty>::new_unchecked(&shm, AREA + SLOT * k, SLOT) }
                            .unwrap();
                    drv.lend(b.clean().unwrap()).unwrap().id
                })
                .collect();
            // The model: ids added and waiting, ids in flight (published,
            // not reaped), entries published, used entries written.
            let (mut waiting, mut flight) = (Vec::<u16>::new(), Vec::<u16>::new());
            let (mut published, mut used_pos, mut failures) = (0u16, 0u16, 0u32);
            for step in 0..4000 {
                match next(6) {
                    0 | 1 if !lent.is_empty() => {
                        let id = lent.swap_remove(next(lent.len() as u64) as usize);
                        let len = [4, 64, 1][next(3) as usize];
                        let writable = next(4) == 0;
                        if next(2) == 0 {
                            drv.add_slot(id, len, writable).unwrap();
                            waiting.push(id);
                        } else {
                            let _ = drv.add_slot_and_publish(id, len, writable).unwrap();
                            waiting.push(id);
                            check_batch(&shm, published, &waiting);
                            published = published.wrapping_add(waiting.len() as u16);
                            flight.append(&mut waiting);
                        }
                    }
                    2 => {
                        let _ = drv.publish().unwrap();
                        check_batch(&shm, published, &waiting);
                        published = published.wrapping_add(waiting.len() as u16);
                        flight.append(&mut waiting);
                    }
                    3 if !flight.is_empty() => {
                        let k = next(flight.len() as u64) as usize;
                        let id = flight[k];
                        let len = [0, 1, 64, 65, u32::MAX][next(5) as usize];
                        used(&shm, used_pos, u32::from(id), len);
                        used_pos = used_pos.wrapping_add(1);
                        match drv.pop_used_slot() {
                            Ok(Some(s)) => {
                                assert!(len <= 64, "{step}: {len} accepted");
                                assert_eq!((s.id, s.len), (id, len), "{step}");
                            }
                            Err((Error::LengthOverflow, Some(s))) => {
                                assert!(len > 64, "{step}: {len} refused");
                                assert_eq!((s.id, s.len), (id, 0), "{step}");
                                failures += 1;
                            }
                            other => panic!("{step}: {other:?}"),
                        }
                        flight.swap_remove(k);
                        lent.push(id);
                    }
                    4 if !flight.is_empty() => {
                        // An id not in flight (lent, waiting, or past
                        // `num`): skipped, counted; the entry is used up.
                        let id = [8, 0x1_0000, u32::MAX]
                            .into_iter()
                            .chain(lent.iter().chain(&waiting).map(|&i| u32::from(i)))
                            .nth(next(3 + (lent.len() + waiting.len()) as u64) as usize)
                            .unwrap();
                        used(&shm, used_pos, id, 4);
                        used_pos = used_pos.wrapping_add(1);
                        assert_eq!(
                            drv.pop_used_slot().map_err(|e| e.0),
                            Err(Error::UnknownUsedId),
                            "{step}: id {id}"
                        );
                        failures += 1;
                    }
                    _ => assert!(drv.pop_used_slot().unwrap().is_none(), "{step}"),
                }
                assert_eq!(u16_at(&shm, L.avail_offset() + 2), published, "{step}");
                assert_eq!(drv.unpublished(), waiting.len() as u16, "{step}");
                assert_eq!(drv.in_flight(), flight.len() as u16, "{step}");
                assert_eq!(drv.stats().failures.total(), failures, "{step}");
            }
        }
    }
}
