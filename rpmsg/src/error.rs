//! The crate's one error type.

use core::fmt;

use ipc_traits::mailbox::ErrorKind;

/// What went wrong on a link operation, or bringing one up: the crate's
/// one error. `?` converts into it from the ring, memory and mailbox
/// errors; [`ipc_traits::mailbox::Error::kind`] sorts it in the
/// embedded-hal manner. Two bytes at most, no payload: which descriptor,
/// address or table entry was wrong is for the counters
/// ([`vring::Failures`], the link's statistics) and the caller, not the
/// error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Error {
    /// No transmit buffer free, or no message waiting. Retry later; never
    /// spin on it inside an interrupt handler.
    WouldBlock,
    /// The payload does not fit a buffer.
    TooLong,
    /// The endpoint does not belong to this link (or was destroyed).
    NoSuchEndpoint,
    /// Binding a local address failed: it is already bound.
    AddressInUse,
    /// Every slot of the endpoint table is taken.
    TableFull,
    /// No dynamic address is left (practically unreachable: 2^32 − 1024).
    NoAddressLeft,
    /// The service name is longer than 31 bytes or contains a NUL.
    BadName,
    /// More distinct services than the directory holds (an announcement
    /// flood): the new one is dropped, the known ones are kept.
    DirectoryFull,
    /// A destroy for a service that was never announced.
    UnknownService,
    /// Stream: the budget ran out (no byte arrived, no transmit buffer
    /// came back, or a doorbell stayed refused). Nothing of the call was
    /// taken or sent.
    TimedOut,
    /// Stream: no peer address yet (it comes with the peer's first message,
    /// or from `Stream::set_peer`).
    NotConnected,
    /// Stream: the peer's transmit buffers hold no payload at all (a peer
    /// that posts zero-length buffers): nothing can be written.
    NoPayloadRoom,
    /// A received message is shorter than its header, or its header asks
    /// for more bytes than the buffer holds.
    BadMessage,
    /// A name-service message of the wrong size, a name that is not UTF-8,
    /// or flags other than create/destroy.
    BadAnnouncement,
    /// Resource table: shorter than its header or offset array.
    Truncated,
    /// Resource table: `ver` is not 1.
    BadVersion,
    /// Resource table: the reserved header words are not 0.
    ReservedNotZero,
    /// Resource table: an entry offset points outside the table, or is not
    /// a multiple of 4 (the table is read a word at a time).
    EntryOutOfBounds,
    /// Resource table: no rpmsg vdev entry (type 3, id 7).
    NoRpmsgVdev,
    /// Resource table: the vdev declares a vring count other than 2.
    BadVringCount,
    /// The host did not set `DRIVER_OK` within the budget.
    NotReady,
    /// Boot: a vring's `num` or `align` is unusable (zero, not a power of
    /// two, more than 65 535 entries).
    BadVring,
    /// Boot: a vring does not lie inside the shared window.
    VringOutsideWindow,
    /// Boot: a notify id is not a queue id (0..=31).
    BadNotifyId,
    /// Boot: the receive buffers the host posted do not lie inside the
    /// window.
    BuffersOutsideWindow,
    /// Boot: `EVENT_IDX` was asked for, but the profile's stack never
    /// re-arms it.
    EventIdxUnsupported,
    /// Boot: `EVENT_IDX` was asked for, but the peer did not offer or
    /// accept it (the table's features lack bit 29).
    EventIdxNotOffered,
    /// Boot: the profile's stack does not boot this way (an rpmsg-lite
    /// master has no resource table; Linux is never a remote).
    WrongProfile,
    /// Split layout: the cache line is not a power of two.
    BadLine,
    /// Split layout: a part does not start at its alignment.
    PartMisaligned,
    /// Split layout: two parts share bytes or cache lines.
    PartsOverlap,
    /// Split layout: a part lies outside its region (or the region outside
    /// the window).
    PartOutside,
    /// Split layout: the buffer size is zero or not a multiple of the cache
    /// line.
    BadBufSize,
    /// A ring operation failed, or a ring's layout was refused (the ring's
    /// statistics count peer errors).
    Ring(vring::Error),
    /// A shared-memory window could not be made or used.
    Memory(ipc_traits::Error),
    /// A mailbox operation failed (a doorbell, the start kick).
    Mailbox(ErrorKind),
}

impl From<vring::Error> for Error {
    #[inline]
    fn from(e: vring::Error) -> Self {
        Self::Ring(e)
    }
}

impl From<ipc_traits::Error> for Error {
    #[inline]
    fn from(e: ipc_traits::Error) -> Self {
        Self::Memory(e)
    }
}

impl From<ErrorKind> for Error {
    #[inline]
    fn from(e: ErrorKind) -> Self {
        Self::Mailbox(e)
    }
}

/// `?` from a backend's mailbox errors.
macro_rules! from_mailbox {
    ($($feature:literal => $ty:ty),+ $(,)?) => {$(
        #[cfg(feature = $feature)]
        impl From<$ty> for Error {
            #[inline]
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
        f.write_str(match self {
            Self::WouldBlock => "would block: no buffer or message, retry later",
            Self::TooLong => "payload longer than a buffer holds",
            Self::NoSuchEndpoint => "no such endpoint on this link",
            Self::AddressInUse => "address already bound",
            Self::TableFull => "endpoint table full",
            Self::NoAddressLeft => "no dynamic address left",
            Self::BadName => "service name longer than 31 bytes or containing NUL",
            Self::DirectoryFull => "service directory full",
            Self::UnknownService => "destroy for an unknown service",
            Self::TimedOut => "stream: budget ran out",
            Self::NotConnected => "stream: no peer address yet",
            Self::NoPayloadRoom => "stream: the peer's buffers hold no payload",
            Self::BadMessage => "message length inconsistent with its header or buffer",
            Self::BadAnnouncement => "malformed name-service message",
            Self::Truncated => "resource table truncated",
            Self::BadVersion => "resource table version not 1",
            Self::ReservedNotZero => "resource table reserved words not zero",
            Self::EntryOutOfBounds => "resource entry offset outside the table",
            Self::NoRpmsgVdev => "no rpmsg vdev in the resource table",
            Self::BadVringCount => "rpmsg vdev without exactly 2 vrings",
            Self::NotReady => "host did not set DRIVER_OK in time",
            Self::BadVring => "unusable vring num or align",
            Self::VringOutsideWindow => "vring outside the shared window",
            Self::BadNotifyId => "vring notify id is not a queue id",
            Self::BuffersOutsideWindow => "receive buffers outside the shared window",
            Self::EventIdxUnsupported => "EVENT_IDX asked for, but the profile never re-arms it",
            Self::EventIdxNotOffered => "EVENT_IDX asked for, but the peer did not offer it",
            Self::WrongProfile => "the profile does not boot this way",
            Self::BadLine => "cache line not a power of two",
            Self::PartMisaligned => "split part misaligned",
            Self::PartsOverlap => "split parts overlap",
            Self::PartOutside => "split part outside its region",
            Self::BadBufSize => "buffer size zero or not a multiple of the cache line",
            Self::Ring(e) => return write!(f, "ring: {e}"),
            Self::Memory(e) => return write!(f, "shared memory: {e}"),
            Self::Mailbox(k) => return write!(f, "mailbox: {k}"),
        })
    }
}

impl core::error::Error for Error {}

impl ipc_traits::mailbox::Error for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::WouldBlock | Self::NotReady => ErrorKind::WouldBlock,
            Self::Ring(e) if e.is_peer_error() || *e == vring::Error::Broken => ErrorKind::Protocol,
            Self::Mailbox(k) => *k,
            Self::EventIdxUnsupported | Self::EventIdxNotOffered | Self::WrongProfile => {
                ErrorKind::Unsupported
            }
            Self::BadMessage
            | Self::BadAnnouncement
            | Self::Truncated
            | Self::BadVersion
            | Self::ReservedNotZero
            | Self::EntryOutOfBounds
            | Self::NoRpmsgVdev
            | Self::BadVringCount
            | Self::BadVring
            | Self::VringOutsideWindow
            | Self::BadNotifyId
            | Self::BuffersOutsideWindow => ErrorKind::Protocol,
            _ => ErrorKind::Other,
        }
    }
}

/// `embedded-io`'s sorting, for the byte stream ([`crate::stream`]).
#[cfg(feature = "embedded-io-07")]
impl embedded_io::Error for Error {
    fn kind(&self) -> embedded_io::ErrorKind {
        use embedded_io::ErrorKind;
        match self {
            Self::TimedOut => ErrorKind::TimedOut,
            Self::NotConnected => ErrorKind::NotConnected,
            Self::NoPayloadRoom => ErrorKind::WriteZero,
            Self::Ring(vring::Error::Broken) => ErrorKind::BrokenPipe,
            _ => ErrorKind::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipc_traits::mailbox::Error as _;

    /// The crate's error stays small: a kind, or a nested one-byte kind.
    const _: () = assert!(core::mem::size_of::<Error>() <= 2);
    const _: () = assert!(core::mem::size_of::<vring::Error>() == 1);
    const _: () = assert!(core::mem::size_of::<ipc_traits::Error>() == 1);

    #[test]
    fn errors_are_small_and_convert_with_question_mark() {
        assert!(core::mem::size_of::<Error>() <= 2);
        assert_eq!(core::mem::size_of::<vring::Error>(), 1);
        fn ring() -> Result<(), Error> {
            Err(vring::Error::UnknownUsedId)?
        }
        fn memory() -> Result<(), Error> {
            Err(ipc_traits::Error::Unavailable)?
        }
        fn mailbox() -> Result<(), Error> {
            Err(ErrorKind::WouldBlock)?
        }
        assert_eq!(ring(), Err(Error::Ring(vring::Error::UnknownUsedId)));
        assert_eq!(ring().unwrap_err().kind(), ErrorKind::Protocol);
        assert_eq!(memory(), Err(Error::Memory(ipc_traits::Error::Unavailable)));
        assert_eq!(mailbox().unwrap_err().kind(), ErrorKind::WouldBlock);
        assert_eq!(Error::NotReady.kind(), ErrorKind::WouldBlock);
        assert_eq!(Error::WrongProfile.kind(), ErrorKind::Unsupported);
    }
}
