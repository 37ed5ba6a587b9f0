//! Fixed-capacity bookkeeping: the local endpoint table (address binding)
//! and the remote service directory (name-service announcements).
//!
//! No allocator: capacities are const generics. Everything here is fed by
//! peer input (announcements) or user calls, so every operation reports a
//! typed outcome instead of panicking, and a full table is an error the
//! caller counts, never an overwrite.
#![deny(unsafe_code)]

use crate::wire::Name;
use crate::Error;

/// A service the peer announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteService {
    /// Its name.
    pub name: Name,
    /// The peer address to send to.
    pub addr: u32,
}

/// What an announcement did to the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirectoryChange {
    /// A new service.
    Added(RemoteService),
    /// A known service re-announced (same name and address): no change.
    Unchanged(RemoteService),
    /// A known name moved to another address.
    Moved {
        /// The service with its new address.
        service: RemoteService,
        /// The address it had.
        old_addr: u32,
    },
    /// A service destroyed.
    Removed(RemoteService),
}

/// The peer's announced services: `N` entries, kept until destroyed, so an
/// announcement that arrives before the user asks for it is not lost.
#[derive(Debug)]
pub struct ServiceDirectory<const N: usize> {
    entries: [Option<RemoteService>; N],
}

impl<const N: usize> Default for ServiceDirectory<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> ServiceDirectory<N> {
    /// An empty directory.
    pub const fn new() -> Self {
        Self { entries: [None; N] }
    }

    /// Records an announcement.
    ///
    /// # Errors
    ///
    /// [`Error::DirectoryFull`] when a new name does not fit.
    pub fn announce(&mut self, name: Name, addr: u32) -> Result<DirectoryChange, Error> {
        let service = RemoteService { name, addr };
        if let Some(e) = self.entries.iter_mut().flatten().find(|e| e.name == name) {
            let old_addr = e.addr;
            *e = service;
            return Ok(if old_addr == addr {
                DirectoryChange::Unchanged(service)
            } else {
                DirectoryChange::Moved { service, old_addr }
            });
        }
        let free = self
            .entries
            .iter_mut()
            .find(|e| e.is_none())
            .ok_or(Error::DirectoryFull)?;
        *free = Some(service);
        Ok(DirectoryChange::Added(service))
    }

    /// Records a destroy.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownService`] if the name and address are not
    /// known.
    pub fn destroy(&mut self, name: Name, addr: u32) -> Result<DirectoryChange, Error> {
        let e = self
            .entries
            .iter_mut()
            .find(|e| matches!(e, Some(s) if s.name == name && s.addr == addr))
            .ok_or(Error::UnknownService)?;
        let service = e.take().ok_or(Error::UnknownService)?;
        Ok(DirectoryChange::Removed(service))
    }

    /// The address the peer announced for `name`.
    pub fn lookup(&self, name: &str) -> Option<u32> {
        self.entries
            .iter()
            .flatten()
            .find(|e| e.name.as_str() == name)
            .map(|e| e.addr)
    }

    /// All known services.
    pub fn iter(&self) -> impl Iterator<Item = &RemoteService> + '_ {
        self.entries.iter().flatten()
    }

    /// Forgets everything (peer reset).
    pub fn clear(&mut self) {
        self.entries = [None; N];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_keeps_early_announcements_and_refuses_floods() {
        let n = |s| Name::new(s).unwrap();
        let mut d = ServiceDirectory::<2>::new();
        assert!(matches!(
            d.announce(n("a"), 1024),
            Ok(DirectoryChange::Added(_))
        ));
        assert!(matches!(
            d.announce(n("a"), 1024),
            Ok(DirectoryChange::Unchanged(_))
        ));
        assert!(matches!(
            d.announce(n("a"), 1030),
            Ok(DirectoryChange::Moved { old_addr: 1024, .. })
        ));
        assert!(d.announce(n("b"), 40).is_ok());
        assert_eq!(d.announce(n("c"), 41), Err(Error::DirectoryFull));
        assert_eq!(d.lookup("a"), Some(1030));
        assert_eq!(d.lookup("c"), None);
        assert_eq!(d.destroy(n("b"), 99), Err(Error::UnknownService));
        assert!(matches!(
            d.destroy(n("b"), 40),
            Ok(DirectoryChange::Removed(_))
        ));
        assert!(d.announce(n("c"), 41).is_ok());
        d.clear();
        assert_eq!(d.iter().count(), 0);
    }
}
