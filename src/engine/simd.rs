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

/// The vector level [`dispatch`] runs at (ordered: each level includes the
/// features of those below it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// SSE2 (every x86-64, and every other architecture).
    Baseline,
    /// AVX2 + FMA (x86-64-v3).
    Avx2,
    /// AVX-512 F/BW/DQ/VL with AVX2 + FMA (x86-64-v4).
    Avx512,
}

std::thread_local! {
    /// [`capped`]'s limit on this thread.
    static CAP: std::cell::Cell<Level> = const { std::cell::Cell::new(Level::Avx512) };
}

/// Runs `f` with [`dispatch`] on this thread limited to at most `max`: what
/// a CPU without the higher levels would run (tests compare the levels'
/// results bit for bit).
pub fn capped<R>(max: Level, f: impl FnOnce() -> R) -> R {
    /// Puts the previous cap back, also when `f` panics.
    struct Restore(Level);
    impl Drop for Restore {
        fn drop(&mut self) {
            CAP.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(CAP.with(|c| c.replace(max)));
    f()
}

/// The level [`dispatch`] runs at: this CPU's, or lower under [`capped`].
#[inline]
pub fn level() -> Level {
    cpu_level().min(CAP.with(|c| c.get()))
}

/// The level of this CPU, detected once.
#[inline]
pub fn cpu_level() -> Level {
    static CPU: std::sync::OnceLock<Level> = std::sync::OnceLock::new();
    *CPU.get_or_init(detect)
}

fn detect() -> Level {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        // Every feature the level's function enables is checked.
        let v3 = has!("avx2") && has!("fma") && has!("avx") && has!("sse4.2");
        if v3 && has!("avx512f") && has!("avx512bw") && has!("avx512dq") && has!("avx512vl") {
            return Level::Avx512;
        }
        if v3 {
            return Level::Avx2;
        }
    }
    Level::Baseline
}

/// Runs `f` compiled for [`level`]. f: any closure (its result is returned).
#[inline(always)]
pub fn dispatch<R>(f: impl FnOnce() -> R) -> R {
    // SAFETY: `level` checked every feature of the level it returns.
    unsafe { at(level(), f) }
}

/// Runs `f` compiled for `level`.
///
/// # Safety
/// The CPU must support every feature of `level` (see [`level`]).
#[inline(always)]
unsafe fn at<R>(level: Level, f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    match level {
        // SAFETY: the caller guarantees the features.
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

    /// An f64 lane sum and an f32 element-wise pass run at every level this
    /// CPU has (baseline, and AVX2 / AVX-512 where present): the same bits.
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
        let x: Vec<f32> = (0..4099)
            .map(|i| ((i * 7919) % 1013) as f32 * 0.37 - 150.0)
            .collect();
        let (s0, y0) = work(&x);
        let top = cpu_level();
        let levels = [Level::Baseline, Level::Avx2, Level::Avx512];
        for &l in levels.iter().filter(|&&l| l <= top) {
            // SAFETY: `l` is at most this CPU's level, whose features include the lower ones'.
            let (s1, y1) = unsafe {
                at(
                    l,
                    #[inline(always)]
                    || work(&x),
                )
            };
            assert_eq!(s0.to_bits(), s1.to_bits(), "{l:?}");
            assert!(
                y0.iter().zip(&y1).all(|(a, b)| a.to_bits() == b.to_bits()),
                "{l:?}"
            );
        }
        let (s2, _) = dispatch(
            #[inline(always)]
            || work(&x),
        );
        assert_eq!(s0.to_bits(), s2.to_bits());
        assert_eq!(capped(Level::Baseline, level), Level::Baseline);
        assert_eq!(level(), top);
    }
}
