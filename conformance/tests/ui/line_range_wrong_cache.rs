//! Misuse: handing a range checked for one cache (here `Coherent`, 1-byte
//! granule) to a cache with 32-byte lines, where it may not be line-aligned
//! and maintenance would touch a neighbour. `LineRange<C>` carries `C`
//! (E0308); `LineRange::retarget` is the checked conversion.

use ipc_traits::cache::{CacheMaintenance, Coherent, LineRange};

/// A cache with 32-byte lines that only records what it was asked to do.
struct Line32;

impl CacheMaintenance for Line32 {
    const LINE: usize = 32;
    fn clean(&self, _range: LineRange<Self>) {}
    unsafe fn invalidate(&self, _range: LineRange<Self>) {}
    fn clean_invalidate(&self, _range: LineRange<Self>) {}
}

fn main() {
    let range = LineRange::<Coherent>::new(0x2000_0004, 12).unwrap();
    Line32.clean(range);
}
