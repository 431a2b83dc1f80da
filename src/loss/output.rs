//! The result of a loss: its value and the gradient of the value with respect
//! to the trained branch's scores (and, for two-way losses, the anchor's).

/// Loss value and gradients, `[n, n]` row-major like the scores.
#[derive(Clone, Debug, PartialEq)]
pub struct LossOutput {
    /// The loss value.
    pub value: f64,
    /// dL/dS^t (or dL/dS_k for a cohort branch k): `[n, n]`.
    pub grad: Vec<f64>,
    /// dL/dS^a where the anchor is not stop-gradient (mutual learning only).
    pub grad_anchor: Option<Vec<f64>>,
}

impl LossOutput {
    /// Zero value and zero gradient for an `n × n` batch.
    pub fn zeros(n: usize) -> Self {
        Self {
            value: 0.0,
            grad: vec![0.0; n * n],
            grad_anchor: None,
        }
    }

    /// dL/dS^t as f32, ready to back-propagate into an f32 model.
    pub fn grad_f32(&self) -> Vec<f32> {
        self.grad.iter().map(|&g| g as f32).collect()
    }

    /// dL/dS^a as f32, where the loss has one.
    pub fn grad_anchor_f32(&self) -> Option<Vec<f32>> {
        self.grad_anchor
            .as_ref()
            .map(|g| g.iter().map(|&v| v as f32).collect())
    }
}
