//! The two roles as ring pairs: what "take a transmit buffer", "send",
//! "receive" and "release" mean for the remote (virtio device) and for the
//! master (virtio driver).
//!
//! | | vring0 (`rvq` of the master) | vring1 (`svq` of the master) |
//! |---|---|---|
//! | master | driver: posts empty buffers, reaps messages | driver: publishes messages, reaps returned buffers |
//! | remote | device: fills posted buffers (its transmit) | device: reads published messages (its receive) |
//!
//! (shared/docs/hw/rpmsg-wire.md §2.1.) Linux and rpmsg-lite's master own
//! every buffer; the remote never allocates one.
#![allow(unsafe_code)]

use ipc_traits::buf::{Dirty, ShmBuf};
use ipc_traits::bytes::{ShmSlice, ShmSliceMut};
use ipc_traits::mailbox::{QueueId, QueueSet};
use ipc_traits::shm::{DirectMemory, SharedMemory, ShmError};

use crate::wire::HEADER_LEN;
pub use vring::device::Returnable;
use vring::layout::InWindow;
pub use vring::Passed;
use vring::{
    BufferArea, Device, DeviceConfig, DeviceTables, Driver, DriverConfig, Endian,
    Error as RingError, Layout, Stats, Suppression,
};

/// A received buffer, straight off the ring, as a plain record: the ring
/// validated the descriptor (or used entry) it came from, so the buffer
/// lies inside the window and `len` (what the peer reported) is at most
/// its capacity. No line of it is invalidated yet. Only a ring makes one;
/// it goes back with [`RxRing::release`].
#[derive(Debug, PartialEq, Eq)]
#[must_use = "a received buffer must go back to the ring, or the peer loses it"]
// `repr(C)`, token first: in `Result<Option<RxSlot>, Error>` the error sits
// where the slot's first field does, and the compiler then carries that
// field in pieces (a byte or two apart from the rest) through every
// inlined step; overlapping the small token, not the offset, that costs
// nothing on the hot path (≈ 8 instructions per message otherwise).
// With the feature `small`, the compiler's own order: the kept message's
// token then moves whole (minimal-remote: 18 bytes fewer; the transmit
// slot, which the same change grew by 14, keeps `repr(C)`).
#[cfg_attr(not(feature = "small"), repr(C))]
pub struct RxSlot {
    pub(crate) token: u16,
    pub(crate) len: u32,
    pub(crate) offset: usize,
}

impl RxSlot {
    /// The ring's token for the slot (descriptor id).
    pub fn token(&self) -> u16 {
        self.token
    }

    /// The buffer's window offset.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// The length the peer reported (used length or descriptor length),
    /// at most the buffer's capacity.
    pub fn reported(&self) -> u32 {
        self.len
    }

    /// The same record again, for a holder that gives it back as it ends
    /// (`Drop`, which cannot move it out): the copy must be the last use.
    #[inline(always)]
    pub(crate) fn again(&self) -> Self {
        Self {
            token: self.token,
            offset: self.offset,
            len: self.len,
        }
    }
}

/// A transmit buffer taken from the ring or the spare list, as a plain
/// record: its window offset and the bytes the peer lets us write, header
/// included (inside the window). Only a ring makes one; it goes back with
/// [`TxRing::send`] or [`TxRing::give_back`].
#[derive(Debug, PartialEq, Eq)]
#[must_use = "a transmit buffer must be sent or given back, or it is lost"]
// `repr(C)`, token first: see `RxSlot`.
#[repr(C)]
pub struct TxSlot {
    pub(crate) token: u16,
    pub(crate) offset: usize,
    pub(crate) room: usize,
}

impl TxSlot {
    /// The ring's token for the slot (descriptor id).
    pub fn token(&self) -> u16 {
        self.token
    }

    /// The buffer's window offset.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// Bytes the peer lets us write, header included.
    pub fn room(&self) -> usize {
        self.room
    }
}

/// The lines covering `..end` of a slot (line-aligned `end`).
#[inline(always)]
pub(crate) const fn line_end<M: SharedMemory + ?Sized>(end: usize) -> usize {
    (end + (M::LINE - 1)) & !(M::LINE - 1)
}

/// A range past the slot, as the window error it would be.
#[cold]
fn past_slot<M: SharedMemory + ?Sized>() -> M::Error {
    ShmError::OffsetOutsideWindow.into()
}

/// Copies `dst.len()` bytes from `at` of `slot`, within what the peer
/// reported. `mem` is the memory of the ring that handed the slot out.
///
/// # Errors
///
/// Past what the peer reported (nothing is copied), or the memory's own
/// failure.
#[inline(always)]
pub(crate) fn read_slot<M: SharedMemory + ?Sized>(
    mem: &M,
    slot: &RxSlot,
    at: usize,
    dst: &mut [u8],
) -> Result<(), M::Error> {
    match at.checked_add(dst.len()) {
        Some(end) if end <= slot.len as usize => {
            // SAFETY: the ring validated the slot against its memory
            // (`mem`): `offset + len` lies inside the window (the reported
            // length is at most the buffer's capacity), and the range is
            // inside `..len` (checked above).
            unsafe { mem.read_unchecked(slot.offset + at, dst) }
        }
        _ => Err(past_slot::<M>()),
    }
}

/// The header words 0, 1 and 3 (`src`, `dst`, `len` and `flags`: what
/// [`crate::wire::Header::decode_words`] takes) at the start of `slot`,
/// each read once: one aligned 32-bit load each when the slot is 4-aligned
/// in the window (a buffer the ring checked against a cache line always
/// is; coherent memory checks no alignment), else copied as bytes. The
/// caller checked that the peer reported at least a header.
///
/// # Errors
///
/// Past what the peer reported (nothing is read), or the memory's own
/// failure.
#[inline(always)]
pub(crate) fn read_header_words<M: SharedMemory + ?Sized>(
    mem: &M,
    slot: &RxSlot,
) -> Result<(u32, u32, u32), M::Error> {
    if (slot.len as usize) < HEADER_LEN {
        return Err(past_slot::<M>());
    }
    let at = slot.offset;
    // With the feature `small`, always the copy: one call instead of a
    // second, word-loading form.
    if cfg!(feature = "small") || at % 4 != 0 {
        let mut b = [0u8; HEADER_LEN];
        // SAFETY: the ring validated the slot against `mem`: `offset + len`
        // lies inside the window, and `HEADER_LEN <= len` (checked above).
        unsafe { mem.read_unchecked(at, &mut b) }?;
        let w = |i: usize| u32::from_ne_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        return Ok((w(0), w(4), w(12)));
    }
    // SAFETY: as above, each word inside `..HEADER_LEN` of the slot, and
    // `at` (so `at + 4`, `at + 12`) a multiple of 4.
    unsafe {
        Ok((
            mem.load_u32_unchecked(at)?,
            mem.load_u32_unchecked(at + 4)?,
            mem.load_u32_unchecked(at + 12)?,
        ))
    }
}

/// Writes the header `words` ([`crate::wire::Header::encode_words`]) at
/// the start of `slot`: one aligned 32-bit store each when the slot is
/// 4-aligned in the window (a buffer the ring checked against a cache line
/// always is; coherent memory checks no alignment), else as bytes.
///
/// # Errors
///
/// A room shorter than a header (nothing is written), or the memory's own
/// failure.
#[cfg(not(feature = "small"))]
#[inline(always)]
pub(crate) fn write_header_words<M: SharedMemory + ?Sized>(
    mem: &M,
    slot: &TxSlot,
    words: [u32; 4],
) -> Result<(), M::Error> {
    if slot.room < HEADER_LEN {
        return Err(past_slot::<M>());
    }
    let at = slot.offset;
    if at % 4 != 0 {
        let mut b = [0u8; HEADER_LEN];
        for (chunk, w) in b.chunks_exact_mut(4).zip(words) {
            chunk.copy_from_slice(&w.to_ne_bytes());
        }
        // SAFETY: the ring validated the slot against `mem`: `offset +
        // room` lies inside the window, and `HEADER_LEN <= room` (checked
        // above).
        return unsafe { mem.write_unchecked(at, &b) };
    }
    // SAFETY: as above, the four words inside `..HEADER_LEN` of the slot,
    // and `at` a multiple of 4.
    unsafe { mem.store_u32s_unchecked(at, words) }
}

/// Invalidates the lines of `slot` from `from` (line-aligned) up to the
/// lines covering `..to` (nothing if that is not past `from`): what the
/// peer wrote, before it is read.
///
/// # Errors
///
/// The memory's maintenance failed.
#[inline(always)]
pub(crate) fn invalidate_slot<M: SharedMemory + ?Sized>(
    mem: &M,
    slot: &RxSlot,
    from: usize,
    to: usize,
) -> Result<(), M::Error> {
    let end = line_end::<M>(to);
    if M::COHERENT || end <= from {
        return Ok(());
    }
    mem.invalidate(slot.offset + from, end - from)
}

/// Writes `bytes` at `at` of `slot`, within its room. `mem` is the
/// memory of the ring that handed the slot out.
///
/// # Errors
///
/// Past the room (nothing is written), or the memory's own failure.
#[inline(always)]
pub(crate) fn write_slot<M: SharedMemory + ?Sized>(
    mem: &M,
    slot: &TxSlot,
    at: usize,
    bytes: &[u8],
) -> Result<(), M::Error> {
    match at.checked_add(bytes.len()) {
        Some(end) if end <= slot.room => {
            // SAFETY: the ring validated the slot against its memory
            // (`mem`): `offset + room` lies inside the window (the room is
            // at most the buffer's capacity), and the range is inside
            // `..room` (checked above).
            unsafe { mem.write_unchecked(slot.offset + at, bytes) }
        }
        _ => Err(past_slot::<M>()),
    }
}

/// Writes back the lines covering `..end` of `slot`: what was written,
/// before the ring publishes it.
///
/// # Errors
///
/// The memory's maintenance failed.
#[inline(always)]
pub(crate) fn clean_slot<M: SharedMemory + ?Sized>(
    mem: &M,
    slot: &TxSlot,
    end: usize,
) -> Result<(), M::Error> {
    if M::COHERENT || end == 0 {
        return Ok(());
    }
    mem.clean(slot.offset, line_end::<M>(end))
}

/// Bytes `at..at + len` of a received slot, within what the peer reported
/// (the caller checked), as a view whose accessors copy or compare.
///
/// # Safety
///
/// `at + len <= slot.len` (no overflow); `mem` is the memory of the ring
/// that handed the slot out.
#[inline(always)]
pub(crate) unsafe fn view_slot_unchecked<'s, M: DirectMemory + ?Sized>(
    mem: &'s M,
    slot: &'s RxSlot,
    at: usize,
    len: usize,
) -> ShmSlice<'s> {
    // SAFETY: the ring validated the slot against `mem`: `offset + len`
    // (what the peer reported, at most the capacity) lies inside the
    // window, and `at + len` is inside it (the caller's contract). The
    // window holds no Rust object (`DirectMemory`); the slot is this core's
    // alone until it goes back to the ring, which takes it by value, and
    // the view borrows it, so no write of this program reaches the range
    // while the view lives (the peer's may: values change, soundness does
    // not).
    unsafe { ShmSlice::new(mem.as_ptr().add(slot.offset + at), len) }
}

/// Bytes `at..at + len` of a transmit slot, within its room, as a writable
/// view; `None` past it. `mem` is the memory of the ring that handed the
/// slot out.
#[inline(always)]
pub(crate) fn view_slot_mut<'s, M: DirectMemory + ?Sized>(
    mem: &'s M,
    slot: &'s mut TxSlot,
    at: usize,
    len: usize,
) -> Option<ShmSliceMut<'s>> {
    if at.checked_add(len)? > slot.room {
        return None;
    }
    // SAFETY: as in `view_slot_unchecked`, within the room (at most the capacity);
    // the transmit slot is this core's alone and the peer does not own it
    // until it is sent, and `&mut` on the slot keeps a second view away
    // while this one lives.
    Some(unsafe { ShmSliceMut::new(mem.as_ptr().add(slot.offset + at), len) })
}

/// Transmit buffers taken and not sent, kept for the next send: a stack,
/// so taking and returning cost one step whatever the ring size. Kept as
/// their fields (`..len` valid), not as `Option<TxSlot>`: a slot rebuilt
/// field by field carries no padding bytes to copy from memory, so the
/// send that pops one keeps it in registers.
pub(crate) struct Spares<const NUM: usize> {
    slots: [SpareSlot; NUM],
    len: usize,
}

#[derive(Clone, Copy)]
struct SpareSlot {
    token: u16,
    offset: usize,
    room: usize,
}

impl<const NUM: usize> Spares<NUM> {
    pub(crate) const fn new() -> Self {
        Self {
            slots: [SpareSlot {
                token: 0,
                offset: 0,
                room: 0,
            }; NUM],
            len: 0,
        }
    }

    #[inline(always)]
    pub(crate) fn pop(&mut self) -> Option<TxSlot> {
        let len = self.len.checked_sub(1)?;
        let s = self.slots.get(len)?;
        self.len = len;
        Some(TxSlot {
            token: s.token,
            offset: s.offset,
            room: s.room,
        })
    }

    /// Keeps `slot`; at most NUM buffers exist per ring, so there is always
    /// room (a slot beyond that is dropped, never stored over another).
    #[inline(always)]
    pub(crate) fn push(&mut self, slot: TxSlot) {
        if let Some(free) = self.slots.get_mut(self.len) {
            *free = SpareSlot {
                token: slot.token,
                offset: slot.offset,
                room: slot.room,
            };
            self.len += 1;
        }
    }
}

/// A failed [`TxRing::send`].
#[derive(Debug)]
pub struct SendFailure {
    /// The buffer, if the ring did not take it (the message was not sent).
    /// `None` when the ring took it but publishing failed: the message goes
    /// out with the next successful publication.
    pub slot: Option<TxSlot>,
    /// What went wrong.
    pub error: RingError,
}

/// A shared-memory failure as a ring error.
fn mem_err<E: ipc_traits::shm::Error>(e: &E) -> RingError {
    RingError::Memory(e.kind())
}

/// Whether a ring error consumed one bad entry and left the ring usable.
#[inline(always)]
pub(crate) fn skipped_entry(e: &RingError) -> bool {
    skipped(*e)
}

/// [`skipped_entry`] by value; with the feature `small`, one out-of-line
/// copy for every take loop (an error path: no cost per message).
#[cfg_attr(feature = "small", inline(never))]
fn skipped(e: RingError) -> bool {
    e.is_peer_error()
        && !matches!(
            e,
            RingError::AvailIndexJump | RingError::UsedIndexJump | RingError::LengthOverflow
        )
}

/// The virtqueue ids of a link's two rings (the values the doorbell
/// carries: Linux assigns notify ids 0 and 1 in vring order, §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueIds {
    /// vring0 (remote → master).
    pub vring0: QueueId,
    /// vring1 (master → remote).
    pub vring1: QueueId,
}

impl QueueIds {
    /// Notify ids 0 and 1, as Linux assigns them and rpmsg-lite uses for link 0.
    pub const DEFAULT: Self = match (QueueId::new(0), QueueId::new(1)) {
        (Some(vring0), Some(vring1)) => Self { vring0, vring1 },
        _ => panic!("queue ids 0 and 1 exist"),
    };
}

impl Default for QueueIds {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Which doorbells a ring pair rings and asks for, beyond what the peer's
/// suppression fields say. [`crate::boot::Profile::conventions`] picks
/// them for each peer; ring pairs built without a profile use
/// [`Conventions::UNTUNED`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conventions {
    /// Ring after every message sent, even when the peer's suppression
    /// field asks not to (rpmsg-lite's master leaves
    /// `VRING_AVAIL_F_NO_INTERRUPT` set on both rings and expects its
    /// remote to kick anyway, vector 01).
    pub notify_always: bool,
    /// Ring for returned receive buffers when the peer's suppression field
    /// asks for it. `false` for a peer that never waits for them on a
    /// doorbell (rpmsg-lite polls for a free transmit buffer): each one
    /// would be an interrupt it ignores.
    pub announce_returns: bool,
    /// Ask the peer, through this side's suppression field on the transmit
    /// ring, not to ring for the buffers it hands back (the master's
    /// returned receive buffers, the remote's consumed messages) while this
    /// side has transmit buffers; asked for again, and the ring looked at
    /// once more, when a send finds none free (what Linux does on its
    /// transmit ring, rpmsg-wire.md §2.1).
    pub quiet_returns: bool,
    /// Give the receive buffer that ends a pass (the last entry the ring's
    /// last look revealed) back with the next look at the ring instead of
    /// at once: that look publishes it, fences and reads the peer's
    /// suppression field, and then reads the peer's index from the line
    /// that fenced read loaded (flags mode: the two share a line), so on
    /// non-coherent memory a pass costs one invalidation of that line
    /// fewer. At most one buffer is withheld from the peer at a time, and
    /// only until this side looks at the ring again (the next
    /// [`crate::link::Rx::try_recv`]): for peers that, like ours, never
    /// wait for their last buffer but for a doorbell this side answers by
    /// looking. Non-coherent memory and flags mode only (coherent memory
    /// has no line to save; with `EVENT_IDX` the return's publication is
    /// also where a receiver that goes idle re-arms, so it stays
    /// immediate), and rings with fewer than two entries ignore it.
    pub return_with_next_look: bool,
}

impl Conventions {
    /// Follow the peer's suppression fields, never ask it to be quiet: the
    /// behaviour of a ring pair built without a profile (byte-identical to
    /// rpmsg-lite's remote on the golden images).
    pub const UNTUNED: Self = Self {
        notify_always: false,
        announce_returns: true,
        quiet_returns: false,
        return_with_next_look: false,
    };
}

impl Default for Conventions {
    fn default() -> Self {
        Self::UNTUNED
    }
}

pub(crate) mod sealed {
    pub trait Sealed {}
}

/// The transmit half of a ring pair: the ring this side fills, with its
/// spare buffers and doorbell conventions. Sealed: [`RemoteTx`] and
/// [`MasterTx`], the parts [`Halves::into_halves`] hands out.
pub trait TxRing<'m>: sealed::Sealed {
    /// The shared memory.
    type Mem: SharedMemory + ?Sized + 'm;
    /// The ring's byte order.
    type Order: Endian;
    /// The queue to kick after [`TxRing::send`] asked for it.
    fn queue(&self) -> QueueId;
    /// The memory the buffers lie in.
    fn mem(&self) -> &'m Self::Mem;
    /// A buffer to fill, if one is free.
    ///
    /// # Errors
    ///
    /// A ring error (counted in the ring's statistics).
    fn take(&mut self) -> Result<Option<TxSlot>, RingError>;
    /// Keeps a buffer taken with [`TxRing::take`] and not sent for the
    /// next send. The remote keeps one ([`RemoteTx`]): take one buffer at a
    /// time and send or give it back before taking the next, as the link
    /// does (a take hands the kept buffer out first).
    fn give_back(&mut self, slot: TxSlot);
    /// Hands a filled buffer to the peer (its whole room, as rpmsg-lite
    /// reports it; the header carries the payload length) and publishes
    /// it; `true` when the peer wants a notification (or the conventions
    /// ring anyway). What was written into the buffer is cleaned first
    /// (by the caller).
    ///
    /// # Errors
    ///
    /// A ring error; the buffer is handed back if the ring did not take it.
    fn send(&mut self, slot: TxSlot) -> Result<bool, SendFailure>;
    /// [`TxRing::take`], then `write` on the slot taken, then (when
    /// `write` says it goes out: `true`) [`TxRing::send`], in one call: a
    /// send that copies in (what went wrong writing, `write` keeps in its
    /// captures). A slot `write` does not send is kept for the next send
    /// ([`TxRing::give_back`]), as is one the ring did not take. Returns
    /// [`Passed::Empty`] when no buffer is free, [`Passed::Kept`] for a
    /// slot not sent, [`Passed::Returned`] for one sent (whether the peer
    /// wants a notification, or the conventions ring anyway) and
    /// [`Passed::NotReturned`] when the send failed. The same errors,
    /// statistics and ring contents as those calls; a ring may do it in
    /// one pass (the remote's transmit ring on coherent memory:
    /// [`vring::Device::pop_writable_with`]).
    ///
    /// # Errors
    ///
    /// As [`TxRing::take`] (nothing taken, `write` not called).
    #[inline(always)]
    fn take_with(&mut self, write: impl FnMut(&TxSlot) -> bool) -> Result<Passed, RingError> {
        take_then_send(self, write)
    }
    /// The ring's statistics.
    fn stats(&self) -> &Stats;
    /// Whether the ring is broken (the peer corrupted its indices).
    fn is_broken(&self) -> bool;
    /// Asks the peer to stop (`false`) or resume (`true`) ringing for the
    /// buffers it hands back on this ring (the remote's posted receive
    /// buffers, the master's consumed messages), through the ring's own
    /// suppression (flags or `EVENT_IDX`; advisory). With
    /// [`Conventions::quiet_returns`] the ring asks for them again when a
    /// send finds no buffer. The default (split ownership, whose doorbells
    /// carry the consumed-buffer protocol) ignores the request.
    ///
    /// # Errors
    ///
    /// A ring error writing the suppression field.
    fn set_peer_notifications(&mut self, _on: bool) -> Result<(), RingError> {
        Ok(())
    }
    /// The peer rang `queues`. Returns whether this ring's doorbell is due
    /// now (split ownership: the consumed word came back, and a message the
    /// peer's pass did not see needs a new "message available" doorbell).
    /// The default does nothing.
    ///
    /// # Errors
    ///
    /// A ring error.
    fn on_notify(&mut self, _queues: QueueSet) -> Result<bool, RingError> {
        Ok(false)
    }
    /// One tick of the ring's own unresponsive-peer bound; `true` when the
    /// peer was just given up on (split ownership releases the wake guards
    /// of its in-flight buffers). The default never gives up.
    fn tick(&mut self) -> bool {
        false
    }
}

/// The receive half of a ring pair: the ring the peer fills, with its
/// doorbell conventions. Sealed: [`RemoteRx`] and [`MasterRx`].
pub trait RxRing<'m>: sealed::Sealed {
    /// The shared memory.
    type Mem: SharedMemory + ?Sized + 'm;
    /// The ring's byte order.
    type Order: Endian;
    /// Entries in the ring: how many undeliverable messages one receive
    /// call skips at most.
    const NUM: usize;
    /// The queue to kick after [`RxRing::release`] asked for it.
    fn queue(&self) -> QueueId;
    /// The memory the buffers lie in.
    fn mem(&self) -> &'m Self::Mem;
    /// The next received buffer, if any.
    ///
    /// # Errors
    ///
    /// A ring error (counted). Peer errors that skip one entry are skipped
    /// here (at most a ring's worth per call).
    fn take(&mut self) -> Result<Option<RxSlot>, RingError>;
    /// Returns a received buffer to the peer; publishing it and re-arming
    /// the ring (when it was found empty) share one full fence. `true` when
    /// the peer wants a notification and the conventions announce returns.
    /// This side wrote nothing into it (no line of it is dirty).
    ///
    /// # Errors
    ///
    /// A ring error.
    fn release(&mut self, slot: RxSlot) -> Result<bool, RingError>;
    /// [`RxRing::take`], then `read` on the slot taken, then (when `read`
    /// says it goes back: `true`) [`RxRing::release`], in one call: a
    /// receive that copies out (what it read, `read` keeps in its
    /// captures). A slot `read` keeps (`false`, holding a copy of it) goes
    /// back later with [`RxRing::release`]. Returns [`Passed::Empty`]
    /// when nothing was taken, [`Passed::Kept`], [`Passed::Returned`]
    /// with what the release returned, or [`Passed::NotReturned`] with its
    /// error. The same errors, statistics and ring contents as those
    /// calls; a ring may do it in one pass (the remote's receive ring on
    /// coherent memory: [`vring::Device::pop_readable_with`]).
    ///
    /// # Errors
    ///
    /// As [`RxRing::take`] (nothing taken, `read` not called).
    #[inline(always)]
    fn take_with(&mut self, read: impl FnMut(&RxSlot) -> bool) -> Result<Passed, RingError> {
        take_then_release(self, read)
    }
    /// The ring's statistics.
    fn stats(&self) -> &Stats;
    /// Whether the ring is broken (the peer corrupted its indices).
    fn is_broken(&self) -> bool;
    /// Asks the peer to stop (`false`) or resume (`true`) ringing for the
    /// messages it makes available on this ring, through the ring's own
    /// suppression (advisory: the peer may still ring). Resuming re-checks
    /// the ring and returns whether messages arrived meanwhile (receive
    /// them before sleeping, or that wake-up is lost). The default (split
    /// ownership) ignores the request and returns `false`.
    ///
    /// # Errors
    ///
    /// A ring error.
    fn set_peer_notifications(&mut self, _on: bool) -> Result<bool, RingError> {
        Ok(false)
    }
    /// The peer rang `queues` (split ownership: a "message available"
    /// doorbell lets this side read the peer's ring again). The default
    /// does nothing.
    fn on_notify(&mut self, _queues: QueueSet) {}
    /// Whether a doorbell on this ring's queue is due that no
    /// [`RxRing::release`] asked for (split ownership: the consumed-buffer
    /// notification at the end of a pass, when [`RxRing::take`] found the
    /// ring empty); asking clears it. The default never has one.
    fn take_kick(&mut self) -> bool {
        false
    }
}

/// [`TxRing::take_with`] as its three steps.
#[inline(always)]
fn take_then_send<'m, R: TxRing<'m> + ?Sized>(
    ring: &mut R,
    mut write: impl FnMut(&TxSlot) -> bool,
) -> Result<Passed, RingError> {
    let Some(slot) = ring.take()? else {
        return Ok(Passed::Empty);
    };
    if !write(&slot) {
        ring.give_back(slot);
        return Ok(Passed::Kept);
    }
    Ok(match ring.send(slot) {
        Ok(wanted) => Passed::Returned(wanted),
        Err(SendFailure { slot, error }) => {
            if let Some(slot) = slot {
                ring.give_back(slot);
            }
            Passed::NotReturned(error)
        }
    })
}

/// [`RxRing::take_with`] as its three steps.
#[inline(always)]
fn take_then_release<'m, R: RxRing<'m> + ?Sized>(
    ring: &mut R,
    mut read: impl FnMut(&RxSlot) -> bool,
) -> Result<Passed, RingError> {
    let Some(slot) = ring.take()? else {
        return Ok(Passed::Empty);
    };
    if !read(&slot) {
        return Ok(Passed::Kept);
    }
    Ok(match ring.release(slot) {
        Ok(wanted) => Passed::Returned(wanted),
        Err(e) => Passed::NotReturned(e),
    })
}

/// A ring pair that comes apart into a transmit part and a receive part,
/// each owning one vring, so the two directions can be driven from
/// different contexts ([`crate::link`]); the parts put back together
/// give the same ring pair.
pub trait Halves<'m>: sealed::Sealed {
    /// The shared memory.
    type Mem: SharedMemory + ?Sized + 'm;
    /// The rings' byte order.
    type Order: Endian;
    /// The transmit part.
    type Tx: TxRing<'m, Mem = Self::Mem, Order = Self::Order>;
    /// The receive part.
    type Rx: RxRing<'m, Mem = Self::Mem, Order = Self::Order>;
    /// Takes the pair apart.
    fn into_halves(self) -> (Self::Tx, Self::Rx);
    /// Puts a pair taken apart by [`Halves::into_halves`] back together.
    fn from_halves(tx: Self::Tx, rx: Self::Rx) -> Self;
    /// Messages handed to the peer whose buffers have not come back, after
    /// taking back every buffer the peer already returned (0 when the role
    /// cannot know: the remote does not learn when the master reads). Used
    /// when the session ends.
    fn unconfirmed_tx(&mut self) -> u32;
    /// Messages the peer made available on the receive ring that this side
    /// has not taken yet, read fresh from ring memory (0 when the ring lies
    /// about its index: the failure is counted in its statistics). Only
    /// meaningful while the peer has not laid the rings out again: see
    /// [`crate::link::Link::release_session`]. The default (split
    /// ownership) reports 0.
    fn untaken_rx(&mut self) -> u32 {
        0
    }
}

/// The remote's rings: the virtio device side of both vrings.
pub struct RemoteRings<'m, M: SharedMemory + ?Sized, E: Endian, const NUM: usize> {
    tx: RemoteTx<'m, M, E, NUM>,
    rx: RemoteRx<'m, M, E, NUM>,
}

/// The remote's transmit part: vring0 (device side), the buffer taken and
/// not sent.
// `repr(C)`, the small fields first: the send reaches them through the
// half's base register at offsets short enough for 16-bit Thumb loads and
// stores (minimal-remote: 8 bytes).
#[repr(C)]
pub struct RemoteTx<'m, M: SharedMemory + ?Sized, E: Endian, const NUM: usize> {
    /// The buffer taken and not sent, for the next send: one place, since
    /// a take hands it out first and the link lends one transmit buffer at
    /// a time ([`TxRing::give_back`]).
    spare: Option<TxSlot>,
    conv: Conventions,
    /// The ring asks the peer not to ring (`quiet_returns`).
    quiet: bool,
    queue: QueueId,
    ring: Device<'m, M, E, NUM>,
}

/// The remote's receive part: vring1 (device side).
// `repr(C)`, the small fields first: see `RemoteTx`.
#[repr(C)]
pub struct RemoteRx<'m, M: SharedMemory + ?Sized, E: Endian, const NUM: usize> {
    conv: Conventions,
    queue: QueueId,
    /// A buffer given back and withheld for the next look
    /// ([`Conventions::return_with_next_look`]), which publishes it first.
    returns: bool,
    /// That publication asked for a doorbell ([`RxRing::take_kick`]).
    kick: bool,
    ring: Device<'m, M, E, NUM>,
}

/// The per-entry tables of a remote's two rings ([`vring::DeviceTables`]),
/// declared once beside the link's [`crate::link::Storage`] (a `static`:
/// `.bss`, no image bytes) and lent to [`RemoteRings::new`], so the rings
/// themselves stay a few words. Rings attached again after a restart (or
/// a fresh boot) reuse them once the old rings are dropped
/// ([`crate::link::Link::end_session`], then
/// [`crate::link::restart::Ended::restart`]).
///
/// The two rings take them on one lease ([`vring::Device::new_pair`]),
/// given back when both are dropped.
#[derive(Debug, Default)]
pub struct RemoteTables<const NUM: usize> {
    /// vring0's table first, vring1's second.
    pair: DeviceTables<NUM, 2>,
}

impl<const NUM: usize> RemoteTables<NUM> {
    /// Tables for two rings of up to `NUM` entries, lent to no ring.
    pub const fn new() -> Self {
        Self {
            pair: DeviceTables::new(),
        }
    }
}

/// Where the remote finds its rings and the master's buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteConfig {
    /// vring0 (the remote's transmit ring).
    pub vring0: Layout,
    /// vring1 (the remote's receive ring).
    pub vring1: Layout,
    /// The window range holding the master's receive buffers (those posted
    /// on vring0).
    pub vring0_buffers: BufferArea,
    /// The window range holding the master's transmit buffers (those
    /// published on vring1).
    pub vring1_buffers: BufferArea,
    /// Notification suppression negotiated with the master.
    pub suppression: Suppression,
    /// The doorbell ids of the two rings.
    pub queues: QueueIds,
}

/// A [`RemoteConfig`] whose layouts were checked against the window
/// ([`vring::layout::InWindow`]): what the boot path hands
/// [`RemoteRings::attach`].
pub(crate) struct CheckedConfig<'m, M: ?Sized> {
    pub(crate) vring0: InWindow<'m, M>,
    pub(crate) vring1: InWindow<'m, M>,
    pub(crate) vring0_buffers: BufferArea,
    pub(crate) vring1_buffers: BufferArea,
    pub(crate) suppression: Suppression,
    pub(crate) queues: QueueIds,
}

impl<M: ?Sized> CheckedConfig<'_, M> {
    /// The configuration, the layouts as plain data.
    pub(crate) fn config(&self) -> RemoteConfig {
        RemoteConfig {
            vring0: self.vring0.layout(),
            vring1: self.vring1.layout(),
            vring0_buffers: self.vring0_buffers,
            vring1_buffers: self.vring1_buffers,
            suppression: self.suppression,
            queues: self.queues,
        }
    }
}

impl<'m, M: SharedMemory + ?Sized, E: Endian, const NUM: usize> RemoteRings<'m, M, E, NUM> {
    /// Attaches to the rings the master initialised (writes nothing), their
    /// per-entry tables in `tables` (lent until the rings are dropped).
    ///
    /// # Errors
    ///
    /// A layout that does not fit the window or the cache-line rules;
    /// [`RingError::TablesInUse`]: rings still alive hold `tables`.
    ///
    /// # Safety
    ///
    /// The two buffer areas are disjoint, and no buffer handle over them
    /// exists on this core except those these rings hand out (see
    /// [`vring::Device::new`]).
    pub unsafe fn new(
        mem: &'m M,
        config: RemoteConfig,
        tables: &'m RemoteTables<NUM>,
    ) -> Result<Self, RingError> {
        let cfg = |buffers| DeviceConfig {
            suppression: config.suppression,
            buffers,
            first_avail: 0,
        };
        let configs = [cfg(config.vring0_buffers), cfg(config.vring1_buffers)];
        let layouts = [config.vring0, config.vring1];
        // SAFETY: forwarded from this function's contract: the areas are
        // disjoint and hold no other handle.
        let (tx, rx) = unsafe { Device::new_pair(mem, layouts, configs, &tables.pair) }?;
        Ok(Self::of(tx, rx, config.queues))
    }

    /// [`RemoteRings::new`] on layouts already checked against the window
    /// they hold (the boot path's), which are not checked again.
    ///
    /// # Errors
    ///
    /// As [`RemoteRings::new`], less the layouts' own window and
    /// cache-line errors.
    ///
    /// # Safety
    ///
    /// As [`RemoteRings::new`].
    pub(crate) unsafe fn attach(
        config: CheckedConfig<'m, M>,
        tables: &'m RemoteTables<NUM>,
    ) -> Result<Self, RingError> {
        let cfg = |buffers| DeviceConfig {
            suppression: config.suppression,
            buffers,
            first_avail: 0,
        };
        let configs = [cfg(config.vring0_buffers), cfg(config.vring1_buffers)];
        let layouts = [config.vring0, config.vring1];
        // SAFETY: forwarded from this function's contract: the areas are
        // disjoint and hold no other handle.
        let (tx, rx) = unsafe { Device::pair_in_window(layouts, configs, &tables.pair) }?;
        Ok(Self::of(tx, rx, config.queues))
    }

    /// The pair over two attached devices, conventions untuned.
    #[inline(always)]
    fn of(tx: Device<'m, M, E, NUM>, rx: Device<'m, M, E, NUM>, queues: QueueIds) -> Self {
        Self {
            tx: RemoteTx {
                ring: tx,
                spare: None,
                queue: queues.vring0,
                conv: Conventions::UNTUNED,
                quiet: false,
            },
            rx: RemoteRx {
                ring: rx,
                queue: queues.vring1,
                conv: Conventions::UNTUNED,
                returns: false,
                kick: false,
            },
        }
    }

    /// Follows `conv` from now on; with [`Conventions::quiet_returns`] the
    /// transmit ring asks the master not to ring for posted buffers at once.
    ///
    /// # Errors
    ///
    /// A ring error writing the suppression field.
    pub fn with_conventions(mut self, conv: Conventions) -> Result<Self, RingError> {
        self.set_conventions(conv)?;
        Ok(self)
    }

    /// [`RemoteRings::with_conventions`] in place (no move of the rings).
    ///
    /// # Errors
    ///
    /// A ring error writing the suppression field.
    pub fn set_conventions(&mut self, conv: Conventions) -> Result<(), RingError> {
        self.tx.conv = conv;
        self.rx.conv = conv;
        if conv.quiet_returns && !self.tx.quiet {
            self.tx.ring.disable_notifications()?;
            self.tx.quiet = true;
        }
        Ok(())
    }

    /// Rings the doorbell after every publication even when the master's
    /// flags ask not to. rpmsg-lite's master leaves
    /// `VRING_AVAIL_F_NO_INTERRUPT` set on both rings (vector 01) while its
    /// own remote kicks anyway; a remote serving an rpmsg-lite master needs
    /// this. Linux keeps its flags meaningful: leave it off there.
    #[must_use]
    pub fn notify_always(mut self, always: bool) -> Self {
        self.tx.conv.notify_always = always;
        self.rx.conv.notify_always = always;
        self
    }
}

impl<M: SharedMemory + ?Sized, E: Endian, const NUM: usize> sealed::Sealed
    for RemoteRings<'_, M, E, NUM>
{
}
impl<M: SharedMemory + ?Sized, E: Endian, const NUM: usize> sealed::Sealed
    for RemoteTx<'_, M, E, NUM>
{
}
impl<M: SharedMemory + ?Sized, E: Endian, const NUM: usize> sealed::Sealed
    for RemoteRx<'_, M, E, NUM>
{
}

impl<'m, M: SharedMemory + ?Sized + 'm, E: Endian, const NUM: usize> TxRing<'m>
    for RemoteTx<'m, M, E, NUM>
{
    type Mem = M;
    type Order = E;

    #[inline]
    fn queue(&self) -> QueueId {
        self.queue
    }

    #[inline(always)]
    fn mem(&self) -> &'m M {
        self.ring.mem()
    }

    #[cfg_attr(feature = "small", inline)]
    #[cfg_attr(not(feature = "small"), inline(always))]
    fn take(&mut self) -> Result<Option<TxSlot>, RingError> {
        // Tested before it is taken: `Option::take` would load the whole
        // slot and store `None` back on every call, spare or not.
        if !cfg!(feature = "small") && self.spare.is_some() {
            return Ok(self.spare.take());
        }
        if let Some(s) = &self.spare {
            // With the feature `small`, rebuilt field by field: a move of
            // the whole `TxSlot` carries its padding bytes along to the
            // next store (minimal-remote: 12 bytes). (Without it, the
            // move: the rebuilt form cost 3 instructions per message on
            // 16-copy-up.)
            let slot = TxSlot {
                token: s.token,
                offset: s.offset,
                room: s.room,
            };
            self.spare = None;
            return Ok(Some(slot));
        }
        // A bad entry is consumed and counted and the next may be fine; at
        // most NUM of them are looked at per call, so a peer that keeps
        // posting bad entries cannot keep us here.
        for _ in 0..NUM + 1 {
            match self.ring.pop_writable_slot() {
                Ok(Some(p)) => {
                    if self.conv.quiet_returns && !self.quiet {
                        // Buffers again: the master may post quietly.
                        self.ring.disable_notifications()?;
                        self.quiet = true;
                    }
                    // A writable buffer's room is its descriptor length,
                    // its whole capacity (`Device::pop_writable_slot`).
                    return Ok(Some(TxSlot {
                        token: p.id,
                        offset: p.offset,
                        room: p.len as usize,
                    }));
                }
                Ok(None) if self.quiet => {
                    // Out of buffers: ask for the doorbell, then look once
                    // more (one posted meanwhile rang nobody).
                    self.quiet = false;
                    if !self.ring.enable_notifications()? {
                        return Ok(None);
                    }
                }
                Ok(None) => return Ok(None),
                Err(e) if skipped_entry(&e) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    #[inline]
    fn give_back(&mut self, slot: TxSlot) {
        // A device cannot hand a buffer back without "using" it; keep it for
        // the next send instead. The place is free: a take empties it first,
        // and a second buffer taken before the first came back is beyond
        // this trait's contract (dropped: held until the rings are laid
        // out again).
        self.spare = Some(slot);
    }

    #[cfg_attr(feature = "small", inline)]
    #[cfg_attr(not(feature = "small"), inline(always))]
    fn send(&mut self, slot: TxSlot) -> Result<bool, SendFailure> {
        // rpmsg-lite reports the whole buffer as used (§2.3, vector 02);
        // Linux accepts any used length from header + payload up to the
        // buffer size. The descriptor's length is both.
        if let Err(error) = self.ring.push_used_slot(slot.token, None) {
            return Err(SendFailure {
                slot: Some(slot),
                error,
            });
        }
        self.ring
            .publish_used()
            .map(|wanted| wanted || self.conv.notify_always)
            .map_err(|error| SendFailure { slot: None, error })
    }

    // On coherent memory with no spare and no quiet returns, without the
    // feature `small`: the device's one-pass send, the skipping loop of
    // `take` around it.
    #[inline(always)]
    fn take_with(&mut self, mut write: impl FnMut(&TxSlot) -> bool) -> Result<Passed, RingError> {
        if !M::COHERENT
            || cfg!(feature = "small")
            || self.spare.is_some()
            || self.conv.quiet_returns
        {
            return take_then_send(self, write);
        }
        // At most NUM + 1 entries looked at, as `take`; counted on the
        // skipping path only (no counter on the usual one).
        let mut skipped = 0;
        loop {
            let mut unsent = None;
            let got = self.ring.pop_writable_with(
                #[inline(always)]
                |p| {
                    // A writable buffer's room is its descriptor length,
                    // its whole capacity (`Device::pop_writable_slot`).
                    let slot = TxSlot {
                        token: p.id,
                        offset: p.offset,
                        room: p.len as usize,
                    };
                    let send = write(&slot);
                    if !send {
                        unsent = Some(slot);
                    }
                    send
                },
            );
            match got {
                // Not sent: the device holds it; kept for the next send.
                Ok(Passed::Kept) => {
                    if let Some(slot) = unsent {
                        self.give_back(slot);
                    }
                    return Ok(Passed::Kept);
                }
                // As `send`: the publication's answer, or the conventions'
                // own.
                Ok(Passed::Returned(wanted)) => {
                    return Ok(Passed::Returned(wanted || self.conv.notify_always));
                }
                Ok(p) => return Ok(p),
                Err(e) if skipped_entry(&e) => {
                    skipped += 1;
                    if skipped > NUM {
                        return Ok(Passed::Empty);
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn stats(&self) -> &Stats {
        self.ring.stats()
    }

    fn is_broken(&self) -> bool {
        self.ring.is_broken()
    }

    fn set_peer_notifications(&mut self, on: bool) -> Result<(), RingError> {
        // The quiet state follows the request until the next take finds a
        // buffer (or none).
        self.quiet = !on && self.conv.quiet_returns;
        if on {
            // Free transmit buffers waiting are no work (no re-check).
            let _posted: bool = self.ring.enable_notifications()?;
            Ok(())
        } else {
            self.ring.disable_notifications()
        }
    }
}

impl<'m, M: SharedMemory + ?Sized + 'm, E: Endian, const NUM: usize> RemoteRx<'m, M, E, NUM> {
    /// The start of [`RxRing::take`] with a return withheld for this look:
    /// the return goes out first, and the look then reads `avail.idx` from
    /// the line the publication's fenced read loaded. `None`: the entry
    /// looked at was refused (counted); the take goes on.
    #[inline(never)]
    fn take_after_return(&mut self) -> Option<Result<Option<RxSlot>, RingError>> {
        self.returns = false;
        let wanted = match self.ring.publish_used_and_rearm() {
            Ok(w) => w || self.conv.notify_always,
            Err(e) => return Some(Err(e)),
        };
        self.kick |= wanted && self.conv.announce_returns;
        match self.ring.pop_readable_slot_after_publish() {
            Ok(Some(p)) => Some(Ok(Some(RxSlot {
                token: p.id,
                offset: p.offset,
                len: p.len,
            }))),
            Ok(None) => Some(Ok(None)),
            Err(e) if skipped_entry(&e) => None,
            Err(e) => Some(Err(e)),
        }
    }
}

impl<'m, M: SharedMemory + ?Sized + 'm, E: Endian, const NUM: usize> RxRing<'m>
    for RemoteRx<'m, M, E, NUM>
{
    type Mem = M;
    type Order = E;
    const NUM: usize = NUM;

    #[inline]
    fn queue(&self) -> QueueId {
        self.queue
    }

    #[inline(always)]
    fn mem(&self) -> &'m M {
        self.ring.mem()
    }

    #[inline(always)]
    fn take(&mut self) -> Result<Option<RxSlot>, RingError> {
        // A return withheld for this look (`Conventions::
        // return_with_next_look`) goes out first (out of line: flags mode,
        // non-coherent memory only).
        if !M::COHERENT && self.returns {
            if let Some(taken) = self.take_after_return() {
                return taken;
            }
        }
        for _ in 0..NUM + 1 {
            match self.ring.pop_readable_slot() {
                Ok(Some(p)) => {
                    return Ok(Some(RxSlot {
                        token: p.id,
                        offset: p.offset,
                        len: p.len,
                    }))
                }
                Ok(None) => return Ok(None),
                Err(e) if skipped_entry(&e) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    // Inlined into the copying receive (a call, its register saves and
    // its result's tests were ≈13 instructions per message); the held
    // message's drop calls it through one out-of-line copy
    // (`link::release_held`). With the feature `small`, out of line.
    #[cfg_attr(not(feature = "small"), inline(always))]
    #[cfg_attr(feature = "small", inline)]
    fn release(&mut self, slot: RxSlot) -> Result<bool, RingError> {
        // The used length of a buffer the remote only read: its descriptor
        // length (`Device::push_used_whole`). rpmsg-lite's remote reports
        // exactly that (vector 04: 512), Linux accepts anything up to it,
        // and it never exceeds what the master posted, whatever the cache
        // line (Linux posts header + payload, not a whole line).
        self.ring.push_used_slot(slot.token, None)?;
        if !M::COHERENT
            && self.conv.return_with_next_look
            && NUM >= 2
            && !self.returns
            && self.ring.consumed_all_seen()
            && self.ring.suppression() == Suppression::Flags
        {
            // The pass's last: published by the next look (`take`).
            self.returns = true;
            return Ok(false);
        }
        if !M::COHERENT {
            self.returns = false;
        }
        // Messages are work: going idle re-arms under the publication's
        // fence (`Device::publish_used_and_rearm`).
        let wanted = self.ring.publish_used_and_rearm()? || self.conv.notify_always;
        Ok(wanted && self.conv.announce_returns)
    }

    // On coherent memory (no withheld return), without the feature
    // `small`: the device's one-pass receive, the skipping loop of `take`
    // around it.
    #[inline(always)]
    fn take_with(&mut self, mut read: impl FnMut(&RxSlot) -> bool) -> Result<Passed, RingError> {
        if !M::COHERENT || cfg!(feature = "small") {
            return take_then_release(self, read);
        }
        // As in `RemoteTx::take_with`.
        let mut skipped = 0;
        loop {
            let got = self.ring.pop_readable_with(
                #[inline(always)]
                |p| {
                    read(&RxSlot {
                        token: p.id,
                        offset: p.offset,
                        len: p.len,
                    })
                },
            );
            match got {
                // As `release`: the publication's answer, or the
                // conventions' own.
                Ok(Passed::Returned(wanted)) => {
                    let conv = self.conv;
                    return Ok(Passed::Returned(
                        (wanted || conv.notify_always) && conv.announce_returns,
                    ));
                }
                Ok(p) => return Ok(p),
                Err(e) if skipped_entry(&e) => {
                    skipped += 1;
                    if skipped > NUM {
                        return Ok(Passed::Empty);
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn stats(&self) -> &Stats {
        self.ring.stats()
    }

    fn is_broken(&self) -> bool {
        self.ring.is_broken()
    }

    fn set_peer_notifications(&mut self, on: bool) -> Result<bool, RingError> {
        if on {
            self.ring.enable_notifications()
        } else {
            self.ring.disable_notifications()?;
            Ok(false)
        }
    }

    #[inline]
    fn take_kick(&mut self) -> bool {
        !M::COHERENT && core::mem::take(&mut self.kick)
    }
}

impl<'m, M: SharedMemory + ?Sized + 'm, E: Endian, const NUM: usize> Halves<'m>
    for RemoteRings<'m, M, E, NUM>
{
    type Mem = M;
    type Order = E;
    type Tx = RemoteTx<'m, M, E, NUM>;
    type Rx = RemoteRx<'m, M, E, NUM>;

    fn into_halves(self) -> (Self::Tx, Self::Rx) {
        (self.tx, self.rx)
    }

    fn from_halves(tx: Self::Tx, rx: Self::Rx) -> Self {
        Self { tx, rx }
    }

    fn unconfirmed_tx(&mut self) -> u32 {
        0
    }

    fn untaken_rx(&mut self) -> u32 {
        self.rx.ring.pending().map_or(0, u32::from)
    }
}

/// The master's rings: the virtio driver side of both vrings, and the
/// buffer pool (it owns every buffer).
pub struct MasterRings<'m, M: SharedMemory + ?Sized, E: Endian, const NUM: usize> {
    tx: MasterTx<'m, M, E, NUM>,
    rx: MasterRx<'m, M, E, NUM>,
}

/// The master's transmit part: vring1 (driver side) and the transmit
/// buffers not in the ring.
pub struct MasterTx<'m, M: SharedMemory + ?Sized, E: Endian, const NUM: usize> {
    /// vring1: messages to the remote.
    ring: Driver<'m, M, E, NUM>,
    mem: &'m M,
    spare: Spares<NUM>,
    queue: QueueId,
    buf_size: usize,
    /// `buf_size` as a descriptor length (checked to fit at `new`): what
    /// every send publishes.
    buf_len: u32,
    conv: Conventions,
    /// The ring asks the remote not to ring (`quiet_returns`).
    quiet: bool,
}

/// The master's receive part: vring0 (driver side), whose buffers it posts
/// and takes back.
pub struct MasterRx<'m, M: SharedMemory + ?Sized, E: Endian, const NUM: usize> {
    /// vring0: messages from the remote.
    ring: Driver<'m, M, E, NUM>,
    mem: &'m M,
    queue: QueueId,
    conv: Conventions,
    /// A buffer given back and withheld for the next look
    /// ([`Conventions::return_with_next_look`]), which publishes it first.
    returns: bool,
    /// That publication asked for a doorbell ([`RxRing::take_kick`]).
    kick: bool,
}
/// Where the master lays out rings and buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MasterConfig {
    /// vring0 (the master's receive ring).
    pub vring0: Layout,
    /// vring1 (the master's transmit ring).
    pub vring1: Layout,
    /// Window offset of the buffer pool: `2 * num` buffers of `buf_size`
    /// bytes, receive buffers first (rpmsg-lite and Linux order, §2.2).
    pub pool: usize,
    /// Bytes per buffer (512 by default).
    pub buf_size: usize,
    /// Notification suppression.
    pub suppression: Suppression,
    /// The doorbell ids of the two rings.
    pub queues: QueueIds,
    /// Byte-compatibility with rpmsg-lite's master: `VRING_DESC_F_WRITE` on
    /// every descriptor, transmit buffers parked in vring1's used ring, and
    /// both rings' callbacks disabled at init (vector 01).
    pub rpmsg_lite_compat: bool,
}

impl<'m, M: SharedMemory + ?Sized, E: Endian, const NUM: usize> MasterRings<'m, M, E, NUM> {
    /// Initialises both rings, posts the receive buffers on vring0 and makes
    /// the transmit buffers ready.
    ///
    /// # Errors
    ///
    /// A layout or pool that does not fit the window or the cache-line
    /// rules; a ring error.
    ///
    /// # Safety
    ///
    /// The pool (`pool..pool + 2 * num * buf_size`) is owned by this link
    /// alone: no other buffer handle covers it and the peer does not own it.
    pub unsafe fn new(mem: &'m M, config: MasterConfig) -> Result<Self, RingError> {
        let drv = |layout, rpmsg_lite_compat| {
            let cfg = DriverConfig {
                suppression: config.suppression,
                write_flag_on_readable: rpmsg_lite_compat,
            };
            // SAFETY: every buffer handed to these rings is built over `mem`
            // below.
            unsafe { Driver::<M, E, NUM>::new(mem, layout, cfg) }
        };
        let mut rx = drv(config.vring0, config.rpmsg_lite_compat)?;
        let mut tx = drv(config.vring1, config.rpmsg_lite_compat)?;
        let num = usize::from(config.vring0.num().min(config.vring1.num()));
        let mut spare = Spares::new();
        let mut fresh: [Option<TxSlot>; NUM] = [const { None }; NUM];
        let slot = |k: usize| config.pool.checked_add(k.checked_mul(config.buf_size)?);
        let bad_pool = RingError::BadBufferArea;
        let buf_len = u32::try_from(config.buf_size).map_err(|_| bad_pool)?;
        for k in 0..2 * num {
            let offset = slot(k).ok_or(bad_pool)?;
            // SAFETY: slot k of the pool, owned by this link alone (this
            // function's contract); each slot is built once.
            let buf = unsafe { ShmBuf::<M, Dirty>::new_unchecked(mem, offset, config.buf_size) }
                .map_err(|e| mem_err(&e))?;
            if k < num {
                let clean = buf.clean().map_err(|(_, e)| mem_err(&e))?;
                rx.add_writable(clean).map_err(|(_, e)| e)?;
            } else if config.rpmsg_lite_compat {
                let mut buf = buf;
                buf.set_len(config.buf_size).map_err(|_| bad_pool)?;
                // The remote never touches a parked buffer, but the ring
                // hands it back as `Received`, which promises no dirty line
                // (`Unwritten`): it is written back like every slot a ring
                // takes.
                let clean = buf.clean().map_err(|(_, e)| mem_err(&e))?;
                tx.preload_used(clean, buf_len).map_err(|(_, e)| e)?;
            } else if let Some(at) = fresh.get_mut(k - num) {
                // Bound to a descriptor id for good; written back whole now
                // (nothing is known of what this core wrote there before),
                // so a send cleans only the lines it writes.
                let clean = buf.clean().map_err(|(_, e)| mem_err(&e))?;
                let slot = tx.lend(clean).map_err(|(_, e)| e)?;
                *at = Some(TxSlot {
                    token: slot.id,
                    offset: slot.offset,
                    room: config.buf_size,
                });
            }
        }
        // Lowest buffer first, as Linux's `get_a_tx_buf` hands them out.
        for slot in fresh.into_iter().rev().flatten() {
            spare.push(slot);
        }
        if config.rpmsg_lite_compat {
            rx.disable_interrupts()?;
            tx.disable_interrupts()?;
        }
        // The receive buffers become visible; the remote is not running yet
        // (it waits for DRIVER_OK or the first kick), so whether it asked for
        // a notification does not matter here.
        let _posted: bool = rx.publish()?;
        Ok(Self {
            tx: MasterTx {
                ring: tx,
                mem,
                spare,
                queue: config.queues.vring1,
                buf_size: config.buf_size,
                buf_len,
                conv: Conventions::UNTUNED,
                quiet: false,
            },
            rx: MasterRx {
                ring: rx,
                mem,
                queue: config.queues.vring0,
                conv: Conventions::UNTUNED,
                returns: false,
                kick: false,
            },
        })
    }

    /// Follows `conv` from now on; with [`Conventions::quiet_returns`] the
    /// transmit ring asks the remote not to ring for consumed messages at
    /// once (Linux's `virtqueue_disable_cb(svq)`, rpmsg-wire.md §2.1).
    ///
    /// # Errors
    ///
    /// A ring error writing the suppression field.
    pub fn with_conventions(mut self, conv: Conventions) -> Result<Self, RingError> {
        self.set_conventions(conv)?;
        Ok(self)
    }

    /// [`MasterRings::with_conventions`] in place (no move of the rings).
    ///
    /// # Errors
    ///
    /// A ring error writing the suppression field.
    pub fn set_conventions(&mut self, conv: Conventions) -> Result<(), RingError> {
        self.tx.conv = conv;
        self.rx.conv = conv;
        if conv.quiet_returns && !self.tx.quiet {
            self.tx.ring.disable_interrupts()?;
            self.tx.quiet = true;
        }
        Ok(())
    }
}

impl<M: SharedMemory + ?Sized, E: Endian, const NUM: usize> sealed::Sealed
    for MasterRings<'_, M, E, NUM>
{
}
impl<M: SharedMemory + ?Sized, E: Endian, const NUM: usize> sealed::Sealed
    for MasterTx<'_, M, E, NUM>
{
}
impl<M: SharedMemory + ?Sized, E: Endian, const NUM: usize> sealed::Sealed
    for MasterRx<'_, M, E, NUM>
{
}

impl<'m, M: SharedMemory + ?Sized + 'm, E: Endian, const NUM: usize> TxRing<'m>
    for MasterTx<'m, M, E, NUM>
{
    type Mem = M;
    type Order = E;

    #[inline]
    fn queue(&self) -> QueueId {
        self.queue
    }

    #[inline(always)]
    fn mem(&self) -> &'m M {
        self.mem
    }

    #[inline(always)]
    fn take(&mut self) -> Result<Option<TxSlot>, RingError> {
        if let Some(slot) = self.spare.pop() {
            return Ok(Some(slot));
        }
        for _ in 0..NUM + 1 {
            match self.ring.pop_used_slot() {
                Ok(Some(used)) => {
                    if self.conv.quiet_returns && !self.quiet {
                        // Buffers again: the remote may return quietly.
                        self.ring.disable_interrupts()?;
                        self.quiet = true;
                    }
                    // The remote is done with it; its contents do not
                    // matter. Every slot of the pool is `buf_size` long.
                    return Ok(Some(TxSlot {
                        token: used.id,
                        offset: used.offset,
                        room: self.buf_size,
                    }));
                }
                Ok(None) if self.quiet => {
                    // Out of buffers: ask for the doorbell, then look once
                    // more (one returned meanwhile rang nobody).
                    self.quiet = false;
                    if !self.ring.enable_interrupts()? {
                        return Ok(None);
                    }
                }
                Ok(None) => return Ok(None),
                Err((_, Some(used))) => {
                    // A lying length on a returned transmit buffer: the
                    // slot itself is ours again.
                    return Ok(Some(TxSlot {
                        token: used.id,
                        offset: used.offset,
                        room: self.buf_size,
                    }));
                }
                Err((e, None)) => {
                    if !skipped_entry(&e) {
                        return Err(e);
                    }
                }
            }
        }
        Ok(None)
    }

    #[inline]
    fn give_back(&mut self, slot: TxSlot) {
        self.spare.push(slot);
    }

    #[inline(always)]
    fn send(&mut self, slot: TxSlot) -> Result<bool, SendFailure> {
        // The whole buffer is published (rpmsg-lite keeps descriptor
        // lengths at the buffer size; the header carries the payload
        // length): every slot of the pool is `buf_size` long.
        match self
            .ring
            .add_slot_and_publish(slot.token, self.buf_len, false)
        {
            Ok(wanted) => Ok(wanted || self.conv.notify_always),
            Err((error, false)) => Err(SendFailure {
                slot: Some(slot),
                error,
            }),
            Err((error, true)) => Err(SendFailure { slot: None, error }),
        }
    }

    fn stats(&self) -> &Stats {
        self.ring.stats()
    }

    fn is_broken(&self) -> bool {
        self.ring.is_broken()
    }

    fn set_peer_notifications(&mut self, on: bool) -> Result<(), RingError> {
        self.quiet = !on && self.conv.quiet_returns;
        if on {
            // Returned transmit buffers waiting are no work (no re-check).
            let _returned: bool = self.ring.enable_interrupts()?;
            Ok(())
        } else {
            self.ring.disable_interrupts()
        }
    }
}

impl<'m, M: SharedMemory + ?Sized + 'm, E: Endian, const NUM: usize> RxRing<'m>
    for MasterRx<'m, M, E, NUM>
{
    type Mem = M;
    type Order = E;
    const NUM: usize = NUM;

    #[inline]
    fn queue(&self) -> QueueId {
        self.queue
    }

    #[inline(always)]
    fn mem(&self) -> &'m M {
        self.mem
    }

    #[cfg_attr(feature = "small", inline)]
    #[cfg_attr(not(feature = "small"), inline(always))]
    fn take(&mut self) -> Result<Option<RxSlot>, RingError> {
        // As `RemoteRx::take`: a withheld return goes out first, and the
        // look reads `used.idx` from the line that publication loaded.
        let mut popped = None;
        if !M::COHERENT && self.returns {
            self.returns = false;
            let wanted = self.ring.publish_and_rearm()? || self.conv.notify_always;
            self.kick |= wanted && self.conv.announce_returns;
            popped = Some(self.ring.pop_used_slot_after_publish());
        }
        for _ in 0..NUM + 1 {
            let next = match popped.take() {
                Some(p) => p,
                None => self.ring.pop_used_slot(),
            };
            match next {
                Ok(Some(used)) => {
                    return Ok(Some(RxSlot {
                        token: used.id,
                        offset: used.offset,
                        len: used.len,
                    }))
                }
                Ok(None) => return Ok(None),
                Err((_, Some(used))) => {
                    // The used length overflows the buffer: the message is
                    // dropped (counted by the ring) and the buffer goes
                    // straight back to the remote. No clean: it was posted
                    // clean and nothing here wrote it since, so no line of
                    // it can be dirty.
                    self.ring.add_slot(used.id, 0, true)?;
                    let _kick_later: bool = self.ring.publish()?;
                }
                Err((e, None)) => {
                    if !skipped_entry(&e) {
                        return Err(e);
                    }
                }
            }
        }
        Ok(None)
    }

    #[cfg_attr(feature = "small", inline)]
    #[cfg_attr(not(feature = "small"), inline(always))]
    fn release(&mut self, slot: RxSlot) -> Result<bool, RingError> {
        // No clean (it wrote nothing, and cost a write-back walk over the
        // slot per message): a receive buffer was posted clean and this
        // side never writes it, so none of its lines is dirty; the
        // remote's next message in it is invalidated before it is read.
        if !M::COHERENT
            && self.conv.return_with_next_look
            && NUM >= 2
            && !self.returns
            && self.ring.reaped_all_seen()
            && self.ring.suppression() == Suppression::Flags
        {
            // The pass's last: published by the next look (`take`).
            self.ring.add_slot(slot.token, 0, true)?;
            self.returns = true;
            return Ok(false);
        }
        // Messages are work: going idle re-arms under the publication's
        // fence (`Driver::publish_and_rearm`); added and published in one
        // call (with an earlier withheld return, if any).
        let published = self.ring.add_slot_and_publish_rearm(slot.token, 0, true);
        if !M::COHERENT && !matches!(published, Err((_, false))) {
            // Added: no withheld return is left for the next look (a
            // refused add leaves one, as before the call).
            self.returns = false;
        }
        let wanted = published.map_err(|(e, _)| e)? || self.conv.notify_always;
        Ok(wanted && self.conv.announce_returns)
    }

    fn stats(&self) -> &Stats {
        self.ring.stats()
    }

    fn is_broken(&self) -> bool {
        self.ring.is_broken()
    }

    fn set_peer_notifications(&mut self, on: bool) -> Result<bool, RingError> {
        if on {
            self.ring.enable_interrupts()
        } else {
            self.ring.disable_interrupts()?;
            Ok(false)
        }
    }
    #[inline]
    fn take_kick(&mut self) -> bool {
        !M::COHERENT && core::mem::take(&mut self.kick)
    }
}

impl<'m, M: SharedMemory + ?Sized + 'm, E: Endian, const NUM: usize> Halves<'m>
    for MasterRings<'m, M, E, NUM>
{
    type Mem = M;
    type Order = E;
    type Tx = MasterTx<'m, M, E, NUM>;
    type Rx = MasterRx<'m, M, E, NUM>;

    fn into_halves(self) -> (Self::Tx, Self::Rx) {
        (self.tx, self.rx)
    }

    fn from_halves(tx: Self::Tx, rx: Self::Rx) -> Self {
        Self { tx, rx }
    }

    fn unconfirmed_tx(&mut self) -> u32 {
        // Returned but not yet reaped counts as confirmed; at most NUM
        // entries, and a lying ring stops the loop with an error.
        for _ in 0..NUM {
            match self.tx.ring.pop_used_slot() {
                Ok(Some(used)) | Err((_, Some(used))) => self.tx.spare.push(TxSlot {
                    token: used.id,
                    offset: used.offset,
                    room: self.tx.buf_size,
                }),
                Ok(None) => break,
                Err((e, None)) if skipped_entry(&e) => {}
                Err(_) => break,
            }
        }
        u32::from(self.tx.ring.in_flight()) + u32::from(self.tx.ring.unpublished())
    }

    fn untaken_rx(&mut self) -> u32 {
        self.rx.ring.pending_used().map_or(0, u32::from)
    }
}

#[cfg(test)]
mod tests_fast10 {
    //! The one-pass copying send and receive ([`TxRing::take_with`],
    //! [`RxRing::take_with`]) on the paths beside the usual one: a
    //! message too long for its buffer (kept as the spare, then sent), a
    //! receive buffer too short (the message kept, then delivered), an
    //! unbound address (skipped, counted), in both directions.
    use core::ptr::NonNull;

    use ipc_traits::cache::Coherent;
    use ipc_traits::mailbox::{ErrorType, Notify, QueueId};
    use ipc_traits::shm::RawRegion;
    use vring::{BufferArea, Layout, Legacy, Suppression};

    use super::{MasterConfig, MasterRings, QueueIds, RemoteConfig, RemoteRings, RemoteTables};
    use crate::link::{Link, Sent, Storage};
    use crate::wire::ADDR_ANY;
    use crate::Error;

    const NUM: usize = 4;
    const BUF: usize = 512;
    const V1: usize = 512;
    const POOL: usize = 1024;
    const SIZE: usize = POOL + 2 * NUM * BUF;

    #[derive(Clone, Copy, Default)]
    struct Quiet;
    impl ErrorType for Quiet {
        type Error = core::convert::Infallible;
    }
    impl Notify for Quiet {
        fn notify(&mut self, _: QueueId) -> Result<(), Self::Error> {
            Ok(())
        }
    }

    #[repr(C, align(4096))]
    struct Backing([u8; SIZE]);

    #[test]
    fn one_pass_send_and_receive_keep_what_does_not_fit() {
        for suppression in [Suppression::Flags, Suppression::EventIdx] {
            let mut b = Box::new(Backing([0; SIZE]));
            let base = NonNull::new(b.0.as_mut_ptr()).unwrap();
            // SAFETY: the backing outlives the region; only it is used.
            let shm = unsafe { RawRegion::new(base, SIZE, 0x4000_0000, Coherent) }.unwrap();
            let (vring0, vring1) = (
                Layout::legacy_at(0, NUM as u16, 64),
                Layout::legacy_at(V1, NUM as u16, 64),
            );
            let mcfg = MasterConfig {
                vring0,
                vring1,
                pool: POOL,
                buf_size: BUF,
                suppression,
                queues: QueueIds::DEFAULT,
                rpmsg_lite_compat: false,
            };
            // SAFETY: the pool belongs to the master.
            let mrings = unsafe { MasterRings::<_, Legacy, NUM>::new(&shm, mcfg) }.unwrap();
            let rcfg = RemoteConfig {
                vring0,
                vring1,
                vring0_buffers: BufferArea::new(POOL, NUM * BUF),
                vring1_buffers: BufferArea::new(POOL + NUM * BUF, NUM * BUF),
                suppression,
                queues: QueueIds::DEFAULT,
            };
            let tables: &'static RemoteTables<NUM> = Box::leak(Box::default());
            // SAFETY: disjoint areas reached only through the rings.
            let rrings = unsafe { RemoteRings::<_, Legacy, NUM>::new(&shm, rcfg, tables) }.unwrap();
            let (mut ms, mut rs) = (Storage::<2>::new(), Storage::<2>::new());
            let mut master = Link::new(mrings, Quiet, &mut ms);
            let mut remote = Link::new(rrings, Quiet, &mut rs);
            let mep = master.bind(ADDR_ANY).unwrap();
            let rep = remote.bind(ADDR_ANY).unwrap();
            let (mut mtx, mut mrx) = master.split();
            let (mut rtx, mut rrx) = remote.split();
            let mut out = [0u8; 496];
            for round in 0..3u8 {
                // Each way: too long, then a full ring's worth.
                assert_eq!(
                    rtx.try_send(&rep, mep.addr(), &[0; 497]),
                    Err(Error::TooLong)
                );
                assert_eq!(
                    mtx.try_send(&mep, rep.addr(), &[0; 497]),
                    Err(Error::TooLong)
                );
                for k in 0..NUM as u8 {
                    let msg = [round, k, 7];
                    assert_eq!(rtx.try_send(&rep, mep.addr(), &msg), Ok(Sent::Sent));
                    assert_eq!(mtx.try_send(&mep, rep.addr(), &msg), Ok(Sent::Sent));
                }
                // To nobody: skipped on the way to the next.
                assert_eq!(rtx.try_send(&rep, 999, b"x"), Ok(Sent::NoBuffer));
                for k in 0..NUM as u8 {
                    let msg = [round, k, 7];
                    assert_eq!(rrx.try_recv(&mut out[..2]), Err(Error::TooLong));
                    assert_eq!(mrx.try_recv(&mut out[..2]), Err(Error::TooLong));
                    let r = rrx.try_recv(&mut out).unwrap().unwrap();
                    assert_eq!(
                        (r.src, r.dst, &out[..r.len]),
                        (mep.addr(), rep.addr(), &msg[..])
                    );
                    let r = mrx.try_recv(&mut out).unwrap().unwrap();
                    assert_eq!(
                        (r.src, r.dst, &out[..r.len]),
                        (rep.addr(), mep.addr(), &msg[..])
                    );
                }
                assert_eq!(rrx.try_recv(&mut out).unwrap(), None);
                assert_eq!(mrx.try_recv(&mut out).unwrap(), None);
                // One to an unbound address, then one bound: the first is
                // skipped and counted.
                assert_eq!(rtx.try_send(&rep, 999, b"x"), Ok(Sent::Sent));
                assert_eq!(rtx.try_send(&rep, mep.addr(), b"y"), Ok(Sent::Sent));
                let r = mrx.try_recv(&mut out).unwrap().unwrap();
                assert_eq!(&out[..r.len], b"y");
                assert_eq!(mrx.stats().unbound, u32::from(round) + 1);
            }
            assert_eq!(rtx.stats().messages, 3 * (NUM as u32 + 2));
            assert_eq!(mrx.stats().messages, 3 * (NUM as u32 + 1));
            assert_eq!(rrx.stats().messages, 3 * NUM as u32);
            assert_eq!(rtx.stats().buffer_waits, 3);
        }
    }
}
