//! Mutual learning, two-way (Zhang et al., CVPR 2018; the paper's "Mutual
//! Learning" comparison). Each branch is distilled towards the other's
//! stop-gradient softmax over rows and columns of τ·S (τ = 10, docs/method.md §7):
//!
//! `L = D(S1 ← sg S2) + D(S2 ← sg S1)`, where `D` is [`super::distillation`]
//! (rows + columns, batch-mean KL(peer ‖ self)). The value is the symmetric KL;
//! `grad` = dL/dS1 = ∂D(S1 ← sg S2)/∂S1 and `grad_anchor` = dL/dS2 =
//! ∂D(S2 ← sg S1)/∂S2 — what one backward pass of `L` gives in PyTorch
//! (`losses.mutual_learning`). Unlike the authors' OSS `dml` (one-way, peer
//! detached, docs/method.md §3.7) both branches learn from each other.

use super::distillation::distillation;
use super::{LossError, LossOutput, ScoreMatrix};

/// Two-way mutual learning between `s1` (the target) and `s2` (its peer).
/// s1, s2: `[n, n]`; `scale` = τ > 0.
pub fn mutual_learning(
    s1: &ScoreMatrix,
    s2: &ScoreMatrix,
    scale: f64,
) -> Result<LossOutput, LossError> {
    let d1 = distillation(s1, s2, scale)?;
    let d2 = distillation(s2, s1, scale)?;
    Ok(LossOutput {
        value: d1.value + d2.value,
        grad: d1.grad,
        grad_anchor: Some(d2.grad),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loss::test_support::{check_grad, random_scores};

    #[test]
    fn symmetric_value_and_mirrored_gradients() {
        let (a, b) = (random_scores(5, 11), random_scores(5, 12));
        let ab = mutual_learning(&a, &b, 10.0).unwrap();
        let ba = mutual_learning(&b, &a, 10.0).unwrap();
        assert!((ab.value - ba.value).abs() < 1e-12);
        assert_eq!(ab.grad_anchor.as_deref(), Some(&ba.grad[..]));
        assert!(ab.value > 0.0);
    }

    /// Each branch's gradient is that of its own (student) term: checked by
    /// finite differences of D(S1 ← S2) w.r.t. S1 and of D(S2 ← S1) w.r.t. S2.
    #[test]
    fn finite_differences() {
        let (a, b) = (random_scores(5, 13), random_scores(5, 14));
        let out = mutual_learning(&a, &b, 10.0).unwrap();
        check_grad(
            |s| {
                let mut o = distillation(s, &b, 10.0).unwrap();
                o.grad.clone_from(&out.grad);
                o
            },
            &a,
        );
        check_grad(
            |s| {
                let mut o = distillation(s, &a, 10.0).unwrap();
                o.grad.clone_from(out.grad_anchor.as_ref().unwrap());
                o
            },
            &b,
        );
    }
}
