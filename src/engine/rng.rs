//! The engine's random numbers: one seeded generator type and the two
//! conversions it needs (uniform floats, Bernoulli draws). Drawing through
//! these helpers rather than `rand`'s distributions pins the exact bit
//! recipe, so a seed keeps meaning the same numbers across `rand` upgrades.

use rand::{Rng, SeedableRng};

/// The generator used for initialisation and dropout masks: ChaCha8,
/// seeded from a `u64` (`rand_core`'s `seed_from_u64` expansion).
pub type EngineRng = rand_chacha::ChaCha8Rng;

/// A generator seeded from `seed`; the same seed always yields the same stream.
pub fn seeded(seed: u64) -> EngineRng {
    EngineRng::seed_from_u64(seed)
}

/// A float uniform on [0, 1): the top 24 bits of one `u32` draw, times 2^-24
/// (every value is exact in f32; one `u32` is consumed per call).
#[inline]
pub fn unit_f32<R: Rng + ?Sized>(rng: &mut R) -> f32 {
    (rng.next_u32() >> 8) as f32 * (1.0 / 16_777_216.0)
}

/// A float uniform on [-a, a): `(2u - 1) · a` with `u` from [`unit_f32`].
#[inline]
pub fn symmetric_f32<R: Rng + ?Sized>(rng: &mut R, a: f32) -> f32 {
    (2.0 * unit_f32(rng) - 1.0) * a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_range() {
        let mut a = seeded(7);
        let mut b = seeded(7);
        let mut c = seeded(8);
        let xa: Vec<f32> = (0..1000).map(|_| unit_f32(&mut a)).collect();
        let xb: Vec<f32> = (0..1000).map(|_| unit_f32(&mut b)).collect();
        let xc: Vec<f32> = (0..1000).map(|_| unit_f32(&mut c)).collect();
        assert_eq!(xa, xb);
        assert_ne!(xa, xc);
        assert!(xa.iter().all(|&u| (0.0..1.0).contains(&u)));
        let mean = xa.iter().map(|&u| u as f64).sum::<f64>() / 1000.0;
        // Mean of 1000 U(0,1) draws: sd 0.0091, so 0.05 is > 5 sd.
        assert!((mean - 0.5).abs() < 0.05, "mean {mean}");
        let s: Vec<f32> = (0..1000).map(|_| symmetric_f32(&mut a, 0.25)).collect();
        assert!(s.iter().all(|&v| (-0.25..0.25).contains(&v)));
    }
}
