//! The sound shared-memory copy against memcpy (`bench instr copy-*`).
//!
//! One iteration copies a `len`-byte message into shared memory and back
//! out: with [`ipc_traits::bytes`] (word-wise relaxed atomics, what
//! `RawRegion` and the zero-copy views use) or with `copy_from_slice` (the
//! C library's memcpy: the length is opaque to the compiler, as in the
//! link). The shared side starts 16 bytes into a 64-byte aligned block, as a
//! payload does behind its header.
#![allow(unsafe_code)]

use std::hint::black_box;

use crate::common::Failure;

/// A 64-byte aligned block of memory standing in for a shared buffer.
#[repr(C, align(64))]
struct Block([u8; 576]);

/// Runs `count` copy-in + copy-out pairs of `len` bytes with `how`
/// (`shared` or `memcpy`); returns `count`.
///
/// # Errors
///
/// An unknown `how`, a length over 512, or a copy that came back wrong.
pub fn run(how: &str, len: usize, count: u32) -> Result<u32, Failure> {
    if len > 512 {
        return Err(Failure::new(format!("copy length {len} over 512")));
    }
    let mut block = Box::new(Block([0; 576]));
    let msg: Vec<u8> = (0..len).map(|k| k as u8 ^ 0x5A).collect();
    let mut out = vec![0u8; len];
    let len = black_box(len);
    match how {
        "shared" => {
            let shared = block.0.as_mut_ptr().wrapping_add(16);
            for _ in 0..count {
                let shared = black_box(shared);
                // SAFETY: `shared..+len` lies inside `block` (len <= 512,
                // 16 + 512 <= 576), which no reference covers while the loop
                // runs and which is reached only through these copies.
                unsafe {
                    ipc_traits::bytes::copy_to_shared(&msg[..len], shared);
                    ipc_traits::bytes::copy_from_shared(shared, &mut out[..len]);
                }
                black_box(&mut out);
            }
        }
        "memcpy" => {
            for _ in 0..count {
                let block = black_box(&mut block);
                block.0[16..16 + len].copy_from_slice(&msg[..len]);
                out[..len].copy_from_slice(&block.0[16..16 + len]);
                black_box(&mut out);
            }
        }
        _ => return Err(Failure::new(format!("unknown copy {how:?}"))),
    }
    if count > 0 && out != msg {
        return Err(Failure::new("copy came back wrong"));
    }
    Ok(count)
}
