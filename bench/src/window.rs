//! Real shared memory for a link: a zeroed, page-aligned heap block seen
//! through [`RawRegion<Coherent>`] (both threads run on cache-coherent
//! cores of one process).
#![allow(unsafe_code)]

use std::alloc::{alloc_zeroed, dealloc, Layout as AllocLayout};
use std::ptr::NonNull;

use ipc_traits::cache::Coherent;
use ipc_traits::shm::RawRegion;

use crate::common::Failure;

/// The address the "peer" sees the window at (descriptor addresses are
/// relative to it).
pub const PEER_BASE: u64 = 0x4000_0000;

/// A zeroed block of memory and the [`RawRegion`] over it.
#[derive(Debug)]
pub struct Window {
    // No drop glue of its own that touches the memory: freeing the block
    // in `Drop::drop` before this field is dropped is fine.
    region: RawRegion<Coherent>,
    base: NonNull<u8>,
    layout: AllocLayout,
}

// SAFETY: the block is owned by this value alone and only reached through
// `region`, which is itself `Send` and `Sync` (atomics and raw copies).
unsafe impl Send for Window {}
// SAFETY: as above; `&Window` only hands out `&RawRegion`.
unsafe impl Sync for Window {}

impl Window {
    /// A fresh zeroed window of `len` bytes, 4096-aligned.
    ///
    /// # Errors
    ///
    /// Zero length or out of memory.
    pub fn new(len: usize) -> Result<Self, Failure> {
        let layout = AllocLayout::from_size_align(len.max(1), 4096)
            .map_err(|e| Failure::new(format!("window layout: {e}")))?;
        // SAFETY: the layout has a non-zero size.
        let raw = unsafe { alloc_zeroed(layout) };
        let base = NonNull::new(raw).ok_or_else(|| Failure::new("out of memory"))?;
        // SAFETY: `base..base + len` was just allocated for this value alone,
        // is valid for reads and writes until `drop` (after `region` is
        // gone), holds no Rust object and is reached only through `region`;
        // the cores are cache-coherent, so `Coherent` is the right
        // maintenance.
        let region = match unsafe { RawRegion::new(base, len, PEER_BASE, Coherent) } {
            Ok(r) => r,
            Err(e) => {
                // SAFETY: allocated above with this layout, not used since.
                unsafe { dealloc(raw, layout) };
                return Err(Failure::new(format!("raw region: {e}")));
            }
        };
        Ok(Self {
            region,
            base,
            layout,
        })
    }

    /// The shared memory.
    pub fn region(&self) -> &RawRegion<Coherent> {
        &self.region
    }
}

impl Drop for Window {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with `self.layout`; every borrow of
        // `region` (links, buffers) ended before `self` can be dropped.
        unsafe { dealloc(self.base.as_ptr(), self.layout) };
    }
}
