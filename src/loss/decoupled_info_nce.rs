//! Decoupled InfoNCE (Yeh et al., "Decoupled Contrastive Learning", ECCV 2022):
//! InfoNCE with the positive removed from the denominator. With z = S / T:
//!
//! `L = (1/B) Σ_i [logsumexp_{j≠i} z_ij − z_ii] + (1/B) Σ_j [logsumexp_{i≠j} z_ij − z_jj]`
//!
//! dL/dS_ij (i ≠ j) = (softmax over row i without i)_j / (B·T) + (softmax over
//! column j without j)_i / (B·T); dL/dS_ii = −2 / (B·T). Needs B >= 2.
//! PyTorch mirror: `losses.decoupled_info_nce`.

use super::info_nce::bidirectional;
use super::softmax::logsumexp;
use super::{LossError, LossOutput, ScoreMatrix, check_positive};

/// One direction (rows of z): value and dL/dz.
fn rows(z: &[f64], n: usize) -> (f64, Vec<f64>) {
    let inv_n = 1.0 / n as f64;
    let mut value = 0.0;
    let mut grad = vec![0.0; n * n];
    for (i, row) in z.chunks_exact(n).enumerate() {
        let lse = logsumexp(row, Some(i));
        value += lse - row[i];
        for j in 0..n {
            grad[i * n + j] = if j == i {
                -inv_n
            } else {
                (row[j] - lse).exp() * inv_n
            };
        }
    }
    (value * inv_n, grad)
}

/// Bidirectional decoupled InfoNCE of `s: [n, n]` (n >= 2) at `temperature` (> 0).
pub fn decoupled_info_nce(s: &ScoreMatrix, temperature: f64) -> Result<LossOutput, LossError> {
    check_positive("temperature", temperature)?;
    let n = s.n();
    if n < 2 {
        return Err(LossError::TooFewPairs {
            loss: "decoupled InfoNCE",
            min: 2,
            n,
        });
    }
    Ok(bidirectional(s, temperature, rows))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loss::test_support::{check_grad, random_scores};

    /// All-equal scores: L = 2·ln(B − 1) (the positive's logit cancels one
    /// of the B − 1 equal negatives' logits).
    #[test]
    fn uniform_scores_give_two_log_b_minus_one() {
        let s = ScoreMatrix::from_f64("s", vec![0.3; 16], 4).unwrap();
        let out = decoupled_info_nce(&s, 0.1).unwrap();
        assert!((out.value - 2.0 * 3f64.ln()).abs() < 1e-12, "{}", out.value);
        assert!((out.grad[0] + 2.0 / 0.4).abs() < 1e-12);
        assert!((out.grad[1] - 2.0 / 3.0 / 0.4).abs() < 1e-12);
    }

    #[test]
    fn needs_two_pairs() {
        let s = ScoreMatrix::from_f64("s", vec![0.3], 1).unwrap();
        let e = decoupled_info_nce(&s, 0.1).unwrap_err();
        assert!(matches!(e, LossError::TooFewPairs { min: 2, n: 1, .. }));
    }

    #[test]
    fn finite_differences() {
        for t in [0.1, 0.05] {
            check_grad(|s| decoupled_info_nce(s, t).unwrap(), &random_scores(6, 51));
        }
    }
}
