//! The crate's one error type.

use core::fmt;

use crate::table::BindError;

/// What went wrong on a link operation, or bringing one up: the crate's
/// error ([`crate::Error`]). `?` converts into it from the ring, memory,
/// mailbox and boot errors; [`ipc_traits::mailbox::Error::kind`] sorts it
/// in the embedded-hal manner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// No transmit buffer free, or no message waiting. Retry later; never
    /// spin on it inside an interrupt handler.
    WouldBlock,
    /// The payload does not fit a buffer.
    TooLong {
        /// Payload bytes asked for.
        len: usize,
        /// Payload bytes a buffer holds.
        max: usize,
    },
    /// The endpoint does not belong to this link (or was destroyed).
    NoSuchEndpoint,
    /// Binding a local address failed.
    Bind(BindError),
    /// The service name is longer than 31 bytes or contains a NUL.
    BadName,
    /// A ring operation failed (the ring's statistics count peer errors).
    Ring(vring::Error),
    /// Bringing the link up failed ([`crate::boot`]).
    Boot(crate::boot::BootError),
    /// A shared-memory window could not be made or used.
    Memory(ipc_traits::shm::ShmError),
    /// A mailbox operation failed.
    Mailbox(ipc_traits::mailbox::ErrorKind),
}

impl From<vring::Error> for Error {
    fn from(e: vring::Error) -> Self {
        Self::Ring(e)
    }
}

impl From<crate::boot::BootError> for Error {
    fn from(e: crate::boot::BootError) -> Self {
        Self::Boot(e)
    }
}

impl From<crate::rsc_table::RscError> for Error {
    fn from(e: crate::rsc_table::RscError) -> Self {
        Self::Boot(e.into())
    }
}

impl From<ipc_traits::shm::ShmError> for Error {
    fn from(e: ipc_traits::shm::ShmError) -> Self {
        Self::Memory(e)
    }
}

impl From<ipc_traits::mailbox::ErrorKind> for Error {
    fn from(e: ipc_traits::mailbox::ErrorKind) -> Self {
        Self::Mailbox(e)
    }
}

/// `?` from a backend's mailbox errors.
macro_rules! from_mailbox {
    ($($feature:literal => $ty:ty),+ $(,)?) => {$(
        #[cfg(feature = $feature)]
        impl From<$ty> for Error {
            fn from(e: $ty) -> Self {
                Self::Mailbox(ipc_traits::mailbox::Error::kind(&e))
            }
        }
    )+};
}
from_mailbox!(
    "imx8" => mu_imx8::Error,
    "am62x" => mbox_am62x::Error,
    "v853" => msgbox_v853::Error,
    "octeon" => mbox_octeon::Error,
);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WouldBlock => f.write_str("would block: no buffer or message, retry later"),
            Self::TooLong { len, max } => {
                write!(f, "payload of {len} bytes exceeds the {max}-byte maximum")
            }
            Self::NoSuchEndpoint => f.write_str("no such endpoint on this link"),
            Self::Bind(e) => write!(f, "{e}"),
            Self::BadName => f.write_str("service name longer than 31 bytes or containing NUL"),
            Self::Ring(e) => write!(f, "ring: {e}"),
            Self::Boot(e) => write!(f, "boot: {e}"),
            Self::Memory(e) => write!(f, "shared memory: {e}"),
            Self::Mailbox(k) => write!(f, "mailbox: {k}"),
        }
    }
}

impl ipc_traits::mailbox::Error for Error {
    fn kind(&self) -> ipc_traits::mailbox::ErrorKind {
        use ipc_traits::mailbox::ErrorKind;
        match self {
            Self::WouldBlock => ErrorKind::WouldBlock,
            Self::Ring(e) if e.is_peer_error() || *e == vring::Error::Broken => ErrorKind::Protocol,
            Self::Boot(e) => ipc_traits::mailbox::Error::kind(e),
            Self::Mailbox(k) => *k,
            _ => ErrorKind::Other,
        }
    }
}
