//! Endpoint queues: messages for several local endpoints, each consumed by
//! its own task (the old `RxMode::Queue`), as a layer over the receive
//! half.
//!
//! ```ignore
//! static QUEUES: StaticCell<Queues<'static, Mem, 4, 8>> = StaticCell::new();
//! let (mut tx, rx) = link.split();
//! let mut eps = Endpoints::new(rx, QUEUES.init(Queues::new()))?;
//! // task A                                  // task B
//! eps.try_recv(&ep_a, &mut buf_a)?;          eps.try_recv_held(&ep_b)?;
//! ```
//!
//! - Capacity lives in a storage value, [`Queues<'a, M, EPS, Q>`](Queues):
//!   `Q` messages for each of `EPS` endpoints (the endpoints of the link's
//!   [`super::Storage`], by slot). It holds the ring buffers themselves:
//!   queuing never copies.
//! - One pass where possible: [`Endpoints::try_recv`] for an endpoint whose
//!   queue is empty takes messages off the ring until one is for it, and
//!   delivers that one straight from the ring; only messages for other
//!   endpoints met on the way are queued.
//! - Back-pressure, never loss: a message whose endpoint's queue is full
//!   stops reception ([`Endpoints::is_stalled`], counted in
//!   [`QueueStats::stalls`]) until that endpoint takes one; the peer runs
//!   out of buffers meanwhile and waits.
//! - Messages for addresses nobody bound are counted and given back, as by
//!   [`Rx::try_recv`].
//!
//! The layer is `&mut`: tasks of one executor share it through the
//! executor's mutex (or a critical-section mutex), as they would share the
//! receive half. It costs the plain receive half nothing: an application
//! that never names [`Endpoints`] links none of this.
//!
//! Design notes: the queues belong to one session. After a restart
//! ([`super::Link::restart`]) call [`Queues::forget_session`] before
//! building the layer again: old buffers are never handed to the new
//! rings.

use core::fmt;

use crate::rings::{Halves, RxRing};
use crate::Error;

use super::{bound_slot, Endpoint, HeldMessage, Msg, Received, Rx};

/// A message and the storage slot of its endpoint.
type Slotted<'a, M> = (usize, Msg<'a, M>);

/// One endpoint's ring of queued messages (indices into its `Q` slots).
#[derive(Debug, Clone, Copy, Default)]
struct Fifo {
    head: usize,
    len: usize,
}

/// Counters of the queue layer (wrapping).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueStats {
    /// Times reception stopped because an endpoint's queue was full.
    pub stalls: u32,
    /// Messages queued (for an endpoint other than the one receiving);
    /// a message delivered straight off the ring is not.
    pub queued: u32,
    /// Queued messages given back undelivered: [`Endpoints::discard`], or
    /// their endpoint was unbound while they waited.
    pub discarded: u32,
    /// Queued messages dropped by [`Queues::forget_session`] (lost at a
    /// restart).
    pub lost_at_reset: u32,
}

/// The storage of the queue layer: `Q` held messages for each of `EPS`
/// endpoints, plus the one reception stopped at. `M` is the shared memory
/// the buffers live in; `'a` its lifetime (the link's).
pub struct Queues<'a, M: ?Sized, const EPS: usize, const Q: usize> {
    items: [[Option<Msg<'a, M>>; Q]; EPS],
    fifos: [Fifo; EPS],
    stalled: Option<Slotted<'a, M>>,
    stats: QueueStats,
}

impl<M: ?Sized, const EPS: usize, const Q: usize> fmt::Debug for Queues<'_, M, EPS, Q> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queues")
            .field("queued", &self.fifos.map(|q| q.len))
            .field("stalled", &self.stalled.is_some())
            .field("stats", &self.stats)
            .finish()
    }
}

impl<'a, M: ?Sized, const EPS: usize, const Q: usize> Queues<'a, M, EPS, Q> {
    /// Empty queues.
    pub const fn new() -> Self {
        const { assert!(Q > 0, "endpoint queues need at least one slot") };
        Self {
            items: [const { [const { None }; Q] }; EPS],
            fifos: [Fifo { head: 0, len: 0 }; EPS],
            stalled: None,
            stats: QueueStats {
                stalls: 0,
                queued: 0,
                discarded: 0,
                lost_at_reset: 0,
            },
        }
    }

    /// Drops every message held, without giving the buffers back (the
    /// session they belong to ended: the rings they came from are gone)
    /// and returns how many there were; counted in
    /// [`QueueStats::lost_at_reset`]. Call it after a restart
    /// ([`super::Link::restart`]), before [`Endpoints::new`].
    pub fn forget_session(&mut self) -> u32 {
        let mut lost = u32::from(self.stalled.take().is_some());
        for q in self.items.iter_mut() {
            for item in q.iter_mut() {
                lost += u32::from(item.take().is_some());
            }
        }
        self.fifos = [Fifo::default(); EPS];
        self.stats.lost_at_reset = self.stats.lost_at_reset.wrapping_add(lost);
        lost
    }

    /// The layer's counters.
    pub fn stats(&self) -> QueueStats {
        self.stats
    }
}

impl<M: ?Sized, const EPS: usize, const Q: usize> Default for Queues<'_, M, EPS, Q> {
    fn default() -> Self {
        Self::new()
    }
}

/// The receive half with a queue for each endpoint (module docs).
pub struct Endpoints<'l, 'a, R: Halves<'a>, N> {
    rx: Rx<'l, 'a, R, N>,
    /// `EPS * q` slots, endpoint `k`'s at `k * q..(k + 1) * q`.
    items: &'l mut [Option<Msg<'a, R::Mem>>],
    fifos: &'l mut [Fifo],
    stalled: &'l mut Option<Slotted<'a, R::Mem>>,
    stats: &'l mut QueueStats,
    q: usize,
}

impl<'a, R: Halves<'a>, N> fmt::Debug for Endpoints<'_, 'a, R, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoints")
            .field("endpoints", &self.rx.eps)
            .field("stalled", &self.stalled.is_some())
            .field("stats", &*self.stats)
            .finish_non_exhaustive()
    }
}

impl<'l, 'a, R: Halves<'a>, N: ipc_traits::mailbox::Notify> Endpoints<'l, 'a, R, N> {
    /// The queue layer over `rx`, with its queues in `queues` (which may
    /// still hold messages an earlier layer over the same link queued).
    ///
    /// # Errors
    ///
    /// [`Error::TableFull`] when `queues` has fewer endpoints than
    /// the link's storage: every endpoint needs a queue.
    pub fn new<const EPS: usize, const Q: usize>(
        rx: Rx<'l, 'a, R, N>,
        queues: &'l mut Queues<'a, R::Mem, EPS, Q>,
    ) -> Result<Self, Error> {
        if EPS < rx.eps.len() {
            return Err(Error::TableFull);
        }
        let Queues {
            items,
            fifos,
            stalled,
            stats,
        } = queues;
        Ok(Self {
            rx,
            items: items.as_flattened_mut(),
            fifos,
            stalled,
            stats,
            q: Q,
        })
    }

    /// Gives the receive half back (queued messages stay in the storage).
    pub fn into_rx(self) -> Rx<'l, 'a, R, N> {
        self.rx
    }

    /// Copies the oldest message for `ep` into `out` and gives its buffer
    /// back, from `ep`'s queue or (queue empty) straight off the ring.
    /// `Ok(None)`: nothing for `ep` now; the ring is empty and re-armed, or
    /// reception is stalled on another endpoint's full queue
    /// ([`Endpoints::is_stalled`]: that endpoint's consumer restarts it).
    ///
    /// # Errors
    ///
    /// [`Error::NoSuchEndpoint`] (`ep` is not bound on this link);
    /// [`Error::TooLong`] when `out` is shorter than the message (it stays
    /// first in line); as [`Rx::try_recv`].
    pub fn try_recv(&mut self, ep: &Endpoint, out: &mut [u8]) -> Result<Option<Received>, Error> {
        let k = self.slot_of(ep)?;
        let Some(m) = self.next_for(k, out.len())? else {
            return Ok(None);
        };
        let res = m.read(self.rx.st.ring.mem(), 0, &mut out[..m.len()]);
        let got = Received {
            dst: m.dst,
            src: m.src,
            len: m.len(),
        };
        self.rx.give_back(m.slot);
        res?;
        Ok(Some(got))
    }

    /// As [`Endpoints::try_recv`], but lends the buffer ([`HeldMessage`],
    /// given back when dropped).
    ///
    /// # Errors
    ///
    /// As [`Endpoints::try_recv`] (never [`Error::TooLong`]).
    pub fn try_recv_held(
        &mut self,
        ep: &Endpoint,
    ) -> Result<Option<HeldMessage<'_, 'a, R, N>>, Error> {
        let k = self.slot_of(ep)?;
        let Some(m) = self.next_for(k, usize::MAX)? else {
            return Ok(None);
        };
        Ok(Some(HeldMessage {
            st: &mut *self.rx.st,
            bell: self.rx.bell,
            msg: m,
        }))
    }

    /// Moves every message waiting in the ring to its endpoint's queue
    /// (from an interrupt, or before the consumers run). `Ok(true)`: the
    /// ring is empty and re-armed; `Ok(false)`: reception is stalled on a
    /// full queue.
    ///
    /// # Errors
    ///
    /// As [`Rx::try_recv`].
    pub fn pump(&mut self) -> Result<bool, Error> {
        if !self.admit_stalled() {
            return Ok(false);
        }
        for _ in 0..<R::Rx as RxRing<'a>>::NUM + 1 {
            let Some((s, m)) = self.rx.next_slot()? else {
                return Ok(true);
            };
            if !self.queue(s, m) {
                return Ok(false);
            }
        }
        Err(Error::WouldBlock)
    }

    /// Gives back every message queued for `ep` undelivered (before
    /// unbinding it); returns how many (counted in
    /// [`QueueStats::discarded`]).
    ///
    /// # Errors
    ///
    /// [`Error::NoSuchEndpoint`].
    pub fn discard(&mut self, ep: &Endpoint) -> Result<u32, Error> {
        let k = self.slot_of(ep)?;
        let mut n = 0;
        while let Some(m) = self.pop(k) {
            self.rx.give_back(m.slot);
            n += 1;
        }
        if matches!(*self.stalled, Some((s, _)) if s == k) {
            if let Some((_, m)) = self.stalled.take() {
                self.rx.give_back(m.slot);
                n += 1;
            }
        }
        self.stats.discarded = self.stats.discarded.wrapping_add(n);
        Ok(n)
    }

    /// Messages waiting for `ep` (queued, or the one reception stopped at);
    /// 0 for an endpoint not bound here.
    pub fn queued(&self, ep: &Endpoint) -> usize {
        self.slot(ep).map_or(0, |k| self.queued_at(k))
    }

    /// Whether reception is stopped by a full queue.
    pub fn is_stalled(&self) -> bool {
        self.stalled.is_some()
    }

    /// The layer's counters.
    pub fn stats(&self) -> QueueStats {
        *self.stats
    }

    /// The receive half's counters.
    pub fn rx_stats(&self) -> super::RxStats {
        self.rx.stats()
    }

    /// Rings every doorbell still owed (see [`Rx::flush`]).
    pub fn flush(&mut self) {
        self.rx.flush();
    }

    /// The peer rang `queues` (see [`Rx::on_notify`]).
    pub fn on_notify(&mut self, queues: ipc_traits::mailbox::QueueSet) {
        self.rx.on_notify(queues);
    }

    /// Whether a doorbell is still owed to the peer (see
    /// [`super::Tx::owes_doorbell`]).
    pub fn owes_doorbell(&self) -> bool {
        self.rx.owes_doorbell()
    }

    /// `ep`'s slot in the storage, if bound on this link.
    pub(super) fn slot(&self, ep: &Endpoint) -> Option<usize> {
        self.rx.eps.iter().position(|a| *a == ep.addr)
    }

    /// Messages waiting for the endpoint at storage slot `k`.
    pub(super) fn queued_at(&self, k: usize) -> usize {
        let stalled = matches!(*self.stalled, Some((s, _)) if s == k);
        self.fifos.get(k).map_or(0, |f| f.len) + usize::from(stalled)
    }

    fn slot_of(&self, ep: &Endpoint) -> Result<usize, Error> {
        self.rx
            .eps
            .iter()
            .position(|a| *a == ep.addr)
            .ok_or(Error::NoSuchEndpoint)
    }

    /// The next message for slot `k` whose payload fits `room`: its queue
    /// first, then the message reception stopped at, then the ring
    /// (queuing what is for others on the way).
    fn next_for(&mut self, k: usize, room: usize) -> Result<Option<Msg<'a, R::Mem>>, Error> {
        loop {
            let f = self.fifos[k];
            if f.len == 0 {
                break;
            }
            let len = self.items[k * self.q + f.head]
                .as_ref()
                .map_or(0, |m| m.len());
            if len > room {
                return Err(Error::TooLong);
            }
            let Some(m) = self.pop(k) else { break };
            if self.rx.eps.get(k) != Some(&m.dst) {
                // Its endpoint was unbound (and the slot maybe bound
                // again) while it waited: never delivered to another.
                self.stats.discarded = self.stats.discarded.wrapping_add(1);
                self.rx.give_back(m.slot);
                continue;
            }
            // A place came free: the message reception stopped at (for
            // this queue) goes in behind, and reception resumes.
            self.admit_stalled();
            return Ok(Some(m));
        }
        if let Some((s, m)) = self.stalled.take() {
            if s == k {
                if m.len() > room {
                    *self.stalled = Some((s, m));
                    return Err(Error::TooLong);
                }
                return Ok(Some(m));
            }
            *self.stalled = Some((s, m));
            if !self.admit_stalled() {
                return Ok(None);
            }
        }
        for _ in 0..<R::Rx as RxRing<'a>>::NUM + 1 {
            let Some((s, m)) = self.rx.next_slot()? else {
                return Ok(None);
            };
            if s == k {
                if m.len() > room {
                    self.queue(s, m);
                    return Err(Error::TooLong);
                }
                return Ok(Some(m));
            }
            if !self.queue(s, m) {
                return Ok(None);
            }
        }
        Err(Error::WouldBlock)
    }

    /// Queues `m` for slot `s`; a full queue stalls reception on it
    /// (`false`).
    fn queue(&mut self, s: usize, m: Msg<'a, R::Mem>) -> bool {
        let f = &mut self.fifos[s];
        if f.len == self.q {
            self.stats.stalls = self.stats.stalls.wrapping_add(1);
            *self.stalled = Some((s, m));
            return false;
        }
        let at = s * self.q + (f.head + f.len) % self.q;
        f.len += 1;
        self.items[at] = Some(m);
        self.stats.queued = self.stats.queued.wrapping_add(1);
        true
    }

    /// Moves the message reception stopped at into its queue if there is
    /// room now; `false` while reception stays stalled.
    fn admit_stalled(&mut self) -> bool {
        let Some((s, m)) = self.stalled.take() else {
            return true;
        };
        let f = &mut self.fifos[s];
        if f.len == self.q {
            *self.stalled = Some((s, m));
            return false;
        }
        let at = s * self.q + (f.head + f.len) % self.q;
        f.len += 1;
        self.items[at] = Some(m);
        self.stats.queued = self.stats.queued.wrapping_add(1);
        true
    }

    fn pop(&mut self, k: usize) -> Option<Msg<'a, R::Mem>> {
        let f = &mut self.fifos[k];
        if f.len == 0 {
            return None;
        }
        let at = k * self.q + f.head;
        f.head = (f.head + 1) % self.q;
        f.len -= 1;
        self.items[at].take()
    }
}

impl<'a, R: Halves<'a>, N: ipc_traits::mailbox::Notify> Rx<'_, 'a, R, N> {
    /// The next deliverable message and its endpoint's slot in the
    /// storage, skipping (counted, given back) what cannot be delivered,
    /// at most a ring's worth: [`Rx::next`] for the queue layer.
    fn next_slot(&mut self) -> Result<Option<Slotted<'a, R::Mem>>, Error> {
        if let Some(m) = self.st.kept.take() {
            if let Some(s) = bound_slot(self.eps, m.dst) {
                vring::count!(self.st.stats.messages);
                return Ok(Some((s, m)));
            }
            self.st.stats.unbound = self.st.stats.unbound.wrapping_add(1);
            self.give_back(m.slot);
        }
        for _ in 0..<R::Rx as RxRing<'a>>::NUM + 1 {
            let Some(slot) = self.take_slot()? else {
                return Ok(None);
            };
            if let Some(m) = self.frame(slot)? {
                if let Some(s) = bound_slot(self.eps, m.dst) {
                    vring::count!(self.st.stats.messages);
                    return Ok(Some((s, m)));
                }
                self.st.stats.unbound = self.st.stats.unbound.wrapping_add(1);
                self.give_back(m.slot);
            }
        }
        Err(Error::WouldBlock)
    }
}
