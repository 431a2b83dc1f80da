//! Conventional distillation (the paper's "Conventional Distillation"
//! comparison; docs/method.md §3.7 `dml` as OSS uses it, i.e. with a detached peer):
//! the student's softmax over each row and each column of τ·S is pulled to a
//! frozen teacher's by KL divergence, batch mean per direction:
//!
//! `L = (1/B) Σ_i KL(q_i ‖ p_i) + (1/B) Σ_j KL(q'_j ‖ p'_j)`, with
//! `p_i = softmax(τ·S^t[i, :])`, `q_i = softmax(τ·S^T[i, :])` (teacher rows),
//! `p'_j`, `q'_j` the same over columns, and `KL(q ‖ p) = Σ_k q_k (log q_k − log p_k)`.
//!
//! dL/dS^t[i][j] = (τ/B)(p_ij − q_ij) + (τ/B)(p'_ji − q'_ji); the teacher is
//! stop-gradient. τ = 10 (temperature 0.1) in the authors' code (docs/method.md §7).
//! PyTorch mirror: `losses.distillation` (`F.kl_div(log_softmax(τ·S^t),
//! log_softmax(τ·S^T), log_target=True, reduction="batchmean")`, rows + columns).

use super::scores::transpose;
use super::softmax::log_softmax_rows;
use super::{LossError, LossOutput, ScoreMatrix, check_positive};

/// Row direction: value (1/n)Σ_i KL(q_i ‖ p_i) and its gradient w.r.t. the
/// student's scores. student, teacher: `[n, n]`.
pub(crate) fn kl_rows(student: &[f64], teacher: &[f64], n: usize, scale: f64) -> (f64, Vec<f64>) {
    let zs: Vec<f64> = student.iter().map(|&v| scale * v).collect();
    let zt: Vec<f64> = teacher.iter().map(|&v| scale * v).collect();
    let lp = log_softmax_rows(&zs, n);
    let lq = log_softmax_rows(&zt, n);
    let inv_n = 1.0 / n as f64;
    let mut value = 0.0;
    let mut grad = vec![0.0; n * n];
    for k in 0..n * n {
        let q = lq[k].exp();
        value += q * (lq[k] - lp[k]);
        grad[k] = scale * inv_n * (lp[k].exp() - q);
    }
    (value * inv_n, grad)
}

/// Rows + columns KL of the student `st` to a stop-gradient `teacher`.
/// st, teacher: `[n, n]`; `scale` = τ > 0.
pub fn distillation(
    st: &ScoreMatrix,
    teacher: &ScoreMatrix,
    scale: f64,
) -> Result<LossOutput, LossError> {
    check_positive("scale τ", scale)?;
    st.check_same_size("the teacher", teacher)?;
    let n = st.n();
    let (v_rows, g_rows) = kl_rows(st.as_slice(), teacher.as_slice(), n, scale);
    let (st_t, te_t) = (st.transposed(), teacher.transposed());
    let (v_cols, g_cols) = kl_rows(st_t.as_slice(), te_t.as_slice(), n, scale);
    let g_cols = transpose(&g_cols, n);
    Ok(LossOutput {
        value: v_rows + v_cols,
        grad: g_rows.iter().zip(&g_cols).map(|(a, b)| a + b).collect(),
        grad_anchor: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loss::test_support::{check_grad, random_scores};

    #[test]
    fn zero_when_student_equals_teacher() {
        let s = random_scores(5, 4);
        let out = distillation(&s, &s, 10.0).unwrap();
        assert!(out.value.abs() < 1e-12);
        assert!(out.grad.iter().all(|g| g.abs() < 1e-12));
    }

    /// Hand-computed B = 2 case (τ = 1): rows of S^t = [[0, 0], [0, 0]] give
    /// p = (½, ½); teacher rows [[ln 3, 0], [0, 0]] give q = (¾, ¼), (½, ½).
    /// Row part = ½(¾ ln(3/2) + ¼ ln(1/2)); the columns of the teacher are the
    /// same as its rows here, so L = 2 × the row part.
    #[test]
    fn hand_computed_b2() {
        let st = ScoreMatrix::from_f64("st", vec![0.0; 4], 2).unwrap();
        let te = ScoreMatrix::from_f64("te", vec![3f64.ln(), 0.0, 0.0, 0.0], 2).unwrap();
        let out = distillation(&st, &te, 1.0).unwrap();
        let row = 0.5 * (0.75 * 1.5f64.ln() + 0.25 * 0.5f64.ln());
        assert!((out.value - 2.0 * row).abs() < 1e-14, "{}", out.value);
        // d/dS[0][0] = ½(½ − ¾) from the row + ½(½ − ¾) from the column.
        assert!((out.grad[0] + 0.25).abs() < 1e-14, "{:?}", out.grad);
    }

    #[test]
    fn rejects_bad_scale() {
        let s = random_scores(3, 0);
        assert!(distillation(&s, &s, 0.0).is_err());
        assert!(distillation(&s, &s, f64::INFINITY).is_err());
    }

    #[test]
    fn finite_differences() {
        let teacher = random_scores(6, 31);
        for scale in [10.0, 5.0] {
            let st = random_scores(6, 32);
            check_grad(|s| distillation(s, &teacher, scale).unwrap(), &st);
        }
    }
}
