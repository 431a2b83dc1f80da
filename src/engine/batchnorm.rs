//! PyTorch `nn.BatchNorm1d(C)` in its inference form with running
//! statistics (mean 0, variance 1): `y = x·γ/√(1 + ε) + β` per channel,
//! ε = 1e-5 (docs/method.md §13.4). Parameters `{prefix}.weight` (γ) and
//! `{prefix}.bias` (β), both [C]; γ starts at 1, β at 0 (the authors' init).
//!
//! This form never uses batch statistics (docs/method.md §13.4). A checkpoint's running statistics are
//! folded into γ and β on import (`tools/import_torch.py`:
//! γ' = γ·√(1 + ε)/√(var + ε), β' = β − mean·γ/√(var + ε)), which reproduces
//! PyTorch's eval-mode output exactly in real arithmetic. Training mode with
//! batch statistics and running statistics: [`crate::engine::batchnorm_train`].
//!
//! Layout as `BatchNorm1d`: x: [n, C, inner] (inner = 1 for [n, C] input),
//! channel c scales every `inner`-long run at position c.

use crate::engine::param::{Module, Param};

/// PyTorch's default `eps` of `BatchNorm1d`.
pub const BN_EPS: f32 = 1e-5;

/// `nn.BatchNorm1d(C)`, inference form.
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

    /// 1/√(1 + ε) as f32 (what PyTorch divides by at running variance 1).
    fn inv_std() -> f32 {
        1.0 / (1.0 + BN_EPS).sqrt()
    }

    fn check(&self, len: usize, inner: usize) {
        let c = self.channels();
        assert!(
            inner > 0 && len.is_multiple_of(c * inner),
            "{}: {len} values are not [n, {c}, {inner}]",
            self.weight.name
        );
    }

    /// In place. x: [n, C, inner].
    pub fn forward(&self, x: &mut [f32], inner: usize) {
        self.check(x.len(), inner);
        let k = Self::inv_std();
        for blk in x.chunks_exact_mut(self.channels() * inner) {
            for ((run, &g), &b) in blk
                .chunks_exact_mut(inner)
                .zip(&self.weight.value)
                .zip(&self.bias.value)
            {
                // PyTorch: (x − 0)/√(1 + ε)·γ + β.
                run.iter_mut().for_each(|v| *v = *v * k * g + b);
            }
        }
    }

    /// Accumulates γ and β gradients and turns `dy` into dx in place.
    /// x: [n, C, inner] (the forward input), dy: same shape.
    pub fn backward(&mut self, x: &[f32], dy: &mut [f32], inner: usize) {
        self.check(x.len(), inner);
        assert_eq!(x.len(), dy.len(), "{}: gradient length", self.weight.name);
        let k = Self::inv_std();
        let c = self.channels();
        let mut dg = vec![0.0f64; c];
        let mut db = vec![0.0f64; c];
        let g = &self.weight.value;
        channel_runs(x, dy, c, inner, |ch, xr, gr| {
            for (&xv, gv) in xr.iter().zip(gr.iter_mut()) {
                dg[ch] += *gv as f64 * (xv * k) as f64;
                db[ch] += *gv as f64;
                *gv *= k * g[ch];
            }
        });
        self.add_grads(&dg, &db);
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

#[cfg(test)]
mod tests {
    use crate::engine::testutil::*;

    #[test]
    fn finite_differences() {
        let inner = 5;
        check_batchnorm_grads(
            (3, 4, inner),
            |bn, y| bn.forward(y, inner),
            |bn, x, dy| bn.backward(x, dy, inner),
        );
    }
}
