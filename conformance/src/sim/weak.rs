//! Weak ordering of one simulated core: a store buffer in front of the
//! cache, and loads that may run early.
//!
//! The rules are listed in the [module docs](super#weak-ordering). This file
//! holds the per-core state ([`WeakState`]): the buffered stores in program
//! order, each tagged with the barrier epoch it was made in, the core's load
//! floor (the memory version its last acquire barrier executed at) and the
//! counters. [`super::SimCore`] decides when to drain and where a drained
//! store lands (its cache, or memory when uncached).
#![deny(unsafe_code)]

use crate::rng::SplitMix64;

/// How weakly a core is ordered (see the [module docs](super#weak-ordering)).
///
/// Set on a memory with [`SimMemory::weak`](super::SimMemory::weak): every
/// core built from it afterwards is weakly ordered, each with its own
/// generator (seeded from `seed` and the core's cache seed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeakOrder {
    /// Seed of the ordering decisions (mixed with the cache seed per core).
    pub seed: u64,
    /// On each memory operation of the core, one buffered store (chosen at
    /// random among those no barrier holds back) reaches the cache or
    /// memory with probability `1/N`; 0: only when the buffer is full or a
    /// barrier or an access to the same bytes forces it.
    pub drain_one_in: u32,
    /// The most stores buffered at once (0 counts as 1); more drain others.
    pub buffer_entries: usize,
    /// A load (an uncached read, or a cache line fill for a read) runs
    /// early with probability `1/N`: it sees memory as it was at a random
    /// point since the core's last acquire barrier (0: never).
    pub early_load_one_in: u32,
    /// Whether the memory is mapped uncached on both cores (caches off
    /// whatever [`CacheConfig`](super::CacheConfig) a suite asks for): the
    /// usual mapping of a shared window (cache-and-wake.md §6), where only
    /// barriers order anything.
    pub uncached: bool,
}

impl WeakOrder {
    /// An Arm-like core: a store drains one operation in four, at most 16
    /// wait, and every second load may run early. Caches as the suite
    /// configures them.
    #[must_use]
    pub const fn arm_like(seed: u64) -> Self {
        Self {
            seed,
            drain_one_in: 32,
            buffer_entries: 32,
            early_load_one_in: 2,
            uncached: false,
        }
    }

    /// The same ordering over an uncached window.
    #[must_use]
    pub const fn uncached(self) -> Self {
        Self {
            uncached: true,
            ..self
        }
    }
}

/// What a weakly ordered [`SimCore`](super::SimCore) has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WeakStats {
    /// Stores (writes and index stores) that went into the store buffer.
    pub stores_buffered: u64,
    /// Line write-backs of `clean` that went into the buffer behind them.
    pub write_backs_buffered: u64,
    /// Stores that reached the cache or memory before an older store of
    /// this core: the reorderings a barrier would have prevented.
    pub drained_out_of_order: u64,
    /// Loads that saw memory older than the newest (ran early).
    pub early_loads: u64,
    /// Release fences (explicit, or in a `store_*_release`).
    pub release_fences: u64,
    /// Acquire fences (explicit, or in a `load_*_acquire`).
    pub acquire_fences: u64,
    /// Full fences.
    pub full_fences: u64,
    /// I/O write barriers that reached this core.
    pub io_wmbs: u64,
    /// I/O read barriers that reached this core.
    pub io_rmbs: u64,
}

/// One buffered store.
pub(super) struct Pending {
    /// The barrier epoch it was made in.
    epoch: u64,
    /// Window offset.
    pub offset: usize,
    /// The bytes stored.
    pub bytes: Vec<u8>,
    /// A line write-back on its way to memory (from `clean`), not a store
    /// into the cache.
    pub write_back: bool,
}

impl Pending {
    fn overlaps(&self, offset: usize, len: usize) -> bool {
        self.offset < offset + len && offset < self.offset + self.bytes.len()
    }
}

/// The weak-ordering state of one core.
pub(super) struct WeakState {
    pub cfg: WeakOrder,
    rng: SplitMix64,
    /// Buffered stores, oldest first; epochs never decrease along it.
    buffer: Vec<Pending>,
    epoch: u64,
    /// No load may see memory older than this version.
    pub floor: u64,
    pub stats: WeakStats,
}

impl WeakState {
    pub fn new(cfg: WeakOrder, cache_seed: u64, floor: u64) -> Self {
        Self {
            cfg,
            rng: SplitMix64::new(cfg.seed ^ cache_seed.rotate_left(17) ^ 0x57EA_4B0F),
            buffer: Vec::new(),
            epoch: 0,
            floor,
            stats: WeakStats::default(),
        }
    }

    /// Buffers a store.
    pub fn buffer(&mut self, offset: usize, bytes: &[u8]) {
        self.stats.stores_buffered += 1;
        self.buffer.push(Pending {
            epoch: self.epoch,
            offset,
            bytes: bytes.to_vec(),
            write_back: false,
        });
    }

    /// Buffers the write-back of a cleaned line (`bytes` is the whole line):
    /// it reaches memory in the order stores do.
    pub fn buffer_write_back(&mut self, base: usize, bytes: &[u8]) {
        self.stats.write_backs_buffered += 1;
        self.buffer.push(Pending {
            epoch: self.epoch,
            offset: base,
            bytes: bytes.to_vec(),
            write_back: true,
        });
    }

    /// A release (or full) barrier: later stores drain after every earlier
    /// one.
    pub fn release(&mut self) {
        self.stats.release_fences += 1;
        self.epoch += 1;
    }

    /// An acquire barrier executed when memory was at `version`.
    pub fn acquire(&mut self, version: u64) {
        self.stats.acquire_fences += 1;
        self.floor = self.floor.max(version);
    }

    /// Whether the buffer holds more than it may.
    pub fn over_capacity(&self) -> bool {
        self.buffer.len() > self.cfg.buffer_entries.max(1)
    }

    /// Whether the spontaneous drain fires on this operation.
    pub fn roll_drain(&mut self) -> bool {
        !self.buffer.is_empty() && self.rng.one_in(self.cfg.drain_one_in)
    }

    /// Takes one store that may drain now: a random one of the oldest
    /// epoch, or an older store to the same bytes that must land first.
    pub fn take_one(&mut self) -> Option<Pending> {
        let first = self.buffer.first()?.epoch;
        let candidates = self.buffer.iter().take_while(|p| p.epoch == first).count();
        let mut pick = usize::try_from(self.rng.below(candidates as u64)).unwrap_or(0);
        while let Some(older) = (0..pick).find(|&j| {
            let p = &self.buffer[pick];
            self.buffer[j].overlaps(p.offset, p.bytes.len())
        }) {
            pick = older;
        }
        if pick != 0 {
            self.stats.drained_out_of_order += 1;
        }
        Some(self.buffer.remove(pick))
    }

    /// Takes, in program order, every store that must drain before this
    /// core accesses `offset..offset + len`: those to these bytes, every
    /// store of an older epoch than the newest of them, and older stores of
    /// the same epoch to bytes a taken store covers.
    pub fn take_overlapping(&mut self, offset: usize, len: usize) -> Vec<Pending> {
        let Some(k) = self.buffer.iter().rposition(|p| p.overlaps(offset, len)) else {
            return Vec::new();
        };
        let epoch = self.buffer[k].epoch;
        let mut ranges = vec![(offset, len)];
        let mut take = vec![false; k + 1];
        for i in (0..=k).rev() {
            let p = &self.buffer[i];
            if p.epoch < epoch || ranges.iter().any(|&(o, l)| p.overlaps(o, l)) {
                take[i] = true;
                ranges.push((p.offset, p.bytes.len()));
            }
        }
        let mut taken = Vec::new();
        let old = std::mem::take(&mut self.buffer);
        for (i, p) in old.into_iter().enumerate() {
            if i <= k && take[i] {
                if taken.len() != i {
                    self.stats.drained_out_of_order += 1;
                }
                taken.push(p);
            } else {
                self.buffer.push(p);
            }
        }
        taken
    }

    /// Takes every buffered store, oldest first.
    pub fn take_all(&mut self) -> Vec<Pending> {
        std::mem::take(&mut self.buffer)
    }

    /// The memory version a load executing now sees: `now`, or (running
    /// early) a random version since the floor.
    pub fn load_version(&mut self, now: u64) -> u64 {
        if now > self.floor && self.rng.one_in(self.cfg.early_load_one_in) {
            self.stats.early_loads += 1;
            self.floor + self.rng.below(now - self.floor)
        } else {
            now
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> WeakState {
        WeakState::new(WeakOrder::arm_like(1), 2, 0)
    }

    #[test]
    fn a_release_keeps_later_stores_behind_earlier_ones() {
        for seed in 0..50 {
            let mut s = WeakState::new(WeakOrder::arm_like(seed), 0, 0);
            s.buffer(0, &[1]);
            s.buffer(8, &[2]);
            s.release();
            s.buffer(16, &[3]);
            let order: Vec<usize> = std::iter::from_fn(|| s.take_one().map(|p| p.offset)).collect();
            assert_eq!(order.len(), 3);
            assert_eq!(order[2], 16, "seed {seed}: {order:?}");
        }
    }

    #[test]
    fn stores_of_one_epoch_drain_in_any_order_but_same_bytes_in_order() {
        let mut reordered = false;
        for seed in 0..50 {
            let mut s = WeakState::new(WeakOrder::arm_like(seed), 0, 0);
            s.buffer(0, &[1]);
            s.buffer(8, &[2]);
            s.buffer(0, &[3]);
            let order: Vec<(usize, u8)> =
                std::iter::from_fn(|| s.take_one().map(|p| (p.offset, p.bytes[0]))).collect();
            let first0 = order.iter().position(|&(o, _)| o == 0).unwrap_or(9);
            assert_eq!(order[first0], (0, 1), "seed {seed}: {order:?}");
            reordered |= order[0].0 == 8;
        }
        assert!(reordered);
    }

    #[test]
    fn an_access_takes_its_bytes_and_older_epochs_first() {
        let mut s = state();
        s.buffer(0, &[1]);
        s.release();
        s.buffer(8, &[2]);
        s.buffer(16, &[3, 3]);
        s.buffer(17, &[4]);
        let taken: Vec<usize> = s.take_overlapping(17, 1).iter().map(|p| p.offset).collect();
        assert_eq!(taken, [0, 16, 17]);
        assert_eq!(s.take_all().len(), 1);
        assert!(s.take_overlapping(0, 100).is_empty());
    }

    #[test]
    fn loads_run_early_only_above_the_floor() {
        let mut s = state();
        let versions: Vec<u64> = (0..200).map(|_| s.load_version(100)).collect();
        assert!(versions.iter().any(|&v| v < 100));
        s.acquire(100);
        assert!((0..200).all(|_| s.load_version(100) == 100));
        assert!(s.stats.early_loads > 0);
    }
}
