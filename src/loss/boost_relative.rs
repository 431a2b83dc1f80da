//! Relative boosting ℓ'_RM / ℓ'_RS (docs/method.md §3.2; the authors' `BoostrelLoss` is
//! RM): the target must beat the anchor's positive-negative gap by γ'.
//! With t = S^t, a = sg(S^a) and γ' = γ·β (docs/method.md §7: 0.2):
//!
//! - i2t: `r1[i][j] = [(γ'1_ij + (a_ii − a_ij)) − (t_ii − t_ij)]_+`, j ≠ i
//! - t2i: `r2[i][j] = [(γ'2_ij + (a_jj − a_ij)) − (t_jj − t_ij)]_+`, i ≠ j
//! - RM (hardest): `Σ_i max_j r1 + Σ_j max_i r2`; RS (sum): `Σ r1 + Σ r2`.
//!
//! γ'1_ij = adapt.upper(γ', 2, a_ii − a_ij) and γ'2_ij = adapt.upper(γ', 2,
//! a_jj − a_ij) ([`MarginAdaptation`]; constant γ' by default). The hardest
//! negative is the one with the largest *boosting* violation (docs/method.md §3.2 note).
//! Gradient w.r.t. t only: +1 on t_ij and −1 on the query's positive per
//! selected active term; ties and kinks follow [`super::reduction`].
//! PyTorch mirror: `losses.boost_relative`.

use super::margin::MarginAdaptation;
use super::reduction::{Reduction, pairwise_hinge};
use super::{LossError, LossOutput, ScoreMatrix, check_non_negative};

/// Unclamped hinge arguments (x1 i2t, x2 t2i), each `[n, n]`.
fn arguments(
    st: &ScoreMatrix,
    sa: &ScoreMatrix,
    margin: f64,
    adapt: MarginAdaptation,
) -> (Vec<f64>, Vec<f64>) {
    let n = st.n();
    let mut x1 = vec![0.0; n * n];
    let mut x2 = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            let gap1 = sa.get(i, i) - sa.get(i, j);
            let gap2 = sa.get(j, j) - sa.get(i, j);
            let m1 = adapt.upper(margin, 2.0, gap1);
            let m2 = adapt.upper(margin, 2.0, gap2);
            x1[i * n + j] = (m1 + gap1) - (st.get(i, i) - st.get(i, j));
            x2[i * n + j] = (m2 + gap2) - (st.get(j, j) - st.get(i, j));
        }
    }
    (x1, x2)
}

/// ℓ'_RM (`Reduction::Hardest`) or ℓ'_RS (`Reduction::Sum`) and dL/dS^t.
/// st, sa: `[n, n]`; `margin` = γ' = γ·β (>= 0).
pub fn boost_relative(
    st: &ScoreMatrix,
    sa: &ScoreMatrix,
    margin: f64,
    red: Reduction,
    adapt: MarginAdaptation,
) -> Result<LossOutput, LossError> {
    check_non_negative("boost margin γ·β", margin)?;
    st.check_same_size("the anchor S^a", sa)?;
    let n = st.n();
    let (x1, x2) = arguments(st, sa, margin, adapt);
    Ok(pairwise_hinge(&x1, &x2, n, red))
}

/// The cost matrices (r1, r2) with the diagonal zeroed, for inspection and
/// tests. Each `[n, n]`.
pub fn relative_costs(
    st: &ScoreMatrix,
    sa: &ScoreMatrix,
    margin: f64,
    adapt: MarginAdaptation,
) -> Result<(Vec<f64>, Vec<f64>), LossError> {
    check_non_negative("boost margin γ·β", margin)?;
    st.check_same_size("the anchor S^a", sa)?;
    let n = st.n();
    let (mut x1, mut x2) = arguments(st, sa, margin, adapt);
    for (k, (a, b)) in x1.iter_mut().zip(x2.iter_mut()).enumerate() {
        let diag = k / n == k % n;
        *a = if diag { 0.0 } else { a.max(0.0) };
        *b = if diag { 0.0 } else { b.max(0.0) };
    }
    Ok((x1, x2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loss::test_support::{check_grad, random_scores, spec_sa, spec_st};

    fn close(a: &[f64], b: &[f64]) {
        for (k, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() < 1e-6, "entry {k}: {x} vs {y} ({a:?})");
        }
    }

    /// Spec §11: RM = 1.89, RS = 2.52 and the two cost matrices.
    #[test]
    fn spec_vector() {
        let (st, sa) = (spec_st(), spec_sa());
        let none = MarginAdaptation::None;
        let rm = boost_relative(&st, &sa, 0.2, Reduction::Hardest, none).unwrap();
        let rs = boost_relative(&st, &sa, 0.2, Reduction::Sum, none).unwrap();
        assert!((rm.value - 1.89).abs() < 1e-6, "{}", rm.value);
        assert!((rs.value - 2.52).abs() < 1e-6, "{}", rs.value);
        let (r1, r2) = relative_costs(&st, &sa, 0.2, none).unwrap();
        close(&r1, &[0.0, 0.20, 0.35, 0.10, 0.0, 0.05, 0.42, 0.14, 0.0]);
        close(&r2, &[0.0, 0.25, 0.37, 0.05, 0.0, 0.02, 0.40, 0.17, 0.0]);
    }

    /// RM gradient by hand: i2t picks (0,2), (1,0), (2,0); t2i picks (2,0),
    /// (0,1), (0,2); each adds +1 at the pair and −1 at the query's positive.
    #[test]
    fn spec_vector_gradient() {
        let g = boost_relative(
            &spec_st(),
            &spec_sa(),
            0.2,
            Reduction::Hardest,
            MarginAdaptation::None,
        )
        .unwrap()
        .grad;
        let want = [-2.0, 1.0, 2.0, 1.0, -2.0, 0.0, 2.0, 0.0, -2.0];
        assert_eq!(g, want);
    }

    #[test]
    fn anchor_equal_to_target_gives_margin_per_query() {
        // a == t: every argument is γ', so RM = 2·n·γ' and RS = 2·n(n−1)·γ'.
        let s = random_scores(5, 3);
        let none = MarginAdaptation::None;
        let rm = boost_relative(&s, &s, 0.2, Reduction::Hardest, none).unwrap();
        let rs = boost_relative(&s, &s, 0.2, Reduction::Sum, none).unwrap();
        assert!((rm.value - 2.0 * 5.0 * 0.2).abs() < 1e-12);
        assert!((rs.value - 2.0 * 20.0 * 0.2).abs() < 1e-12);
    }

    #[test]
    fn rejects_bad_inputs() {
        let none = MarginAdaptation::None;
        let e = boost_relative(&spec_st(), &spec_sa(), -0.2, Reduction::Sum, none).unwrap_err();
        assert!(matches!(e, LossError::BadOption { .. }));
        let big = random_scores(4, 0);
        let e = boost_relative(&spec_st(), &big, 0.2, Reduction::Sum, none).unwrap_err();
        assert!(matches!(
            e,
            LossError::SizeMismatch {
                target: 3,
                other: 4,
                ..
            }
        ));
    }

    #[test]
    fn finite_differences() {
        let sa = random_scores(6, 100);
        for red in [Reduction::Hardest, Reduction::Sum] {
            for adapt in [
                MarginAdaptation::None,
                MarginAdaptation::Hard,
                MarginAdaptation::Soft,
            ] {
                let st = random_scores(6, 7);
                check_grad(|s| boost_relative(s, &sa, 0.2, red, adapt).unwrap(), &st);
            }
        }
    }
}
