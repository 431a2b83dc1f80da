//! L_raw: the bidirectional hinge triplet loss (VSE++ form), summed over the
//! batch (docs/method.md §3.1; the authors' `BirankLoss`). With margin γ:
//!
//! - i2t: `c1[i][j] = [(γ + S_ij) − S_ii]_+`, j ≠ i (negatives = other captions in row i)
//! - t2i: `c2[i][j] = [(γ + S_ij) − S_jj]_+`, i ≠ j (negatives = other images in column j)
//! - hardest: `L = Σ_i max_j c1[i][j] + Σ_j max_i c2[i][j]`;
//!   sum: `L = Σ_{i≠j} c1 + Σ_{i≠j} c2`.
//!
//! Gradient: each selected active term adds +1 to `S_ij` and −1 to the
//! query's positive (`S_ii` for i2t, `S_jj` for t2i). Ties and kinks follow
//! [`super::reduction`]. PyTorch mirror: `losses.triplet`.

use super::reduction::{Reduction, pairwise_hinge};
use super::{LossError, LossOutput, ScoreMatrix, check_non_negative};

/// L_raw(S) and dL/dS. s: `[n, n]`; `margin` = γ (>= 0, spec default 0.2).
pub fn triplet(s: &ScoreMatrix, margin: f64, red: Reduction) -> Result<LossOutput, LossError> {
    check_non_negative("margin", margin)?;
    let n = s.n();
    let mut x1 = vec![0.0; n * n];
    let mut x2 = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            x1[i * n + j] = (margin + s.get(i, j)) - s.get(i, i);
            x2[i * n + j] = (margin + s.get(i, j)) - s.get(j, j);
        }
    }
    Ok(pairwise_hinge(&x1, &x2, n, red))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loss::test_support::{check_grad, random_scores, spec_st};

    /// Spec §11: L_raw(S^t) = 0.49 (hardest) and 0.74 (sum).
    #[test]
    fn spec_vector() {
        let st = spec_st();
        let h = triplet(&st, 0.2, Reduction::Hardest).unwrap();
        let s = triplet(&st, 0.2, Reduction::Sum).unwrap();
        assert!((h.value - 0.49).abs() < 1e-6, "{}", h.value);
        assert!((s.value - 0.74).abs() < 1e-6, "{}", s.value);
    }

    /// Hand-derived gradient of the spec vector, hardest mode. i2t: row 0
    /// picks column 2 (cost 0.15), row 1 has no positive cost, row 2 picks
    /// column 1 (0.02). t2i: column 0 has no positive cost (row 2 sits at
    /// 0.2 + 0.4 − 0.6, slightly negative for the f32 inputs), column 1 picks
    /// row 2 (0.27), column 2 picks row 0 (0.05). Each active term: +1 on the
    /// negative, −1 on the query's positive.
    #[test]
    fn spec_vector_gradient() {
        let g = triplet(&spec_st(), 0.2, Reduction::Hardest).unwrap().grad;
        let want = [-1.0, 0.0, 2.0, 0.0, -1.0, 0.0, 0.0, 2.0, -2.0];
        assert_eq!(g, want);
    }

    #[test]
    fn rejects_negative_margin() {
        let err = triplet(&spec_st(), -0.1, Reduction::Sum).unwrap_err();
        assert!(matches!(
            err,
            LossError::BadOption {
                field: "margin",
                ..
            }
        ));
    }

    #[test]
    fn finite_differences() {
        for red in [Reduction::Hardest, Reduction::Sum] {
            for seed in 0..3 {
                let s = random_scores(7, seed);
                check_grad(|s| triplet(s, 0.2, red).unwrap(), &s);
            }
        }
    }
}
