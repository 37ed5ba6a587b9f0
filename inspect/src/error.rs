//! Why an image could not be inspected.

use std::fmt;

/// Everything that stops an inspection; each says what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InspectError {
    /// The command line is wrong.
    Usage(String),
    /// A file or device could not be read.
    Io(String),
    /// The layout options are inconsistent or absurd.
    Layout(String),
    /// The image is shorter than the layout needs.
    Truncated {
        /// What did not fit.
        what: String,
        /// Bytes needed.
        need: usize,
        /// Bytes in the image.
        len: usize,
    },
    /// The resource table asked for is missing or malformed.
    RscTable(String),
    /// The bytes at a ring's place do not hold a vring.
    NotAVring {
        /// Which ring.
        ring: usize,
        /// The evidence.
        reason: String,
    },
    /// Two images of different sizes were given.
    SizeMismatch {
        /// The first image's size.
        first: usize,
        /// The later image's size.
        later: usize,
    },
}

impl fmt::Display for InspectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Usage(m) => write!(f, "usage: {m}"),
            Self::Io(m) => f.write_str(m),
            Self::Layout(m) => write!(f, "layout: {m}"),
            Self::Truncated { what, need, len } => write!(
                f,
                "image truncated: {what} needs {need:#x} bytes, the image has {len:#x} (wrong layout, or a short dump)"
            ),
            Self::RscTable(m) => write!(f, "resource table: {m}"),
            Self::NotAVring { ring, reason } => write!(
                f,
                "no vring{ring} at this layout: {reason} (wrong --preset/--vring{ring}/--num, or not a ring image)"
            ),
            Self::SizeMismatch { first, later } => write!(
                f,
                "the later image has {later:#x} bytes, the first {first:#x}: they are not images of the same region"
            ),
        }
    }
}

impl std::error::Error for InspectError {}
