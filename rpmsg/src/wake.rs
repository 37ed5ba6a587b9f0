//! Waking the peer before ringing its doorbell, and acknowledging such
//! wakes on the receiving side.
//!
//! A core in a deep stop mode may be woken by fewer interrupts than a core
//! in WFI. On the i.MX8M a Cortex-M in STOP wakes only on interrupts its GPC
//! routes as wake sources (shared/docs/hw/cache-and-wake.md §7.1, GPC part
//! UNVERIFIED), so a link that relies on the doorbell itself may ring a
//! core that does not wake up. [`WakeNotify`] puts the backend's wake
//! mechanism in front of every doorbell:
//!
//! 1. raise a wake request ([`WakePeer::request_wake`], the MU's `CR.GIRn`);
//! 2. poll until the peer reports awake within a budget
//!    ([`Peer::<Asleep, W>::wake`](Peer::wake), the MU's `SR.PM` = Run);
//! 3. ring the inner doorbell *holding the [`Peer<Awake, W>`] witness*
//!    ([`NotifyAwake::notify_awake`] takes it as an argument);
//! 4. release the witness back to [`Asleep`].
//!
//! A peer that does not wake within the budget makes the doorbell fail with
//! a `WouldBlock`-kind error: [`crate::link::Link`] keeps the doorbell
//! owed ([`crate::link::Tx::owes_doorbell`]) and rings it with the next
//! doorbell of either half or [`crate::link::Tx::flush`], so nothing is
//! lost ([`WakeStats::wake_timeouts`] counts these).
//!
//! # The receiving side: [`WakeAck`]
//!
//! A peer that read "awake" may not fall asleep again before the doorbell
//! lands. The handshake that closes that window:
//!
//! - The receiving core never enters its stop mode while a wake request is
//!   pending ([`WakeAck::must_stay_awake`]; on hardware a pending enabled
//!   interrupt keeps `WFI` from sleeping). Its sleep entry announces the
//!   stop mode first and checks for requests and doorbells after, so a
//!   sender that read "awake" always finds the request seen.
//! - It acknowledges a request (the MU's `SR.GIPn`, write-1-to-clear) only
//!   after it has taken a doorbell since its previous acknowledgement
//!   ([`WakeAck::on_take`]), so the request keeps it awake until the
//!   doorbell announced by that wake has landed.
//! - The sender raises a new request only after the previous one was
//!   acknowledged: [`WakeNotify`] refuses with `WouldBlock`
//!   ([`WakeStats::unacknowledged`]) while a request whose doorbell it
//!   already rang is still pending. A request whose wake timed out (no
//!   doorbell rung yet) is waited on again instead of raised twice.
//!
//! So at most one wake is outstanding per direction, every doorbell taken
//! after an acknowledgement belongs to the next request, and every doorbell
//! lands on a core that is awake. What keeps the core awake *after* that is
//! its own [`ipc_traits::power::WakeLock`]: the split link
//! ([`crate::split::SplitRings`]) holds a guard while it holds received
//! buffers (queued, lent or stalled messages) and during a receive pass.
//! A peer that never acknowledges stops this side's doorbells (each one
//! `WouldBlock`); a receiving core that gives up waiting for a doorbell can
//! [`WakeAck::force_acknowledge`] (counted).
//!
//! # Backends without a wake interrupt
//!
//! The AM62x, V853 and OCTEON mailboxes have no general-purpose wake
//! interrupt; there the doorbell *is* the wake and a plain
//! [`Notify`] is used without this adapter:
//!
//! - **TI AM62x**: the mailbox `NEWMSG` interrupt brings the core out of
//!   WFI. Deeper suspend is a host-driven handshake over the mailbox
//!   (`RP_MBOX_SUSPEND_AUTO`/`_SYSTEM`, answered `_ACK`/`_CANCEL`), and the
//!   host's omap-mailbox refuses system suspend while a queue holds messages
//!   on some kernels (cache-and-wake.md §7.2); a core in such a mode is not
//!   rung until it resumed.
//! - **Allwinner V853**: the msgbox read interrupt brings the core out of
//!   WFI; the standby flow is coordinated on its own channel and the driver
//!   re-runs channel start-up on resume (§7.3, protocol UNVERIFIED).
//! - **OCTEON**: a mailbox write raises CIU IP2 and wakes a core from
//!   `WAIT`; there is no power-state handshake and memory is always
//!   coherent and reachable (§7.4, inferred).
//!
//! # Examples
//!
//! ```
//! use ipc_traits::mailbox::{ErrorKind, ErrorType, Notify, QueueId, Spins};
//! use ipc_traits::power::WakePeer;
//! use rpmsg::wake::WakeNotify;
//!
//! /// A doorbell that counts rings.
//! struct Bell(u32);
//! impl ErrorType for Bell {
//!     type Error = ErrorKind;
//! }
//! impl Notify for Bell {
//!     fn notify(&mut self, _: QueueId) -> Result<(), ErrorKind> {
//!         self.0 += 1;
//!         Ok(())
//!     }
//! }
//!
//! /// A peer that reports awake once asked (and acknowledges at once).
//! struct Gp(bool);
//! impl ErrorType for Gp {
//!     type Error = ErrorKind;
//! }
//! impl WakePeer for Gp {
//!     fn request_wake(&mut self) -> Result<(), ErrorKind> {
//!         self.0 = true;
//!         Ok(())
//!     }
//!     fn peer_awake(&mut self) -> Result<bool, ErrorKind> {
//!         Ok(self.0)
//!     }
//! }
//!
//! let mut bell = WakeNotify::new(Bell(0), Gp(false), Spins::new(100));
//! let q = QueueId::new(0).unwrap();
//! bell.notify(q).unwrap();
//! assert_eq!(bell.inner().0, 1);
//! assert_eq!((bell.stats().wakes, bell.stats().doorbells), (1, 1));
//! ```
#![deny(unsafe_code)]

use core::fmt;

use ipc_traits::mailbox::{Budget, Error, ErrorKind, ErrorType, Notify, QueueId};
use ipc_traits::power::{Asleep, Awake, Peer, WakeError, WakePeer};

/// A doorbell that may be rung only while the peer is known to be awake:
/// the [`Peer<Awake, C>`] witness is an argument, so the order "wake, then
/// ring" shows in the types.
pub trait NotifyAwake: ErrorType {
    /// Rings the doorbell for `queue`; `peer` proves the peer was woken.
    ///
    /// # Errors
    ///
    /// As [`Notify::notify`].
    fn notify_awake<C: WakePeer>(
        &mut self,
        peer: &Peer<Awake, C>,
        queue: QueueId,
    ) -> Result<(), Self::Error>;
}

impl<N: Notify + ?Sized> NotifyAwake for N {
    fn notify_awake<C: WakePeer>(
        &mut self,
        _peer: &Peer<Awake, C>,
        queue: QueueId,
    ) -> Result<(), Self::Error> {
        self.notify(queue)
    }
}

/// The receiving side of a wake channel: the peer's pending wake request
/// (for the i.MX8 MU, this side's `SR.GIPn`).
pub trait WakeRequests {
    /// Whether the peer's wake request is pending.
    fn is_requested(&mut self) -> bool;

    /// Clears a pending request (acknowledges it); `true` if one was
    /// pending.
    fn acknowledge(&mut self) -> bool;
}

impl<T: WakeRequests + ?Sized> WakeRequests for &mut T {
    fn is_requested(&mut self) -> bool {
        T::is_requested(self)
    }
    fn acknowledge(&mut self) -> bool {
        T::acknowledge(self)
    }
}

/// `SR.GIPn` is the peer's request; acknowledging is its write-1-to-clear
/// (shared/docs/hw/imx8-mu.md §2.3), which also clears the peer's
/// `CR.GIRn` (§2.2).
#[cfg(feature = "imx8")]
#[cfg_attr(docsrs, doc(cfg(feature = "imx8")))]
impl<R: ipc_traits::regs::Regs32, const N: u8> WakeRequests for mu_imx8::Gp<R, N> {
    fn is_requested(&mut self) -> bool {
        self.is_pending()
    }
    fn acknowledge(&mut self) -> bool {
        self.take()
    }
}

/// Counters of a [`WakeNotify`] (wrapping; statistics, not state).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WakeStats {
    /// Wake requests raised.
    pub wakes: u32,
    /// Wakes that found the peer awake within the budget.
    pub woken: u32,
    /// Wakes that ran out of budget (the doorbell stays pending).
    pub wake_timeouts: u32,
    /// Doorbells refused because the peer had not acknowledged the previous
    /// wake yet (the doorbell stays pending).
    pub unacknowledged: u32,
    /// Doorbells rung (each while holding the awake witness).
    pub doorbells: u32,
    /// Errors of the wake channel or the inner doorbell.
    pub errors: u32,
}

/// Why a [`WakeNotify`] doorbell was not rung. Nothing is lost: the link
/// keeps the kick pending and retries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WakeNotifyError<N, W> {
    /// Waking the peer failed ([`WakeError::Timeout`] is `WouldBlock`).
    Wake(WakeError<W>),
    /// The peer has not acknowledged the previous wake yet (`WouldBlock`).
    Unacknowledged,
    /// The inner doorbell failed (its own kind).
    Doorbell(N),
}

impl<N: Error, W: Error> Error for WakeNotifyError<N, W> {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Wake(e) => e.kind(),
            Self::Unacknowledged => ErrorKind::WouldBlock,
            Self::Doorbell(e) => e.kind(),
        }
    }
}

impl<N: fmt::Debug, W: fmt::Debug> fmt::Display for WakeNotifyError<N, W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Wake(e) => write!(f, "waking the peer: {e}"),
            Self::Unacknowledged => f.write_str("the peer has not acknowledged the last wake"),
            Self::Doorbell(e) => write!(f, "doorbell: {e:?}"),
        }
    }
}

/// A [`Notify`] that wakes the peer through `W` before every doorbell of
/// the inner `N` (see the [module docs](self) for the handshake).
///
/// `budget` is cloned for each wake: with [`ipc_traits::mailbox::Spins`]`(n)`
/// the peer's state is polled at most `n + 1` times per doorbell.
pub struct WakeNotify<N, W, B> {
    inner: N,
    waker: W,
    budget: B,
    /// A request was raised and its doorbell not rung yet.
    owed: bool,
    stats: WakeStats,
}

impl<N, W, B> fmt::Debug for WakeNotify<N, W, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WakeNotify")
            .field("owed", &self.owed)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl<N, W, B> WakeNotify<N, W, B> {
    /// Rings `inner` after waking the peer through `waker` within `budget`.
    pub const fn new(inner: N, waker: W, budget: B) -> Self {
        Self {
            inner,
            waker,
            budget,
            owed: false,
            stats: WakeStats {
                wakes: 0,
                woken: 0,
                wake_timeouts: 0,
                unacknowledged: 0,
                doorbells: 0,
                errors: 0,
            },
        }
    }

    /// The counters.
    pub const fn stats(&self) -> WakeStats {
        self.stats
    }

    /// Whether a wake was requested whose doorbell is still to be rung (the
    /// peer is kept awake for it until then).
    pub const fn owes_doorbell(&self) -> bool {
        self.owed
    }

    /// The inner doorbell.
    pub const fn inner(&self) -> &N {
        &self.inner
    }

    /// Gives the doorbell and the wake channel back.
    pub fn into_parts(self) -> (N, W) {
        (self.inner, self.waker)
    }
}

impl<N: ErrorType, W: WakePeer, B> ErrorType for WakeNotify<N, W, B> {
    type Error = WakeNotifyError<N::Error, W::Error>;
}

impl<N: Notify, W: WakePeer, B: Budget + Clone> Notify for WakeNotify<N, W, B> {
    /// Wakes the peer, rings `queue` holding the awake witness, releases it.
    ///
    /// # Errors
    ///
    /// `WouldBlock`-kind when the peer did not wake within the budget or has
    /// not acknowledged the previous wake, or the inner doorbell is full; the
    /// channel's or doorbell's other errors as they are.
    fn notify(&mut self, queue: QueueId) -> Result<(), Self::Error> {
        if !self.owed {
            match self.waker.request_wake() {
                Ok(()) => {
                    self.owed = true;
                    self.stats.wakes = self.stats.wakes.wrapping_add(1);
                }
                // Our previous request is still pending: the peer has not
                // taken the doorbell rung after it yet.
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    self.stats.unacknowledged = self.stats.unacknowledged.wrapping_add(1);
                    return Err(WakeNotifyError::Unacknowledged);
                }
                Err(e) => {
                    self.stats.errors = self.stats.errors.wrapping_add(1);
                    return Err(WakeNotifyError::Wake(WakeError::Channel(e)));
                }
            }
        }
        // The request raised above (or by an earlier call that timed out) is
        // pending, so `wake` finds it requested and only polls.
        let asleep: Peer<Asleep, &mut W> = Peer::new(&mut self.waker);
        let awake = match asleep.wake(self.budget.clone()) {
            Ok(awake) => awake,
            Err((_asleep, e)) => {
                if matches!(e, WakeError::Timeout) {
                    self.stats.wake_timeouts = self.stats.wake_timeouts.wrapping_add(1);
                } else {
                    self.stats.errors = self.stats.errors.wrapping_add(1);
                }
                return Err(WakeNotifyError::Wake(e));
            }
        };
        self.stats.woken = self.stats.woken.wrapping_add(1);
        let rung = self.inner.notify_awake(&awake, queue);
        let _asleep = awake.release();
        match rung {
            Ok(()) => {
                self.owed = false;
                self.stats.doorbells = self.stats.doorbells.wrapping_add(1);
                Ok(())
            }
            Err(e) => {
                if e.kind() != ErrorKind::WouldBlock {
                    self.stats.errors = self.stats.errors.wrapping_add(1);
                }
                Err(WakeNotifyError::Doorbell(e))
            }
        }
    }
}

/// Counters of a [`WakeAck`] (wrapping).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AckStats {
    /// Wake requests acknowledged after their doorbell was taken.
    pub acknowledged: u32,
    /// Requests acknowledged by [`WakeAck::force_acknowledge`].
    pub forced: u32,
}

/// The receiving side's acknowledgement of wake requests, for the idle
/// loop (see the [module docs](self)).
///
/// Per idle-loop step while awake: take the doorbells, hand them to the
/// link, then call [`on_take`](Self::on_take). Before entering the stop
/// mode: announce it (for the MU, the core's power mode as the peer reads
/// it in `SR.PM`), then check [`must_stay_awake`](Self::must_stay_awake)
/// and the doorbells, and return to run if either is pending. While in the
/// stop mode, a pending request is the wake source.
///
/// # Examples
///
/// ```
/// use rpmsg::wake::{WakeAck, WakeRequests};
///
/// struct Gip(bool);
/// impl WakeRequests for Gip {
///     fn is_requested(&mut self) -> bool {
///         self.0
///     }
///     fn acknowledge(&mut self) -> bool {
///         core::mem::replace(&mut self.0, false)
///     }
/// }
///
/// let mut ack = WakeAck::new(Gip(true));
/// assert!(ack.must_stay_awake());
/// assert!(!ack.on_take(false)); // woken, the doorbell is not there yet
/// assert!(ack.must_stay_awake());
/// assert!(ack.on_take(true)); // the doorbell came: acknowledged
/// assert!(!ack.must_stay_awake());
/// assert_eq!(ack.stats().acknowledged, 1);
/// ```
#[derive(Debug)]
pub struct WakeAck<G> {
    requests: G,
    /// A doorbell was taken since the last acknowledgement.
    taken: bool,
    stats: AckStats,
}

impl<G: WakeRequests> WakeAck<G> {
    /// Acknowledges the requests of `requests`.
    pub const fn new(requests: G) -> Self {
        Self {
            requests,
            taken: false,
            stats: AckStats {
                acknowledged: 0,
                forced: 0,
            },
        }
    }

    /// Call after each doorbell take (`took`: it returned something).
    /// Acknowledges a pending request once a doorbell was taken since the
    /// last acknowledgement; returns whether it acknowledged.
    pub fn on_take(&mut self, took: bool) -> bool {
        self.taken |= took;
        if self.taken && self.requests.is_requested() && self.requests.acknowledge() {
            self.taken = false;
            self.stats.acknowledged = self.stats.acknowledged.wrapping_add(1);
            return true;
        }
        false
    }

    /// Whether a wake request is pending: the core must not enter (or must
    /// leave) its stop mode.
    pub fn must_stay_awake(&mut self) -> bool {
        self.requests.is_requested()
    }

    /// Acknowledges a pending request without its doorbell (the sender gave
    /// up on it, by this core's own bound); counted in [`AckStats::forced`].
    /// A doorbell the sender still rings for it may then reach this core
    /// asleep.
    pub fn force_acknowledge(&mut self) -> bool {
        let cleared = self.requests.acknowledge();
        if cleared {
            self.taken = false;
            self.stats.forced = self.stats.forced.wrapping_add(1);
        }
        cleared
    }

    /// The counters.
    pub const fn stats(&self) -> AckStats {
        self.stats
    }

    /// Gives the request channel back.
    pub fn into_inner(self) -> G {
        self.requests
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipc_traits::mailbox::Spins;

    #[derive(Debug, Default)]
    struct Bell {
        rung: u32,
        full: bool,
    }
    impl ErrorType for Bell {
        type Error = ErrorKind;
    }
    impl Notify for Bell {
        fn notify(&mut self, _: QueueId) -> Result<(), ErrorKind> {
            if self.full {
                return Err(ErrorKind::WouldBlock);
            }
            self.rung += 1;
            Ok(())
        }
    }

    /// A peer that reports awake `k` polls after a request, refuses a new
    /// request while one is pending, and acknowledges by `ack()`.
    #[derive(Debug)]
    struct FakeGp {
        k: Option<u32>,
        pending: bool,
        polls_since: u32,
        requests: u32,
        polls: u32,
    }
    impl FakeGp {
        fn waking_after(k: Option<u32>) -> Self {
            Self {
                k,
                pending: false,
                polls_since: 0,
                requests: 0,
                polls: 0,
            }
        }
        fn ack(&mut self) {
            self.pending = false;
        }
    }
    impl ErrorType for FakeGp {
        type Error = ErrorKind;
    }
    impl WakePeer for FakeGp {
        fn request_wake(&mut self) -> Result<(), ErrorKind> {
            if self.pending {
                return Err(ErrorKind::WouldBlock);
            }
            self.pending = true;
            self.polls_since = 0;
            self.requests += 1;
            Ok(())
        }
        fn peer_awake(&mut self) -> Result<bool, ErrorKind> {
            self.polls += 1;
            self.polls_since += 1;
            Ok(self.k.is_some_and(|k| self.polls_since > k))
        }
    }

    fn q0() -> QueueId {
        QueueId::new(0).unwrap()
    }

    #[test]
    fn wakes_then_rings_once_per_acknowledged_wake() {
        let mut n = WakeNotify::new(
            Bell::default(),
            FakeGp::waking_after(Some(3)),
            Spins::new(5),
        );
        n.notify(q0()).unwrap();
        let s = n.stats();
        assert_eq!(
            (s.wakes, s.woken, s.doorbells, s.wake_timeouts),
            (1, 1, 1, 0)
        );
        assert_eq!(n.inner().rung, 1);
        assert!(!n.owes_doorbell());
        // The peer has not acknowledged yet: no second request, no ring.
        let e = n.notify(q0()).unwrap_err();
        assert_eq!(e, WakeNotifyError::Unacknowledged);
        assert_eq!(e.kind(), ErrorKind::WouldBlock);
        assert_eq!((n.stats().unacknowledged, n.inner().rung), (1, 1));
        // Acknowledged: the next doorbell wakes again.
        n.waker.ack();
        n.notify(q0()).unwrap();
        let (bell, gp) = n.into_parts();
        assert_eq!((bell.rung, gp.requests, gp.polls), (2, 2, 8));
    }

    #[test]
    fn a_peer_that_never_wakes_is_would_block_and_counted_and_the_kick_waits() {
        let mut n = WakeNotify::new(Bell::default(), FakeGp::waking_after(None), Spins::new(4));
        for round in 1..=3 {
            let e = n.notify(q0()).unwrap_err();
            assert_eq!(e, WakeNotifyError::Wake(WakeError::Timeout));
            assert_eq!(e.kind(), ErrorKind::WouldBlock);
            assert_eq!(n.stats().wake_timeouts, round);
            assert!(n.owes_doorbell());
        }
        // One request raised, waited on three times, never rung.
        assert_eq!(
            (n.stats().wakes, n.waker.requests, n.inner().rung),
            (1, 1, 0)
        );
        assert_eq!(n.waker.polls, 15);
        // The peer wakes at last: the pending kick is delivered, still
        // without a second request.
        n.waker.k = Some(0);
        n.notify(q0()).unwrap();
        assert_eq!((n.waker.requests, n.inner().rung), (1, 1));
        assert!(!n.owes_doorbell());
    }

    #[test]
    fn a_full_doorbell_keeps_the_wake_owed() {
        let bell = Bell {
            rung: 0,
            full: true,
        };
        let mut n = WakeNotify::new(bell, FakeGp::waking_after(Some(0)), Spins::new(1));
        let e = n.notify(q0()).unwrap_err();
        assert_eq!(e, WakeNotifyError::Doorbell(ErrorKind::WouldBlock));
        assert!(n.owes_doorbell());
        n.inner.full = false;
        n.notify(q0()).unwrap();
        assert_eq!(
            (n.waker.requests, n.inner().rung, n.stats().errors),
            (1, 1, 0)
        );
    }

    /// Through a split link: a kick refused because the peer did not wake
    /// stays pending (counted by the link as deferred) and is delivered by
    /// a later operation once the peer wakes.
    #[test]
    #[allow(
        unsafe_code,
        clippy::unwrap_used,
        reason = "test set-up over leaked memory"
    )]
    fn link_keeps_the_kick_until_the_peer_wakes() {
        use std::cell::Cell;
        use std::ptr::NonNull;
        use std::rc::Rc;

        use ipc_traits::cache::Coherent;
        use ipc_traits::mailbox::QueueSet;
        use ipc_traits::shm::RawRegion;
        use vring::Legacy;

        use crate::link::{Link, Sent, Storage};
        use crate::split::{Region, Side, SplitConfig, SplitLayout, SplitRings};

        const LAYOUT: SplitLayout = SplitLayout::checked(
            Region::packed(0, 4, 512, 64),
            Region::packed(0x2000, 4, 512, 64),
            64,
        );
        #[repr(align(4096))]
        struct Backing([u8; 0x4000]);

        /// Doorbell bits shared with the peer.
        #[derive(Clone, Default)]
        struct Bits(Rc<Cell<u32>>);
        impl ErrorType for Bits {
            type Error = ErrorKind;
        }
        impl Notify for Bits {
            fn notify(&mut self, q: QueueId) -> Result<(), ErrorKind> {
                self.0.set(self.0.get() | 1 << q.index());
                Ok(())
            }
        }
        /// A peer whose power state the test sets.
        struct Sleepy(Rc<Cell<bool>>);
        impl ErrorType for Sleepy {
            type Error = ErrorKind;
        }
        impl WakePeer for Sleepy {
            fn request_wake(&mut self) -> Result<(), ErrorKind> {
                Ok(())
            }
            fn peer_awake(&mut self) -> Result<bool, ErrorKind> {
                Ok(self.0.get())
            }
        }

        let backing: &'static mut Backing = Box::leak(Box::new(Backing([0; 0x4000])));
        let base = NonNull::new(backing.0.as_mut_ptr()).unwrap();
        // SAFETY: leaked, so it lives for the whole test; only these two
        // links use it.
        let mem = unsafe { RawRegion::new(base, 0x4000, 0x4000_0000, Coherent) }.unwrap();
        let (to_a, to_b) = (Bits::default(), Bits::default());
        let awake = Rc::new(Cell::new(false));
        let (tablesa, tablesb) = (vring::DeviceTables::new(), vring::DeviceTables::new());
        // SAFETY: each link owns its pool; the peer's is reached through the
        // ring only.
        let ra = unsafe {
            SplitRings::<_, Legacy, 4>::new(&mem, SplitConfig::new(LAYOUT, Side::A), &tablesa)
        }
        .unwrap();
        // SAFETY: as above.
        let rb = unsafe {
            SplitRings::<_, Legacy, 4>::new(&mem, SplitConfig::new(LAYOUT, Side::B), &tablesb)
        }
        .unwrap();
        let bell = WakeNotify::new(to_b.clone(), Sleepy(awake.clone()), Spins::new(3));
        let (mut sa, mut sb) = (Storage::<1>::new(), Storage::<1>::new());
        let mut a = Link::new(ra, bell, &mut sa);
        let mut b = Link::new(rb, to_a, &mut sb);
        let ea = a.bind(30).unwrap();
        b.bind(40).unwrap();
        let (mut atx, _arx) = a.split();
        let (mut btx, mut brx) = b.split();

        assert_eq!(atx.try_send(&ea, 40, b"hello").unwrap(), Sent::Sent);
        assert_eq!(to_b.0.get(), 0, "not rung while the peer sleeps");
        let deferred = atx.stats().doorbells_deferred;
        assert!(deferred >= 1);
        assert!(atx.owes_doorbell(), "an idle loop must not sleep now");
        atx.flush();
        assert!(atx.stats().doorbells_deferred > deferred, "retried");
        assert_eq!((to_b.0.get(), atx.stats().doorbells), (0, 0));

        awake.set(true);
        atx.flush();
        assert_ne!(to_b.0.get(), 0, "the pending kick is rung");
        assert_eq!(atx.stats().doorbells, 1);
        assert!(!atx.owes_doorbell());
        let rung = QueueSet::from_bits(to_b.0.replace(0));
        brx.on_notify(rung);
        btx.on_notify(rung).unwrap();
        let mut out = [0u8; 8];
        let r = brx.try_recv(&mut out).unwrap().unwrap();
        assert_eq!(&out[..r.len], b"hello");
    }

    #[derive(Debug, Default)]
    struct Gip {
        pending: bool,
        cleared: u32,
    }
    impl WakeRequests for Gip {
        fn is_requested(&mut self) -> bool {
            self.pending
        }
        fn acknowledge(&mut self) -> bool {
            let was = self.pending;
            self.pending = false;
            self.cleared += u32::from(was);
            was
        }
    }

    #[test]
    fn ack_waits_for_a_doorbell_and_pairs_one_per_request() {
        let mut ack = WakeAck::new(Gip::default());
        // A doorbell with no request pending: remembered, nothing cleared.
        assert!(!ack.on_take(true));
        assert!(!ack.must_stay_awake());
        // The next request is acknowledged at the next step (its doorbell
        // was taken already).
        ack.requests.pending = true;
        assert!(ack.on_take(false));
        // A request whose doorbell has not come: stays pending, keeps the
        // core awake, however many empty steps pass.
        ack.requests.pending = true;
        for _ in 0..10 {
            assert!(!ack.on_take(false));
            assert!(ack.must_stay_awake());
        }
        assert!(ack.on_take(true));
        assert!(!ack.must_stay_awake());
        // Forced acknowledgement is counted separately.
        ack.requests.pending = true;
        assert!(ack.force_acknowledge());
        assert!(!ack.force_acknowledge());
        assert_eq!(
            ack.stats(),
            AckStats {
                acknowledged: 2,
                forced: 1
            }
        );
        assert_eq!(ack.into_inner().cleared, 3);
    }
}
