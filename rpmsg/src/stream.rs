//! An endpoint as a byte stream (feature `embedded-io-07`): the
//! counterpart of Linux's `rpmsg_tty`, in the shapes `embedded-io` 0.7 and
//! `embedded-io-async` 0.7 users drive (framing crates, shells, AT parsers
//! run over it unchanged).
//!
//! ```
//! use rpmsg::stream::embedded_io::{Read, Write};
//! use rpmsg::stream::Stream;
//! use rpmsg::Error;
//! use rpmsg::link::{Link, Sent};
//! use rpmsg::{ipc_traits::mailbox::{Notify, Spins}, rings::Halves};
//!
//! /// Echoes `/dev/ttyRPMSG0` on Linux, a read at a time.
//! pub fn tty_echo<'a, R: Halves<'a>, N: Notify>(
//!     link: &mut Link<'a, R, N>,
//! ) -> Result<(), Error> {
//!     let ep = link.bind(1024)?;
//!     let (mut tx, rx) = link.split();
//!     while tx.announce(&ep, "rpmsg-tty")? == Sent::NoBuffer {}
//!     // The peer's address comes with its first message (as rpmsg_tty's).
//!     let mut tty: Stream<'_, 'a, R, N, Spins> =
//!         Stream::new(tx, rx, ep, None, Spins::new(1 << 20));
//!     let mut buf = [0u8; 64];
//!     loop {
//!         match tty.read(&mut buf) {
//!             Ok(n) => tty.write_all(&buf[..n])?,
//!             Err(Error::TimedOut) => {} // nothing yet: sleep here
//!             Err(e) => return Err(e),
//!         }
//!     }
//! }
//! ```
//!
//! - [`Stream`]: the blocking traits (`embedded_io::{Read, Write,
//!   ReadReady, WriteReady}`); every wait is bounded by a
//!   [`Budget`] given once (cloned fresh for each call) and ends in
//!   [`Error::TimedOut`] when it runs out. Non-blocking forms:
//!   [`Stream::try_read`], [`Stream::try_write`].
//! - [`AsyncStream`]: `embedded_io_async::{Read, Write}`, woken through the
//!   halves' [`HalfWakers`] from the mailbox interrupt.
//!
//! # Bytes and messages
//!
//! - A write becomes messages of at most the payload a transmit buffer
//!   holds (496 bytes with 512-byte buffers); each is handed to the ring
//!   before `write` returns, so `flush` has nothing left to hand over: it
//!   only rings a doorbell the mailbox refused earlier. Every `write` call
//!   sends at least one message: small writes make small messages.
//! - A read takes what it asks for; the unread rest of a message stays in
//!   the stream's buffer (`CAP` bytes, 496 by default) for the next read.
//!   A read whose buffer holds the whole next message gets it straight from
//!   the ring, without the extra copy.
//! - Back-pressure: while the peer holds its buffers, writes find none and
//!   wait (bounded); a blocking write that ran out returns the error with
//!   nothing of that call sent, so a retry resends nothing twice and skips
//!   nothing. Bytes already written are in the ring, in order.
//!
//! # What the stream does not deliver
//!
//! The stream owns the receive half, so it sees every message of the link:
//!
//! - a message to another local address, or from another address than the
//!   peer's, is given back and counted ([`StreamStats::foreign`]): put a
//!   stream on a link (or a receive half) of its own, one endpoint;
//! - a message longer than the stream's buffer (`CAP`) that the read could
//!   not take whole is given back and counted
//!   ([`StreamStats::oversized`]), never truncated; one longer than the
//!   ring's buffer never gets past the receive half
//!   ([`crate::link::RxStats::bad_header`]);
//! - an empty message carries no byte and is counted
//!   ([`StreamStats::empty`]): `Ok(0)` from a read would mean end of file.
//!
//! # Deadlock
//!
//! A blocking write waits for the peer's buffers and does not read
//! meanwhile. A peer that stops taking messages until this side reads
//! (an echo whose own buffers are full) then waits for this side: the
//! write ends in [`Error::TimedOut`], nothing lost. Interleave reads
//! ([`embedded_io::ReadReady`]) or use the async form with a reading task.

use core::fmt;

use ipc_traits::mailbox::{Budget, Notify};

use crate::rings::Halves;
use crate::Error;

use crate::link::asynch::HalfWakers;
use crate::link::{Endpoint, Received, Rx, Sent, Tx};

/// `embedded-io` 0.7, reachable without a dependency of one's own.
pub use embedded_io;
/// `embedded-io-async` 0.7, reachable without a dependency of one's own.
pub use embedded_io_async;

/// The default stream buffer: a 512-byte buffer's payload.
pub const DEFAULT_CAP: usize = 512 - crate::wire::HEADER_LEN;

/// How many undeliverable messages one non-blocking call looks past before
/// it reports "nothing yet" (a flood of them never holds a call forever).
const SKIP_BOUND: u32 = 64;

/// Counters of a stream (wrapping).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StreamStats {
    /// Messages received whose bytes the stream delivers.
    pub messages_in: u32,
    /// Messages sent.
    pub messages_out: u32,
    /// Messages given back undelivered: for another local address, or from
    /// another address than the peer's.
    pub foreign: u32,
    /// Messages given back undelivered: longer than the stream's buffer.
    pub oversized: u32,
    /// Empty messages (nothing to deliver).
    pub empty: u32,
}

/// What streams of both kinds share: the halves, the endpoint, the peer and
/// the unread rest of a message.
struct Core<'l, 'a, R: Halves<'a>, N, const CAP: usize> {
    tx: Tx<'l, 'a, R, N>,
    rx: Rx<'l, 'a, R, N>,
    ep: Endpoint,
    peer: Option<u32>,
    buf: [u8; CAP],
    /// Unread bytes: `buf[at..end]`.
    at: usize,
    end: usize,
    /// The payload room a transmit buffer refused a longer message with
    /// (0: none refused yet).
    mtu: usize,
    stats: StreamStats,
}

/// Where [`Core::recv`] put a message.
enum Got {
    /// `n` bytes straight into the caller's buffer.
    Direct(usize),
    /// Into the stream's buffer.
    Buffered,
    /// None yet.
    Nothing,
}

/// What one look at a received message found.
enum Take {
    /// `n` bytes for the reader (delivered where the call asked).
    Bytes(usize),
    /// Not for the stream (counted); look again.
    Skipped,
}

impl<'l, 'a, R: Halves<'a>, N: Notify, const CAP: usize> Core<'l, 'a, R, N, CAP> {
    fn new(tx: Tx<'l, 'a, R, N>, rx: Rx<'l, 'a, R, N>, ep: Endpoint, peer: Option<u32>) -> Self {
        Self {
            tx,
            rx,
            ep,
            peer,
            buf: [0; CAP],
            at: 0,
            end: 0,
            mtu: 0,
            stats: StreamStats::default(),
        }
    }

    fn buffered(&self) -> usize {
        self.end - self.at
    }

    /// Copies buffered bytes into `out`.
    fn copy_out(&mut self, out: &mut [u8]) -> usize {
        let n = out.len().min(self.buffered());
        out[..n].copy_from_slice(&self.buf[self.at..self.at + n]);
        self.at += n;
        n
    }

    /// Sorts a received message: for the stream (learning the peer from
    /// the first), or counted and skipped.
    fn accept(&mut self, r: Received) -> Take {
        if r.dst != self.ep.addr() || self.peer.is_some_and(|p| p != r.src) {
            self.stats.foreign = self.stats.foreign.wrapping_add(1);
            return Take::Skipped;
        }
        if r.len == 0 {
            self.stats.empty = self.stats.empty.wrapping_add(1);
            return Take::Skipped;
        }
        self.peer = Some(r.src);
        self.stats.messages_in = self.stats.messages_in.wrapping_add(1);
        Take::Bytes(r.len)
    }

    /// Drops the message a too-short receive kept (longer than `CAP`).
    fn drop_oversized(&mut self) -> Result<(), Error> {
        if let Some(held) = self.rx.try_recv_held()? {
            drop(held);
            self.stats.oversized = self.stats.oversized.wrapping_add(1);
        }
        Ok(())
    }

    /// Receives the next message for the stream: into `out` when it fits
    /// there, else into the stream's buffer (a message longer than that is
    /// dropped, counted). Looks past at most [`SKIP_BOUND`] undeliverable
    /// messages. One receive path for both targets: one copy of it in an
    /// image.
    fn recv(&mut self, mut out: Option<&mut [u8]>) -> Result<Got, Error> {
        for _ in 0..SKIP_BOUND {
            let dst: &mut [u8] = match out.as_deref_mut() {
                Some(o) => o,
                None => &mut self.buf,
            };
            match self.rx.try_recv(dst) {
                Ok(Some(r)) => {
                    if let Take::Bytes(n) = self.accept(r) {
                        if out.is_some() {
                            return Ok(Got::Direct(n));
                        }
                        (self.at, self.end) = (0, n);
                        return Ok(Got::Buffered);
                    }
                }
                Ok(None) | Err(Error::WouldBlock) => return Ok(Got::Nothing),
                // Longer than `out`: the receive half kept it; into the
                // stream's buffer on the next turn.
                Err(Error::TooLong) if out.is_some() => out = None,
                Err(Error::TooLong) => self.drop_oversized()?,
                Err(e) => return Err(e),
            }
        }
        Ok(Got::Nothing)
    }

    /// Receives the next message for the stream into its buffer;
    /// `Ok(false)`: none yet (the ring is empty, or only undeliverable
    /// messages came).
    fn fill(&mut self) -> Result<bool, Error> {
        Ok(matches!(self.recv(None)?, Got::Buffered))
    }

    /// Non-blocking read: `Ok(None)` when no byte is there yet.
    fn try_read(&mut self, out: &mut [u8]) -> Result<Option<usize>, Error> {
        if out.is_empty() {
            return Ok(Some(0));
        }
        if self.buffered() > 0 {
            return Ok(Some(self.copy_out(out)));
        }
        // Straight into `out` when the whole message fits.
        Ok(match self.recv(Some(&mut *out))? {
            Got::Direct(n) => Some(n),
            Got::Buffered => Some(self.copy_out(out)),
            Got::Nothing => None,
        })
    }

    fn read_ready(&mut self) -> Result<bool, Error> {
        Ok(self.buffered() > 0 || self.fill()?)
    }

    /// Non-blocking write: the bytes handed to the ring, 0 when no transmit
    /// buffer was free.
    fn try_write(&mut self, data: &[u8]) -> Result<usize, Error> {
        let peer = self.peer.ok_or(Error::NotConnected)?;
        let mut done = 0;
        // Each turn sends a message or learns a smaller payload room (the
        // buffer said how much it holds): at most one turn per byte more.
        while done < data.len() {
            let n = (data.len() - done).min(self.chunk());
            match self.tx.try_send(&self.ep, peer, &data[done..done + n]) {
                Ok(Sent::Sent) => {
                    self.stats.messages_out = self.stats.messages_out.wrapping_add(1);
                    done += n;
                }
                Ok(Sent::NoBuffer) => break,
                Err(Error::TooLong) => {
                    if !self.learn(n)? {
                        break;
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }

    /// The longest message to try: the payload room learnt, or anything
    /// before the first (the buffer then says how much it holds).
    fn chunk(&self) -> usize {
        if self.mtu > 0 {
            self.mtu
        } else {
            usize::MAX
        }
    }

    /// A send of `tried` bytes refused as too long: the next transmit
    /// buffer (lent, and kept for the next send) teaches the payload room.
    /// Whether there was a buffer to learn from.
    fn learn(&mut self, tried: usize) -> Result<bool, Error> {
        let room = match self.tx.try_alloc()? {
            Some(b) => b.capacity(),
            None => return Ok(false),
        };
        if room == 0 {
            return Err(Error::NoPayloadRoom);
        }
        if room >= tried {
            // Too long for another reason (beyond a header's 16-bit length).
            return Err(Error::TooLong);
        }
        self.mtu = room;
        Ok(true)
    }

    fn write_ready(&mut self) -> Result<bool, Error> {
        self.peer.ok_or(Error::NotConnected)?;
        // A buffer lent and dropped unsent is kept for the next send.
        Ok(self.tx.try_alloc()?.is_some())
    }

    /// Rings a doorbell still owed; whether one still is.
    fn ring_owed(&mut self) -> bool {
        if self.tx.owes_doorbell() {
            self.tx.flush();
        }
        self.tx.owes_doorbell()
    }
}

impl<'a, R: Halves<'a>, N, const CAP: usize> fmt::Debug for Core<'_, 'a, R, N, CAP> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stream")
            .field("ep", &self.ep.addr())
            .field("peer", &self.peer)
            .field("buffered", &(self.end - self.at))
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// An endpoint as a blocking byte stream (see the module docs): the
/// halves of a link, one bound endpoint, the peer's address, the budget
/// every wait is bounded by, and a buffer of `CAP` bytes for the unread
/// rest of a message.
pub struct Stream<'l, 'a, R: Halves<'a>, N, B, const CAP: usize = DEFAULT_CAP> {
    core: Core<'l, 'a, R, N, CAP>,
    budget: B,
}

impl<'a, R: Halves<'a>, N, B, const CAP: usize> fmt::Debug for Stream<'_, 'a, R, N, B, CAP> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.core.fmt(f)
    }
}

impl<'l, 'a, R: Halves<'a>, N: Notify, B: Budget + Clone, const CAP: usize>
    Stream<'l, 'a, R, N, B, CAP>
{
    /// A stream over `tx` and `rx` for `ep`, to `peer` (`None`: learnt
    /// from the first message to `ep`), each blocking wait bounded by a
    /// fresh clone of `budget`.
    pub fn new(
        tx: Tx<'l, 'a, R, N>,
        rx: Rx<'l, 'a, R, N>,
        ep: Endpoint,
        peer: Option<u32>,
        budget: B,
    ) -> Self {
        Self {
            core: Core::new(tx, rx, ep, peer),
            budget,
        }
    }

    /// Reads what is there, at once: `Ok(None)` when no byte has arrived
    /// (the receive ring is re-armed: sleeping until the doorbell is safe).
    ///
    /// # Errors
    ///
    /// A link error.
    pub fn try_read(&mut self, out: &mut [u8]) -> Result<Option<usize>, Error> {
        self.core.try_read(out)
    }

    /// Writes what the free transmit buffers hold, at once: the bytes
    /// handed to the ring, 0 when no buffer was free.
    ///
    /// # Errors
    ///
    /// [`Error::NotConnected`], [`Error::NoPayloadRoom`], a
    /// link error.
    pub fn try_write(&mut self, data: &[u8]) -> Result<usize, Error> {
        self.core.try_write(data)
    }

    /// The peer's address, once known.
    pub fn peer(&self) -> Option<u32> {
        self.core.peer
    }

    /// Sets the peer's address (before its first message, to write first).
    pub fn set_peer(&mut self, peer: u32) {
        self.core.peer = Some(peer);
    }

    /// The local endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        &self.core.ep
    }

    /// Bytes received and not read yet (in the stream's buffer).
    pub fn buffered(&self) -> usize {
        self.core.buffered()
    }

    /// The payload room of the peer's transmit buffers, learnt when one
    /// refused a longer message (0 before): the largest message a write
    /// makes.
    pub fn mtu(&self) -> usize {
        self.core.mtu
    }

    /// The stream's counters.
    pub fn stats(&self) -> StreamStats {
        self.core.stats
    }

    /// The transmit half and the endpoint (counters, a message of one's
    /// own).
    pub fn tx(&mut self) -> (&mut Tx<'l, 'a, R, N>, &Endpoint) {
        (&mut self.core.tx, &self.core.ep)
    }

    /// The receive half (its counters).
    pub fn rx(&mut self) -> &mut Rx<'l, 'a, R, N> {
        &mut self.core.rx
    }

    /// The async form of this stream, woken through `wakers` (buffered
    /// bytes and the peer carry over).
    pub fn into_async(self, wakers: &HalfWakers) -> AsyncStream<'_, 'l, 'a, R, N, CAP> {
        AsyncStream {
            core: self.core,
            wakers,
        }
    }

    /// The halves and the endpoint back (bytes still buffered are
    /// dropped: read [`Stream::buffered`] first).
    pub fn into_parts(self) -> (Tx<'l, 'a, R, N>, Rx<'l, 'a, R, N>, Endpoint) {
        (self.core.tx, self.core.rx, self.core.ep)
    }

    /// Retries `op` while it finds nothing, within a fresh budget.
    fn wait<T>(
        &mut self,
        mut op: impl FnMut(&mut Core<'l, 'a, R, N, CAP>) -> Result<Option<T>, Error>,
    ) -> Result<T, Error> {
        let mut budget = self.budget.clone();
        loop {
            if let Some(v) = op(&mut self.core)? {
                return Ok(v);
            }
            // A refused doorbell the peer needs to make progress.
            self.core.ring_owed();
            if !budget.next() {
                return Err(Error::TimedOut);
            }
        }
    }
}

impl<'a, R: Halves<'a>, N: Notify, B: Budget + Clone, const CAP: usize> embedded_io::ErrorType
    for Stream<'_, 'a, R, N, B, CAP>
{
    type Error = Error;
}

impl<'a, R: Halves<'a>, N: Notify, B: Budget + Clone, const CAP: usize> embedded_io::Read
    for Stream<'_, 'a, R, N, B, CAP>
{
    /// Waits (bounded) for at least one byte.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        self.wait(|c| c.try_read(buf))
    }
}

impl<'a, R: Halves<'a>, N: Notify, B: Budget + Clone, const CAP: usize> embedded_io::Write
    for Stream<'_, 'a, R, N, B, CAP>
{
    /// Waits (bounded) for at least one transmit buffer, then sends as many
    /// messages as buffers are free.
    fn write(&mut self, buf: &[u8]) -> Result<usize, Error> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.wait(|c| Ok(Some(c.try_write(buf)?).filter(|&n| n > 0)))
    }

    /// Every write is in the ring already; rings a doorbell the mailbox
    /// refused earlier, retrying within the budget.
    fn flush(&mut self) -> Result<(), Error> {
        self.wait(|c| Ok((!c.ring_owed()).then_some(())))
    }
}

impl<'a, R: Halves<'a>, N: Notify, B: Budget + Clone, const CAP: usize> embedded_io::ReadReady
    for Stream<'_, 'a, R, N, B, CAP>
{
    /// Whether a byte is there (takes the next message off the ring into
    /// the stream's buffer to know).
    fn read_ready(&mut self) -> Result<bool, Error> {
        self.core.read_ready()
    }
}

impl<'a, R: Halves<'a>, N: Notify, B: Budget + Clone, const CAP: usize> embedded_io::WriteReady
    for Stream<'_, 'a, R, N, B, CAP>
{
    /// Whether a transmit buffer is free.
    fn write_ready(&mut self) -> Result<bool, Error> {
        self.core.write_ready()
    }
}

/// An endpoint as an async byte stream (`embedded_io_async`), woken
/// through the halves' [`HalfWakers`] (call [`HalfWakers::wake`] from the
/// mailbox interrupt). Otherwise as [`Stream`]; nothing is taken or sent
/// by a future dropped before it completes.
pub struct AsyncStream<'w, 'l, 'a, R: Halves<'a>, N, const CAP: usize = DEFAULT_CAP> {
    core: Core<'l, 'a, R, N, CAP>,
    wakers: &'w HalfWakers,
}

impl<'a, R: Halves<'a>, N, const CAP: usize> fmt::Debug for AsyncStream<'_, '_, 'a, R, N, CAP> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.core.fmt(f)
    }
}

impl<'w, 'l, 'a, R: Halves<'a>, N: Notify, const CAP: usize> AsyncStream<'w, 'l, 'a, R, N, CAP> {
    /// A stream over `tx` and `rx` for `ep`, to `peer` (`None`: learnt
    /// from the first message to `ep`), woken through `wakers`.
    pub fn new(
        tx: Tx<'l, 'a, R, N>,
        rx: Rx<'l, 'a, R, N>,
        ep: Endpoint,
        peer: Option<u32>,
        wakers: &'w HalfWakers,
    ) -> Self {
        Self {
            core: Core::new(tx, rx, ep, peer),
            wakers,
        }
    }

    /// The peer's address, once known.
    pub fn peer(&self) -> Option<u32> {
        self.core.peer
    }

    /// Sets the peer's address (before its first message, to write first).
    pub fn set_peer(&mut self, peer: u32) {
        self.core.peer = Some(peer);
    }

    /// Bytes received and not read yet.
    pub fn buffered(&self) -> usize {
        self.core.buffered()
    }

    /// The stream's counters.
    pub fn stats(&self) -> StreamStats {
        self.core.stats
    }

    /// The halves and the endpoint back (bytes still buffered are
    /// dropped).
    pub fn into_parts(self) -> (Tx<'l, 'a, R, N>, Rx<'l, 'a, R, N>, Endpoint) {
        (self.core.tx, self.core.rx, self.core.ep)
    }
}

impl<'a, R: Halves<'a>, N: Notify, const CAP: usize> embedded_io_async::ErrorType
    for AsyncStream<'_, '_, 'a, R, N, CAP>
{
    type Error = Error;
}

impl<'a, R: Halves<'a>, N: Notify, const CAP: usize> embedded_io_async::Read
    for AsyncStream<'_, '_, 'a, R, N, CAP>
{
    /// Waits for at least one byte.
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        loop {
            if let Some(n) = self.core.try_read(buf)? {
                return Ok(n);
            }
            // Wait for the next message, into the stream's buffer (read
            // out by the next turn).
            let c = &mut self.core;
            match c.rx.recv(self.wakers, &mut c.buf).await {
                Ok(r) => {
                    if let Take::Bytes(n) = c.accept(r) {
                        (c.at, c.end) = (0, n);
                    }
                }
                Err(Error::TooLong) => c.drop_oversized()?,
                Err(e) => return Err(e),
            }
        }
    }
}

impl<'a, R: Halves<'a>, N: Notify, const CAP: usize> embedded_io_async::Write
    for AsyncStream<'_, '_, 'a, R, N, CAP>
{
    /// Waits for at least one transmit buffer, then sends as many messages
    /// as buffers are free.
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Error> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let n = self.core.try_write(buf)?;
            if n > 0 {
                return Ok(n);
            }
            // No buffer: send the first message by the halves' future (it
            // waits for a buffer); a buffer too small for it says how much
            // it holds, and the next turn sends that.
            let c = &mut self.core;
            let peer = c.peer.ok_or(Error::NotConnected)?;
            let n = buf.len().min(c.chunk());
            match c.tx.send(self.wakers, &c.ep, peer, &buf[..n]).await {
                Ok(()) => {
                    c.stats.messages_out = c.stats.messages_out.wrapping_add(1);
                    return Ok(n);
                }
                Err(Error::TooLong) => {
                    c.learn(n)?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Every write is in the ring already; rings a doorbell the mailbox
    /// refused earlier (once: a refused doorbell has no waker).
    async fn flush(&mut self) -> Result<(), Error> {
        self.core.ring_owed();
        Ok(())
    }
}
