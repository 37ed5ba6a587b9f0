//! The machine's floor, measured in the same run as the stack: a minimal
//! single-producer/single-consumer ring of 16 slots between the two cores
//! (the payload copied in and out, one index store per message, each side
//! caching the other's index) and a cache-line ping-pong.
#![allow(unsafe_code)]

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::thread;
use std::time::Instant;

use crate::affinity::{place, Cores};
use crate::common::{or_abort, stamp, Failure, Line, Meter, Patience, SeqCheck, Timing};

/// Slots in the floor ring (as many as the stack's ring entries).
pub const RING: usize = 16;

/// A ring of [`RING`] packed slots of `S` bytes.
#[repr(C)]
pub struct Spsc<const S: usize> {
    /// Messages published (written by the producer only).
    head: Line<AtomicU32>,
    /// Messages consumed (written by the consumer only).
    tail: Line<AtomicU32>,
    slots: Line<[UnsafeCell<[u8; S]>; RING]>,
}

// SAFETY: a slot is written only by the producer while it owns it
// (`head - tail < RING`, observed through an acquire load of `tail`, which
// the consumer stored with release after its last read of the slot) and
// read only by the consumer while it owns it (`tail < head`, observed
// through an acquire load of `head`, stored with release after the write).
// The handles below are the only access paths and exist once each.
unsafe impl<const S: usize> Sync for Spsc<S> {}

impl<const S: usize> Spsc<S> {
    /// An empty ring.
    pub fn new() -> Box<Self> {
        Box::new(Self {
            head: Line(AtomicU32::new(0)),
            tail: Line(AtomicU32::new(0)),
            slots: Line(std::array::from_fn(|_| UnsafeCell::new([0; S]))),
        })
    }

    /// The two ends. Taking them twice would break the single-producer,
    /// single-consumer rule, so the ring is borrowed mutably.
    pub fn split(&mut self) -> (Producer<'_, S>, Consumer<'_, S>) {
        let ring: &Self = self;
        (
            Producer {
                ring,
                head: 0,
                tail_seen: 0,
            },
            Consumer {
                ring,
                tail: 0,
                head_seen: 0,
            },
        )
    }
}

/// The producing end.
pub struct Producer<'r, const S: usize> {
    ring: &'r Spsc<S>,
    head: u32,
    tail_seen: u32,
}

impl<const S: usize> Producer<'_, S> {
    /// Copies `msg` into the next slot and publishes it, or returns `false`
    /// when the ring is full.
    #[inline]
    pub fn try_push(&mut self, msg: &[u8; S]) -> bool {
        if self.head.wrapping_sub(self.tail_seen) as usize == RING {
            self.tail_seen = self.ring.tail.0.load(Ordering::Acquire);
            if self.head.wrapping_sub(self.tail_seen) as usize == RING {
                return false;
            }
        }
        let slot = &self.ring.slots.0[self.head as usize % RING];
        // SAFETY: the slot is the producer's (see the `Sync` impl): fewer
        // than RING messages are unconsumed, and the acquire load of `tail`
        // ordered the consumer's last read of it before this write.
        unsafe { slot.get().write(*msg) };
        self.head = self.head.wrapping_add(1);
        self.ring.head.0.store(self.head, Ordering::Release);
        true
    }
}

/// The consuming end.
pub struct Consumer<'r, const S: usize> {
    ring: &'r Spsc<S>,
    tail: u32,
    head_seen: u32,
}

impl<const S: usize> Consumer<'_, S> {
    /// Copies the oldest message out into `out`, or returns `false` when the
    /// ring is empty.
    #[inline]
    pub fn try_pop(&mut self, out: &mut [u8; S]) -> bool {
        if self.tail == self.head_seen {
            self.head_seen = self.ring.head.0.load(Ordering::Acquire);
            if self.tail == self.head_seen {
                return false;
            }
        }
        let slot = &self.ring.slots.0[self.tail as usize % RING];
        // SAFETY: the slot is the consumer's (see the `Sync` impl): it was
        // published (acquire load of `head` above) and not yet released.
        *out = unsafe { slot.get().read() };
        self.tail = self.tail.wrapping_add(1);
        self.ring.tail.0.store(self.tail, Ordering::Release);
        true
    }
}

/// One-way throughput of the floor ring with `S`-byte slots over `window`,
/// timed on the consumer. Returns messages per second.
///
/// # Errors
///
/// A sequence error, a pinning failure, or a timeout.
pub fn spsc<const S: usize>(window: Timing, cores: Cores) -> Result<f64, Failure> {
    let mut ring = Spsc::<S>::new();
    let (mut tx, mut rx) = ring.split();
    let abort = AtomicBool::new(false);
    let stop = AtomicBool::new(false);
    let (abort, stop) = (&abort, &stop);
    thread::scope(|s| {
        let producer = s.spawn(move || {
            or_abort(abort, || {
                place(cores, 0)?;
                let mut wait = Patience::new(abort);
                let mut msg = [0xA5u8; S];
                let mut seq = 0;
                'run: while !Meter::stop(stop) {
                    stamp(&mut msg, seq);
                    while !tx.try_push(&msg) {
                        if Meter::stop(stop) {
                            break 'run;
                        }
                        wait.spin("floor producer")?;
                    }
                    seq = seq.wrapping_add(1);
                }
                Ok(())
            })
        });
        let consumer = s.spawn(move || {
            or_abort(abort, || {
                place(cores, 1)?;
                let mut wait = Patience::new(abort);
                let mut check = SeqCheck::new(S);
                let mut out = [0u8; S];
                let mut meter = Meter::new(stop, window);
                loop {
                    if rx.try_pop(&mut out) {
                        check.check(&out)?;
                        if meter.tick() {
                            break;
                        }
                    } else {
                        if meter.check_time() {
                            break;
                        }
                        wait.spin("floor consumer")?;
                    }
                }
                meter.rate()
            })
        });
        join(producer)?;
        join(consumer)
    })
}

/// The floor ring on one thread: push one message, pop it, check it;
/// `count` times (for instruction counting). Returns messages checked.
///
/// # Errors
///
/// A sequence error.
#[inline(never)]
pub fn spsc_single<const S: usize>(count: u32) -> Result<u32, Failure> {
    let mut ring = Spsc::<S>::new();
    let (mut tx, mut rx) = ring.split();
    let mut check = SeqCheck::new(S);
    let mut msg = [0xA5u8; S];
    let mut out = [0u8; S];
    for seq in 0..count {
        stamp(&mut msg, seq);
        if !tx.try_push(&msg) || !rx.try_pop(&mut out) {
            return Err(Failure::new("floor ring: push or pop failed"));
        }
        check.check(&out)?;
    }
    Ok(check.next())
}

/// Round trips of one cache line between the cores: the master stores an
/// odd value, the remote answers with the next even one. Returns `samples`
/// round-trip times in nanoseconds (after `warm` untimed ones).
///
/// # Errors
///
/// A pinning failure or a timeout.
pub fn pingpong(samples: u32, warm: u32, cores: Cores) -> Result<Vec<f64>, Failure> {
    let line = Line(AtomicU64::new(0));
    let line = &line.0;
    let abort = AtomicBool::new(false);
    let abort = &abort;
    let total = u64::from(warm) + u64::from(samples);
    thread::scope(|s| {
        let master = s.spawn(move || {
            or_abort(abort, || {
                place(cores, 0)?;
                let mut wait = Patience::new(abort);
                let mut out = Vec::with_capacity(samples as usize);
                for i in 0..total {
                    let t = Instant::now();
                    line.store(2 * i + 1, Ordering::Release);
                    while line.load(Ordering::Acquire) != 2 * i + 2 {
                        wait.spin("ping-pong master")?;
                    }
                    let dt = t.elapsed();
                    if i >= u64::from(warm) {
                        out.push(dt.as_nanos() as f64);
                    }
                }
                Ok(out)
            })
        });
        let remote = s.spawn(move || {
            or_abort(abort, || {
                place(cores, 1)?;
                let mut wait = Patience::new(abort);
                for i in 0..total {
                    while line.load(Ordering::Acquire) != 2 * i + 1 {
                        wait.spin("ping-pong remote")?;
                    }
                    line.store(2 * i + 2, Ordering::Release);
                }
                Ok(())
            })
        });
        join(remote)?;
        join(master)
    })
}

/// Joins a measurement thread; a panic is a failure.
pub fn join<T>(h: thread::ScopedJoinHandle<'_, Result<T, Failure>>) -> Result<T, Failure> {
    h.join()
        .unwrap_or_else(|_| Err(Failure::new("a measurement thread panicked")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_ring_delivers_in_order_across_threads() {
        let w = Timing {
            warm: std::time::Duration::from_millis(5),
            timed: std::time::Duration::from_millis(20),
        };
        assert!(spsc::<16>(w, None).unwrap() > 0.0);
        assert!(spsc::<512>(w, None).unwrap() > 0.0);
    }

    #[test]
    fn floor_ring_single_thread_checks_every_message() {
        assert_eq!(spsc_single::<16>(1000).unwrap(), 1000);
        assert_eq!(spsc_single::<512>(100).unwrap(), 100);
    }

    #[test]
    fn floor_ring_is_full_after_ring_messages() {
        let mut ring = Spsc::<16>::new();
        let (mut tx, mut rx) = ring.split();
        let msg = [1u8; 16];
        for _ in 0..RING {
            assert!(tx.try_push(&msg));
        }
        assert!(!tx.try_push(&msg), "a 17th message does not fit");
        let mut out = [0u8; 16];
        assert!(rx.try_pop(&mut out));
        assert!(tx.try_push(&msg), "room again after one pop");
    }

    #[test]
    fn pingpong_returns_every_sample() {
        let v = pingpong(1000, 10, None).unwrap();
        assert_eq!(v.len(), 1000);
    }
}
