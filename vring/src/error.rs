//! Errors (one variant per way the peer can lie) and statistics.
//!
//! Every value read from shared memory is hostile. Each rejection has its
//! own [`Error`] variant and its own counter in [`Failures`], so a field
//! report says exactly what the peer did wrong (the VMM virtio-queue style,
//! STYLE.md R3 and R13).
#![deny(unsafe_code)]

use core::fmt;

use ipc_traits::shm::{self, ErrorKind};

/// What went wrong on a ring operation, or laying a ring out: the crate's
/// one error. One byte, no payload: which descriptor or address the peer
/// got wrong is counted by kind in [`Failures`], not carried here.
///
/// Variants up to [`Error::LengthOverflow`] are *peer* errors: the other side
/// wrote something the protocol forbids. Each one bumps its counter in
/// [`Failures`]. The rest are local conditions, layout refusals or misuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Error {
    /// Device: `avail.idx` moved more than `num` entries past what was
    /// consumed (or went backwards). Nothing in the ring can be trusted any
    /// more: the ring is broken.
    AvailIndexJump,
    /// Driver: `used.idx` moved past more entries than are in flight (or went
    /// backwards). The ring is broken.
    UsedIndexJump,
    /// Device: an available entry names a descriptor `>= num`. The entry is
    /// consumed and skipped.
    DescriptorIndexOutOfRange,
    /// Device: an available entry names a descriptor the device still holds
    /// (popped, not yet returned). Skipped.
    DescriptorInFlight,
    /// Device: the descriptor has `VRING_DESC_F_NEXT`. rpmsg never chains
    /// (Linux adds one scatter entry per buffer, rpmsg-lite never sets the
    /// flag: vectors README), so this ring accepts single descriptors only,
    /// which also rules out looping or over-long chains. Skipped.
    UnexpectedNext,
    /// Device: the descriptor has `VRING_DESC_F_INDIRECT`, a feature this
    /// ring never offers. Skipped.
    UnexpectedIndirect,
    /// Device: a buffer popped for writing lacks `VRING_DESC_F_WRITE`.
    /// Skipped.
    NotDeviceWritable,
    /// Device: a descriptor of length 0. Skipped.
    EmptyBuffer,
    /// Device: a descriptor's `addr..addr + len` is not inside the shared
    /// window. Skipped.
    AddressOutsideWindow,
    /// Device: the buffer is in the window but outside the area buffers may
    /// occupy (over ring metadata, for example). Skipped.
    OutsideBufferArea,
    /// Device: the buffer does not start on a cache line (or a writable one
    /// does not end on one), so maintenance would touch a neighbour.
    /// Skipped. Never happens on coherent memory.
    MisalignedBuffer,
    /// Device: the buffer overlaps (at cache-line granularity) a buffer the
    /// device already holds. Two handles over the same bytes are never
    /// created. Skipped.
    OverlappingBuffer,
    /// Driver: a used entry names an id that is out of range, was never
    /// published, or was already reaped. The entry is consumed and skipped.
    UnknownUsedId,
    /// Driver: the device reports writing more bytes than the buffer holds.
    /// The buffer itself is handed back with the error (see
    /// [`crate::driver::ReapError`]).
    LengthOverflow,
    /// The ring saw an index jump earlier and refuses every operation.
    Broken,
    /// No free descriptor (driver) — retry after reaping. Spinning on this
    /// inside an interrupt handler starves the context that would reap.
    Full,
    /// A buffer handed to the ring does not belong to it: on the device, not
    /// the buffer popped for that head; on the driver, a buffer overlapping
    /// the ring's own areas. The buffer is handed back.
    ForeignBuffer,
    /// A length given to the ring exceeds the buffer. The buffer is handed
    /// back.
    InvalidLength,
    /// The operation is only allowed at initialisation.
    InvalidState,
    /// Layout: `num` is zero, not a power of two, or above
    /// [`crate::layout::MAX_NUM`].
    BadNum,
    /// Layout: `align` is not a power of two of at least
    /// [`crate::layout::USED_ALIGN`].
    BadAlign,
    /// Layout: an area does not start at its required alignment.
    MisalignedArea,
    /// Layout: two areas overlap.
    AreasOverlap,
    /// Layout: an offset computation overflowed `usize`.
    Overflow,
    /// Layout: the ring does not fit in the shared window.
    RingOutsideWindow,
    /// Layout: a cache line holds both driver-written and device-written
    /// ring fields (for example `avail` and `used` with an `align` smaller
    /// than the line): with a write-back cache each side's clean would
    /// overwrite the other's field. Use a larger alignment or coherent
    /// memory.
    SharedCacheLine,
    /// Layout: the ring holds more entries than the ring object was sized
    /// for (its `N`).
    TooManyEntries,
    /// Layout: a device's buffer area lies outside the window or overlaps
    /// the ring.
    BadBufferArea,
    /// A device's per-entry tables ([`crate::DeviceTables`]) are lent to
    /// another device that is still alive.
    TablesInUse,
    /// A shared-memory access failed (only if the memory implementation
    /// breaks its contract or is unavailable: the ring checks every offset).
    Memory(ErrorKind),
}

impl Error {
    /// Whether the peer caused this error (it is counted in [`Failures`]).
    pub const fn is_peer_error(&self) -> bool {
        self.peer_index().is_some()
    }
}

impl shm::Error for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Full => ErrorKind::WouldBlock,
            Self::Memory(k) => *k,
            Self::Broken => ErrorKind::Protocol,
            e if e.is_peer_error() => ErrorKind::Protocol,
            _ => ErrorKind::Other,
        }
    }
}

/// `?` from the memory's error: its kind.
impl From<ipc_traits::Error> for Error {
    #[inline]
    fn from(e: ipc_traits::Error) -> Self {
        Self::Memory(shm::Error::kind(&e))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::AvailIndexJump => "avail.idx jumped",
            Self::UsedIndexJump => "used.idx jumped",
            Self::DescriptorIndexOutOfRange => "descriptor index out of range",
            Self::DescriptorInFlight => "descriptor already held by the device",
            Self::UnexpectedNext => "descriptor is chained",
            Self::UnexpectedIndirect => "descriptor is indirect",
            Self::NotDeviceWritable => "descriptor not device-writable",
            Self::EmptyBuffer => "descriptor of length 0",
            Self::AddressOutsideWindow => "buffer outside the shared window",
            Self::OutsideBufferArea => "buffer outside the buffer area",
            Self::MisalignedBuffer => "buffer not cache-line aligned",
            Self::OverlappingBuffer => "descriptor overlaps a buffer in flight",
            Self::UnknownUsedId => "used id not in flight",
            Self::LengthOverflow => "used length exceeds the buffer",
            Self::Broken => "ring broken by an earlier index jump",
            Self::Full => "no free descriptor",
            Self::ForeignBuffer => "buffer does not belong to this ring slot",
            Self::InvalidLength => "length exceeds the buffer",
            Self::InvalidState => "operation only allowed at initialisation",
            Self::BadNum => "queue size not a power of two in 1..=32768",
            Self::BadAlign => "ring alignment not a power of two >= 4",
            Self::MisalignedArea => "ring area misaligned",
            Self::AreasOverlap => "ring areas overlap",
            Self::Overflow => "ring offsets overflow",
            Self::RingOutsideWindow => "ring outside the shared window",
            Self::SharedCacheLine => "driver and device ring fields share a cache line",
            Self::TooManyEntries => "ring larger than its capacity",
            Self::BadBufferArea => "buffer area outside the window or over the ring",
            Self::TablesInUse => "device tables lent to another device",
            Self::Memory(k) => return write!(f, "shared memory: {k}"),
        })
    }
}

impl core::error::Error for Error {}

/// The peer errors in counter order (each [`Failures`] counter's index is
/// its position here), with the accessor that reads it.
macro_rules! peer_errors {
    ($m:ident) => {
        $m! {
            0 AvailIndexJump avail_index_jump,
            1 UsedIndexJump used_index_jump,
            2 DescriptorIndexOutOfRange descriptor_index_out_of_range,
            3 DescriptorInFlight descriptor_in_flight,
            4 UnexpectedNext unexpected_next,
            5 UnexpectedIndirect unexpected_indirect,
            6 NotDeviceWritable not_device_writable,
            7 EmptyBuffer empty_buffer,
            8 AddressOutsideWindow address_outside_window,
            9 OutsideBufferArea outside_buffer_area,
            10 MisalignedBuffer misaligned_buffer,
            11 OverlappingBuffer overlapping_buffer,
            12 UnknownUsedId unknown_used_id,
            13 LengthOverflow length_overflow,
        }
    };
}

/// How many peer error kinds [`Failures`] counts.
const PEER_KINDS: usize = 14;

/// Per-kind counters of peer errors (validation failures): one counter per
/// peer [`Error`] variant, in a table indexed by the variant, read through
/// the accessor named after it.
///
/// Counters wrap; they are statistics, not state.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct Failures {
    counts: [u32; PEER_KINDS],
}

macro_rules! failures_impl {
    ($($i:literal $v:ident $name:ident,)+) => {
        impl Error {
            /// The counter index of a peer error.
            #[inline]
            const fn peer_index(&self) -> Option<usize> {
                match self {
                    $(Self::$v => Some($i),)+
                    _ => None,
                }
            }
        }

        impl Failures {
            $(
                #[doc = concat!("[`Error::", stringify!($v), "`]: how many times the peer did it.")]
                #[inline]
                pub const fn $name(&self) -> u32 {
                    self.counts[$i]
                }
            )+
        }

        impl fmt::Debug for Failures {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct("Failures")
                    $(.field(stringify!($name), &self.counts[$i]))+
                    .finish()
            }
        }
    };
}
peer_errors!(failures_impl);

impl Failures {
    /// Counts `e` if it is a peer error.
    #[inline]
    pub fn record(&mut self, e: &Error) {
        if let Some(c) = e.peer_index().and_then(|i| self.counts.get_mut(i)) {
            *c = c.wrapping_add(1);
        }
    }

    /// How many times the peer error `e` was counted (0 for an error the
    /// peer cannot cause).
    pub fn count(&self, e: &Error) -> u32 {
        e.peer_index()
            .and_then(|i| self.counts.get(i))
            .copied()
            .unwrap_or(0)
    }

    /// The sum of all counters.
    pub fn total(&self) -> u32 {
        self.counts.iter().fold(0u32, |a, &b| a.wrapping_add(b))
    }
}

/// Ring statistics: the peer-error counters always, the success counters
/// (`published`, `completed`, `notifications_*`) with the feature `stats`
/// (each is a store per message on the data path, paid only when asked
/// for).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Entries made visible to the peer (driver: available entries; device:
    /// used entries).
    #[cfg(feature = "stats")]
    pub published: u32,
    /// Entries taken back from the peer and accepted (driver: used entries
    /// reaped; device: available entries popped).
    #[cfg(feature = "stats")]
    pub completed: u32,
    /// Publications after which the peer asked to be notified.
    #[cfg(feature = "stats")]
    pub notifications_sent: u32,
    /// Publications after which the peer's flags or event index said not
    /// to notify.
    #[cfg(feature = "stats")]
    pub notifications_suppressed: u32,
    /// Device: rejected descriptors handed back to the driver as used
    /// entries of length 0 (see [`crate::Device::pop_readable`]; each also
    /// counted in [`Stats::failures`] by kind).
    pub rejected_returned: u32,
    /// Peer errors, by kind.
    pub failures: Failures,
}

impl Stats {
    /// Every count 0 (what `Default` gives, in a `const`).
    pub(crate) const ZERO: Self = Self {
        #[cfg(feature = "stats")]
        published: 0,
        #[cfg(feature = "stats")]
        completed: 0,
        #[cfg(feature = "stats")]
        notifications_sent: 0,
        #[cfg(feature = "stats")]
        notifications_suppressed: 0,
        rejected_returned: 0,
        failures: Failures {
            counts: [0; PEER_KINDS],
        },
    };
}

/// Early error returns of the hot paths (a broken ring, a foreign id, a
/// length beyond the buffer: misuse or a broken peer, never the steady
/// state), each a function of no argument kept out of line and marked
/// unlikely. A plain `return Err(..)` lets the compiler load the error code
/// into the return register ahead of the test (to share one exit block),
/// and a shared function taking the code gets its argument hoisted the
/// same way; `black_box` keeps the optimiser from folding the returned
/// code back into the caller. With the feature `small` they are plain
/// `Err`s (inlined): the calls and the copies per result type cost a
/// Cortex-M4 remote about 250 bytes.
macro_rules! cold_errors {
    ($($(#[$m:meta])* $name:ident => $v:ident;)+) => {$(
        $(#[$m])*
        #[cfg_attr(not(feature = "small"), cold, inline(never))]
        #[cfg_attr(feature = "small", inline(always))]
        pub(crate) fn $name<T>() -> Result<T, Error> {
            if cfg!(feature = "small") {
                Err(Error::$v)
            } else {
                Err(core::hint::black_box(Error::$v))
            }
        }
    )+};
}

cold_errors! {
    /// `Err(Error::Broken)`.
    broken => Broken;
    /// `Err(Error::ForeignBuffer)`.
    foreign => ForeignBuffer;
    /// `Err(Error::InvalidLength)`.
    invalid_length => InvalidLength;
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipc_traits::shm::Error as _;

    #[test]
    fn the_error_is_one_byte() {
        assert_eq!(core::mem::size_of::<Error>(), 1);
        assert_eq!(core::mem::size_of::<Result<(), Error>>(), 1);
    }

    #[test]
    fn each_peer_error_has_its_own_counter() {
        macro_rules! each {
            ($($i:literal $v:ident $name:ident,)+) => {{
                let mut f = Failures::default();
                $(
                    for _ in 0..=$i {
                        f.record(&Error::$v);
                    }
                )+
                $(assert_eq!(f.$name(), $i + 1, stringify!($v));)+
                $(assert!(Error::$v.is_peer_error());)+
                assert_eq!(f.total(), (1..=14).sum::<u32>());
            }};
        }
        peer_errors!(each);
    }

    #[test]
    fn peer_errors_are_counted_and_local_ones_not() {
        let mut f = Failures::default();
        f.record(&Error::UnknownUsedId);
        f.record(&Error::UnknownUsedId);
        f.record(&Error::AvailIndexJump);
        f.record(&Error::Full);
        f.record(&Error::ForeignBuffer);
        assert_eq!(f.unknown_used_id(), 2);
        assert_eq!(f.avail_index_jump(), 1);
        assert_eq!(f.count(&Error::UnknownUsedId), 2);
        assert_eq!(f.count(&Error::Full), 0);
        assert_eq!(f.used_index_jump(), 0);
        assert_eq!(f.total(), 3);
        assert_eq!(Error::Full.kind(), ErrorKind::WouldBlock);
        assert_eq!(Error::EmptyBuffer.kind(), ErrorKind::Protocol);
        assert_eq!(Error::InvalidState.kind(), ErrorKind::Other);
    }
}
