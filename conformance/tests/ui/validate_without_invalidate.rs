//! Misuse: validating the peer's length (and so making the buffer readable)
//! without invalidating first, which would read stale lines.
//! `ShmBuf<_, Received>` has no `validate` (E0599).

use core::ptr::NonNull;

use ipc_traits::buf::{Received, ShmBuf};
use ipc_traits::cache::Coherent;
use ipc_traits::shm::RawRegion;

#[repr(align(64))]
struct Backing([u8; 128]);

fn main() {
    let mut backing = Backing([0; 128]);
    let base = NonNull::new(backing.0.as_mut_ptr()).unwrap();
    // SAFETY: `backing` outlives `region` and is accessed only through it.
    let region = unsafe { RawRegion::new(base, 128, 0x1000, Coherent) }.unwrap();
    // SAFETY: the slot came back from the peer and this program owns it now.
    let rx = unsafe { ShmBuf::<_, Received>::new_unchecked(&region, 64, 64) }.unwrap();
    let readable = rx.validate(4).unwrap();
    let _payload = readable.view();
}
