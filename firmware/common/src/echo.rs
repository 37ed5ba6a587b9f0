//! The echo service the firmware examples offer: every message received on
//! one of its endpoints goes back to its sender unchanged.
//!
//! It announces two endpoints under names Linux binds without any code on
//! the Linux side (shared/docs/hw/rpmsg-wire.md §5):
//!
//! - [`TTY_SERVICE`] (`rpmsg-tty`): Linux's `rpmsg_tty` creates
//!   `/dev/ttyRPMSGn`; `echo hi > /dev/ttyRPMSG0` comes back as input;
//! - [`RAW_SERVICE`] (`rpmsg-raw`): Linux's `rpmsg_char` creates a
//!   character device for whole messages.
//!
//! [`EchoService::serve`] never blocks: with no transmit buffer free it
//! keeps (at most) the one message it received and reports
//! [`Progress::blocked`], so the idle loop can keep the core awake until
//! the host returns buffers. A missing transmit buffer is flow control,
//! never an error. Message contents are never interpreted.
//!
//! When the host resets the device, the remote ends its link's session
//! and later restarts it over the new rings
//! ([`rpmsg::link::Link::release_session`],
//! [`rpmsg::link::restart::Ended::restart`]); [`EchoService::reset`]
//! drops what the service kept from the old session, and the next
//! [`EchoService::serve`] announces both services again.
#![deny(unsafe_code)]

use ipc_traits::mailbox::Notify;
use rpmsg::link::restart::Announcements;
use rpmsg::link::{Endpoint, Link, Rx, Sent, Tx};
use rpmsg::rings::Halves;
use rpmsg::wire::{ADDR_ANY, DEFAULT_BUF_SIZE, HEADER_LEN};
use rpmsg::Error;

/// The service name Linux's `rpmsg_tty` driver binds (§5).
pub const TTY_SERVICE: &str = "rpmsg-tty";
/// The service name Linux's `rpmsg_char` driver binds (§5).
pub const RAW_SERVICE: &str = "rpmsg-raw";
/// Both, in endpoint order.
pub const SERVICES: [&str; 2] = [TTY_SERVICE, RAW_SERVICE];

/// Largest payload of a 512-byte buffer.
const PAYLOAD_MAX: usize = DEFAULT_BUF_SIZE - HEADER_LEN;

/// Messages echoed per [`EchoService::serve`] call, so one call stays
/// short even when the host keeps sending.
const BATCH: u32 = 16;

/// What one [`EchoService::serve`] call did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Messages echoed.
    pub echoed: u32,
    /// A message waits for a transmit buffer (the host has not returned
    /// one yet): call again after the next notification.
    pub blocked: bool,
    /// Announcements still to send.
    pub unannounced: u32,
    /// The receive ring was not found empty (the batch ended first), or
    /// messages arrived unannounced while a transmit buffer is awaited:
    /// call again without waiting for a notification. `false` when it was
    /// found empty (and re-armed) or a transmit buffer is awaited: sleeping
    /// until the next notification is then safe. While `true`, the host is
    /// asked not to ring for new messages (the service polls).
    pub more: bool,
}

/// Counters of the service (wrapping).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EchoStats {
    /// Messages echoed.
    pub echoed: u32,
    /// Payload bytes echoed.
    pub bytes: u64,
    /// Messages that had to wait for a transmit buffer.
    pub deferred: u32,
    /// Messages dropped because they could not be echoed (larger than a
    /// buffer of this link).
    pub dropped: u32,
    /// Messages waiting for a transmit buffer that a session end discarded
    /// ([`EchoService::reset`]): received, never echoed.
    pub discarded: u32,
}

/// A received message waiting for a transmit buffer (its payload is in
/// [`EchoService::buf`]).
#[derive(Debug, Clone, Copy)]
struct Pending {
    endpoint: usize,
    src: u32,
    len: usize,
}

/// Two echo endpoints on one link.
#[derive(Debug)]
pub struct EchoService {
    endpoints: [Endpoint; 2],
    announcements: Announcements<2>,
    /// Both services were handed to `announcements` once.
    registered: bool,
    pending: Option<Pending>,
    buf: [u8; PAYLOAD_MAX],
    /// The receive ring asks the host not to ring: set when a pass finds a
    /// message, cleared when a pass ends without more to do.
    quiet: bool,
    stats: EchoStats,
}

impl EchoService {
    /// Binds the two endpoints (dynamic addresses from 1024) on `link`.
    /// Announcing happens in [`EchoService::serve`].
    ///
    /// # Errors
    ///
    /// [`Error::TableFull`] if the link has fewer than two free endpoint slots.
    pub fn new<'a, R: Halves<'a>, N: Notify>(link: &mut Link<'a, R, N>) -> Result<Self, Error> {
        let tty = link.bind(ADDR_ANY)?;
        let raw = link.bind(ADDR_ANY)?;
        Ok(Self {
            endpoints: [tty, raw],
            announcements: Announcements::new(),
            registered: false,
            pending: None,
            buf: [0; PAYLOAD_MAX],
            quiet: false,
            stats: EchoStats::default(),
        })
    }

    /// Whether both services have been announced in this session.
    pub fn is_announced(&self) -> bool {
        self.registered && self.announcements.owed() == 0
    }

    /// The counters.
    pub fn stats(&self) -> EchoStats {
        self.stats
    }

    /// The link's session ended (the host reset the device): the message
    /// waiting for a transmit buffer, if any, belongs to the old session
    /// and is discarded ([`EchoStats::discarded`]); both services are owed
    /// to the next session, announced by the next [`EchoService::serve`].
    pub fn reset(&mut self) {
        if self.pending.take().is_some() {
            self.stats.discarded = self.stats.discarded.wrapping_add(1);
        }
        // The next session's rings start with notifications on.
        self.quiet = false;
        self.announcements.on_restart();
    }

    /// Announces what is not announced yet, then echoes what has arrived
    /// (at most a small batch). Call after every notification.
    ///
    /// # Errors
    ///
    /// Link errors (a broken ring, a memory error); the service stays
    /// usable for a retry. A missing transmit buffer is not one.
    pub fn serve<'a, R: Halves<'a>, N: Notify>(
        &mut self,
        tx: &mut Tx<'_, 'a, R, N>,
        rx: &mut Rx<'_, 'a, R, N>,
    ) -> Result<Progress, Error> {
        let mut progress = Progress::default();
        let echoed = self.stats.echoed;
        if !self.registered {
            for (ep, name) in self.endpoints.iter().zip(SERVICES) {
                // `NoBuffer` leaves it owed: `reannounce` below sends it.
                let _sent: Sent = self.announcements.announce(tx, ep, name)?;
            }
            self.registered = true;
        }
        progress.unannounced = self.announcements.reannounce(tx)?;
        if progress.unannounced > 0 {
            // Announcements first: the host learns the addresses before any
            // echo reaches it.
            progress.blocked = true;
            return Ok(progress);
        }
        progress.more = true;
        for _ in 0..BATCH {
            if !self.send_pending(tx)? {
                progress.blocked = true;
                progress.more = false;
                break;
            }
            let m = match rx.try_recv(&mut self.buf) {
                Ok(Some(m)) => m,
                Ok(None) => {
                    // Notifications back on, and a last look: a message
                    // that arrived meanwhile rang nobody.
                    if self.notify_again(rx)? {
                        continue;
                    }
                    progress.more = false;
                    break;
                }
                // A whole ring of undeliverable messages (counted by the
                // link): the ring is not idle.
                Err(Error::WouldBlock) => continue,
                Err(Error::TooLong) => {
                    // Larger than a 512-byte buffer holds: take it off the
                    // ring (its buffer goes back) and count it.
                    drop(rx.try_recv_held()?);
                    self.stats.dropped = self.stats.dropped.wrapping_add(1);
                    continue;
                }
                Err(e) => return Err(e),
            };
            if !self.quiet {
                // Busy until the ring is found empty: the host need not
                // ring for what it sends meanwhile (Linux's
                // `virtqueue_disable_cb` in a callback).
                rx.set_peer_notifications(false)?;
                self.quiet = true;
            }
            let Some(endpoint) = self.endpoints.iter().position(|e| e.addr() == m.dst) else {
                continue;
            };
            self.pending = Some(Pending {
                endpoint,
                src: m.src,
                len: m.len,
            });
            if !self.send_pending(tx)? {
                self.stats.deferred = self.stats.deferred.wrapping_add(1);
                progress.blocked = true;
                progress.more = false;
                break;
            }
        }
        if !progress.more && self.notify_again(rx)? {
            // Waiting for a transmit buffer, and messages arrived while the
            // host was asked not to ring: their doorbells would have woken
            // the caller for another try, so it tries again now.
            progress.more = true;
        }
        progress.echoed = self.stats.echoed.wrapping_sub(echoed);
        Ok(progress)
    }

    /// Asks the host to ring for new messages again if this service had
    /// asked it not to; returns whether messages arrived meanwhile.
    fn notify_again<'a, R: Halves<'a>, N: Notify>(
        &mut self,
        rx: &mut Rx<'_, 'a, R, N>,
    ) -> Result<bool, Error> {
        if !self.quiet {
            return Ok(false);
        }
        self.quiet = false;
        rx.set_peer_notifications(true)
    }

    /// Sends the message waiting for a transmit buffer; `false` while it
    /// still waits.
    fn send_pending<'a, R: Halves<'a>, N: Notify>(
        &mut self,
        tx: &mut Tx<'_, 'a, R, N>,
    ) -> Result<bool, Error> {
        let Some(p) = self.pending else {
            return Ok(true);
        };
        let ep = &self.endpoints[p.endpoint];
        match tx.try_send(ep, p.src, &self.buf[..p.len]) {
            Ok(Sent::Sent) => {
                self.stats.echoed = self.stats.echoed.wrapping_add(1);
                self.stats.bytes = self.stats.bytes.wrapping_add(p.len as u64);
            }
            Ok(Sent::NoBuffer) => return Ok(false),
            Err(Error::TooLong) => {
                self.stats.dropped = self.stats.dropped.wrapping_add(1);
            }
            Err(e) => return Err(e),
        }
        self.pending = None;
        Ok(true)
    }
}
