//! A small deterministic PRNG (xoshiro256** seeded through splitmix64).
//!
//! Integer arithmetic only, so the same seed gives the same stream on every
//! platform: no floating point, no libm.

/// splitmix64 step: used to seed and to derive sub-seeds.
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Mixes a seed with a stream label, for independent sub-streams.
pub fn derive(seed: u64, label: u64) -> u64 {
    let mut s = seed ^ label.wrapping_mul(0xd6e8_feb8_6659_fd93);
    splitmix64(&mut s)
}

/// xoshiro256** generator.
#[derive(Clone, Debug)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        let mut sm = seed;
        let s = [splitmix64(&mut sm), splitmix64(&mut sm), splitmix64(&mut sm), splitmix64(&mut sm)];
        Rng { s }
    }

    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    pub fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    /// Uniform in `0..n` (`n > 0`), by multiply-shift (bias below 2^-32
    /// for the ranges used here).
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `per_million / 1_000_000`.
    pub fn chance_ppm(&mut self, per_million: u32) -> bool {
        self.below(1_000_000) < u64::from(per_million)
    }

    /// True with probability `p` (converted once to parts per million).
    pub fn chance(&mut self, p: f64) -> bool {
        self.chance_ppm(ppm(p))
    }

    /// Picks an index with the given integer weights.
    pub fn weighted(&mut self, weights: &[u32]) -> usize {
        let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
        let mut x = self.below(total.max(1));
        for (i, &w) in weights.iter().enumerate() {
            if x < u64::from(w) {
                return i;
            }
            x -= u64::from(w);
        }
        weights.len() - 1
    }

    /// A log-triangular size between `lo` and `hi` (inclusive), peaked at
    /// `mode`: log2 of the size follows a triangular law, which looks like
    /// a log-normal body-size distribution with hard bounds. Integer only.
    pub fn log_size(&mut self, lo: u64, mode: u64, hi: u64) -> u64 {
        // Work in log2 fixed point with 16 fractional bits.
        let l = |x: u64| -> u64 {
            let x = x.max(1);
            let e = 63 - u64::from(x.leading_zeros());
            // linear interpolation of the fraction: good enough for shape
            let frac = if e >= 16 { (x >> (e - 16)) & 0xffff } else { (x << (16 - e)) & 0xffff };
            (e << 16) | frac
        };
        let (a, c, b) = (l(lo), l(mode.clamp(lo, hi)), l(hi));
        if b <= a {
            return lo;
        }
        // Triangular sample: inverse of the CDF without sqrt, by taking the
        // max/min of two uniforms on either side of the mode.
        let u = self.below(b - a + 1);
        let left = c - a;
        let v = if u < left.max(1) {
            a + self.below(left + 1).max(self.below(left + 1))
        } else {
            b - self.below(b - c + 1).max(self.below(b - c + 1))
        };
        let e = v >> 16;
        let frac = v & 0xffff;
        let size = (1u64 << e) + (((1u64 << e) * frac) >> 16);
        size.clamp(lo, hi)
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        let mut chunks = buf.chunks_exact_mut(8);
        for c in &mut chunks {
            c.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        let rest = chunks.into_remainder();
        let v = self.next_u64().to_le_bytes();
        let n = rest.len();
        rest.copy_from_slice(&v[..n]);
    }
}

/// Probability to parts per million, clamped to `0..=1_000_000`.
pub fn ppm(p: f64) -> u32 {
    if p.is_nan() || p <= 0.0 {
        0
    } else if p >= 1.0 {
        1_000_000
    } else {
        (p * 1_000_000.0) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_in_range() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        for _ in 0..1000 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        let mut r = Rng::new(1);
        let mut small = 0;
        for _ in 0..10_000 {
            let s = r.log_size(200, 2048, 200_000);
            assert!((200..=200_000).contains(&s));
            if s < 8192 {
                small += 1;
            }
            let x = r.range(5, 9);
            assert!((5..=9).contains(&x));
        }
        assert!(small > 5_000, "mostly small bodies, got {small}");
    }
}
