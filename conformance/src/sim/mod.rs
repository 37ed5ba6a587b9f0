//! Simulated shared memory with a non-coherent write-back cache per core.
//!
//! [`SimMemory`] is the memory both cores share. [`SimCore`] is one core's
//! view of it through a private data cache; it implements
//! [`SharedMemory`](ipc_traits::shm::SharedMemory) and
//! [`CacheMaintenance`](ipc_traits::cache::CacheMaintenance), so `vring`,
//! `rpmsg` and [`ShmBuf`](ipc_traits::buf::ShmBuf) run over it unchanged.
//! The model exists so that a forgotten `clean` makes the *peer* read stale
//! bytes and a forgotten `invalidate` makes *this core* read stale bytes,
//! as on a Cortex-A/Cortex-M pair without coherency
//! (shared/docs/hw/cache-and-wake.md §0).
//!
//! # The model
//!
//! Each cached core holds lines of `LINE` bytes, aligned to `LINE` in window
//! offsets, each with a dirty flag.
//!
//! - **Read** of a byte whose line is not cached fills the whole line from
//!   memory (counted in [`CacheStats::fills`]) and keeps it. A cached line
//!   is returned as cached, however stale.
//! - **Write** allocates (fills if absent), changes the cached copy and
//!   marks the line dirty. Memory is *not* updated.
//! - **Index loads and stores** (`load_u16_acquire` ... `store_u32_release`)
//!   go through the same cache: polling a cached index without
//!   `invalidate` keeps returning the old value until the line happens to
//!   be evicted; a stored index reaches memory only when cleaned or
//!   evicted. Alignment to the access width is checked.
//! - **`clean(range)`** writes back the dirty lines of the range and keeps
//!   them cached, clean. **`invalidate(range)`** drops the lines of the
//!   range, discarding dirty data ([`CacheStats::dirty_lines_discarded`]
//!   counts that loss). Both need `LINE`-aligned offset and length inside
//!   the window ([`ShmError::Misaligned`](ipc_traits::shm::ShmError),
//!   `OffsetOutsideWindow`).
//! - **Eviction** can happen at any access: with probability
//!   1/[`CacheConfig::evict_one_in`] per access a line chosen by the seeded
//!   generator is evicted, and whenever more than
//!   [`CacheConfig::capacity_lines`] lines are cached, others are evicted.
//!   An evicted dirty line is written back *whole*, including bytes this
//!   core never wrote: a buffer that shares a line with someone else's data
//!   can overwrite it. That is why buffers and separately owned fields must
//!   be line-aligned and line-padded.
//! - A core with the cache disabled ([`CacheConfig::COHERENT`]) sends every
//!   access straight to memory; `clean` and `invalidate` only check their
//!   arguments.
//!
//! Memory sits behind a lock: every access is data-race free, and a line
//! fill or write-back is atomic with respect to every other access. Runs
//! with the same seed and the same sequence of accesses per core give the
//! same evictions and the same [`CacheStats`].
//!
//! # For suite authors
//!
//! - Give each simulated core its own [`SimCore`] from one [`SimMemory`]
//!   (clone the memory handle into each thread) and a different seed.
//! - Use [`CacheConfig::write_back`] for the randomised suites (eviction
//!   on), and [`CacheConfig::never_evict`] when a test needs a certain
//!   outcome (a line stays cached until maintained).
//! - [`SimMemory::poke`] writes memory behind every cache (a hostile peer);
//!   [`SimMemory::snapshot`] shows what memory holds. [`SimCore::flush_all`]
//!   writes everything back at teardown; [`SimCore::line_state`] and
//!   [`SimCore::stats`] let a suite assert, for example, that no buffer is
//!   handed over dirty.
//!
//! # Faults
//!
//! [`SimCore::set_faults`] arms seeded faults of one core ([`MemFaults`],
//! off by default):
//!
//! - **Torn write-backs**: with probability 1/[`MemFaults::torn_one_in`] a
//!   line write-back (by `clean`, eviction or [`SimCore::flush_all`]) lands
//!   in two halves, in a random order, and between them the peer can look
//!   at memory: [`MemFaults::between_halves`] runs there (a suite passes the
//!   turn to the peer's thread), otherwise the host thread yields. The
//!   write-back is complete when the call that caused it returns, as the
//!   maintenance contract requires; what a peer must never do is read a
//!   line the other core may be writing back (ownership), and a ring must
//!   never publish an index in the same write-back as the entries it covers
//!   (counted: [`CacheStats::torn_write_backs`]).
//! - **An operation limit** ([`MemFaults::op_limit`]): the core panics once
//!   it has made more memory operations than that, so a wait that never
//!   ends fails a test instead of hanging it.
//!
//! Every access outside the window is refused, as the contract says, and
//! counted ([`SimCore::accesses_outside_window`]): code that validates peer
//! input before using it never makes one, so suites assert it is 0.
//! [`SimMemory::poke`] is how a test plays a peer that writes random bytes.
//!
//! # Weak ordering
//!
//! By default every access takes the same lock and lands at once, so the
//! cores are sequentially consistent. [`SimMemory::weak`] makes the cores
//! built from a memory weakly ordered, like an Arm core ([`WeakOrder`];
//! seeded, deterministic per seed and per sequence of accesses):
//!
//! - **Stores wait in a per-core store buffer** (in front of the cache, or
//!   of memory when uncached) and land in any order, one at random per
//!   operation with probability 1/[`WeakOrder::drain_one_in`] or when more
//!   than [`WeakOrder::buffer_entries`] wait. A **release** barrier
//!   ([`SharedMemory::release_fence`](ipc_traits::shm::SharedMemory::release_fence),
//!   and the one inside every `store_*_release`) keeps later stores behind
//!   every earlier one; a **full** barrier lands them all.
//! - **Loads may run early**: with probability
//!   1/[`WeakOrder::early_load_one_in`] a load from memory (an uncached
//!   read, or a line fill for a read) sees memory as it was at a random
//!   point since the core's last **acquire** barrier (explicit, inside
//!   every `load_*_acquire` (from the point that load executed), or a full
//!   barrier). A core always sees its own stores, and an access to bytes
//!   still in its buffer lands them first (with everything a barrier put
//!   before them), as same-address ordering requires; `clean` and
//!   `invalidate` do the same for their range, then act at once.
//! - **A doorbell does not wait**: a simulated register write is not
//!   ordered after buffered stores unless the driver called the register
//!   trait's `io_wmb` (it lands every buffered store of the calling
//!   thread's cores, `ipc_traits::sim_order`), and a load after a register
//!   read may still run early unless the driver called `io_rmb` (it raises
//!   the floor of those cores to now). A thread plays a core: a core
//!   registers with every thread that uses it.
//!
//! It composes with the cache ([`WeakOrder::uncached`] turns the caches of
//! the memory's cores off, the uncached mapping where only barriers order
//! anything), with [`MemFaults`] and with the backends' doorbell faults.
//! [`SimCore::weak_stats`] counts reorderings and early loads so a suite can
//! show that the weakness was exercised.
//!
//! # Design notes
//!
//! Not modelled (yet): torn line fills, speculative
//! prefetch of lines the program did not touch (cache-and-wake.md §0 point
//! 2), per-byte dirty masks, cache maintenance that completes after later
//! stores (here `clean` is synchronous), and load-load reordering of two
//! reads of the same bytes. Without [`SimMemory::weak`] a missing
//! `Release`/`Acquire` is found by Miri and loom, not by this model.
//!
//! # Examples
//!
//! A missing `clean` leaves the peer reading old bytes:
//!
//! ```
//! use conformance::sim::{CacheConfig, SimMemory};
//! use ipc_traits::shm::SharedMemory;
//!
//! let mem = SimMemory::new(256, 0x2000_0000);
//! let a = mem.core::<32>(CacheConfig::write_back(1).never_evict());
//! let b = mem.core::<32>(CacheConfig::write_back(2).never_evict());
//! a.write(0, b"ping").unwrap();
//! b.invalidate(0, 32).unwrap();
//! let mut got = [0u8; 4];
//! b.read(0, &mut got).unwrap();
//! assert_eq!(got, [0; 4]); // A never cleaned
//! a.clean(0, 32).unwrap();
//! b.invalidate(0, 32).unwrap();
//! b.read(0, &mut got).unwrap();
//! assert_eq!(&got, b"ping");
//! ```
#![deny(unsafe_code)]

mod cache;
mod memory;
mod weak;

use std::fmt;
use std::sync::Arc;

pub use cache::SimCore;
pub use memory::SimMemory;
pub use weak::{WeakOrder, WeakStats};

/// Seeded faults of one [`SimCore`] (see the [module docs](self#faults)).
/// `Default` is "no faults".
#[derive(Clone, Default)]
pub struct MemFaults {
    /// Seed of the fault generator (separate from the eviction generator,
    /// so arming faults does not change which lines are evicted).
    pub seed: u64,
    /// Tear a line write-back with probability `1/N` (0: never).
    pub torn_one_in: u32,
    /// Runs between the two halves of a torn write-back, with this core's
    /// cache locked (the peer may use its own core meanwhile, not this
    /// one). `None`: the host thread yields instead.
    pub between_halves: Option<Arc<dyn Fn() + Send + Sync>>,
    /// Panic after this many memory operations of the core (0: no limit),
    /// counted as [`SimCore::operations`] counts them.
    pub op_limit: u64,
}

impl fmt::Debug for MemFaults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemFaults")
            .field("seed", &self.seed)
            .field("torn_one_in", &self.torn_one_in)
            .field("between_halves", &self.between_halves.is_some())
            .field("op_limit", &self.op_limit)
            .finish()
    }
}

/// How a [`SimCore`]'s cache behaves.
///
/// The fields are public; start from [`CacheConfig::write_back`] or
/// [`CacheConfig::COHERENT`] and adjust with struct update syntax.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    /// Whether the core has a write-back data cache (false: every access
    /// goes to memory).
    pub enabled: bool,
    /// Seed of the eviction decisions.
    pub seed: u64,
    /// On each access, evict a random cached line with probability `1/N`;
    /// 0 never evicts spontaneously.
    pub evict_one_in: u32,
    /// The most lines cached at once; more evict others (0 counts as 1).
    pub capacity_lines: usize,
}

impl CacheConfig {
    /// No cache: every access goes to memory.
    pub const COHERENT: Self = Self {
        enabled: false,
        seed: 0,
        evict_one_in: 0,
        capacity_lines: 0,
    };

    /// A write-back cache with spontaneous eviction on (one access in 64)
    /// and room for 256 lines.
    #[must_use]
    pub const fn write_back(seed: u64) -> Self {
        Self {
            enabled: true,
            seed,
            evict_one_in: 64,
            capacity_lines: 256,
        }
    }

    /// The same cache without any eviction: lines leave only through
    /// `clean`, `invalidate`, [`SimCore::evict_line`] and
    /// [`SimCore::flush_all`], so outcomes are certain.
    #[must_use]
    pub const fn never_evict(self) -> Self {
        Self {
            evict_one_in: 0,
            capacity_lines: usize::MAX,
            ..self
        }
    }
}

/// What a [`SimCore`]'s cache has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Dirty lines written back by `clean`, `clean_invalidate` or
    /// [`SimCore::flush_all`].
    pub lines_cleaned: u64,
    /// Cached lines dropped by `invalidate`, `clean_invalidate` or
    /// [`SimCore::flush_all`].
    pub lines_invalidated: u64,
    /// Lines filled from memory.
    pub fills: u64,
    /// Lines evicted (spontaneously, over capacity, or by
    /// [`SimCore::evict_line`]).
    pub evictions: u64,
    /// Evicted lines that were dirty and so were written back.
    pub dirty_evictions: u64,
    /// Dirty lines dropped by `invalidate`: local writes lost. Nonzero
    /// usually means a buffer was handed over without `clean`.
    pub dirty_lines_discarded: u64,
    /// [`CacheMaintenance`](ipc_traits::cache::CacheMaintenance) calls
    /// whose address range was not a line-aligned range inside the window
    /// (ignored).
    pub maintenance_outside_window: u64,
    /// Line write-backs that landed in two halves ([`MemFaults`]).
    pub torn_write_backs: u64,
    /// Lines named by `clean` and `clean_invalidate` requests, cached or
    /// not: what a real cache executes one command per line for (an LMEM
    /// line command on the i.MX8 M4, a `dc cvac` on a Cortex-A).
    /// [`SimCore::flush_all`] is not counted.
    pub clean_line_commands: u64,
    /// Lines named by `invalidate` and `clean_invalidate` requests, cached
    /// or not, as for [`CacheStats::clean_line_commands`].
    pub invalidate_line_commands: u64,
}

/// The state of one line in a [`SimCore`]'s cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LineState {
    /// Not cached: the next access fills it from memory.
    Uncached,
    /// Cached and equal to what this core last read or wrote back.
    Clean,
    /// Cached with local writes memory does not have.
    Dirty,
}
