//! Row-wise L2 normalisation as the authors write it (docs/method.md §5.4):
//! `y = x / (‖x‖₂ + eps)` over the last dimension, eps = 1e-8 **added to the
//! norm** (not inside the square root). PyTorch: `X / (X.pow(2).sum(-1,
//! keepdim=True).sqrt() + eps)`.
//!
//! The backward pass needs only the output and the norms, so the forward runs
//! in place. With d = ‖x‖ + eps and n = ‖x‖:
//! `dx = dy/d − x·(x·dy)/(d²·n)  =  (dy − y·(y·dy)·d/n) / d`.
//! For an all-zero row (n = 0, e.g. GRU padding) the second term is taken as 0,
//! giving `dx = dy/eps`; PyTorch would produce NaN there (its `sqrt` backward
//! divides 0 by 0), which the authors' packed-sequence backward then discards.
//! Callers feed zero upstream gradient to such rows.

use super::reduce::{dot_f64, dot_lanes};
use super::simd;

/// The epsilon added to every norm.
pub const EPS: f32 = 1e-8;

/// Normalises each `dim`-long row of `x` in place and returns the norms ‖x‖₂
/// (without eps). x: [rows, dim] → norms: [rows]. Sums of squares are
/// accumulated in f64 ([`super::reduce`]).
pub fn forward(x: &mut [f32], dim: usize) -> Vec<f32> {
    assert!(
        dim > 0 && x.len().is_multiple_of(dim),
        "l2norm: {} values are not rows of {dim}",
        x.len()
    );
    let mut norms = Vec::with_capacity(x.len() / dim);
    simd::dispatch(
        #[inline(always)]
        || {
            for row in x.chunks_exact_mut(dim) {
                norms.push(forward_row(row));
            }
        },
    );
    norms
}

/// [`forward`] of one row, in place; returns its norm ‖x‖₂ (without eps).
/// Inlined, so it runs at the vector level of the surrounding
/// [`simd::dispatch`].
#[inline(always)]
pub fn forward_row(row: &mut [f32]) -> f32 {
    let n = dot_lanes(row, row).sqrt() as f32;
    let inv = inverse(n);
    row.iter_mut().for_each(|v| *v = scale(*v, inv));
    n
}

/// `1 / (n + eps)` in f64, for [`scale`]. n: a row's norm.
#[inline(always)]
pub fn inverse(n: f32) -> f64 {
    1.0 / (n + EPS) as f64
}

/// One normalised value `x / (n + eps)` from inv = [`inverse`]`(n)`:
/// computed as x · (1/d) in f64 then rounded, bitwise the same as the f32
/// division (a quotient of f32s is never within 2^-48 of an f32 rounding
/// midpoint), without a divide per element.
#[inline(always)]
pub fn scale(x: f32, inv: f64) -> f32 {
    (x as f64 * inv) as f32
}

/// Turns the upstream gradient into the input gradient, in place.
/// y: [rows, dim] (forward output), norms: [rows] (from [`forward`]), grad: [rows, dim].
pub fn backward(y: &[f32], norms: &[f32], grad: &mut [f32], dim: usize) {
    assert!(
        dim > 0 && y.len() == grad.len() && y.len() == norms.len() * dim,
        "l2norm backward: y {} values, grad {}, {} norms of rows of {dim}",
        y.len(),
        grad.len(),
        norms.len()
    );
    for ((yr, gr), &n) in y
        .chunks_exact(dim)
        .zip(grad.chunks_exact_mut(dim))
        .zip(norms)
    {
        backward_row(yr, n, gr);
    }
}

/// [`backward`] of one row: y: [dim] (output), n: its norm, grad: [dim] in place.
#[inline]
pub fn backward_row(y: &[f32], n: f32, grad: &mut [f32]) {
    let d = (n + EPS) as f64;
    let k = if n > 0.0 {
        dot_f64(y, grad) * d / n as f64
    } else {
        0.0
    };
    // One reciprocal per row instead of an f64 divide per element (≤ 1 ulp
    // of f64 apart before rounding to f32).
    let inv = 1.0 / d;
    for (g, &yv) in grad.iter_mut().zip(y) {
        *g = ((*g as f64 - yv as f64 * k) * inv) as f32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::testutil::*;

    #[test]
    fn unit_norm_and_eps_placement() {
        let mut x = vec![3.0f32, 4.0, 0.0, 0.0];
        let n = forward(&mut x, 2);
        assert_eq!(n, vec![5.0, 0.0]);
        assert_eq!(&x[..2], &[3.0 / (5.0 + EPS), 4.0 / (5.0 + EPS)]);
        assert_eq!(&x[2..], &[0.0, 0.0]);
        // A tiny row: eps in the denominator keeps it finite and below unit norm.
        let mut t = vec![1e-9f32, 0.0];
        forward(&mut t, 2);
        assert!((t[0] - 1e-9 / (1e-9 + 1e-8)).abs() < 1e-6);
    }

    #[test]
    fn finite_differences() {
        let dim = 6;
        let mut x = rand_vec(4 * dim, 1, 1.0);
        let c = rand_vec(4 * dim, 2, 1.0);
        let mut y = x.clone();
        let n = forward(&mut y, dim);
        let mut g = c.clone();
        backward(&y, &n, &mut g, dim);
        let fx = fd_grad(&mut x, FD_EPS, |x| {
            let mut y = x.to_vec();
            forward(&mut y, dim);
            dot_loss(&y, &c)
        });
        assert_grad_close("dx", &g, &fx);
    }

    #[test]
    fn zero_row_gets_first_term_only() {
        let mut y = vec![0.0f32; 3];
        let n = forward(&mut y, 3);
        let mut g = vec![0.0f32, 0.0, 0.0];
        backward(&y, &n, &mut g, 3);
        assert_eq!(g, vec![0.0; 3]);
    }
}
