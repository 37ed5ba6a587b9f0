//! Buffer type-states: the cache rules of shared buffers, in the type.
//!
//! A transmit buffer goes `Dirty` (the CPU fills it) → `Clean` (written back,
//! publishable, no mutable access any more) → published (a [`PublishedSlot`]
//! record owned by the ring). A receive buffer goes `Received` (the peer says
//! it wrote it; not readable) → `Invalidated` (stale lines discarded) →
//! `Readable` (the peer's length was checked against the slot).
//!
//! ```text
//!  new_unchecked ─► Dirty ──clean──► Clean ──into_published──► PublishedSlot
//!                     ▲                                           │ (ring)
//!                     └──recycle── Readable ◄─validate── Invalidated ◄─invalidate── Received
//! ```
//!
//! Two rules follow from the cache model and are enforced by these types:
//!
//! 1. **Every** buffer handed to the peer, including an empty receive buffer,
//!    must be `Clean`: a dirty line evicted later would overwrite what the
//!    peer wrote.
//! 2. Nothing from the peer is read before it is invalidated and its length
//!    validated.
//!
//! On a coherent system ([`crate::cache::Coherent`]) every state is a
//! zero-sized marker and every transition compiles to nothing
//! ([`SharedMemory::COHERENT`]).
//!
//! # Design notes
//!
//! - The issue sketch reads `clean(&cache)`. Here the cache comes from the
//!   [`SharedMemory`] the buffer borrows (which was built with the core's
//!   cache maintenance), so a buffer cannot be cleaned with the wrong cache.
//! - A slot's range is checked once, at construction, against a window whose
//!   length never changes; later transitions can only fail if the
//!   implementation breaks that contract, and then they hand the buffer back
//!   with the error (nothing is lost).
//! - Not enforced by types: that two handles never cover the same slot. The
//!   constructors are `unsafe` for that reason; `vring` and `rpmsg` build
//!   buffers only from slots they own.
#![allow(unsafe_code)]

use core::fmt;
use core::marker::PhantomData;

use crate::bytes::{ShmSlice, ShmSliceMut};
use crate::sealed::Sealed;
use crate::shm::{check_align, check_range, DirectMemory, ErrorType, SharedMemory, ShmError};

/// A buffer state (sealed).
pub trait BufState: Sealed {
    /// Whether this core may hold dirty lines of the slot in this state
    /// (only [`Dirty`]); the handle's extent then counts the bytes that
    /// may be dirty, otherwise it counts invalidated bytes or nothing.
    #[doc(hidden)]
    const MAY_BE_DIRTY: bool = false;
}

macro_rules! states {
    ($($(#[$m:meta])* $name:ident $({ $($body:tt)* })?),+) => {$(
        $(#[$m])*
        #[derive(Debug)]
        pub struct $name {
            _private: (),
        }
        impl Sealed for $name {}
        impl BufState for $name { $($($body)*)? }
    )+};
}

states! {
    /// The CPU may be writing it; local cache lines may be dirty (type state).
    Dirty { const MAY_BE_DIRTY: bool = true; },
    /// Written back to memory; may be handed to the peer, no longer writable
    /// (type state).
    Clean,
    /// The peer reports having written it; local lines may be stale; not
    /// readable (type state).
    Received,
    /// Stale local lines discarded; the peer's length is not yet checked
    /// (type state).
    Invalidated,
    /// Invalidated and length-checked: readable (type state).
    Readable
}

/// States in which this core holds no dirty line of the slot (sealed):
/// [`Clean`] (written back), and every receive state. A [`Received`] slot
/// was handed to the peer clean or never written by this core (the
/// [`ShmBuf::new_unchecked`] contract of `Received`), and no state from
/// `Received` on can write it (`invalidate` even discarded this core's
/// lines). Such a buffer can go back to the peer with no write-back:
/// [`ShmBuf::into_empty`].
pub trait Unwritten: BufState {}
impl Unwritten for Clean {}
impl Unwritten for Received {}
impl Unwritten for Invalidated {}
impl Unwritten for Readable {}

/// One line-aligned, line-padded slot of shared memory, in state `S`.
///
/// `'m` borrows the window, so a buffer can never outlive the memory it
/// names; transitions consume the buffer, so a stale state cannot be used
/// after a transition.
#[must_use = "a buffer that is dropped is not returned to its pool"]
pub struct ShmBuf<'m, M: ?Sized, S: BufState> {
    mem: &'m M,
    offset: usize,
    capacity: usize,
    len: usize,
    /// Bytes `..extent` of the slot are what maintenance covers: in
    /// [`Dirty`], what this core may have dirtied since the slot was last
    /// clean (cleaned by [`ShmBuf::clean`]); in [`Invalidated`] and
    /// [`Readable`], what was invalidated since the peer handed the slot
    /// over (reads stay inside it); 0 otherwise. On coherent memory
    /// ([`SharedMemory::COHERENT`]) nothing is maintained and it is not
    /// kept up to date. Always `<= capacity`.
    extent: usize,
    _state: PhantomData<S>,
}

impl<M: ?Sized, S: BufState> fmt::Debug for ShmBuf<'_, M, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShmBuf")
            .field("offset", &self.offset)
            .field("capacity", &self.capacity)
            .field("len", &self.len)
            .field("extent", &self.extent)
            .field("state", &core::any::type_name::<S>())
            .finish()
    }
}

impl<'m, M: SharedMemory + ?Sized, S: BufState> ShmBuf<'m, M, S> {
    fn into_state<T: BufState>(self) -> ShmBuf<'m, M, T> {
        ShmBuf {
            mem: self.mem,
            offset: self.offset,
            capacity: self.capacity,
            len: self.len,
            extent: self.extent,
            _state: PhantomData,
        }
    }

    /// Checks a slot and builds the handle, with maintenance extent
    /// `extent`.
    fn checked(
        mem: &'m M,
        offset: usize,
        capacity: usize,
        extent: usize,
    ) -> Result<Self, ShmError> {
        check_range(mem.len(), offset, capacity)?;
        check_align(offset, M::LINE)?;
        check_align(capacity, M::LINE)?;
        Ok(Self {
            mem,
            offset,
            capacity,
            len: 0,
            extent: extent.min(capacity),
            _state: PhantomData,
        })
    }

    /// The line-rounded end of `0..end` within the slot (`end <= capacity`,
    /// and the capacity is line-aligned, so the result is too).
    #[inline]
    fn line_end(end: usize) -> usize {
        let mask = M::LINE - 1;
        (end + mask) & !mask
    }

    /// Builds the handle of a slot whose range and alignment the caller has
    /// already checked (a ring rebuilding a handle from its own record, or
    /// from a descriptor it validated): no check, no `Result`.
    ///
    /// The handle starts with nothing to maintain: in [`Dirty`], clean
    /// writes back only what is written through it.
    ///
    /// # Safety
    ///
    /// As for [`ShmBuf::new_unchecked`] (exclusive ownership of the slot in
    /// state `S`), and in addition what `new_unchecked` checks:
    /// `offset + capacity <= mem.len()`, and `offset` and `capacity` are
    /// multiples of `M::LINE`. This core holds no dirty line of the slot
    /// (it handed the slot over [`Clean`] or never wrote it: the
    /// [`Unwritten`] promise, which a [`Dirty`] handle built here relies on
    /// too).
    #[inline]
    pub unsafe fn from_validated_slot(mem: &'m M, offset: usize, capacity: usize) -> Self {
        Self {
            mem,
            offset,
            capacity,
            len: 0,
            extent: 0,
            _state: PhantomData,
        }
    }

    /// The slot's offset in the window.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// The slot size in bytes.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Discards the contents and starts over as a buffer to fill. A
    /// [`Dirty`] buffer keeps what it may have dirtied (the next clean
    /// writes it back); from any other state nothing is dirty.
    pub fn recycle(self) -> ShmBuf<'m, M, Dirty> {
        let mut buf = self.into_state::<Dirty>();
        buf.len = 0;
        if !S::MAY_BE_DIRTY {
            buf.extent = 0;
        }
        buf
    }
}

impl<'m, M: SharedMemory + ?Sized, S: Unwritten> ShmBuf<'m, M, S> {
    /// Starts over as an empty buffer to hand to the peer again, with no
    /// maintenance: no line of the slot is dirty in this core's cache
    /// ([`Unwritten`]), so a write-back would write nothing, and the next
    /// time the peer fills the slot it is invalidated before it is read.
    /// (A receive buffer posted again, as Linux's `rpmsg_recv_done` does.)
    pub fn into_empty(self) -> ShmBuf<'m, M, Clean> {
        let mut buf = self.into_state::<Clean>();
        buf.len = 0;
        buf.extent = 0;
        buf
    }
}

impl<'m, M: SharedMemory + ?Sized> ShmBuf<'m, M, Dirty> {
    /// A buffer to fill over the slot `offset..offset + capacity`.
    ///
    /// Nothing is known about what this core wrote to the slot before, so
    /// the first [`ShmBuf::clean`] writes back the whole slot.
    ///
    /// # Errors
    ///
    /// The slot is outside the window or not aligned to `M::LINE` at both
    /// ends (maintenance would touch a neighbour).
    ///
    /// # Safety
    ///
    /// The caller owns the slot exclusively for the lifetime of the buffer
    /// and every buffer derived from it: no other `ShmBuf` covers any of its
    /// bytes, nothing else on this core reaches the slot through the window
    /// (`SharedMemory::read`/`write` on it) while the buffer lives, and the
    /// peer does not own it.
    pub unsafe fn new_unchecked(
        mem: &'m M,
        offset: usize,
        capacity: usize,
    ) -> Result<Self, ShmError> {
        Self::checked(mem, offset, capacity, capacity)
    }

    /// The bytes written so far (the length that will be published).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing has been written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies `bytes` to `at` in the slot and extends the length to cover it.
    ///
    /// # Errors
    ///
    /// [`ShmError::OffsetOutsideWindow`] if `at + bytes.len()` exceeds the
    /// slot (nothing is written).
    pub fn write(&mut self, at: usize, bytes: &[u8]) -> Result<(), M::Error> {
        check_range(self.capacity, at, bytes.len())?;
        // SAFETY: `at + len <= capacity` (checked above) and the slot lies in
        // the window (checked when the handle was built).
        unsafe { self.mem.write_unchecked(self.offset + at, bytes) }?;
        let end = at + bytes.len();
        self.len = self.len.max(end);
        if !M::COHERENT {
            // Nothing to write back on coherent memory.
            self.extent = self.extent.max(end);
        }
        Ok(())
    }

    /// Sets the length to publish.
    ///
    /// # Errors
    ///
    /// [`ShmError::OffsetOutsideWindow`] if `len` exceeds the slot.
    pub fn set_len(&mut self, len: usize) -> Result<(), ShmError> {
        check_range(self.capacity, 0, len)?;
        self.len = len;
        Ok(())
    }

    /// [`ShmBuf::write`] of `head` at 0, [`ShmBuf::set_len`] to `len` and
    /// [`ShmBuf::clean`] in one step, with one check: what a transmit path
    /// does once the body is in place (a message header written last, then
    /// the length to publish).
    ///
    /// # Errors
    ///
    /// `head` or `len` exceeds the slot (nothing is written), or
    /// maintenance failed; the buffer is handed back with the error (with
    /// `head` written if only maintenance failed).
    #[inline]
    pub fn seal(
        mut self,
        head: &[u8],
        len: usize,
    ) -> Result<ShmBuf<'m, M, Clean>, (Self, M::Error)> {
        if head.len() > self.capacity || len > self.capacity {
            let e = ShmError::OffsetOutsideWindow;
            return Err((self, e.into()));
        }
        // SAFETY: `head.len() <= capacity` (checked above) and the slot lies
        // in the window (checked when the handle was built).
        if let Err(e) = unsafe { self.mem.write_unchecked(self.offset, head) } {
            return Err((self, e));
        }
        self.len = len;
        if !M::COHERENT {
            self.extent = self.extent.max(head.len());
        }
        self.clean()
    }

    /// Writes back the lines this core may have dirtied (those covering
    /// what was written through the handle, not the whole slot) and makes
    /// the buffer publishable.
    ///
    /// # Errors
    ///
    /// Maintenance failed (only if the memory breaks its contract); the
    /// buffer is handed back unchanged with the error.
    pub fn clean(self) -> Result<ShmBuf<'m, M, Clean>, (Self, M::Error)> {
        if M::COHERENT || self.extent == 0 {
            let mut buf = self.into_state::<Clean>();
            buf.extent = 0;
            return Ok(buf);
        }
        match self.mem.clean(self.offset, Self::line_end(self.extent)) {
            Ok(()) => {
                let mut buf = self.into_state::<Clean>();
                buf.extent = 0;
                Ok(buf)
            }
            Err(e) => Err((self, e)),
        }
    }
}

impl<'m, M: DirectMemory + ?Sized> ShmBuf<'m, M, Dirty> {
    /// Bytes `at..at + len` of the slot as a writable view, for zero-copy
    /// filling; the length to publish is set with [`ShmBuf::set_len`] (the
    /// range counts as written for [`ShmBuf::clean`]).
    ///
    /// # Errors
    ///
    /// [`ShmError::OffsetOutsideWindow`] if the range exceeds the slot.
    pub fn view_mut(&mut self, at: usize, len: usize) -> Result<ShmSliceMut<'_>, ShmError> {
        check_range(self.capacity, at, len)?;
        if !M::COHERENT {
            self.extent = self.extent.max(at + len);
        }
        // SAFETY: `at + len <= capacity` (checked) and the slot lies inside
        // the window (checked at construction, window length immutable);
        // `as_ptr` is valid for the window, which holds no Rust object
        // (`DirectMemory` contract); the slot is owned by this buffer alone
        // (`new_unchecked` contract) and `&mut self` keeps a second view
        // away while this one lives.
        Ok(unsafe { ShmSliceMut::new(self.mem.as_ptr().add(self.offset + at), len) })
    }
}

impl<'m, M: SharedMemory + ?Sized> ShmBuf<'m, M, Clean> {
    /// The length that will be published.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer is empty (a receive buffer being handed out).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The slot's address as the peer sees it (what goes into the
    /// descriptor).
    pub fn peer_addr(&self) -> u64 {
        self.mem.peer_base() + self.offset as u64
    }

    /// Hands the slot to the ring: the only way to obtain the record a ring
    /// publishes.
    pub fn into_published(self) -> PublishedSlot {
        PublishedSlot {
            offset: self.offset,
            capacity: self.capacity,
            len: self.len,
            peer_addr: self.peer_addr(),
        }
    }
}

impl<'m, M: SharedMemory + ?Sized> ShmBuf<'m, M, Received> {
    /// A buffer the peer reports having written.
    ///
    /// # Errors
    ///
    /// As for [`ShmBuf::new_unchecked`] on `Dirty`.
    ///
    /// # Safety
    ///
    /// As for [`ShmBuf::new_unchecked`] on `Dirty`: the slot came back from
    /// the peer (the ring checked it against its own record of what it
    /// published) and is now owned by the caller alone. This core holds no
    /// dirty line of it: it handed the slot to the peer clean, or (a device
    /// reading the peer's buffers) never wrote it ([`Unwritten`]).
    pub unsafe fn new_unchecked(
        mem: &'m M,
        offset: usize,
        capacity: usize,
    ) -> Result<Self, ShmError> {
        Self::checked(mem, offset, capacity, 0)
    }

    /// Discards this core's stale lines for the whole slot.
    ///
    /// # Errors
    ///
    /// Maintenance failed (contract breach of the memory); the buffer is
    /// handed back.
    pub fn invalidate(self) -> Result<ShmBuf<'m, M, Invalidated>, (Self, M::Error)> {
        let capacity = self.capacity;
        self.invalidate_prefix(capacity)
    }

    /// Discards this core's stale lines covering the first `len` bytes of
    /// the slot (all of it if `len` exceeds it): what a message of that
    /// length occupies, so a 16-byte message in a 512-byte slot costs one
    /// line, not eight. [`ShmBuf::validate`] and [`ShmBuf::extend_to`]
    /// invalidate more when the peer's length reaches further.
    ///
    /// # Errors
    ///
    /// Maintenance failed (contract breach of the memory); the buffer is
    /// handed back.
    pub fn invalidate_prefix(
        self,
        len: usize,
    ) -> Result<ShmBuf<'m, M, Invalidated>, (Self, M::Error)> {
        let end = Self::line_end(len.min(self.capacity));
        if !M::COHERENT && end > 0 {
            if let Err(e) = self.mem.invalidate(self.offset, end) {
                return Err((self, e));
            }
        }
        let mut buf = self.into_state::<Invalidated>();
        buf.extent = end;
        Ok(buf)
    }
}

impl<'m, M: SharedMemory + ?Sized, S: BufState> ShmBuf<'m, M, S> {
    /// Checks `len` against the slot, invalidates the lines of `..len` not
    /// invalidated yet, and records it as the readable length.
    fn freshen(&mut self, len_from_peer: u32) -> Result<(), crate::Error> {
        let len = match usize::try_from(len_from_peer) {
            Ok(len) if len <= self.capacity => len,
            _ => return Err(crate::Error::LengthOverflow),
        };
        // Coherent memory has nothing to invalidate, and no extent to
        // keep.
        if !M::COHERENT && len > self.extent {
            let end = Self::line_end(len);
            let (at, n) = (self.offset + self.extent, end - self.extent);
            self.mem.invalidate(at, n).map_err(|e| shm_error(&e))?;
            self.extent = end;
        }
        self.len = len;
        Ok(())
    }
}

/// A memory's maintenance error as the crate's error of the same kind.
fn shm_error<E: crate::shm::Error>(e: &E) -> ShmError {
    use crate::shm::ErrorKind;
    match e.kind() {
        ErrorKind::WouldBlock => ShmError::Unavailable,
        ErrorKind::Misaligned => ShmError::Misaligned,
        _ => ShmError::OffsetOutsideWindow,
    }
}

impl<'m, M: SharedMemory + ?Sized> ShmBuf<'m, M, Invalidated> {
    /// Checks the peer's length against the slot; then the buffer is
    /// readable up to that length. Lines of `..len_from_peer` that
    /// [`ShmBuf::invalidate_prefix`] did not cover are invalidated now.
    ///
    /// # Errors
    ///
    /// [`crate::Error::LengthOverflow`] if `len_from_peer` exceeds the slot;
    /// the memory's error by kind if maintenance failed (contract breach of the
    /// memory). The buffer is handed back so it can be recycled, never
    /// lost.
    pub fn validate(
        mut self,
        len_from_peer: u32,
    ) -> Result<ShmBuf<'m, M, Readable>, (Self, crate::Error)> {
        match self.freshen(len_from_peer) {
            Ok(()) => Ok(self.into_state()),
            Err(e) => Err((self, e)),
        }
    }

    /// [`ShmBuf::validate`], a read of the first `H` bytes and
    /// [`ShmBuf::extend_to`] in one step, for a message that starts with a
    /// header saying how long it is: `len_from_peer` is checked against
    /// the slot, the header (which must lie inside `..len_from_peer`) is
    /// read once and given to `frame`, which returns the message's whole
    /// length and what it decoded; that length (at most `len_from_peer`)
    /// becomes the readable length. Lines are invalidated as by the three
    /// steps: the header's, then the rest of the message's.
    ///
    /// # Errors
    ///
    /// `len_from_peer` exceeds the slot or is shorter than `H`, `frame`
    /// refuses the header (`None`) or returns a length past
    /// `len_from_peer` ([`crate::Error::LengthOverflow`] for all of these), or
    /// maintenance failed (the memory's error by kind). The buffer is handed back so
    /// it can be recycled, never lost.
    #[inline]
    pub fn validate_framed<const H: usize, T>(
        mut self,
        len_from_peer: u32,
        frame: impl FnOnce(&[u8; H]) -> Option<(usize, T)>,
    ) -> Result<(ShmBuf<'m, M, Readable>, T), (Self, crate::Error)> {
        let overflow = crate::Error::LengthOverflow;
        let used = match usize::try_from(len_from_peer) {
            Ok(u) if H <= u && u <= self.capacity => u,
            _ => return Err((self, overflow)),
        };
        if let Err(e) = self.freshen(H as u32) {
            return Err((self, e));
        }
        let mut head = [0u8; H];
        // SAFETY: `H <= used <= capacity` (checked above) and the slot lies
        // in the window.
        if let Err(e) = unsafe { self.mem.read_unchecked(self.offset, &mut head) } {
            return Err((self, shm_error(&e)));
        }
        let (end, decoded) = match frame(&head) {
            Some((end, t)) if end <= used => (end, t),
            _ => return Err((self, overflow)),
        };
        // `end <= used <= capacity`: `freshen` only invalidates here.
        match self.freshen(end as u32) {
            Ok(()) => Ok((self.into_state(), decoded)),
            Err(e) => Err((self, e)),
        }
    }
}

impl<'m, M: SharedMemory + ?Sized> ShmBuf<'m, M, Readable> {
    /// Makes the buffer readable up to `len_from_peer` instead (a header
    /// read first says how long the message is): checked against the slot
    /// like [`ShmBuf::validate`], and the lines not invalidated yet are
    /// invalidated now.
    ///
    /// # Errors
    ///
    /// As [`ShmBuf::validate`]; the buffer is handed back unchanged.
    pub fn extend_to(mut self, len_from_peer: u32) -> Result<Self, (Self, crate::Error)> {
        match self.freshen(len_from_peer) {
            Ok(()) => Ok(self),
            Err(e) => Err((self, e)),
        }
    }

    /// The validated length.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the peer sent nothing.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies `dst.len()` bytes from `at` out of the validated part.
    ///
    /// # Errors
    ///
    /// [`ShmError::OffsetOutsideWindow`] if the range exceeds the validated
    /// length.
    pub fn read(&self, at: usize, dst: &mut [u8]) -> Result<(), M::Error> {
        check_range(self.len, at, dst.len())?;
        // SAFETY: `at + len <= self.len <= capacity` (checked above and in
        // `validate`), and the slot lies in the window.
        unsafe { self.mem.read_unchecked(self.offset + at, dst) }
    }
}

impl<'m, M: DirectMemory + ?Sized> ShmBuf<'m, M, Readable> {
    /// The validated bytes, zero-copy, as a view whose accessors copy or
    /// compare ([`ShmSlice`]): the peer may still write the slot, so no
    /// `&[u8]` over it is ever lent.
    pub fn view(&self) -> ShmSlice<'_> {
        // SAFETY: `len <= capacity` (`validate`), the slot lies in
        // the window, which holds no Rust object (`DirectMemory` contract),
        // and is owned by this buffer alone (construction contracts); `&self`
        // ties the view to the buffer, so it cannot outlive the ownership.
        unsafe { ShmSlice::new(self.mem.as_ptr().add(self.offset), self.len) }
    }
}

impl<M: ?Sized, S: BufState> ErrorType for ShmBuf<'_, M, S> {
    type Error = crate::Error;
}

/// The ring's record of a slot handed to the peer.
///
/// Not `Clone`, and only [`ShmBuf::into_published`] (on a `Clean` buffer)
/// builds one: one record per published slot. The ring keeps it (its trusted
/// shadow) and compares everything the peer reports against it.
#[derive(Debug, PartialEq, Eq)]
pub struct PublishedSlot {
    offset: usize,
    capacity: usize,
    len: usize,
    peer_addr: u64,
}

impl PublishedSlot {
    /// Offset of the slot in the window.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// Slot size.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Published length (0 for an empty receive buffer).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the published length is 0 (an empty receive buffer).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The slot's peer address (what goes into the descriptor).
    pub fn peer_addr(&self) -> u64 {
        self.peer_addr
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::Coherent;
    use crate::shm::RawRegion;
    use core::ptr::NonNull;

    #[repr(align(64))]
    struct Backing([u8; 256]);

    fn with_region(f: impl FnOnce(&RawRegion<Coherent>)) {
        let mut b = Backing([0; 256]);
        let base = NonNull::new(b.0.as_mut_ptr()).unwrap();
        // SAFETY: the backing outlives the region; only the region uses it.
        let shm = unsafe { RawRegion::new(base, 256, 0x1000, Coherent) }.unwrap();
        f(&shm);
    }

    #[test]
    fn seal_writes_the_head_publishes_the_length_and_refuses_overruns() {
        with_region(|shm| {
            // SAFETY: the test owns the slot.
            let mut buf = unsafe { ShmBuf::<_, Dirty>::new_unchecked(shm, 64, 64) }.unwrap();
            buf.write(4, b"body").unwrap();
            // A head or a length past the slot: refused, nothing written,
            // the buffer comes back.
            let (buf, _) = buf.seal(&[0xAA; 65], 8).unwrap_err();
            let (buf, _) = buf.seal(b"HEAD", 65).unwrap_err();
            let mut back = [0u8; 8];
            shm.read(64, &mut back).unwrap();
            assert_eq!(&back, b"\0\0\0\0body");
            let slot = buf.seal(b"HEAD", 64).unwrap().into_published();
            assert_eq!((slot.offset(), slot.len()), (64, 64));
            shm.read(64, &mut back).unwrap();
            assert_eq!(&back, b"HEADbody");
        });
    }

    #[test]
    fn validate_framed_reads_the_head_once_and_bounds_the_message() {
        with_region(|shm| {
            shm.write(64, &[4, 0, 0, 0, b'a', b'b', b'c', b'd', b'e'])
                .unwrap();
            // SAFETY: the test owns the slot.
            let rx = |_| unsafe { ShmBuf::<_, Received>::new_unchecked(shm, 64, 64) }.unwrap();
            let frame = |h: &[u8; 4]| Some((4 + usize::from(h[0]), h[0]));
            let buf = rx(()).invalidate_prefix(4).unwrap();
            // Used length past the slot, or shorter than the head: refused.
            let (buf, e) = buf.validate_framed(65, frame).unwrap_err();
            assert!(matches!(e, crate::Error::LengthOverflow));
            let (buf, _) = buf.validate_framed(3, frame).unwrap_err();
            // The head asks for more than the peer reported: refused.
            let (buf, _) = buf.validate_framed(7, frame).unwrap_err();
            // The frame refuses the head.
            let (buf, _) = buf
                .validate_framed(64, |_: &[u8; 4]| None::<(usize, ())>)
                .unwrap_err();
            let (buf, n) = buf.validate_framed(64, frame).unwrap();
            assert_eq!((buf.len(), n), (8, 4));
            let mut out = [0u8; 4];
            buf.read(4, &mut out).unwrap();
            assert_eq!(&out, b"abcd");
            assert!(buf.read(5, &mut out).is_err());
        });
    }

    #[test]
    fn transmit_path_publishes_what_was_written() {
        with_region(|shm| {
            // SAFETY: the test owns the slot.
            let mut buf = unsafe { ShmBuf::<_, Dirty>::new_unchecked(shm, 64, 64) }.unwrap();
            buf.write(0, b"hello").unwrap();
            buf.view_mut(5, 1).unwrap().write_at(0, b"!").unwrap();
            assert!(buf.view_mut(60, 5).is_err());
            buf.set_len(6).unwrap();
            assert!(buf.write(60, b"toolong").is_err());
            let slot = buf.clean().unwrap().into_published();
            assert_eq!(
                slot,
                PublishedSlot {
                    offset: 64,
                    capacity: 64,
                    len: 6,
                    peer_addr: 0x1040
                }
            );
            let mut out = [0u8; 6];
            shm.read(64, &mut out).unwrap();
            assert_eq!(&out, b"hello!");
        });
    }

    #[test]
    fn receive_path_checks_the_peer_length() {
        with_region(|shm| {
            shm.write(128, b"ping").unwrap();
            // SAFETY: the test owns the slot.
            let rx = unsafe { ShmBuf::<_, Received>::new_unchecked(shm, 128, 64) }.unwrap();
            let inv = rx.invalidate().unwrap();
            let (inv, err) = inv.validate(65).unwrap_err();
            assert_eq!(err, crate::Error::LengthOverflow);
            assert_eq!(
                crate::shm::Error::kind(&err),
                crate::shm::ErrorKind::Protocol
            );
            let rd = inv.validate(4).unwrap();
            assert!(rd.view() == *b"ping");
            let mut two = [0u8; 2];
            rd.read(2, &mut two).unwrap();
            assert_eq!(&two, b"ng");
            assert!(rd.read(3, &mut two).is_err());
            let again = rd.recycle();
            assert_eq!((again.len(), again.offset()), (0, 128));
        });
    }

    #[test]
    fn slots_outside_or_across_the_window_are_refused() {
        with_region(|shm| {
            // SAFETY: construction fails before any access.
            assert!(unsafe { ShmBuf::<_, Dirty>::new_unchecked(shm, 224, 64) }.is_err());
            // SAFETY: as above.
            assert!(unsafe { ShmBuf::<_, Received>::new_unchecked(shm, usize::MAX, 2) }.is_err());
        });
    }
}
