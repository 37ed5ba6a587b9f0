//! One doorbell handle used by a link and by other code on the same core.
//!
//! [`rpmsg::link::Link`] owns its notifier. When the same mailbox queue also
//! carries other words (the TI remoteproc control messages on AM62x,
//! shared/docs/hw/am62x-mailbox.md §4.1), put the handle in a [`SharedTx`]
//! and give the link `&SharedTx`: the firmware reaches the handle through
//! [`SharedTx::with`] between link calls (the link rings it only inside
//! its own calls).
#![deny(unsafe_code)]

use core::cell::RefCell;
use core::fmt;

use ipc_traits::mailbox::{Error, ErrorKind, ErrorType, Notify, QueueId, WordTx};

/// A handle shared by borrowing: implements [`Notify`] and [`WordTx`] for
/// `&SharedTx<T>`.
#[derive(Debug)]
pub struct SharedTx<T> {
    inner: RefCell<T>,
}

/// A shared handle's error: the handle's own, or [`SharedError::Busy`] when
/// it is in use by the other user at that moment (a retryable
/// `WouldBlock`; the link keeps the kick and retries it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SharedError<E> {
    /// The handle failed.
    Inner(E),
    /// The handle was borrowed elsewhere (re-entrant use).
    Busy,
}

impl<E: Error> Error for SharedError<E> {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Inner(e) => e.kind(),
            Self::Busy => ErrorKind::WouldBlock,
        }
    }
}

impl<E: fmt::Display> fmt::Display for SharedError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Inner(e) => write!(f, "{e}"),
            Self::Busy => f.write_str("shared doorbell busy"),
        }
    }
}

impl<T> SharedTx<T> {
    /// Wraps `inner`.
    pub const fn new(inner: T) -> Self {
        Self {
            inner: RefCell::new(inner),
        }
    }

    /// Runs `f` on the handle; `None` if it is borrowed at the moment.
    pub fn with<U>(&self, f: impl FnOnce(&mut T) -> U) -> Option<U> {
        self.inner.try_borrow_mut().ok().map(|mut t| f(&mut t))
    }

    /// The handle back.
    pub fn into_inner(self) -> T {
        self.inner.into_inner()
    }
}

impl<T: ErrorType> ErrorType for &SharedTx<T> {
    type Error = SharedError<T::Error>;
}

impl<T: Notify> Notify for &SharedTx<T> {
    fn notify(&mut self, queue: QueueId) -> Result<(), Self::Error> {
        match self.inner.try_borrow_mut() {
            Ok(mut t) => t.notify(queue).map_err(SharedError::Inner),
            Err(_) => Err(SharedError::Busy),
        }
    }
}

impl<T: WordTx> WordTx for &SharedTx<T> {
    fn try_send(&mut self, word: u32) -> Result<(), Self::Error> {
        match self.inner.try_borrow_mut() {
            Ok(mut t) => t.try_send(word).map_err(SharedError::Inner),
            Err(_) => Err(SharedError::Busy),
        }
    }
}
