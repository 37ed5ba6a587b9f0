//! The driver's error type.
#![deny(unsafe_code)]

use core::fmt;

use ipc_traits::mailbox::{ErrorKind, Event};

/// What an MU operation can fail with.
///
/// Maps onto [`ipc_traits::mailbox::ErrorKind`] through
/// [`ipc_traits::mailbox::Error::kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Error {
    /// The transmit register still holds a word the peer has not read
    /// (`SR.TEn = 0`), the receive register is empty (`SR.RFn = 0`), or a
    /// general-purpose interrupt request is still pending (`CR.GIRn = 1`).
    /// Nothing was written, read or lost; retry later.
    ///
    /// *NOTE*: spinning on this inside an interrupt handler starves the
    /// context that would free the register; use the bounded helpers
    /// ([`crate::blocking_send`]) from thread context or listen for the event.
    WouldBlock,
    /// This handle cannot raise the event (a transmit channel has no
    /// `DataAvailable`, a receive channel and a GP interrupt have no
    /// `SpaceAvailable`).
    UnsupportedEvent(Event),
    /// `SR.PM` reads the encoding the i.MX8MM reserves (2): the peer's power
    /// mode is something it cannot be (shared/docs/hw/imx8-mu.md §2.1).
    ReservedPowerMode(u8),
}

impl ipc_traits::mailbox::Error for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::WouldBlock => ErrorKind::WouldBlock,
            Self::UnsupportedEvent(_) => ErrorKind::Unsupported,
            Self::ReservedPowerMode(_) => ErrorKind::Protocol,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WouldBlock => f.write_str("MU register busy or empty, retry later"),
            Self::UnsupportedEvent(e) => write!(f, "this MU handle cannot raise {e:?}"),
            Self::ReservedPowerMode(v) => write!(f, "peer power mode reads reserved value {v}"),
        }
    }
}

impl core::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;
    use ipc_traits::mailbox::Error as _;

    #[test]
    fn kinds_and_display() {
        assert_eq!(Error::WouldBlock.kind(), ErrorKind::WouldBlock);
        assert_eq!(
            Error::UnsupportedEvent(Event::DataAvailable).kind(),
            ErrorKind::Unsupported
        );
        assert_eq!(Error::ReservedPowerMode(2).kind(), ErrorKind::Protocol);
        assert_eq!(
            Error::ReservedPowerMode(2).to_string(),
            "peer power mode reads reserved value 2"
        );
    }
}
