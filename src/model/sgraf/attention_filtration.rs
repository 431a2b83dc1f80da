//! SAF, similarity attention filtration (docs/method.md §13.3): a gate per
//! similarity vector, L1-normalised over the pair's vectors, weights their
//! sum. PyTorch `AttentionFiltration` (`tools/reference/dbl_ref/sgraf.py`),
//! on one pair's nodes `X: [m, S]`:
//!
//! `a_k = σ(bn(w_a·x_k + b_a))`, `α_k = a_k / (Σ_k |a_k| + 1e-8)`,
//! output `L2(Σ_k α_k x_k)` [S].
//!
//! Pairs are stacked (pair j owns rows `offsets[j]..offsets[j+1]`).
//!
//! The batch norm runs in eval mode here ([`AttentionFiltration::forward`]:
//! the running statistics). In training mode its statistics are each
//! caption's over every image of the batch (docs/method.md §13.4), which no
//! single pair sees: the head then calls the stages one by one
//! ([`AttentionFiltration::logits`], its own batch norm over the batch,
//! [`AttentionFiltration::finish`]; backward [`AttentionFiltration::gate_grad`],
//! the batch norm's backward, [`AttentionFiltration::logits_backward`]).

use rand::Rng;

use crate::engine::activation::sigmoid;
use crate::engine::batchnorm::BatchNorm;
use crate::engine::batchnorm_train::RunningStats;
use crate::engine::gemm::Par;
use crate::engine::l2norm;
use crate::engine::linear::Linear;
use crate::engine::param::{Module, Param};
use crate::engine::reduce::dot_f64;

/// L1 normalisation's epsilon (added to the sum, as `l1norm` in the authors' code).
const L1_EPS: f64 = 1e-8;

/// `AttentionFiltration(S)`.
#[derive(Debug, Clone, PartialEq)]
pub struct AttentionFiltration {
    /// `{prefix}.attn_sim_w`: S → 1.
    pub attn: Linear,
    /// `{prefix}.bn`: `BatchNorm1d(1)`'s γ and β.
    pub bn: BatchNorm,
    /// `{prefix}.bn`'s running statistics (buffers).
    pub running: RunningStats,
}

/// Forward state (buffers reused across calls).
#[derive(Debug, Default, Clone)]
pub struct SafState {
    /// Gate logits before the batch norm. [M]
    pub z: Vec<f32>,
    /// α. [M]
    alpha: Vec<f32>,
    /// bn(z), then σ(bn(z)) (after [`AttentionFiltration::finish`]). [M]
    pub a: Vec<f32>,
    /// Σ_k a_k + eps per pair. [n]
    den: Vec<f64>,
    /// Output (normalised) and norms. [n, S], [n]
    pub v: Vec<f32>,
    vnorm: Vec<f32>,
}

impl SafState {
    /// The aggregation weights α of the last forward (L1-normalised per
    /// pair). [M]
    pub fn weights(&self) -> &[f32] {
        &self.alpha
    }
    /// The norms the outputs were divided by. [n]
    pub fn norms(&self) -> &[f32] {
        &self.vnorm
    }
}

impl AttentionFiltration {
    /// Xavier-uniform `attn_sim_w`, zero bias, bn γ = 1, β = 0.
    pub fn new<R: Rng + ?Sized>(prefix: &str, sim_dim: usize, rng: &mut R) -> Self {
        AttentionFiltration {
            attn: Linear::xavier(&format!("{prefix}.attn_sim_w"), sim_dim, 1, true, rng),
            bn: BatchNorm::new(&format!("{prefix}.bn"), 1),
            running: RunningStats::new(&format!("{prefix}.bn"), 1),
        }
    }

    fn dim(&self) -> usize {
        self.attn.in_dim()
    }

    /// Eval mode (the running statistics): x: [M, S] stacked nodes
    /// (offsets[0] = 0) → `st.v`: [n, S].
    pub fn forward(&self, x: &[f32], offsets: &[usize], st: &mut SafState) {
        self.logits(x, st);
        st.a.clone_from(&st.z);
        self.running.forward_eval(&self.bn, &mut st.a, 1);
        self.finish(x, offsets, st);
    }

    /// The gate logits `st.z = w_a·x_k + b_a`: [M] of x: [M, S].
    pub fn logits(&self, x: &[f32], st: &mut SafState) {
        st.z.resize(x.len() / self.dim(), 0.0);
        self.attn.forward_into(x, &mut st.z, Par::Seq);
    }

    /// From the batch-normalised logits in `st.a` ([M]): the gates, their L1
    /// normalisation and the weighted sum → `st.v`: [n, S]. x: [M, S].
    pub fn finish(&self, x: &[f32], offsets: &[usize], st: &mut SafState) {
        let s = self.dim();
        let m_all = x.len() / s;
        let n = offsets.len() - 1;
        st.a.iter_mut().for_each(|v| *v = sigmoid(*v));
        st.alpha.resize(m_all, 0.0);
        st.den.resize(n, 0.0);
        st.v.resize(n * s, 0.0);
        let mut acc = vec![0.0f64; s];
        for j in 0..n {
            let (a, b) = (offsets[j], offsets[j + 1]);
            let den = st.a[a..b].iter().map(|&v| v.abs() as f64).sum::<f64>() + L1_EPS;
            st.den[j] = den;
            acc.fill(0.0);
            for k in a..b {
                st.alpha[k] = (st.a[k] as f64 / den) as f32;
                let ak = st.alpha[k] as f64;
                acc.iter_mut()
                    .zip(&x[k * s..(k + 1) * s])
                    .for_each(|(y, &v)| *y += ak * v as f64);
            }
            st.v[j * s..(j + 1) * s]
                .iter_mut()
                .zip(&acc)
                .for_each(|(y, &v)| *y = v as f32);
        }
        st.vnorm = l2norm::forward(&mut st.v, s);
    }

    /// Backward of [`Self::forward`] (eval mode) from dv: [n, S] (consumed)
    /// → dx: [M, S] (overwritten); accumulates `attn_sim_w` and `bn`
    /// gradients. x: the forward input.
    pub fn backward(
        &mut self,
        x: &[f32],
        offsets: &[usize],
        st: &SafState,
        dv: &mut [f32],
        dx: &mut Vec<f32>,
    ) {
        let mut du = self.gate_grad(x, offsets, st, dv, Some(dx));
        self.running.backward_eval(&mut self.bn, &st.z, &mut du, 1);
        self.logits_backward(x, &du, dx);
    }

    /// Backward of [`Self::finish`] from dv: [n, S] (consumed): the gradient
    /// at the batch norm's output [M]; with `dx`, also the part of the
    /// input gradient that does not pass through the gates (dx: [M, S],
    /// overwritten). x: the forward input.
    pub fn gate_grad(
        &self,
        x: &[f32],
        offsets: &[usize],
        st: &SafState,
        dv: &mut [f32],
        mut dx: Option<&mut Vec<f32>>,
    ) -> Vec<f32> {
        let s = self.dim();
        let m_all = x.len() / s;
        l2norm::backward(&st.v, &st.vnorm, dv, s);
        if let Some(dx) = dx.as_deref_mut() {
            dx.clear();
            dx.resize(m_all * s, 0.0);
        }
        let mut du = vec![0.0f32; m_all];
        let mut dalpha = vec![0.0f64; m_all];
        for j in 0..offsets.len() - 1 {
            let (a, b) = (offsets[j], offsets[j + 1]);
            let ds = &dv[j * s..(j + 1) * s];
            let mut dot = 0.0f64;
            for k in a..b {
                let dal = dot_f64(ds, &x[k * s..(k + 1) * s]);
                dalpha[k] = dal;
                dot += dal * st.alpha[k] as f64;
                if let Some(dx) = dx.as_deref_mut() {
                    dx[k * s..(k + 1) * s]
                        .iter_mut()
                        .zip(ds)
                        .for_each(|(g, &v)| *g = st.alpha[k] * v);
                }
            }
            // α = a / (Σ|a| + eps), a > 0: da_k = (dα_k − Σ dα·α) / den; then σ'.
            for k in a..b {
                let ak = st.a[k];
                let da = (dalpha[k] - dot) / st.den[j];
                du[k] = (da * ak as f64 * (1.0 - ak as f64)) as f32;
            }
        }
        du
    }

    /// Backward of [`Self::logits`] from dz: [M]: adds `dz·w_a` into dx:
    /// [M, S] and accumulates `attn_sim_w`'s gradients. x: the forward input.
    pub fn logits_backward(&mut self, x: &[f32], dz: &[f32], dx: &mut [f32]) {
        let mut tmp = vec![0.0f32; x.len()];
        self.attn.backward(x, dz, Some(&mut tmp), Par::Seq);
        dx.iter_mut().zip(&tmp).for_each(|(g, &v)| *g += v);
    }
}

impl Module for AttentionFiltration {
    fn params(&self) -> Vec<&Param> {
        let mut v = self.attn.params();
        v.extend(self.bn.params());
        v
    }
    fn params_mut(&mut self) -> Vec<&mut Param> {
        let mut v = self.attn.params_mut();
        v.extend(self.bn.params_mut());
        v
    }
    fn buffers(&self) -> Vec<&Param> {
        vec![&self.running.mean, &self.running.var]
    }
    fn buffers_mut(&mut self) -> Vec<&mut Param> {
        vec![&mut self.running.mean, &mut self.running.var]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::rng::seeded;
    use crate::engine::testutil::*;

    #[test]
    fn finite_differences() {
        let s = 6;
        let offsets = [0, 4, 9];
        let mut saf = AttentionFiltration::new("f", s, &mut seeded(1));
        saf.bn.weight.value = vec![1.3];
        saf.bn.bias.value = vec![-0.2];
        saf.attn.bias.as_mut().unwrap().value = vec![0.1];
        let mut x = rand_vec(9 * s, 2, 1.0);
        let up = rand_vec(2 * s, 3, 1.0);
        let f = |m: &AttentionFiltration, x: &[f32]| {
            let mut st = SafState::default();
            m.forward(x, &offsets, &mut st);
            dot_loss(&st.v, &up)
        };
        let mut st = SafState::default();
        saf.forward(&x, &offsets, &mut st);
        let mut dv = up.clone();
        let mut dx = Vec::new();
        saf.backward(&x, &offsets, &st, &mut dv, &mut dx);
        let fx = fd_grad(&mut x, FD_EPS, |x| f(&saf, x));
        assert_grad_close("dx", &dx, &fx);
        for k in 0..saf.params().len() {
            let mut w = saf.params()[k].value.clone();
            let fw = fd_grad(&mut w, FD_EPS, |w| {
                let mut s2 = saf.clone();
                s2.params_mut()[k].value = w.to_vec();
                f(&s2, &x)
            });
            assert_grad_close(&saf.params()[k].name.clone(), &saf.params()[k].grad, &fw);
        }
    }
}
