//! Absolute boosting ℓ'_AM / ℓ'_AS (docs/method.md §3.3; the authors' `BoostabsLoss` is
//! AM): each positive must rise above the anchor's positive by γ1 and each
//! negative fall below the anchor's negative by γ2. With t = S^t,
//! a = sg(S^a), γ1 = γ·β·g and γ2 = γ·β·(1 − g) (docs/method.md §7: g = 0.5 → 0.1 each):
//!
//! - positives: `pos_i = [(γ1_i + a_ii) − t_ii]_+`
//! - negatives (one matrix shared by both directions, diagonal zeroed):
//!   `n[i][j] = [(γ2_ij + t_ij) − a_ij]_+`
//! - AM (hardest): `L = 2·Σ_i pos_i + Σ_i max_j n[i][j] + Σ_j max_i n[i][j]`
//! - AS (sum): `L = 2·Σ_i pos_i + 2·Σ_{i≠j} n[i][j]`
//!
//! The factor 2 counts each positive once per direction. γ1_i =
//! adapt.upper(γ1, 1, a_ii), γ2_ij = adapt.lower(γ2, 1, a_ij)
//! ([`MarginAdaptation`]; constant by default). Gradient w.r.t. t only: −2 on
//! t_ii per active positive, +1 on t_ij per selection (row and column
//! selections add up); ties and kinks follow [`super::reduction`].
//! PyTorch mirror: `losses.boost_absolute`.

use super::margin::MarginAdaptation;
use super::reduction::{Reduction, reduce_cols, reduce_rows};
use super::{LossError, LossOutput, ScoreMatrix, check_non_negative};

/// Unclamped hinge arguments: positives `[n]` and negatives `[n, n]`.
fn arguments(
    st: &ScoreMatrix,
    sa: &ScoreMatrix,
    gamma_pos: f64,
    gamma_neg: f64,
    adapt: MarginAdaptation,
) -> (Vec<f64>, Vec<f64>) {
    let n = st.n();
    let pos = (0..n)
        .map(|i| {
            let a = sa.get(i, i);
            (adapt.upper(gamma_pos, 1.0, a) + a) - st.get(i, i)
        })
        .collect();
    let mut neg = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            let a = sa.get(i, j);
            neg[i * n + j] = (adapt.lower(gamma_neg, 1.0, a) + st.get(i, j)) - a;
        }
    }
    (pos, neg)
}

fn check(
    st: &ScoreMatrix,
    sa: &ScoreMatrix,
    gamma_pos: f64,
    gamma_neg: f64,
) -> Result<(), LossError> {
    check_non_negative("positive margin γ1 = γ·β·g", gamma_pos)?;
    check_non_negative("negative margin γ2 = γ·β·(1 − g)", gamma_neg)?;
    st.check_same_size("the anchor S^a", sa)
}

/// ℓ'_AM (`Reduction::Hardest`) or ℓ'_AS (`Reduction::Sum`) and dL/dS^t.
/// st, sa: `[n, n]`; `gamma_pos` = γ1, `gamma_neg` = γ2 (both >= 0).
pub fn boost_absolute(
    st: &ScoreMatrix,
    sa: &ScoreMatrix,
    gamma_pos: f64,
    gamma_neg: f64,
    red: Reduction,
    adapt: MarginAdaptation,
) -> Result<LossOutput, LossError> {
    check(st, sa, gamma_pos, gamma_neg)?;
    let n = st.n();
    let (pos, neg) = arguments(st, sa, gamma_pos, gamma_neg, adapt);
    let mut out = LossOutput::zeros(n);
    let mut pos_sum = 0.0;
    for (i, &p) in pos.iter().enumerate() {
        if p > 0.0 {
            pos_sum += p;
            out.grad[i * n + i] -= 2.0;
        }
    }
    let mut w = vec![0.0; n * n];
    let rows = reduce_rows(&neg, n, red, &mut w);
    let cols = reduce_cols(&neg, n, red, &mut w);
    out.value = pos_sum * 2.0 + rows + cols;
    for (g, wk) in out.grad.iter_mut().zip(&w) {
        *g += wk;
    }
    Ok(out)
}

/// The clamped costs (`pos_i` `[n]`, `n[i][j]` `[n, n]` with the diagonal
/// zeroed), for inspection and tests.
pub fn absolute_costs(
    st: &ScoreMatrix,
    sa: &ScoreMatrix,
    gamma_pos: f64,
    gamma_neg: f64,
    adapt: MarginAdaptation,
) -> Result<(Vec<f64>, Vec<f64>), LossError> {
    check(st, sa, gamma_pos, gamma_neg)?;
    let n = st.n();
    let (mut pos, mut neg) = arguments(st, sa, gamma_pos, gamma_neg, adapt);
    pos.iter_mut().for_each(|p| *p = p.max(0.0));
    for (k, v) in neg.iter_mut().enumerate() {
        *v = if k / n == k % n { 0.0 } else { v.max(0.0) };
    }
    Ok((pos, neg))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loss::test_support::{check_grad, random_scores, spec_sa, spec_st};

    const NONE: MarginAdaptation = MarginAdaptation::None;

    /// Spec §11: AM = 1.89 (positives 0.07 → ×2 = 0.14, negatives 1.75),
    /// AS = 2.38 (negatives 2.24), and the negative cost matrix.
    #[test]
    fn spec_vector() {
        let (st, sa) = (spec_st(), spec_sa());
        let am = boost_absolute(&st, &sa, 0.1, 0.1, Reduction::Hardest, NONE).unwrap();
        let as_ = boost_absolute(&st, &sa, 0.1, 0.1, Reduction::Sum, NONE).unwrap();
        assert!((am.value - 1.89).abs() < 1e-6, "{}", am.value);
        assert!((as_.value - 2.38).abs() < 1e-6, "{}", as_.value);
        let (pos, neg) = absolute_costs(&st, &sa, 0.1, 0.1, NONE).unwrap();
        assert!((pos.iter().sum::<f64>() - 0.07).abs() < 1e-6, "{pos:?}");
        let want = [0.0, 0.20, 0.35, 0.05, 0.0, 0.0, 0.40, 0.12, 0.0];
        for (k, (x, y)) in neg.iter().zip(want).enumerate() {
            assert!((x - y).abs() < 1e-6, "entry {k}: {x} vs {y}");
        }
    }

    /// AM gradient by hand: positives 1 and 2 active (−2 each; positive 0 sits
    /// at the kink, slightly negative for the f32 inputs); row maxima (0,2),
    /// (1,0), (2,0); column maxima (2,0), (0,1), (0,2).
    #[test]
    fn spec_vector_gradient() {
        let am = boost_absolute(&spec_st(), &spec_sa(), 0.1, 0.1, Reduction::Hardest, NONE);
        let want = [0.0, 1.0, 2.0, 1.0, -2.0, 0.0, 2.0, 0.0, -2.0];
        assert_eq!(am.unwrap().grad, want);
    }

    #[test]
    fn rejects_negative_margins() {
        let (st, sa) = (spec_st(), spec_sa());
        for (p, q) in [(-0.1, 0.1), (0.1, -0.1), (f64::NAN, 0.1)] {
            let e = boost_absolute(&st, &sa, p, q, Reduction::Hardest, NONE).unwrap_err();
            assert!(matches!(e, LossError::BadOption { .. }), "{e}");
        }
    }

    #[test]
    fn finite_differences() {
        let sa = random_scores(6, 200);
        for red in [Reduction::Hardest, Reduction::Sum] {
            for adapt in [
                MarginAdaptation::None,
                MarginAdaptation::Hard,
                MarginAdaptation::Soft,
            ] {
                let st = random_scores(6, 9);
                check_grad(
                    |s| boost_absolute(s, &sa, 0.1, 0.1, red, adapt).unwrap(),
                    &st,
                );
                check_grad(
                    |s| boost_absolute(s, &sa, 0.06, 0.14, red, adapt).unwrap(),
                    &st,
                );
            }
        }
    }
}
