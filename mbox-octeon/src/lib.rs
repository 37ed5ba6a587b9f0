#![doc = include_str!("../README.md")]
#![cfg_attr(not(test), no_std)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(unsafe_code)]

mod channel;
mod mbox;
mod queues;
pub mod registers;
#[cfg(feature = "sim")]
#[cfg_attr(docsrs, doc(cfg(feature = "sim")))]
pub mod sim;

use core::fmt;

use ipc_traits::mailbox::{ErrorKind, Event, QueueId};

pub use channel::{AnyRxBit, AnyTxBit, Bit, Claimable, InBit, Inbox, OutBit, Outbox, RxBit, TxBit};
pub use mbox::{Mbox, MboxIrq, MboxParts};
pub use queues::{RxQueues, TxQueues};

/// A core of the OCTEON chip (the index of its `CIU_MBOX_SET/CLR` CSRs).
///
/// The CSR index is masked with `0x0F` (octeon-ciu-mbox.md §2), so 16 cores
/// can be named; a CN7130 has 4 (§1, UNVERIFIED there).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CoreId(u8);

impl CoreId {
    /// Core `index`, or `None` if `index >= 16`.
    ///
    /// # Examples
    ///
    /// ```
    /// use mbox_octeon::CoreId;
    ///
    /// assert_eq!(CoreId::new(3).map(CoreId::index), Some(3));
    /// assert!(CoreId::new(16).is_none());
    /// ```
    #[must_use]
    pub const fn new(index: u8) -> Option<Self> {
        if index < registers::MAX_CORES {
            Some(Self(index))
        } else {
            None
        }
    }

    /// The core index (0..=15).
    #[must_use]
    pub const fn index(self) -> u8 {
        self.0
    }
}

impl fmt::Display for CoreId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "core {}", self.0)
    }
}

/// What can go wrong with the mailbox driver.
///
/// A doorbell never fills up, so `notify` never fails for lack of space;
/// the errors are about asking a handle for something it does not carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A bounded wait ran out of budget with nothing pending
    /// ([`ErrorKind::WouldBlock`]).
    WouldBlock,
    /// The handle carries no doorbell bit for this queue
    /// ([`ErrorKind::Unsupported`]).
    NoSuchQueue(QueueId),
    /// The channel cannot raise this event: a doorbell is never full, so
    /// there is no [`Event::SpaceAvailable`] ([`ErrorKind::Unsupported`]).
    UnsupportedEvent(Event),
    /// [`RxQueues::new`] was given bits of different cores' mailboxes
    /// ([`ErrorKind::Other`]).
    MixedCores,
    /// [`RxQueues::new`] was given the same bit twice, which only happens
    /// when two [`Mbox`] values exist for one core ([`ErrorKind::Other`]).
    DuplicateBit(u8),
}

impl ipc_traits::mailbox::Error for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::WouldBlock => ErrorKind::WouldBlock,
            Self::NoSuchQueue(_) | Self::UnsupportedEvent(_) => ErrorKind::Unsupported,
            Self::MixedCores | Self::DuplicateBit(_) => ErrorKind::Other,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WouldBlock => f.write_str("no doorbell arrived within the budget"),
            Self::NoSuchQueue(q) => write!(f, "no doorbell bit carries {q}"),
            Self::UnsupportedEvent(e) => write!(f, "a mailbox doorbell cannot raise {e:?}"),
            Self::MixedCores => f.write_str("receive bits of different cores' mailboxes"),
            Self::DuplicateBit(b) => write!(f, "mailbox bit {b} given twice"),
        }
    }
}

impl core::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;
    use ipc_traits::mailbox::Error as _;

    #[test]
    fn errors_map_to_kinds_and_display() {
        let q = QueueId::new(2).unwrap();
        assert_eq!(Error::WouldBlock.kind(), ErrorKind::WouldBlock);
        assert_eq!(Error::NoSuchQueue(q).kind(), ErrorKind::Unsupported);
        assert_eq!(
            Error::UnsupportedEvent(Event::SpaceAvailable).kind(),
            ErrorKind::Unsupported
        );
        assert_eq!(Error::MixedCores.kind(), ErrorKind::Other);
        assert_eq!(Error::DuplicateBit(4).kind(), ErrorKind::Other);
        assert_eq!(
            Error::NoSuchQueue(q).to_string(),
            "no doorbell bit carries vq2"
        );
        assert_eq!(
            Error::DuplicateBit(4).to_string(),
            "mailbox bit 4 given twice"
        );
    }

    #[test]
    fn core_ids_stop_at_sixteen() {
        assert_eq!(CoreId::new(15).map(CoreId::index), Some(15));
        assert_eq!(CoreId::new(16), None);
        assert_eq!(CoreId::new(2).unwrap().to_string(), "core 2");
    }
}
