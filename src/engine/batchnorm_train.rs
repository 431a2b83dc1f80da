//! PyTorch `nn.BatchNorm1d(C)` in training mode, as SGRAF and VSE∞ train
//! their batch norms (docs/method.md §13.4): each channel is normalised with
//! the mean and biased variance of the batch, and the running statistics take
//! one momentum step toward the batch's mean and unbiased variance:
//!
//! `y = (x − μ_B)/√(σ²_B + ε)·γ + β`, `r_μ ← 0.9·r_μ + 0.1·μ_B`,
//! `r_σ² ← 0.9·r_σ² + 0.1·σ²_B·N/(N − 1)` (N values per channel).
//!
//! Eval mode then uses the running statistics:
//! `y = (x − r_μ)/√(r_σ² + ε)·γ + β` ([`RunningStats::forward_eval`]).
//! The parameters stay the [`BatchNorm`]'s γ and β; the running statistics are
//! the state_dict buffers `{prefix}.running_mean`, `{prefix}.running_var` and
//! `{prefix}.num_batches_tracked`. Statistics accumulate in f64, as PyTorch's
//! CPU kernel. Layout as [`BatchNorm`]: x: [n, C, inner].
//!
//! Parity: `tests/batchnorm_parity.rs` against
//! `tools/reference/make_batchnorm_fixtures.py`.

use crate::engine::batchnorm::{BN_EPS, BatchNorm, channel_runs};
use crate::engine::param::Param;

/// PyTorch's default `momentum` of `BatchNorm1d`.
pub const BN_MOMENTUM: f64 = 0.1;

/// The running statistics of one batch norm: PyTorch's buffers
/// `{prefix}.running_mean` and `{prefix}.running_var`, saved with the weights
/// ([`crate::engine::param::Module::buffers`]). PyTorch's third buffer,
/// `num_batches_tracked`, only matters with `momentum = None`, which no
/// original uses; it is not kept.
#[derive(Debug, Clone, PartialEq)]
pub struct RunningStats {
    /// `{prefix}.running_mean`: [C], starts at 0.
    pub mean: Param,
    /// `{prefix}.running_var`: [C], starts at 1.
    pub var: Param,
}

/// One training-mode forward's batch statistics (what its backward needs).
#[derive(Debug, Clone, PartialEq)]
pub struct BatchStats {
    /// Per-channel mean μ_B: [C].
    pub mean: Vec<f64>,
    /// Per-channel 1/√(σ²_B + ε) with the biased variance: [C].
    pub inv_std: Vec<f64>,
    /// Per-channel unbiased variance σ²_B·N/(N − 1): [C].
    pub var_unbiased: Vec<f64>,
    /// Values per channel N = n·inner.
    pub count: usize,
}

/// The batch statistics of x: [n, C, inner]. Needs N ≥ 2 values per channel
/// (PyTorch refuses one value per channel in training mode too).
pub fn batch_stats(x: &[f32], channels: usize, inner: usize) -> BatchStats {
    assert!(
        channels > 0 && inner > 0 && x.len().is_multiple_of(channels * inner),
        "batch norm: {} values are not [n, {channels}, {inner}]",
        x.len()
    );
    let count = x.len() / channels;
    assert!(
        count > 1,
        "batch norm in training mode needs more than one value per channel (got {count})"
    );
    let mut sum = vec![0.0f64; channels];
    for blk in x.chunks_exact(channels * inner) {
        for (s, run) in sum.iter_mut().zip(blk.chunks_exact(inner)) {
            *s += run.iter().map(|&v| v as f64).sum::<f64>();
        }
    }
    let mean: Vec<f64> = sum.iter().map(|s| s / count as f64).collect();
    let mut sq = vec![0.0f64; channels];
    for blk in x.chunks_exact(channels * inner) {
        for ((s, run), &m) in sq.iter_mut().zip(blk.chunks_exact(inner)).zip(&mean) {
            *s += run.iter().map(|&v| (v as f64 - m).powi(2)).sum::<f64>();
        }
    }
    BatchStats {
        inv_std: sq
            .iter()
            .map(|s| 1.0 / (s / count as f64 + BN_EPS as f64).sqrt())
            .collect(),
        var_unbiased: sq.iter().map(|s| s / (count - 1) as f64).collect(),
        mean,
        count,
    }
}

/// Applies `y = x·a_c + b_c` per channel in place. x: [n, C, inner].
fn affine(x: &mut [f32], a: &[f32], b: &[f32], inner: usize) {
    for blk in x.chunks_exact_mut(a.len() * inner) {
        for ((run, &ac), &bc) in blk.chunks_exact_mut(inner).zip(a).zip(b) {
            run.iter_mut().for_each(|v| *v = *v * ac + bc);
        }
    }
}

impl RunningStats {
    /// Mean 0, variance 1 (PyTorch's initial buffers) for the batch norm named `prefix`.
    pub fn new(prefix: &str, channels: usize) -> Self {
        RunningStats {
            mean: Param::zeros(format!("{prefix}.running_mean"), &[channels]),
            var: Param::from_values(
                format!("{prefix}.running_var"),
                &[channels],
                vec![1.0; channels],
            ),
        }
    }

    /// One momentum step toward `s` (mean, unbiased variance).
    pub fn update(&mut self, s: &BatchStats) {
        assert_eq!(
            self.mean.value.len(),
            s.mean.len(),
            "batch norm: channel count"
        );
        let m = BN_MOMENTUM;
        for (r, &b) in self.mean.value.iter_mut().zip(&s.mean) {
            *r = ((1.0 - m) * *r as f64 + m * b) as f32;
        }
        for (r, &b) in self.var.value.iter_mut().zip(&s.var_unbiased) {
            *r = ((1.0 - m) * *r as f64 + m * b) as f32;
        }
    }

    /// Per channel (1/√(r_σ² + ε), r_μ) in f64.
    fn inv_std(&self) -> Vec<(f64, f64)> {
        self.mean
            .value
            .iter()
            .zip(&self.var.value)
            .map(|(&m, &v)| (1.0 / (v as f64 + BN_EPS as f64).sqrt(), m as f64))
            .collect()
    }

    /// Eval mode in place with these statistics. x: [n, C, inner].
    pub fn forward_eval(&self, bn: &BatchNorm, x: &mut [f32], inner: usize) {
        let (a, b): (Vec<f32>, Vec<f32>) = self
            .inv_std()
            .iter()
            .zip(bn.weight.value.iter().zip(&bn.bias.value))
            .map(|(&(inv, m), (&g, &beta))| {
                let k = inv * g as f64;
                (k as f32, (beta as f64 - m * k) as f32)
            })
            .unzip();
        affine(x, &a, &b, inner);
    }

    /// Backward of [`RunningStats::forward_eval`] (statistics constant):
    /// accumulates the γ and β gradients and turns `dy` into dx in place.
    /// x: the forward input [n, C, inner], dy: same shape.
    pub fn backward_eval(&self, bn: &mut BatchNorm, x: &[f32], dy: &mut [f32], inner: usize) {
        let c = bn.channels();
        assert_eq!(x.len(), dy.len(), "{}: gradient length", bn.weight.name);
        let sc = self.inv_std();
        let mut dg = vec![0.0f64; c];
        let mut db = vec![0.0f64; c];
        let g = &bn.weight.value;
        channel_runs(x, dy, c, inner, |ch, xr, gr| {
            let (inv, m) = sc[ch];
            let k = inv * g[ch] as f64;
            for (&xv, gv) in xr.iter().zip(gr.iter_mut()) {
                dg[ch] += *gv as f64 * (xv as f64 - m) * inv;
                db[ch] += *gv as f64;
                *gv = (*gv as f64 * k) as f32;
            }
        });
        bn.add_grads(&dg, &db);
    }
}

impl BatchNorm {
    /// Training mode in place: normalises x: [n, C, inner] with its own batch
    /// statistics and returns them (for [`BatchNorm::backward_train`] and
    /// [`RunningStats::update`]).
    pub fn forward_train(&self, x: &mut [f32], inner: usize) -> BatchStats {
        let s = batch_stats(x, self.channels(), inner);
        let (a, b): (Vec<f32>, Vec<f32>) = s
            .mean
            .iter()
            .zip(&s.inv_std)
            .zip(self.weight.value.iter().zip(&self.bias.value))
            .map(|((&m, &k), (&g, &beta))| {
                let a = k * g as f64;
                (a as f32, (beta as f64 - m * a) as f32)
            })
            .unzip();
        affine(x, &a, &b, inner);
        s
    }

    /// Backward of [`BatchNorm::forward_train`]: accumulates the γ and β
    /// gradients and turns `dy` into dx in place, the batch statistics
    /// included: `dx = γ·k·(dy − mean(dy) − x̂·mean(dy·x̂))` per channel
    /// (k = 1/√(σ²_B + ε), x̂ = (x − μ_B)·k). x: the forward input, dy: same shape.
    pub fn backward_train(&mut self, x: &[f32], s: &BatchStats, dy: &mut [f32], inner: usize) {
        let c = self.channels();
        assert_eq!(x.len(), dy.len(), "{}: gradient length", self.weight.name);
        assert_eq!(s.mean.len(), c, "{}: batch statistics", self.weight.name);
        let mut sum_dy = vec![0.0f64; c];
        let mut sum_dy_xhat = vec![0.0f64; c];
        channel_runs(x, dy, c, inner, |ch, xr, gr| {
            let (m, k) = (s.mean[ch], s.inv_std[ch]);
            for (&xv, &gv) in xr.iter().zip(gr.iter()) {
                sum_dy[ch] += gv as f64;
                sum_dy_xhat[ch] += gv as f64 * (xv as f64 - m) * k;
            }
        });
        let n = s.count as f64;
        let g = &self.weight.value;
        channel_runs(x, dy, c, inner, |ch, xr, gr| {
            let (m, k) = (s.mean[ch], s.inv_std[ch]);
            let (mdy, mdyx) = (sum_dy[ch] / n, sum_dy_xhat[ch] / n);
            for (&xv, gv) in xr.iter().zip(gr.iter_mut()) {
                let xhat = (xv as f64 - m) * k;
                *gv = (g[ch] as f64 * k * (*gv as f64 - mdy - xhat * mdyx)) as f32;
            }
        });
        self.add_grads(&sum_dy_xhat, &sum_dy);
    }
}

/// A batch norm as a training step uses it: in training mode (`train`) with
/// the batch's statistics, which it returns; in eval mode (or when the batch
/// has a single value per channel, where PyTorch would stop with an error)
/// with the running statistics. x: [n, C, inner], in place.
pub fn forward(
    bn: &BatchNorm,
    running: &RunningStats,
    x: &mut [f32],
    inner: usize,
    train: bool,
) -> Option<BatchStats> {
    if train && x.len() / bn.channels() > 1 {
        Some(bn.forward_train(x, inner))
    } else {
        running.forward_eval(bn, x, inner);
        None
    }
}

/// Backward of [`forward`]: through the batch statistics `stats` when it
/// returned them, then one running-statistics step toward them (PyTorch
/// takes that step in the forward; a training forward is always followed by
/// its backward here, so the state after a step is the same); else with the
/// running statistics. x: the forward input, dy → dx in place.
pub fn backward(
    bn: &mut BatchNorm,
    running: &mut RunningStats,
    x: &[f32],
    stats: Option<&BatchStats>,
    dy: &mut [f32],
    inner: usize,
) {
    match stats {
        Some(s) => {
            bn.backward_train(x, s, dy, inner);
            running.update(s);
        }
        None => running.backward_eval(bn, x, dy, inner),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::testutil::*;

    #[test]
    fn finite_differences_through_the_batch_statistics() {
        let (n, c, inner) = (4, 3, 5);
        let bn = check_batchnorm_grads(
            (n, c, inner),
            |bn, y| {
                bn.forward_train(y, inner);
            },
            |bn, x, dy| {
                let s = batch_stats(x, c, inner);
                bn.backward_train(x, &s, dy, inner);
            },
        );
        // The output is normalised per channel: channel 0 has mean β_0.
        let mut y = rand_vec(n * c * inner, 3, 1.0);
        bn.forward_train(&mut y, inner);
        let mean0: f64 = (0..n)
            .flat_map(|i| y[i * c * inner..i * c * inner + inner].to_vec())
            .map(|v| v as f64)
            .sum::<f64>()
            / (n * inner) as f64;
        assert!((mean0 - bn.bias.value[0] as f64).abs() < 1e-5, "{mean0}");
    }

    #[test]
    fn running_statistics_follow_the_batches_and_serve_eval() {
        let c = 2;
        let x = [1.0f32, 10.0, 3.0, 14.0]; // [2, 2]: channel 0 {1, 3}, channel 1 {10, 14}
        let s = batch_stats(&x, c, 1);
        assert_eq!(s.mean, vec![2.0, 12.0]);
        assert_eq!(s.var_unbiased, vec![2.0, 8.0]);
        let mut r = RunningStats::new("bn", c);
        assert_eq!(r.mean.name, "bn.running_mean");
        r.update(&s);
        let (m, v) = (&r.mean.value, &r.var.value);
        assert!((m[0] - 0.2).abs() < 1e-7 && (m[1] - 1.2).abs() < 1e-6);
        assert!((v[0] - 1.1).abs() < 1e-6 && (v[1] - 1.7).abs() < 1e-6);
        // With the initial statistics eval mode is y = x·γ/√(1 + ε) + β.
        let mut bn = BatchNorm::new("bn", c);
        bn.weight.value = vec![0.7, 1.3];
        bn.bias.value = vec![0.1, -0.2];
        let mut a = x.to_vec();
        RunningStats::new("bn", c).forward_eval(&bn, &mut a, 1);
        let k = 1.0 / (1.0 + BN_EPS).sqrt();
        let b: Vec<f32> = x
            .iter()
            .enumerate()
            .map(|(i, &v)| v * k * bn.weight.value[i % c] + bn.bias.value[i % c])
            .collect();
        for (p, q) in a.iter().zip(&b) {
            assert!((p - q).abs() <= 1e-6 * q.abs().max(1.0), "{p} vs {q}");
        }
    }

    #[test]
    fn eval_backward_with_running_statistics() {
        let (c, inner) = (4, 2);
        let mut r = RunningStats::new("bn", c);
        r.mean.value = rand_vec(c, 5, 0.5);
        r.var.value = rand_vec(c, 6, 0.4).iter().map(|v| v + 1.0).collect();
        check_batchnorm_grads(
            (3, c, inner),
            |bn, y| r.forward_eval(bn, y, inner),
            |bn, x, dy| r.backward_eval(bn, x, dy, inner),
        );
    }
}
