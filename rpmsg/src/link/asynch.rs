//! The `async` face of the halves (feature `async`): futures woken from
//! the mailbox interrupt, no executor dependency, no allocator.
//!
//! ```ignore
//! static WAKERS: HalfWakers = HalfWakers::new();
//!
//! // In the mailbox interrupt handler:
//! let _ = notify_rx.take_pending();
//! WAKERS.wake();
//!
//! // The receive task and the transmit task (each owns its half):
//! let got = rx.recv(&WAKERS, &mut buf).await?;
//! tx.send(&WAKERS, &ep, got.src, &buf[..got.len]).await?;
//! ```
//!
//! Each half waits in its own slot of a [`HalfWakers`], so a task receiving
//! and one sending never take each other's slot. The futures try, register
//! the waker, try again, then return `Pending`: a doorbell between the
//! first try and the registration is never lost (the first try re-arms
//! the ring's notifications: [`Rx::try_recv`]'s `Ok(None)`, and a send
//! that finds no buffer asks the peer to ring when one comes back).
//!
//! The queue layer waits per endpoint ([`EndpointWakers`]): tasks sharing
//! one [`Endpoints`] lock it for one poll at a time
//! ([`Endpoints::poll_recv`] inside `poll_fn`), never across an `.await`;
//! a poll that queues messages for other endpoints wakes their tasks.

use core::cell::RefCell;
use core::future::poll_fn;
use core::task::{Context, Poll, Waker};

use critical_section::Mutex;

use ipc_traits::mailbox::Notify;

use crate::rings::Halves;
use crate::Error;

use super::queues::Endpoints;
use super::{Endpoint, HeldMessage, Received, Rx, Sent, Tx};

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

    /// Registers `waker`, replacing (and waking) a different one: a slot
    /// serves one task at a time, and the task it displaces must look
    /// again rather than wait for ever.
    pub fn register(&self, waker: &Waker) {
        let displaced = critical_section::with(|cs| {
            let mut slot = self.waker.borrow_ref_mut(cs);
            match slot.as_ref() {
                Some(w) if w.will_wake(waker) => None,
                _ => slot.replace(waker.clone()),
            }
        });
        // Woken outside the critical section: a waker may run executor code.
        if let Some(old) = displaced {
            old.wake();
        }
    }

    /// Wakes the registered task, if any, and empties the slot.
    pub fn wake(&self) {
        if let Some(w) = critical_section::with(|cs| self.waker.borrow_ref_mut(cs).take()) {
            w.wake();
        }
    }
}

/// The wakers of the two halves (`const`, for a `static`).
#[derive(Debug, Default)]
pub struct HalfWakers {
    rx: WakerSlot,
    tx: WakerSlot,
}

impl HalfWakers {
    /// No task waiting.
    pub const fn new() -> Self {
        Self {
            rx: WakerSlot::new(),
            tx: WakerSlot::new(),
        }
    }

    /// The peer rang: wakes the task waiting for a message and the one
    /// waiting for a transmit buffer (a doorbell does not say which). Call
    /// from the mailbox interrupt handler.
    pub fn wake(&self) {
        self.rx.wake();
        self.tx.wake();
    }
}

/// Try, register, try again (module docs).
fn poll_twice<T>(
    slot: &WakerSlot,
    cx: &mut Context<'_>,
    mut attempt: impl FnMut() -> Result<Option<T>, Error>,
) -> Poll<Result<T, Error>> {
    match attempt() {
        Ok(Some(v)) => return Poll::Ready(Ok(v)),
        Err(Error::WouldBlock) => {}
        Err(e) => return Poll::Ready(Err(e)),
        Ok(None) => {}
    }
    slot.register(cx.waker());
    match attempt() {
        Ok(Some(v)) => Poll::Ready(Ok(v)),
        // A whole ring's worth of undeliverable messages: not idle, look
        // again at once rather than wait for a doorbell that may not come.
        Err(Error::WouldBlock) => {
            cx.waker().wake_by_ref();
            Poll::Pending
        }
        Err(e) => Poll::Ready(Err(e)),
        Ok(None) => Poll::Pending,
    }
}

impl<'a, R: Halves<'a>, N: Notify> Rx<'_, 'a, R, N> {
    /// Waits for the next message for a bound address and copies it into
    /// `out` ([`Rx::try_recv`]).
    ///
    /// # Errors
    ///
    /// As [`Rx::try_recv`].
    pub async fn recv(&mut self, wakers: &HalfWakers, out: &mut [u8]) -> Result<Received, Error> {
        poll_fn(|cx| poll_twice(&wakers.rx, cx, || self.try_recv(out))).await
    }

    /// Waits for the next message and lends it ([`Rx::try_recv_held`]).
    ///
    /// # Errors
    ///
    /// As [`Rx::try_recv_held`].
    pub async fn recv_held(
        &mut self,
        wakers: &HalfWakers,
    ) -> Result<HeldMessage<'_, 'a, R, N>, Error> {
        // Wait until a message is there without taking it, then take it:
        // a lent message cannot be carried out of a `poll_fn` closure that
        // borrows `self` again on the next poll.
        poll_fn(|cx| {
            poll_twice(&wakers.rx, cx, || {
                self.peek_ready().map(|ready| ready.then_some(()))
            })
        })
        .await?;
        self.try_recv_held()?.ok_or(Error::WouldBlock)
    }

    /// Whether a message is ready to be taken (kept, or the ring has one);
    /// takes it off the ring into the kept slot if so.
    fn peek_ready(&mut self) -> Result<bool, Error> {
        if self.st.kept.is_some() {
            return Ok(true);
        }
        let mut p = self.pass();
        match p.next()? {
            None => Ok(false),
            Some(m) => {
                p.st.kept = Some(m);
                Ok(true)
            }
        }
    }
}

impl<'a, R: Halves<'a>, N: Notify> Tx<'_, 'a, R, N> {
    /// Sends `data` from `src` to `dst`, waiting for a transmit buffer
    /// ([`Tx::try_send`]).
    ///
    /// # Errors
    ///
    /// As [`Tx::try_send`].
    pub async fn send(
        &mut self,
        wakers: &HalfWakers,
        src: &Endpoint,
        dst: u32,
        data: &[u8],
    ) -> Result<(), Error> {
        poll_fn(|cx| {
            poll_twice(&wakers.tx, cx, || {
                Ok(match self.try_send(src, dst, data)? {
                    Sent::Sent => Some(()),
                    Sent::NoBuffer => None,
                })
            })
        })
        .await
    }
}

/// Per-endpoint wakers of the queue layer: `EPS` endpoints, by storage
/// slot (`const`, for a `static`).
#[derive(Debug)]
pub struct EndpointWakers<const EPS: usize> {
    rx: [WakerSlot; EPS],
}

impl<const EPS: usize> Default for EndpointWakers<EPS> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const EPS: usize> EndpointWakers<EPS> {
    /// No task waiting.
    pub const fn new() -> Self {
        Self {
            rx: [const { WakerSlot::new() }; EPS],
        }
    }

    /// The peer rang: wakes every endpoint's task (each looks once, and
    /// waits again if nothing is there for it).
    pub fn wake(&self) {
        for slot in &self.rx {
            slot.wake();
        }
    }
}

impl<'a, R: Halves<'a>, N: Notify> Endpoints<'_, 'a, R, N> {
    /// One poll of a receive for `ep` ([`Endpoints::try_recv`]): for tasks
    /// that share the layer under a lock held for this call only, inside
    /// `poll_fn`. Wakes the tasks of other endpoints this poll queued
    /// messages for, and every other task when this poll ended a stall
    /// (messages for them may wait in the ring, announced by no further
    /// doorbell).
    ///
    /// # Errors
    ///
    /// As [`Endpoints::try_recv`].
    pub fn poll_recv<const EPS: usize>(
        &mut self,
        wakers: &EndpointWakers<EPS>,
        ep: &Endpoint,
        out: &mut [u8],
        cx: &mut Context<'_>,
    ) -> Poll<Result<Received, Error>> {
        let Some(slot) = self.slot(ep).and_then(|k| wakers.rx.get(k)) else {
            return Poll::Ready(Err(Error::NoSuchEndpoint));
        };
        let queued = self.stats().queued;
        let stalled = self.is_stalled();
        let res = poll_twice(slot, cx, || self.try_recv(ep, out));
        // Reception resumed after a stall: the ring may hold messages for
        // any endpoint, and no doorbell announces them again (they came
        // while reception was stopped): every other task looks once.
        let resumed = stalled && !self.is_stalled();
        if self.stats().queued != queued || resumed {
            for (k, other) in wakers.rx.iter().enumerate() {
                if Some(k) != self.slot(ep) && (resumed || self.queued_at(k) > 0) {
                    other.wake();
                }
            }
        }
        res
    }

    /// Waits for a message for `ep` and copies it into `out`, for a task
    /// that owns the layer (tasks sharing it use
    /// [`Endpoints::poll_recv`]).
    ///
    /// # Errors
    ///
    /// As [`Endpoints::try_recv`].
    pub async fn recv<const EPS: usize>(
        &mut self,
        wakers: &EndpointWakers<EPS>,
        ep: &Endpoint,
        out: &mut [u8],
    ) -> Result<Received, Error> {
        poll_fn(|cx| self.poll_recv(wakers, ep, out, cx)).await
    }
}
