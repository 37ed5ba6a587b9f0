//! Liveness: the unresponsive-peer bound, as a layer aged by ticks.
//!
//! ```ignore
//! let mut dog = Watchdog::new(DEFAULT_UNRESPONSIVE_TICKS);
//! // from a 1 ms timer or the idle loop, next to the transmit half:
//! if dog.tick(&mut tx) { /* the peer stopped answering: reset it */ }
//! ```
//!
//! A [`Watchdog`] watches the two ways a side waits on its peer: a
//! doorbell the mailbox does not take (a full FIFO, a peer that stopped
//! reading; either half's), and transmit buffers the peer does not give
//! back after a send found none ([`super::Sent::NoBuffer`]). When either
//! wait lasts its bound of ticks the peer is counted unresponsive, once
//! per episode; the watch re-arms when the peer answers (the doorbell goes
//! through, a buffer comes back). Nothing is dropped meanwhile: the
//! doorbell stays owed and rings when the mailbox takes it.
//!
//! The halves keep no clock and no liveness state: an application that
//! never ticks links none of this.

use ipc_traits::mailbox::{Budget, Notify};

use crate::rings::{Halves, TxRing};
use crate::Error;

use super::{Endpoint, Sent, Tx};

/// Ticks after which a silent peer is counted unresponsive by default
/// (one second of a 1 ms tick).
pub const DEFAULT_UNRESPONSIVE_TICKS: u32 = 1000;

/// The unresponsive-peer bound (module docs).
#[derive(Debug, Clone)]
pub struct Watchdog {
    /// Ticks before giving up (0: never).
    after: u32,
    /// Ticks a doorbell has been owed.
    kick_age: u32,
    /// A send found no transmit buffer and none came back since.
    starved: bool,
    /// Ticks spent starved.
    starve_age: u32,
    /// [`super::TxStats::buffer_waits`] at the last tick.
    seen_waits: u32,
    /// This episode was counted already.
    reported: bool,
    /// Episodes counted.
    unresponsive: u32,
}

impl Default for Watchdog {
    fn default() -> Self {
        Self::new(DEFAULT_UNRESPONSIVE_TICKS)
    }
}

impl Watchdog {
    /// A watch that gives up after `after` ticks of silence (0: never).
    pub const fn new(after: u32) -> Self {
        Self {
            after,
            kick_age: 0,
            starved: false,
            starve_age: 0,
            seen_waits: 0,
            reported: false,
            unresponsive: 0,
        }
    }

    /// Ages the waits on the peer by one tick: rings the doorbells owed
    /// (observing the mailbox as it is now), ages the rings' own bound
    /// (split ownership: [`crate::split::SplitConfig::unresponsive_after`]
    /// ticks without the peer returning or confirming what it holds
    /// release the wake guards parked with those buffers, which stay lent),
    /// and probes for a transmit buffer if a send found none (without
    /// keeping it). Returns `true` when the peer was just found
    /// unresponsive (counted in [`Watchdog::unresponsive`]).
    ///
    /// Buffers lent by [`Tx::try_alloc`] count as taken: do not keep them
    /// across ticks.
    pub fn tick<'a, R: Halves<'a>, N: Notify>(&mut self, tx: &mut Tx<'_, 'a, R, N>) -> bool {
        tx.flush();
        // The rings' own bound (split ownership released the wake guards of
        // the buffers the peer keeps): an episode of its own.
        let gave_up = tx.st.ring.tick();
        self.kick_age = if tx.owes_doorbell() {
            self.kick_age.saturating_add(1)
        } else {
            0
        };
        let waits = tx.st.stats.buffer_waits;
        if waits != self.seen_waits {
            self.seen_waits = waits;
            self.starved = true;
        }
        if self.starved {
            match tx.st.ring.take() {
                Ok(Some(slot)) => {
                    tx.st.ring.give_back(slot);
                    self.starved = false;
                    self.starve_age = 0;
                }
                // A ring error is counted by the ring; still no buffer.
                Ok(None) | Err(_) => self.starve_age = self.starve_age.saturating_add(1),
            }
        }
        let due = |age: u32| self.after != 0 && age >= self.after;
        let mut found = gave_up;
        if due(self.kick_age) || due(self.starve_age) {
            if !self.reported {
                self.reported = true;
                found = true;
            }
        } else if self.kick_age == 0 && !self.starved {
            self.reported = false;
        }
        if found {
            self.unresponsive = self.unresponsive.wrapping_add(1);
        }
        found
    }

    /// Times the peer was found unresponsive (episodes, wrapping).
    pub fn unresponsive(&self) -> u32 {
        self.unresponsive
    }

    /// The bound, in ticks (0: never).
    pub fn after(&self) -> u32 {
        self.after
    }

    /// Forgets the waits in progress (a new session began); the count
    /// stays.
    pub fn on_restart(&mut self) {
        *self = Self {
            after: self.after,
            unresponsive: self.unresponsive,
            seen_waits: self.seen_waits,
            ..Self::new(self.after)
        };
    }
}

impl<'a, R: Halves<'a>, N: Notify> Tx<'_, 'a, R, N> {
    /// [`Tx::try_send`], retrying within `budget` while no transmit buffer
    /// is free: the bounded wait of a task that has nothing else to do.
    /// [`Sent::NoBuffer`] when the budget ran out (the peer kept its
    /// buffers all along: a [`Watchdog`] ticking meanwhile counts it).
    ///
    /// The receive half is not serviced meanwhile: if the peer waits for
    /// this side to read before it gives buffers back, receive in another
    /// context (the interrupt), or use a small budget and receive between
    /// calls.
    ///
    /// # Errors
    ///
    /// As [`Tx::try_send`], at once.
    pub fn blocking_send(
        &mut self,
        src: &Endpoint,
        dst: u32,
        data: &[u8],
        mut budget: impl Budget,
    ) -> Result<Sent, Error> {
        loop {
            match self.try_send(src, dst, data)? {
                Sent::NoBuffer if budget.next() => {}
                done => return Ok(done),
            }
        }
    }
}
