//! The deterministic message stream both sides of the raw exchange check
//! (shared verbatim with the guest helper, which includes this file).
//!
//! Message `k` of stream `seed` has a length in `1..=MAX_LEN` and contents
//! drawn from a splitmix64 generator seeded by `(seed, k)`, so each side
//! can check every message it receives without the other sending lengths.
#![deny(unsafe_code)]

/// The largest payload: a 512-byte buffer less the 16-byte rpmsg header.
pub const MAX_LEN: usize = 496;

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Writes message `k` of stream `seed` into `buf` and returns its length.
pub fn message(seed: u64, k: u64, buf: &mut [u8; MAX_LEN]) -> usize {
    let mut s = seed ^ k.wrapping_mul(0xd1b5_4a32_d192_ed03);
    let len = 1 + (splitmix(&mut s) % MAX_LEN as u64) as usize;
    for chunk in buf[..len].chunks_mut(8) {
        let w = splitmix(&mut s).to_le_bytes();
        chunk.copy_from_slice(&w[..chunk.len()]);
    }
    len
}

/// Whether `data` is message `k` of stream `seed`.
pub fn matches(seed: u64, k: u64, data: &[u8]) -> bool {
    let mut buf = [0; MAX_LEN];
    let len = message(seed, k, &mut buf);
    data == &buf[..len]
}
