//! Runtime dispatch of element-wise and reduction loops to the widest x86-64
//! vector level this CPU has. The crate is built for baseline x86-64 (SSE2)
//! so one binary runs everywhere; faer picks its GEMM kernels at run time,
//! and [`dispatch`] does the same for the loops between the GEMMs (norms,
//! squared differences, softmax, gates): the closure is compiled three times —
//! for AVX-512 (F/BW/DQ/VL), for AVX2 + FMA, and for the baseline — and the
//! first level the CPU supports runs.
//!
//! Results are bitwise the same at every level: Rust never contracts a
//! multiply and an add into an FMA and never reorders floating-point
//! operations, so wider vectors only run the same operations more at a time
//! (reductions keep their explicit lanes, e.g. [`super::reduce`]). Only code
//! inlined into the instantiation gets the wider instructions, so the closure
//! is marked `#[inline(always)]` (`dispatch(#[inline(always)] || …)`) and the
//! loops it runs are written in it or in `#[inline(always)]` helpers.

/// The vector level [`dispatch`] runs at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// SSE2 (every x86-64, and every other architecture).
    Baseline,
    /// AVX2 + FMA (x86-64-v3).
    Avx2,
    /// AVX-512 F/BW/DQ/VL with AVX2 + FMA (x86-64-v4).
    Avx512,
}

/// The level of this CPU (the feature checks are cached by the standard library).
#[inline]
pub fn level() -> Level {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        if has!("avx512f")
            && has!("avx512bw")
            && has!("avx512dq")
            && has!("avx512vl")
            && has!("avx2")
            && has!("fma")
        {
            return Level::Avx512;
        }
        if has!("avx2") && has!("fma") {
            return Level::Avx2;
        }
    }
    Level::Baseline
}

/// Runs `f` compiled for [`level`]. f: any closure (its result is returned).
#[inline(always)]
pub fn dispatch<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    match level() {
        // SAFETY: `level` checked every feature the function enables.
        Level::Avx512 => return unsafe { v4(f) },
        // SAFETY: as above.
        Level::Avx2 => return unsafe { v3(f) },
        Level::Baseline => {}
    }
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,avx,sse4.2")]
unsafe fn v4<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,avx,sse4.2")]
unsafe fn v3<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An f64 lane sum and an f32 element-wise pass, run through `dispatch`
    /// and directly (the baseline build): the same bits.
    #[test]
    fn every_level_gives_the_same_bits() {
        #[inline(always)]
        fn work(x: &[f32]) -> (f64, Vec<f32>) {
            let mut acc = [0.0f64; 8];
            for c in x.chunks_exact(8) {
                for l in 0..8 {
                    acc[l] += c[l] as f64 * c[l] as f64;
                }
            }
            let s = acc.iter().sum::<f64>();
            let inv = 1.0 / s;
            (
                s,
                x.iter()
                    .map(|&v| ((v as f64 * inv) as f32 - 0.3).powi(2))
                    .collect(),
            )
        }
        let x: Vec<f32> = (0..4096)
            .map(|i| ((i * 7919) % 1013) as f32 * 0.37 - 150.0)
            .collect();
        let (s0, y0) = work(&x);
        let (s1, y1) = dispatch(
            #[inline(always)]
            || work(&x),
        );
        assert_eq!(s0.to_bits(), s1.to_bits());
        assert!(y0.iter().zip(&y1).all(|(a, b)| a.to_bits() == b.to_bits()));
        // The level is one of the three, stable across calls.
        assert_eq!(level(), level());
    }
}
