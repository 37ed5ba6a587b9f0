//! The doorbell of the setup: one counter per queue and direction that the
//! sender increments and the receiver polls (no syscalls, no sleeping).
#![deny(unsafe_code)]

use std::convert::Infallible;
use std::sync::atomic::{AtomicU32, Ordering};

use ipc_traits::mailbox::{ErrorType, Notify, NotifyRx, QueueId, QueueSet};

use crate::common::Line;

/// Counters for queues 0 and 1 in one direction (one writer: the [`Bell`]
/// of that direction).
pub type Counters = [AtomicU32; 2];

/// The doorbells of one link: master → remote and remote → master, each on
/// its own cache lines.
#[derive(Debug, Default)]
pub struct Doorbells {
    /// Rung by the master, polled by the remote.
    pub to_remote: Line<Counters>,
    /// Rung by the remote, polled by the master.
    pub to_master: Line<Counters>,
}

/// The ringing side: [`Notify`] as an increment of the queue's counter.
#[derive(Debug)]
pub struct Bell<'d> {
    out: &'d Counters,
}

impl<'d> Bell<'d> {
    /// Rings the counters `out`.
    pub fn new(out: &'d Line<Counters>) -> Self {
        Self { out: &out.0 }
    }
}

impl ErrorType for Bell<'_> {
    type Error = Infallible;
}

impl Notify for Bell<'_> {
    #[inline]
    fn notify(&mut self, queue: QueueId) -> Result<(), Infallible> {
        // Release: the ring writes before the doorbell are visible to a
        // receiver that acquires the counter (the `Notify` contract). One
        // writer per counter, so a load and a store, not a read-modify-
        // write: on x86 `fetch_add` is a `lock xadd`, a full fence that a
        // real doorbell (an MMIO write after `io_wmb`: `dmb oshst`,
        // `fence w,o`) does not have, and that `callgrind.sh` would count
        // against the stack.
        if let Some(c) = self.out.get(usize::from(queue.index())) {
            c.store(c.load(Ordering::Relaxed).wrapping_add(1), Ordering::Release);
        }
        Ok(())
    }
}

/// The polling side: which queues were rung since the last poll.
#[derive(Debug)]
pub struct BellRx<'d> {
    inp: &'d Counters,
    seen: [u32; 2],
    /// Doorbells observed (a changed counter counts its whole difference).
    pub rung: u64,
}

impl<'d> BellRx<'d> {
    /// Polls the counters `inp`.
    pub fn new(inp: &'d Line<Counters>) -> Self {
        Self {
            inp: &inp.0,
            seen: [0; 2],
            rung: 0,
        }
    }
}

impl ErrorType for BellRx<'_> {
    type Error = Infallible;
}

impl NotifyRx for BellRx<'_> {
    #[inline]
    fn take_pending(&mut self) -> Result<QueueSet, Infallible> {
        let mut set = QueueSet::EMPTY;
        for (q, (c, seen)) in self.inp.iter().zip(self.seen.iter_mut()).enumerate() {
            let now = c.load(Ordering::Acquire);
            if now != *seen {
                self.rung += u64::from(now.wrapping_sub(*seen));
                *seen = now;
                if let Some(id) = QueueId::new(q as u8) {
                    set.insert(id);
                }
            }
        }
        Ok(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ring_is_seen_once_per_queue() {
        let bells = Doorbells::default();
        let mut tx = Bell::new(&bells.to_remote);
        let mut rx = BellRx::new(&bells.to_remote);
        assert!(rx.take_pending().unwrap().is_empty());
        let q1 = QueueId::new(1).unwrap();
        tx.notify(q1).unwrap();
        tx.notify(q1).unwrap();
        let set = rx.take_pending().unwrap();
        assert!(set.contains(q1) && !set.contains(QueueId::new(0).unwrap()));
        assert_eq!(rx.rung, 2);
        assert!(rx.take_pending().unwrap().is_empty());
        // The other direction is untouched.
        let mut back = BellRx::new(&bells.to_master);
        assert!(back.take_pending().unwrap().is_empty());
    }
}
