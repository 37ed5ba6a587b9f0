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
//! keeps (at most) one received message and reports
//! [`Progress::blocked`], so the idle loop can keep the core awake until the
//! host returns buffers. Message contents are never interpreted.
//!
//! When the host resets the device, the remote ends its link's session and
//! later restarts it ([`Link::release_session`], [`Link::restart`]); the
//! link announces both services again by itself. [`EchoService::reset`]
//! drops what the service kept from the old session.
#![deny(unsafe_code)]

use ipc_traits::mailbox::Notify;
use rpmsg::link::{Endpoint, Error, Link, RxMode};
use rpmsg::rings::Rings;
use rpmsg::wire::ADDR_ANY;

/// The service name Linux's `rpmsg_tty` driver binds (§5).
pub const TTY_SERVICE: &str = "rpmsg-tty";
/// The service name Linux's `rpmsg_char` driver binds (§5).
pub const RAW_SERVICE: &str = "rpmsg-raw";
/// Both, in endpoint order.
pub const SERVICES: [&str; 2] = [TTY_SERVICE, RAW_SERVICE];

/// Largest payload kept aside when no transmit buffer is free (a 512-byte
/// buffer minus the header).
const PENDING_MAX: usize = rpmsg::wire::DEFAULT_BUF_SIZE - rpmsg::wire::HEADER_LEN;

/// Messages echoed per endpoint and [`EchoService::serve`] call, so one
/// call stays short even when the host keeps sending.
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
}

/// Counters of the service (wrapping).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EchoStats {
    /// Messages echoed.
    pub echoed: u32,
    /// Payload bytes echoed.
    pub bytes: u64,
    /// Messages set aside because no transmit buffer was free.
    pub deferred: u32,
    /// Messages dropped because they could not be echoed (larger than a
    /// transmit buffer of this link).
    pub dropped: u32,
    /// Messages set aside that a session end discarded
    /// ([`EchoService::reset`]): received, never echoed.
    pub discarded: u32,
}

/// A received message waiting for a transmit buffer.
#[derive(Debug)]
struct Pending {
    endpoint: usize,
    src: u32,
    len: usize,
    data: [u8; PENDING_MAX],
}

/// Two echo endpoints on one link.
#[derive(Debug)]
pub struct EchoService {
    endpoints: [Endpoint; 2],
    announced: [bool; 2],
    pending: Option<Pending>,
    stats: EchoStats,
}

impl EchoService {
    /// Binds the two endpoints (dynamic addresses from 1024) on `link`.
    /// Announcing happens in [`EchoService::serve`].
    ///
    /// # Errors
    ///
    /// [`Error::Bind`] if the link has fewer than two free endpoint slots.
    pub fn new<'m, R, N, const EPS: usize, const Q: usize, const SVC: usize, const BUF: usize>(
        link: &Link<'m, R, N, EPS, Q, SVC, BUF>,
    ) -> Result<Self, Error>
    where
        R: Rings<'m>,
        N: Notify,
    {
        let tty = link.create_endpoint(ADDR_ANY, RxMode::Queue)?;
        let raw = link.create_endpoint(ADDR_ANY, RxMode::Queue)?;
        Ok(Self {
            endpoints: [tty, raw],
            announced: [false; 2],
            pending: None,
            stats: EchoStats::default(),
        })
    }

    /// The local addresses of the `rpmsg-tty` and `rpmsg-raw` endpoints.
    pub fn addrs(&self) -> [u32; 2] {
        [self.endpoints[0].addr(), self.endpoints[1].addr()]
    }

    /// Whether both services have been announced.
    pub fn is_announced(&self) -> bool {
        self.announced.iter().all(|a| *a)
    }

    /// Whether a message waits for a transmit buffer.
    pub fn is_blocked(&self) -> bool {
        self.pending.is_some()
    }

    /// The counters.
    pub fn stats(&self) -> EchoStats {
        self.stats
    }

    /// The link's session ended (the host reset the device): the message
    /// set aside for a transmit buffer, if any, belongs to the old session
    /// and is discarded ([`EchoStats::discarded`]). The announcements stay
    /// done: [`Link::restart`] announces the services again.
    pub fn reset(&mut self) {
        if self.pending.take().is_some() {
            self.stats.discarded = self.stats.discarded.wrapping_add(1);
        }
    }

    /// Announces what is not announced yet, then echoes what has arrived
    /// (at most a small batch per endpoint). Call after every notification
    /// (after [`Link::on_notify`]).
    ///
    /// # Errors
    ///
    /// Link errors other than [`Error::WouldBlock`] (a broken ring, a
    /// memory error); the service stays usable for a retry.
    pub fn serve<'m, R, N, const EPS: usize, const Q: usize, const SVC: usize, const BUF: usize>(
        &mut self,
        link: &Link<'m, R, N, EPS, Q, SVC, BUF>,
    ) -> Result<Progress, Error>
    where
        R: Rings<'m>,
        N: Notify,
    {
        let mut progress = Progress::default();
        for (k, name) in SERVICES.iter().enumerate() {
            if self.announced[k] {
                continue;
            }
            match link.announce(&self.endpoints[k], name) {
                Ok(()) => self.announced[k] = true,
                Err(Error::WouldBlock) => progress.unannounced += 1,
                Err(e) => return Err(e),
            }
        }
        if progress.unannounced > 0 {
            // Announcements first: the host learns the addresses before any
            // echo reaches it.
            progress.blocked = true;
            return Ok(progress);
        }
        if !self.flush_pending(link)? {
            progress.blocked = true;
            return Ok(progress);
        }
        let mut scratch = [0u8; BUF];
        for k in 0..self.endpoints.len() {
            for _ in 0..BATCH {
                match self.echo_one(link, k, &mut scratch)? {
                    Step::Echoed => progress.echoed += 1,
                    Step::Dropped => {}
                    Step::Idle => break,
                    Step::Deferred => {
                        progress.blocked = true;
                        return Ok(progress);
                    }
                }
            }
        }
        Ok(progress)
    }

    /// Sends the message set aside earlier; `false` while it still waits.
    fn flush_pending<
        'm,
        R,
        N,
        const EPS: usize,
        const Q: usize,
        const SVC: usize,
        const BUF: usize,
    >(
        &mut self,
        link: &Link<'m, R, N, EPS, Q, SVC, BUF>,
    ) -> Result<bool, Error>
    where
        R: Rings<'m>,
        N: Notify,
    {
        let Some(p) = self.pending.as_ref() else {
            return Ok(true);
        };
        match link.try_send(&self.endpoints[p.endpoint], p.src, &p.data[..p.len]) {
            Ok(()) => {
                self.count(p.len);
                self.pending = None;
                Ok(true)
            }
            Err(Error::WouldBlock) => Ok(false),
            Err(Error::TooLong { .. }) => {
                self.stats.dropped = self.stats.dropped.wrapping_add(1);
                self.pending = None;
                Ok(true)
            }
            Err(e) => Err(e),
        }
    }

    fn count(&mut self, len: usize) {
        self.stats.echoed = self.stats.echoed.wrapping_add(1);
        self.stats.bytes = self.stats.bytes.wrapping_add(len as u64);
    }

    /// Echoes one message of endpoint `k`, zero-copy on the receive side:
    /// a transmit buffer is taken first, so a received message normally
    /// never waits; if none is free, the message is copied aside.
    fn echo_one<'m, R, N, const EPS: usize, const Q: usize, const SVC: usize, const BUF: usize>(
        &mut self,
        link: &Link<'m, R, N, EPS, Q, SVC, BUF>,
        k: usize,
        scratch: &mut [u8; BUF],
    ) -> Result<Step, Error>
    where
        R: Rings<'m>,
        N: Notify,
    {
        let ep = &self.endpoints[k];
        let tx = match link.try_alloc_tx() {
            Ok(tx) => Some(tx),
            Err(Error::WouldBlock) => None,
            Err(e) => return Err(e),
        };
        let held = match link.try_recv_held(ep) {
            Ok(h) => h,
            // `tx`, if any, goes back to the link when dropped here.
            Err(Error::WouldBlock) => return Ok(Step::Idle),
            Err(e) => return Err(e),
        };
        let len = held.len();
        let src = held.src();
        let data = scratch
            .get_mut(..len)
            .ok_or(Error::TooLong { len, max: BUF })?;
        held.read(0, data)?;
        drop(held);
        match tx {
            Some(mut tx) if len <= tx.capacity() => {
                tx.write(0, data)?;
                tx.send(ep, src)?;
                self.count(len);
                Ok(Step::Echoed)
            }
            Some(_) => {
                self.stats.dropped = self.stats.dropped.wrapping_add(1);
                Ok(Step::Dropped)
            }
            None => {
                if len > PENDING_MAX {
                    self.stats.dropped = self.stats.dropped.wrapping_add(1);
                    return Ok(Step::Dropped);
                }
                let mut p = Pending {
                    endpoint: k,
                    src,
                    len,
                    data: [0; PENDING_MAX],
                };
                p.data[..len].copy_from_slice(data);
                self.pending = Some(p);
                self.stats.deferred = self.stats.deferred.wrapping_add(1);
                Ok(Step::Deferred)
            }
        }
    }
}

/// One echo attempt's outcome.
enum Step {
    Echoed,
    Dropped,
    Idle,
    Deferred,
}
