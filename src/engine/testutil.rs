//! Test-only helpers shared by the layer tests: seeded random tensors, a
//! fixed random linear functional as the loss, and central finite differences.
//!
//! Finite-difference recipe used by every layer test: the forward runs in f32,
//! the loss L = Σ c ⊙ y is accumulated in f64, and ∂L/∂x_i ≈ (L(x+h) − L(x−h)) /
//! ((x_i+h) − (x_i−h)) with the denominator taken from the f32 values actually
//! used. With h = 1e-2 the f32 rounding contributes ~1e-6/2h ≈ 5e-5 and the
//! truncation error h²·L'''/6 is ~2e-5 for the O(1) inputs used, so the
//! comparison tolerance is |fd − analytic| ≤ 5e-4 + 5e-3·|fd|; a wrong formula
//! misses by O(1).

use crate::engine::rng::{seeded, symmetric_f32};

/// Finite-difference step.
pub const FD_EPS: f32 = 1e-2;
/// Absolute part of the finite-difference tolerance.
pub const FD_ATOL: f64 = 5e-4;
/// Relative part of the finite-difference tolerance.
pub const FD_RTOL: f64 = 5e-3;

/// `n` values uniform on [−a, a) from `seed`.
pub fn rand_vec(n: usize, seed: u64, a: f32) -> Vec<f32> {
    let mut r = seeded(seed);
    (0..n).map(|_| symmetric_f32(&mut r, a)).collect()
}

/// Σ c ⊙ y in f64.
pub fn dot_loss(y: &[f32], c: &[f32]) -> f64 {
    assert_eq!(y.len(), c.len());
    y.iter().zip(c).map(|(&a, &b)| a as f64 * b as f64).sum()
}

/// Asserts that every output `a[k]` equals `b[k]` within `rel` of the
/// largest |b[k]| (at least 1): the same computation up to f32 rounding.
/// `what` names the comparison in the failure message.
pub fn assert_outputs_close(a: &[Vec<f32>], b: &[Vec<f32>], rel: f32, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: number of outputs");
    for (k, (a, b)) in a.iter().zip(b).enumerate() {
        assert_eq!(a.len(), b.len(), "{what}, output {k}: lengths");
        let scale = b.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        let err = a
            .iter()
            .zip(b)
            .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(
            err <= rel * scale.max(1.0),
            "{what}, output {k}: {err} (scale {scale})"
        );
    }
}

/// Central differences of `f` at `x` for every coordinate (x is restored).
pub fn fd_grad(x: &mut [f32], eps: f32, mut f: impl FnMut(&[f32]) -> f64) -> Vec<f64> {
    let mut g = vec![0.0; x.len()];
    for i in 0..x.len() {
        let orig = x[i];
        let (hi, lo) = (orig + eps, orig - eps);
        x[i] = hi;
        let lp = f(x);
        x[i] = lo;
        let lm = f(x);
        x[i] = orig;
        g[i] = (lp - lm) / (hi as f64 - lo as f64);
    }
    g
}

/// Asserts |analytic − fd| ≤ FD_ATOL + FD_RTOL·|fd| everywhere; returns the worst ratio
/// of error to allowance (≤ 1 when passing).
#[track_caller]
pub fn assert_grad_close(name: &str, analytic: &[f32], fd: &[f64]) -> f64 {
    assert_eq!(analytic.len(), fd.len(), "{name}: length");
    let mut worst = 0.0f64;
    for (i, (&a, &n)) in analytic.iter().zip(fd).enumerate() {
        let allow = FD_ATOL + FD_RTOL * n.abs();
        let err = (a as f64 - n).abs();
        assert!(
            err <= allow,
            "{name}[{i}]: analytic {a} vs finite difference {n} (|diff| {err:.3e} > {allow:.3e})"
        );
        worst = worst.max(err / allow);
    }
    worst
}

/// Finite-difference check of a batch-norm-like layer on x: [n, C, inner]
/// with a random γ, β, x and upstream gradient (seeds 1–4): `forward(bn, y)`
/// maps y in place; `backward(bn, x, dy)` accumulates γ, β gradients and turns
/// dy into dx. Checks dx, dγ and dβ; returns the layer after its backward.
pub fn check_batchnorm_grads(
    (n, c, inner): (usize, usize, usize),
    forward: impl Fn(&crate::engine::batchnorm::BatchNorm, &mut [f32]),
    backward: impl FnOnce(&mut crate::engine::batchnorm::BatchNorm, &[f32], &mut [f32]),
) -> crate::engine::batchnorm::BatchNorm {
    let mut bn = crate::engine::batchnorm::BatchNorm::new("bn", c);
    bn.weight.value = rand_vec(c, 1, 1.0);
    bn.bias.value = rand_vec(c, 2, 1.0);
    let mut x = rand_vec(n * c * inner, 3, 1.0);
    let up = rand_vec(x.len(), 4, 1.0);
    let f = |bn: &crate::engine::batchnorm::BatchNorm, x: &[f32]| {
        let mut y = x.to_vec();
        forward(bn, &mut y);
        dot_loss(&y, &up)
    };
    let mut dx = up.clone();
    backward(&mut bn, &x, &mut dx);
    let fx = fd_grad(&mut x, FD_EPS, |x| f(&bn, x));
    assert_grad_close("dx", &dx, &fx);
    let mut g = bn.weight.value.clone();
    let fg = fd_grad(&mut g, FD_EPS, |g| {
        let mut b2 = bn.clone();
        b2.weight.value = g.to_vec();
        f(&b2, &x)
    });
    assert_grad_close("dγ", &bn.weight.grad, &fg);
    let mut b = bn.bias.value.clone();
    let fb = fd_grad(&mut b, FD_EPS, |b| {
        let mut b2 = bn.clone();
        b2.bias.value = b.to_vec();
        f(&b2, &x)
    });
    assert_grad_close("dβ", &bn.bias.grad, &fb);
    bn
}
