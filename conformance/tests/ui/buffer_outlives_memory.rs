//! Misuse: a buffer handle that outlives the shared-memory window it names
//! (for example a window torn down while a buffer is still in flight). The
//! buffer borrows the window (E0597).

use core::ptr::NonNull;

use ipc_traits::buf::{Dirty, ShmBuf};
use ipc_traits::cache::Coherent;
use ipc_traits::shm::RawRegion;

#[repr(align(64))]
struct Backing([u8; 128]);

fn main() {
    let mut backing = Backing([0; 128]);
    let buf;
    {
        let base = NonNull::new(backing.0.as_mut_ptr()).unwrap();
        // SAFETY: `backing` outlives `region` and is accessed only through it.
        let region = unsafe { RawRegion::new(base, 128, 0x1000, Coherent) }.unwrap();
        // SAFETY: this program owns the slot; no other buffer covers it.
        buf = unsafe { ShmBuf::<_, Dirty>::new_unchecked(&region, 0, 64) }.unwrap();
    }
    let _slot = buf.clean().unwrap().into_published();
}
