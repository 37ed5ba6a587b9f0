//! The two doorbells of a vhost-user device: kicks from the driver
//! ([`Kicks`], a [`NotifyRx`]) and calls to it ([`Calls`], a [`Notify`]).
//!
//! A kick is the frontend writing a u64 to the queue's kick eventfd; a call
//! is us writing a u64 (1) to the queue's call descriptor, which under UML
//! is one end of a pipe (docs/linux-peer.md, "Step 3b"). Both hold their
//! own duplicates of the descriptors, so the connection may replace or close
//! its copies without invalidating these.
#![deny(unsafe_code)]

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use ipc_traits::barrier::{io_rmb, io_wmb};
use ipc_traits::mailbox::{self, ErrorKind, ErrorType, Notify, NotifyRx, QueueId, QueueSet};

use crate::sys;

/// What went wrong on a doorbell.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DoorbellError {
    /// The call descriptor cannot take another notification now (the pipe
    /// is full because the guest stopped reading).
    Full,
    /// A queue this device does not have.
    NoSuchQueue(QueueId),
    /// A read or write moved fewer than 8 bytes.
    ShortTransfer {
        /// Bytes moved.
        len: usize,
    },
    /// The other end closed the descriptor.
    Closed,
    /// A system call failed.
    Io {
        /// The error's kind.
        kind: io::ErrorKind,
        /// The OS error number.
        errno: Option<i32>,
    },
}

impl DoorbellError {
    fn io(e: &io::Error) -> Self {
        if e.kind() == io::ErrorKind::WouldBlock {
            return Self::Full;
        }
        if e.kind() == io::ErrorKind::BrokenPipe {
            return Self::Closed;
        }
        Self::Io {
            kind: e.kind(),
            errno: e.raw_os_error(),
        }
    }
}

impl mailbox::Error for DoorbellError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Full => ErrorKind::WouldBlock,
            Self::NoSuchQueue(_) => ErrorKind::Unsupported,
            Self::ShortTransfer { .. } => ErrorKind::Protocol,
            Self::Closed | Self::Io { .. } => ErrorKind::Other,
        }
    }
}

impl fmt::Display for DoorbellError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full => f.write_str("call descriptor full"),
            Self::NoSuchQueue(q) => write!(f, "no queue {q:?}"),
            Self::ShortTransfer { len } => write!(f, "doorbell moved {len} of 8 bytes"),
            Self::Closed => f.write_str("doorbell closed by the peer"),
            Self::Io { kind, errno } => write!(f, "doorbell I/O: {kind} ({errno:?})"),
        }
    }
}

impl std::error::Error for DoorbellError {}

/// The queue id of position `index` (`None` past 255; a backend has at
/// most 32 queues).
fn queue_id(index: usize) -> Option<QueueId> {
    u8::try_from(index).ok().and_then(QueueId::new)
}

/// The kick eventfds of every queue, in queue order.
#[derive(Debug)]
pub struct Kicks {
    fds: Vec<File>,
    counts: Vec<u64>,
}

impl Kicks {
    /// Kicks over these descriptors (queue `i` is `fds[i]`).
    pub fn new(fds: Vec<File>) -> Self {
        let counts = vec![0; fds.len()];
        Self { fds, counts }
    }

    /// Kicks taken so far on `queue` (the eventfd counter values summed).
    pub fn count(&self, queue: QueueId) -> u64 {
        self.counts
            .get(usize::from(queue.index()))
            .copied()
            .unwrap_or(0)
    }

    fn drain(&mut self, ready: &[bool]) -> Result<QueueSet, DoorbellError> {
        let mut set = QueueSet::default();
        for (i, (fd, &r)) in self.fds.iter_mut().zip(ready).enumerate() {
            if !r {
                continue;
            }
            let mut b = [0u8; 8];
            // Readable (checked by poll) and we are the only reader, so
            // this read does not block.
            let n = fd.read(&mut b).map_err(|e| DoorbellError::io(&e))?;
            if n == 0 {
                return Err(DoorbellError::Closed);
            }
            if n != 8 {
                return Err(DoorbellError::ShortTransfer { len: n });
            }
            self.counts[i] = self.counts[i].wrapping_add(u64::from_ne_bytes(b));
            if let Some(q) = queue_id(i) {
                set.insert(q);
            }
        }
        if !set.is_empty() {
            io_rmb();
        }
        Ok(set)
    }

    /// Waits up to `timeout` for a kick on any queue and takes every
    /// pending one (empty set on timeout).
    ///
    /// # Errors
    ///
    /// As [`NotifyRx::take_pending`].
    pub fn wait(&mut self, timeout: Duration) -> Result<QueueSet, DoorbellError> {
        let deadline = Instant::now() + timeout;
        loop {
            let fds: Vec<BorrowedFd<'_>> = self.fds.iter().map(AsFd::as_fd).collect();
            let left = deadline.saturating_duration_since(Instant::now());
            let ready = sys::poll_readable(&fds, left).map_err(|e| DoorbellError::io(&e))?;
            let set = self.drain(&ready)?;
            if !set.is_empty() || left.is_zero() {
                return Ok(set);
            }
        }
    }

    /// Waits up to `timeout` for a kick on `queue`; kicks on other queues
    /// that arrive meanwhile are returned too. `Ok(None)` on timeout.
    ///
    /// # Errors
    ///
    /// As [`NotifyRx::take_pending`].
    pub fn wait_for(
        &mut self,
        queue: QueueId,
        timeout: Duration,
    ) -> Result<Option<QueueSet>, DoorbellError> {
        let deadline = Instant::now() + timeout;
        let mut seen = QueueSet::default();
        loop {
            seen = seen.union(self.wait(deadline.saturating_duration_since(Instant::now()))?);
            if seen.contains(queue) {
                return Ok(Some(seen));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
        }
    }
}

impl ErrorType for Kicks {
    type Error = DoorbellError;
}

impl NotifyRx for Kicks {
    fn take_pending(&mut self) -> Result<QueueSet, DoorbellError> {
        let fds: Vec<BorrowedFd<'_>> = self.fds.iter().map(AsFd::as_fd).collect();
        let ready = sys::poll_readable(&fds, Duration::ZERO).map_err(|e| DoorbellError::io(&e))?;
        self.drain(&ready)
    }
}

/// The call descriptors of every queue, in queue order.
#[derive(Debug)]
pub struct Calls {
    fds: Vec<File>,
    sent: Vec<u64>,
}

impl Calls {
    /// Calls over these descriptors (queue `i` is `fds[i]`).
    pub fn new(fds: Vec<File>) -> Self {
        let sent = vec![0; fds.len()];
        Self { fds, sent }
    }

    /// Notifications sent on `queue` so far.
    pub fn sent(&self, queue: QueueId) -> u64 {
        self.sent
            .get(usize::from(queue.index()))
            .copied()
            .unwrap_or(0)
    }
}

impl ErrorType for Calls {
    type Error = DoorbellError;
}

impl Notify for Calls {
    fn notify(&mut self, queue: QueueId) -> Result<(), DoorbellError> {
        let i = usize::from(queue.index());
        let fd = self
            .fds
            .get_mut(i)
            .ok_or(DoorbellError::NoSuchQueue(queue))?;
        // Ring writes before the doorbell (the system call is a barrier on
        // its own; the barrier states the contract and keeps every doorbell
        // on the one `ipc_traits::barrier` entry point).
        io_wmb();
        let n = loop {
            match fd.write(&1u64.to_ne_bytes()) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => break r.map_err(|e| DoorbellError::io(&e))?,
            }
        };
        if n != 8 {
            return Err(DoorbellError::ShortTransfer { len: n });
        }
        self.sent[i] += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(i: u8) -> QueueId {
        QueueId::new(i).unwrap()
    }

    #[test]
    fn kicks_are_taken_once_and_counted() {
        let a = File::from(sys::eventfd().unwrap());
        let b = File::from(sys::eventfd().unwrap());
        let (mut wa, mut wb) = (a.try_clone().unwrap(), b.try_clone().unwrap());
        let mut kicks = Kicks::new(vec![a, b]);
        assert!(kicks.take_pending().unwrap().is_empty());
        wb.write_all(&1u64.to_ne_bytes()).unwrap();
        wb.write_all(&2u64.to_ne_bytes()).unwrap();
        let set = kicks.take_pending().unwrap();
        assert!(set.contains(q(1)) && !set.contains(q(0)));
        assert_eq!(kicks.count(q(1)), 3);
        assert!(kicks.take_pending().unwrap().is_empty());
        assert_eq!(
            kicks.wait_for(q(0), Duration::from_millis(20)).unwrap(),
            None
        );
        wa.write_all(&1u64.to_ne_bytes()).unwrap();
        let set = kicks
            .wait_for(q(0), Duration::from_secs(5))
            .unwrap()
            .unwrap();
        assert!(set.contains(q(0)));
    }

    #[test]
    fn calls_write_one_per_notification_and_reject_unknown_queues() {
        let ev = File::from(sys::eventfd().unwrap());
        let mut reader = ev.try_clone().unwrap();
        let mut calls = Calls::new(vec![ev]);
        calls.notify(q(0)).unwrap();
        calls.notify(q(0)).unwrap();
        let mut b = [0; 8];
        reader.read_exact(&mut b).unwrap();
        assert_eq!(u64::from_ne_bytes(b), 2);
        assert_eq!(calls.sent(q(0)), 2);
        assert_eq!(calls.notify(q(1)), Err(DoorbellError::NoSuchQueue(q(1))));
        assert_eq!(
            mailbox::Error::kind(&DoorbellError::Full),
            ErrorKind::WouldBlock
        );
    }
}
