//! Dot products and sums of squares of f32 slices, accumulated in f64 over
//! [`LANES`] independent partial sums so the loop vectorises (a single running
//! f64 sum is a serial chain of adds, one add latency per element). The lanes
//! are combined in a fixed order, so results are bitwise reproducible; they
//! differ from a left-to-right f64 sum only by f64 rounding (≪ f32 precision).

/// Independent partial sums.
pub const LANES: usize = 8;

/// `Σ a[i]·b[i]` in f64, at the CPU's vector level ([`super::simd`]). a, b: [n].
#[inline]
pub fn dot_f64(a: &[f32], b: &[f32]) -> f64 {
    super::simd::dispatch(
        #[inline(always)]
        || dot_lanes(a, b),
    )
}

/// [`dot_f64`] for code already inside [`super::simd::dispatch`]. a, b: [n].
#[inline(always)]
pub fn dot_lanes(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(
        a.len(),
        b.len(),
        "dot_f64: lengths {} and {}",
        a.len(),
        b.len()
    );
    let mut acc = [0.0f64; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..LANES {
            acc[l] += x[l] as f64 * y[l] as f64;
        }
    }
    for (l, (&x, &y)) in ra.iter().zip(rb).enumerate() {
        acc[l] += x as f64 * y as f64;
    }
    combine(acc)
}

/// Pairwise combination of the lanes (fixed order).
#[inline]
fn combine(acc: [f64; LANES]) -> f64 {
    let q = [
        acc[0] + acc[4],
        acc[1] + acc[5],
        acc[2] + acc[6],
        acc[3] + acc[7],
    ];
    (q[0] + q[2]) + (q[1] + q[3])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_a_serial_sum_closely_at_every_length() {
        for n in 0..40 {
            let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos()).collect();
            let serial: f64 = a.iter().zip(&b).map(|(&x, &y)| x as f64 * y as f64).sum();
            assert!((dot_f64(&a, &b) - serial).abs() <= 1e-14, "n = {n}");
            let sq: f64 = a.iter().map(|&x| x as f64 * x as f64).sum();
            assert!((dot_f64(&a, &a) - sq).abs() <= 1e-14, "n = {n}");
            // The dispatched and the baseline build agree bitwise.
            assert_eq!(dot_f64(&a, &b).to_bits(), dot_lanes(&a, &b).to_bits());
        }
        assert_eq!(dot_f64(&[2.0, 3.0], &[4.0, 5.0]), 23.0);
    }
}
