//! Contrastive InfoNCE, bidirectional (the paper's "Contrastive Learning"
//! comparison; CLIP-style symmetric cross-entropy with the diagonal as target).
//! With logits z = S / T (temperature T; τ = 1/T = 10 in docs/method.md §7):
//!
//! `L = (1/B) Σ_i [logsumexp_j z_ij − z_ii] + (1/B) Σ_j [logsumexp_i z_ij − z_jj]`
//!
//! i.e. the two directions' batch-mean cross-entropies are *added* (not
//! averaged). dL/dS_ij = (softmax_row_i(z)_j − δ_ij + softmax_col_j(z)_i − δ_ij) / (B·T).
//! PyTorch mirror: `losses.info_nce` (`F.cross_entropy(z, arange(B)) +
//! F.cross_entropy(z.t(), arange(B))`).

use super::scores::transpose;
use super::softmax::log_softmax_rows;
use super::{LossError, LossOutput, ScoreMatrix, check_positive};

/// One direction (rows of z): value and dL/dz.
fn ce_rows(z: &[f64], n: usize) -> (f64, Vec<f64>) {
    let lp = log_softmax_rows(z, n);
    let inv_n = 1.0 / n as f64;
    let mut value = 0.0;
    let mut grad: Vec<f64> = lp.iter().map(|l| l.exp() * inv_n).collect();
    for i in 0..n {
        value -= lp[i * n + i];
        grad[i * n + i] -= inv_n;
    }
    (value * inv_n, grad)
}

/// Bidirectional InfoNCE of `s: [n, n]` at temperature `temperature` (> 0).
pub fn info_nce(s: &ScoreMatrix, temperature: f64) -> Result<LossOutput, LossError> {
    check_positive("temperature", temperature)?;
    Ok(bidirectional(s, temperature, ce_rows))
}

/// Applies a per-row loss `row_loss(z, n) -> (value, dL/dz)` to the rows of
/// `z = s / temperature` (i2t) and to its columns (t2i), and sums both
/// directions; the gradient is returned w.r.t. `s`.
pub(crate) fn bidirectional(
    s: &ScoreMatrix,
    temperature: f64,
    row_loss: fn(&[f64], usize) -> (f64, Vec<f64>),
) -> LossOutput {
    let n = s.n();
    let z: Vec<f64> = s.as_slice().iter().map(|&v| v / temperature).collect();
    let (v_rows, g_rows) = row_loss(&z, n);
    let (v_cols, g_cols) = row_loss(&transpose(&z, n), n);
    let g_cols = transpose(&g_cols, n);
    LossOutput {
        value: v_rows + v_cols,
        grad: g_rows
            .iter()
            .zip(&g_cols)
            .map(|(a, b)| (a + b) / temperature)
            .collect(),
        grad_anchor: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loss::test_support::{check_grad, random_scores};

    /// All-equal scores: each row/column is uniform, L = 2·ln B.
    #[test]
    fn uniform_scores_give_two_log_b() {
        let s = ScoreMatrix::from_f64("s", vec![0.3; 16], 4).unwrap();
        let out = info_nce(&s, 0.1).unwrap();
        assert!((out.value - 2.0 * 4f64.ln()).abs() < 1e-12, "{}", out.value);
        // gradient: (1/4 − 1)·2/(4·0.1) on the diagonal, (1/4)·2/(0.4) off it.
        assert!((out.grad[0] + 3.75).abs() < 1e-12, "{:?}", out.grad);
        assert!((out.grad[1] - 1.25).abs() < 1e-12, "{:?}", out.grad);
    }

    #[test]
    fn rejects_bad_temperature() {
        let s = random_scores(3, 0);
        assert!(info_nce(&s, 0.0).is_err());
        assert!(info_nce(&s, -0.1).is_err());
    }

    #[test]
    fn finite_differences() {
        for t in [0.1, 0.05] {
            check_grad(|s| info_nce(s, t).unwrap(), &random_scores(6, 41));
        }
    }
}
