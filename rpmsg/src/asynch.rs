//! The `async` front end (feature `async`): `send` and `recv` futures woken
//! from the mailbox interrupt, with the blocking API's names and errors.
//!
//! No executor dependency: a [`WakerSlot`] holds one waker behind a
//! critical section; the mailbox interrupt handler calls
//! [`WakerSlot::wake`] after acknowledging the doorbell, and the futures
//! follow the usual order (try, register the waker, try again, then
//! `Pending`), so a doorbell that lands between the first try and the
//! registration is never lost.
//!
//! # Examples
//!
//! ```text
//! static RX_WAKER: WakerSlot = WakerSlot::new();
//!
//! // In the mailbox interrupt handler:
//! let set = notify_rx.take_pending().unwrap_or_default();
//! link.on_notify(set);
//! RX_WAKER.wake();
//!
//! // In a task:
//! let io = AsyncLink::new(&link, &RX_WAKER);
//! let got = io.recv(&ep, &mut buf).await?;
//! io.send(&ep, got.src, &buf[..got.len]).await?;
//! ```
#![deny(unsafe_code)]

use core::cell::RefCell;
use core::future::poll_fn;
use core::task::{Poll, Waker};

use critical_section::Mutex;
use ipc_traits::mailbox::Notify;

use crate::link::{Endpoint, Error, Link, Received};
use crate::rings::Rings;

/// One waker, registered from a task and woken from an interrupt.
#[derive(Debug)]
pub struct WakerSlot {
    waker: Mutex<RefCell<Option<Waker>>>,
}

impl Default for WakerSlot {
    fn default() -> Self {
        Self::new()
    }
}

impl WakerSlot {
    /// An empty slot (`const`, for `static`s).
    pub const fn new() -> Self {
        Self {
            waker: Mutex::new(RefCell::new(None)),
        }
    }

    /// Registers `waker`, replacing (and waking) a different one.
    pub fn register(&self, waker: &Waker) {
        critical_section::with(|cs| {
            let mut slot = self.waker.borrow_ref_mut(cs);
            match slot.as_ref() {
                Some(w) if w.will_wake(waker) => {}
                _ => {
                    if let Some(old) = slot.replace(waker.clone()) {
                        old.wake();
                    }
                }
            }
        });
    }

    /// Wakes the registered task, if any (call from the interrupt handler).
    pub fn wake(&self) {
        if let Some(w) = critical_section::with(|cs| self.waker.borrow_ref_mut(cs).take()) {
            w.wake();
        }
    }
}

/// A link's async face: futures that wait on `waker` instead of spinning.
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
    waker: &'a WakerSlot,
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
    /// Wraps `link`; `waker` must be woken whenever the peer rings this
    /// link's doorbell.
    pub const fn new(link: &'a Link<'m, R, N, EPS, Q, SVC, BUF>, waker: &'a WakerSlot) -> Self {
        Self { link, waker }
    }

    /// Waits for a message on `ep` and copies it into `out`.
    ///
    /// # Errors
    ///
    /// As [`Link::try_recv`], except that `WouldBlock` waits instead.
    pub async fn recv(&self, ep: &Endpoint, out: &mut [u8]) -> Result<Received, Error> {
        poll_fn(|cx| match self.link.try_recv(ep, out) {
            Err(Error::WouldBlock) => {
                self.waker.register(cx.waker());
                match self.link.try_recv(ep, out) {
                    Err(Error::WouldBlock) => Poll::Pending,
                    other => Poll::Ready(other),
                }
            }
            other => Poll::Ready(other),
        })
        .await
    }

    /// Sends `data` from `ep` to `dst`, waiting for a transmit buffer.
    ///
    /// # Errors
    ///
    /// As [`Link::try_send`], except that `WouldBlock` waits instead.
    pub async fn send(&self, ep: &Endpoint, dst: u32, data: &[u8]) -> Result<(), Error> {
        poll_fn(|cx| {
            let attempt = |link: &Link<'m, R, N, EPS, Q, SVC, BUF>| {
                // Returned buffers arrive through the receive side too.
                link.service()?;
                link.try_send(ep, dst, data)
            };
            match attempt(self.link) {
                Err(Error::WouldBlock) => {
                    self.waker.register(cx.waker());
                    match attempt(self.link) {
                        Err(Error::WouldBlock) => Poll::Pending,
                        other => Poll::Ready(other),
                    }
                }
                other => Poll::Ready(other),
            }
        })
        .await
    }
}
