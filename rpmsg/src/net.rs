//! An endpoint as a network device: smoltcp's [`Device`] over the two
//! halves of a [`crate::link::Link`], one Ethernet frame per message
//! (feature `smoltcp-014`).
//!
//! ```ignore
//! let ep = link.bind(NET_ADDR)?;
//! let (tx, rx) = link.split();
//! let mut dev: NetDevice<'_, '_, _, _> = NetDevice::new(tx, rx, ep, PEER_NET_ADDR);
//! let mac = EthernetAddress([0x02, 0, 0, 0, 0, 1]);
//! let mut iface = Interface::new(Config::new(mac.into()), &mut dev, now());
//! iface.update_ip_addrs(|a| a.push(IpCidr::new(IpAddress::v4(10, 0, 0, 1), 24)).unwrap());
//! let mut sockets = SocketSet::new(&mut storage[..]);
//! loop {
//!     iface.poll(now(), &mut dev, &mut sockets);
//!     // use the sockets; sleep until the doorbell when nothing moved
//! }
//! ```
//!
//! - The frame is the whole payload of one message, sent from the device's
//!   endpoint to one peer address; nothing else is added to the wire. The
//!   largest frame is the payload size: `FRAME` bytes, 496 with the usual
//!   512-byte buffers, so the IP MTU is `FRAME - 14` (482, the OCTEON AMP
//!   seed's `rpmsgX_14`). smoltcp's `max_transmission_unit` counts the
//!   Ethernet header, so [`NetDevice::capabilities`] reports `FRAME`.
//! - Mainline Linux has no RPMsg network driver: the peer is another core
//!   running this device (or a vendor driver speaking the same framing).
//! - The device takes the link's receive half: every message for another
//!   local address is dropped and counted ([`NetStats::rx_foreign`]), so
//!   bind only the device's endpoint on a link it drives.
//!
//! # Where bytes are copied
//!
//! The tokens lend ring buffers: [`Device::receive`] holds the received
//! message ([`crate::link::HeldMessage`], not yet given back) and
//! [`Device::transmit`] holds a transmit buffer
//! ([`crate::link::TxBuffer`]). smoltcp reads and writes frames through
//! `&[u8]` / `&mut [u8]`, and a Rust reference over memory the peer can
//! write is undefined behaviour, so each frame is copied exactly once, at
//! consume time, between the ring buffer and a frame buffer inside the
//! device:
//!
//! - receive: [`RxToken`]'s `consume` copies the payload out of the held
//!   buffer ([`crate::link::HeldMessage::read`]), gives the buffer back to
//!   the peer, then hands smoltcp the copy;
//! - transmit: [`TxToken`]'s `consume` lets smoltcp build the frame in the
//!   device's frame buffer, then copies it into the lent transmit buffer
//!   ([`crate::link::TxBuffer::write`]) and sends it.
//!
//! # Bad input and back-pressure
//!
//! A message longer than `FRAME` or shorter than an Ethernet header is
//! dropped and counted ([`NetStats::rx_oversized`], [`NetStats::rx_runt`]),
//! never truncated; its token hands smoltcp an empty frame, which smoltcp
//! skips. A malformed frame of a valid length goes to smoltcp, which checks
//! every field and drops it.
//!
//! The transmit token paired with a received frame (for a reply: ARP,
//! ICMP echo, TCP reset) takes a transmit buffer only when consumed; if none
//! is free then, the reply is dropped and counted
//! ([`NetStats::tx_no_buffer`]), as a full transmit ring drops on Ethernet.
//! Receiving never waits for a transmit buffer: two cores that each waited
//! to receive until they could send would deadlock once both rings filled.
//!
//! # Checksums
//!
//! The device computes and verifies no checksum, so
//! [`NetDevice::capabilities`] leaves smoltcp to compute and verify every
//! one (`ChecksumCapabilities::default()`). The rings do not corrupt bytes,
//! but the peer is not trusted: a checksum is the stack's only check that a
//! frame is the one the peer's stack built.
#![deny(unsafe_code)]

use core::fmt;

use ipc_traits::mailbox::Notify;
use smoltcp::phy::{self, ChecksumCapabilities, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

use crate::link::{Endpoint, HeldMessage, Rx, Tx, TxBuffer};
use crate::rings::{Halves, RxRing};
use crate::wire::HEADER_LEN;
use crate::Error;

/// Bytes of an Ethernet header (destination, source, EtherType).
pub const ETHERNET_HEADER_LEN: usize = 14;

/// The frame size with the usual 512-byte buffers: the payload of one
/// message (496 bytes; IP MTU 482).
pub const DEFAULT_FRAME: usize = 512 - HEADER_LEN;

/// Counters of a [`NetDevice`] (wrapping).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NetStats {
    /// Frames handed to smoltcp.
    pub rx_frames: u32,
    /// Messages longer than the device's frame: dropped, never truncated.
    pub rx_oversized: u32,
    /// Messages shorter than an Ethernet header: dropped.
    pub rx_runt: u32,
    /// Messages for another local address on the same link: dropped.
    pub rx_foreign: u32,
    /// Receive-half errors (a broken ring, a memory error); the error
    /// itself is [`NetStats::rx_last_error`].
    pub rx_errors: u32,
    /// The last receive-half error.
    pub rx_last_error: Option<Error>,
    /// Frames sent.
    pub tx_frames: u32,
    /// Frames longer than the transmit buffer (or than the device's frame):
    /// dropped.
    pub tx_oversized: u32,
    /// Replies dropped because no transmit buffer was free when smoltcp
    /// built them.
    pub tx_no_buffer: u32,
    /// Transmit-half errors; the error itself is
    /// [`NetStats::tx_last_error`].
    pub tx_errors: u32,
    /// The last transmit-half error.
    pub tx_last_error: Option<Error>,
}

#[derive(Debug, Clone, Copy, Default)]
struct RxCounts {
    frames: u32,
    oversized: u32,
    runt: u32,
    foreign: u32,
    errors: u32,
    last_error: Option<Error>,
}

impl RxCounts {
    fn error(&mut self, e: Error) {
        self.errors = self.errors.wrapping_add(1);
        self.last_error = Some(e);
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct TxCounts {
    frames: u32,
    oversized: u32,
    no_buffer: u32,
    errors: u32,
    last_error: Option<Error>,
}

impl TxCounts {
    fn error(&mut self, e: Error) {
        self.errors = self.errors.wrapping_add(1);
        self.last_error = Some(e);
    }
}

/// smoltcp's network device over one endpoint of a split link (see the
/// module docs). `FRAME` is the largest frame: the link's payload size
/// ([`DEFAULT_FRAME`] for 512-byte buffers).
pub struct NetDevice<'l, 'a, R: Halves<'a>, N: Notify, const FRAME: usize = DEFAULT_FRAME> {
    tx: Tx<'l, 'a, R, N>,
    rx: Rx<'l, 'a, R, N>,
    ep: Endpoint,
    peer: u32,
    rx_frame: [u8; FRAME],
    tx_frame: [u8; FRAME],
    rx_counts: RxCounts,
    tx_counts: TxCounts,
}

impl<'a, R: Halves<'a>, N: Notify, const FRAME: usize> fmt::Debug
    for NetDevice<'_, 'a, R, N, FRAME>
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NetDevice")
            .field("addr", &self.ep.addr())
            .field("peer", &self.peer)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl<'l, 'a, R: Halves<'a>, N: Notify, const FRAME: usize> NetDevice<'l, 'a, R, N, FRAME> {
    /// A device that receives on `rx` the frames sent to `ep` and sends its
    /// frames from `ep` to the peer's address `peer`.
    pub fn new(tx: Tx<'l, 'a, R, N>, rx: Rx<'l, 'a, R, N>, ep: Endpoint, peer: u32) -> Self {
        Self {
            tx,
            rx,
            ep,
            peer,
            rx_frame: [0; FRAME],
            tx_frame: [0; FRAME],
            rx_counts: RxCounts::default(),
            tx_counts: TxCounts::default(),
        }
    }

    /// The halves and the endpoint back.
    pub fn into_parts(self) -> (Tx<'l, 'a, R, N>, Rx<'l, 'a, R, N>, Endpoint) {
        (self.tx, self.rx, self.ep)
    }

    /// The halves, to flush doorbells or read their counters.
    pub fn halves(&mut self) -> (&mut Tx<'l, 'a, R, N>, &mut Rx<'l, 'a, R, N>) {
        (&mut self.tx, &mut self.rx)
    }

    /// The device's local address.
    pub fn addr(&self) -> u32 {
        self.ep.addr()
    }

    /// The peer's address frames are sent to.
    pub fn peer(&self) -> u32 {
        self.peer
    }

    /// Sends frames to `peer` from now on (for example once the name
    /// service told where the peer's device is).
    pub fn set_peer(&mut self, peer: u32) {
        self.peer = peer;
    }

    /// Rings every doorbell still owed to the peer (the mailbox refused it
    /// earlier).
    pub fn flush(&mut self) {
        self.tx.flush();
    }

    /// Whether a doorbell is still owed to the peer: do not sleep without a
    /// timeout while this is true (see [`Tx::owes_doorbell`]).
    pub fn owes_doorbell(&self) -> bool {
        self.tx.owes_doorbell()
    }

    /// The device's counters.
    pub fn stats(&self) -> NetStats {
        let (r, t) = (self.rx_counts, self.tx_counts);
        NetStats {
            rx_frames: r.frames,
            rx_oversized: r.oversized,
            rx_runt: r.runt,
            rx_foreign: r.foreign,
            rx_errors: r.errors,
            rx_last_error: r.last_error,
            tx_frames: t.frames,
            tx_oversized: t.oversized,
            tx_no_buffer: t.no_buffer,
            tx_errors: t.errors,
            tx_last_error: t.last_error,
        }
    }
}

impl<'l, 'a, R: Halves<'a>, N: Notify, const FRAME: usize> Device
    for NetDevice<'l, 'a, R, N, FRAME>
{
    type RxToken<'t>
        = RxToken<'t, 'a, R, N, FRAME>
    where
        Self: 't;
    type TxToken<'t>
        = TxToken<'t, 'l, 'a, R, N, FRAME>
    where
        Self: 't;

    /// Takes the next message off the ring and lends it. `None` when the
    /// ring is empty (and re-armed) or broken ([`NetStats::rx_errors`]). A
    /// message that is no frame (too long, too short, for another address)
    /// is counted, given back at once and lent as an empty frame, which
    /// smoltcp skips before asking for the next.
    fn receive(&mut self, _timestamp: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let held = match self.rx.try_recv_held() {
            Ok(Some(held)) => {
                let (len, dst) = (held.len(), held.dst());
                let counts = &mut self.rx_counts;
                if dst != self.ep.addr() {
                    counts.foreign = counts.foreign.wrapping_add(1);
                    None
                } else if len > FRAME {
                    counts.oversized = counts.oversized.wrapping_add(1);
                    None
                } else if len < ETHERNET_HEADER_LEN {
                    counts.runt = counts.runt.wrapping_add(1);
                    None
                } else {
                    Some(held)
                }
            }
            Ok(None) => return None,
            // A ring's worth of undeliverable messages went by: the ring is
            // not idle, so smoltcp must ask again (an empty frame).
            Err(Error::WouldBlock) => None,
            Err(e) => {
                self.rx_counts.error(e);
                return None;
            }
        };
        let rx = RxToken {
            held,
            frame: &mut self.rx_frame,
            counts: &mut self.rx_counts,
        };
        let tx = TxToken {
            lent: Lent::Later(&mut self.tx),
            src: &self.ep,
            peer: self.peer,
            frame: &mut self.tx_frame,
            counts: &mut self.tx_counts,
        };
        Some((rx, tx))
    }

    /// Lends a transmit buffer; `None` when the peer holds them all (smoltcp
    /// keeps the frame and asks again at its next poll).
    fn transmit(&mut self, _timestamp: Instant) -> Option<Self::TxToken<'_>> {
        let buf = match self.tx.try_alloc() {
            Ok(Some(buf)) => buf,
            Ok(None) => return None,
            Err(e) => {
                self.tx_counts.error(e);
                return None;
            }
        };
        Some(TxToken {
            lent: Lent::Now(buf),
            src: &self.ep,
            peer: self.peer,
            frame: &mut self.tx_frame,
            counts: &mut self.tx_counts,
        })
    }

    /// Ethernet frames of up to `FRAME` bytes (header included); at most a
    /// receive ring's worth in flight; every checksum left to smoltcp (the
    /// device offloads none).
    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = FRAME;
        caps.max_burst_size = Some(<R::Rx as RxRing<'a>>::NUM);
        caps.checksum = ChecksumCapabilities::default();
        caps
    }
}

/// A received frame, lent by [`NetDevice`]'s `receive`: the message stays
/// in its ring buffer until consumed (or dropped, which gives it back
/// unread).
pub struct RxToken<'t, 'a, R: Halves<'a>, N: Notify, const FRAME: usize> {
    /// `None`: a message that was no frame (counted, given back).
    held: Option<HeldMessage<'t, 'a, R, N>>,
    frame: &'t mut [u8; FRAME],
    counts: &'t mut RxCounts,
}

impl<'a, R: Halves<'a>, N: Notify, const FRAME: usize> fmt::Debug for RxToken<'_, 'a, R, N, FRAME> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RxToken")
            .field("len", &self.held.as_ref().map_or(0, HeldMessage::len))
            .finish_non_exhaustive()
    }
}

impl<'a, R: Halves<'a>, N: Notify, const FRAME: usize> phy::RxToken
    for RxToken<'_, 'a, R, N, FRAME>
{
    fn consume<T, F>(self, f: F) -> T
    where
        F: FnOnce(&[u8]) -> T,
    {
        let Some(held) = self.held else {
            return f(&[]);
        };
        // `receive` checked `len <= FRAME`.
        let frame = self.frame.get_mut(..held.len()).unwrap_or_default();
        // The one copy of a received frame: ring buffer -> device frame
        // buffer, through the memory's accessors (no reference to the
        // peer's memory).
        let copied = held.read(0, frame);
        // The ring buffer goes back to the peer before smoltcp runs.
        drop(held);
        match copied {
            Ok(()) => {
                self.counts.frames = self.counts.frames.wrapping_add(1);
                f(frame)
            }
            Err(e) => {
                self.counts.error(e);
                f(&[])
            }
        }
    }
}

/// Where a [`TxToken`]'s transmit buffer comes from.
enum Lent<'t, 'l, 'a, R: Halves<'a>, N: Notify> {
    /// Lent by `transmit`.
    Now(TxBuffer<'t, 'a, R, N>),
    /// Taken when consumed (the token paired with a received frame).
    Later(&'t mut Tx<'l, 'a, R, N>),
}

/// A frame to send, lent by [`NetDevice`]'s `transmit` (with a transmit
/// buffer taken from the ring) or `receive` (the buffer taken when
/// consumed). Dropped unconsumed, its buffer is kept for the next frame.
pub struct TxToken<'t, 'l, 'a, R: Halves<'a>, N: Notify, const FRAME: usize> {
    lent: Lent<'t, 'l, 'a, R, N>,
    src: &'t Endpoint,
    peer: u32,
    frame: &'t mut [u8; FRAME],
    counts: &'t mut TxCounts,
}

impl<'a, R: Halves<'a>, N: Notify, const FRAME: usize> fmt::Debug
    for TxToken<'_, '_, 'a, R, N, FRAME>
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TxToken")
            .field("peer", &self.peer)
            .field("lent", &matches!(self.lent, Lent::Now(_)))
            .finish_non_exhaustive()
    }
}

impl<'a, R: Halves<'a>, N: Notify, const FRAME: usize> phy::TxToken
    for TxToken<'_, '_, 'a, R, N, FRAME>
{
    fn consume<T, F>(self, len: usize, f: F) -> T
    where
        F: FnOnce(&mut [u8]) -> T,
    {
        let Self {
            lent,
            src,
            peer,
            frame,
            counts,
        } = self;
        // smoltcp asks for at most the MTU (`FRAME`); a longer request is
        // built short and never sent.
        let fits = len <= FRAME;
        let frame = &mut frame[..len.min(FRAME)];
        let out = f(frame);
        if !fits {
            counts.oversized = counts.oversized.wrapping_add(1);
            return out;
        }
        let mut buf = match lent {
            Lent::Now(buf) => buf,
            Lent::Later(tx) => match tx.try_alloc() {
                Ok(Some(buf)) => buf,
                Ok(None) => {
                    counts.no_buffer = counts.no_buffer.wrapping_add(1);
                    return out;
                }
                Err(e) => {
                    counts.error(e);
                    return out;
                }
            },
        };
        if len > buf.capacity() {
            // `FRAME` exceeds this link's payload size.
            counts.oversized = counts.oversized.wrapping_add(1);
            return out;
        }
        // The one copy of a sent frame: device frame buffer -> ring buffer,
        // through the memory's accessors.
        let sent = buf.write(0, frame).and_then(|()| buf.send(src, peer));
        match sent {
            Ok(()) => counts.frames = counts.frames.wrapping_add(1),
            Err(e) => counts.error(e),
        }
        out
    }
}
