//! The parameters of PyTorch's `nn.BatchNorm1d(C)`: `{prefix}.weight` (γ) and
//! `{prefix}.bias` (β), both [C]; γ starts at 1, β at 0 (the authors' init).
//! ε = 1e-5 (docs/method.md §13.4). The layer's two modes, training (batch
//! statistics) and eval (running statistics, kept as buffers and imported as
//! they are), are in [`crate::engine::batchnorm_train`].
//!
//! Layout as `BatchNorm1d`: x: [n, C, inner] (inner = 1 for [n, C] input),
//! channel c scales every `inner`-long run at position c.

use crate::engine::param::{Module, Param};

/// PyTorch's default `eps` of `BatchNorm1d`.
pub const BN_EPS: f32 = 1e-5;

/// `nn.BatchNorm1d(C)`'s γ and β.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchNorm {
    /// `{prefix}.weight`: γ [C].
    pub weight: Param,
    /// `{prefix}.bias`: β [C].
    pub bias: Param,
}

impl BatchNorm {
    /// γ = 1, β = 0.
    pub fn new(prefix: &str, channels: usize) -> Self {
        BatchNorm {
            weight: Param::from_values(
                format!("{prefix}.weight"),
                &[channels],
                vec![1.0; channels],
            ),
            bias: Param::zeros(format!("{prefix}.bias"), &[channels]),
        }
    }

    /// Channels C.
    pub fn channels(&self) -> usize {
        self.weight.shape[0]
    }

    /// Adds per-channel sums to the γ and β gradients. dg, db: [C].
    pub(crate) fn add_grads(&mut self, dg: &[f64], db: &[f64]) {
        for (p, a) in self.weight.grad.iter_mut().zip(dg) {
            *p += *a as f32;
        }
        for (p, a) in self.bias.grad.iter_mut().zip(db) {
            *p += *a as f32;
        }
    }
}

/// Calls `f(channel, x_run, dy_run)` for every `inner`-long run of
/// x: [n, C, inner] with the matching run of dy (same shape).
pub(crate) fn channel_runs(
    x: &[f32],
    dy: &mut [f32],
    channels: usize,
    inner: usize,
    mut f: impl FnMut(usize, &[f32], &mut [f32]),
) {
    let block = channels * inner;
    for (xb, gb) in x.chunks_exact(block).zip(dy.chunks_exact_mut(block)) {
        for (ch, (xr, gr)) in xb
            .chunks_exact(inner)
            .zip(gb.chunks_exact_mut(inner))
            .enumerate()
        {
            f(ch, xr, gr);
        }
    }
}

impl Module for BatchNorm {
    fn params(&self) -> Vec<&Param> {
        vec![&self.weight, &self.bias]
    }
    fn params_mut(&mut self) -> Vec<&mut Param> {
        vec![&mut self.weight, &mut self.bias]
    }
}
