//! The backend's error type and its mapping onto the shared kinds.
#![deny(unsafe_code)]

use core::fmt;

use ipc_traits::mailbox::{ErrorKind, Event};

/// What went wrong on a msgbox channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Error {
    /// The FIFO is full (send) or empty (receive). Nothing was written,
    /// overwritten or lost; retry later.
    ///
    /// *NOTE*: spinning on this inside an interrupt handler starves the
    /// context that would drain (or fill) the FIFO; use the bounded
    /// `blocking_*` helpers from thread context or listen for the event.
    WouldBlock,
    /// This channel cannot raise the given event (a transmit channel has no
    /// `DataAvailable`, a receive channel no `SpaceAvailable`).
    Unsupported(Event),
    /// `MSG_STATUS` reported more messages than the 8-deep FIFO can hold
    /// (value given). The hardware cannot do this (sheet §2); the channel
    /// neither writes nor pops while it lasts, and counts each occurrence.
    ImpossibleCount(u8),
}

impl ipc_traits::mailbox::Error for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::WouldBlock => ErrorKind::WouldBlock,
            Self::Unsupported(_) => ErrorKind::Unsupported,
            Self::ImpossibleCount(_) => ErrorKind::Protocol,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WouldBlock => f.write_str("msgbox FIFO full or empty, retry later"),
            Self::Unsupported(event) => write!(f, "this msgbox channel cannot raise {event:?}"),
            Self::ImpossibleCount(n) => {
                write!(f, "MSG_STATUS reported {n} messages in an 8-deep FIFO")
            }
        }
    }
}

impl core::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;
    use ipc_traits::mailbox::Error as _;

    #[test]
    fn kinds_and_messages() {
        assert_eq!(Error::WouldBlock.kind(), ErrorKind::WouldBlock);
        assert_eq!(
            Error::Unsupported(Event::DataAvailable).kind(),
            ErrorKind::Unsupported
        );
        assert_eq!(Error::ImpossibleCount(12).kind(), ErrorKind::Protocol);
        assert_eq!(
            Error::ImpossibleCount(12).to_string(),
            "MSG_STATUS reported 12 messages in an 8-deep FIFO"
        );
        assert_eq!(
            Error::Unsupported(Event::SpaceAvailable).to_string(),
            "this msgbox channel cannot raise SpaceAvailable"
        );
    }
}
