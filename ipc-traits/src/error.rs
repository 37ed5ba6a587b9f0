//! The crate's one error type.

use core::fmt;

use crate::shm::ErrorKind;

/// What went wrong on a shared-memory access, a buffer or a byte view: the
/// crate's error (also named [`crate::shm::ShmError`]). One byte, no
/// payload: which offset or length failed is the caller's to know;
/// [`crate::shm::Error::kind`] sorts it in the embedded-hal manner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Error {
    /// A peer address range outside the window.
    AddressOutsideWindow,
    /// A local offset range outside the window (or a buffer slot).
    OffsetOutsideWindow,
    /// An offset not aligned to its width or to the cache line.
    Misaligned,
    /// The memory cannot be used now.
    Unavailable,
    /// The peer reported more bytes than a received buffer holds.
    LengthOverflow,
    /// An access through a byte view fell outside it.
    OutOfView,
}

impl crate::shm::Error for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::AddressOutsideWindow | Self::LengthOverflow => ErrorKind::Protocol,
            Self::OffsetOutsideWindow | Self::OutOfView => ErrorKind::OutOfWindow,
            Self::Misaligned => ErrorKind::Misaligned,
            Self::Unavailable => ErrorKind::WouldBlock,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::AddressOutsideWindow => "peer address outside the shared window",
            Self::OffsetOutsideWindow => "offset outside the shared window",
            Self::Misaligned => "misaligned shared-memory access",
            Self::Unavailable => "shared memory unavailable",
            Self::LengthOverflow => "peer length exceeds the buffer",
            Self::OutOfView => "bytes outside the view",
        })
    }
}

impl core::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shm::Error as _;

    #[test]
    fn one_byte_and_sorted_by_kind() {
        assert_eq!(core::mem::size_of::<Error>(), 1);
        assert_eq!(Error::AddressOutsideWindow.kind(), ErrorKind::Protocol);
        assert_eq!(Error::LengthOverflow.kind(), ErrorKind::Protocol);
        assert_eq!(Error::OutOfView.kind(), ErrorKind::OutOfWindow);
        assert_eq!(Error::Unavailable.kind(), ErrorKind::WouldBlock);
    }
}
