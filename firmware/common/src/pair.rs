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
//! status 0 ([`reset_device`]), its link's session ended
//! ([`Link::end_session`]); one round later the rings laid out again,
//! `DRIVER_OK`, a kick, the link restarted over them
//! ([`Ended::restart`]). The remote follows the status byte with a
//! [`VdevWatch`] polled every round: at `WentDown` it releases the session
//! over the still-intact old rings ([`Link::release_session`], counting
//! the messages it had not taken), at `CameUp` it restarts its link over
//! the new rings and announces its services again. Every message the host
//! sent is then echoed and checked, or lost at a reset, and the run checks
//! the two sides' accounts against each other.
#![allow(unsafe_code)]

use ipc_traits::mailbox::{Notify, NotifyRx};
use ipc_traits::shm::{SharedMemory, ShmError};
use rpmsg::boot::{master_table, reset_device, Placement, Profile, RemoteBoot};
use rpmsg::link::restart::Ended;
use rpmsg::link::{Link, RxStats, Storage};
use rpmsg::rings::{Halves, RemoteTables};
use rpmsg::rsc_table::{HostPoll, PollTiming, VdevEvent, VdevView, VdevWatch};
use rpmsg::Error;
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
    /// Both sides use `EVENT_IDX` (the table must offer it): a side rings
    /// once per idle period of the peer (the peer re-arms when it finds its
    /// ring empty) instead of for every message while the peer's flag is
    /// clear. `false`: suppression flags.
    pub event_idx: bool,
}

/// Why a run failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairError {
    /// Start-up failed (either side).
    Boot(Error),
    /// The host saw a wrong, lost or duplicated echo, or a link error.
    Client(ClientError),
    /// The remote's link failed.
    Remote(rpmsg::Error),
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
        /// ([`rpmsg::link::restart::RestartReport::lost`]), or discarded
        /// or dropped by the echo service.
        remote_lost: u32,
        /// Echoed by the remote, never checked by the host.
        unreturned: u32,
    },
}

impl From<Error> for PairError {
    fn from(e: Error) -> Self {
        Self::Boot(e)
    }
}

impl From<ShmError> for PairError {
    fn from(e: ShmError) -> Self {
        Self::Boot(Error::Memory(e))
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
    /// Doorbells the host rang (both halves, every session).
    pub host_doorbells: u32,
    /// Doorbells the remote rang (both halves, every session).
    pub remote_doorbells: u32,
    /// Of [`PairReport::host_doorbells`], those for returned receive
    /// buffers (the receive half's); the rest announced messages.
    pub host_return_doorbells: u32,
    /// Of [`PairReport::remote_doorbells`], those for returned receive
    /// buffers (the receive half's); the rest announced messages.
    pub remote_return_doorbells: u32,
    /// Doorbells the host rang while the remote had not taken the previous
    /// one on the same queue ([`MemDoorbell::coalesced`]): the remote was
    /// already notified.
    pub host_coalesced: u32,
    /// Doorbells the remote rang while the host had not taken the previous
    /// one on the same queue.
    pub remote_coalesced: u32,
    /// Messages the remote had not taken when a session ended
    /// ([`rpmsg::link::restart::RestartReport::lost`], summed).
    pub remote_lost_at_reset: u32,
    /// Ring notifications suppressed (both sides, all rings).
    pub suppressed: u32,
    /// Validation failures counted anywhere (links, rings and the host's
    /// name-service directory, including rings of ended sessions); 0 in a
    /// clean run.
    pub validation_errors: u32,
    /// Rounds taken.
    pub rounds: u32,
    /// Device resets the host did.
    pub host_resets: u32,
    /// Restarts the remote saw in the status byte.
    pub remote_restarts: u32,
    /// Sessions the remote's link restarted over new rings.
    pub remote_link_restarts: u32,
    /// Echoes the remote sent that the host never got back (its session
    /// ended first).
    pub unreturned: u32,
}

/// Receive-side validation counters of a link that must stay 0: bad
/// headers, messages for unbound addresses, buffers not given back.
fn link_errors(rx: &RxStats) -> u32 {
    rx.bad_header + rx.unbound + rx.return_failures
}

/// Validation failures of a ring pair (every kind), from
/// [`Link::ring_stats`].
fn ring_errors(rings: (vring::Stats, vring::Stats)) -> u32 {
    rings.0.failures.total() + rings.1.failures.total()
}

/// Every validation counter of `link`: its receive half's (bad headers,
/// unbound addresses, buffers not given back) and its rings'; 0 in a
/// clean run.
pub fn validation_errors<'a, R: Halves<'a>, N: Notify>(link: &Link<'a, R, N>) -> u32 {
    link_errors(&link.rx_stats()) + ring_errors(link.ring_stats())
}

/// Doorbells `link` rang, both halves.
pub fn doorbells<'a, R: Halves<'a>, N: Notify>(link: &Link<'a, R, N>) -> u32 {
    link.tx_stats().doorbells + link.rx_stats().doorbells
}

/// A link in a session, or between two.
enum Session<'a, R: Halves<'a>, N> {
    Up(Link<'a, R, N>),
    Down(Ended<'a, R, N>),
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
    // The host's rings, laid out (again): a start kick on a doorbell of its
    // own, as the driver's probe does.
    let host_rings = || {
        let mut kick = bells.to_remote.ringer(bells.wake_remote.clone());
        // SAFETY: the pool is the host's alone (this function's contract);
        // a previous session's link, whose buffers covered it, has ended
        // (its rings were dropped at the reset).
        unsafe {
            master_table::<T, M, Legacy, _, NUM>(
                table,
                &info,
                shared,
                placement,
                Profile::Native,
                config.event_idx,
                &mut kick,
            )
        }
    };
    let mut host_storage = Storage::<2>::new();
    let mut host_link = Link::new(
        host_rings()?,
        bells.to_remote.ringer(bells.wake_remote.clone()),
        &mut host_storage,
    );
    let mut client = EchoClient::new(&mut host_link, config.count, config.window)
        .map_err(|e| PairError::Client(e.into()))?;
    let mut host = Some(Session::Up(host_link));
    let mut host_take = bells.to_host.taker();

    // Remote, out of reset: the host's DRIVER_OK is current (no remote has
    // used its rings), so it stays; attach, announce. The kick is only a
    // hint: the status byte decides.
    let remote_tables = RemoteTables::<NUM>::new();
    let mut boot =
        RemoteBoot::start::<T, M, TABLE>(table, 0, shared, Profile::Native, REMOTE_TIMING, 0)?;
    if config.event_idx {
        boot = boot.with_event_idx()?;
    }
    let view = *boot.host().view();
    let mut watch = VdevWatch::new();
    let mut remote_take = bells.to_remote.taker();
    let _first = remote_take.take_pending().unwrap_or_default();
    let HostPoll::Ready(vrings) = boot.poll(table, 0)? else {
        return Err(PairError::NotReady);
    };
    // The first `CameUp`: the boot itself.
    watch.step(true);
    // SAFETY: the buffer areas are the host's two buffer halves, disjoint;
    // the remote builds no other buffer over them (this function's
    // contract).
    let remote_rings =
        unsafe { boot.rings::<T, M, Legacy, NUM>(table, shared, vrings, &remote_tables) }?;
    let mut remote_storage = Storage::<2>::new();
    let mut remote_link = Link::new(
        remote_rings,
        bells.to_host.ringer(bells.wake_host),
        &mut remote_storage,
    );
    let mut echo = EchoService::new(&mut remote_link).map_err(PairError::Remote)?;
    let mut remote = Some(Session::Up(remote_link));

    // Each side acts only when its doorbell rang, or while it has work of
    // its own (the remote: announcing, or a batch that may have more
    // behind it; the host: messages to send with a transmit buffer at
    // hand). A lost notification therefore stalls the run, which is
    // detected, instead of being papered over by polling. The remote reads
    // the status byte every round, as a firmware's idle loop would.
    let mut rounds = 0u32;
    let mut idle = 0u32;
    let mut remote_busy = true;
    let mut resets = 0u32;
    // Sessions the remote restarted, and the messages it had not taken
    // when they ended.
    let (mut restarted, mut remote_lost) = (0u32, 0u32);
    // A reset decided in one round, done in the next.
    let mut armed = false;
    // Validation failures of rings of ended sessions.
    let mut ended_errors = 0u32;
    let spacing = config.count / config.host_resets.saturating_add(1);
    while !client.is_done() {
        rounds = rounds.wrapping_add(1);
        let mut moved = false;

        // Remote.
        let set = remote_take.take_pending().unwrap_or_default();
        remote = Some(match (watch.poll(&view, table)?, remote.take()) {
            (VdevEvent::WentDown, Some(Session::Up(link))) => {
                // The host left the old rings alone: count what was not
                // taken from them, end the session.
                ended_errors += ring_errors(link.ring_stats());
                let (ended, report) = link.release_session();
                remote_lost += report.lost;
                echo.reset();
                moved = true;
                Session::Down(ended)
            }
            (VdevEvent::CameUp, Some(Session::Down(ended))) => {
                let vrings = view.vrings(table)?;
                // SAFETY: as at boot; the old rings' buffers belong to the
                // ended session and were dropped with it.
                // The old rings were dropped with the session: their tables
                // are free again.
                let rings = unsafe {
                    boot.rings::<T, M, Legacy, NUM>(table, shared, vrings, &remote_tables)
                }?;
                restarted += 1;
                remote_busy = true;
                moved = true;
                Session::Up(ended.restart(rings))
            }
            (_, Some(session)) => session,
            (_, None) => return Err(PairError::NotReady),
        });
        if let Some(Session::Up(link)) = remote.as_mut() {
            if !set.is_empty() || remote_busy || !echo.is_announced() {
                let (mut tx, mut rx) = link.split();
                let served = echo.serve(&mut tx, &mut rx).map_err(PairError::Remote)?;
                remote_busy = served.more;
                moved |= served.echoed > 0 || served.more || !set.is_empty();
            }
        }

        // Host.
        host = Some(match host.take() {
            Some(Session::Up(mut link)) => {
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
                        let (mut tx, mut rx) = link.split();
                        moved |= client.step(&mut tx, &mut rx)? || !set.is_empty();
                    }
                    if reset_due(&client) {
                        armed = resets % 2 == 1;
                        reset_now = !armed;
                    }
                }
                if reset_now {
                    // Status 0; the driver's session is over.
                    ended_errors += ring_errors(link.ring_stats());
                    reset_device(table, &info)?;
                    let (ended, _) = link.end_session();
                    client.reset();
                    resets += 1;
                    moved = true;
                    Session::Down(ended)
                } else {
                    Session::Up(link)
                }
            }
            Some(Session::Down(ended)) => {
                // The driver probes again: rings anew, DRIVER_OK, kick.
                let link = ended.restart(host_rings()?);
                client.attach();
                moved = true;
                Session::Up(link)
            }
            None => return Err(PairError::NotReady),
        });

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
    if c.resets != config.host_resets
        || c.resumed != c.resets
        || watch.restarts() != c.resets
        || restarted != c.resets
    {
        return Err(PairError::Resets {
            done: c.resets,
            resumed: c.resumed,
            seen: watch.restarts(),
        });
    }
    // Every message the host sent: checked, or lost at a reset. Each lost
    // one is accounted for by the remote: never taken (or taken and not
    // echoed), or echoed into a session the host had ended.
    let unreturned = e.echoed.wrapping_sub(c.received);
    let remote_lost_all = remote_lost
        .wrapping_add(e.discarded)
        .wrapping_add(e.dropped);
    if c.sent != config.count
        || c.received + c.lost != c.sent
        || c.lost != remote_lost_all.wrapping_add(unreturned)
    {
        return Err(PairError::Unaccounted {
            sent: c.sent,
            received: c.received,
            lost: c.lost,
            remote_lost: remote_lost_all,
            unreturned,
        });
    }

    let (Some(Session::Up(host)), Some(Session::Up(remote))) = (host, remote) else {
        return Err(PairError::NotReady);
    };
    let (ht, hr) = host.ring_stats();
    let (rt, rr) = remote.ring_stats();
    Ok(PairReport {
        client: c,
        echo: e,
        host_doorbells: doorbells(&host),
        remote_doorbells: doorbells(&remote),
        host_return_doorbells: host.rx_stats().doorbells,
        remote_return_doorbells: remote.rx_stats().doorbells,
        host_coalesced: bells.to_remote.coalesced(),
        remote_coalesced: bells.to_host.coalesced(),
        remote_lost_at_reset: remote_lost,
        suppressed: ht.notifications_suppressed
            + hr.notifications_suppressed
            + rt.notifications_suppressed
            + rr.notifications_suppressed,
        validation_errors: validation_errors(&host)
            + validation_errors(&remote)
            + client.ns_errors()
            + ended_errors,
        rounds,
        host_resets: c.resets,
        remote_restarts: watch.restarts(),
        remote_link_restarts: restarted,
        unreturned,
    })
}
