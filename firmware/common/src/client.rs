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
use rpmsg::link::ns::{NsDirectory, NsEvent};
use rpmsg::link::{Endpoint, Link, Rx, Sent, Tx};
use rpmsg::rings::Halves;
use rpmsg::wire::{ADDR_ANY, NS_ADDR};
use rpmsg::Error;

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
    /// Bound at the name-service address: the remote's announcements.
    ns: Endpoint,
    dir: NsDirectory<4>,
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
    /// Binds the client's endpoint and the name-service address on `link`.
    ///
    /// # Errors
    ///
    /// [`Error::TableFull`] without two free endpoint slots.
    pub fn new<'a, R: Halves<'a>, N: Notify>(
        link: &mut Link<'a, R, N>,
        count: u32,
        window: u32,
    ) -> Result<Self, Error> {
        let ns = link.bind(NS_ADDR)?;
        let ep = link.bind(ADDR_ANY)?;
        Ok(Self {
            ep,
            ns,
            dir: NsDirectory::new(),
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

    /// The host reset the device and ended its link's session: the
    /// messages outstanding are lost, the remote's services forgotten.
    /// Nothing is sent or received until [`EchoClient::attach`].
    pub fn reset(&mut self) {
        let outstanding = self.outstanding();
        self.stats.lost += outstanding;
        self.expect = self.stats.sent;
        self.peer = None;
        self.dir.on_peer_reset();
        self.starved = false;
        self.detached = true;
        self.stats.resets += 1;
    }

    /// The host's link restarted over new rings after a reset (its
    /// endpoints stay bound); the remote's services are found again
    /// through its announcements.
    pub fn attach(&mut self) {
        self.peer = None;
        self.starved = false;
        self.detached = false;
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

    /// Name-service messages the directory rejected (malformed, a destroy
    /// for an unknown service, or no room); 0 in a clean run.
    pub fn ns_errors(&self) -> u32 {
        let s = self.dir.stats();
        s.malformed + s.unknown_destroy + s.directory_full
    }

    /// One non-blocking pass: what arrived (name-service events, echoes),
    /// then new messages. Returns whether anything happened.
    ///
    /// # Errors
    ///
    /// [`ClientError`]: any lost, duplicated, reordered or corrupted echo,
    /// and link errors. A missing transmit buffer is not one.
    pub fn step<'a, R: Halves<'a>, N: Notify>(
        &mut self,
        tx: &mut Tx<'_, 'a, R, N>,
        rx: &mut Rx<'_, 'a, R, N>,
    ) -> Result<bool, ClientError> {
        let mut progressed = false;
        if self.detached {
            return Ok(false);
        }
        self.starved = false;
        let mut got = [0u8; MAX_PAYLOAD];
        let mut want = [0u8; MAX_PAYLOAD];
        // The remote need not ring for echoes while this pass drains the
        // ring: asked at the first echo, asked to ring again (with a last
        // look) when the ring is found empty.
        let mut quiet = false;
        loop {
            let r = match rx.try_recv(&mut got) {
                Ok(Some(r)) => r,
                Ok(None) if quiet => {
                    quiet = false;
                    if rx.set_peer_notifications(true)? {
                        continue;
                    }
                    break;
                }
                Ok(None) => break,
                // A ring of undeliverable messages (counted): not idle,
                // the caller steps again.
                Err(Error::WouldBlock) => {
                    if quiet {
                        let _more: bool = rx.set_peer_notifications(true)?;
                    }
                    progressed = true;
                    break;
                }
                Err(e) => return Err(e.into()),
            };
            progressed = true;
            if !quiet {
                rx.set_peer_notifications(false)?;
                quiet = true;
            }
            if r.dst == self.ns.addr() {
                self.on_announcement::<R>(&got[..r.len])?;
                continue;
            }
            let Some(peer) = self.peer else {
                return Err(ClientError::WrongSource { src: r.src });
            };
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
        let Some(peer) = self.peer else {
            return Ok(progressed);
        };
        while self.stats.sent < self.count && self.outstanding() < self.window {
            let n = payload(self.stats.sent, &mut want);
            match tx.try_send(&self.ep, peer, &want[..n])? {
                Sent::Sent => {
                    progressed = true;
                    self.stats.sent += 1;
                }
                Sent::NoBuffer => {
                    self.stats.tx_waits += 1;
                    self.starved = true;
                    break;
                }
            }
        }
        Ok(progressed)
    }

    /// A name-service message: the remote's services.
    fn on_announcement<'a, R: Halves<'a>>(&mut self, payload: &[u8]) -> Result<(), ClientError> {
        if let Some(NsEvent::Created(s)) = self.dir.on_message::<R::Order>(payload) {
            match s.name.as_str() {
                RAW_SERVICE => self.peer = Some(s.addr),
                TTY_SERVICE => {}
                _ => return Err(ClientError::UnknownService),
            }
            self.stats.services += 1;
        }
        Ok(())
    }
}
