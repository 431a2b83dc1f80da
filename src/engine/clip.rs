//! Gradient clipping by total norm, PyTorch `torch.nn.utils.clip_grad_norm_`
//! (norm_type 2, docs/method.md §7: max norm 2.0 per model): the L2 norm over all
//! parameters' gradients together; coef = max_norm / (total + 1e-6); every
//! gradient is scaled by coef only if coef < 1. Returns the total norm before
//! clipping. Sums of squares are accumulated in f64; the coefficient is formed
//! in f32 like PyTorch's. A non-finite total behaves as in PyTorch with
//! `error_if_nonfinite=False` (inf gives coef 0, NaN gives NaN gradients);
//! callers that care check the returned norm.

use crate::engine::param::Param;

/// The epsilon PyTorch adds to the total norm.
const CLIP_EPS: f32 = 1e-6;

/// Total L2 norm of all gradients.
pub fn grad_norm(params: &[&Param]) -> f32 {
    params
        .iter()
        .map(|p| p.grad.iter().map(|&g| g as f64 * g as f64).sum::<f64>())
        .sum::<f64>()
        .sqrt() as f32
}

/// Scales all gradients so their total L2 norm is at most `max_norm`;
/// returns the norm before clipping.
pub fn clip_grad_norm(params: &mut [&mut Param], max_norm: f32) -> f32 {
    let total = grad_norm(&params.iter().map(|p| &**p).collect::<Vec<_>>());
    let coef = max_norm / (total + CLIP_EPS);
    if coef < 1.0 || coef.is_nan() {
        for p in params.iter_mut() {
            p.grad.iter_mut().for_each(|g| *g *= coef);
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two(g1: Vec<f32>, g2: Vec<f32>) -> Vec<Param> {
        let mut a = Param::zeros("a", &[g1.len()]);
        let mut b = Param::zeros("b", &[g2.len()]);
        a.grad = g1;
        b.grad = g2;
        vec![a, b]
    }

    #[test]
    fn clips_above_and_leaves_below() {
        // Norm 13 (5-12-13 triangle) split across two params.
        let mut ps = two(vec![3.0, 4.0], vec![12.0]);
        let total = clip_grad_norm(&mut ps.iter_mut().collect::<Vec<_>>(), 2.0);
        assert_eq!(total, 13.0);
        let coef = 2.0f32 / (13.0 + 1e-6);
        assert_eq!(ps[0].grad, vec![3.0 * coef, 4.0 * coef]);
        assert_eq!(ps[1].grad, vec![12.0 * coef]);
        let after = grad_norm(&ps.iter().collect::<Vec<_>>());
        assert!((after - 2.0).abs() < 1e-6);

        let mut small = two(vec![0.3, 0.4], vec![1.2]);
        let total = clip_grad_norm(&mut small.iter_mut().collect::<Vec<_>>(), 2.0);
        assert!((total - 1.3).abs() < 1e-6);
        assert_eq!(small[0].grad, vec![0.3, 0.4]);
        assert_eq!(small[1].grad, vec![1.2]);
    }
}
