//! A host and a remote on one core, taking turns: the emulated Cortex-M4
//! image (and the host tests) run the whole start-up and an echo exchange
//! with the same code the firmware examples use on each side.
//!
//! The host boots the remote the way Linux does ([`crate::host`]), the
//! remote waits for `DRIVER_OK` and finds its rings ([`crate::boot`]),
//! announces its services ([`crate::echo`]), and the host's
//! [`EchoClient`] checks every echo. Notifications go through two
//! [`MemDoorbell`]s. A round in which neither side makes progress while no
//! doorbell is pending means a lost notification: after `max_idle_rounds`
//! of them the run fails instead of hanging.
#![allow(unsafe_code)]

use ipc_traits::mailbox::{blocking_notify, NotifyRx, Spins};
use ipc_traits::shm::{SharedMemory, ShmError};
use rpmsg::link::{Link, LinkStats};
use rpmsg::rings::RemoteRings;
use rpmsg::rsc_table::{RscError, VdevView};
use vring::Legacy;

use crate::boot::{host_ready, remote_config, BootError};
use crate::client::{ClientError, ClientStats, EchoClient};
use crate::doorbell::{MemDoorbell, Wake};
use crate::echo::{EchoService, EchoStats};
use crate::host::{start_remote, Placement};

/// What to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PairConfig {
    /// Messages to echo.
    pub count: u32,
    /// Messages the host keeps outstanding at most.
    pub window: u32,
    /// Rounds without progress and without a pending doorbell before the
    /// run is declared stalled.
    pub max_idle_rounds: u32,
}

/// Why a run failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairError {
    /// Start-up failed (either side).
    Boot(BootError),
    /// The host saw a wrong, lost or duplicated echo, or a link error.
    Client(ClientError),
    /// The remote's link failed.
    Remote(rpmsg::link::Error),
    /// The remote never saw `DRIVER_OK` after the host set it.
    NotReady,
    /// Nothing moved for `max_idle_rounds` rounds.
    Stalled {
        /// Echoes checked before the stall.
        received: u32,
    },
}

impl From<BootError> for PairError {
    fn from(e: BootError) -> Self {
        Self::Boot(e)
    }
}

impl From<RscError> for PairError {
    fn from(e: RscError) -> Self {
        Self::Boot(BootError::Table(e))
    }
}

impl From<ShmError> for PairError {
    fn from(e: ShmError) -> Self {
        Self::Boot(BootError::Shm(e))
    }
}

impl From<ClientError> for PairError {
    fn from(e: ClientError) -> Self {
        Self::Client(e)
    }
}

impl core::fmt::Display for PairError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Boot(e) => write!(f, "boot: {e}"),
            Self::Client(e) => write!(f, "host: {e}"),
            Self::Remote(e) => write!(f, "remote: {e}"),
            Self::NotReady => f.write_str("remote never saw DRIVER_OK"),
            Self::Stalled { received } => write!(f, "stalled after {received} echoes"),
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Copy, Default)]
pub struct PairReport {
    /// The host's client.
    pub client: ClientStats,
    /// The remote's echo service.
    pub echo: EchoStats,
    /// The host's link.
    pub host: LinkStats,
    /// The remote's link.
    pub remote: LinkStats,
    /// Ring notifications suppressed (both sides, all rings).
    pub suppressed: u32,
    /// Validation failures counted anywhere (links and rings); 0 in a clean
    /// run.
    pub validation_errors: u32,
    /// Rounds taken.
    pub rounds: u32,
}

/// Link and ring validation counters that must stay 0.
pub fn validation_errors(s: &LinkStats, rings: (vring::Stats, vring::Stats)) -> u32 {
    s.rx_bad_header
        + s.rx_unbound
        + s.ns_malformed
        + s.ns_unknown_destroy
        + s.ns_directory_full
        + rings.0.failures.total()
        + rings.1.failures.total()
}

/// The two doorbells of a pair and how ringing each wakes its side.
#[derive(Debug)]
pub struct Doorbells<'a, WR, WH> {
    /// Rung by the host, taken by the remote.
    pub to_remote: &'a MemDoorbell,
    /// Rung by the remote, taken by the host.
    pub to_host: &'a MemDoorbell,
    /// Runs after each ring of `to_remote`.
    pub wake_remote: WR,
    /// Runs after each ring of `to_host`.
    pub wake_host: WH,
}

/// Ring capacity of both sides.
pub const NUM: usize = 32;

/// Runs a whole start-up and echo exchange on one core.
///
/// `table` is a window over the firmware's resource table (`TABLE` bytes
/// at offset 0); `shared` holds rings and buffers; `bells` carry the
/// notifications.
///
/// # Errors
///
/// [`PairError`]: the run failed; nothing here panics on ring contents.
///
/// # Safety
///
/// `placement.pool` (`2 * num * 512` bytes of `shared`) holds no other
/// buffer handle ([`start_remote`]), and `shared`'s buffer areas are used
/// by these two links only.
pub unsafe fn run<T, M, WR, WH, const TABLE: usize>(
    table: &T,
    shared: &M,
    placement: Placement,
    bells: Doorbells<'_, WR, WH>,
    config: PairConfig,
) -> Result<PairReport, PairError>
where
    T: SharedMemory<Error = ShmError>,
    M: SharedMemory<Error = ShmError>,
    WR: Wake,
    WH: Wake,
{
    // Remote, at reset: find the vdev, forget any stale status.
    let (view, info) = VdevView::locate::<T, TABLE>(table, 0)?;
    view.reset_status(table)?;

    // Host: lay out rings and buffers, DRIVER_OK, then kick vring 0.
    // SAFETY: the pool is the host's alone (this function's contract).
    let (host_rings, host_queues) =
        unsafe { start_remote::<T, M, NUM>(table, &info, shared, placement) }?;
    let mut host_ring = bells.to_remote.ringer(bells.wake_remote);
    let _: Result<(), _> = blocking_notify(&mut host_ring, host_queues.vring0, Spins::new(1));
    let host: Link<'_, _, _, 2, 8, 4> = Link::new(host_rings, host_ring);
    let mut host_take = bells.to_host.taker();
    let mut client = EchoClient::new(&host, config.count, config.window)
        .map_err(|e| PairError::Client(e.into()))?;

    // Remote: wait for the kick and DRIVER_OK, attach, announce.
    let mut remote_take = bells.to_remote.taker();
    let first = remote_take.take_pending().unwrap_or_default();
    let Some(vrings) = host_ready(table, &view)? else {
        return Err(PairError::NotReady);
    };
    let remote_cfg = remote_config(shared, vrings)?;
    // SAFETY: the buffer areas are the host's two buffer halves, disjoint;
    // the remote builds no other buffer over them (this function's
    // contract).
    let remote_rings = unsafe { RemoteRings::<M, Legacy, NUM>::new(shared, remote_cfg) }
        .map_err(BootError::Ring)?;
    let remote: Link<'_, _, _, 2, 4, 2> =
        Link::new(remote_rings, bells.to_host.ringer(bells.wake_host));
    remote.on_notify(first);
    let mut echo = EchoService::new(&remote).map_err(PairError::Remote)?;

    // Each side acts only when its doorbell rang, or while it has work of
    // its own (the remote: announcing, or a batch that may have more
    // behind it; the host: messages to send with a transmit buffer at
    // hand). A lost notification therefore stalls the run, which is
    // detected, instead of being papered over by polling.
    let mut rounds = 0u32;
    let mut idle = 0u32;
    let mut remote_busy = true;
    while !client.is_done() {
        rounds = rounds.wrapping_add(1);
        let mut moved = false;
        let set = remote_take.take_pending().unwrap_or_default();
        if !set.is_empty() || remote_busy || !echo.is_announced() {
            remote.on_notify(set);
            let served = echo.serve(&remote).map_err(PairError::Remote)?;
            remote_busy = served.echoed > 0;
            moved |= remote_busy || !set.is_empty();
        }
        let set = host_take.take_pending().unwrap_or_default();
        if !set.is_empty() || client.wants_to_send() {
            host.on_notify(set);
            moved |= client.step(&host)? || !set.is_empty();
        }
        if moved {
            idle = 0;
        } else {
            idle += 1;
            if idle > config.max_idle_rounds {
                return Err(PairError::Stalled {
                    received: client.stats().received,
                });
            }
        }
    }

    let host_stats = host.stats();
    let remote_stats = remote.stats();
    let (ht, hr) = host.ring_stats();
    let (rt, rr) = remote.ring_stats();
    Ok(PairReport {
        client: client.stats(),
        echo: echo.stats(),
        host: host_stats,
        remote: remote_stats,
        suppressed: ht.notifications_suppressed
            + hr.notifications_suppressed
            + rt.notifications_suppressed
            + rr.notifications_suppressed,
        validation_errors: validation_errors(&host_stats, (ht, hr))
            + validation_errors(&remote_stats, (rt, rr)),
        rounds,
    })
}
