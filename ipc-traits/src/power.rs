//! Wake locks and the peer's power state.
//!
//! Either core may sleep on its own (shared/docs/hw/cache-and-wake.md §7).
//! A core must not enter deep sleep while the peer may still read memory it
//! owns, and must wake the peer before depending on it.
//!
//! - [`WakeLock`] is a counted lock usable in a `static`; [`WakeLock::hold`]
//!   returns a [`WakeGuard`] (RAII, `#[must_use]`, not `Clone`), and the idle
//!   loop asks [`WakeLock::deep_sleep_allowed`].
//! - [`Peer<Asleep, W>`] becomes [`Peer<Awake, W>`] only through
//!   [`Peer::wake`]; operations that need the peer awake take
//!   `&Peer<Awake, W>` as a witness argument.
//!
//! # Examples
//!
//! ```
//! use ipc_traits::power::WakeLock;
//!
//! static TX_WAKE: WakeLock = WakeLock::new();
//!
//! let guard = TX_WAKE.hold();          // a buffer is in flight
//! assert!(!TX_WAKE.deep_sleep_allowed());
//! drop(guard);                          // the peer returned it
//! assert!(TX_WAKE.deep_sleep_allowed());
//! ```
#![deny(unsafe_code)]

use core::fmt;
use core::marker::PhantomData;
use core::sync::atomic::{AtomicU32, Ordering};

use crate::mailbox::{Budget, Error, ErrorKind, ErrorType};
use crate::sealed::Sealed;

/// A counted wake lock: deep sleep is allowed while no guard is held.
#[derive(Debug, Default)]
pub struct WakeLock {
    holders: AtomicU32,
}

impl WakeLock {
    /// A lock with no holders (`const`, for `static`s).
    pub const fn new() -> Self {
        Self {
            holders: AtomicU32::new(0),
        }
    }

    /// Holds the lock until the guard is dropped.
    pub fn hold(&self) -> WakeGuard<'_> {
        self.holders.fetch_add(1, Ordering::AcqRel);
        WakeGuard { lock: self }
    }

    /// Whether no guard is held (the idle loop may enter deep sleep).
    pub fn deep_sleep_allowed(&self) -> bool {
        self.holders.load(Ordering::Acquire) == 0
    }

    /// The number of guards held now.
    pub fn holders(&self) -> u32 {
        self.holders.load(Ordering::Acquire)
    }
}

/// Keeps a [`WakeLock`] held; releases it on drop.
///
/// Not `Clone`: each guard stands for one reason to stay awake.
#[must_use = "dropping the guard releases the wake lock at once"]
#[derive(Debug)]
pub struct WakeGuard<'a> {
    lock: &'a WakeLock,
}

impl WakeGuard<'_> {
    /// The lock this guard holds.
    pub fn lock(&self) -> &WakeLock {
        self.lock
    }
}

impl Drop for WakeGuard<'_> {
    fn drop(&mut self) {
        self.lock.holders.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A guard that may or may not be held (idempotent `enable`/`disable`).
#[derive(Debug)]
pub struct MaybeWakeGuard<'a> {
    lock: &'a WakeLock,
    guard: Option<WakeGuard<'a>>,
}

impl<'a> MaybeWakeGuard<'a> {
    /// Not holding `lock` yet.
    pub const fn new(lock: &'a WakeLock) -> Self {
        Self { lock, guard: None }
    }

    /// Holds the lock (no effect if already held).
    pub fn enable(&mut self) {
        if self.guard.is_none() {
            self.guard = Some(self.lock.hold());
        }
    }

    /// Releases the lock (no effect if not held).
    pub fn disable(&mut self) {
        self.guard = None;
    }

    /// Whether the lock is held by this value.
    pub fn is_enabled(&self) -> bool {
        self.guard.is_some()
    }
}

/// The peer's power state (sealed).
pub trait PowerState: Sealed {}

/// The peer may be asleep: memory it owns must not be relied on (type state).
#[derive(Debug)]
pub struct Asleep {
    _private: (),
}
/// The peer was woken and confirmed awake (type state).
#[derive(Debug)]
pub struct Awake {
    _private: (),
}
impl Sealed for Asleep {}
impl Sealed for Awake {}
impl PowerState for Asleep {}
impl PowerState for Awake {}

/// The channel that wakes the peer and tells whether it is awake (for
/// example the MU general-purpose interrupt plus `SR.PM`).
pub trait WakePeer: ErrorType {
    /// Asks the peer to wake (raises its wake interrupt).
    ///
    /// # Errors
    ///
    /// `WouldBlock` if the request cannot be raised now (a previous one is
    /// still pending).
    fn request_wake(&mut self) -> Result<(), Self::Error>;

    /// Whether the peer reports being awake.
    ///
    /// # Errors
    ///
    /// `Protocol` if the peer's state reads as something it cannot be.
    fn peer_awake(&mut self) -> Result<bool, Self::Error>;
}

impl<T: WakePeer + ?Sized> WakePeer for &mut T {
    fn request_wake(&mut self) -> Result<(), Self::Error> {
        T::request_wake(self)
    }
    fn peer_awake(&mut self) -> Result<bool, Self::Error> {
        T::peer_awake(self)
    }
}

/// Why waking the peer failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WakeError<E> {
    /// The wake channel failed.
    Channel(E),
    /// The peer did not report awake within the budget.
    Timeout,
}

impl<E: Error> Error for WakeError<E> {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Channel(e) => e.kind(),
            Self::Timeout => ErrorKind::WouldBlock,
        }
    }
}

impl<E: fmt::Debug> fmt::Display for WakeError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Channel(e) => write!(f, "wake channel error: {e:?}"),
            Self::Timeout => f.write_str("peer did not wake within the budget"),
        }
    }
}

/// The outcome of [`Peer::wake`]: the awake peer, or the asleep one and why.
pub type WakeResult<W> =
    Result<Peer<Awake, W>, (Peer<Asleep, W>, WakeError<<W as ErrorType>::Error>)>;

/// The peer core, in power state `S`, reached through wake channel `W`.
#[derive(Debug)]
pub struct Peer<S: PowerState, W> {
    channel: W,
    _state: PhantomData<S>,
}

impl<W: WakePeer> Peer<Asleep, W> {
    /// A peer that may be asleep.
    pub const fn new(channel: W) -> Self {
        Self {
            channel,
            _state: PhantomData,
        }
    }

    /// Wakes the peer: requests a wake (a request still pending from an
    /// earlier call counts as requested), then polls until it reports awake
    /// or `budget` runs out.
    ///
    /// # Errors
    ///
    /// [`WakeError::Timeout`] or the channel's error, with the still-asleep
    /// peer handed back.
    pub fn wake(mut self, mut budget: impl Budget) -> WakeResult<W> {
        match self.channel.request_wake() {
            Ok(()) => {}
            // A request is still pending (the peer has not acknowledged the
            // previous one yet): keep waiting for it instead of failing.
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => return Err((self, WakeError::Channel(e))),
        }
        loop {
            match self.channel.peer_awake() {
                Ok(true) => {
                    return Ok(Peer {
                        channel: self.channel,
                        _state: PhantomData,
                    })
                }
                Ok(false) if budget.next() => {}
                Ok(false) => return Err((self, WakeError::Timeout)),
                Err(e) => return Err((self, WakeError::Channel(e))),
            }
        }
    }

    /// Gives the channel back.
    pub fn into_inner(self) -> W {
        self.channel
    }
}

impl<W: WakePeer> Peer<Awake, W> {
    /// Stops relying on the peer being awake.
    pub fn release(self) -> Peer<Asleep, W> {
        Peer {
            channel: self.channel,
            _state: PhantomData,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mailbox::Spins;

    static LOCK: WakeLock = WakeLock::new();

    #[test]
    fn guards_count_and_release_on_drop() {
        let lock = WakeLock::new();
        assert!(lock.deep_sleep_allowed());
        let a = lock.hold();
        let b = lock.hold();
        assert_eq!(lock.holders(), 2);
        drop(a);
        assert!(!lock.deep_sleep_allowed());
        drop(b);
        assert!(lock.deep_sleep_allowed());
        let mut m = MaybeWakeGuard::new(&LOCK);
        m.enable();
        m.enable();
        assert_eq!(LOCK.holders(), 1);
        m.disable();
        m.disable();
        assert!(LOCK.deep_sleep_allowed());
    }

    #[derive(Debug)]
    struct Gp {
        requests: u32,
        awake_after: u32,
        polls: u32,
    }
    impl ErrorType for Gp {
        type Error = ErrorKind;
    }
    impl WakePeer for Gp {
        fn request_wake(&mut self) -> Result<(), ErrorKind> {
            self.requests += 1;
            Ok(())
        }
        fn peer_awake(&mut self) -> Result<bool, ErrorKind> {
            self.polls += 1;
            Ok(self.polls > self.awake_after)
        }
    }

    #[test]
    fn wake_succeeds_within_budget_and_times_out_otherwise() {
        let peer = Peer::new(Gp {
            requests: 0,
            awake_after: 3,
            polls: 0,
        });
        let awake = peer.wake(Spins::new(5)).unwrap();
        let gp = awake.release().into_inner();
        assert_eq!((gp.requests, gp.polls), (1, 4));

        let peer = Peer::new(Gp {
            requests: 0,
            awake_after: 100,
            polls: 0,
        });
        let (peer, err) = peer.wake(Spins::new(5)).unwrap_err();
        assert_eq!(err, WakeError::Timeout);
        assert_eq!(err.kind(), ErrorKind::WouldBlock);
        assert_eq!(peer.into_inner().polls, 6);
    }
}
