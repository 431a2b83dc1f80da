//! The cohort combination (docs/method.md §3.5): in a cohort of K branches scoring the
//! same batch, branch k is trained with
//!
//! `L_k = L_base(S_k) + α · (1/|P_k|) · Σ_{n ∈ P_k} L_peer(S_k, sg(S_n))`
//!
//! where the peer set P_k is either the earlier branches n < k (the DBL
//! cascade of OSS: branch 0 gets L_base only, branch k boosts from all earlier
//! ones, 1/|P_k| = 1/k) or every other branch n ≠ k (mutual learning in a
//! cohort). Peers are stop-gradient: the result's gradient is dL_k/dS_k only.
//! With K = 2, k = 1 this is the target objective L_raw(S^t) + α·L_boo(S^t, sg(S^a)).
//! PyTorch mirror: `losses.cohort_loss`.

use super::{LossError, LossOutput, ScoreMatrix, check_non_negative};

/// Which branches act as (stop-gradient) peers of branch k.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerSet {
    /// n < k: the DBL cascade (docs/method.md §3.5).
    Earlier,
    /// n ≠ k: every other branch (mutual learning).
    Others,
}

impl PeerSet {
    /// The peers of branch `k` in a cohort of `count` branches, ascending.
    pub fn of(self, k: usize, count: usize) -> Vec<usize> {
        match self {
            PeerSet::Earlier => (0..k.min(count)).collect(),
            PeerSet::Others => (0..count).filter(|&m| m != k).collect(),
        }
    }
}

/// Loss of branch `k` of `branches` (each `[n, n]`, same n) and dL_k/dS_k.
/// `base(S_k)` and `peer(S_k, S_n)` are the two loss terms; `alpha` >= 0.
pub fn cohort_loss<B, P>(
    branches: &[ScoreMatrix],
    k: usize,
    alpha: f64,
    peers: PeerSet,
    base: B,
    peer: P,
) -> Result<LossOutput, LossError>
where
    B: Fn(&ScoreMatrix) -> Result<LossOutput, LossError>,
    P: Fn(&ScoreMatrix, &ScoreMatrix) -> Result<LossOutput, LossError>,
{
    let sk = branches.get(k).ok_or(LossError::BranchIndex {
        k,
        branches: branches.len(),
    })?;
    check_non_negative("alpha", alpha)?;
    for (m, s) in branches.iter().enumerate() {
        sk.check_same_size(&format!("branch {m}"), s)?;
    }
    let mut out = base(sk)?;
    out.grad_anchor = None;
    let idx = peers.of(k, branches.len());
    if idx.is_empty() {
        return Ok(out);
    }
    let mut total = LossOutput::zeros(sk.n());
    for &m in &idx {
        let p = peer(sk, &branches[m])?;
        total.value += p.value;
        for (t, g) in total.grad.iter_mut().zip(&p.grad) {
            *t += g;
        }
    }
    let count = idx.len() as f64;
    out.value += alpha * (total.value / count);
    for (o, t) in out.grad.iter_mut().zip(&total.grad) {
        *o += alpha * (t / count);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loss::boost_relative::boost_relative;
    use crate::loss::test_support::{random_scores, spec_sa, spec_st};
    use crate::loss::triplet::triplet;
    use crate::loss::{MarginAdaptation, Reduction};

    fn base(s: &ScoreMatrix) -> Result<LossOutput, LossError> {
        triplet(s, 0.2, Reduction::Hardest)
    }

    fn rm(s: &ScoreMatrix, a: &ScoreMatrix) -> Result<LossOutput, LossError> {
        boost_relative(s, a, 0.2, Reduction::Hardest, MarginAdaptation::None)
    }

    /// Spec §11 with K = 2: the target's loss is L_raw + RM = 0.49 + 1.89;
    /// the anchor (k = 0) gets L_raw(S^a) only.
    #[test]
    fn two_branches_is_the_target_objective() {
        let branches = [spec_sa(), spec_st()];
        let t = cohort_loss(&branches, 1, 1.0, PeerSet::Earlier, base, rm).unwrap();
        assert!((t.value - (0.49 + 1.89)).abs() < 1e-6, "{}", t.value);
        let a = cohort_loss(&branches, 0, 1.0, PeerSet::Earlier, base, rm).unwrap();
        assert_eq!(a, base(&branches[0]).unwrap());
    }

    /// Branch 2 of 3 averages its two peer terms (1/k).
    #[test]
    fn cascade_averages_over_earlier_branches() {
        let b = [
            random_scores(5, 1),
            random_scores(5, 2),
            random_scores(5, 3),
        ];
        let out = cohort_loss(&b, 2, 0.5, PeerSet::Earlier, base, rm).unwrap();
        let (p0, p1) = (rm(&b[2], &b[0]).unwrap(), rm(&b[2], &b[1]).unwrap());
        let want = base(&b[2]).unwrap().value + 0.5 * (p0.value + p1.value) / 2.0;
        assert!((out.value - want).abs() < 1e-12);
        let g = base(&b[2]).unwrap().grad[7] + 0.5 * (p0.grad[7] + p1.grad[7]) / 2.0;
        assert!((out.grad[7] - g).abs() < 1e-12);
        // "others" for branch 0 uses branches 1 and 2.
        let o = cohort_loss(&b, 0, 1.0, PeerSet::Others, base, rm).unwrap();
        let want = base(&b[0]).unwrap().value
            + (rm(&b[0], &b[1]).unwrap().value + rm(&b[0], &b[2]).unwrap().value) / 2.0;
        assert!((o.value - want).abs() < 1e-12);
    }

    #[test]
    fn rejects_bad_index_alpha_and_sizes() {
        let b = [spec_sa(), spec_st()];
        let e = cohort_loss(&b, 2, 1.0, PeerSet::Earlier, base, rm).unwrap_err();
        assert_eq!(e, LossError::BranchIndex { k: 2, branches: 2 });
        let e = cohort_loss(&b, 1, -1.0, PeerSet::Earlier, base, rm).unwrap_err();
        assert!(matches!(e, LossError::BadOption { field: "alpha", .. }));
        let mixed = [spec_sa(), random_scores(4, 0)];
        let e = cohort_loss(&mixed, 0, 1.0, PeerSet::Earlier, base, rm).unwrap_err();
        assert!(matches!(e, LossError::SizeMismatch { .. }));
    }
}
