//! One simulated core's view of [`SimMemory`]: a write-back data cache.
//!
//! The rules are listed in the [module docs](super). This file keeps them in
//! one place: [`CacheState`] is the per-core cache (lines, dirty flags, the
//! seeded generator, the counters) and every [`SharedMemory`] method of
//! [`SimCore`] is a bounds check followed by one walk over the lines the
//! access touches.
#![deny(unsafe_code)]

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use ipc_traits::cache::{CacheMaintenance, LineRange};
use ipc_traits::shm::{check_align, check_range, ErrorType, SharedMemory, ShmError};
use ipc_traits::sim_order::IoOrder;

use super::weak::{Pending, WeakState};
use super::{CacheConfig, CacheStats, LineState, MemFaults, SimMemory, WeakStats};
use crate::rng::SplitMix64;

/// One cached line: this core's copy of `LINE` bytes of memory.
struct CachedLine<const LINE: usize> {
    bytes: [u8; LINE],
    dirty: bool,
}

/// The per-core cache. Keys are line-aligned window offsets; a `BTreeMap`
/// (not a hash map) so that "the k-th cached line" is the same on every run
/// with the same seed.
struct CacheState<const LINE: usize> {
    lines: BTreeMap<usize, CachedLine<LINE>>,
    rng: SplitMix64,
    stats: CacheStats,
    faults: MemFaults,
    fault_rng: SplitMix64,
    operations: u64,
    outside_window: u64,
    /// This core's writer id in the memory's history.
    id: u32,
    /// Weak ordering (store buffer, early loads), if the memory asked for it.
    weak: Option<WeakState>,
    /// The memory version line fills read at (`None`: the newest). Set for
    /// the duration of a read by a weakly ordered core.
    fill_at: Option<u64>,
    /// Whether a fill happened since the field was last cleared.
    filled: bool,
}

impl<const LINE: usize> CacheState<LINE> {
    /// The number of window bytes line `base` covers (`LINE`, or less for a
    /// last line cut short by the window end).
    fn span(mem: &SimMemory, base: usize) -> usize {
        LINE.min(mem.len() - base)
    }

    /// Writes the whole line back: every byte of the line, including bytes
    /// this core never wrote. Normally one atomic copy under the memory
    /// lock; a torn write-back ([`MemFaults::torn_one_in`]) copies the two
    /// halves separately, in a random order, and lets the peer run between
    /// them.
    fn write_back(&mut self, mem: &SimMemory, base: usize, bytes: &[u8]) {
        let span = Self::span(mem, base);
        let torn = LINE >= 2 && span > LINE / 2 && self.fault_rng.one_in(self.faults.torn_one_in);
        if !torn {
            mem.lock().store(base, &bytes[..span], self.id);
            return;
        }
        self.stats.torn_write_backs += 1;
        let half = LINE / 2;
        let (first, second) = if self.fault_rng.next_u64() & 1 == 0 {
            ((0, half), (half, span))
        } else {
            ((half, span), (0, half))
        };
        mem.lock()
            .store(base + first.0, &bytes[first.0..first.1], self.id);
        match self.faults.between_halves.clone() {
            Some(peer_looks) => peer_looks(),
            None => std::thread::yield_now(),
        }
        mem.lock()
            .store(base + second.0, &bytes[second.0..second.1], self.id);
    }

    /// The cached line at `base`, filled from memory (atomically) if absent.
    fn line(&mut self, mem: &SimMemory, base: usize) -> &mut CachedLine<LINE> {
        let stats = &mut self.stats;
        let (fill_at, id, filled) = (self.fill_at, self.id, &mut self.filled);
        self.lines.entry(base).or_insert_with(|| {
            stats.fills += 1;
            *filled = true;
            let mut bytes = [0u8; LINE];
            let span = Self::span(mem, base);
            let m = mem.lock();
            let version = fill_at.unwrap_or(m.version());
            m.load_at(base, &mut bytes[..span], version, id);
            CachedLine {
                bytes,
                dirty: false,
            }
        })
    }

    /// Evicts line `base` if cached (written back first if dirty).
    fn evict(&mut self, mem: &SimMemory, base: usize) -> bool {
        let Some(line) = self.lines.remove(&base) else {
            return false;
        };
        self.stats.evictions += 1;
        if line.dirty {
            self.stats.dirty_evictions += 1;
            self.write_back(mem, base, &line.bytes);
        }
        true
    }

    /// Evicts a line chosen by the generator among the cached lines other
    /// than `keep`; false if there is none.
    fn evict_random(&mut self, mem: &SimMemory, keep: Option<usize>) -> bool {
        let candidates =
            self.lines.len() - usize::from(keep.is_some_and(|k| self.lines.contains_key(&k)));
        if candidates == 0 {
            return false;
        }
        let pick = usize::try_from(self.rng.below(candidates as u64)).unwrap_or(0);
        let victim = self
            .lines
            .keys()
            .copied()
            .filter(|&b| Some(b) != keep)
            .nth(pick);
        victim.is_some_and(|victim| self.evict(mem, victim))
    }

    /// The spontaneous eviction rolled once per access.
    fn maybe_evict(&mut self, mem: &SimMemory, evict_one_in: u32) {
        if !self.lines.is_empty() && self.rng.one_in(evict_one_in) {
            self.evict_random(mem, None);
        }
    }

    /// Evicts other lines while more than `capacity` are cached.
    fn enforce_capacity(&mut self, mem: &SimMemory, capacity: usize, keep: usize) {
        while self.lines.len() > capacity && self.evict_random(mem, Some(keep)) {}
    }

    /// [`Self::maintain`] for a maintenance request, counted as one line
    /// command per line of `offset..end` (`end - offset` is a multiple of
    /// `LINE`).
    fn command(&mut self, mem: &SimMemory, offset: usize, end: usize, clean: bool, drop: bool) {
        let lines = ((end - offset) / LINE) as u64;
        if clean {
            self.stats.clean_line_commands += lines;
        }
        if drop {
            self.stats.invalidate_line_commands += lines;
        }
        let defer = self.weak.is_some();
        self.maintain(mem, offset, end, clean, drop, defer);
    }

    /// Calls `op(line, offset_in_line, done, n)` for every line piece of the
    /// checked range `offset..offset + len`, in order.
    fn walk(
        &mut self,
        mem: &SimMemory,
        config: &CacheConfig,
        offset: usize,
        len: usize,
        mut op: impl FnMut(&mut CachedLine<LINE>, usize, usize, usize),
    ) {
        self.maybe_evict(mem, config.evict_one_in);
        let capacity = config.capacity_lines.max(1);
        let mut done = 0;
        while done < len {
            let pos = offset + done;
            let base = pos - pos % LINE;
            let in_line = pos - base;
            let n = (LINE - in_line).min(len - done);
            op(self.line(mem, base), in_line, done, n);
            self.enforce_capacity(mem, capacity, base);
            done += n;
        }
    }

    /// Stores `src` at the checked `offset` now: into the cache, or into
    /// memory when the cache is off.
    fn store_now(&mut self, mem: &SimMemory, config: &CacheConfig, offset: usize, src: &[u8]) {
        if !config.enabled {
            mem.lock().store(offset, src, self.id);
            return;
        }
        self.walk(mem, config, offset, src.len(), |line, at, done, n| {
            line.bytes[at..at + n].copy_from_slice(&src[done..done + n]);
            line.dirty = true;
        });
    }

    /// Lands one buffered store or write-back.
    fn land_one(&mut self, mem: &SimMemory, config: &CacheConfig, p: &Pending) {
        if p.write_back {
            self.write_back(mem, p.offset, &p.bytes);
        } else {
            self.store_now(mem, config, p.offset, &p.bytes);
        }
    }

    /// Lands buffered stores, in the order given.
    fn land(&mut self, mem: &SimMemory, config: &CacheConfig, stores: Vec<Pending>) {
        for p in &stores {
            self.land_one(mem, config, p);
        }
    }

    /// Weak mode: lands the buffered stores an access to
    /// `offset..offset + len` must come after (same bytes, older epochs).
    /// `maintenance`: the access is a cache maintenance request, which
    /// orders nothing when there is no cache.
    fn order_access(
        &mut self,
        mem: &SimMemory,
        config: &CacheConfig,
        offset: usize,
        len: usize,
        maintenance: bool,
    ) {
        if maintenance && !config.enabled {
            return;
        }
        if let Some(weak) = &mut self.weak {
            let stores = weak.take_overlapping(offset, len.max(1));
            self.land(mem, config, stores);
        }
    }

    /// Weak mode: lands every buffered store (a full barrier, `io_wmb`).
    fn drain_all(&mut self, mem: &SimMemory, config: &CacheConfig) {
        if let Some(weak) = &mut self.weak {
            let stores = weak.take_all();
            self.land(mem, config, stores);
        }
    }

    /// Weak mode, once per operation: a random store may land, and the
    /// buffer is brought back within its size.
    fn weak_tick(&mut self, mem: &SimMemory, config: &CacheConfig) {
        loop {
            let Some(weak) = &mut self.weak else { return };
            if !(weak.over_capacity() || weak.roll_drain()) {
                return;
            }
            let Some(p) = weak.take_one() else { return };
            self.land_one(mem, config, &p);
        }
    }

    /// Writes back the dirty lines in `offset..end` (and drops every line
    /// there if `drop`). `defer` (weak mode): the write-backs go into the
    /// store buffer and reach memory as a store would.
    fn maintain(
        &mut self,
        mem: &SimMemory,
        offset: usize,
        end: usize,
        clean: bool,
        drop: bool,
        defer: bool,
    ) {
        if clean {
            let dirty: Vec<(usize, [u8; LINE])> = self
                .lines
                .range_mut(offset..end)
                .filter(|(_, line)| line.dirty)
                .map(|(&base, line)| {
                    line.dirty = false;
                    (base, line.bytes)
                })
                .collect();
            for (base, bytes) in dirty {
                match &mut self.weak {
                    Some(weak) if defer => weak.buffer_write_back(base, &bytes),
                    _ => self.write_back(mem, base, &bytes),
                }
                self.stats.lines_cleaned += 1;
            }
        }
        if drop {
            let doomed: Vec<usize> = self.lines.range(offset..end).map(|(&b, _)| b).collect();
            for base in doomed {
                if let Some(line) = self.lines.remove(&base) {
                    self.stats.lines_invalidated += 1;
                    if line.dirty {
                        self.stats.dirty_lines_discarded += 1;
                    }
                }
            }
        }
    }
}

/// One simulated core's view of a [`SimMemory`]: a private write-back data
/// cache with `LINE`-byte lines in front of the shared bytes.
///
/// Built by [`SimMemory::core`] (cache per [`CacheConfig`]) or
/// [`SimMemory::coherent_core`] (no cache). Implements [`SharedMemory`]
/// (window offsets) and [`CacheMaintenance`] (peer addresses,
/// `peer_base + offset`), both with `LINE` as the line.
///
/// `Send` and `Sync`: move it into the thread that plays the core. Sharing
/// one `SimCore` between threads models two contexts of one core (they see
/// the same cache).
///
/// # Examples
///
/// A missing `invalidate` makes this core read its stale copy:
///
/// ```
/// use conformance::sim::{CacheConfig, SimMemory};
/// use ipc_traits::shm::SharedMemory;
///
/// let mem = SimMemory::new(128, 0);
/// let me = mem.core::<32>(CacheConfig::write_back(7).never_evict());
/// let mut b = [0u8; 4];
/// me.read(64, &mut b).unwrap(); // caches line 64..96
/// mem.poke(64, b"new!").unwrap(); // the peer writes memory
/// me.read(64, &mut b).unwrap();
/// assert_eq!(b, [0; 4]); // stale
/// me.invalidate(64, 32).unwrap();
/// me.read(64, &mut b).unwrap();
/// assert_eq!(&b, b"new!");
/// ```
pub struct SimCore<const LINE: usize> {
    mem: SimMemory,
    config: CacheConfig,
    state: Arc<Mutex<CacheState<LINE>>>,
    /// Weak mode: what the I/O barriers of this core's threads reach.
    port: Option<Arc<dyn IoOrder>>,
}

/// The I/O-barrier side of a weakly ordered [`SimCore`]
/// (`ipc_traits::sim_order`).
struct Port<const LINE: usize> {
    mem: SimMemory,
    config: CacheConfig,
    state: Arc<Mutex<CacheState<LINE>>>,
}

impl<const LINE: usize> IoOrder for Port<LINE> {
    fn io_wmb(&self) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.drain_all(&self.mem, &self.config);
        if let Some(weak) = &mut state.weak {
            weak.stats.io_wmbs += 1;
        }
    }

    fn io_rmb(&self) {
        let now = self.mem.lock().version();
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(weak) = &mut state.weak {
            weak.stats.io_rmbs += 1;
            weak.floor = weak.floor.max(now);
        }
    }
}

impl<const LINE: usize> fmt::Debug for SimCore<LINE> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimCore")
            .field("line", &LINE)
            .field("config", &self.config)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl<const LINE: usize> SimCore<LINE> {
    /// The line size (inherent, so that `SimCore::<N>::LINE` is not
    /// ambiguous between the two traits).
    pub const LINE: usize = LINE;

    const LINE_IS_POWER_OF_TWO: () = assert!(LINE.is_power_of_two(), "LINE must be a power of two");

    pub(crate) fn new(mem: SimMemory, config: CacheConfig) -> Self {
        let () = Self::LINE_IS_POWER_OF_TWO;
        let (order, id, now) = {
            let mut m = mem.lock();
            let (order, id) = m.enrol();
            (order, id, m.version())
        };
        let config = match order {
            Some(o) if o.uncached => CacheConfig {
                enabled: false,
                ..config
            },
            _ => config,
        };
        assert!(
            !config.enabled || LINE >= 4,
            "a cached SimCore needs LINE >= 4 so that 32-bit indices never span two lines"
        );
        let state = Arc::new(Mutex::new(CacheState {
            lines: BTreeMap::new(),
            rng: SplitMix64::new(config.seed),
            stats: CacheStats::default(),
            faults: MemFaults::default(),
            fault_rng: SplitMix64::new(0),
            operations: 0,
            outside_window: 0,
            id,
            weak: order.map(|o| WeakState::new(o, config.seed, now)),
            fill_at: None,
            filled: false,
        }));
        let port = order.map(|_| {
            Arc::new(Port {
                mem: mem.clone(),
                config,
                state: Arc::clone(&state),
            }) as Arc<dyn IoOrder>
        });
        if let Some(port) = &port {
            ipc_traits::sim_order::register(port);
        }
        Self {
            mem,
            config,
            state,
            port,
        }
    }

    /// What weak ordering has done so far (`None`: a sequentially
    /// consistent core).
    #[must_use]
    pub fn weak_stats(&self) -> Option<WeakStats> {
        self.lock().weak.as_ref().map(|w| w.stats)
    }

    /// Weak mode: lands every buffered store of this core now (what
    /// eventually happens on silicon; a test calls it before looking at
    /// memory behind the core's back). Not a barrier of the program: not
    /// counted.
    pub fn drain_stores(&self) {
        self.lock().drain_all(&self.mem, &self.config);
    }

    fn lock(&self) -> MutexGuard<'_, CacheState<LINE>> {
        // A panic while the state is locked leaves at worst a half-done
        // multi-line copy, which is what a real core would leave too.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The counters so far.
    #[must_use]
    pub fn stats(&self) -> CacheStats {
        self.lock().stats
    }

    /// Arms (or, with `MemFaults::default()`, disarms) this core's faults
    /// (see the [module docs](super#faults)). The fault generator restarts
    /// from `faults.seed`.
    pub fn set_faults(&self, faults: MemFaults) {
        let mut state = self.lock();
        state.fault_rng = SplitMix64::new(faults.seed);
        state.faults = faults;
    }

    /// How many memory operations this core has made: every
    /// [`SharedMemory`] access and maintenance call and every
    /// [`CacheMaintenance`] call, refused ones included.
    #[must_use]
    pub fn operations(&self) -> u64 {
        self.lock().operations
    }

    /// How many [`SharedMemory`] accesses (reads, writes, index loads and
    /// stores, `clean`, `invalidate`) were refused because their range left
    /// the window. Code that checks peer input before using it never makes
    /// one. (Not a [`CacheStats`] field: the cache never saw them.)
    #[must_use]
    pub fn accesses_outside_window(&self) -> u64 {
        self.lock().outside_window
    }

    /// Allows `more` memory operations from now on (sets
    /// [`MemFaults::op_limit`] to [`SimCore::operations`] + `more`): a suite
    /// calls it before each step, so that one call that never returns
    /// panics instead of hanging the test.
    pub fn limit_operations(&self, more: u64) {
        let mut state = self.lock();
        state.faults.op_limit = state.operations.saturating_add(more).max(1);
    }

    /// Counts one memory operation; panics past [`MemFaults::op_limit`].
    /// Weak mode: registers the core with the calling thread (for its I/O
    /// barriers) and lets a buffered store land.
    fn operation(&self) {
        if let Some(port) = &self.port {
            ipc_traits::sim_order::register(port);
        }
        let mut state = self.lock();
        state.weak_tick(&self.mem, &self.config);
        state.operations += 1;
        let limit = state.faults.op_limit;
        if limit != 0 && state.operations > limit {
            let n = state.operations;
            drop(state);
            panic!("SimCore: {n} memory operations, over the limit of {limit}: a wait that never ends?");
        }
    }

    /// Passes a range check through, counting refusals that left the
    /// window.
    fn count_outside<T>(&self, r: Result<T, ShmError>) -> Result<T, ShmError> {
        if let Err(ShmError::OffsetOutsideWindow) = r {
            self.lock().outside_window += 1;
        }
        r
    }

    /// The memory behind this core's cache.
    #[must_use]
    pub fn memory(&self) -> &SimMemory {
        &self.mem
    }

    /// The configuration this core was built with.
    #[must_use]
    pub fn config(&self) -> CacheConfig {
        self.config
    }

    /// How many lines are cached now.
    #[must_use]
    pub fn cached_lines(&self) -> usize {
        self.lock().lines.len()
    }

    /// The state of the line holding `offset` ([`LineState::Uncached`] for
    /// offsets outside the window, where nothing can be cached).
    #[must_use]
    pub fn line_state(&self, offset: usize) -> LineState {
        let base = offset - offset % LINE;
        match self.lock().lines.get(&base) {
            None => LineState::Uncached,
            Some(line) if line.dirty => LineState::Dirty,
            Some(_) => LineState::Clean,
        }
    }

    /// Evicts the line holding `offset` now, as the cache could at any time:
    /// written back (whole) if dirty, then dropped. Returns whether a line
    /// was cached there. Counted as an eviction.
    ///
    /// # Errors
    ///
    /// [`ShmError::OffsetOutsideWindow`] if `offset` is not in the window.
    pub fn evict_line(&self, offset: usize) -> Result<bool, ShmError> {
        check_range(self.mem.len(), offset, 1)?;
        Ok(self.lock().evict(&self.mem, offset - offset % LINE))
    }

    /// Writes back every dirty line and empties the cache (test teardown).
    /// Counted as cleans and invalidations.
    pub fn flush_all(&self) {
        let mut state = self.lock();
        state.drain_all(&self.mem, &self.config);
        state.maintain(&self.mem, 0, usize::MAX, true, true, false);
    }

    /// [`SharedMemory::clean`], by window offset. (An inherent method, so
    /// that `core.clean(offset, len)` is not ambiguous when
    /// [`CacheMaintenance`] is in scope too.)
    ///
    /// # Errors
    ///
    /// [`ShmError::OffsetOutsideWindow`], [`ShmError::Misaligned`] (offset
    /// or end not aligned to `LINE`).
    pub fn clean(&self, offset: usize, len: usize) -> Result<(), ShmError> {
        self.operation();
        let end = self.count_outside(self.check_lines(offset, len))?;
        let mut state = self.lock();
        state.order_access(&self.mem, &self.config, offset, len, true);
        state.command(&self.mem, offset, end, true, false);
        Ok(())
    }

    /// [`SharedMemory::invalidate`], by window offset (inherent for the
    /// same reason as [`SimCore::clean`]).
    ///
    /// # Errors
    ///
    /// As [`SimCore::clean`].
    pub fn invalidate(&self, offset: usize, len: usize) -> Result<(), ShmError> {
        self.operation();
        let end = self.count_outside(self.check_lines(offset, len))?;
        let mut state = self.lock();
        state.order_access(&self.mem, &self.config, offset, len, true);
        state.command(&self.mem, offset, end, false, true);
        Ok(())
    }

    /// Writes back and then drops this core's lines of
    /// `offset..offset + len`: no data is lost.
    ///
    /// # Errors
    ///
    /// As [`SimCore::clean`].
    pub fn clean_invalidate(&self, offset: usize, len: usize) -> Result<(), ShmError> {
        self.operation();
        let end = self.count_outside(self.check_lines(offset, len))?;
        let mut state = self.lock();
        state.order_access(&self.mem, &self.config, offset, len, true);
        state.command(&self.mem, offset, end, true, true);
        Ok(())
    }

    /// Checks a maintenance range; returns its end.
    fn check_lines(&self, offset: usize, len: usize) -> Result<usize, ShmError> {
        check_range(self.mem.len(), offset, len)?;
        check_align(offset, LINE)?;
        check_align(offset + len, LINE)?;
        Ok(offset + len)
    }

    /// Reads a checked range; returns the memory version the read saw.
    fn read_checked(&self, offset: usize, dst: &mut [u8]) -> u64 {
        let mut state = self.lock();
        let state = &mut *state;
        state.order_access(&self.mem, &self.config, offset, dst.len(), false);
        let now = self.mem.lock().version();
        let version = match &mut state.weak {
            Some(weak) => weak.load_version(now),
            None => now,
        };
        if !self.config.enabled {
            self.mem.lock().load_at(offset, dst, version, state.id);
            return version;
        }
        state.fill_at = Some(version);
        state.filled = false;
        state.walk(
            &self.mem,
            &self.config,
            offset,
            dst.len(),
            |line, at, done, n| {
                dst[done..done + n].copy_from_slice(&line.bytes[at..at + n]);
            },
        );
        state.fill_at = None;
        // A read served from the cache alone executed now.
        if state.filled {
            version
        } else {
            now
        }
    }

    /// Writes a checked range (weak mode: into the store buffer).
    fn write_checked(&self, offset: usize, src: &[u8]) {
        let mut state = self.lock();
        match &mut state.weak {
            Some(weak) => weak.buffer(offset, src),
            None => state.store_now(&self.mem, &self.config, offset, src),
        }
    }

    /// Weak mode: a release barrier (later stores land after earlier ones).
    fn release(&self) {
        if let Some(weak) = &mut self.lock().weak {
            weak.release();
        }
    }

    /// Weak mode: an acquire barrier executed when memory was at `version`.
    fn acquire(&self, version: u64) {
        if let Some(weak) = &mut self.lock().weak {
            weak.acquire(version);
        }
    }

    /// An aligned index load (one line: `LINE >= 4` when cached), with
    /// acquire ordering.
    fn load<const N: usize>(&self, offset: usize) -> Result<[u8; N], ShmError> {
        self.operation();
        check_align(offset, N)?;
        self.count_outside(check_range(self.mem.len(), offset, N))?;
        let mut bytes = [0u8; N];
        let version = self.read_checked(offset, &mut bytes);
        self.acquire(version);
        Ok(bytes)
    }

    /// An aligned index store, with release ordering.
    fn store<const N: usize>(&self, offset: usize, bytes: [u8; N]) -> Result<(), ShmError> {
        self.operation();
        check_align(offset, N)?;
        self.count_outside(check_range(self.mem.len(), offset, N))?;
        self.release();
        self.write_checked(offset, &bytes);
        Ok(())
    }

    /// The window range of a peer-address maintenance range, if it lies
    /// inside the window and is line-aligned in window offsets.
    fn window_range(&self, range: &LineRange<Self>) -> Option<(usize, usize)> {
        let start = u64::try_from(range.start()).ok()?;
        let offset = usize::try_from(start.checked_sub(self.mem.peer_base())?).ok()?;
        let end = self.check_lines(offset, range.len()).ok()?;
        Some((offset, end))
    }

    /// Maintenance by peer address; ranges not fully inside the window are
    /// counted and ignored.
    fn maintain_peer(&self, range: LineRange<Self>, clean: bool, drop: bool) {
        self.operation();
        let window = self.window_range(&range);
        let mut state = self.lock();
        match window {
            Some((offset, end)) => {
                state.order_access(&self.mem, &self.config, offset, end - offset, true);
                state.command(&self.mem, offset, end, clean, drop);
            }
            None => state.stats.maintenance_outside_window += 1,
        }
    }
}

/// A core that goes away (its thread ended) lets its buffered stores land,
/// as they would in time on silicon.
impl<const LINE: usize> Drop for SimCore<LINE> {
    fn drop(&mut self) {
        self.drain_stores();
    }
}

impl<const LINE: usize> ErrorType for SimCore<LINE> {
    type Error = ShmError;
}

impl<const LINE: usize> SharedMemory for SimCore<LINE> {
    const LINE: usize = LINE;

    fn len(&self) -> usize {
        self.mem.len()
    }

    fn release_fence(&self) {
        self.release();
    }

    fn acquire_fence(&self) {
        let now = self.mem.lock().version();
        self.acquire(now);
    }

    fn full_fence(&self) {
        let now = {
            let mut state = self.lock();
            state.drain_all(&self.mem, &self.config);
            match &mut state.weak {
                Some(weak) => {
                    weak.stats.full_fences += 1;
                    weak.release();
                }
                None => return,
            }
            self.mem.lock().version()
        };
        self.acquire(now);
    }

    fn peer_base(&self) -> u64 {
        self.mem.peer_base()
    }

    fn read(&self, offset: usize, dst: &mut [u8]) -> Result<(), ShmError> {
        self.operation();
        self.count_outside(check_range(self.mem.len(), offset, dst.len()))?;
        self.read_checked(offset, dst);
        Ok(())
    }

    fn write(&self, offset: usize, src: &[u8]) -> Result<(), ShmError> {
        self.operation();
        self.count_outside(check_range(self.mem.len(), offset, src.len()))?;
        self.write_checked(offset, src);
        Ok(())
    }

    fn load_u16_acquire(&self, offset: usize) -> Result<u16, ShmError> {
        self.load(offset).map(u16::from_ne_bytes)
    }

    fn store_u16_release(&self, offset: usize, value: u16) -> Result<(), ShmError> {
        self.store(offset, value.to_ne_bytes())
    }

    fn load_u32_acquire(&self, offset: usize) -> Result<u32, ShmError> {
        self.load(offset).map(u32::from_ne_bytes)
    }

    fn store_u32_release(&self, offset: usize, value: u32) -> Result<(), ShmError> {
        self.store(offset, value.to_ne_bytes())
    }

    fn clean(&self, offset: usize, len: usize) -> Result<(), ShmError> {
        SimCore::clean(self, offset, len)
    }

    fn invalidate(&self, offset: usize, len: usize) -> Result<(), ShmError> {
        SimCore::invalidate(self, offset, len)
    }
}

/// Maintenance by address, where address `peer_base + offset` is window
/// offset `offset` (the simulated core sees memory where the peer does). A
/// range not fully inside the window, or not line-aligned in window offsets
/// (a `peer_base` not aligned to `LINE`), is ignored and counted in
/// [`CacheStats::maintenance_outside_window`].
impl<const LINE: usize> CacheMaintenance for SimCore<LINE> {
    const LINE: usize = LINE;

    fn clean(&self, range: LineRange<Self>) {
        self.maintain_peer(range, true, false);
    }

    /// Drops the lines of `range`, discarding dirty data.
    ///
    /// # Safety
    ///
    /// None needed here: the simulated lines hold no Rust object, so
    /// discarding them can only lose shared-memory bytes (the trait keeps
    /// the `unsafe` for real caches).
    #[allow(unsafe_code)] // implementing the trait's `unsafe fn`; no unsafe operation inside
    unsafe fn invalidate(&self, range: LineRange<Self>) {
        self.maintain_peer(range, false, true);
    }

    fn clean_invalidate(&self, range: LineRange<Self>) {
        self.maintain_peer(range, true, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::WeakOrder;

    fn pinned() -> CacheConfig {
        CacheConfig::write_back(1).never_evict()
    }

    #[test]
    fn writes_allocate_stay_local_and_clean_writes_back_whole_lines() {
        let mem = SimMemory::from_bytes(&[7; 64], 0);
        let core: SimCore<16> = mem.core(pinned());
        core.write(18, &[1, 2]).unwrap();
        assert_eq!(core.line_state(16), LineState::Dirty);
        assert_eq!(core.line_state(31), LineState::Dirty);
        assert_eq!(core.line_state(32), LineState::Uncached);
        assert_eq!(mem.snapshot(), [7; 64]);
        let mut got = [0; 4];
        core.read(16, &mut got).unwrap();
        assert_eq!(got, [7, 7, 1, 2]);
        core.clean(16, 16).unwrap();
        assert_eq!(core.line_state(16), LineState::Clean);
        assert_eq!(mem.snapshot()[16..20], [7, 7, 1, 2]);
        let stats = core.stats();
        assert_eq!((stats.fills, stats.lines_cleaned), (1, 1));
        // Cleaning a clean line writes nothing.
        core.clean(0, 64).unwrap();
        assert_eq!(core.stats().lines_cleaned, 1);
    }

    #[test]
    fn invalidate_discards_local_writes_and_counts_them() {
        let mem = SimMemory::new(64, 0);
        let core: SimCore<16> = mem.core(pinned());
        core.write(0, &[9; 20]).unwrap();
        core.invalidate(0, 16).unwrap();
        let mut got = [0; 20];
        core.read(0, &mut got).unwrap();
        assert_eq!(got[..16], [0; 16]);
        assert_eq!(got[16..], [9; 4]);
        let stats = core.stats();
        assert_eq!(
            (stats.lines_invalidated, stats.dirty_lines_discarded),
            (1, 1)
        );
    }

    #[test]
    fn a_last_line_cut_short_by_the_window_end_is_handled() {
        let mem = SimMemory::new(40, 0);
        let core: SimCore<32> = mem.core(pinned());
        core.write(36, &[5; 4]).unwrap();
        core.store_u32_release(32, 0x0102_0304).unwrap();
        assert_eq!(core.load_u32_acquire(32), Ok(0x0102_0304));
        assert!(core.clean(32, 32).is_err());
        core.flush_all();
        assert_eq!(mem.snapshot()[32..36], 0x0102_0304u32.to_ne_bytes());
        assert_eq!(mem.snapshot()[36..], [5; 4]);
        assert_eq!(core.cached_lines(), 0);
    }

    #[test]
    fn capacity_evicts_other_lines_and_writes_dirty_ones_back() {
        let mem = SimMemory::new(128, 0);
        let core: SimCore<16> = mem.core(CacheConfig {
            capacity_lines: 2,
            ..pinned()
        });
        for line in 0..8u8 {
            core.write(usize::from(line) * 16, &[line + 1]).unwrap();
            assert!(core.cached_lines() <= 2);
            assert_ne!(core.line_state(usize::from(line) * 16), LineState::Uncached);
        }
        let stats = core.stats();
        assert_eq!((stats.evictions, stats.dirty_evictions), (6, 6));
        core.flush_all();
        let now = mem.snapshot();
        assert!((0..8u8).all(|l| now[usize::from(l) * 16] == l + 1));
    }

    #[test]
    fn evict_line_reports_whether_a_line_was_cached() {
        let mem = SimMemory::new(64, 0);
        let core: SimCore<16> = mem.core(pinned());
        assert_eq!(core.evict_line(20), Ok(false));
        core.write(20, &[3]).unwrap();
        assert_eq!(core.evict_line(31), Ok(true));
        assert_eq!(mem.snapshot()[20], 3);
        assert_eq!(core.stats().dirty_evictions, 1);
        assert!(core.evict_line(64).is_err());
    }

    #[test]
    fn a_coherent_core_never_caches() {
        let mem = SimMemory::new(64, 0);
        let core: SimCore<1> = mem.coherent_core();
        core.store_u16_release(2, 0xbeef).unwrap();
        assert_eq!(mem.snapshot()[2..4], 0xbeefu16.to_ne_bytes());
        mem.poke(2, &[0, 0]).unwrap();
        assert_eq!(core.load_u16_acquire(2), Ok(0));
        assert_eq!(
            (core.cached_lines(), core.stats()),
            (0, CacheStats::default())
        );
        assert_eq!(SimCore::<1>::LINE, 1);
        assert!(format!("{core:?}").contains("SimCore"));
    }

    #[test]
    fn a_torn_write_back_shows_the_peer_a_half_written_line() {
        use std::sync::{Arc, Mutex as StdMutex};
        let mem = SimMemory::new(64, 0);
        let core: SimCore<32> = mem.core(pinned());
        let seen: Arc<StdMutex<Vec<Vec<u8>>>> = Arc::default();
        let (peer_mem, log) = (mem.clone(), Arc::clone(&seen));
        core.set_faults(MemFaults {
            seed: 3,
            torn_one_in: 1,
            between_halves: Some(Arc::new(move || {
                log.lock().unwrap().push(peer_mem.snapshot()[..32].to_vec());
            })),
            ..MemFaults::default()
        });
        core.write(0, &[0xAB; 32]).unwrap();
        core.clean(0, 32).unwrap();
        // Complete once `clean` returned ...
        assert_eq!(mem.snapshot()[..32], [0xAB; 32]);
        // ... but the peer saw exactly one half of it in between.
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
        let new = seen[0].iter().filter(|&&b| b == 0xAB).count();
        assert_eq!(new, 16, "{:?}", seen[0]);
        assert!(seen[0][..16].iter().all(|&b| b == seen[0][0]));
        assert_eq!(core.stats().torn_write_backs, 1);
        // Disarmed: whole lines again.
        core.set_faults(MemFaults::default());
        core.write(0, &[1; 32]).unwrap();
        core.clean(0, 32).unwrap();
        assert_eq!(core.stats().torn_write_backs, 1);
    }

    #[test]
    fn tearing_is_seeded_and_leaves_evictions_unchanged() {
        let run = |torn: u32| {
            let mem = SimMemory::new(512, 0);
            let core: SimCore<32> = mem.core(CacheConfig::write_back(9));
            core.set_faults(MemFaults {
                seed: 1,
                torn_one_in: torn,
                ..MemFaults::default()
            });
            for i in 0..400usize {
                core.write((i * 40) % 480, &[i as u8; 8]).unwrap();
                if i % 7 == 0 {
                    core.clean(0, 512).unwrap();
                }
            }
            core.flush_all();
            let s = core.stats();
            (mem.snapshot(), s.evictions, s.torn_write_backs)
        };
        let (bytes, evictions, torn) = run(2);
        assert!(torn > 10);
        assert_eq!(run(2), (bytes.clone(), evictions, torn));
        let (plain, plain_evictions, none) = run(0);
        assert_eq!((plain, plain_evictions, none), (bytes, evictions, 0));
    }

    #[test]
    fn accesses_outside_the_window_are_refused_and_counted() {
        let mem = SimMemory::new(64, 0);
        let core: SimCore<16> = mem.core(pinned());
        let mut b = [0u8; 4];
        assert!(core.read(62, &mut b).is_err());
        assert!(core.write(64, &[1]).is_err());
        assert!(core.load_u32_acquire(64).is_err());
        assert!(core.store_u16_release(usize::MAX - 1, 0).is_err());
        assert!(SimCore::clean(&core, 64, 16).is_err());
        assert!(SimCore::invalidate(&core, 48, 32).is_err());
        // A misaligned index is another error, not counted here.
        assert!(core.load_u16_acquire(1).is_err());
        assert_eq!(core.accesses_outside_window(), 6);
        assert_eq!(core.stats(), CacheStats::default());
        assert_eq!(core.operations(), 7);
        assert_eq!(mem.snapshot(), [0; 64]);
    }

    #[test]
    #[should_panic(expected = "over the limit of 10")]
    fn the_operation_limit_turns_an_endless_wait_into_a_panic() {
        let mem = SimMemory::new(64, 0);
        let core: SimCore<16> = mem.coherent_core();
        core.set_faults(MemFaults {
            op_limit: 10,
            ..MemFaults::default()
        });
        // A wait for a flag nobody sets.
        while core.load_u32_acquire(0) == Ok(0) {}
    }

    #[test]
    #[should_panic(expected = "LINE >= 4")]
    fn a_cached_core_with_lines_narrower_than_an_index_is_refused() {
        drop(SimMemory::new(64, 0).core::<2>(CacheConfig::write_back(0)));
    }
    fn weak_core(seed: u64, drain_one_in: u32) -> (SimMemory, SimCore<32>) {
        let mem = SimMemory::new(256, 0).weak(WeakOrder {
            drain_one_in,
            ..WeakOrder::arm_like(seed).uncached()
        });
        let core = mem.core(pinned());
        (mem, core)
    }

    #[test]
    fn weak_stores_land_out_of_order_unless_a_release_separates_them() {
        // 8 under Miri saw no reordering at all (seeds 0..8, 8 steps each).
        let seeds = if cfg!(miri) { 24 } else { 64 };
        let run = |fenced: bool| {
            let mut overtaken = 0;
            for seed in 0..seeds {
                let (mem, core) = weak_core(seed, 2);
                core.write(0, &[1; 4]).unwrap();
                if fenced {
                    core.release_fence();
                }
                core.write(64, &[2; 4]).unwrap();
                for _ in 0..seeds {
                    let now = mem.snapshot();
                    overtaken += u32::from(now[64] == 2 && now[0] == 0);
                    let mut b = [0u8; 4];
                    core.read(128, &mut b).unwrap(); // time passes
                }
                assert_eq!(mem.snapshot()[..4], [1; 4], "seed {seed}: landed");
            }
            overtaken
        };
        assert!(run(false) > 0, "no reordering without the release");
        assert_eq!(run(true), 0, "a release keeps the order");
    }

    #[test]
    fn a_doorbell_without_io_wmb_does_not_wait_for_buffered_stores() {
        let (mem, core) = weak_core(1, 0);
        core.write(0, &[7; 4]).unwrap();
        // A register write here would find memory without the stores ...
        assert_eq!(mem.snapshot()[..4], [0; 4]);
        // ... and after the I/O write barrier of this thread's core, with.
        ipc_traits::barrier::io_wmb();
        assert_eq!(mem.snapshot()[..4], [7; 4]);
        let stats = core.weak_stats().unwrap();
        assert_eq!((stats.stores_buffered, stats.io_wmbs), (1, 1));
        // Another thread's barrier does not reach this core.
        core.write(4, &[8; 4]).unwrap();
        std::thread::spawn(ipc_traits::barrier::io_wmb)
            .join()
            .unwrap();
        assert_eq!(mem.snapshot()[4..8], [0; 4]);
        core.full_fence();
        assert_eq!(mem.snapshot()[4..8], [8; 4]);
    }

    #[test]
    fn weak_loads_run_early_until_an_acquire_and_see_own_stores() {
        let (mem, core) = weak_core(3, 0);
        for v in 1..=20u8 {
            mem.poke(0, &[v]).unwrap();
        }
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let mut b = [0u8; 1];
            core.read(0, &mut b).unwrap();
            seen.insert(b[0]);
        }
        assert!(seen.len() > 2 && seen.contains(&20), "{seen:?}");
        core.acquire_fence();
        for _ in 0..50 {
            let mut b = [0u8; 1];
            core.read(0, &mut b).unwrap();
            assert_eq!(b[0], 20, "after the acquire");
        }
        // An I/O read barrier ends early loads too.
        mem.poke(0, &[21]).unwrap();
        mem.poke(0, &[22]).unwrap();
        ipc_traits::barrier::io_rmb();
        let mut b = [0u8; 1];
        core.read(0, &mut b).unwrap();
        assert_eq!(b[0], 22);
        // Its own stores it always sees, landed or not.
        mem.poke(8, &[1]).unwrap();
        core.write(8, &[9]).unwrap();
        core.drain_stores();
        mem.poke(12, &[1]).unwrap();
        for _ in 0..50 {
            core.read(8, &mut b).unwrap();
            assert_eq!(b[0], 9);
        }
    }

    #[test]
    fn a_clean_write_back_waits_in_the_buffer_until_its_line_is_used_again() {
        let mem = SimMemory::new(256, 0).weak(WeakOrder {
            drain_one_in: 0,
            ..WeakOrder::arm_like(5)
        });
        let core: SimCore<32> = mem.core(pinned());
        core.write(0, &[3; 4]).unwrap();
        core.clean(0, 32).unwrap();
        // The write-back waits in the buffer: memory has nothing yet.
        assert_eq!(mem.snapshot()[..4], [0; 4]);
        assert_eq!(core.weak_stats().unwrap().write_backs_buffered, 1);
        // Invalidating and reading the line lands it first.
        core.invalidate(0, 32).unwrap();
        let mut b = [0u8; 4];
        core.read(0, &mut b).unwrap();
        assert_eq!((b, &mem.snapshot()[..4]), ([3; 4], &[3u8; 4][..]));
    }
}
