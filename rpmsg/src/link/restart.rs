//! Session and restart: the link goes on over fresh rings after the peer
//! reset (a Linux master resetting the vdev: the status through 0 back to
//! `DRIVER_OK`, seen by [`crate::rsc_table::VdevWatch`]; or a new session
//! word, [`crate::session`]).
//!
//! ```ignore
//! // The remote, when VdevWatch reports the reset and the vdev is back:
//! drop(halves);                                  // end the split borrow
//! let report = link.restart(fresh_rings);        // lost, unconfirmed
//! report.lost += queues.forget_session();        // if the queue layer is used
//! dir.on_peer_reset();                           // if the name service is
//! announcements.on_restart();
//! let (mut tx, rx) = link.split();
//! while announcements.reannounce(&mut tx)? > 0 { /* wait for buffers */ }
//! ```
//!
//! - [`Link::restart`] swaps the rings in one step: the remote, whose
//!   master laid the rings out again.
//! - [`Link::end_session`] / [`Link::release_session`] then
//!   [`Ended::restart`]: the two steps of a side that must count what the
//!   old rings still hold before their memory is laid out again (the master
//!   owns the ring memory). [`Ended`] has no rings: nothing can be sent or
//!   received in between, by construction.
//! - [`Announcements`] remembers what was announced and announces it again
//!   on the new rings, as soon as transmit buffers exist.
//!
//! Nothing of an old session is delivered in the new one: a message kept
//! by a too-short receive is dropped and counted lost; held messages and
//! lent transmit buffers borrow the halves, so they are gone before a
//! restart can be called. Local endpoints stay bound; doorbells owed to
//! the old session are forgotten. The counters of the halves go on.

use core::fmt;
use core::marker::PhantomData;

use ipc_traits::mailbox::Notify;

use crate::rings::Halves;
use crate::wire::Name;
use crate::Error;

use super::{Bell, Endpoint, Link, RxState, RxStats, Sent, Tx, TxState, TxStats};

/// What a restart tore down.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RestartReport {
    /// Received messages dropped: kept by a too-short receive, and (with
    /// [`Link::release_session`]) those the peer had made available that
    /// this side had not taken yet. Messages held by the queue layer are
    /// counted by [`super::queues::Queues::forget_session`].
    pub lost: u32,
    /// Sent messages whose buffers had not come back: delivered or lost,
    /// the peer's session ended before it said which (0 on the remote,
    /// which never learns when the master reads).
    pub unconfirmed: u32,
}

/// A link between two sessions: no rings, so nothing to send or receive
/// (from [`Link::end_session`]); [`Ended::restart`] gives the link back
/// over new rings.
pub struct Ended<'a, R: Halves<'a>, N> {
    bell: Bell<N>,
    eps: &'a mut [u32],
    next_dynamic: u32,
    tx_stats: TxStats,
    rx_stats: RxStats,
    _rings: PhantomData<R>,
}

impl<'a, R: Halves<'a>, N> fmt::Debug for Ended<'a, R, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ended")
            .field("endpoints", &self.eps)
            .finish_non_exhaustive()
    }
}

impl<'a, R: Halves<'a>, N: Notify> Ended<'a, R, N> {
    /// The link again, over `rings` (the new session's), with its
    /// endpoints and counters.
    pub fn restart(self, rings: R) -> Link<'a, R, N> {
        let (tx, rx) = rings.into_halves();
        Link {
            tx: TxState {
                ring: tx,
                stats: self.tx_stats,
            },
            rx: RxState {
                ring: rx,
                stats: self.rx_stats,
                kept: None,
                return_failed: false,
            },
            bell: self.bell,
            eps: self.eps,
            next_dynamic: self.next_dynamic,
        }
    }

    /// The notifier back, the link given up.
    pub fn into_notifier(self) -> N {
        self.bell.into_inner()
    }
}

impl<'a, R: Halves<'a>, N: Notify> Link<'a, R, N> {
    /// Restarts the link over fresh `rings` after the peer reset: what the
    /// old rings still held is counted ([`RestartReport`]) and dropped,
    /// never delivered; doorbells owed to the old session are forgotten.
    /// Endpoints stay bound.
    ///
    /// The unconfirmed count reads the old rings' memory: a master that
    /// lays its rings out again in the same memory ends the session first
    /// ([`Link::end_session`]).
    ///
    /// The old rings hold their per-entry tables
    /// ([`crate::rings::RemoteTables`], [`vring::DeviceTables`]) until
    /// this returns, so `rings` were built over other tables; to build the
    /// new rings over the same ones, end the session first
    /// ([`Link::end_session`] or [`Link::release_session`], which drop the
    /// old rings), then [`Ended::restart`].
    pub fn restart(&mut self, rings: R) -> RestartReport {
        let (tx, rx) = rings.into_halves();
        let old_tx = core::mem::replace(&mut self.tx.ring, tx);
        let old_rx = core::mem::replace(&mut self.rx.ring, rx);
        let lost = u32::from(self.rx.kept.take().is_some());
        self.rx.return_failed = false;
        self.bell.forget();
        RestartReport {
            lost,
            unconfirmed: R::from_halves(old_tx, old_rx).unconfirmed_tx(),
        }
    }

    /// Ends the session (the first half of a restart): counts what the old
    /// rings hold (their memory must still be intact) and gives up the
    /// rings; [`Ended::restart`] continues over new ones.
    pub fn end_session(self) -> (Ended<'a, R, N>, RestartReport) {
        self.end(false)
    }

    /// As [`Link::end_session`], and also counts as lost the messages the
    /// peer had made available on the receive ring that this side had not
    /// taken, read from the old rings. Call it only while they are intact:
    /// a remote whose master restarted, before the master lays the rings
    /// out again (the session handshake of [`crate::session`] tells: the
    /// new master word still has `peer_session` 0), or a master whose
    /// remote restarted (the master owns the ring memory). Then every
    /// message is accounted for: delivered, lost, or unconfirmed.
    pub fn release_session(self) -> (Ended<'a, R, N>, RestartReport) {
        self.end(true)
    }

    fn end(self, count_ring: bool) -> (Ended<'a, R, N>, RestartReport) {
        let Link {
            tx,
            mut rx,
            bell,
            eps,
            next_dynamic,
        } = self;
        let lost = u32::from(rx.kept.take().is_some());
        let mut old = R::from_halves(tx.ring, rx.ring);
        let untaken = if count_ring { old.untaken_rx() } else { 0 };
        let report = RestartReport {
            lost: lost + untaken,
            unconfirmed: old.unconfirmed_tx(),
        };
        bell.forget();
        (
            Ended {
                bell,
                eps,
                next_dynamic,
                tx_stats: tx.stats,
                rx_stats: rx.stats,
                _rings: PhantomData,
            },
            report,
        )
    }
}

/// One remembered announcement.
#[derive(Debug, Clone, Copy)]
struct Announced {
    addr: u32,
    name: Name,
    /// Not (yet) sent in this session.
    owed: bool,
}

/// The services this side announced, to announce again after a restart
/// (`N` at most).
#[derive(Debug)]
pub struct Announcements<const N: usize> {
    entries: [Option<Announced>; N],
}

impl<const N: usize> Default for Announcements<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Announcements<N> {
    /// None yet.
    pub const fn new() -> Self {
        Self { entries: [None; N] }
    }

    /// Announces `ep` under `name` ([`Tx::announce`]) and remembers it.
    /// [`Sent::NoBuffer`] leaves it owed: [`Announcements::reannounce`]
    /// sends it.
    ///
    /// # Errors
    ///
    /// [`Error::TableFull`] when `N` services are remembered
    /// already; as [`Tx::announce`].
    pub fn announce<'a, R: Halves<'a>, Nt: Notify>(
        &mut self,
        tx: &mut Tx<'_, 'a, R, Nt>,
        ep: &Endpoint,
        name: &str,
    ) -> Result<Sent, Error> {
        let wire = Name::new(name).ok_or(Error::BadName)?;
        let at = match self
            .entries
            .iter()
            .position(|e| matches!(e, Some(a) if a.addr == ep.addr && a.name == wire))
        {
            Some(at) => at,
            None => self
                .entries
                .iter()
                .position(Option::is_none)
                .ok_or(Error::TableFull)?,
        };
        let sent = tx.announce(ep, name)?;
        self.entries[at] = Some(Announced {
            addr: ep.addr,
            name: wire,
            owed: sent == Sent::NoBuffer,
        });
        Ok(sent)
    }

    /// Tells the peer the service is gone ([`Tx::announce_destroy`]) and
    /// forgets it.
    ///
    /// # Errors
    ///
    /// As [`Tx::announce_destroy`].
    pub fn destroy<'a, R: Halves<'a>, Nt: Notify>(
        &mut self,
        tx: &mut Tx<'_, 'a, R, Nt>,
        ep: &Endpoint,
        name: &str,
    ) -> Result<Sent, Error> {
        let sent = tx.announce_destroy(ep, name)?;
        if sent == Sent::Sent {
            let wire = Name::new(name);
            for e in self.entries.iter_mut() {
                if matches!(e, Some(a) if a.addr == ep.addr && Some(a.name) == wire) {
                    *e = None;
                }
            }
        }
        Ok(sent)
    }

    /// A new session began: every service remembered is owed to the peer
    /// again. Returns how many.
    pub fn on_restart(&mut self) -> u32 {
        let mut n = 0;
        for a in self.entries.iter_mut().flatten() {
            a.owed = true;
            n += 1;
        }
        n
    }

    /// Sends the announcements owed, as far as transmit buffers go;
    /// returns how many are still owed (call again when it is not 0).
    ///
    /// # Errors
    ///
    /// As [`Tx::announce`] (the failed one stays owed).
    pub fn reannounce<'a, R: Halves<'a>, Nt: Notify>(
        &mut self,
        tx: &mut Tx<'_, 'a, R, Nt>,
    ) -> Result<u32, Error> {
        for a in self.entries.iter_mut().flatten().filter(|a| a.owed) {
            let ep = Endpoint { addr: a.addr };
            match tx.announce(&ep, a.name.as_str())? {
                Sent::Sent => a.owed = false,
                Sent::NoBuffer => break,
            }
        }
        Ok(self.owed())
    }

    /// Announcements not sent in this session yet.
    pub fn owed(&self) -> u32 {
        self.entries.iter().flatten().filter(|a| a.owed).count() as u32
    }
}
