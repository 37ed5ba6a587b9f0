//! A host and a remote on one core, taking turns: the emulated Cortex-M4
//! image (and the host tests) run the whole start-up and an echo exchange
//! with the same code the firmware examples use on each side.
//!
//! The host boots the remote the way Linux does
//! ([`rpmsg::boot::master_table`]); the remote, which comes out of reset
//! after the host set `DRIVER_OK` (as behind Linux, which probes right
//! after starting the core), keeps that status and finds its rings
//! ([`rpmsg::boot::RemoteBoot`]),
//! announces its services ([`crate::echo`]), and the host's
//! [`EchoClient`] checks every echo. Notifications go through two
//! [`MemDoorbell`]s. A round in which neither side makes progress while no
//! doorbell is pending means a lost notification: after `max_idle_rounds`
//! of them the run fails instead of hanging.
//!
//! With [`PairConfig::host_resets`] the host also resets the device during
//! the run, as Linux does when it removes and re-probes the rpmsg driver:
//! status 0 ([`reset_device`]), its link abandoned; one round later the
//! rings laid out again, `DRIVER_OK`, a kick, a fresh link. The remote
//! follows the status byte with a [`VdevWatch`] polled every round: at
//! `WentDown` it releases the session over the still-intact old rings
//! (counting the messages it had not taken), at `CameUp` it restarts its
//! link over the new rings (which re-announces the services). Every message
//! the host sent is then echoed and checked, or lost at a reset, and the
//! run checks the two sides' accounts against each other.
#![allow(unsafe_code)]

use ipc_traits::mailbox::NotifyRx;
use ipc_traits::shm::{SharedMemory, ShmError};
use rpmsg::boot::{master_table, reset_device, BootError, Placement, Profile, RemoteBoot};
use rpmsg::link::{Link, LinkStats};
use rpmsg::rsc_table::{HostPoll, PollTiming, RscError, VdevEvent, VdevView, VdevWatch};
use vring::Legacy;

use crate::client::{ClientError, ClientStats, EchoClient};
use crate::doorbell::{MemDoorbell, Wake};
use crate::echo::{EchoService, EchoStats};

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
    /// Device resets by the host, spread over the run (one after each
    /// `count / (host_resets + 1)` resolved messages, once the traffic has
    /// resumed after the previous one); 0 for none.
    pub host_resets: u32,
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
    /// Fewer resets than configured happened, the remote did not see each
    /// one, or the traffic did not resume after each.
    Resets {
        /// Resets the host did.
        done: u32,
        /// Resets after which an echo was checked again.
        resumed: u32,
        /// Restarts the remote saw ([`VdevWatch::restarts`]).
        seen: u32,
    },
    /// The host's losses do not match what the remote accounted for.
    Unaccounted {
        /// Messages the host sent.
        sent: u32,
        /// Echoes it checked.
        received: u32,
        /// Messages it wrote off at resets.
        lost: u32,
        /// Lost on the remote side: not taken at a session end
        /// ([`LinkStats::lost_at_reset`]), or discarded or dropped by the
        /// echo service.
        remote_lost: u32,
        /// Echoed by the remote, never checked by the host.
        unreturned: u32,
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
            Self::Resets {
                done,
                resumed,
                seen,
            } => write!(
                f,
                "host resets: {done} done, traffic resumed after {resumed}, remote saw {seen}"
            ),
            Self::Unaccounted {
                sent,
                received,
                lost,
                remote_lost,
                unreturned,
            } => write!(
                f,
                "{sent} sent, {received} checked, {lost} lost at resets, but the remote \
                 accounts for {remote_lost} lost and {unreturned} unreturned"
            ),
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
    /// The host's link (the last one, after resets).
    pub host: LinkStats,
    /// The remote's link.
    pub remote: LinkStats,
    /// Ring notifications suppressed (both sides, all rings).
    pub suppressed: u32,
    /// Validation failures counted anywhere (links and rings, including
    /// host links abandoned at resets); 0 in a clean run.
    pub validation_errors: u32,
    /// Rounds taken.
    pub rounds: u32,
    /// Device resets the host did.
    pub host_resets: u32,
    /// Restarts the remote saw in the status byte.
    pub remote_restarts: u32,
    /// Echoes the remote sent that the host never got back (its link was
    /// abandoned at a reset first).
    pub unreturned: u32,
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

/// The remote's wait for the host, in rounds: a look every round.
const REMOTE_TIMING: PollTiming = PollTiming {
    interval: 1,
    patience: u64::MAX,
};

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
/// buffer handle ([`master_table`]), and `shared`'s buffer areas are used
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
    WR: Wake + Clone,
    WH: Wake,
{
    // Host: find the vdev (Linux reads the table at load), lay out rings
    // and buffers, DRIVER_OK, then kick vring 0. Linux probes the vdev
    // right after starting the core, so the remote boots late, into a
    // status that is already set.
    let (_, info) = VdevView::locate::<T, TABLE>(table, 0)?;
    let mut host_ring = bells.to_remote.ringer(bells.wake_remote.clone());
    // SAFETY: the pool is the host's alone (this function's contract).
    let host_rings = unsafe {
        master_table::<T, M, Legacy, _, NUM>(
            table,
            &info,
            shared,
            placement,
            Profile::Native,
            false,
            &mut host_ring,
        )
    }?;
    // `None` while the host has reset the device and not set it up again.
    let mut host: Option<Link<'_, _, _, 2, 8, 4>> = Some(Link::new(host_rings, host_ring));
    let mut host_take = bells.to_host.taker();
    let mut client = match &host {
        Some(link) => EchoClient::new(link, config.count, config.window)
            .map_err(|e| PairError::Client(e.into()))?,
        None => return Err(PairError::NotReady),
    };

    // Remote, out of reset: the host's DRIVER_OK is current (no remote has
    // used its rings), so it stays; attach, announce. The kick is only a
    // hint: the status byte decides.
    let mut boot =
        RemoteBoot::start::<T, M, TABLE>(table, 0, shared, Profile::Native, REMOTE_TIMING, 0)?;
    let view = *boot.host().view();
    let mut watch = VdevWatch::new();
    let mut remote_take = bells.to_remote.taker();
    let first = remote_take.take_pending().unwrap_or_default();
    let HostPoll::Ready(vrings) = boot.poll(table, 0)? else {
        return Err(PairError::NotReady);
    };
    // The first `CameUp`: the boot itself.
    watch.step(true);
    // SAFETY: the buffer areas are the host's two buffer halves, disjoint;
    // the remote builds no other buffer over them (this function's
    // contract).
    let remote_rings = unsafe { boot.rings::<T, M, Legacy, NUM>(table, shared, vrings) }?;
    let remote: Link<'_, _, _, 2, 4, 2> =
        Link::new(remote_rings, bells.to_host.ringer(bells.wake_host));
    remote.on_notify(first);
    let mut echo = EchoService::new(&remote).map_err(PairError::Remote)?;

    // Each side acts only when its doorbell rang, or while it has work of
    // its own (the remote: announcing, or a batch that may have more
    // behind it; the host: messages to send with a transmit buffer at
    // hand). A lost notification therefore stalls the run, which is
    // detected, instead of being papered over by polling. The remote reads
    // the status byte every round, as a firmware's idle loop would.
    let mut rounds = 0u32;
    let mut idle = 0u32;
    let mut remote_busy = true;
    let mut remote_up = true;
    let mut resets = 0u32;
    // A reset decided in one round, done in the next.
    let mut armed = false;
    // Validation failures of host links abandoned at resets.
    let mut abandoned_errors = 0u32;
    let spacing = config.count / config.host_resets.saturating_add(1);
    while !client.is_done() {
        rounds = rounds.wrapping_add(1);
        let mut moved = false;

        // Remote.
        let set = remote_take.take_pending().unwrap_or_default();
        match watch.poll(&view, table)? {
            VdevEvent::WentDown => {
                // The host left the old rings alone: count what was not
                // taken from them, end the session.
                remote.release_session().map_err(PairError::Remote)?;
                echo.reset();
                remote_up = false;
                moved = true;
            }
            VdevEvent::CameUp => {
                let vrings = view.vrings(table)?;
                // SAFETY: as at boot; the old rings' buffers belong to the
                // ended session and never reach memory again (`restart`
                // makes them stale and drops the old rings).
                let rings = unsafe { boot.rings::<T, M, Legacy, NUM>(table, shared, vrings) }?;
                remote.restart(rings).map_err(PairError::Remote)?;
                remote_up = true;
                remote_busy = true;
                moved = true;
            }
            VdevEvent::Waiting | VdevEvent::Running => {}
        }
        if remote_up && (!set.is_empty() || remote_busy || !echo.is_announced()) {
            remote.on_notify(set);
            let served = echo.serve(&remote).map_err(PairError::Remote)?;
            remote_busy = served.echoed > 0;
            moved |= remote_busy || !set.is_empty();
        }

        // Host.
        match &host {
            Some(link) => {
                let reset_due = |client: &EchoClient| {
                    let c = client.stats();
                    resets < config.host_resets
                        && c.received > 0
                        && c.resumed == c.resets
                        && c.sent < config.count
                        && client.resolved() >= spacing.saturating_mul(resets + 1)
                };
                // Even resets come right after the host sent more (the
                // remote never takes those messages), odd ones a round
                // later, before the host takes what the remote echoed in
                // between (those echoes never return).
                let mut reset_now = armed;
                armed = false;
                if !reset_now {
                    let set = host_take.take_pending().unwrap_or_default();
                    if !set.is_empty() || client.wants_to_send() {
                        link.on_notify(set);
                        moved |= client.step(link)? || !set.is_empty();
                    }
                    if reset_due(&client) {
                        armed = resets % 2 == 1;
                        reset_now = !armed;
                    }
                }
                if reset_now {
                    // Status 0; the driver state (the link) is gone.
                    abandoned_errors += validation_errors(&link.stats(), link.ring_stats());
                    reset_device(table, &info)?;
                    host = None;
                    client.reset();
                    resets += 1;
                    moved = true;
                }
            }
            None => {
                // The driver probes again: rings anew, DRIVER_OK, kick.
                let mut ring = bells.to_remote.ringer(bells.wake_remote.clone());
                // SAFETY: the pool is the host's alone (this function's
                // contract); the old host link, whose buffers covered it,
                // was dropped at the reset.
                let rings = unsafe {
                    master_table::<T, M, Legacy, _, NUM>(
                        table,
                        &info,
                        shared,
                        placement,
                        Profile::Native,
                        false,
                        &mut ring,
                    )
                }?;
                let link = host.insert(Link::new(rings, ring));
                client
                    .attach(link)
                    .map_err(|e| PairError::Client(e.into()))?;
                moved = true;
            }
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

    let c = client.stats();
    let e = echo.stats();
    let remote_stats = remote.stats();
    if c.resets != config.host_resets
        || c.resumed != c.resets
        || watch.restarts() != c.resets
        || remote_stats.peer_resets != c.resets
    {
        return Err(PairError::Resets {
            done: c.resets,
            resumed: c.resumed,
            seen: watch.restarts(),
        });
    }
    // Every message the host sent: checked, or lost at a reset. Each lost
    // one is accounted for by the remote: never taken (or taken and not
    // echoed), or echoed into a link the host had abandoned.
    let unreturned = e.echoed.wrapping_sub(c.received);
    let remote_lost = remote_stats
        .lost_at_reset
        .wrapping_add(e.discarded)
        .wrapping_add(e.dropped);
    if c.sent != config.count
        || c.received + c.lost != c.sent
        || c.lost != remote_lost.wrapping_add(unreturned)
    {
        return Err(PairError::Unaccounted {
            sent: c.sent,
            received: c.received,
            lost: c.lost,
            remote_lost,
            unreturned,
        });
    }

    let Some(host) = host else {
        return Err(PairError::NotReady);
    };
    let host_stats = host.stats();
    let (ht, hr) = host.ring_stats();
    let (rt, rr) = remote.ring_stats();
    Ok(PairReport {
        client: c,
        echo: e,
        host: host_stats,
        remote: remote_stats,
        suppressed: ht.notifications_suppressed
            + hr.notifications_suppressed
            + rt.notifications_suppressed
            + rr.notifications_suppressed,
        validation_errors: validation_errors(&host_stats, (ht, hr))
            + validation_errors(&remote_stats, (rt, rr))
            + abandoned_errors,
        rounds,
        host_resets: c.resets,
        remote_restarts: watch.restarts(),
        unreturned,
    })
}
