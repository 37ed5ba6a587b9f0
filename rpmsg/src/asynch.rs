//! The `async` front end (feature `async`): `send` and `recv` futures woken
//! from the mailbox interrupt, with the blocking API's names and errors.
//!
//! No executor dependency and no allocator: a [`LinkWakers`] holds, for
//! each of the link's `EPS` endpoints, one waker for reception and one for
//! a free transmit buffer, each in a [`WakerSlot`] behind a critical
//! section. Tasks waiting on different endpoints, or one sending and one
//! receiving, never take each other's slot.
//!
//! # For link users
//!
//! The mailbox interrupt handler calls [`Link::on_notify`] and then
//! [`LinkWakers::wake`], which wakes every task waiting on the link (a
//! doorbell does not say which endpoint it is for; each woken task looks
//! once and waits again if nothing is there for it). The futures follow the
//! usual order (try, register the waker, try again, then `Pending`), so a
//! doorbell that lands between the first try and the registration is never
//! lost. A task whose try services the receive ring for everyone wakes the
//! tasks of the other endpoints it queued messages for.
//!
//! # Design notes
//!
//! - Not enforced by types: one task per endpoint and direction. Two tasks
//!   receiving on the same endpoint (or sending from it) share its slot,
//!   and each registration wakes the waker it replaces, as embassy's
//!   `WakerRegistration` does: neither is ever lost, but they poll each
//!   other in turn while both wait.
//! - Messages for [`crate::link::RxMode::Callback`] endpoints are handed
//!   out by [`Link::poll`] only; the futures serve queue endpoints.
//!
//! # Examples
//!
//! ```text
//! static WAKERS: LinkWakers<2> = LinkWakers::new();
//!
//! // In the mailbox interrupt handler:
//! let set = notify_rx.take_pending().unwrap_or_default();
//! link.on_notify(set);
//! WAKERS.wake();
//!
//! // In a task:
//! let io = AsyncLink::new(&link, &WAKERS);
//! let got = io.recv(&ep, &mut buf).await?;
//! io.send(&ep, got.src, &buf[..got.len]).await?;
//! ```
#![deny(unsafe_code)]

use core::future::poll_fn;
use core::task::{Context, Poll};

use ipc_traits::mailbox::Notify;

use crate::link::{Endpoint, Error, Link, Received};
use crate::rings::Rings;

pub use crate::duplex::asynch::WakerSlot;

/// The wakers of a link with `EPS` endpoints: per endpoint, one for
/// reception and one for a free transmit buffer (fixed capacity, usable in
/// a `static`).
#[derive(Debug)]
pub struct LinkWakers<const EPS: usize> {
    rx: [WakerSlot; EPS],
    tx: [WakerSlot; EPS],
}

impl<const EPS: usize> Default for LinkWakers<EPS> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const EPS: usize> LinkWakers<EPS> {
    /// No task waiting (`const`, for `static`s).
    pub const fn new() -> Self {
        Self {
            rx: [const { WakerSlot::new() }; EPS],
            tx: [const { WakerSlot::new() }; EPS],
        }
    }

    /// The peer rang: wakes every task waiting on the link, for a message
    /// or for a transmit buffer (call from the mailbox interrupt handler,
    /// after [`Link::on_notify`]). Each waker is woken once and its slot
    /// emptied; a task that finds nothing registers again.
    pub fn wake(&self) {
        for slot in self.rx.iter().chain(self.tx.iter()) {
            slot.wake();
        }
    }
}

/// A link's async face: futures that wait on the link's [`LinkWakers`]
/// instead of spinning.
#[derive(Debug)]
pub struct AsyncLink<
    'a,
    'm,
    R: Rings<'m>,
    N,
    const EPS: usize,
    const Q: usize,
    const SVC: usize,
    const BUF: usize,
> {
    link: &'a Link<'m, R, N, EPS, Q, SVC, BUF>,
    wakers: &'a LinkWakers<EPS>,
}

impl<
        'a,
        'm,
        R: Rings<'m>,
        N: Notify,
        const EPS: usize,
        const Q: usize,
        const SVC: usize,
        const BUF: usize,
    > AsyncLink<'a, 'm, R, N, EPS, Q, SVC, BUF>
{
    /// Wraps `link`; `wakers` must be woken ([`LinkWakers::wake`]) whenever
    /// the peer rings this link's doorbell.
    pub const fn new(
        link: &'a Link<'m, R, N, EPS, Q, SVC, BUF>,
        wakers: &'a LinkWakers<EPS>,
    ) -> Self {
        Self { link, wakers }
    }

    /// Waits for a message on `ep` and copies it into `out`.
    ///
    /// # Errors
    ///
    /// As [`Link::try_recv`], except that `WouldBlock` waits instead.
    pub async fn recv(&self, ep: &Endpoint, out: &mut [u8]) -> Result<Received, Error> {
        poll_fn(|cx| self.poll_op(ep, &self.wakers.rx, cx, || self.link.try_recv(ep, out))).await
    }

    /// Sends `data` from `ep` to `dst`, waiting for a transmit buffer.
    ///
    /// # Errors
    ///
    /// As [`Link::try_send`], except that `WouldBlock` waits instead.
    pub async fn send(&self, ep: &Endpoint, dst: u32, data: &[u8]) -> Result<(), Error> {
        poll_fn(|cx| {
            self.poll_op(ep, &self.wakers.tx, cx, || {
                // Returned buffers arrive through the receive side too.
                self.link.service()?;
                self.link.try_send(ep, dst, data)
            })
        })
        .await
    }

    /// One poll of an operation on `ep` that waits in `ep`'s slot of
    /// `slots`: try, register, try again; then wake the other endpoints'
    /// receivers that have messages queued (this try may have queued them).
    fn poll_op<T>(
        &self,
        ep: &Endpoint,
        slots: &[WakerSlot; EPS],
        cx: &mut Context<'_>,
        mut attempt: impl FnMut() -> Result<T, Error>,
    ) -> Poll<Result<T, Error>> {
        let out = match attempt() {
            Err(Error::WouldBlock) => match slots.get(ep.slot()) {
                Some(slot) => {
                    slot.register(cx.waker());
                    match attempt() {
                        Err(Error::WouldBlock) => Poll::Pending,
                        other => Poll::Ready(other),
                    }
                }
                // Not an endpoint of a link with `EPS` endpoints.
                None => Poll::Ready(Err(Error::NoSuchEndpoint)),
            },
            other => Poll::Ready(other),
        };
        let queued = self.link.queued();
        for (k, slot) in self.wakers.rx.iter().enumerate() {
            if k != ep.slot() && queued.get(k).copied().unwrap_or(false) {
                slot.wake();
            }
        }
        out
    }
}
