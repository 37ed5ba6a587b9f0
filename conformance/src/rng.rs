//! A tiny seeded generator for eviction decisions, fault schedules and test pacing.
//!
//! SplitMix64 (Steele, Lea and Flood, "Fast splittable pseudorandom number
//! generators", 2014): one 64-bit state, an additive step and a mixing
//! function. It is not for cryptography; it only has to be deterministic,
//! cheap under Miri and well spread from small seeds such as 0, 1, 2.
#![deny(unsafe_code)]

/// SplitMix64: the same seed always yields the same sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// The generator for `seed`.
    pub const fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A value in `0..bound` (0 when `bound` is 0). The modulo bias is
    /// below 2^-40 for the bounds the model uses and does not matter here.
    pub fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 {
            0
        } else {
            self.next_u64() % bound
        }
    }

    /// True with probability `1 / n` (never when `n` is 0).
    pub fn one_in(&mut self, n: u32) -> bool {
        n != 0 && self.below(u64::from(n)) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence_and_seeds_differ() {
        let mut a = SplitMix64::new(7);
        let mut b = SplitMix64::new(7);
        let mut c = SplitMix64::new(8);
        let xs: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..8).map(|_| b.next_u64()).collect();
        let zs: Vec<u64> = (0..8).map(|_| c.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs, zs);
    }

    #[test]
    fn first_output_of_seed_zero_matches_the_reference() {
        // Reference value of SplitMix64 seeded with 0 (first output), as
        // published with the algorithm and used by xoshiro's seeding code.
        assert_eq!(SplitMix64::new(0).next_u64(), 0xe220_a839_7b1d_cdaf);
    }

    #[test]
    fn bounded_draws_stay_in_range_and_one_in_respects_the_edges() {
        let mut r = SplitMix64::new(3);
        assert!((0..200).all(|_| r.below(5) < 5));
        assert_eq!(r.below(0), 0);
        assert!((0..50).all(|_| !r.one_in(0)));
        assert!((0..50).all(|_| r.one_in(1)));
        let hits = (0..1000).filter(|_| r.one_in(4)).count();
        assert!((150..350).contains(&hits), "{hits}");
    }
}
