//! The simulated shared memory: the bytes every core and the peer see.
#![deny(unsafe_code)]

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use ipc_traits::shm::{check_range, ShmError};

use super::{CacheConfig, SimCore, WeakOrder};

/// The writer id of changes made outside every core ([`SimMemory::poke`]).
pub(crate) const OUTSIDE: u32 = u32::MAX;

/// How many recent changes a weakly ordered memory remembers, so that a
/// load running early can see memory as it was (older versions come back
/// as the oldest remembered one: newer than asked, which is always allowed).
const HISTORY: usize = 512;

/// One remembered change: the bytes it overwrote.
struct Change {
    version: u64,
    offset: usize,
    old: Vec<u8>,
    by: u32,
}

/// The bytes, their version (one per change) and, in weak mode, the recent
/// history.
pub(crate) struct MemState {
    bytes: Vec<u8>,
    version: u64,
    history: VecDeque<Change>,
    weak: Option<WeakOrder>,
    cores: u32,
}

impl MemState {
    /// The version of memory now: how many changes it has had.
    pub(crate) fn version(&self) -> u64 {
        self.version
    }

    /// The current bytes of `offset..offset + len` (checked by the caller).
    pub(crate) fn bytes(&self, offset: usize, len: usize) -> &[u8] {
        &self.bytes[offset..offset + len]
    }

    /// Writes `src` at `offset` (checked by the caller) as writer `by`.
    pub(crate) fn store(&mut self, offset: usize, src: &[u8], by: u32) {
        let at = offset..offset + src.len();
        self.version += 1;
        if self.weak.is_some() {
            if self.history.len() == HISTORY {
                self.history.pop_front();
            }
            self.history.push_back(Change {
                version: self.version,
                offset,
                old: self.bytes[at.clone()].to_vec(),
                by,
            });
        }
        self.bytes[at].copy_from_slice(src);
    }

    /// Copies `offset..offset + dst.len()` as memory held it at `version`
    /// (as far as the history reaches), except that the changes of writer
    /// `me` are always seen: a core never loses its own stores.
    pub(crate) fn load_at(&self, offset: usize, dst: &mut [u8], version: u64, me: u32) {
        dst.copy_from_slice(&self.bytes[offset..offset + dst.len()]);
        if version >= self.version {
            return;
        }
        let mut own = vec![false; dst.len()];
        for change in self.history.iter().rev() {
            if change.version <= version {
                break;
            }
            let start = change.offset.max(offset);
            let end = (change.offset + change.old.len()).min(offset + dst.len());
            for at in start..end {
                let i = at - offset;
                if change.by == me {
                    own[i] = true;
                } else if !own[i] {
                    dst[i] = change.old[at - change.offset];
                }
            }
        }
    }

    /// The weak ordering cores built now get, and a fresh writer id.
    pub(crate) fn enrol(&mut self) -> (Option<WeakOrder>, u32) {
        self.cores += 1;
        (self.weak, self.cores)
    }
}

/// Simulated shared memory: the bytes both cores see, behind their caches.
///
/// Cloning gives another handle to the *same* memory (an `Arc` inside), so
/// one clone can move into each simulated core's thread. Every access takes
/// a lock: the model is data-race free, and a line fill or write-back is
/// atomic with respect to every other access.
///
/// Accesses through [`SimMemory`] itself ([`SimMemory::snapshot`],
/// [`SimMemory::peek`], [`SimMemory::poke`]) bypass every cache: they are
/// what a test, a DMA engine or a hostile peer sees and does.
///
/// # Examples
///
/// ```
/// use conformance::sim::{CacheConfig, SimMemory};
/// use ipc_traits::shm::SharedMemory;
///
/// let mem = SimMemory::new(256, 0x8000_0000);
/// let a = mem.core::<32>(CacheConfig::write_back(1).never_evict());
/// a.write(32, b"hi").unwrap();
/// assert_eq!(mem.snapshot()[32..34], [0, 0]); // still in A's cache
/// a.clean(32, 32).unwrap();
/// assert_eq!(&mem.snapshot()[32..34], b"hi");
/// ```
#[derive(Clone)]
pub struct SimMemory {
    bytes: Arc<Mutex<MemState>>,
    len: usize,
    peer_base: u64,
}

impl fmt::Debug for SimMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimMemory")
            .field("len", &self.len)
            .field("peer_base", &format_args!("{:#x}", self.peer_base))
            .finish_non_exhaustive()
    }
}

impl SimMemory {
    /// `len` zero bytes, seen by the peer at `peer_base`.
    ///
    /// # Panics
    ///
    /// If `peer_base + len` overflows the peer's address space (a setup
    /// error of the test, not peer input).
    #[must_use]
    pub fn new(len: usize, peer_base: u64) -> Self {
        Self::from_vec(vec![0; len], peer_base)
    }

    /// Memory holding a copy of `bytes` (a golden image, for example), seen
    /// by the peer at `peer_base`.
    ///
    /// # Panics
    ///
    /// As [`SimMemory::new`].
    #[must_use]
    pub fn from_bytes(bytes: &[u8], peer_base: u64) -> Self {
        Self::from_vec(bytes.to_vec(), peer_base)
    }

    fn from_vec(bytes: Vec<u8>, peer_base: u64) -> Self {
        let len = bytes.len();
        assert!(
            u64::try_from(len)
                .ok()
                .and_then(|l| peer_base.checked_add(l))
                .is_some(),
            "SimMemory: peer_base {peer_base:#x} + len {len} overflows"
        );
        Self {
            bytes: Arc::new(Mutex::new(MemState {
                bytes,
                version: 0,
                history: VecDeque::new(),
                weak: None,
                cores: 0,
            })),
            len,
            peer_base,
        }
    }

    /// The window length in bytes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the window is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The address at which the peer sees offset 0.
    #[must_use]
    pub fn peer_base(&self) -> u64 {
        self.peer_base
    }

    /// What memory holds now (no cache is consulted or written back).
    #[must_use]
    pub fn snapshot(&self) -> Vec<u8> {
        self.lock().bytes.clone()
    }

    /// Makes every core built from this memory from now on (through any
    /// clone of the handle) weakly ordered as `order` says (see the
    /// [module docs](super#weak-ordering)); cores built before keep their
    /// order.
    #[must_use]
    pub fn weak(self, order: WeakOrder) -> Self {
        self.lock().weak = Some(order);
        self
    }

    /// [`SimMemory::weak`] when `order` is `Some`, this memory unchanged
    /// otherwise (what a suite run in both modes calls).
    #[must_use]
    pub fn with_order(self, order: Option<WeakOrder>) -> Self {
        match order {
            Some(order) => self.weak(order),
            None => self,
        }
    }

    /// The weak ordering new cores get, if any.
    #[must_use]
    pub fn weak_order(&self) -> Option<WeakOrder> {
        self.lock().weak
    }

    /// Copies memory at `offset` into `dst`, bypassing every cache.
    ///
    /// # Errors
    ///
    /// [`ShmError::OffsetOutsideWindow`] (nothing is copied).
    pub fn peek(&self, offset: usize, dst: &mut [u8]) -> Result<(), ShmError> {
        check_range(self.len, offset, dst.len())?;
        dst.copy_from_slice(self.lock().bytes(offset, dst.len()));
        Ok(())
    }

    /// Writes `bytes` straight into memory at `offset`, bypassing every
    /// cache: a test setting up state, or a hostile peer scribbling.
    ///
    /// # Errors
    ///
    /// [`ShmError::OffsetOutsideWindow`] (nothing is written).
    pub fn poke(&self, offset: usize, bytes: &[u8]) -> Result<(), ShmError> {
        check_range(self.len, offset, bytes.len())?;
        self.lock().store(offset, bytes, OUTSIDE);
        Ok(())
    }

    /// A core's view: a per-core write-back data cache with `LINE`-byte
    /// lines in front of this memory (see the [module docs](super) for the
    /// rules). Lines are aligned to `LINE` in window offsets; a last line
    /// cut short by the window end is filled and written back only up to
    /// the end.
    ///
    /// # Panics
    ///
    /// At compile time if `LINE` is not a power of two. At run time if the
    /// cache is enabled with `LINE < 4`: a 32-bit index would then span two
    /// lines and could tear, which no real cache does.
    #[must_use]
    pub fn core<const LINE: usize>(&self, cache: CacheConfig) -> SimCore<LINE> {
        SimCore::new(self.clone(), cache)
    }

    /// A coherent view (no cache): every access goes straight to memory.
    /// `LINE` is still the granule `clean`/`invalidate` check ranges
    /// against; use 1 to accept any range.
    #[must_use]
    pub fn coherent_core<const LINE: usize>(&self) -> SimCore<LINE> {
        SimCore::new(self.clone(), CacheConfig::COHERENT)
    }

    /// Locks the bytes. A panic in another thread while holding the lock
    /// cannot leave them inconsistent (every update is a plain copy), so a
    /// poisoned lock is used as is.
    pub(crate) fn lock(&self) -> MutexGuard<'_, MemState> {
        self.bytes.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_share_one_memory_and_accesses_are_bounds_checked() {
        let mem = SimMemory::from_bytes(&[1, 2, 3, 4], 0x100);
        let other = mem.clone();
        other.poke(2, &[9, 9]).unwrap();
        assert_eq!(mem.snapshot(), [1, 2, 9, 9]);
        let mut two = [0u8; 2];
        mem.peek(1, &mut two).unwrap();
        assert_eq!(two, [2, 9]);
        assert_eq!(mem.poke(3, &[0, 0]), Err(ShmError::OffsetOutsideWindow));
        assert!(mem.poke(usize::MAX, &[0]).is_err());
        assert!(mem.peek(4, &mut two).is_err());
        assert_eq!(mem.snapshot(), [1, 2, 9, 9]);
        assert_eq!(
            (mem.len(), mem.peer_base(), mem.is_empty()),
            (4, 0x100, false)
        );
    }

    #[test]
    #[should_panic(expected = "overflows")]
    fn a_window_past_the_end_of_the_address_space_is_refused() {
        drop(SimMemory::new(16, u64::MAX - 8));
    }
}
