//! Errors (one variant per way the peer can lie) and statistics.
//!
//! Every value read from shared memory is hostile. Each rejection has its
//! own [`Error`] variant and its own counter in [`Failures`], so a field
//! report says exactly what the peer did wrong (the VMM virtio-queue style,
//! STYLE.md R3 and R13).
#![deny(unsafe_code)]

use core::fmt;

use ipc_traits::shm::{self, ErrorKind};

use crate::layout::LayoutError;

/// What went wrong on a ring operation.
///
/// Variants up to [`Error::LengthOverflow`] are *peer* errors: the other side
/// wrote something the protocol forbids. Each one bumps its counter in
/// [`Failures`]. The rest are local conditions or misuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Error {
    /// Device: `avail.idx` moved more than `num` entries past what was
    /// consumed (or went backwards). Nothing in the ring can be trusted any
    /// more: the ring is broken.
    AvailIndexJump {
        /// The device's position.
        last: u16,
        /// The index the driver published.
        idx: u16,
    },
    /// Driver: `used.idx` moved past more entries than are in flight (or went
    /// backwards). The ring is broken.
    UsedIndexJump {
        /// The driver's position.
        last: u16,
        /// The index the device published.
        idx: u16,
    },
    /// Device: an available entry names a descriptor `>= num`. The entry is
    /// consumed and skipped.
    DescriptorIndexOutOfRange {
        /// The descriptor index read from the available ring.
        index: u16,
    },
    /// Device: an available entry names a descriptor the device still holds
    /// (popped, not yet returned). Skipped.
    DescriptorInFlight {
        /// The descriptor index.
        index: u16,
    },
    /// Device: the descriptor has `VRING_DESC_F_NEXT`. rpmsg never chains
    /// (Linux adds one scatter entry per buffer, rpmsg-lite never sets the
    /// flag: vectors README), so this ring accepts single descriptors only,
    /// which also rules out looping or over-long chains. Skipped.
    UnexpectedNext {
        /// The descriptor index.
        index: u16,
    },
    /// Device: the descriptor has `VRING_DESC_F_INDIRECT`, a feature this
    /// ring never offers. Skipped.
    UnexpectedIndirect {
        /// The descriptor index.
        index: u16,
    },
    /// Device: a buffer popped for writing lacks `VRING_DESC_F_WRITE`.
    /// Skipped.
    NotDeviceWritable {
        /// The descriptor index.
        index: u16,
    },
    /// Device: a descriptor of length 0. Skipped.
    EmptyBuffer {
        /// The descriptor index.
        index: u16,
    },
    /// Device: a descriptor's `addr..addr + len` is not inside the shared
    /// window. Skipped.
    AddressOutsideWindow {
        /// The peer address.
        addr: u64,
        /// The length.
        len: u32,
    },
    /// Device: the buffer is in the window but outside the area buffers may
    /// occupy (over ring metadata, for example). Skipped.
    OutsideBufferArea {
        /// Window offset of the buffer.
        offset: usize,
        /// Its length.
        len: u32,
    },
    /// Device: the buffer does not start on a cache line (or a writable one
    /// does not end on one), so maintenance would touch a neighbour.
    /// Skipped. Never happens on coherent memory.
    MisalignedBuffer {
        /// Window offset of the buffer.
        offset: usize,
        /// Its length.
        len: u32,
    },
    /// Device: the buffer overlaps (at cache-line granularity) a buffer the
    /// device already holds. Two handles over the same bytes are never
    /// created. Skipped.
    OverlappingBuffer {
        /// The descriptor index.
        index: u16,
    },
    /// Driver: a used entry names an id that is out of range, was never
    /// published, or was already reaped. The entry is consumed and skipped.
    UnknownUsedId {
        /// The id read from the used ring.
        id: u32,
    },
    /// Driver: the device reports writing more bytes than the buffer holds.
    /// The buffer itself is handed back with the error (see
    /// [`crate::driver::ReapError`]).
    LengthOverflow {
        /// The descriptor id.
        id: u16,
        /// The length the device reported.
        len: u32,
        /// The buffer's size.
        capacity: u32,
    },
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
    InvalidLength {
        /// The length asked for.
        len: u32,
        /// The buffer's size.
        capacity: u32,
    },
    /// The operation is only allowed at initialisation.
    InvalidState,
    /// The layout does not fit the window, the cache or the ring.
    Layout(LayoutError),
    /// A shared-memory access failed (only if the memory implementation
    /// breaks its contract or is unavailable: the ring checks every offset).
    Memory(ErrorKind),
}

impl Error {
    /// Whether the peer caused this error (it is counted in [`Failures`]).
    pub const fn is_peer_error(&self) -> bool {
        matches!(
            self,
            Self::AvailIndexJump { .. }
                | Self::UsedIndexJump { .. }
                | Self::DescriptorIndexOutOfRange { .. }
                | Self::DescriptorInFlight { .. }
                | Self::UnexpectedNext { .. }
                | Self::UnexpectedIndirect { .. }
                | Self::NotDeviceWritable { .. }
                | Self::EmptyBuffer { .. }
                | Self::AddressOutsideWindow { .. }
                | Self::OutsideBufferArea { .. }
                | Self::MisalignedBuffer { .. }
                | Self::OverlappingBuffer { .. }
                | Self::UnknownUsedId { .. }
                | Self::LengthOverflow { .. }
        )
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

impl From<LayoutError> for Error {
    fn from(e: LayoutError) -> Self {
        Self::Layout(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::AvailIndexJump { last, idx } => {
                write!(f, "avail.idx jumped from {last} to {idx}")
            }
            Self::UsedIndexJump { last, idx } => write!(f, "used.idx jumped from {last} to {idx}"),
            Self::DescriptorIndexOutOfRange { index } => {
                write!(f, "descriptor index {index} out of range")
            }
            Self::DescriptorInFlight { index } => {
                write!(f, "descriptor {index} is already held by the device")
            }
            Self::UnexpectedNext { index } => write!(f, "descriptor {index} is chained"),
            Self::UnexpectedIndirect { index } => write!(f, "descriptor {index} is indirect"),
            Self::NotDeviceWritable { index } => {
                write!(f, "descriptor {index} is not device-writable")
            }
            Self::EmptyBuffer { index } => write!(f, "descriptor {index} has length 0"),
            Self::AddressOutsideWindow { addr, len } => {
                write!(f, "buffer {addr:#x}+{len} outside the shared window")
            }
            Self::OutsideBufferArea { offset, len } => {
                write!(f, "buffer at {offset:#x}+{len} outside the buffer area")
            }
            Self::MisalignedBuffer { offset, len } => {
                write!(f, "buffer at {offset:#x}+{len} not cache-line aligned")
            }
            Self::OverlappingBuffer { index } => {
                write!(f, "descriptor {index} overlaps a buffer in flight")
            }
            Self::UnknownUsedId { id } => write!(f, "used id {id} is not in flight"),
            Self::LengthOverflow { id, len, capacity } => {
                write!(
                    f,
                    "used length {len} of id {id} exceeds its {capacity}-byte buffer"
                )
            }
            Self::Broken => f.write_str("ring broken by an earlier index jump"),
            Self::Full => f.write_str("no free descriptor"),
            Self::ForeignBuffer => f.write_str("buffer does not belong to this ring slot"),
            Self::InvalidLength { len, capacity } => {
                write!(f, "length {len} exceeds the {capacity}-byte buffer")
            }
            Self::InvalidState => f.write_str("operation only allowed at initialisation"),
            Self::Layout(e) => write!(f, "{e}"),
            Self::Memory(k) => write!(f, "shared memory: {k}"),
        }
    }
}

impl core::error::Error for Error {}

/// Per-kind counters of peer errors (validation failures).
///
/// Counters wrap; they are statistics, not state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Failures {
    /// [`Error::AvailIndexJump`].
    pub avail_index_jump: u32,
    /// [`Error::UsedIndexJump`].
    pub used_index_jump: u32,
    /// [`Error::DescriptorIndexOutOfRange`].
    pub descriptor_index_out_of_range: u32,
    /// [`Error::DescriptorInFlight`].
    pub descriptor_in_flight: u32,
    /// [`Error::UnexpectedNext`].
    pub unexpected_next: u32,
    /// [`Error::UnexpectedIndirect`].
    pub unexpected_indirect: u32,
    /// [`Error::NotDeviceWritable`].
    pub not_device_writable: u32,
    /// [`Error::EmptyBuffer`].
    pub empty_buffer: u32,
    /// [`Error::AddressOutsideWindow`].
    pub address_outside_window: u32,
    /// [`Error::OutsideBufferArea`].
    pub outside_buffer_area: u32,
    /// [`Error::MisalignedBuffer`].
    pub misaligned_buffer: u32,
    /// [`Error::OverlappingBuffer`].
    pub overlapping_buffer: u32,
    /// [`Error::UnknownUsedId`].
    pub unknown_used_id: u32,
    /// [`Error::LengthOverflow`].
    pub length_overflow: u32,
}

impl Failures {
    /// Counts `e` if it is a peer error.
    pub fn record(&mut self, e: &Error) {
        let c = match e {
            Error::AvailIndexJump { .. } => &mut self.avail_index_jump,
            Error::UsedIndexJump { .. } => &mut self.used_index_jump,
            Error::DescriptorIndexOutOfRange { .. } => &mut self.descriptor_index_out_of_range,
            Error::DescriptorInFlight { .. } => &mut self.descriptor_in_flight,
            Error::UnexpectedNext { .. } => &mut self.unexpected_next,
            Error::UnexpectedIndirect { .. } => &mut self.unexpected_indirect,
            Error::NotDeviceWritable { .. } => &mut self.not_device_writable,
            Error::EmptyBuffer { .. } => &mut self.empty_buffer,
            Error::AddressOutsideWindow { .. } => &mut self.address_outside_window,
            Error::OutsideBufferArea { .. } => &mut self.outside_buffer_area,
            Error::MisalignedBuffer { .. } => &mut self.misaligned_buffer,
            Error::OverlappingBuffer { .. } => &mut self.overlapping_buffer,
            Error::UnknownUsedId { .. } => &mut self.unknown_used_id,
            Error::LengthOverflow { .. } => &mut self.length_overflow,
            _ => return,
        };
        *c = c.wrapping_add(1);
    }

    /// The sum of all counters.
    pub fn total(&self) -> u32 {
        [
            self.avail_index_jump,
            self.used_index_jump,
            self.descriptor_index_out_of_range,
            self.descriptor_in_flight,
            self.unexpected_next,
            self.unexpected_indirect,
            self.not_device_writable,
            self.empty_buffer,
            self.address_outside_window,
            self.outside_buffer_area,
            self.misaligned_buffer,
            self.overlapping_buffer,
            self.unknown_used_id,
            self.length_overflow,
        ]
        .iter()
        .fold(0u32, |a, &b| a.wrapping_add(b))
    }
}

/// Ring statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Entries made visible to the peer (driver: available entries; device:
    /// used entries).
    pub published: u32,
    /// Entries taken back from the peer and accepted (driver: used entries
    /// reaped; device: available entries popped).
    pub completed: u32,
    /// Publications after which the peer asked to be notified.
    pub notifications_sent: u32,
    /// Publications after which the peer's flags or event index said not
    /// to notify.
    pub notifications_suppressed: u32,
    /// Device: rejected descriptors handed back to the driver as used
    /// entries of length 0 (see [`crate::Device::pop_readable`]; each also
    /// counted in [`Stats::failures`] by kind).
    pub rejected_returned: u32,
    /// Peer errors, by kind.
    pub failures: Failures,
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipc_traits::shm::Error as _;

    #[test]
    fn peer_errors_are_counted_and_local_ones_not() {
        let mut f = Failures::default();
        f.record(&Error::UnknownUsedId { id: 99 });
        f.record(&Error::UnknownUsedId { id: 98 });
        f.record(&Error::AvailIndexJump { last: 0, idx: 40 });
        f.record(&Error::Full);
        f.record(&Error::ForeignBuffer);
        assert_eq!(f.unknown_used_id, 2);
        assert_eq!(f.avail_index_jump, 1);
        assert_eq!(f.total(), 3);
        assert_eq!(Error::Full.kind(), ErrorKind::WouldBlock);
        assert_eq!(Error::EmptyBuffer { index: 1 }.kind(), ErrorKind::Protocol);
        assert_eq!(Error::InvalidState.kind(), ErrorKind::Other);
    }
}
