//! Test helpers for the loss module: the docs/method.md §11 test vector, deterministic
//! random score matrices, and a central finite-difference gradient check.

use super::{LossOutput, ScoreMatrix};

/// Spec §11 S^t (rows = images).
pub(crate) const SPEC_ST: [f32; 9] = [0.60, 0.45, 0.55, 0.20, 0.45, 0.10, 0.40, 0.52, 0.70];
/// Spec §11 S^a.
pub(crate) const SPEC_SA: [f32; 9] = [0.50, 0.35, 0.30, 0.25, 0.40, 0.20, 0.10, 0.50, 0.62];

pub(crate) fn spec_st() -> ScoreMatrix {
    ScoreMatrix::from_f32("spec S^t", &SPEC_ST, 3).unwrap()
}

pub(crate) fn spec_sa() -> ScoreMatrix {
    ScoreMatrix::from_f32("spec S^a", &SPEC_SA, 3).unwrap()
}

/// Scores in (−1, 1) like the tanh head: tanh(2u − 1)·1.3 clamped, u uniform
/// from a splitmix64 stream (deterministic; no external RNG needed).
pub(crate) fn random_scores(n: usize, seed: u64) -> ScoreMatrix {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    let mut next = || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    };
    let data = (0..n * n)
        .map(|_| (2.6 * next() - 1.3).tanh() as f32)
        .collect::<Vec<_>>();
    ScoreMatrix::from_f32("random", &data, n).unwrap()
}

/// Compares `f(s).grad` with central differences of `f(s).value`, step
/// h = 1e-6 on each entry of `s` (other inputs of the loss stay fixed).
/// Tolerance: |fd − g| <= 1e-6 · max(1, |g|). Hinge losses are piecewise linear,
/// so away from kinks the difference quotient is exact up to rounding (~1e-10);
/// for the softmax losses the truncation error is ~h²·τ³ ≈ 1e-9.
pub(crate) fn check_grad(f: impl Fn(&ScoreMatrix) -> LossOutput, s: &ScoreMatrix) {
    const H: f64 = 1e-6;
    const TOL: f64 = 1e-6;
    let n = s.n();
    let grad = f(s).grad;
    for k in 0..n * n {
        let mut plus = s.as_slice().to_vec();
        let mut minus = plus.clone();
        plus[k] += H;
        minus[k] -= H;
        let fp = f(&ScoreMatrix::from_f64("fd+", plus, n).unwrap()).value;
        let fm = f(&ScoreMatrix::from_f64("fd-", minus, n).unwrap()).value;
        let fd = (fp - fm) / (2.0 * H);
        let g = grad[k];
        assert!(
            (fd - g).abs() <= TOL * g.abs().max(1.0),
            "entry ({}, {}): finite difference {fd} vs analytic {g}",
            k / n,
            k % n
        );
    }
}

/// The checker must be able to fail: a wrong gradient is caught.
#[test]
#[should_panic(expected = "finite difference")]
fn check_grad_catches_a_wrong_gradient() {
    let s = random_scores(4, 1);
    let f = |s: &ScoreMatrix| LossOutput {
        value: s.as_slice().iter().map(|v| v * v).sum(),
        grad: s.as_slice().to_vec(), // should be 2·s
        grad_anchor: None,
    };
    check_grad(f, &s);
}
