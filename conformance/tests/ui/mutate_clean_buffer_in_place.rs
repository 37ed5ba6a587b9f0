//! Misuse: zero-copy filling of a buffer after it was cleaned (the bytes
//! would stay in this core's cache). `ShmBuf<_, Clean>` has no
//! `view_mut` (E0599).

use core::ptr::NonNull;

use ipc_traits::buf::{Dirty, ShmBuf};
use ipc_traits::cache::Coherent;
use ipc_traits::shm::RawRegion;

#[repr(align(64))]
struct Backing([u8; 128]);

fn main() {
    let mut backing = Backing([0; 128]);
    let base = NonNull::new(backing.0.as_mut_ptr()).unwrap();
    // SAFETY: `backing` outlives `region` and is accessed only through it.
    let region = unsafe { RawRegion::new(base, 128, 0x1000, Coherent) }.unwrap();
    // SAFETY: this program owns the slot; no other buffer covers it.
    let mut buf = unsafe { ShmBuf::<_, Dirty>::new_unchecked(&region, 0, 64) }.unwrap();
    buf.set_len(4).unwrap();
    let mut clean = buf.clean().unwrap();
    clean.view_mut(0, 4).unwrap().copy_from(b"ping").unwrap();
    let _slot = clean.into_published();
}
