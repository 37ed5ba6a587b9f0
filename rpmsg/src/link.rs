//! A link: one peer, two rings, a notifier, endpoints and the name service.
//!
//! [`Link`] is the object firmware talks to. It is generic over the role's
//! ring pair ([`crate::rings::RemoteRings`] or
//! [`crate::rings::MasterRings`], each over any
//! [`ipc_traits::shm::SharedMemory`]) and over any
//! [`ipc_traits::mailbox::Notify`], so the same code runs over the four
//! mailbox backends, over simulated memory, and over a raw region with a
//! user-supplied notifier. Several links can live in one firmware; each has
//! its own rings, endpoints and statistics.
//!
//! # Receiving
//!
//! Endpoints choose how they receive when they are created:
//!
//! - [`RxMode::Callback`]: messages go to the handler passed to
//!   [`Link::poll`], copied out of the ring (the buffer is returned to the
//!   peer before the handler runs, so a handler may call back into the
//!   link).
//! - [`RxMode::Queue`]: messages wait in the endpoint's queue (up to `Q`,
//!   zero-copy: the ring buffer itself is held) until [`Link::try_recv`]
//!   copies one out, or [`Link::try_recv_held`] lends it ([`HeldMessage`],
//!   returned to the peer when dropped). A full queue stops reception
//!   (back-pressure, no loss) until the endpoint is drained.
//!
//! # Sending
//!
//! [`Link::try_send`] copies; [`Link::try_alloc_tx`] lends a transmit buffer
//! ([`TxBuffer`]) to fill in place and send, and gives it back if dropped
//! unsent. No free transmit buffer is [`Error::WouldBlock`], never a hang;
//! [`Link::blocking_send`] retries within a budget and keeps servicing the
//! receive side meanwhile.
//!
//! # Design notes
//!
//! - Methods take `&self`: the state sits in a `RefCell`, so a held message
//!   or a lent transmit buffer can give its slot back when dropped. No user
//!   code runs while the state is borrowed; a re-entrant call from a
//!   `Drop` during another call is reported as [`Error::Busy`], never a
//!   panic. A link is `Send` but not `Sync`: share it with an interrupt
//!   handler through a critical-section mutex.
//! - A kick that fails (mailbox FIFO full) does not fail the send: the
//!   message is already in the ring. The kick is remembered and retried by
//!   the next operation ([`Link::flush_kicks`]).
//! - Not enforced by types: that an [`Endpoint`] is used with the link that
//!   created it (a foreign endpoint whose slot and address do not match is
//!   [`Error::NoSuchEndpoint`]).
#![deny(unsafe_code)]

use core::cell::{Cell, RefCell};
use core::fmt;

use ipc_traits::buf::{Readable, ShmBuf};
use ipc_traits::bytes::{ShmSlice, ShmSliceMut};
use ipc_traits::mailbox::{Budget, Notify, QueueSet};
use ipc_traits::shm::DirectMemory;

use crate::rings::{Rings, RxSlot, SendFailure, TxSlot};
use crate::table::{
    DirectoryChange, DirectoryError, EndpointTable, RemoteService, ServiceDirectory,
};
#[cfg(doc)]
use crate::wire::ADDR_ANY;
use crate::wire::{Header, Name, NsAction, NsMessage, HEADER_LEN, NS_ADDR, NS_MSG_LEN};

/// How an endpoint receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RxMode {
    /// Through the handler of [`Link::poll`].
    Callback,
    /// Into the endpoint's queue.
    Queue,
}

pub use crate::error::Error;

/// A local endpoint. Not `Clone`: one handle per bound address.
#[derive(Debug, PartialEq, Eq)]
pub struct Endpoint {
    slot: usize,
    addr: u32,
}

impl Endpoint {
    /// The local address.
    pub fn addr(&self) -> u32 {
        self.addr
    }

    /// The endpoint's slot in its link (below the link's `EPS`).
    #[cfg(feature = "async")]
    pub(crate) fn slot(&self) -> usize {
        self.slot
    }
}

/// A message delivered to a callback endpoint by [`Link::poll`].
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    /// The local endpoint's address.
    pub dst: u32,
    /// The sender's address.
    pub src: u32,
    /// The payload.
    pub payload: &'a [u8],
}

/// A name-service event: the peer announced or destroyed a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NsEvent {
    /// A new service (or one that moved to a new address).
    Created(RemoteService),
    /// A service went away.
    Destroyed(RemoteService),
    /// The link restarted (the peer reset): every endpoint is unbound from
    /// the peer's old addresses, every service of the old session is gone,
    /// and our own services are being announced again.
    PeerReset,
}

/// What a received copy-out returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// The sender's address.
    pub src: u32,
    /// Payload bytes copied.
    pub len: usize,
}

/// Counters of a link (wrapping; statistics, not state).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LinkStats {
    /// Messages sent (name-service messages included).
    pub messages_sent: u32,
    /// Payload bytes sent.
    pub bytes_sent: u64,
    /// Messages delivered to endpoints.
    pub messages_received: u32,
    /// Payload bytes delivered.
    pub bytes_received: u64,
    /// Doorbells rung.
    pub notifications_sent: u32,
    /// Doorbells that failed and were kept for a retry.
    pub notifications_deferred: u32,
    /// Notifications the application reported with [`Link::on_notify`].
    pub notifications_received: u32,
    /// Send attempts that found no free transmit buffer.
    pub tx_buffer_waits: u32,
    /// Messages to an address nobody bound (dropped, buffer returned).
    pub rx_unbound: u32,
    /// Times reception stopped because an endpoint queue was full.
    pub rx_queue_stalls: u32,
    /// Messages whose header failed validation (dropped, buffer returned).
    pub rx_bad_header: u32,
    /// Received buffers that could not be given back to the peer (the
    /// ring refused the return, or memory failed): each is lost to the
    /// peer's pool until the link restarts, and the first one makes
    /// [`Link::is_broken`] true. The message itself is still delivered
    /// when it was already read.
    pub rx_return_failures: u32,
    /// Name-service messages rejected (size, name, flags).
    pub ns_malformed: u32,
    /// Name-service names of 32 bytes without a NUL, accepted cut to their
    /// first 31 as Linux does (rpmsg-lite `strncpy`s a 32-character name).
    pub ns_name_truncated: u32,
    /// Destroys for services never announced.
    pub ns_unknown_destroy: u32,
    /// Announcements dropped because the directory was full.
    pub ns_directory_full: u32,
    /// Name-service events dropped because nobody took them.
    pub ns_events_dropped: u32,
    /// Name-service messages received while the name service is off.
    pub ns_disabled: u32,
    /// Restarts after the peer reset.
    pub peer_resets: u32,
    /// Received messages dropped by a restart before the application took
    /// them (queued, held or stalled), and, when the session ended with
    /// [`Link::release_session`], those still waiting in the receive ring.
    pub lost_at_reset: u32,
    /// Sent messages whose buffers had not come back at a restart: delivered
    /// or lost, the peer's session ended before it said which.
    pub unconfirmed_at_reset: u32,
    /// Times the peer did not answer within a bound: for
    /// [`Link::unresponsive_after`] ticks of [`Link::tick`] a doorbell could
    /// not be rung (its mailbox stayed full), no transmit buffer came back
    /// after a send found none, or (split ownership) the peer kept buffers
    /// and the wake guards held for them were released; or a
    /// [`Link::blocking_send`] ran out of budget waiting for a transmit
    /// buffer. Counted once per episode: the count moves again only after
    /// the peer answered.
    pub peer_unresponsive: u32,
}

/// What [`Link::restart`] tore down.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RestartReport {
    /// Received messages dropped: not yet taken by the application, and
    /// (with [`Link::release_session`]) not yet taken from the ring.
    pub lost: u32,
    /// Sent messages not confirmed by the peer.
    pub unconfirmed: u32,
    /// Services to announce again (sent as soon as transmit buffers exist).
    pub reannounce: u32,
}

const NS_EVENT_SLOTS: usize = 8;

/// Ticks of [`Link::tick`] after which a silent peer is counted
/// unresponsive, unless [`Link::set_unresponsive_after`] says otherwise.
pub const DEFAULT_UNRESPONSIVE_TICKS: u32 = 1000;

/// The link-level liveness watch, aged by [`Link::tick`]: it sees every
/// role's two ways of waiting on the peer (a doorbell the mailbox does not
/// take, a transmit buffer the peer does not give back).
#[derive(Debug, Clone, Copy)]
struct Liveness {
    /// Ticks before giving up (0: never).
    after: u32,
    /// Ticks a doorbell has been pending.
    kick_age: u32,
    /// A send found no free transmit buffer and none came back since.
    starved: bool,
    /// Ticks spent starved.
    starve_age: u32,
    /// This episode was counted already.
    reported: bool,
}

impl Liveness {
    const fn new() -> Self {
        Self {
            after: DEFAULT_UNRESPONSIVE_TICKS,
            kick_age: 0,
            starved: false,
            starve_age: 0,
            reported: false,
        }
    }

    /// A new silence is a new episode once nothing is waited for.
    fn rearm(&mut self) {
        if self.kick_age == 0 && !self.starved {
            self.reported = false;
        }
    }

    /// A transmit buffer was free again: that wait is over.
    fn got_buffer(&mut self) {
        self.starved = false;
        self.starve_age = 0;
        self.rearm();
    }

    fn forget(&mut self) {
        *self = Self {
            after: self.after,
            ..Self::new()
        };
    }
}

struct Queued<'m, M: ?Sized> {
    token: u16,
    src: u32,
    len: usize,
    buf: ShmBuf<'m, M, Readable>,
}

struct EpQueue<'m, M: ?Sized, const Q: usize> {
    items: [Option<Queued<'m, M>>; Q],
    head: usize,
    len: usize,
}

impl<'m, M: ?Sized, const Q: usize> EpQueue<'m, M, Q> {
    const EMPTY: Self = Self {
        items: [const { None }; Q],
        head: 0,
        len: 0,
    };

    fn push(&mut self, item: Queued<'m, M>) -> Result<(), Queued<'m, M>> {
        if self.len == Q {
            return Err(item);
        }
        let at = (self.head + self.len) % Q;
        self.items[at] = Some(item);
        self.len += 1;
        Ok(())
    }

    fn pop(&mut self) -> Option<Queued<'m, M>> {
        if self.len == 0 {
            return None;
        }
        let item = self.items[self.head].take();
        self.head = (self.head + 1) % Q;
        self.len -= 1;
        item
    }
}

/// A message reception stopped at: for a queue endpoint whose queue was
/// full, or for a callback endpoint while no handler was at hand.
enum Stalled<'m, M: ?Sized> {
    Queue { slot: usize, item: Queued<'m, M> },
    Callback { dst: u32, item: Queued<'m, M> },
}

struct Inner<'m, R: Rings<'m>, N, const EPS: usize, const Q: usize, const SVC: usize> {
    rings: R,
    notify: N,
    pending_kicks: QueueSet,
    live: Liveness,
    endpoints: EndpointTable<EPS>,
    modes: [RxMode; EPS],
    queues: [EpQueue<'m, R::Mem, Q>; EPS],
    stalled: Option<Stalled<'m, R::Mem>>,
    directory: ServiceDirectory<SVC>,
    ns_events: [Option<NsEvent>; NS_EVENT_SLOTS],
    ns_enabled: bool,
    announced: [Option<Name>; EPS],
    reannounce: [bool; EPS],
    /// Whether any `reannounce` flag may be set: the common case (none)
    /// costs [`Inner::after_op`] one test instead of a scan.
    reannounce_owed: bool,
    /// Set between `end_session` and `restart`.
    ended: Option<RestartReport>,
    /// A received buffer could not be returned in this session.
    return_failed: bool,
    buf_size: usize,
    stats: LinkStats,
}

/// A link to one peer: `EPS` local endpoints with queues of `Q` messages,
/// `SVC` remote services, buffers of `BUF` bytes (512 by default).
pub struct Link<
    'm,
    R: Rings<'m>,
    N,
    const EPS: usize,
    const Q: usize,
    const SVC: usize,
    const BUF: usize = 512,
> {
    inner: RefCell<Inner<'m, R, N, EPS, Q, SVC>>,
    leaked: Cell<u32>,
    /// Bumped by every restart; lent buffers remember the value they were
    /// lent under.
    generation: Cell<u32>,
}

impl<'m, R: Rings<'m>, N, const EPS: usize, const Q: usize, const SVC: usize, const BUF: usize>
    fmt::Debug for Link<'m, R, N, EPS, Q, SVC, BUF>
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Link")
            .field("endpoints", &EPS)
            .field("buf", &BUF)
            .finish_non_exhaustive()
    }
}

/// What one step of reception found.
enum Step<'m, M: ?Sized> {
    /// Nothing waiting.
    Idle,
    /// Handled inside the link (name service, dropped, queued).
    Handled,
    /// For a callback endpoint: the payload was copied to the scratch
    /// buffer and the ring buffer returned.
    Deliver { dst: u32, src: u32, len: usize },
    /// Reception is stopped by a full queue.
    Stalled,
    #[allow(dead_code)]
    Phantom(core::marker::PhantomData<&'m M>),
}

impl<
        'm,
        R: Rings<'m>,
        N: Notify,
        const EPS: usize,
        const Q: usize,
        const SVC: usize,
        const BUF: usize,
    > Link<'m, R, N, EPS, Q, SVC, BUF>
{
    /// Largest payload per message.
    pub const MAX_PAYLOAD: usize = BUF - HEADER_LEN;

    /// A link over `rings` that rings `notify`'s doorbell, with the name
    /// service on (`VIRTIO_RPMSG_F_NS`).
    pub fn new(rings: R, notify: N) -> Self {
        const { assert!(BUF > HEADER_LEN, "buffers must hold more than a header") };
        const { assert!(Q > 0, "endpoint queues need at least one slot") };
        Self {
            inner: RefCell::new(Inner {
                rings,
                notify,
                pending_kicks: QueueSet::EMPTY,
                live: Liveness::new(),
                endpoints: EndpointTable::new(),
                modes: [RxMode::Callback; EPS],
                queues: [const { EpQueue::EMPTY }; EPS],
                stalled: None,
                directory: ServiceDirectory::new(),
                ns_events: [None; NS_EVENT_SLOTS],
                ns_enabled: true,
                announced: [None; EPS],
                reannounce: [false; EPS],
                reannounce_owed: false,
                ended: None,
                return_failed: false,
                buf_size: BUF,
                stats: LinkStats::default(),
            }),
            leaked: Cell::new(0),
            generation: Cell::new(0),
        }
    }

    /// Turns the name service off (a peer that did not negotiate
    /// `VIRTIO_RPMSG_F_NS`): messages to address 53 are then counted and
    /// dropped, and announcing is refused.
    pub fn set_name_service(&self, enabled: bool) -> Result<(), Error> {
        self.with(|i| {
            i.ns_enabled = enabled;
            Ok(())
        })
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut Inner<'m, R, N, EPS, Q, SVC>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let mut inner = self.inner.try_borrow_mut().map_err(|_| Error::Busy)?;
        if inner.ended.is_some() {
            return Err(Error::Reset);
        }
        let out = f(&mut inner);
        inner.after_op();
        out
    }

    /// The link's counters.
    pub fn stats(&self) -> LinkStats {
        self.inner.try_borrow().map(|i| i.stats).unwrap_or_default()
    }

    /// The statistics of the (transmit, receive) rings, including every
    /// validation failure by kind.
    pub fn ring_stats(&self) -> (vring::Stats, vring::Stats) {
        self.inner
            .try_borrow()
            .map(|i| {
                let (t, r) = i.rings.ring_stats();
                (*t, *r)
            })
            .unwrap_or_default()
    }

    /// Whether the link is broken and needs a reset: a ring is broken (the
    /// peer corrupted an index), or a received buffer could not be given
    /// back to the peer ([`LinkStats::rx_return_failures`]; the peer's
    /// pool is short of it, and a peer whose pool runs dry can send no
    /// more). [`Link::restart`] clears it.
    pub fn is_broken(&self) -> bool {
        self.inner
            .try_borrow()
            .map(|i| i.return_failed || i.rings.is_broken())
            .unwrap_or(false)
    }

    /// Which endpoint slots have messages queued (all `false` while the
    /// link is busy): the async front end wakes their receivers.
    #[cfg(feature = "async")]
    pub(crate) fn queued(&self) -> [bool; EPS] {
        self.inner
            .try_borrow()
            .map(|i| core::array::from_fn(|k| i.queues[k].len > 0))
            .unwrap_or([false; EPS])
    }

    /// Buffers lost because a held message or a lent transmit buffer was
    /// dropped while the link was busy (should stay 0).
    pub fn leaked_buffers(&self) -> u32 {
        self.leaked.get()
    }

    /// Records that the peer rang our doorbell (call from the mailbox
    /// interrupt, then [`Link::poll`]).
    pub fn on_notify(&self, queues: QueueSet) {
        if let Ok(mut i) = self.inner.try_borrow_mut() {
            i.stats.notifications_received = i
                .stats
                .notifications_received
                .wrapping_add(queues.iter().count() as u32);
            i.rings.on_notify(queues);
        }
    }

    /// Ages what the link waits for from the peer by one tick (call from a
    /// timer or the idle loop). Returns 1 when the peer was just found
    /// unresponsive ([`LinkStats::peer_unresponsive`] counts it), 0
    /// otherwise:
    ///
    /// - a doorbell stayed pending for [`Link::unresponsive_after`] ticks
    ///   (the mailbox never took it: a full FIFO, a peer that stopped
    ///   reading). The doorbell stays pending and is rung when the mailbox
    ///   takes it again: nothing is dropped.
    /// - a send found no free transmit buffer and none came back for that
    ///   many ticks (the peer holds them all). Buffers lent to the
    ///   application ([`Link::try_alloc_tx`]) count as taken too: do not
    ///   keep them across ticks.
    /// - split ownership ([`crate::split::SplitRings`]): the peer kept
    ///   buffers past the configured bound; the wake guards held for them
    ///   are released.
    ///
    /// One episode counts once; the watch re-arms when the peer answers (the
    /// doorbell goes through, a buffer comes back).
    ///
    /// ```
    /// # use rpmsg::link::DEFAULT_UNRESPONSIVE_TICKS;
    /// // A 1 ms timer calling `link.tick()` gives up on a silent peer
    /// // after one second by default.
    /// assert_eq!(DEFAULT_UNRESPONSIVE_TICKS, 1000);
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Busy`], [`Error::Reset`].
    pub fn tick(&self) -> Result<u32, Error> {
        self.with(|i| Ok(i.tick()))
    }

    /// Ticks of [`Link::tick`] after which a silent peer is counted
    /// unresponsive.
    pub fn unresponsive_after(&self) -> u32 {
        self.inner
            .try_borrow()
            .map(|i| i.live.after)
            .unwrap_or(DEFAULT_UNRESPONSIVE_TICKS)
    }

    /// Sets the bound of [`Link::tick`] (0: never give up; default
    /// [`DEFAULT_UNRESPONSIVE_TICKS`]). The split-ownership rings keep their
    /// own bound ([`crate::split::SplitConfig`]).
    ///
    /// # Errors
    ///
    /// [`Error::Busy`], [`Error::Reset`].
    pub fn set_unresponsive_after(&self, ticks: u32) -> Result<(), Error> {
        self.with(|i| {
            i.live.after = ticks;
            Ok(())
        })
    }

    /// Asks the peer to stop (`false`) or resume (`true`) ringing this
    /// side's doorbell: a side that polls ([`Link::poll`], [`Link::service`]
    /// from a loop or a timer) saves the peer a doorbell per message, and
    /// itself an interrupt. It goes through the rings' suppression (flags or
    /// `EVENT_IDX`, whichever was configured) and is advisory: the peer may
    /// still ring, and this side must keep polling while it is off. Resuming
    /// re-checks the receive ring and returns whether messages arrived
    /// meanwhile (poll before sleeping, or that wake-up is lost). Split-ownership links
    /// ignore it (their doorbells also carry consumed-buffer notifications)
    /// and return `false`.
    ///
    /// # Errors
    ///
    /// [`Error::Busy`], [`Error::Reset`], a ring error.
    pub fn set_peer_notifications(&self, on: bool) -> Result<bool, Error> {
        self.with(|i| Ok(i.rings.set_peer_notifications(on)?))
    }

    /// Whether a doorbell is still owed to the peer (the mailbox refused it
    /// and [`Link::flush_kicks`] has not got it through yet). An idle loop
    /// must not enter a sleep the peer cannot end while this is true: the
    /// peer may be waiting for exactly that doorbell (a message, or the
    /// buffers it needs back), and with both cores asleep nobody rings.
    pub fn owes_doorbell(&self) -> bool {
        self.inner
            .try_borrow()
            .map(|i| !i.pending_kicks.is_empty())
            .unwrap_or(false)
    }

    /// Retries doorbells that failed earlier.
    ///
    /// # Errors
    ///
    /// [`Error::Busy`].
    pub fn flush_kicks(&self) -> Result<(), Error> {
        self.with(|_| Ok(()))
    }

    /// Restarts the link over fresh `rings` after the peer reset (a new
    /// session word, or the vdev status going through 0 back to
    /// `DRIVER_OK`).
    ///
    /// Tears the old session down: messages queued, held or stalled are
    /// dropped and counted ([`LinkStats::lost_at_reset`]), messages sent and
    /// not confirmed are counted ([`LinkStats::unconfirmed_at_reset`]),
    /// buffers lent to the application become [`Error::Reset`] (they are
    /// never given to the new rings), pending doorbells are forgotten, the
    /// peer's services are forgotten, and a [`NsEvent::PeerReset`] is
    /// raised. Local endpoints stay bound; the services they announced are
    /// announced again as soon as the new rings give a transmit buffer.
    /// Nothing of the old session is delivered afterwards.
    ///
    /// # Errors
    ///
    /// [`Error::Busy`].
    pub fn restart(&self, rings: R) -> Result<RestartReport, Error> {
        let report = self.end_session()?;
        let mut i = self.inner.try_borrow_mut().map_err(|_| Error::Busy)?;
        i.rings = rings;
        i.ended = None;
        i.return_failed = false;
        i.reannounce();
        i.flush_kicks();
        Ok(report)
    }

    /// Ends the current session (the first half of [`Link::restart`]):
    /// counts and drops what the old rings still hold and makes lent
    /// buffers stale. Call it before re-initialising ring memory the old
    /// rings still describe (the master re-lays out its rings in place), so
    /// buffers the peer already returned are counted as confirmed. Until
    /// [`Link::restart`], sending and receiving give [`Error::Reset`].
    /// Calling it twice ends the session once.
    ///
    /// # Errors
    ///
    /// [`Error::Busy`].
    pub fn end_session(&self) -> Result<RestartReport, Error> {
        self.end(false)
    }

    /// Ends the current session like [`Link::end_session`], and also counts
    /// in [`LinkStats::lost_at_reset`] the messages the peer had made
    /// available on the receive ring that this side had not taken yet,
    /// reading them from the old rings.
    ///
    /// Call it only while the old rings are still intact: a remote whose
    /// master restarted, before the master lays the rings out again (the
    /// session handshake of [`crate::session`] tells: the new master word
    /// still has `peer_session` 0), or a master whose remote restarted (the
    /// master owns the ring memory). With it, a restart accounts for every
    /// message: delivered, lost at the reset, or unconfirmed.
    ///
    /// # Errors
    ///
    /// [`Error::Busy`].
    pub fn release_session(&self) -> Result<RestartReport, Error> {
        self.end(true)
    }

    fn end(&self, count_ring: bool) -> Result<RestartReport, Error> {
        let mut i = self.inner.try_borrow_mut().map_err(|_| Error::Busy)?;
        if let Some(report) = i.ended {
            return Ok(report);
        }
        let mut lost = if count_ring { i.rings.untaken_rx() } else { 0 };
        for q in i.queues.iter_mut() {
            while q.pop().is_some() {
                lost += 1;
            }
        }
        if i.stalled.take().is_some() {
            lost += 1;
        }
        let unconfirmed = i.rings.unconfirmed_tx();
        i.pending_kicks = QueueSet::EMPTY;
        i.live.forget();
        i.directory.clear();
        i.ns_events = [None; NS_EVENT_SLOTS];
        i.push_event(NsEvent::PeerReset);
        let mut reannounce = 0;
        for k in 0..EPS {
            i.reannounce[k] = i.announced[k].is_some() && i.endpoints.addr_of(k).is_some();
            reannounce += u32::from(i.reannounce[k]);
        }
        i.reannounce_owed = reannounce > 0;
        i.stats.peer_resets = i.stats.peer_resets.wrapping_add(1);
        i.stats.lost_at_reset = i.stats.lost_at_reset.wrapping_add(lost);
        i.stats.unconfirmed_at_reset = i.stats.unconfirmed_at_reset.wrapping_add(unconfirmed);
        self.generation.set(self.generation.get().wrapping_add(1));
        let report = RestartReport {
            lost,
            unconfirmed,
            reannounce,
        };
        i.ended = Some(report);
        Ok(report)
    }

    // -- endpoints ----------------------------------------------------------

    /// Binds a local endpoint at `addr` (or the next free address from 1024
    /// for [`ADDR_ANY`]).
    ///
    /// # Errors
    ///
    /// [`Error::Bind`].
    pub fn create_endpoint(&self, addr: u32, mode: RxMode) -> Result<Endpoint, Error> {
        self.with(|i| {
            let (slot, addr) = i.endpoints.bind(addr).map_err(Error::Bind)?;
            i.modes[slot] = mode;
            Ok(Endpoint { slot, addr })
        })
    }

    /// Unbinds an endpoint; messages still queued for it (or stalled on
    /// it) are returned to the peer. Works in every state of the link,
    /// between [`Link::end_session`] and [`Link::restart`] too (the queues
    /// are empty then), so an address is never left bound without a
    /// handle.
    ///
    /// Once the endpoint is found it is always unbound: a buffer the ring
    /// refuses to take back does not stop the others, and is accounted for
    /// as on every return path (the ring's statistics, [`Link::is_broken`]);
    /// the next operation reports a broken ring.
    ///
    /// # Errors
    ///
    /// [`Error::NoSuchEndpoint`] (not this link's, or already gone) or
    /// [`Error::Busy`] (re-entrant call), with the handle given back:
    /// nothing was changed.
    pub fn destroy_endpoint(&self, ep: Endpoint) -> Result<(), (Endpoint, Error)> {
        let Ok(mut i) = self.inner.try_borrow_mut() else {
            return Err((ep, Error::Busy));
        };
        if let Err(e) = i.check(&ep) {
            return Err((ep, e));
        }
        i.destroy(ep.slot, ep.addr);
        if i.ended.is_none() {
            i.after_op();
        }
        Ok(())
    }

    /// Announces `ep` to the peer under `name` (a name-service create to
    /// address 53).
    ///
    /// # Errors
    ///
    /// [`Error::BadName`], [`Error::WouldBlock`] (no transmit buffer),
    /// [`Error::NoSuchEndpoint`], ring errors.
    pub fn announce(&self, ep: &Endpoint, name: &str) -> Result<(), Error> {
        self.ns_send(ep, name, NsAction::Create)
    }

    /// Tells the peer the service `name` at `ep` is gone.
    ///
    /// # Errors
    ///
    /// As for [`Link::announce`].
    pub fn announce_destroy(&self, ep: &Endpoint, name: &str) -> Result<(), Error> {
        self.ns_send(ep, name, NsAction::Destroy)
    }

    fn ns_send(&self, ep: &Endpoint, name: &str, action: NsAction) -> Result<(), Error> {
        let name = Name::new(name).ok_or(Error::BadName)?;
        let msg = NsMessage {
            name,
            addr: ep.addr,
            action,
        };
        self.with(|i| {
            i.check(ep)?;
            let bytes = msg.encode::<R::Order>();
            i.send_copy(ep.addr, NS_ADDR, &bytes)?;
            i.announced[ep.slot] = match action {
                NsAction::Create => Some(name),
                NsAction::Destroy => None,
            };
            i.reannounce[ep.slot] = false;
            Ok(())
        })
    }

    /// The address the peer announced for `name`, if it did (announcements
    /// are kept from the moment they arrive, even before anyone asks).
    pub fn lookup_service(&self, name: &str) -> Option<u32> {
        self.inner
            .try_borrow()
            .ok()
            .and_then(|i| i.directory.lookup(name))
    }

    /// The oldest name-service event not yet taken.
    pub fn try_ns_event(&self) -> Option<NsEvent> {
        let mut i = self.inner.try_borrow_mut().ok()?;
        let first = i.ns_events.iter().position(Option::is_some)?;
        let ev = i.ns_events[first].take();
        i.ns_events[first..].rotate_left(1);
        ev
    }

    // -- sending ------------------------------------------------------------

    /// Sends `data` from `ep` to `dst`, copying it into a transmit buffer.
    ///
    /// # Errors
    ///
    /// [`Error::WouldBlock`] when no transmit buffer is free;
    /// [`Error::TooLong`]; [`Error::NoSuchEndpoint`]; ring errors.
    pub fn try_send(&self, ep: &Endpoint, dst: u32, data: &[u8]) -> Result<(), Error> {
        self.with(|i| {
            i.check(ep)?;
            i.send_copy(ep.addr, dst, data)
        })
    }

    /// [`Link::try_send`], retrying within `budget` while no transmit buffer
    /// is free. Between attempts the receive side is serviced (queue
    /// endpoints and the name service), so a peer waiting for us to free its
    /// buffers makes progress.
    ///
    /// # Errors
    ///
    /// [`Error::WouldBlock`] when the budget ran out; other errors at once.
    pub fn blocking_send(
        &self,
        ep: &Endpoint,
        dst: u32,
        data: &[u8],
        mut budget: impl Budget,
    ) -> Result<(), Error> {
        loop {
            match self.try_send(ep, dst, data) {
                Err(Error::WouldBlock) if budget.next() => {
                    self.service()?;
                }
                Err(Error::WouldBlock) => {
                    // The whole budget passed without the peer returning a
                    // buffer: a dead or stuck peer shows up here, counted.
                    if let Ok(mut i) = self.inner.try_borrow_mut() {
                        i.stats.peer_unresponsive = i.stats.peer_unresponsive.wrapping_add(1);
                    }
                    return Err(Error::WouldBlock);
                }
                other => return other,
            }
        }
    }

    /// Lends a transmit buffer to fill in place (zero-copy send). Dropped
    /// unsent, it goes back to the link.
    ///
    /// # Errors
    ///
    /// [`Error::WouldBlock`] when none is free; ring errors.
    pub fn try_alloc_tx(&self) -> Result<TxBuffer<'_, 'm, R, N, EPS, Q, SVC, BUF>, Error> {
        let slot = self.with(|i| i.take_tx())?;
        Ok(TxBuffer {
            link: self,
            slot: Some(slot),
            len: 0,
            written: 0,
            generation: self.generation.get(),
        })
    }

    // -- receiving ----------------------------------------------------------

    /// Processes every message waiting: name-service messages update the
    /// directory and raise events; messages for callback endpoints are
    /// handed to `handler`; messages for queue endpoints are queued.
    /// Returns the number of messages handed to `handler`.
    ///
    /// # Errors
    ///
    /// Ring errors (the peer corrupted an index, or memory failed).
    pub fn poll(&self, mut handler: impl FnMut(Message<'_>)) -> Result<usize, Error> {
        let mut scratch = [0u8; BUF];
        let mut delivered = 0;
        // Bounded: at most one full ring's worth per direction plus queued
        // work; a peer that keeps refilling cannot keep us here.
        for _ in 0..4 * BUF.max(256) {
            let step = self.with(|i| i.step(&mut scratch))?;
            match step {
                Step::Idle | Step::Stalled => break,
                Step::Handled | Step::Phantom(_) => {}
                Step::Deliver { dst, src, len } => {
                    handler(Message {
                        dst,
                        src,
                        payload: &scratch[..len],
                    });
                    delivered += 1;
                }
            }
        }
        Ok(delivered)
    }

    /// Services reception without a handler: queue endpoints and the name
    /// service are served; a message for a callback endpoint stops the pass
    /// (it stays in the ring until [`Link::poll`]).
    ///
    /// # Errors
    ///
    /// As for [`Link::poll`].
    pub fn service(&self) -> Result<(), Error> {
        let mut scratch = [0u8; 0];
        for _ in 0..4 * BUF.max(256) {
            match self.with(|i| i.step(&mut scratch))? {
                Step::Idle | Step::Stalled | Step::Deliver { .. } => break,
                Step::Handled | Step::Phantom(_) => {}
            }
        }
        Ok(())
    }

    /// Services reception until a message is queued for `ep` (then the
    /// rest stays in the ring for the next call), or as [`Link::service`]
    /// (rings without [`Rings::RETURN_BEFORE_IDLE`]).
    ///
    /// Stopping there matters for fences: the message's buffer goes back
    /// before the ring is found empty, so returning it and re-arming the
    /// ring share one fence (`publish_used_and_rearm` /
    /// `publish_and_rearm` in [`crate::rings`]), and the pop that then
    /// finds the ring empty needs none.
    fn service_for(&self, ep: &Endpoint) -> Result<(), Error> {
        if !R::RETURN_BEFORE_IDLE {
            return self.service();
        }
        let mut scratch = [0u8; 0];
        for _ in 0..4 * BUF.max(256) {
            let step = self.with(|i| {
                if i.queues.get(ep.slot).is_some_and(|q| q.len > 0) {
                    return Ok(Step::Idle);
                }
                i.step(&mut scratch)
            })?;
            match step {
                Step::Idle | Step::Stalled | Step::Deliver { .. } => break,
                Step::Handled | Step::Phantom(_) => {}
            }
        }
        Ok(())
    }

    /// Copies the oldest message queued for `ep` into `out` and returns the
    /// buffer to the peer.
    ///
    /// # Sleeping
    ///
    /// Sleep until the next doorbell only after [`Error::WouldBlock`]: it
    /// means the ring was serviced to empty and, with notifications on,
    /// re-armed, so the peer rings for its next message. An `Ok` may leave
    /// later messages in the ring (with virtio rings reception stops at the
    /// first message for `ep`, so returning its buffer and re-arming share
    /// one fence); they arrive with the next call, and no doorbell comes for
    /// them.
    ///
    /// # Errors
    ///
    /// [`Error::WouldBlock`] when nothing is queued; [`Error::TooLong`] if
    /// `out` is too small (the message stays queued);
    /// [`Error::NoSuchEndpoint`].
    pub fn try_recv(&self, ep: &Endpoint, out: &mut [u8]) -> Result<Received, Error> {
        self.service_for(ep)?;
        self.with(|i| {
            i.check(ep)?;
            let q = &mut i.queues[ep.slot];
            let Some(front) = q.items[q.head].as_ref().filter(|_| q.len > 0) else {
                return Err(Error::WouldBlock);
            };
            if out.len() < front.len {
                return Err(Error::TooLong {
                    len: front.len,
                    max: out.len(),
                });
            }
            let Some(item) = q.pop() else {
                return Err(Error::WouldBlock);
            };
            let res = item.buf.read(HEADER_LEN, &mut out[..item.len]);
            let got = Received {
                src: item.src,
                len: item.len,
            };
            // A failed return is counted and breaks the link (`release`);
            // the message was copied and is delivered all the same.
            let _counted = i.release(item.token, item.buf).is_err();
            res.map_err(|e| Error::Ring(vring::Error::Memory(ipc_traits::shm::Error::kind(&e))))?;
            Ok(got)
        })
    }

    /// Lends the oldest message queued for `ep` without copying; the buffer
    /// goes back to the peer when the [`HeldMessage`] is dropped.
    ///
    /// Sleep only after [`Error::WouldBlock`], as for [`Link::try_recv`].
    ///
    /// # Errors
    ///
    /// [`Error::WouldBlock`] when nothing is queued; [`Error::NoSuchEndpoint`].
    pub fn try_recv_held(
        &self,
        ep: &Endpoint,
    ) -> Result<HeldMessage<'_, 'm, R, N, EPS, Q, SVC, BUF>, Error> {
        self.service_for(ep)?;
        let item = self.with(|i| {
            i.check(ep)?;
            i.queues[ep.slot].pop().ok_or(Error::WouldBlock)
        })?;
        Ok(HeldMessage {
            link: self,
            item: Some(item),
            generation: self.generation.get(),
        })
    }

    fn give_back(&self, token: u16, buf: ShmBuf<'m, R::Mem, Readable>) {
        match self.inner.try_borrow_mut() {
            Ok(mut i) => {
                if i.release(token, buf).is_err() {
                    self.leaked.set(self.leaked.get().wrapping_add(1));
                }
                i.flush_kicks();
            }
            Err(_) => self.leaked.set(self.leaked.get().wrapping_add(1)),
        }
    }
}

/// A shared-memory failure as a link error.
fn mem_error<E: ipc_traits::shm::Error>(e: E) -> Error {
    Error::Ring(vring::Error::Memory(e.kind()))
}

impl<'m, R: Rings<'m>, N: Notify, const EPS: usize, const Q: usize, const SVC: usize>
    Inner<'m, R, N, EPS, Q, SVC>
{
    fn check(&self, ep: &Endpoint) -> Result<(), Error> {
        if self.endpoints.addr_of(ep.slot) == Some(ep.addr) {
            Ok(())
        } else {
            Err(Error::NoSuchEndpoint)
        }
    }

    /// What every operation ends with: announcements owed after a restart,
    /// the rings' housekeeping and the doorbells it asks for. Inlined, and
    /// each part behind one test, so that an operation with nothing owed
    /// (the data path) pays a few instructions here, not three calls.
    #[inline]
    fn after_op(&mut self) {
        if self.reannounce_owed {
            self.reannounce();
        }
        if R::HOUSEKEEPING {
            let due = self.rings.housekeeping();
            self.pending_kicks = self.pending_kicks.union(due);
        }
        if !self.pending_kicks.is_empty() {
            self.flush_kicks();
        }
    }

    /// Unbinds the endpoint at `slot` and gives back every buffer held for
    /// it (queued, or the message reception stalled on).
    fn destroy(&mut self, slot: usize, addr: u32) {
        // Unbound first: nothing is delivered to it any more, whatever the
        // rings say below.
        self.endpoints.unbind(slot);
        self.announced[slot] = None;
        self.reannounce[slot] = false;
        let stalled_here = match &self.stalled {
            Some(Stalled::Queue { slot: s, .. }) => *s == slot,
            Some(Stalled::Callback { dst, .. }) => *dst == addr,
            None => false,
        };
        if stalled_here {
            if let Some(Stalled::Queue { item, .. } | Stalled::Callback { item, .. }) =
                self.stalled.take()
            {
                self.release_regardless(item);
            }
        }
        while let Some(item) = self.queues[slot].pop() {
            self.release_regardless(item);
        }
    }

    /// Returns one held buffer to the peer on a path that must go on
    /// whatever happens: a refusal is accounted for as on every other return
    /// path (in [`Inner::release`] and the ring) and does not stop the
    /// caller.
    fn release_regardless(&mut self, item: Queued<'m, R::Mem>) {
        let _returned: bool = self.release(item.token, item.buf).is_ok();
    }

    fn kick(&mut self, queue: ipc_traits::mailbox::QueueId) {
        self.pending_kicks.insert(queue);
        self.flush_kicks();
    }

    fn flush_kicks(&mut self) {
        if self.pending_kicks.is_empty() {
            return;
        }
        for q in self.pending_kicks.iter() {
            match self.notify.notify(q) {
                Ok(()) => {
                    self.stats.notifications_sent = self.stats.notifications_sent.wrapping_add(1);
                    self.pending_kicks =
                        QueueSet::from_bits(self.pending_kicks.bits() & !(1 << q.index()));
                }
                Err(_) => {
                    self.stats.notifications_deferred =
                        self.stats.notifications_deferred.wrapping_add(1);
                }
            }
        }
        if self.pending_kicks.is_empty() {
            // The mailbox took every doorbell: that wait is over.
            self.live.kick_age = 0;
            self.live.rearm();
        }
    }

    fn take_tx(&mut self) -> Result<TxSlot<'m, R::Mem>, Error> {
        match self.rings.take_tx()? {
            Some(slot) => {
                self.live.got_buffer();
                Ok(slot)
            }
            None => {
                self.stats.tx_buffer_waits = self.stats.tx_buffer_waits.wrapping_add(1);
                self.live.starved = true;
                Err(Error::WouldBlock)
            }
        }
    }

    /// One tick of the liveness watch (see [`Link::tick`]).
    fn tick(&mut self) -> u32 {
        // Observe the mailbox as it is now, not as the last call left it.
        self.flush_kicks();
        // Split ownership's own bound (it releases wake guards).
        let gave_up = self.rings.tick();
        let live = &mut self.live;
        // (`flush_kicks` reset the age if the mailbox took them all.)
        if !self.pending_kicks.is_empty() {
            live.kick_age = live.kick_age.saturating_add(1);
        }
        if live.starved {
            // Has a buffer come back since the failed send? Probe without
            // keeping it.
            match self.rings.take_tx() {
                Ok(Some(slot)) => {
                    self.rings.return_tx(slot);
                    live.got_buffer();
                }
                // A ring error is counted by the ring; still no buffer.
                Ok(None) | Err(_) => live.starve_age = live.starve_age.saturating_add(1),
            }
        }
        let due = |age: u32| live.after != 0 && age >= live.after;
        let silent = due(live.kick_age) || due(live.starve_age);
        let mut counted = 0;
        if (silent || gave_up != 0) && !live.reported {
            live.reported = true;
            counted = 1;
        } else if gave_up != 0 {
            // A second give-up of the split rings within one episode still
            // released guards: count it, as the rings report it.
            counted = gave_up;
        }
        if gave_up == 0 {
            live.rearm();
        }
        self.stats.peer_unresponsive = self.stats.peer_unresponsive.wrapping_add(counted);
        counted
    }

    /// Writes the header for `len` payload bytes already in `slot` and sends.
    fn finish_send(
        &mut self,
        mut slot: TxSlot<'m, R::Mem>,
        src: u32,
        dst: u32,
        len: usize,
    ) -> Result<(), Error> {
        let max = slot.room.saturating_sub(HEADER_LEN);
        let Ok(len16) = u16::try_from(len) else {
            self.rings.return_tx(slot);
            return Err(Error::TooLong { len, max });
        };
        if len > max {
            self.rings.return_tx(slot);
            return Err(Error::TooLong { len, max });
        }
        let header = Header {
            src,
            dst,
            len: len16,
            flags: 0,
        };
        if let Err(e) = slot.buf.write(0, &header.encode::<R::Order>()) {
            self.rings.return_tx(slot);
            return Err(Error::Ring(vring::Error::Memory(
                ipc_traits::shm::Error::kind(&e),
            )));
        }
        // The whole buffer is published (rpmsg-lite keeps descriptor lengths
        // at the buffer size; the header carries the payload length).
        if slot.buf.set_len(slot.room).is_err() {
            self.rings.return_tx(slot);
            return Err(Error::TooLong { len, max });
        }
        let token = slot.token;
        let clean = match slot.buf.clean() {
            Ok(c) => c,
            Err((buf, e)) => {
                self.rings.return_tx(TxSlot {
                    token,
                    room: slot.room,
                    buf,
                });
                return Err(Error::Ring(vring::Error::Memory(
                    ipc_traits::shm::Error::kind(&e),
                )));
            }
        };
        match self.rings.send_tx(token, clean) {
            Ok(notify) => {
                self.stats.messages_sent = self.stats.messages_sent.wrapping_add(1);
                self.stats.bytes_sent = self.stats.bytes_sent.wrapping_add(len as u64);
                if notify {
                    let q = self.rings.tx_queue();
                    self.kick(q);
                }
                Ok(())
            }
            Err(SendFailure { buf, error }) => {
                if let Some(buf) = buf {
                    self.rings.return_tx(TxSlot {
                        token,
                        room: slot.room,
                        buf: buf.recycle(),
                    });
                }
                Err(Error::Ring(error))
            }
        }
    }

    fn send_copy(&mut self, src: u32, dst: u32, data: &[u8]) -> Result<(), Error> {
        let mut slot = self.take_tx()?;
        let max = slot.room.saturating_sub(HEADER_LEN);
        if data.len() > max {
            self.rings.return_tx(slot);
            return Err(Error::TooLong {
                len: data.len(),
                max,
            });
        }
        if let Err(e) = slot.buf.write(HEADER_LEN, data) {
            self.rings.return_tx(slot);
            return Err(Error::Ring(vring::Error::Memory(
                ipc_traits::shm::Error::kind(&e),
            )));
        }
        self.finish_send(slot, src, dst, data.len())
    }

    /// Gives a received buffer back to the peer. A failure is never
    /// silent: it is counted ([`LinkStats::rx_return_failures`]) and marks
    /// the link broken ([`Link::is_broken`]), since the peer's pool is a
    /// buffer short from then on.
    fn release<S: crate::rings::Returnable>(
        &mut self,
        token: u16,
        buf: ShmBuf<'m, R::Mem, S>,
    ) -> Result<(), Error> {
        match self.rings.release_rx(token, buf) {
            Ok(notify) => {
                if notify {
                    let q = self.rings.rx_queue();
                    self.kick(q);
                }
                Ok(())
            }
            Err(e) => {
                self.stats.rx_return_failures = self.stats.rx_return_failures.wrapping_add(1);
                self.return_failed = true;
                Err(Error::Ring(e))
            }
        }
    }

    /// Announces again, after a restart, what was announced before; stops
    /// at the first missing transmit buffer and tries again next time.
    #[cold]
    fn reannounce(&mut self) {
        self.reannounce_owed = false;
        for k in 0..EPS {
            if !self.reannounce[k] {
                continue;
            }
            let (Some(name), Some(addr)) = (self.announced[k], self.endpoints.addr_of(k)) else {
                self.reannounce[k] = false;
                continue;
            };
            let bytes = NsMessage {
                name,
                addr,
                action: NsAction::Create,
            }
            .encode::<R::Order>();
            match self.rings.take_tx() {
                Ok(Some(slot)) => {
                    self.reannounce[k] = false;
                    let mut slot = slot;
                    if slot.buf.write(HEADER_LEN, &bytes).is_ok() {
                        // A failure here is counted by the ring; the service
                        // is then announced at the next restart at the latest.
                        let _sent = self.finish_send(slot, addr, NS_ADDR, bytes.len()).is_ok();
                    } else {
                        self.rings.return_tx(slot);
                    }
                }
                Ok(None) | Err(_) => {
                    // Owed still: tried again after the next operation.
                    self.reannounce_owed = true;
                    return;
                }
            }
        }
    }

    fn push_event(&mut self, ev: NsEvent) {
        match self.ns_events.iter_mut().find(|e| e.is_none()) {
            Some(free) => *free = Some(ev),
            None => self.stats.ns_events_dropped = self.stats.ns_events_dropped.wrapping_add(1),
        }
    }

    /// Delivers a message held for a callback endpoint into `scratch`.
    fn deliver(
        &mut self,
        dst: u32,
        item: Queued<'m, R::Mem>,
        scratch: &mut [u8],
    ) -> Result<Step<'m, R::Mem>, Error> {
        let Some(out) = scratch.get_mut(..item.len) else {
            // No handler at hand (`service`): keep it for `poll`.
            self.stalled = Some(Stalled::Callback { dst, item });
            return Ok(Step::Stalled);
        };
        let res = item.buf.read(HEADER_LEN, out);
        let (src, len) = (item.src, item.len);
        // A failed return is counted and breaks the link (`release`); the
        // message was copied and is delivered all the same.
        let _counted = self.release(item.token, item.buf).is_err();
        res.map_err(|e| Error::Ring(vring::Error::Memory(ipc_traits::shm::Error::kind(&e))))?;
        Ok(Step::Deliver { dst, src, len })
    }

    /// Receives and dispatches one message.
    fn step(&mut self, scratch: &mut [u8]) -> Result<Step<'m, R::Mem>, Error> {
        match self.stalled.take() {
            Some(Stalled::Queue { slot, item }) => {
                if let Err(item) = self.queues[slot].push(item) {
                    self.stalled = Some(Stalled::Queue { slot, item });
                    return Ok(Step::Stalled);
                }
            }
            Some(Stalled::Callback { dst, item }) => return self.deliver(dst, item, scratch),
            None => {}
        }
        let Some(RxSlot {
            token,
            len: used_len,
            buf,
        }) = self.rings.take_rx()?
        else {
            return Ok(Step::Idle);
        };
        // Only the header's lines first: rpmsg-lite reports the whole buffer
        // as used (§2.3), and a 16-byte message in a 512-byte buffer should
        // cost the lines it occupies, not the buffer's.
        let buf = match buf.invalidate_prefix(HEADER_LEN) {
            Ok(b) => b,
            Err((b, e)) => {
                // Only a memory that breaks its contract gets here; the
                // buffer still goes back to the peer.
                self.release(token, b)?;
                return Err(Error::Ring(vring::Error::Memory(
                    ipc_traits::shm::Error::kind(&e),
                )));
            }
        };
        // What the peer says it wrote, bounded by the slot and the link's
        // buffer size; then the header, then the header's length against it,
        // then the payload's lines.
        let used = used_len.min(u32::try_from(self.buf_size).unwrap_or(u32::MAX));
        let used_fits = usize::try_from(used).is_ok_and(|u| u <= buf.capacity());
        let head = match buf.validate(used.min(HEADER_LEN as u32)) {
            Ok(r) if used_fits => r,
            Ok(r) => {
                self.stats.rx_bad_header = self.stats.rx_bad_header.wrapping_add(1);
                self.release(token, r)?;
                return Ok(Step::Handled);
            }
            Err((b, _)) => {
                self.stats.rx_bad_header = self.stats.rx_bad_header.wrapping_add(1);
                self.release(token, b)?;
                return Ok(Step::Handled);
            }
        };
        let mut hb = [0u8; HEADER_LEN];
        let header = match head.read(0, &mut hb) {
            Ok(()) => Header::decode::<R::Order>(&hb),
            Err(_) => {
                self.stats.rx_bad_header = self.stats.rx_bad_header.wrapping_add(1);
                self.release(token, head)?;
                return Ok(Step::Handled);
            }
        };
        let checked = header.check_len(used as usize, self.buf_size);
        let len = match checked {
            Ok(l) => l,
            Err(_) => {
                self.stats.rx_bad_header = self.stats.rx_bad_header.wrapping_add(1);
                self.release(token, head)?;
                return Ok(Step::Handled);
            }
        };
        // `HEADER_LEN + len <= used <= capacity` (checked above).
        let readable = match head.extend_to((HEADER_LEN + len) as u32) {
            Ok(r) => r,
            Err((b, _)) => {
                self.stats.rx_bad_header = self.stats.rx_bad_header.wrapping_add(1);
                self.release(token, b)?;
                return Ok(Step::Handled);
            }
        };
        if header.dst == NS_ADDR {
            self.handle_ns(&readable, len);
            self.release(token, readable)?;
            return Ok(Step::Handled);
        }
        let Some(slot) = self.endpoints.slot_of(header.dst) else {
            self.stats.rx_unbound = self.stats.rx_unbound.wrapping_add(1);
            self.release(token, readable)?;
            return Ok(Step::Handled);
        };
        self.count_rx(len);
        let item = Queued {
            token,
            src: header.src,
            len,
            buf: readable,
        };
        match self.modes[slot] {
            RxMode::Callback => self.deliver(header.dst, item, scratch),
            RxMode::Queue => {
                if let Err(item) = self.queues[slot].push(item) {
                    self.stats.rx_queue_stalls = self.stats.rx_queue_stalls.wrapping_add(1);
                    self.stalled = Some(Stalled::Queue { slot, item });
                    return Ok(Step::Stalled);
                }
                Ok(Step::Handled)
            }
        }
    }

    fn count_rx(&mut self, len: usize) {
        self.stats.messages_received = self.stats.messages_received.wrapping_add(1);
        self.stats.bytes_received = self.stats.bytes_received.wrapping_add(len as u64);
    }

    fn handle_ns(&mut self, buf: &ShmBuf<'m, R::Mem, Readable>, len: usize) {
        if !self.ns_enabled {
            self.stats.ns_disabled = self.stats.ns_disabled.wrapping_add(1);
            return;
        }
        let mut raw = [0u8; NS_MSG_LEN];
        if len != NS_MSG_LEN || buf.read(HEADER_LEN, &mut raw).is_err() {
            self.stats.ns_malformed = self.stats.ns_malformed.wrapping_add(1);
            return;
        }
        let msg = match NsMessage::decode::<R::Order>(&raw) {
            Ok(m) => m,
            Err(_) => {
                self.stats.ns_malformed = self.stats.ns_malformed.wrapping_add(1);
                return;
            }
        };
        if NsMessage::name_is_cut(&raw) {
            self.stats.ns_name_truncated = self.stats.ns_name_truncated.wrapping_add(1);
        }
        let change = match msg.action {
            NsAction::Create => self.directory.announce(msg.name, msg.addr),
            NsAction::Destroy => self.directory.destroy(msg.name, msg.addr),
        };
        match change {
            Ok(DirectoryChange::Added(s)) | Ok(DirectoryChange::Moved { service: s, .. }) => {
                self.push_event(NsEvent::Created(s));
            }
            Ok(DirectoryChange::Removed(s)) => self.push_event(NsEvent::Destroyed(s)),
            Ok(DirectoryChange::Unchanged(_)) => {}
            Err(DirectoryError::Full) => {
                self.stats.ns_directory_full = self.stats.ns_directory_full.wrapping_add(1);
            }
            Err(DirectoryError::UnknownService) => {
                self.stats.ns_unknown_destroy = self.stats.ns_unknown_destroy.wrapping_add(1);
            }
        }
    }
}

/// A message lent by [`Link::try_recv_held`]; returned to the peer on drop.
#[must_use = "dropping a held message returns its buffer at once"]
pub struct HeldMessage<
    'l,
    'm,
    R: Rings<'m>,
    N: Notify,
    const EPS: usize,
    const Q: usize,
    const SVC: usize,
    const BUF: usize,
> {
    link: &'l Link<'m, R, N, EPS, Q, SVC, BUF>,
    item: Option<Queued<'m, R::Mem>>,
    generation: u32,
}

impl<
        'm,
        R: Rings<'m>,
        N: Notify,
        const EPS: usize,
        const Q: usize,
        const SVC: usize,
        const BUF: usize,
    > HeldMessage<'_, 'm, R, N, EPS, Q, SVC, BUF>
{
    /// Whether the link restarted since this message was lent (then every
    /// access is [`Error::Reset`]).
    pub fn is_stale(&self) -> bool {
        self.link.generation.get() != self.generation
    }

    /// The sender's address.
    pub fn src(&self) -> u32 {
        self.item.as_ref().map_or(0, |i| i.src)
    }

    /// The payload length.
    pub fn len(&self) -> usize {
        self.item.as_ref().map_or(0, |i| i.len)
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Copies payload bytes from `at` into `out`.
    ///
    /// # Errors
    ///
    /// [`Error::TooLong`] if the range exceeds the payload.
    pub fn read(&self, at: usize, out: &mut [u8]) -> Result<(), Error> {
        if self.is_stale() {
            return Err(Error::Reset);
        }
        let item = self.item.as_ref().ok_or(Error::NoSuchEndpoint)?;
        let end = at
            .checked_add(out.len())
            .filter(|&e| e <= item.len)
            .ok_or(Error::TooLong {
                len: at.saturating_add(out.len()),
                max: item.len,
            })?;
        let _ = end;
        item.buf
            .read(HEADER_LEN + at, out)
            .map_err(|e| Error::Ring(vring::Error::Memory(ipc_traits::shm::Error::kind(&e))))
    }
}

impl<
        'm,
        R: Rings<'m>,
        N: Notify,
        const EPS: usize,
        const Q: usize,
        const SVC: usize,
        const BUF: usize,
    > HeldMessage<'_, 'm, R, N, EPS, Q, SVC, BUF>
where
    R::Mem: DirectMemory,
{
    /// The payload, zero-copy, as a view whose accessors copy or compare
    /// ([`ShmSlice`]: `len`, `read_at`, `copy_to`, `get`, `==`, `bytes`):
    /// the buffer is shared memory the peer could still write, so no
    /// `&[u8]` over it is lent.
    ///
    /// # Errors
    ///
    /// [`Error::Reset`] if the link restarted since the message was lent.
    pub fn payload(&self) -> Result<ShmSlice<'_>, Error> {
        if self.is_stale() {
            return Err(Error::Reset);
        }
        let item = self.item.as_ref().ok_or(Error::NoSuchEndpoint)?;
        // `HEADER_LEN + len` is the buffer's readable length (`step`).
        item.buf
            .view()
            .subslice(HEADER_LEN, item.len)
            .map_err(|_| Error::TooLong {
                len: item.len,
                max: item.buf.len().saturating_sub(HEADER_LEN),
            })
    }
}

impl<
        'm,
        R: Rings<'m>,
        N: Notify,
        const EPS: usize,
        const Q: usize,
        const SVC: usize,
        const BUF: usize,
    > Drop for HeldMessage<'_, 'm, R, N, EPS, Q, SVC, BUF>
{
    fn drop(&mut self) {
        if let Some(item) = self.item.take() {
            // A buffer of an ended session never goes to the new rings.
            if !self.is_stale() {
                self.link.give_back(item.token, item.buf);
            }
        }
    }
}

/// A transmit buffer lent by [`Link::try_alloc_tx`]; returned to the link
/// if dropped unsent.
///
/// The buffer still holds whatever it carried before (an earlier message,
/// possibly of another endpoint), so only bytes of this lending are ever
/// sent: a payload byte the application did not write, through
/// [`TxBuffer::write`] or [`TxBuffer::payload_mut`], goes out as 0.
#[must_use = "dropping a transmit buffer returns it unsent"]
pub struct TxBuffer<
    'l,
    'm,
    R: Rings<'m>,
    N: Notify,
    const EPS: usize,
    const Q: usize,
    const SVC: usize,
    const BUF: usize,
> {
    link: &'l Link<'m, R, N, EPS, Q, SVC, BUF>,
    slot: Option<TxSlot<'m, R::Mem>>,
    /// The payload length to send.
    len: usize,
    /// Payload bytes `..written` belong to this lending (written by the
    /// application or zeroed by us); always `len <= written`.
    written: usize,
    generation: u32,
}

impl<
        'm,
        R: Rings<'m>,
        N: Notify,
        const EPS: usize,
        const Q: usize,
        const SVC: usize,
        const BUF: usize,
    > TxBuffer<'_, 'm, R, N, EPS, Q, SVC, BUF>
{
    /// Whether the link restarted since this buffer was lent (then it can
    /// no longer be written or sent: [`Error::Reset`]).
    pub fn is_stale(&self) -> bool {
        self.link.generation.get() != self.generation
    }

    /// Payload bytes this buffer holds.
    pub fn capacity(&self) -> usize {
        self.slot
            .as_ref()
            .map_or(0, |s| s.room.saturating_sub(HEADER_LEN))
    }

    /// Copies `bytes` to payload offset `at`; the payload length grows to
    /// cover them. Payload bytes before `at` not yet written in this lending
    /// become 0.
    ///
    /// # Errors
    ///
    /// [`Error::TooLong`] beyond the capacity; [`Error::Reset`].
    pub fn write(&mut self, at: usize, bytes: &[u8]) -> Result<(), Error> {
        if self.is_stale() {
            return Err(Error::Reset);
        }
        let cap = self.capacity();
        let end = at
            .checked_add(bytes.len())
            .filter(|&e| e <= cap)
            .ok_or(Error::TooLong {
                len: at.saturating_add(bytes.len()),
                max: cap,
            })?;
        self.zero_up_to(at)?;
        let slot = self.slot.as_mut().ok_or(Error::NoSuchEndpoint)?;
        slot.buf.write(HEADER_LEN + at, bytes).map_err(mem_error)?;
        self.written = self.written.max(end);
        self.len = self.len.max(end);
        Ok(())
    }

    /// Sets the payload length. Payload bytes up to `len` not written in
    /// this lending are sent as 0, never as what the buffer held before.
    ///
    /// # Errors
    ///
    /// [`Error::TooLong`] beyond the capacity; [`Error::Reset`].
    pub fn set_len(&mut self, len: usize) -> Result<(), Error> {
        if self.is_stale() {
            return Err(Error::Reset);
        }
        let cap = self.capacity();
        if len > cap {
            return Err(Error::TooLong { len, max: cap });
        }
        self.zero_up_to(len)?;
        self.len = len;
        Ok(())
    }

    /// Zeroes the payload bytes from the end of what this lending wrote up
    /// to `to` (nothing if it wrote that far already).
    fn zero_up_to(&mut self, to: usize) -> Result<(), Error> {
        const ZEROS: [u8; 64] = [0; 64];
        let slot = self.slot.as_mut().ok_or(Error::NoSuchEndpoint)?;
        while self.written < to {
            let n = (to - self.written).min(ZEROS.len());
            slot.buf
                .write(HEADER_LEN + self.written, &ZEROS[..n])
                .map_err(mem_error)?;
            self.written += n;
        }
        Ok(())
    }

    /// Sends the payload (its length as `write`, `payload_mut` and
    /// `set_len` left it) from `ep` to `dst`.
    ///
    /// # Errors
    ///
    /// [`Error::NoSuchEndpoint`] (the buffer goes back to the link), ring
    /// errors.
    pub fn send(mut self, ep: &Endpoint, dst: u32) -> Result<(), Error> {
        if self.is_stale() {
            return Err(Error::Reset);
        }
        let Some(slot) = self.slot.take() else {
            return Err(Error::NoSuchEndpoint);
        };
        let len = self.len;
        let link = self.link;
        link.with(|i| match i.check(ep) {
            Ok(()) => i.finish_send(slot, ep.addr, dst, len),
            Err(e) => {
                i.rings.return_tx(slot);
                Err(e)
            }
        })
    }
}

impl<
        'm,
        R: Rings<'m>,
        N: Notify,
        const EPS: usize,
        const Q: usize,
        const SVC: usize,
        const BUF: usize,
    > TxBuffer<'_, 'm, R, N, EPS, Q, SVC, BUF>
where
    R::Mem: DirectMemory,
{
    /// The first `len` payload bytes, zero-copy, as a writable view to
    /// fill in place ([`ShmSliceMut`]: `write_at`, `copy_from`, `fill`);
    /// the payload length grows to cover them (as with
    /// [`TxBuffer::write`]).
    ///
    /// Bytes of the view not yet written in this lending are sent as 0:
    /// they are zeroed before the view is lent (the link cannot see which
    /// bytes the application then writes, so it clears what it lends, and
    /// only that: ask for the length to send, not the capacity).
    ///
    /// # Errors
    ///
    /// [`Error::TooLong`] beyond the capacity; [`Error::Reset`] if the link
    /// restarted since the buffer was lent.
    pub fn payload_mut(&mut self, len: usize) -> Result<ShmSliceMut<'_>, Error> {
        if self.is_stale() {
            return Err(Error::Reset);
        }
        let cap = self.capacity();
        if len > cap {
            return Err(Error::TooLong { len, max: cap });
        }
        let slot = self.slot.as_mut().ok_or(Error::NoSuchEndpoint)?;
        let too_long = Error::TooLong { len, max: cap };
        if self.written < len {
            slot.buf
                .view_mut(HEADER_LEN + self.written, len - self.written)
                .map_err(|_| too_long)?
                .fill(0);
            self.written = len;
        }
        self.len = self.len.max(len);
        slot.buf.view_mut(HEADER_LEN, len).map_err(|_| too_long)
    }
}

impl<
        'm,
        R: Rings<'m>,
        N: Notify,
        const EPS: usize,
        const Q: usize,
        const SVC: usize,
        const BUF: usize,
    > Drop for TxBuffer<'_, 'm, R, N, EPS, Q, SVC, BUF>
{
    fn drop(&mut self) {
        if self.is_stale() {
            return;
        }
        if let Some(slot) = self.slot.take() {
            match self.link.inner.try_borrow_mut() {
                Ok(mut i) => i.rings.return_tx(slot),
                Err(_) => self.link.leaked.set(self.link.leaked.get().wrapping_add(1)),
            }
        }
    }
}
