//! The simulated shared memory: the bytes every core and the peer see.
#![deny(unsafe_code)]

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use ipc_traits::shm::{check_range, ShmError};

use super::{CacheConfig, SimCore};

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
    bytes: Arc<Mutex<Vec<u8>>>,
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
            bytes: Arc::new(Mutex::new(bytes)),
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
        self.lock().clone()
    }

    /// Copies memory at `offset` into `dst`, bypassing every cache.
    ///
    /// # Errors
    ///
    /// [`ShmError::OffsetOutsideWindow`] (nothing is copied).
    pub fn peek(&self, offset: usize, dst: &mut [u8]) -> Result<(), ShmError> {
        check_range(self.len, offset, dst.len())?;
        dst.copy_from_slice(&self.lock()[offset..offset + dst.len()]);
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
        self.lock()[offset..offset + bytes.len()].copy_from_slice(bytes);
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
    pub(crate) fn lock(&self) -> MutexGuard<'_, Vec<u8>> {
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
        assert_eq!(
            mem.poke(3, &[0, 0]),
            Err(ShmError::OffsetOutsideWindow { offset: 3, len: 2 })
        );
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
