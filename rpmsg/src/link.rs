//! The link core as two halves: a transmit half and a receive half that
//! can live in different contexts (the mailbox interrupt receives, a task
//! sends), each owning one ring.
//!
//! ```ignore
//! static STORAGE: StaticCell<Storage<2>> = StaticCell::new();
//! let mut link = Link::new(rings, notifier, STORAGE.init(Storage::new()));
//! let ep = link.bind(ADDR_ANY)?;
//! let (mut tx, mut rx) = link.split();
//! tx.announce(&ep, "rpmsg-echo")?;
//! let mut buf = [0u8; 496];
//! loop {
//!     match rx.try_recv(&mut buf)? {
//!         Some(m) => while tx.try_send(&ep, m.src, &buf[..m.len()])? == Sent::NoBuffer {},
//!         None => wait_for_doorbell(),
//!     }
//! }
//! ```
//!
//! - [`Link<'a, R, N>`](Link): `R` the role's rings
//!   ([`crate::rings::RemoteRings`] or [`crate::rings::MasterRings`] over
//!   their memory), `N` the notifier. Capacities live in a [`Storage`]
//!   declared once (a `static`, or a local of a `main` that never returns);
//!   the link borrows it. No `RefCell`, no `Busy`: [`Link::split`] takes
//!   `&mut self` and hands out a [`Tx`] and an [`Rx`], each `Send` when the
//!   memory is `Sync` and the notifier `Send`.
//! - Receive in one pass: [`Rx::try_recv`] takes one message off the ring,
//!   checks its header, copies the payload out, gives the buffer back and
//!   says for whom it was ([`Received::dst`]): dispatch is the caller's
//!   `match`. [`Rx::try_recv_held`] lends the buffer instead
//!   ([`HeldMessage`], given back when dropped). `Ok(None)` means the ring
//!   is empty and re-armed: sleeping until the doorbell is safe.
//! - Messages for addresses nobody bound (the name-service address 53 too,
//!   unless bound) are counted ([`RxStats::unbound`]), their buffers given
//!   back, and never delivered; a header whose length the buffer cannot
//!   hold likewise ([`RxStats::bad_header`]).
//! - Send by copy ([`Tx::try_send`]) or in place ([`Tx::try_alloc`],
//!   [`TxBuffer`]); no free transmit buffer is [`Sent::NoBuffer`], not an
//!   error, so a loop around `?` keeps going.
//! - The rings: [`crate::rings::RemoteRings`] and
//!   [`crate::rings::MasterRings`] (virtio), or split ownership
//!   ([`crate::split::SplitRings`], each side owning its own region and
//!   sleeping on its own). Split ownership needs the doorbells the mailbox
//!   interrupt took ([`Rx::on_notify`], [`Tx::on_notify`]; virtio rings
//!   ignore them). A side that polls asks the peer not to ring, per half
//!   ([`Rx::set_peer_notifications`], [`Tx::set_peer_notifications`]).
//!
//! # The doorbell of two halves
//!
//! Both halves ring the same notifier (a send; a returned receive buffer
//! the peer waits for). It sits in a `critical_section::Mutex`: a doorbell
//! is rung inside a critical section, and so is the set of doorbells the
//! mailbox refused (full FIFO), which the next doorbell of either half (or
//! [`Tx::flush`] / [`Rx::flush`]) rings first; [`Tx::owes_doorbell`] tells
//! an idle loop not to sleep on one. Only the doorbell is behind it: the
//! rings, buffers and counters of each half are its own, reached through
//! `&mut` without any lock.
//!
//! Interrupt safety: on a single core a critical section masks interrupts
//! (`cortex-m`'s `critical-section-single-core`, `riscv`'s
//! `critical-section-single-hart`), so a receive half in the mailbox
//! interrupt cannot preempt the transmit half in the middle of a doorbell
//! (one MMIO write, a few instructions), and nothing waits: the section
//! never spins on the other half. Across cores the implementation's lock
//! serialises the two. The notifier must be `Send` for the halves to be.
//! The application links one `critical-section` implementation, as for
//! any embedded crate that shares state with an interrupt handler.
//!
//! # Layers
//!
//! What not every application needs sits in layers over the halves, each
//! linked into an image only if the application names it:
//!
//! - [`queues`]: a queue per endpoint, consumed by different tasks
//!   ([`queues::Endpoints`] over an [`Rx`] and a [`queues::Queues`]
//!   storage);
//! - [`ns`]: the directory of the peer's services, fed the messages for
//!   address 53 ([`ns::NsDirectory`]);
//! - [`restart`]: a new session over fresh rings after the peer reset
//!   ([`Link::restart`], [`Link::end_session`], [`restart::Announcements`]
//!   to announce again);
//! - [`watch`]: the unresponsive-peer bound ([`watch::Watchdog`], aged by
//!   ticks);
//! - `asynch` (feature `async`): `recv`/`send` futures on the halves and
//!   the queue layer, woken from the mailbox interrupt.
//!
//! Statistics are not a layer: the halves' counters ([`TxStats`],
//! [`RxStats`]) are an add each per message (callgrind, `bench
//! instr_crate_rpmsg_16_copy`, measured when rpmsg's share was 365: 361
//! with them compiled out), so they stay on and no feature switches them.
#![deny(unsafe_code)]

#[cfg(feature = "async")]
#[cfg_attr(docsrs, doc(cfg(feature = "async")))]
pub mod asynch;
pub mod ns;
pub mod queues;
pub mod restart;
pub mod watch;

use core::cell::{Cell, UnsafeCell};
use core::fmt;
use core::marker::PhantomData;

use critical_section::{CriticalSection, Mutex};

use ipc_traits::bytes::{ShmSlice, ShmSliceMut};
use ipc_traits::mailbox::{Notify, QueueId, QueueSet};
use ipc_traits::shm::{DirectMemory, SharedMemory};

use crate::rings::{
    clean_slot, invalidate_slot, line_end, read_header_words, read_slot, view_slot_mut,
    view_slot_unchecked, write_slot, Halves, RxRing, RxSlot, SendFailure, TxRing, TxSlot,
};
#[cfg(not(feature = "small"))]
use crate::rings::{write_header_words, Passed};
#[cfg(doc)]
use crate::wire::NS_ADDR;
use crate::wire::{
    Header, Name, NsAction, NsMessage, ADDR_ANY, HEADER_LEN, NS_ADDR as NS, RESERVED_ADDRESSES,
};
use crate::Error;

/// An endpoint slot nobody bound.
const FREE: u32 = ADDR_ANY;

/// What a link needs beyond its rings, sized once: `EPS` local endpoints.
/// Plain data (no memory or notifier type in it), so it can be a `static`
/// (`StaticCell<Storage<4>>`, embassy's `StackResources` pattern) that the
/// link borrows.
#[derive(Debug, Clone)]
pub struct Storage<const EPS: usize> {
    addrs: [u32; EPS],
}

impl<const EPS: usize> Storage<EPS> {
    /// Empty storage: no endpoint bound.
    pub const fn new() -> Self {
        Self { addrs: [FREE; EPS] }
    }
}

impl<const EPS: usize> Default for Storage<EPS> {
    fn default() -> Self {
        Self::new()
    }
}

/// A bound local address. Not `Clone`: one handle per binding, given back
/// to [`Link::unbind`].
#[derive(Debug, PartialEq, Eq)]
pub struct Endpoint {
    addr: u32,
}

impl Endpoint {
    /// The local address.
    pub fn addr(&self) -> u32 {
        self.addr
    }
}

/// What [`Rx::try_recv`] delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// The local address it was sent to (bound on this link).
    pub dst: u32,
    /// The sender's address.
    pub src: u32,
    /// Payload bytes copied.
    pub len: usize,
}

/// Whether a send went out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "`NoBuffer` means the message was not sent"]
pub enum Sent {
    /// The message is in the ring (and the doorbell rung if the peer asked).
    Sent,
    /// No transmit buffer was free: nothing was sent, try again later (the
    /// peer gives buffers back as it reads). Counted in
    /// [`TxStats::buffer_waits`].
    NoBuffer,
}

/// Counters of the transmit half (wrapping).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TxStats {
    /// Messages sent (name-service messages included). With the feature
    /// `stats`.
    #[cfg(feature = "stats")]
    pub messages: u32,
    /// Send attempts that found no free transmit buffer.
    pub buffer_waits: u32,
    /// Doorbells rung by this half (its own and those the other half
    /// left). With the feature `stats`.
    #[cfg(feature = "stats")]
    pub doorbells: u32,
    /// Doorbells the mailbox refused, kept owed for a retry.
    pub doorbells_deferred: u32,
}

/// Counters of the receive half (wrapping).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RxStats {
    /// Messages delivered. With the feature `stats`.
    #[cfg(feature = "stats")]
    pub messages: u32,
    /// Messages to an address nobody bound: buffer given back, not
    /// delivered.
    pub unbound: u32,
    /// Messages whose header failed validation (length beyond what the
    /// peer reported or the buffer holds): buffer given back, not
    /// delivered.
    pub bad_header: u32,
    /// Received buffers the ring refused to take back (each is lost to the
    /// peer's pool; the first makes [`Link::is_broken`] true).
    pub return_failures: u32,
    /// Doorbells rung by this half (its own and those the other half
    /// left). With the feature `stats`.
    #[cfg(feature = "stats")]
    pub doorbells: u32,
    /// Doorbells the mailbox refused, kept owed for a retry.
    pub doorbells_deferred: u32,
}

/// `v`, hidden from the optimiser with the feature `small` (see
/// [`RxStats`]'s `zero`), as it is otherwise.
#[inline(always)]
fn hide(v: u32) -> u32 {
    if cfg!(feature = "small") {
        core::hint::black_box(v)
    } else {
        v
    }
}

impl TxStats {
    /// All counters at zero. Nothing hidden (unlike [`RxStats`]'s
    /// `zero`): the one hidden receive counter already splits the link's
    /// zero fields into runs short of a `memset` call, and a second
    /// hidden value only costs its own stores (minimal-remote: 6 bytes).
    #[inline(always)]
    fn zero() -> Self {
        Self {
            #[cfg(feature = "stats")]
            messages: 0,
            buffer_waits: 0,
            #[cfg(feature = "stats")]
            doorbells: 0,
            doorbells_deferred: 0,
        }
    }
}

impl RxStats {
    /// All counters at zero, with the feature `small` one the compiler
    /// cannot see as zero ([`hide`]): it would otherwise fuse them with
    /// the neighbouring zero fields (the transmit counters, the rings'
    /// marks) into a zeroing of more than 16 bytes, which is a `memset`
    /// call on a microcontroller (more than four stores) and links
    /// `memclr` into an image that otherwise does without
    /// (firmware/README.md "Size"; minimal-remote: 160 bytes more).
    #[inline(always)]
    fn zero() -> Self {
        Self {
            #[cfg(feature = "stats")]
            messages: 0,
            unbound: 0,
            bad_header: hide(0),
            return_failures: 0,
            #[cfg(feature = "stats")]
            doorbells: 0,
            doorbells_deferred: 0,
        }
    }
}

/// Doorbells rung and refused by one [`Bell`] call.
#[derive(Clone, Copy, Default)]
struct Kicks {
    rung: u32,
    deferred: u32,
}

/// The notifier shared by the two halves (module docs, "The doorbell of
/// two halves").
struct Bell<N> {
    /// Doorbells the mailbox refused, owed to the peer (queue bits, as
    /// [`QueueSet::bits`]).
    owed: Mutex<Cell<u32>>,
    notify: Mutex<UnsafeCell<N>>,
}

impl<N: Notify> Bell<N> {
    const fn new(notify: N) -> Self {
        Self {
            owed: Mutex::new(Cell::new(0)),
            notify: Mutex::new(UnsafeCell::new(notify)),
        }
    }

    fn into_inner(self) -> N {
        self.notify.into_inner().into_inner()
    }

    /// Forgets the doorbells owed (the session they were for ended).
    fn forget(&self) {
        critical_section::with(|cs| self.owed.borrow(cs).set(0));
    }

    fn owes(&self) -> bool {
        critical_section::with(|cs| self.owed.borrow(cs).get() != 0)
    }

    /// Rings queue `q` and every doorbell owed: the per-message doorbell,
    /// one notification when none is owed (the usual case), else as
    /// [`Bell::ring`].
    /// With the feature `small`, [`Bell::ring`] itself (one copy of the
    /// notification in the image, not a second one for this path).
    #[cfg(feature = "small")]
    #[inline(always)]
    fn ring_one(&self, q: QueueId) -> Kicks {
        self.ring(q.bit())
    }

    #[cfg(not(feature = "small"))]
    #[inline(always)]
    fn ring_one(&self, q: QueueId) -> Kicks {
        critical_section::with(|cs| {
            let owed = self.owed.borrow(cs);
            if owed.get() != 0 {
                return self.ring_in(cs, q.bit());
            }
            // SAFETY: as in `ring_in`.
            #[allow(unsafe_code)]
            let n = unsafe { &mut *self.notify.borrow(cs).get() };
            if n.notify(q).is_ok() {
                Kicks {
                    rung: 1,
                    deferred: 0,
                }
            } else {
                owed.set(q.bit());
                Kicks {
                    rung: 0,
                    deferred: 1,
                }
            }
        })
    }

    /// Rings the queues in `todo` and every doorbell owed.
    fn ring(&self, todo: u32) -> Kicks {
        critical_section::with(|cs| self.ring_in(cs, todo))
    }

    /// [`Bell::ring`] inside the critical section `cs`.
    fn ring_in(&self, cs: CriticalSection<'_>, todo: u32) -> Kicks {
        let owed = self.owed.borrow(cs);
        let mut kicks = Kicks::default();
        let mut refused = 0;
        let notify = self.notify.borrow(cs).get();
        for q in QueueSet::from_bits(todo | owed.get()).iter() {
            // SAFETY: `notify` is only reached inside a critical section
            // (`cs`), which no other context can enter meanwhile, and
            // `Notify::notify` cannot reach this bell: the reference is
            // unique while it lives.
            #[allow(unsafe_code)]
            let n = unsafe { &mut *notify };
            if n.notify(q).is_ok() {
                kicks.rung = kicks.rung.wrapping_add(1);
            } else {
                kicks.deferred = kicks.deferred.wrapping_add(1);
                refused |= q.bit();
            }
        }
        owed.set(refused);
        kicks
    }
}

/// A link to one peer (see the module docs).
pub struct Link<'a, R: Halves<'a>, N> {
    tx: TxState<'a, R>,
    rx: RxState<'a, R>,
    bell: Bell<N>,
    eps: &'a mut [u32],
    next_dynamic: u32,
}

struct TxState<'a, R: Halves<'a>> {
    ring: R::Tx,
    stats: TxStats,
}

// `repr(C)`, the ring first: the fields the receive path reaches through
// one base register stay at short offsets (minimal-remote: 2 bytes; the
// rings' own small fields lead for the same reason).
#[repr(C)]
struct RxState<'a, R: Halves<'a>> {
    ring: R::Rx,
    stats: RxStats,
    /// A message [`Rx::try_recv`] could not copy (`out` too short), kept
    /// for the next call.
    kept: Option<Msg<'a, R::Mem>>,
    /// A received buffer could not be given back.
    return_failed: bool,
}

/// A validated message off the receive ring: its slot, whose lines up to
/// the message's end are invalidated, and what the header says (checked:
/// `HEADER_LEN + len` is within what the peer reported).
struct Msg<'a, M: ?Sized> {
    slot: RxSlot,
    dst: u32,
    src: u32,
    /// The payload length.
    len: usize,
    _mem: PhantomData<&'a M>,
}

impl<M: SharedMemory + ?Sized> Msg<'_, M> {
    /// The payload length.
    #[inline(always)]
    fn len(&self) -> usize {
        self.len
    }

    /// Copies payload bytes `at..at + out.len()` (inside the payload:
    /// checked by the caller) out of `mem`, the ring's memory.
    #[inline(always)]
    fn read(&self, mem: &M, at: usize, out: &mut [u8]) -> Result<(), Error> {
        read_slot(mem, &self.slot, HEADER_LEN + at, out).map_err(|e| mem_error(&e))
    }

    /// Copies the first `out.len()` payload bytes out of `mem`, the ring's
    /// memory; [`Error::TooLong`] past the payload (the caller's own check,
    /// which this one repeats and the compiler folds).
    #[inline(always)]
    fn read_head(&self, mem: &M, out: &mut [u8]) -> Result<(), Error> {
        if out.len() > self.len {
            return Err(Error::TooLong);
        }
        // SAFETY: the ring validated the slot against `mem` (`offset + len`
        // inside the window), and `HEADER_LEN + self.len` is within what the
        // peer reported (`Rx::frame` checked it when it made this message),
        // so `HEADER_LEN..HEADER_LEN + out.len()` lies inside the slot.
        #[allow(unsafe_code)]
        let read = unsafe { mem.read_unchecked(self.slot.offset + HEADER_LEN, out) };
        read.map_err(|e| mem_error(&e))
    }
}

impl<'a, R: Halves<'a>, N> fmt::Debug for Link<'a, R, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Link")
            .field("endpoints", &self.eps)
            .field("tx", &self.tx.stats)
            .field("rx", &self.rx.stats)
            .finish_non_exhaustive()
    }
}

impl<'a, R: Halves<'a>, N: Notify> Link<'a, R, N> {
    /// A link over `rings` that rings `notify`, with its endpoints in
    /// `storage`.
    pub fn new<const EPS: usize>(rings: R, notify: N, storage: &'a mut Storage<EPS>) -> Self {
        let (tx, rx) = rings.into_halves();
        let link = Self {
            tx: TxState {
                ring: tx,
                stats: TxStats::zero(),
            },
            rx: RxState {
                ring: rx,
                stats: RxStats::zero(),
                kept: None,
                return_failed: false,
            },
            bell: Bell::new(notify),
            eps: &mut storage.addrs,
            next_dynamic: RESERVED_ADDRESSES,
        };
        // Freed after the fields are set: the stores stay next to a
        // `bind` that follows, which then reads them back at build time
        // (nothing the compiler must assume writes memory in between, such
        // as the counters' `hide`), with no search of the storage.
        link.eps.fill(FREE);
        link
    }

    /// The rings and the notifier back (a message kept by a too-short
    /// [`Rx::try_recv`] goes back to the peer first).
    pub fn into_parts(mut self) -> (R, N) {
        if let Some(m) = self.rx.kept.take() {
            let _returned: bool = self.rx.ring.release(m.slot).is_ok();
        }
        (
            R::from_halves(self.tx.ring, self.rx.ring),
            self.bell.into_inner(),
        )
    }

    /// Binds a local endpoint at `addr`, or at the next free address from
    /// 1024 for [`ADDR_ANY`].
    ///
    /// # Errors
    ///
    /// [`Error::TableFull`]: the storage is full; [`Error::AddressInUse`]:
    /// `addr` is bound already.
    pub fn bind(&mut self, addr: u32) -> Result<Endpoint, Error> {
        let slot = self
            .eps
            .iter()
            .position(|a| *a == FREE)
            .ok_or(Error::TableFull)?;
        let addr = if addr == ADDR_ANY {
            self.free_dynamic()?
        } else if self.eps.contains(&addr) {
            return Err(Error::AddressInUse);
        } else {
            addr
        };
        self.eps[slot] = addr;
        Ok(Endpoint { addr })
    }

    #[allow(
        clippy::search_is_some,
        reason = "`position` is read through at build time where `any` and `contains` are not"
    )]
    fn free_dynamic(&mut self) -> Result<u32, Error> {
        // At most len + 1 probes: only len addresses can be taken.
        for _ in 0..=self.eps.len() {
            let candidate = self.next_dynamic;
            self.next_dynamic = match candidate.checked_add(1) {
                Some(n) if n != ADDR_ANY => n,
                _ => RESERVED_ADDRESSES,
            };
            // `position`, not `contains`: the compiler reads the search
            // through when the storage is known (a bind right after
            // `Link::new`), as it does `bind`'s search for a free slot,
            // where the slice `contains` stays a loop.
            if self.eps.iter().position(|a| *a == candidate).is_none() {
                return Ok(candidate);
            }
        }
        Err(Error::NoAddressLeft)
    }

    /// Unbinds `ep`: messages for its address are counted as unbound from
    /// now on.
    pub fn unbind(&mut self, ep: Endpoint) {
        if let Some(a) = self.eps.iter_mut().find(|a| **a == ep.addr) {
            *a = FREE;
        }
    }

    /// The two halves, for as long as this borrow lasts.
    pub fn split(&mut self) -> (Tx<'_, 'a, R, N>, Rx<'_, 'a, R, N>) {
        (
            Tx {
                st: &mut self.tx,
                bell: &self.bell,
            },
            Rx {
                st: &mut self.rx,
                bell: &self.bell,
                #[cfg(not(feature = "small"))]
                first: first_bound(self.eps),
                eps: self.eps,
            },
        )
    }

    /// The transmit half's counters.
    pub fn tx_stats(&self) -> TxStats {
        self.tx.stats
    }

    /// The receive half's counters.
    pub fn rx_stats(&self) -> RxStats {
        self.rx.stats
    }

    /// The statistics of the (transmit, receive) rings, every validation
    /// failure by kind.
    pub fn ring_stats(&self) -> (vring::Stats, vring::Stats) {
        (*self.tx.ring.stats(), *self.rx.ring.stats())
    }

    /// Whether the link needs a reset: a ring is broken (the peer corrupted
    /// an index), or a received buffer could not be given back.
    pub fn is_broken(&self) -> bool {
        self.rx.return_failed || self.tx.ring.is_broken() || self.rx.ring.is_broken()
    }

    /// Whether a doorbell is still owed to the peer (see
    /// [`Tx::owes_doorbell`]).
    pub fn owes_doorbell(&self) -> bool {
        self.bell.owes()
    }
}

/// A shared-memory failure as a link error.
fn mem_error<E: ipc_traits::shm::Error>(e: &E) -> Error {
    Error::Ring(vring::Error::Memory(e.kind()))
}

/// The storage slot bound to `dst`, if any. Never a free slot: a message
/// to [`ADDR_ANY`] (the free mark) is for nobody.
#[inline]
fn bound_slot(eps: &[u32], dst: u32) -> Option<usize> {
    if dst == FREE {
        return None;
    }
    eps.iter().position(|a| *a == dst)
}

/// The first address bound in `eps` as a `u64`, or `u64::MAX` (which no
/// address equals) when none is: a message whose widened `dst` equals it
/// is for a bound endpoint, with no test for the free mark.
#[cfg(not(feature = "small"))]
fn first_bound(eps: &[u32]) -> u64 {
    eps.iter()
        .find(|a| **a != FREE)
        .map_or(u64::MAX, |a| u64::from(*a))
}

/// The transmit half (from [`Link::split`]).
pub struct Tx<'l, 'a, R: Halves<'a>, N> {
    st: &'l mut TxState<'a, R>,
    bell: &'l Bell<N>,
}

impl<'a, R: Halves<'a>, N> fmt::Debug for Tx<'_, 'a, R, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tx")
            .field("stats", &self.st.stats)
            .finish_non_exhaustive()
    }
}

impl<'a, R: Halves<'a>, N: Notify> Tx<'_, 'a, R, N> {
    /// Sends `data` from `src` to `dst`, copied into a transmit buffer.
    ///
    /// # Errors
    ///
    /// [`Error::TooLong`] (nothing sent); a ring or memory error.
    #[inline]
    pub fn try_send(&mut self, src: &Endpoint, dst: u32, data: &[u8]) -> Result<Sent, Error> {
        self.send_copy(src.addr, dst, data)
    }

    /// Announces `ep` under `name` (a name-service create to address 53).
    ///
    /// # Errors
    ///
    /// [`Error::BadName`] (longer than 31 bytes, or a NUL); as
    /// [`Tx::try_send`].
    pub fn announce(&mut self, ep: &Endpoint, name: &str) -> Result<Sent, Error> {
        self.ns_send(ep, name, NsAction::Create)
    }

    /// Tells the peer the service `name` at `ep` is gone.
    ///
    /// # Errors
    ///
    /// As [`Tx::announce`].
    pub fn announce_destroy(&mut self, ep: &Endpoint, name: &str) -> Result<Sent, Error> {
        self.ns_send(ep, name, NsAction::Destroy)
    }

    fn ns_send(&mut self, ep: &Endpoint, name: &str, action: NsAction) -> Result<Sent, Error> {
        let Some(name) = Name::new(name) else {
            return Err(Error::BadName);
        };
        let bytes = NsMessage {
            name,
            addr: ep.addr,
            action,
        }
        .encode::<<R::Tx as TxRing<'a>>::Order>();
        // The split send, out of line: a name-service message is rare, and
        // the one-pass form inlined here too (with its split fallback)
        // cost a SoC image about 900 bytes.
        self.send_split(ep.addr, NS, &bytes)
    }

    /// Lends a transmit buffer to fill in place; `Ok(None)` when none is
    /// free (counted in [`TxStats::buffer_waits`]). Dropped unsent, it is
    /// kept for the next send.
    ///
    /// # Errors
    ///
    /// A ring error.
    #[inline(always)]
    pub fn try_alloc(&mut self) -> Result<Option<TxBuffer<'_, 'a, R, N>>, Error> {
        let Some(slot) = self.take()? else {
            return Ok(None);
        };
        Ok(Some(TxBuffer {
            st: &mut *self.st,
            bell: self.bell,
            slot: Some(slot),
            len: 0,
            written: 0,
        }))
    }

    /// Rings every doorbell still owed (the mailbox refused it earlier).
    pub fn flush(&mut self) {
        self.kick(0);
    }

    /// Asks the peer to stop (`false`) or resume (`true`) ringing for the
    /// buffers it hands back on the transmit ring (the remote's freshly
    /// posted buffers, the master's consumed messages): a side that finds
    /// its transmit buffers by polling saves the peer a doorbell per
    /// message and itself an interrupt. Advisory (the ring's suppression
    /// flags or `EVENT_IDX`): the peer may still ring. Split-ownership
    /// rings ignore it (their doorbells carry the consumed-buffer
    /// protocol).
    ///
    /// # Errors
    ///
    /// A ring error.
    pub fn set_peer_notifications(&mut self, on: bool) -> Result<(), Error> {
        Ok(self.st.ring.set_peer_notifications(on)?)
    }

    /// The peer rang `queues` (the doorbells the mailbox interrupt took;
    /// give the same set to [`Rx::on_notify`]). Virtio rings need nothing
    /// here. Split ownership ([`crate::split::SplitRings`]) learns here
    /// that the peer's pass ended: the buffers it confirmed release their
    /// wake guards, and a message the pass did not see gets its "message
    /// available" doorbell (rung now).
    ///
    /// # Errors
    ///
    /// A ring error.
    pub fn on_notify(&mut self, queues: QueueSet) -> Result<(), Error> {
        if self.st.ring.on_notify(queues)? {
            self.kick(self.st.ring.queue().bit());
        }
        Ok(())
    }

    /// Whether a doorbell is still owed to the peer: an idle loop must not
    /// enter a sleep the peer cannot end while this is true (call
    /// [`Tx::flush`] until it is false, or sleep with a timeout).
    pub fn owes_doorbell(&self) -> bool {
        self.bell.owes()
    }

    /// This half's counters.
    pub fn stats(&self) -> TxStats {
        self.st.stats
    }

    fn kick(&mut self, bits: u32) {
        let k = self.bell.ring(bits);
        count_kicks(&mut self.st.stats, k);
    }

    #[inline(always)]
    fn take(&mut self) -> Result<Option<TxSlot>, Error> {
        let slot = self.st.ring.take()?;
        if slot.is_none() {
            self.st.stats.buffer_waits = self.st.stats.buffer_waits.wrapping_add(1);
        }
        Ok(slot)
    }

    /// The copying send in one pass: a free slot from the ring, the
    /// payload and then the header written straight into it, the lines
    /// written cleaned, the slot published. Inlined into its callers (no
    /// call, no register save and restore per message); with the feature
    /// `small`, the out-of-line [`Tx::send_split`] that [`Tx::announce`]
    /// uses as well.
    #[inline(always)]
    fn send_copy(&mut self, src: u32, dst: u32, data: &[u8]) -> Result<Sent, Error> {
        // The state and the bell reached once (the stores into shared
        // memory below would otherwise make the compiler fetch them again
        // through `self`).
        let (st, bell) = (&mut *self.st, self.bell);
        // Without the feature `small`: taken, written and sent in one ring
        // call ([`TxRing::take_with`]).
        #[cfg(not(feature = "small"))]
        {
            let mem = st.ring.mem();
            // Beside the ring's result, not in it (nested in it, its
            // variants cost tests and moves per message).
            let mut written = Ok(());
            let passed = st.ring.take_with(
                #[inline(always)]
                |slot| {
                    written = write_message::<R, _>(mem, slot, src, dst, data);
                    written.is_ok()
                },
            )?;
            // As `finish_send`.
            let wanted = match passed {
                Passed::Returned(wanted) => wanted,
                Passed::Empty => {
                    st.stats.buffer_waits = st.stats.buffer_waits.wrapping_add(1);
                    return Ok(Sent::NoBuffer);
                }
                // Not sent (kept for the next send): what the write said.
                Passed::Kept => return written.map(|()| Sent::Sent),
                Passed::NotReturned(e) => return Err(Error::Ring(e)),
            };
            vring::count!(st.stats.messages);
            if wanted {
                let k = bell.ring_one(st.ring.queue());
                count_kicks(&mut st.stats, k);
            }
            Ok(Sent::Sent)
        }
        #[cfg(feature = "small")]
        {
            let _ = (st, bell);
            self.send_split(src, dst, data)
        }
    }

    /// The copying send as take, write, send (the form of the feature
    /// `small`, and of the rare name-service messages in every form): out
    /// of line, one copy shared by its callers.
    #[inline(never)]
    fn send_split(&mut self, src: u32, dst: u32, data: &[u8]) -> Result<Sent, Error> {
        let (st, bell) = (&mut *self.st, self.bell);
        {
            let slot = st.ring.take()?;
            let Some(slot) = slot else {
                st.stats.buffer_waits = st.stats.buffer_waits.wrapping_add(1);
                return Ok(Sent::NoBuffer);
            };
            // One bounds check, the one `write_slot` makes (so the compiler
            // folds it there; no overflow: a slice is at most `isize::MAX`).
            // Every failure that leaves the slot ours ends in one place,
            // which keeps it for the next send.
            let (slot, e) = 'unsent: {
                let end = HEADER_LEN + data.len();
                let (Ok(len16), true) = (u16::try_from(data.len()), end <= slot.room) else {
                    break 'unsent (slot, Error::TooLong);
                };
                let header = Header {
                    src,
                    dst,
                    len: len16,
                    flags: 0,
                };
                #[cfg(feature = "small")]
                let header = header.encode::<<R::Tx as TxRing<'a>>::Order>();
                let mem = st.ring.mem();
                let written = write_slot(mem, &slot, HEADER_LEN, data)
                    .and_then(|()| write_header::<R, _>(mem, &slot, &header))
                    .and_then(|()| clean_slot(mem, &slot, end));
                if let Err(e) = written {
                    break 'unsent (slot, mem_error(&e));
                }
                let wanted = match st.ring.send(slot) {
                    Ok(wanted) => wanted,
                    Err(SendFailure {
                        slot: Some(slot),
                        error,
                    }) => break 'unsent (slot, Error::Ring(error)),
                    Err(SendFailure { slot: None, error }) => return Err(Error::Ring(error)),
                };
                vring::count!(st.stats.messages);
                if wanted {
                    let k = bell.ring_one(st.ring.queue());
                    count_kicks(&mut st.stats, k);
                }
                return Ok(Sent::Sent);
            };
            st.ring.give_back(slot);
            Err(e)
        }
    }
}

/// [`Tx::send_copy`]'s writing, for [`TxRing::take_with`]: the payload,
/// then the header written into `slot` of `mem` (the ring's memory), the
/// lines written cleaned; [`Error::TooLong`] (nothing written) when the
/// message does not fit the slot.
#[cfg(not(feature = "small"))]
#[inline(always)]
fn write_message<'a, R: Halves<'a>, M: SharedMemory + ?Sized>(
    mem: &M,
    slot: &TxSlot,
    src: u32,
    dst: u32,
    data: &[u8],
) -> Result<(), Error> {
    // One bounds check, the one `write_slot` makes (so the compiler folds
    // it there; no overflow: a slice is at most `isize::MAX`).
    let end = HEADER_LEN + data.len();
    let (Ok(len16), true) = (u16::try_from(data.len()), end <= slot.room) else {
        return Err(Error::TooLong);
    };
    let header = Header {
        src,
        dst,
        len: len16,
        flags: 0,
    };
    write_slot(mem, slot, HEADER_LEN, data)
        .and_then(|()| write_header::<R, _>(mem, slot, &header))
        .and_then(|()| clean_slot(mem, slot, end))
        .map_err(|e| mem_error(&e))
}

/// Writes `header` at the start of `slot` in the transmit ring's byte
/// order, as four native words stored one by one (no byte array on the
/// stack: ≈3 instructions per message fewer than the bytes). With the
/// feature `small` the header comes encoded as bytes and goes through the
/// payload's shared copy (smaller).
#[cfg(not(feature = "small"))]
#[inline(always)]
fn write_header<'a, R: Halves<'a>, M: SharedMemory + ?Sized>(
    mem: &M,
    slot: &TxSlot,
    header: &Header,
) -> Result<(), M::Error> {
    write_header_words(
        mem,
        slot,
        header.encode_words::<<R::Tx as TxRing<'a>>::Order>(),
    )
}

#[cfg(feature = "small")]
#[inline(always)]
#[expect(
    clippy::extra_unused_type_parameters,
    reason = "the signature of the word form, which takes the byte order from `R`: one call for both"
)]
fn write_header<'a, R: Halves<'a>, M: SharedMemory + ?Sized>(
    mem: &M,
    slot: &TxSlot,
    header: &[u8; HEADER_LEN],
) -> Result<(), M::Error> {
    write_slot(mem, slot, 0, header)
}

#[inline]
fn count_kicks(stats: &mut TxStats, k: Kicks) {
    vring::count!(stats.doorbells, k.rung);
    stats.doorbells_deferred = stats.doorbells_deferred.wrapping_add(k.deferred);
}

/// Hands a filled and cleaned `slot` to the ring (which publishes its
/// whole room: rpmsg-lite keeps descriptor lengths at the buffer size, the
/// header carries the payload length); returns whether the peer wants
/// the ring's doorbell. A slot the ring did not take is kept for the next
/// send.
#[inline(always)]
fn finish_send<'a, R: Halves<'a>>(st: &mut TxState<'a, R>, slot: TxSlot) -> Result<bool, Error> {
    match st.ring.send(slot) {
        Ok(wanted) => {
            vring::count!(st.stats.messages);
            Ok(wanted)
        }
        Err(SendFailure { slot, error }) => {
            if let Some(slot) = slot {
                st.ring.give_back(slot);
            }
            Err(Error::Ring(error))
        }
    }
}

/// A transmit buffer lent by [`Tx::try_alloc`]; kept for the next send if
/// dropped unsent.
///
/// The buffer still holds whatever it carried before, so only bytes of this
/// lending are ever sent: a payload byte the application did not write
/// goes out as 0.
#[must_use = "dropping a transmit buffer keeps it unsent"]
pub struct TxBuffer<'t, 'a, R: Halves<'a>, N: Notify> {
    st: &'t mut TxState<'a, R>,
    bell: &'t Bell<N>,
    slot: Option<TxSlot>,
    /// The payload length to send.
    len: usize,
    /// Payload bytes `..written` belong to this lending (written by the
    /// application or zeroed here); always `len <= written`.
    written: usize,
}

impl<'a, R: Halves<'a>, N: Notify> fmt::Debug for TxBuffer<'_, 'a, R, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TxBuffer")
            .field("len", &self.len)
            .field("capacity", &self.capacity())
            .finish_non_exhaustive()
    }
}

impl<'a, R: Halves<'a>, N: Notify> TxBuffer<'_, 'a, R, N> {
    /// Payload bytes this buffer holds.
    pub fn capacity(&self) -> usize {
        self.slot
            .as_ref()
            .map_or(0, |s| s.room.saturating_sub(HEADER_LEN))
    }

    /// The payload length to send.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies `bytes` to payload offset `at`; the payload length grows to
    /// cover them. Payload bytes before `at` not yet written in this
    /// lending become 0.
    ///
    /// # Errors
    ///
    /// [`Error::TooLong`] beyond the capacity; a memory error.
    pub fn write(&mut self, at: usize, bytes: &[u8]) -> Result<(), Error> {
        let cap = self.capacity();
        let end = at
            .checked_add(bytes.len())
            .filter(|&e| e <= cap)
            .ok_or(Error::TooLong)?;
        self.zero_up_to(at)?;
        if let Some(slot) = self.slot.as_ref() {
            write_slot(self.st.ring.mem(), slot, HEADER_LEN + at, bytes)
                .map_err(|e| mem_error(&e))?;
        }
        self.written = self.written.max(end);
        self.len = self.len.max(end);
        Ok(())
    }

    /// Sets the payload length; bytes up to `len` not written in this
    /// lending are sent as 0.
    ///
    /// # Errors
    ///
    /// [`Error::TooLong`] beyond the capacity; a memory error.
    pub fn set_len(&mut self, len: usize) -> Result<(), Error> {
        let cap = self.capacity();
        if len > cap {
            return Err(Error::TooLong);
        }
        self.zero_up_to(len)?;
        self.len = len;
        Ok(())
    }

    fn zero_up_to(&mut self, to: usize) -> Result<(), Error> {
        const ZEROS: [u8; 64] = [0; 64];
        let Some(slot) = self.slot.as_ref() else {
            return Ok(());
        };
        let mem = self.st.ring.mem();
        while self.written < to {
            let n = (to - self.written).min(ZEROS.len());
            write_slot(mem, slot, HEADER_LEN + self.written, &ZEROS[..n])
                .map_err(|e| mem_error(&e))?;
            self.written += n;
        }
        Ok(())
    }

    /// Sends the payload from `src` to `dst`.
    ///
    /// # Errors
    ///
    /// A ring or memory error (the buffer is kept for the next send).
    #[inline(always)]
    pub fn send(mut self, src: &Endpoint, dst: u32) -> Result<(), Error> {
        let Some(slot) = self.slot.take() else {
            return Ok(());
        };
        if send_lent::<R>(self.st, slot, src.addr, dst, self.len, self.written)? {
            let k = self.bell.ring_one(self.st.ring.queue());
            count_kicks(&mut self.st.stats, k);
        }
        Ok(())
    }
}

/// [`TxBuffer::send`]: the header for `len` payload bytes, the lines of
/// the header and of the `written` payload bytes cleaned, the slot handed
/// to the ring.
#[inline(always)]
fn send_lent<'a, R: Halves<'a>>(
    st: &mut TxState<'a, R>,
    slot: TxSlot,
    src: u32,
    dst: u32,
    len: usize,
    written: usize,
) -> Result<bool, Error> {
    let max = slot.room.saturating_sub(HEADER_LEN);
    let (Ok(len16), true) = (u16::try_from(len), len <= max) else {
        st.ring.give_back(slot);
        return Err(Error::TooLong);
    };
    let header = Header {
        src,
        dst,
        len: len16,
        flags: 0,
    };
    #[cfg(feature = "small")]
    let header = header.encode::<<R::Tx as TxRing<'a>>::Order>();
    let mem = st.ring.mem();
    let end = HEADER_LEN + written.max(len).min(max);
    let sealed =
        write_header::<R, _>(mem, &slot, &header).and_then(|()| clean_slot(mem, &slot, end));
    if let Err(e) = sealed {
        st.ring.give_back(slot);
        return Err(mem_error(&e));
    }
    finish_send::<R>(st, slot)
}

impl<'a, R: Halves<'a>, N: Notify> TxBuffer<'_, 'a, R, N>
where
    R::Mem: DirectMemory,
{
    /// The first `len` payload bytes as a writable view to fill in place
    /// ([`ShmSliceMut`]); the payload length grows to cover them. Bytes of
    /// the view not yet written in this lending are zeroed before it is
    /// lent (ask for the length to send, not the capacity).
    ///
    /// # Errors
    ///
    /// [`Error::TooLong`] beyond the capacity.
    pub fn payload_mut(&mut self, len: usize) -> Result<ShmSliceMut<'_>, Error> {
        let too_long = Error::TooLong;
        let mem = self.st.ring.mem();
        let slot = self.slot.as_mut().ok_or(too_long)?;
        // One bounds check, the one the views below make again (folded).
        if HEADER_LEN
            .checked_add(len)
            .is_none_or(|end| end > slot.room)
        {
            return Err(too_long);
        }
        if self.written < len {
            view_slot_mut(mem, slot, HEADER_LEN + self.written, len - self.written)
                .ok_or(too_long)?
                .fill(0);
            self.written = len;
        }
        self.len = self.len.max(len);
        view_slot_mut(mem, slot, HEADER_LEN, len).ok_or(too_long)
    }
}

impl<'a, R: Halves<'a>, N: Notify> Drop for TxBuffer<'_, 'a, R, N> {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            self.st.ring.give_back(slot);
        }
    }
}

/// The receive half (from [`Link::split`]).
pub struct Rx<'l, 'a, R: Halves<'a>, N> {
    st: &'l mut RxState<'a, R>,
    bell: &'l Bell<N>,
    /// The first bound address, widened ([`first_bound`]): the endpoints
    /// cannot change while the halves live (the link is borrowed), so the
    /// usual message, for the first endpoint, is told bound by one compare
    /// (with the feature `small`, every message scans the endpoints).
    #[cfg(not(feature = "small"))]
    first: u64,
    eps: &'l [u32],
}

impl<'a, R: Halves<'a>, N> fmt::Debug for Rx<'_, 'a, R, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rx")
            .field("endpoints", &self.eps)
            .field("stats", &self.st.stats)
            .finish_non_exhaustive()
    }
}

impl<'l, 'a, R: Halves<'a>, N: Notify> Rx<'l, 'a, R, N> {
    /// Takes the next message for a bound address off the ring, copies its
    /// payload into `out` and gives the buffer back to the peer, in one
    /// pass. `Ok(None)`: the ring is empty and (with notifications on)
    /// re-armed, so sleeping until the doorbell is safe.
    ///
    /// Under [`crate::rings::Conventions::return_with_next_look`] (our own
    /// stack on both sides, flags mode, non-coherent memory) the buffer
    /// that ends a pass goes back with the next call instead, which
    /// publishes it before it looks: at most one buffer is withheld, until
    /// the next look.
    ///
    /// Messages for unbound addresses and messages with a bad header met on
    /// the way are counted ([`RxStats`]) and given back, never delivered.
    ///
    /// # Errors
    ///
    /// [`Error::TooLong`] when `out` is shorter than the payload (the
    /// message is kept for the next call); [`Error::WouldBlock`] when a
    /// whole ring's worth of undeliverable messages arrived during this
    /// call (counted; the ring is not idle: call again); ring and memory
    /// errors.
    // Always inlined (one call site in a typical receive loop): out of line,
    // its prologue and epilogue alone were 16 instructions per message.
    #[inline(always)]
    pub fn try_recv(&mut self, out: &mut [u8]) -> Result<Option<Received>, Error> {
        // One delivery for a kept message and one off the ring. Taking the
        // kept one out of line (so the message off the ring never shares a
        // value with one read back from memory) saved 7 instructions per
        // message on the host but cost 1-3 KB in each SoC image, where the
        // receive loop is inlined at several call sites.
        let mut p = self.pass();
        // On coherent memory with no message kept, the ring's one-pass
        // receive ([`RxRing::take_with`]).
        #[cfg(not(feature = "small"))]
        if <R::Mem as SharedMemory>::COHERENT && p.st.kept.is_none() {
            return p.recv_with(out);
        }
        #[cfg(feature = "small")]
        return p.recv_in_place(out);
        #[cfg(not(feature = "small"))]
        match p.next()? {
            Some(m) => p.deliver(m, out).map(Some),
            None => Ok(None),
        }
    }

    /// [`Pass::give_back`], for the queue layer.
    #[inline(always)]
    fn give_back(&mut self, slot: RxSlot) {
        self.pass().give_back(slot);
    }

    /// [`Pass::take_slot`], for the queue layer.
    #[inline(always)]
    fn take_slot(&mut self) -> Result<Option<RxSlot>, Error> {
        self.pass().take_slot()
    }

    /// [`Pass::frame`], for the queue layer.
    #[inline(always)]
    fn frame(&mut self, slot: RxSlot) -> Result<Option<Msg<'a, R::Mem>>, Error> {
        self.pass().frame(slot)
    }

    /// The receive state, reached once: see [`Pass`].
    #[inline(always)]
    fn pass(&mut self) -> Pass<'_, 'l, 'a, R, N> {
        let Rx {
            st,
            bell,
            #[cfg(not(feature = "small"))]
            first,
            eps,
        } = self;
        Pass {
            st: &mut **st,
            bell,
            #[cfg(not(feature = "small"))]
            first,
            eps,
        }
    }

    /// As [`Rx::try_recv`], but lends the buffer instead of copying: it goes
    /// back to the peer when the [`HeldMessage`] is dropped.
    ///
    /// # Errors
    ///
    /// As [`Rx::try_recv`] (never [`Error::TooLong`]).
    #[inline(always)]
    pub fn try_recv_held(&mut self) -> Result<Option<HeldMessage<'_, 'a, R, N>>, Error> {
        let mut p = self.pass();
        let Some(m) = p.next()? else {
            return Ok(None);
        };
        vring::count!(p.st.stats.messages);
        Ok(Some(HeldMessage {
            st: p.st,
            bell: *p.bell,
            msg: m,
        }))
    }

    /// Rings every doorbell still owed (the mailbox refused it earlier).
    pub fn flush(&mut self) {
        let k = self.bell.ring(0);
        count_rx_kicks(&mut self.st.stats, k);
    }

    /// Asks the peer to stop (`false`) or resume (`true`) ringing for the
    /// messages it sends: a receive half that polls ([`Rx::try_recv`] from
    /// a loop or a timer) saves the peer a doorbell per message and itself
    /// an interrupt. Advisory (the ring's suppression flags or
    /// `EVENT_IDX`): the peer may still ring, and this side must keep
    /// polling while it is off. Resuming re-checks the ring and returns
    /// whether messages arrived meanwhile: receive them before sleeping,
    /// or that wake-up is lost. Split-ownership rings ignore it and return
    /// `false` (their doorbells carry the consumed-buffer protocol).
    ///
    /// # Errors
    ///
    /// A ring error.
    pub fn set_peer_notifications(&mut self, on: bool) -> Result<bool, Error> {
        Ok(self.st.ring.set_peer_notifications(on)?)
    }

    /// The peer rang `queues` (the doorbells the mailbox interrupt took;
    /// give the same set to [`Tx::on_notify`]). Virtio rings need nothing
    /// here: [`Rx::try_recv`] looks at the ring itself. Split ownership
    /// ([`crate::split::SplitRings`]) reads the peer's ring only after its
    /// "message available" doorbell, so it must learn of it here.
    pub fn on_notify(&mut self, queues: QueueSet) {
        self.st.ring.on_notify(queues);
    }

    /// Whether a doorbell is still owed to the peer (see
    /// [`Tx::owes_doorbell`]).
    pub fn owes_doorbell(&self) -> bool {
        self.bell.owes()
    }

    /// This half's counters.
    pub fn stats(&self) -> RxStats {
        self.st.stats
    }
}

/// The receive path's view of an [`Rx`]: the receive state reached once,
/// into a local, and the half's other fields by reference (read where
/// used). Through `&mut Rx`, each use of the state after a store into the
/// ring's bookkeeping reloaded it (the compiler cannot tell those stores
/// from the half's own fields).
struct Pass<'v, 'l, 'a, R: Halves<'a>, N> {
    st: &'v mut RxState<'a, R>,
    bell: &'v &'l Bell<N>,
    #[cfg(not(feature = "small"))]
    first: &'v u64,
    eps: &'v &'l [u32],
}

impl<'a, R: Halves<'a>, N: Notify> Pass<'_, '_, 'a, R, N> {
    /// Copies the payload of `m` into `out` and gives its buffer back (or
    /// keeps `m` for the next call when `out` is too short).
    #[cfg(not(feature = "small"))]
    #[inline(always)]
    fn deliver(&mut self, m: Msg<'a, R::Mem>, out: &mut [u8]) -> Result<Received, Error> {
        let Some(dst) = out.get_mut(..m.len) else {
            self.st.kept = Some(m);
            return Err(Error::TooLong);
        };
        let res = m.read_head(self.st.ring.mem(), dst);
        let got = Received {
            dst: m.dst,
            src: m.src,
            len: m.len,
        };
        // A failed return is counted and breaks the link (`give_back`); the
        // message was copied and is delivered all the same.
        self.give_back(m.slot);
        res?;
        vring::count!(self.st.stats.messages);
        Ok(got)
    }

    /// [`Rx::try_recv`] with the feature `small`: a message off the ring
    /// is put where a kept one waits, and delivered from there, so a kept
    /// message and a fresh one share one delivery and a too-short `out`
    /// leaves the message where it is (no move out and back). What
    /// [`Pass::next`] and [`Pass::deliver`] do, with the same counts and
    /// errors.
    #[cfg(feature = "small")]
    #[inline(always)]
    fn recv_in_place(&mut self, out: &mut [u8]) -> Result<Option<Received>, Error> {
        if self.st.kept.is_none() {
            let Some(m) = self.next_off_ring()? else {
                return Ok(None);
            };
            self.st.kept = Some(m);
        }
        let Some(m) = &self.st.kept else {
            return Ok(None);
        };
        let Some(dst) = out.get_mut(..m.len) else {
            return Err(Error::TooLong);
        };
        let res = m.read_head(self.st.ring.mem(), dst);
        let got = Received {
            dst: m.dst,
            src: m.src,
            len: m.len,
        };
        let slot = m.slot.again();
        self.st.kept = None;
        self.give_back(slot);
        res?;
        vring::count!(self.st.stats.messages);
        Ok(Some(got))
    }

    #[inline(always)]
    fn give_back(&mut self, slot: RxSlot) {
        give_back::<R, N>(self.st, self.bell, slot);
    }

    /// The next buffer off the ring, and the doorbell the ring asks for
    /// then: for the returns the look published first (virtio rings), or
    /// split ownership's consumed-buffer notification at the end of a pass.
    #[inline(always)]
    fn take_slot(&mut self) -> Result<Option<RxSlot>, Error> {
        let slot = self.st.ring.take()?;
        // (Virtio rings owe one only on non-coherent memory, for a return
        // the look published: `Conventions::return_with_next_look`.)
        if (slot.is_none() || !<R::Mem as SharedMemory>::COHERENT) && self.st.ring.take_kick() {
            let k = self.bell.ring_one(self.st.ring.queue());
            count_rx_kicks(&mut self.st.stats, k);
        }
        Ok(slot)
    }

    /// The next deliverable message (a kept one first), skipping
    /// (counted, given back) what cannot be delivered, at most a ring's
    /// worth; `None` when the ring is empty. Inlined: the message stays in
    /// registers from the ring to its delivery.
    #[inline(always)]
    fn next(&mut self) -> Result<Option<Msg<'a, R::Mem>>, Error> {
        if self.st.kept.is_some() {
            return Ok(self.st.kept.take());
        }
        self.next_off_ring()
    }

    /// [`Rx::next`] when no message is kept: off the ring.
    #[inline(always)]
    fn next_off_ring(&mut self) -> Result<Option<Msg<'a, R::Mem>>, Error> {
        // Counted on the skipping paths only: a deliverable first message
        // pays no loop counter.
        let mut skipped = 0;
        loop {
            let Some(slot) = self.take_slot()? else {
                return Ok(None);
            };
            if let Some(m) = self.frame(slot)? {
                if self.is_bound(m.dst) {
                    return Ok(Some(m));
                }
                self.st.stats.unbound = self.st.stats.unbound.wrapping_add(1);
                self.give_back(m.slot);
            }
            skipped += 1;
            if skipped > <R::Rx as RxRing<'a>>::NUM {
                return Err(Error::WouldBlock);
            }
        }
    }

    /// Validates a received slot in one pass: what the peer reported
    /// must hold a header; the header's lines are invalidated and the
    /// header read once and checked (`HEADER_LEN + len` within what the
    /// peer reported, which the ring bounded by the buffer), then the
    /// payload's lines are invalidated. A bad one is counted and given
    /// back (`None`).
    #[inline(always)]
    fn frame(&mut self, slot: RxSlot) -> Result<Option<Msg<'a, R::Mem>>, Error> {
        let used = slot.len as usize;
        if used < HEADER_LEN {
            self.bad_header();
            self.give_back(slot);
            return Ok(None);
        }
        let mem = self.st.ring.mem();
        // Only the header's lines first: rpmsg-lite reports the whole buffer
        // as used (§2.3), and a 16-byte message in a 512-byte buffer should
        // cost the lines it occupies, not the buffer's.
        let read =
            invalidate_slot(mem, &slot, 0, HEADER_LEN).and_then(|()| read_header_words(mem, &slot));
        let (src, dst, len_flags) = match read {
            Ok(w) => w,
            Err(e) => {
                // Only a memory that breaks its contract gets here; the
                // buffer still goes back to the peer.
                self.give_back(slot);
                return Err(mem_error(&e));
            }
        };
        let header = Header::decode_words::<<R::Rx as RxRing<'a>>::Order>(src, dst, len_flags);
        // `HEADER_LEN + len <= used <= capacity`.
        let Ok(len) = header.check_len(used, used) else {
            self.bad_header();
            self.give_back(slot);
            return Ok(None);
        };
        let head = line_end::<R::Mem>(HEADER_LEN);
        if let Err(e) = invalidate_slot(mem, &slot, head, HEADER_LEN + len) {
            self.give_back(slot);
            return Err(mem_error(&e));
        }
        Ok(Some(Msg {
            slot,
            dst: header.dst,
            src: header.src,
            len,
            _mem: PhantomData,
        }))
    }

    /// [`Rx::try_recv`] with no message kept, on coherent memory: each
    /// slot taken, read ([`read_message`]) and given back in one ring call
    /// ([`RxRing::take_with`]), the message kept only when `out` is too
    /// short. What [`Pass::next`] and [`Pass::deliver`] do, in the same
    /// order, with the same counts and errors.
    #[cfg(not(feature = "small"))]
    #[inline(always)]
    fn recv_with(&mut self, out: &mut [u8]) -> Result<Option<Received>, Error> {
        let mut skipped = 0;
        loop {
            let (first, eps) = (self.first, *self.eps);
            let st = &mut *self.st;
            let mem = st.ring.mem();
            let kept = &mut st.kept;
            // What was read, beside the ring's result (nested in it, its
            // variants cost tests and moves per message).
            let mut got = Got::Delivered;
            let mut r = Received {
                dst: 0,
                src: 0,
                len: 0,
            };
            let passed = st.ring.take_with(
                #[inline(always)]
                |slot| {
                    (got, r) = read_message::<R>(mem, slot, first, eps, out);
                    if let Got::Kept = got {
                        // The slot stays taken (the ring does not give it
                        // back): this copy is the one left.
                        *kept = Some(Msg {
                            slot: slot.again(),
                            dst: r.dst,
                            src: r.src,
                            len: r.len,
                            _mem: PhantomData,
                        });
                        return false;
                    }
                    true
                },
            )?;
            // As `give_back` (the failure out of line).
            match passed {
                Passed::Empty => {
                    // As `take_slot` when the ring is empty.
                    if self.st.ring.take_kick() {
                        let k = self.bell.ring_one(self.st.ring.queue());
                        count_rx_kicks(&mut self.st.stats, k);
                    }
                    return Ok(None);
                }
                Passed::Kept | Passed::Returned(false) => {}
                Passed::Returned(true) => {
                    let k = self.bell.ring_one(self.st.ring.queue());
                    count_rx_kicks(&mut self.st.stats, k);
                }
                Passed::NotReturned(_) => return_failed::<R>(self.st),
            }
            match got {
                Got::Delivered => {
                    vring::count!(self.st.stats.messages);
                    return Ok(Some(r));
                }
                Got::Kept => return Err(Error::TooLong),
                Got::Failed(e) => return Err(e),
                Got::BadHeader => self.bad_header(),
                Got::Unbound => {
                    self.st.stats.unbound = self.st.stats.unbound.wrapping_add(1);
                }
            }
            skipped += 1;
            if skipped > <R::Rx as RxRing<'a>>::NUM {
                return Err(Error::WouldBlock);
            }
        }
    }

    /// Whether `dst` is bound on this link.
    #[inline(always)]
    fn is_bound(&self, dst: u32) -> bool {
        #[cfg(not(feature = "small"))]
        if u64::from(dst) == *self.first {
            return true;
        }
        bound_slot(self.eps, dst).is_some()
    }

    #[cold]
    fn bad_header(&mut self) {
        self.st.stats.bad_header = self.st.stats.bad_header.wrapping_add(1);
    }
}

/// What [`read_message`] made of a slot (the message's addresses and
/// length beside it, in a plain record: variants carrying them would
/// overlap them with other fields, which the compiler then carries in
/// pieces).
#[cfg(not(feature = "small"))]
enum Got {
    /// Copied out: the slot goes back.
    Delivered,
    /// Bound, but `out` is too short: to keep (the slot stays taken).
    Kept,
    /// What the peer reported holds no header, or the header asks for more:
    /// counted, the slot goes back.
    BadHeader,
    /// For an address nobody bound: counted, the slot goes back.
    Unbound,
    /// The memory failed: the slot goes back.
    Failed(Error),
}

/// [`Pass::frame`], [`Pass::is_bound`] and [`Pass::deliver`]'s copy on
/// one taken `slot` of `mem` (the ring's memory), for
/// [`Pass::recv_with`]: the same checks in the same order; the slot goes
/// back unless the message is kept.
#[cfg(not(feature = "small"))]
#[inline(always)]
fn read_message<'a, R: Halves<'a>>(
    mem: &R::Mem,
    slot: &RxSlot,
    first: &u64,
    eps: &[u32],
    out: &mut [u8],
) -> (Got, Received) {
    let none = Received {
        dst: 0,
        src: 0,
        len: 0,
    };
    let used = slot.len as usize;
    if used < HEADER_LEN {
        return (Got::BadHeader, none);
    }
    let read =
        invalidate_slot(mem, slot, 0, HEADER_LEN).and_then(|()| read_header_words(mem, slot));
    let (src, dst, len_flags) = match read {
        Ok(w) => w,
        Err(e) => return (Got::Failed(mem_error(&e)), none),
    };
    let header = Header::decode_words::<<R::Rx as RxRing<'a>>::Order>(src, dst, len_flags);
    // `HEADER_LEN + len <= used <= capacity`.
    let Ok(len) = header.check_len(used, used) else {
        return (Got::BadHeader, none);
    };
    let head = line_end::<R::Mem>(HEADER_LEN);
    if let Err(e) = invalidate_slot(mem, slot, head, HEADER_LEN + len) {
        return (Got::Failed(mem_error(&e)), none);
    }
    if u64::from(header.dst) != *first && bound_slot(eps, header.dst).is_none() {
        return (Got::Unbound, none);
    }
    let r = Received {
        dst: header.dst,
        src: header.src,
        len,
    };
    let Some(to) = out.get_mut(..len) else {
        return (Got::Kept, r);
    };
    // SAFETY: the ring validated the slot against `mem` (`offset + len`
    // inside the window), and `HEADER_LEN + len` is within what the peer
    // reported (checked above), so `HEADER_LEN..HEADER_LEN + to.len()` lies
    // inside the slot.
    #[allow(unsafe_code)]
    let copied = unsafe { mem.read_unchecked(slot.offset + HEADER_LEN, to) };
    match copied {
        Ok(()) => (Got::Delivered, r),
        Err(e) => (Got::Failed(mem_error(&e)), none),
    }
}

#[inline]
fn count_rx_kicks(stats: &mut RxStats, k: Kicks) {
    vring::count!(stats.doorbells, k.rung);
    stats.doorbells_deferred = stats.doorbells_deferred.wrapping_add(k.deferred);
}

/// Gives a received buffer back to the peer (publication and re-arm under
/// one fence, in the ring) and rings if the peer asked. A failure is never
/// silent: counted ([`RxStats::return_failures`]) and the link is broken
/// from then on. With the feature `small`, one out-of-line copy for the
/// receive path's two returns (the delivered message's, the skipped one's).
#[cfg_attr(not(feature = "small"), inline(always))]
#[cfg_attr(feature = "small", inline(never))]
fn give_back<'a, R: Halves<'a>, N: Notify>(st: &mut RxState<'a, R>, bell: &Bell<N>, slot: RxSlot) {
    match st.ring.release(slot) {
        Ok(false) => {}
        Ok(true) => {
            let k = bell.ring_one(st.ring.queue());
            count_rx_kicks(&mut st.stats, k);
        }
        Err(_) => {
            st.stats.return_failures = st.stats.return_failures.wrapping_add(1);
            st.return_failed = true;
        }
    }
}

/// A message lent by [`Rx::try_recv_held`]; its buffer goes back to the
/// peer when this is dropped.
#[must_use = "dropping a held message gives its buffer back at once"]
pub struct HeldMessage<'r, 'a, R: Halves<'a>, N: Notify> {
    st: &'r mut RxState<'a, R>,
    bell: &'r Bell<N>,
    msg: Msg<'a, R::Mem>,
}

impl<'a, R: Halves<'a>, N: Notify> fmt::Debug for HeldMessage<'_, 'a, R, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeldMessage")
            .field("dst", &self.dst())
            .field("src", &self.src())
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl<'a, R: Halves<'a>, N: Notify> HeldMessage<'_, 'a, R, N> {
    /// The local address it was sent to.
    pub fn dst(&self) -> u32 {
        self.msg.dst
    }

    /// The sender's address.
    pub fn src(&self) -> u32 {
        self.msg.src
    }

    /// The payload length.
    pub fn len(&self) -> usize {
        self.msg.len
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Copies payload bytes from `at` into `out`.
    ///
    /// # Errors
    ///
    /// [`Error::TooLong`] if the range exceeds the payload; a memory error.
    pub fn read(&self, at: usize, out: &mut [u8]) -> Result<(), Error> {
        let len = self.len();
        let too_long = Error::TooLong;
        let m = &self.msg;
        if at.checked_add(out.len()).is_none_or(|e| e > len) {
            return Err(too_long);
        }
        m.read(self.st.ring.mem(), at, out)
    }
}

impl<'a, R: Halves<'a>, N: Notify> HeldMessage<'_, 'a, R, N>
where
    R::Mem: DirectMemory,
{
    /// The payload, zero-copy, as a view whose accessors copy or compare
    /// ([`ShmSlice`]): the peer could still write the buffer, so no `&[u8]`
    /// over it is lent.
    ///
    /// # Errors
    ///
    /// [`Error::TooLong`] if the validated buffer does not cover the
    /// payload (never, for a message this module validated).
    pub fn payload(&self) -> Result<ShmSlice<'_>, Error> {
        let m = &self.msg;
        // SAFETY: `HEADER_LEN + m.len` is within what the peer reported
        // (`Rx::frame` checked it when it made the message), and the slot
        // came from this ring, over this memory.
        #[allow(unsafe_code)]
        let view = unsafe { view_slot_unchecked(self.st.ring.mem(), &m.slot, HEADER_LEN, m.len) };
        Ok(view)
    }
}

impl<'a, R: Halves<'a>, N: Notify> Drop for HeldMessage<'_, 'a, R, N> {
    #[inline(always)]
    fn drop(&mut self) {
        // The message ends here: its slot goes back once. Its doorbell and
        // failure out of line: what is left inlines where the message
        // drops, so the message never goes through memory.
        let st = &mut *self.st;
        match release_held::<R>(st, self.msg.slot.again()) {
            Ok(false) => {}
            Ok(true) => ring_for_return::<R, N>(st, self.bell),
            Err(_) => return_failed::<R>(st),
        }
    }
}

/// The ring's release for [`HeldMessage`]'s drop, out of line: a held
/// message ends where the application drops it, and one call there keeps
/// that site small (the copying receive inlines the release instead).
#[inline(never)]
fn release_held<'a, R: Halves<'a>>(
    st: &mut RxState<'a, R>,
    slot: RxSlot,
) -> Result<bool, vring::Error> {
    st.ring.release(slot)
}

/// [`give_back`]'s doorbell, out of line.
#[inline(never)]
fn ring_for_return<'a, R: Halves<'a>, N: Notify>(st: &mut RxState<'a, R>, bell: &Bell<N>) {
    let k = bell.ring_one(st.ring.queue());
    count_rx_kicks(&mut st.stats, k);
}

/// [`give_back`]'s failure, out of line.
#[cold]
fn return_failed<'a, R: Halves<'a>>(st: &mut RxState<'a, R>) {
    st.stats.return_failures = st.stats.return_failures.wrapping_add(1);
    st.return_failed = true;
}
