//! The remote's half of the remoteproc start-up.
//!
//! Linux loads the firmware, reads its resource table, places the vrings
//! (rewriting each `vring[i].da` and `notifyid`), posts all receive buffers
//! on vring 0, sets `DRIVER_OK` in the vdev status byte and kicks vring 0
//! (shared/docs/hw/rpmsg-wire.md §2.1, §3.2, §3.3). The remote therefore:
//!
//! 1. starts with [`rpmsg::rsc_table::HostBoot::start`], which clears the
//!    status byte only when it is a previous session's (a warm reboot must
//!    not see a stale `DRIVER_OK`, §3.3; a late boot must keep the host's
//!    current one);
//! 2. calls [`rpmsg::rsc_table::HostBoot::poll`] on every wake-up, and
//!    wakes by its `poll_at` at the latest, whatever the doorbell does (the
//!    host's start kick may predate the remote, and OpenAMP's driver role
//!    sends none), until it returns the vrings;
//! 3. turns them into a [`RemoteConfig`] with [`remote_config`], which
//!    checks every value the host wrote against the shared window.
//!
//! Linux allocates one block of `num_bufs` buffers of 512 bytes, the first
//! half for receiving (posted on vring 0), the second half for sending
//! (§2.2). The remote learns where the block is from the addresses the host
//! posted on vring 0 before `DRIVER_OK`: the lowest one is the block's start.
#![deny(unsafe_code)]

use core::fmt;

use ipc_traits::mailbox::QueueId;
use ipc_traits::shm::{SharedMemory, ShmError};
use rpmsg::rings::{QueueIds, RemoteConfig};
use rpmsg::rsc_table::{RscError, VringSpec};
use vring::{BufferArea, Layout, LayoutError, Suppression};

/// Bytes per rpmsg buffer (`MAX_RPMSG_BUF_SIZE`, rpmsg-wire.md §2.2).
pub const BUF_SIZE: usize = rpmsg::wire::DEFAULT_BUF_SIZE;

/// Buffers per direction at most: `MAX_RPMSG_NUM_BUFS / 2` (§2.2). With a
/// smaller vring 0, Linux uses `num` buffers per direction.
pub const MAX_BUFS_PER_DIRECTION: usize = 256;

/// Offset of a descriptor's 64-bit address inside the descriptor (§1.1).
const DESC_ADDR: usize = 0;

/// Why the host's set-up could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootError {
    /// The resource table is unreadable or inconsistent.
    Table(RscError),
    /// A shared-memory access failed.
    Shm(ShmError),
    /// A vring's `num` or `align` is unusable (zero, not a power of two,
    /// more than 65 535 entries).
    BadVring {
        /// Vring index (0 or 1).
        index: usize,
        /// The `num` the table holds.
        num: u32,
        /// The `align` the table holds.
        align: u32,
    },
    /// A vring does not lie inside the shared window.
    VringOutsideWindow {
        /// Vring index.
        index: usize,
        /// The device address the table holds.
        da: u32,
    },
    /// The ring layout does not fit the window or its cache-line rules.
    Layout(LayoutError),
    /// A notify id is not a queue id (0..=31).
    BadNotifyId {
        /// Vring index.
        index: usize,
        /// The notify id the table holds.
        id: u32,
    },
    /// The receive buffers the host posted do not lie inside the window.
    BuffersOutsideWindow {
        /// The lowest buffer address posted on vring 0.
        addr: u64,
    },
    /// A ring could not be initialised (host side).
    Ring(vring::Error),
}

impl From<RscError> for BootError {
    fn from(e: RscError) -> Self {
        Self::Table(e)
    }
}

impl From<ShmError> for BootError {
    fn from(e: ShmError) -> Self {
        Self::Shm(e)
    }
}

impl From<LayoutError> for BootError {
    fn from(e: LayoutError) -> Self {
        Self::Layout(e)
    }
}

impl From<vring::Error> for BootError {
    fn from(e: vring::Error) -> Self {
        Self::Ring(e)
    }
}

impl fmt::Display for BootError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Table(e) => write!(f, "resource table: {e}"),
            Self::Shm(e) => write!(f, "shared memory: {e}"),
            Self::BadVring { index, num, align } => {
                write!(f, "vring {index}: unusable num {num} / align {align}")
            }
            Self::VringOutsideWindow { index, da } => {
                write!(f, "vring {index} at {da:#x} outside the shared window")
            }
            Self::Layout(e) => write!(f, "ring layout: {e:?}"),
            Self::BadNotifyId { index, id } => {
                write!(f, "vring {index}: notify id {id} is not a queue id")
            }
            Self::BuffersOutsideWindow { addr } => {
                write!(f, "receive buffers at {addr:#x} outside the shared window")
            }
            Self::Ring(e) => write!(f, "ring: {e}"),
        }
    }
}

/// The layout of vring `index` of `spec`, placed where the host put it.
///
/// # Errors
///
/// [`BootError::BadVring`], [`BootError::VringOutsideWindow`],
/// [`BootError::Layout`].
pub fn vring_layout<M: SharedMemory<Error = ShmError>>(
    shared: &M,
    index: usize,
    spec: VringSpec,
) -> Result<Layout, BootError> {
    let bad = BootError::BadVring {
        index,
        num: spec.num,
        align: spec.align,
    };
    let num = u16::try_from(spec.num).map_err(|_| bad)?;
    let align = usize::try_from(spec.align).map_err(|_| bad)?;
    if num == 0 || !num.is_power_of_two() || align == 0 || !align.is_power_of_two() {
        return Err(bad);
    }
    let outside = BootError::VringOutsideWindow { index, da: spec.da };
    let offset = shared
        .translate(u64::from(spec.da), 1)
        .map_err(|_| outside)?;
    // Checked arithmetic (never `vring_size`, which panics on overflow):
    // the layout errors on an absurd `align`, then the whole ring must be
    // inside the window.
    let layout = Layout::try_legacy_at(offset, num, align)?;
    shared
        .translate(u64::from(spec.da), layout.end() - offset)
        .map_err(|_| outside)?;
    Ok(layout)
}

/// The queue id a vring's notify id stands for.
fn queue_id(index: usize, id: u32) -> Result<QueueId, BootError> {
    u8::try_from(id)
        .ok()
        .and_then(QueueId::new)
        .ok_or(BootError::BadNotifyId { index, id })
}

/// Where the remote finds its rings and the host's buffers, from the vrings
/// the host wrote back (`HostPoll::Ready`) and the receive buffers it posted.
///
/// The rings are legacy layouts at the host's addresses, notifications use
/// flags (the remote offers no `EVENT_IDX`, rpmsg-wire.md §1.4), and the
/// doorbell ids are the notify ids the host assigned (§3.2).
///
/// # Errors
///
/// Any value the host wrote that does not fit the window: see
/// [`BootError`]. Never panics on any table or ring content.
pub fn remote_config<M: SharedMemory<Error = ShmError>>(
    shared: &M,
    vrings: [VringSpec; 2],
) -> Result<RemoteConfig, BootError> {
    let vring0 = vring_layout(shared, 0, vrings[0])?;
    let vring1 = vring_layout(shared, 1, vrings[1])?;
    let per = usize::from(vring0.num()).min(MAX_BUFS_PER_DIRECTION);
    // The host wrote the descriptors before DRIVER_OK; read them from
    // memory, not from a stale line. The remote has written nothing there.
    let table_len = per * 16;
    let (start, len) = shared.covering_lines(vring0.desc_offset(), table_len)?;
    shared.invalidate(start, len)?;
    let mut lowest = u64::MAX;
    for i in 0..per {
        // `per <= num <= u16::MAX`, so the index fits.
        let Ok(i) = u16::try_from(i) else { break };
        let mut raw = [0u8; 8];
        shared.read(vring0.desc_entry_offset(i) + DESC_ADDR, &mut raw)?;
        // Legacy rings are in the host's byte order, which is ours
        // (rpmsg-wire.md §1.5).
        lowest = lowest.min(u64::from_ne_bytes(raw));
    }
    let half = per * BUF_SIZE;
    let offset = shared
        .translate(lowest, 2 * half)
        .map_err(|_| BootError::BuffersOutsideWindow { addr: lowest })?;
    Ok(RemoteConfig {
        vring0,
        vring1,
        vring0_buffers: BufferArea::new(offset, half),
        vring1_buffers: BufferArea::new(offset + half, half),
        suppression: Suppression::Flags,
        queues: QueueIds {
            vring0: queue_id(0, vrings[0].notifyid)?,
            vring1: queue_id(1, vrings[1].notifyid)?,
        },
    })
}
