//! Name-service reception: the directory of the peer's services, as a
//! consumer of the messages for address 53 (`struct rpmsg_ns_msg`,
//! shared/docs/hw/rpmsg-wire.md §2.4).
//!
//! The link delivers messages for 53 only to an application that bound it
//! ([`super::Link::bind`] with [`NS_ADDR`]); it hands them here:
//!
//! ```ignore
//! let ns_ep = link.bind(NS_ADDR)?;
//! let mut dir = NsDirectory::<4>::new();
//! // in the receive loop:
//! match rx.try_recv(&mut buf)? {
//!     Some(m) if m.dst == NS_ADDR => {
//!         if let Some(NsEvent::Created(s)) = dir.on_message::<Legacy>(&buf[..m.len]) { .. }
//!     }
//!     ..
//! }
//! let echo = dir.lookup_service("rpmsg-echo");
//! ```
//!
//! Peer input is checked as Linux's `rpmsg_ns_cb` does: a payload that is
//! not 40 bytes, a name that is not UTF-8, unknown flags are counted
//! ([`NsStats::malformed`]) and ignored; a 32-byte name without a NUL is
//! cut to its first 31 bytes and counted ([`NsStats::name_truncated`]); a
//! destroy for a service never announced, and an announcement the full
//! directory cannot hold, are counted and change nothing. An application
//! that only announces never names this module and links none of it (the
//! UTF-8 check included).

use core::fmt;

use vring::Endian;

use crate::rings::Halves;
use crate::table::{DirectoryChange, RemoteService, ServiceDirectory};
#[cfg(doc)]
use crate::wire::NS_ADDR;
use crate::wire::{NsAction, NsMessage, NS_MSG_LEN};
use crate::Error;

use super::HeldMessage;

/// A change of the peer's services.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NsEvent {
    /// A new service, or one that moved to a new address.
    Created(RemoteService),
    /// A service went away.
    Destroyed(RemoteService),
}

/// Counters of the directory (wrapping).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NsStats {
    /// Name-service messages handed in.
    pub messages: u32,
    /// Rejected: not 40 bytes, a name that is not UTF-8, unknown flags.
    pub malformed: u32,
    /// Names of 32 bytes without a NUL, accepted cut to their first 31 as
    /// Linux does (rpmsg-lite `strncpy`s a 32-character name).
    pub name_truncated: u32,
    /// Destroys for services never announced (or at another address).
    pub unknown_destroy: u32,
    /// Announcements dropped because the directory was full.
    pub directory_full: u32,
}

/// The peer's services: up to `SVC`, kept from the moment they are
/// announced until destroyed or the session ends.
pub struct NsDirectory<const SVC: usize> {
    dir: ServiceDirectory<SVC>,
    stats: NsStats,
}

impl<const SVC: usize> fmt::Debug for NsDirectory<SVC> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NsDirectory")
            .field("services", &self.dir)
            .field("stats", &self.stats)
            .finish()
    }
}

impl<const SVC: usize> Default for NsDirectory<SVC> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const SVC: usize> NsDirectory<SVC> {
    /// An empty directory.
    pub const fn new() -> Self {
        Self {
            dir: ServiceDirectory::new(),
            stats: NsStats {
                messages: 0,
                malformed: 0,
                name_truncated: 0,
                unknown_destroy: 0,
                directory_full: 0,
            },
        }
    }

    /// Applies a name-service payload (a message received for address 53,
    /// copied out), in the rings' byte order `E` (`Legacy` or `Virtio1`,
    /// the order of the link's rings). Returns the change it made, if any;
    /// bad input is counted ([`NsStats`]) and changes nothing.
    pub fn on_message<E: Endian>(&mut self, payload: &[u8]) -> Option<NsEvent> {
        self.stats.messages = self.stats.messages.wrapping_add(1);
        let msg = match NsMessage::decode::<E>(payload) {
            Ok(m) => m,
            Err(_) => {
                self.stats.malformed = self.stats.malformed.wrapping_add(1);
                return None;
            }
        };
        if NsMessage::name_is_cut(payload) {
            self.stats.name_truncated = self.stats.name_truncated.wrapping_add(1);
        }
        let change = match msg.action {
            NsAction::Create => self.dir.announce(msg.name, msg.addr),
            NsAction::Destroy => self.dir.destroy(msg.name, msg.addr),
        };
        match change {
            Ok(DirectoryChange::Added(s) | DirectoryChange::Moved { service: s, .. }) => {
                Some(NsEvent::Created(s))
            }
            Ok(DirectoryChange::Removed(s)) => Some(NsEvent::Destroyed(s)),
            Ok(DirectoryChange::Unchanged(_)) => None,
            Err(Error::DirectoryFull) => {
                self.stats.directory_full = self.stats.directory_full.wrapping_add(1);
                None
            }
            // The directory refuses a destroy it never saw, nothing else.
            Err(_) => {
                self.stats.unknown_destroy = self.stats.unknown_destroy.wrapping_add(1);
                None
            }
        }
    }

    /// As [`NsDirectory::on_message`], for a message held in its ring
    /// buffer (read once into a local copy, in the link's byte order); the
    /// buffer goes back when the caller drops `msg`.
    pub fn on_held<'a, R: Halves<'a>, N: ipc_traits::mailbox::Notify>(
        &mut self,
        msg: &HeldMessage<'_, 'a, R, N>,
    ) -> Option<NsEvent> {
        let mut raw = [0u8; NS_MSG_LEN];
        let n = msg.len();
        if n != NS_MSG_LEN || msg.read(0, &mut raw).is_err() {
            self.stats.messages = self.stats.messages.wrapping_add(1);
            self.stats.malformed = self.stats.malformed.wrapping_add(1);
            return None;
        }
        self.on_message::<R::Order>(&raw)
    }

    /// The address the peer announced for `name`, if it did.
    pub fn lookup_service(&self, name: &str) -> Option<u32> {
        self.dir.lookup(name)
    }

    /// Every service known.
    pub fn services(&self) -> impl Iterator<Item = &RemoteService> + '_ {
        self.dir.iter()
    }

    /// Forgets every service (the peer reset: its services of the old
    /// session are gone; it announces again).
    pub fn on_peer_reset(&mut self) {
        self.dir.clear();
    }

    /// The directory's counters.
    pub fn stats(&self) -> NsStats {
        self.stats
    }
}
