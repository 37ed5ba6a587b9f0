//! Where Linux's rpmsg buffers lie, so each device ring can be given a
//! buffer area disjoint from the other's and from every ring.
//!
//! Linux's `virtio_rpmsg_bus` allocates all its buffers in one coherent
//! block at probe: the first half is the receive pool, posted on queue 0
//! (all of it, before the first kick), the second half the transmit pool,
//! used on queue 1 (`rpmsg_probe`: `vrp->rbufs = bufs_va`,
//! `vrp->sbufs = bufs_va + total_buf_space / 2`; docs/linux-peer.md,
//! "Step 3b", RX buffers at probe). So after the first kick on queue 0 the
//! span of the posted receive buffers gives the receive area, and the same
//! length right behind it the transmit area.
//!
//! The descriptors read here are hostile like any other: this only
//! computes two ranges; the rings validate every buffer again against them
//! (a buffer outside is refused by the ring, it cannot corrupt anything).
#![deny(unsafe_code)]

use std::fmt;

use ipc_traits::shm::SharedMemory;

use crate::backend::QueueConfig;

/// Why no buffer areas could be derived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AreaError {
    /// The driver posted no receive buffer yet.
    NothingPosted,
    /// A posted descriptor names an index beyond the ring.
    BadDescriptor {
        /// The index.
        head: u16,
    },
    /// The receive span lies outside the window.
    OutsideWindow,
    /// The receive or transmit span overlaps a ring.
    OverlapsRing,
    /// Shared memory could not be read.
    Memory,
}

impl fmt::Display for AreaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NothingPosted => f.write_str("no receive buffer posted"),
            Self::BadDescriptor { head } => write!(f, "posted descriptor {head} out of range"),
            Self::OutsideWindow => f.write_str("receive buffers outside guest memory"),
            Self::OverlapsRing => f.write_str("buffer pool overlaps a ring"),
            Self::Memory => f.write_str("shared memory read failed"),
        }
    }
}

impl std::error::Error for AreaError {}

/// The receive area (queue 0) and transmit area (queue 1), as window
/// offset and length each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RpmsgAreas {
    /// Buffers Linux posts for the device to fill (queue 0).
    pub rx: (usize, usize),
    /// Buffers Linux sends from (queue 1).
    pub tx: (usize, usize),
}

fn le16(mem: &impl SharedMemory, offset: usize) -> Result<u16, AreaError> {
    let mut b = [0; 2];
    mem.read(offset, &mut b).map_err(|_| AreaError::Memory)?;
    Ok(u16::from_le_bytes(b))
}

/// Derives the two areas from the receive buffers posted on `rx` (virtio
/// 1.x little-endian ring; call after the driver's first kick on it).
/// `rings` are all queues, whose ring areas both pools must avoid.
///
/// # Errors
///
/// See [`AreaError`].
pub fn rpmsg_areas(
    mem: &impl SharedMemory,
    rx: &QueueConfig,
    rings: &[QueueConfig],
) -> Result<RpmsgAreas, AreaError> {
    let posted = le16(mem, rx.avail + 2)?.min(rx.num);
    if posted == 0 {
        return Err(AreaError::NothingPosted);
    }
    let (mut lo, mut hi) = (u64::MAX, 0u64);
    for pos in 0..posted {
        let head = le16(mem, rx.avail + 4 + 2 * usize::from(pos))?;
        if head >= rx.num {
            return Err(AreaError::BadDescriptor { head });
        }
        let mut d = [0u8; 16];
        mem.read(rx.desc + 16 * usize::from(head), &mut d)
            .map_err(|_| AreaError::Memory)?;
        let mut a = [0; 8];
        a.copy_from_slice(&d[..8]);
        let addr = u64::from_le_bytes(a);
        let len = u64::from(u32::from_le_bytes([d[8], d[9], d[10], d[11]]));
        lo = lo.min(addr);
        hi = hi.max(addr.checked_add(len).ok_or(AreaError::OutsideWindow)?);
    }
    let span = usize::try_from(hi - lo).map_err(|_| AreaError::OutsideWindow)?;
    let start = mem
        .translate(lo, span)
        .map_err(|_| AreaError::OutsideWindow)?;
    let tx_start = start + span;
    let tx_len = span.min(mem.len().saturating_sub(tx_start));
    let overlaps = |off: usize, len: usize| {
        rings.iter().any(|q| {
            let n = usize::from(q.num);
            [(q.desc, 16 * n), (q.avail, 6 + 2 * n), (q.used, 6 + 8 * n)]
                .iter()
                .any(|&(o, l)| off < o + l && o < off + len)
        })
    };
    if overlaps(start, span) || overlaps(tx_start, tx_len) {
        return Err(AreaError::OverlapsRing);
    }
    Ok(RpmsgAreas {
        rx: (start, span),
        tx: (tx_start, tx_len),
    })
}
