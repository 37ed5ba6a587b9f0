//! The host's echo client for the emulated runs: waits for the remote's
//! `rpmsg-raw` announcement, sends `count` messages of deterministic sizes
//! and contents (at most `window` outstanding), and checks that every echo
//! comes back once, in order, byte for byte.
//!
//! When the host resets the device ([`EchoClient::reset`]) the messages
//! still outstanding are written off as lost ([`ClientStats::lost`]); on
//! the next link ([`EchoClient::attach`]) the client finds the services
//! again and goes on with the next sequence number, so every message sent
//! is either echoed and checked or lost at a reset, never both.
#![deny(unsafe_code)]

use ipc_traits::mailbox::Notify;
use rpmsg::link::{Endpoint, Error, Link, NsEvent, RxMode};
use rpmsg::rings::Rings;
use rpmsg::wire::ADDR_ANY;

use crate::echo::{RAW_SERVICE, TTY_SERVICE};

/// Largest payload of a 512-byte buffer.
pub const MAX_PAYLOAD: usize = rpmsg::wire::DEFAULT_BUF_SIZE - rpmsg::wire::HEADER_LEN;

/// The payload of message `seq`: a length in `0..=MAX_PAYLOAD` and bytes
/// derived from `seq` (the sequence number leads when it fits).
pub fn payload(seq: u32, out: &mut [u8; MAX_PAYLOAD]) -> usize {
    // A cheap mix so lengths cover the whole range, small and large.
    let mix = seq.wrapping_mul(0x9E37_79B9).rotate_left(7) ^ seq;
    let len = (mix as usize) % (MAX_PAYLOAD + 1);
    for (j, b) in out[..len].iter_mut().enumerate() {
        *b = (seq.wrapping_mul(31) as usize).wrapping_add(j.wrapping_mul(7)) as u8;
    }
    if len >= 4 {
        out[..4].copy_from_slice(&seq.to_le_bytes());
    }
    len
}

/// What went wrong in the exchange (each one fails the run).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientError {
    /// A link error.
    Link(Error),
    /// An echo arrived for a message not sent yet, or twice.
    Unexpected {
        /// How many echoes had arrived before.
        got: u32,
    },
    /// An echo differs from what was sent.
    Mismatch {
        /// The message's sequence number.
        seq: u32,
        /// Its length as received.
        len: usize,
    },
    /// An echo came from another address than the service's.
    WrongSource {
        /// The source address it came from.
        src: u32,
    },
    /// The remote announced a service this client does not know.
    UnknownService,
}

impl From<Error> for ClientError {
    fn from(e: Error) -> Self {
        Self::Link(e)
    }
}

impl core::fmt::Display for ClientError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Link(e) => write!(f, "link: {e}"),
            Self::Unexpected { got } => write!(f, "unexpected echo after {got}"),
            Self::Mismatch { seq, len } => write!(f, "echo {seq} ({len} bytes) differs"),
            Self::WrongSource { src } => write!(f, "echo from unexpected address {src}"),
            Self::UnknownService => f.write_str("unknown service announced"),
        }
    }
}

/// Counters of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// Messages sent.
    pub sent: u32,
    /// Echoes received and checked.
    pub received: u32,
    /// Payload bytes received in echoes.
    pub bytes: u64,
    /// Services announced by the remote.
    pub services: u32,
    /// Sends that found no transmit buffer.
    pub tx_waits: u32,
    /// Messages outstanding when the host reset the device: their echoes
    /// never came back and never will (`received + lost` counts every
    /// message resolved).
    pub lost: u32,
    /// Device resets ([`EchoClient::reset`]).
    pub resets: u32,
    /// Resets after which an echo was checked again.
    pub resumed: u32,
}

/// The echo client.
#[derive(Debug)]
pub struct EchoClient {
    ep: Endpoint,
    peer: Option<u32>,
    /// Sequence number of the next echo: every message before it came back
    /// or was lost at a reset.
    expect: u32,
    /// Between [`EchoClient::reset`] and [`EchoClient::attach`].
    detached: bool,
    count: u32,
    window: u32,
    /// The last send found no transmit buffer: wait for a notification.
    starved: bool,
    stats: ClientStats,
}

impl EchoClient {
    /// Binds the client's endpoint on `link`.
    ///
    /// # Errors
    ///
    /// [`Error::Bind`] without a free endpoint slot.
    pub fn new<'m, R, N, const EPS: usize, const Q: usize, const SVC: usize, const BUF: usize>(
        link: &Link<'m, R, N, EPS, Q, SVC, BUF>,
        count: u32,
        window: u32,
    ) -> Result<Self, Error>
    where
        R: Rings<'m>,
        N: Notify,
    {
        let ep = link.create_endpoint(ADDR_ANY, RxMode::Queue)?;
        Ok(Self {
            ep,
            peer: None,
            expect: 0,
            detached: false,
            count,
            window: window.max(1),
            starved: false,
            stats: ClientStats::default(),
        })
    }

    /// Whether every message is resolved: its echo arrived, or (after a
    /// reset) it was lost.
    pub fn is_done(&self) -> bool {
        self.expect >= self.count
    }

    /// Messages sent whose echoes have not arrived yet.
    pub fn outstanding(&self) -> u32 {
        self.stats.sent - self.expect
    }

    /// Messages resolved (`received + lost`).
    pub fn resolved(&self) -> u32 {
        self.expect
    }

    /// The host reset the device and abandoned its link: the messages
    /// outstanding are lost, the service addresses forgotten. Nothing is
    /// sent or received until [`EchoClient::attach`].
    pub fn reset(&mut self) {
        let outstanding = self.outstanding();
        self.stats.lost += outstanding;
        self.expect = self.stats.sent;
        self.peer = None;
        self.starved = false;
        self.detached = true;
        self.stats.resets += 1;
    }

    /// Binds the client's endpoint on the host's new `link` after a reset;
    /// the remote's services are found again through its announcements.
    ///
    /// # Errors
    ///
    /// [`Error::Bind`] without a free endpoint slot.
    pub fn attach<'m, R, N, const EPS: usize, const Q: usize, const SVC: usize, const BUF: usize>(
        &mut self,
        link: &Link<'m, R, N, EPS, Q, SVC, BUF>,
    ) -> Result<(), Error>
    where
        R: Rings<'m>,
        N: Notify,
    {
        self.ep = link.create_endpoint(ADDR_ANY, RxMode::Queue)?;
        self.peer = None;
        self.starved = false;
        self.detached = false;
        Ok(())
    }

    /// Whether the client has messages to send, room in its window and had
    /// a transmit buffer last time (it acts without being notified then).
    pub fn wants_to_send(&self) -> bool {
        !self.starved
            && !self.detached
            && self.peer.is_some()
            && self.stats.sent < self.count
            && self.outstanding() < self.window
    }

    /// The counters.
    pub fn stats(&self) -> ClientStats {
        self.stats
    }

    /// The `rpmsg-raw` service address, once announced.
    pub fn peer(&self) -> Option<u32> {
        self.peer
    }

    /// One non-blocking pass: name-service events, echoes, new messages.
    /// Returns whether anything happened.
    ///
    /// # Errors
    ///
    /// [`ClientError`]: any lost, duplicated, reordered or corrupted echo,
    /// and link errors other than `WouldBlock`.
    pub fn step<'m, R, N, const EPS: usize, const Q: usize, const SVC: usize, const BUF: usize>(
        &mut self,
        link: &Link<'m, R, N, EPS, Q, SVC, BUF>,
    ) -> Result<bool, ClientError>
    where
        R: Rings<'m>,
        N: Notify,
    {
        let mut progressed = false;
        if self.detached {
            return Ok(false);
        }
        self.starved = false;
        link.service()?;
        while let Some(ev) = link.try_ns_event() {
            progressed = true;
            if let NsEvent::Created(s) = ev {
                match s.name.as_str() {
                    RAW_SERVICE => self.peer = Some(s.addr),
                    TTY_SERVICE => {}
                    _ => return Err(ClientError::UnknownService),
                }
                self.stats.services += 1;
            }
        }
        let Some(peer) = self.peer else {
            return Ok(progressed);
        };
        let mut got = [0u8; MAX_PAYLOAD];
        let mut want = [0u8; MAX_PAYLOAD];
        loop {
            match link.try_recv(&self.ep, &mut got) {
                Ok(r) => {
                    progressed = true;
                    if r.src != peer {
                        return Err(ClientError::WrongSource { src: r.src });
                    }
                    let seq = self.expect;
                    if seq >= self.stats.sent {
                        return Err(ClientError::Unexpected {
                            got: self.stats.received,
                        });
                    }
                    let n = payload(seq, &mut want);
                    if r.len != n || got[..n] != want[..n] {
                        return Err(ClientError::Mismatch { seq, len: r.len });
                    }
                    self.stats.received += 1;
                    self.stats.bytes += r.len as u64;
                    self.expect += 1;
                    if self.stats.resumed < self.stats.resets {
                        self.stats.resumed = self.stats.resets;
                    }
                }
                Err(Error::WouldBlock) => break,
                Err(e) => return Err(e.into()),
            }
        }
        while self.stats.sent < self.count && self.outstanding() < self.window {
            let n = payload(self.stats.sent, &mut want);
            match link.try_send(&self.ep, peer, &want[..n]) {
                Ok(()) => {
                    progressed = true;
                    self.stats.sent += 1;
                }
                Err(Error::WouldBlock) => {
                    self.stats.tx_waits += 1;
                    self.starved = true;
                    break;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(progressed)
    }
}
