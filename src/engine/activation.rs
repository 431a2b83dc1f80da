//! Element-wise activations and the last-dimension softmax, each as an
//! in-place forward plus an in-place backward from the forward *output*:
//! - LeakyReLU(slope) (docs/method.md §5: slope 0.1 on the attention logits), PyTorch
//!   `F.leaky_relu`; its derivative is taken as 1 where the input was > 0 and
//!   `slope` elsewhere (PyTorch's choice at 0). With slope ≥ 0 the output is
//!   > 0 exactly where the input was, so the output suffices.
//! - tanh (the similarity score), `torch.tanh`: dy/dx = 1 − y².
//! - sigmoid (GRU gates), `torch.sigmoid` = 1/(1 + e^−x): dy/dx = y(1 − y).
//! - softmax over the last dimension, max-subtracted for stability, PyTorch
//!   `softmax(dim=-1)`: exp(x − max), then × 1/Σ; backward dx = y ⊙ (dy − Σ dy⊙y).

/// LeakyReLU in place: x ← x if x > 0 else slope·x. Panics if slope < 0.
pub fn leaky_relu_forward(x: &mut [f32], slope: f32) {
    assert!(
        slope >= 0.0,
        "leaky_relu: negative slope {slope} is not supported"
    );
    x.iter_mut().for_each(|v| {
        if *v <= 0.0 {
            *v *= slope
        }
    });
}

/// LeakyReLU backward in place: grad ← grad where y > 0, slope·grad elsewhere.
/// y: forward output, grad: same shape.
pub fn leaky_relu_backward(y: &[f32], grad: &mut [f32], slope: f32) {
    assert_eq!(y.len(), grad.len(), "leaky_relu backward: lengths");
    grad.iter_mut().zip(y).for_each(|(g, &v)| {
        if v <= 0.0 {
            *g *= slope
        }
    });
}

/// tanh in place ([`super::fastmath::tanh`]: within 4 ulp, vectorised at
/// the CPU's level).
pub fn tanh_forward(x: &mut [f32]) {
    super::simd::dispatch(
        #[inline(always)]
        || super::fastmath::tanh_in_place(x),
    );
}

/// tanh backward in place: grad ← grad·(1 − y²).
pub fn tanh_backward(y: &[f32], grad: &mut [f32]) {
    assert_eq!(y.len(), grad.len(), "tanh backward: lengths");
    grad.iter_mut().zip(y).for_each(|(g, &v)| *g *= 1.0 - v * v);
}

/// The logistic function 1/(1 + e^−x) of one value.
#[inline]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// sigmoid in place.
pub fn sigmoid_forward(x: &mut [f32]) {
    x.iter_mut().for_each(|v| *v = sigmoid(*v));
}

/// sigmoid backward in place: grad ← grad·y(1 − y).
pub fn sigmoid_backward(y: &[f32], grad: &mut [f32]) {
    assert_eq!(y.len(), grad.len(), "sigmoid backward: lengths");
    grad.iter_mut()
        .zip(y)
        .for_each(|(g, &v)| *g *= v * (1.0 - v));
}

/// Softmax over each `dim`-long row, in place. x: [rows, dim].
pub fn softmax_forward(x: &mut [f32], dim: usize) {
    assert!(
        dim > 0 && x.len().is_multiple_of(dim),
        "softmax: {} values are not rows of {dim}",
        x.len()
    );
    for row in x.chunks_exact_mut(dim) {
        let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut s = 0.0f64;
        for v in row.iter_mut() {
            *v = (*v - m).exp();
            s += *v as f64;
        }
        let inv = (1.0 / s) as f32;
        row.iter_mut().for_each(|v| *v *= inv);
    }
}

/// Softmax backward in place: grad ← y ⊙ (grad − Σ grad⊙y) per row.
/// y: [rows, dim] forward output, grad: [rows, dim].
pub fn softmax_backward(y: &[f32], grad: &mut [f32], dim: usize) {
    assert!(
        dim > 0 && y.len() == grad.len() && y.len().is_multiple_of(dim),
        "softmax backward: y {} values, grad {}, rows of {dim}",
        y.len(),
        grad.len()
    );
    for (yr, gr) in y.chunks_exact(dim).zip(grad.chunks_exact_mut(dim)) {
        let dot = super::reduce::dot_f64(yr, gr) as f32;
        gr.iter_mut()
            .zip(yr)
            .for_each(|(g, &v)| *g = v * (*g - dot));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::testutil::*;

    fn check(
        name: &str,
        mut x: Vec<f32>,
        fwd: impl Fn(&mut [f32]),
        bwd: impl Fn(&[f32], &mut [f32]),
    ) {
        let c = rand_vec(x.len(), 99, 1.0);
        let mut y = x.clone();
        fwd(&mut y);
        let mut g = c.clone();
        bwd(&y, &mut g);
        let fx = fd_grad(&mut x, FD_EPS, |x| {
            let mut y = x.to_vec();
            fwd(&mut y);
            dot_loss(&y, &c)
        });
        assert_grad_close(name, &g, &fx);
    }

    #[test]
    fn finite_differences() {
        // Keep LeakyReLU inputs at least 2·FD_EPS away from the kink.
        let x: Vec<f32> = rand_vec(40, 1, 2.0)
            .into_iter()
            .map(|v| if v.abs() < 0.05 { v + 0.1 } else { v })
            .collect();
        check(
            "leaky_relu",
            x,
            |x| leaky_relu_forward(x, 0.1),
            |y, g| leaky_relu_backward(y, g, 0.1),
        );
        check("tanh", rand_vec(40, 2, 2.0), tanh_forward, tanh_backward);
        check(
            "sigmoid",
            rand_vec(40, 3, 3.0),
            sigmoid_forward,
            sigmoid_backward,
        );
        check(
            "softmax",
            rand_vec(40, 4, 3.0),
            |x| softmax_forward(x, 8),
            |y, g| softmax_backward(y, g, 8),
        );
    }

    #[test]
    fn values() {
        let mut x = vec![-2.0f32, 0.0, 3.0];
        leaky_relu_forward(&mut x, 0.1);
        assert_eq!(x, vec![-0.2, 0.0, 3.0]);
        let mut g = vec![1.0f32; 3];
        leaky_relu_backward(&x, &mut g, 0.1);
        assert_eq!(g, vec![0.1, 0.1, 1.0]);
        // Softmax is shift-invariant and stable for large logits.
        let mut a = vec![1000.0f32, 1001.0, 1002.0];
        let mut b = vec![0.0f32, 1.0, 2.0];
        softmax_forward(&mut a, 3);
        softmax_forward(&mut b, 3);
        assert_eq!(a, b);
        assert!((b.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert_eq!(sigmoid(0.0), 0.5);
    }
}
