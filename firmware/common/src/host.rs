//! The host's half of the start-up, done the way Linux does it, for images
//! that play both sides (the emulated runs).
//!
//! Linux remoteproc + `virtio_rpmsg_bus` (shared/docs/hw/rpmsg-wire.md
//! §2.1, §3.2, §3.3), in order:
//!
//! 1. status := `ACKNOWLEDGE | DRIVER`; negotiate features (`gfeatures` :=
//!    what both support, here the name service), status |= `FEATURES_OK`;
//! 2. for each vring: place it (at the firmware's `da`, or anywhere when the
//!    firmware said `FW_RSC_ADDR_ANY`), zero `vring_size(num, align)` bytes,
//!    write `da` and the notify id (0, 1, … in vring order) back into the
//!    table;
//! 3. allocate the buffer block, post every receive buffer on vring 0
//!    ([`rpmsg::rings::MasterRings::new`]);
//! 4. status |= `DRIVER_OK`;
//! 5. kick vring 0 (the caller does this with its doorbell, then builds the
//!    link).
#![allow(unsafe_code)]

use ipc_traits::shm::{SharedMemory, ShmError};
use rpmsg::rings::{MasterConfig, MasterRings, QueueIds};
use rpmsg::rsc_table::{status, VdevInfo, FW_RSC_ADDR_ANY, VIRTIO_RPMSG_F_NS};
use vring::{Legacy, Suppression};

use crate::boot::{vring_layout, BootError, BUF_SIZE};

/// `fw_rsc_vdev` field offsets from the entry's type word (§3.2).
const VDEV_GFEATURES: usize = 16;
const VDEV_STATUS: usize = 24;
const VDEV_VRINGS: usize = 28;
/// `fw_rsc_vdev_vring` size and field offsets (§3.2).
const VRING_LEN: usize = 20;
const VRING_DA: usize = 0;
const VRING_NOTIFYID: usize = 12;

/// Where the host puts what the firmware left to it, as window offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// vring 0 and vring 1, used when the table says `FW_RSC_ADDR_ANY`.
    pub vrings: [usize; 2],
    /// The buffer block: `2 * num` buffers of 512 bytes, receive half first.
    pub pool: usize,
}

/// Writes `bytes` at `at` of the table and cleans the lines, so the remote
/// (which invalidates before reading) sees them.
fn put<T: SharedMemory<Error = ShmError>>(
    table: &T,
    at: usize,
    bytes: &[u8],
) -> Result<(), ShmError> {
    table.write(at, bytes)?;
    let (start, len) = table.covering_lines(at, bytes.len())?;
    table.clean(start, len)
}

/// Zeroes `offset..offset + len` of the window and cleans it.
fn zero<M: SharedMemory<Error = ShmError>>(
    mem: &M,
    offset: usize,
    len: usize,
) -> Result<(), ShmError> {
    const CHUNK: [u8; 64] = [0; 64];
    let mut at = offset;
    let end = offset + len;
    while at < end {
        let n = (end - at).min(CHUNK.len());
        mem.write(at, &CHUNK[..n])?;
        at += n;
    }
    let (start, span) = mem.covering_lines(offset, len)?;
    mem.clean(start, span)
}

/// Starts the remote the way Linux does (module docs, steps 1–4) and returns
/// the host's rings and the doorbell ids. The caller kicks vring 0 next.
///
/// `table` is a window over the firmware's resource table (offset 0 = the
/// table), `info` what [`rpmsg::rsc_table::VdevView::locate`] found there,
/// `shared` the window holding the rings and buffers.
///
/// # Errors
///
/// A table whose vrings do not fit the window, a buffer block that does not
/// fit, a shared-memory or ring error ([`BootError`]).
///
/// # Safety
///
/// The buffer block (`placement.pool`, `2 * vrings[0].num * 512` bytes) is
/// owned by the host alone: no other buffer handle covers it
/// ([`MasterRings::new`]).
pub unsafe fn start_remote<'m, T, M, const NUM: usize>(
    table: &T,
    info: &VdevInfo,
    shared: &'m M,
    placement: Placement,
) -> Result<(MasterRings<'m, M, Legacy, NUM>, QueueIds), BootError>
where
    T: SharedMemory<Error = ShmError>,
    M: SharedMemory<Error = ShmError>,
{
    let vdev = info.offset;
    let mut st = status::ACKNOWLEDGE | status::DRIVER;
    put(table, vdev + VDEV_STATUS, &[st])?;
    let gfeatures = info.dfeatures & VIRTIO_RPMSG_F_NS;
    put(table, vdev + VDEV_GFEATURES, &gfeatures.to_ne_bytes())?;
    st |= status::FEATURES_OK;
    put(table, vdev + VDEV_STATUS, &[st])?;

    let mut layouts = [vring::Layout::legacy(1, 16); 2];
    for (k, layout) in layouts.iter_mut().enumerate() {
        let mut spec = info.vrings[k];
        if spec.da == FW_RSC_ADDR_ANY {
            let addr = shared.peer_addr(placement.vrings[k])?;
            spec.da = u32::try_from(addr).map_err(|_| BootError::VringOutsideWindow {
                index: k,
                da: FW_RSC_ADDR_ANY,
            })?;
        }
        *layout = vring_layout(shared, k, spec)?;
        zero(shared, layout.start(), layout.end() - layout.start())?;
        let entry = vdev + VDEV_VRINGS + k * VRING_LEN;
        put(table, entry + VRING_DA, &spec.da.to_ne_bytes())?;
        // k < 2, so the notify id is 0 or 1.
        put(table, entry + VRING_NOTIFYID, &(k as u32).to_ne_bytes())?;
    }

    let config = MasterConfig {
        vring0: layouts[0],
        vring1: layouts[1],
        pool: placement.pool,
        buf_size: BUF_SIZE,
        suppression: Suppression::Flags,
        queues: QueueIds::DEFAULT,
        rpmsg_lite_compat: false,
    };
    // SAFETY: the pool is the host's alone (this function's contract).
    let rings = unsafe { MasterRings::<M, Legacy, NUM>::new(shared, config) }?;

    st |= status::DRIVER_OK;
    put(table, vdev + VDEV_STATUS, &[st])?;
    Ok((rings, QueueIds::DEFAULT))
}

/// Resets the device the way Linux does when its driver goes away or the
/// remote is re-probed: the status byte goes back to 0 (rpmsg-wire.md
/// §3.3). The old rings stay as they are until the host lays them out again
/// ([`start_remote`]), so the remote can still count what it had not taken.
///
/// # Errors
///
/// A shared-memory error writing the table.
pub fn reset_device<T: SharedMemory<Error = ShmError>>(
    table: &T,
    info: &VdevInfo,
) -> Result<(), ShmError> {
    put(table, info.offset + VDEV_STATUS, &[0])
}
