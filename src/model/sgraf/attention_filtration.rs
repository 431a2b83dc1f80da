//! SAF, similarity attention filtration (docs/method.md §13.3): a gate per
//! similarity vector, L1-normalised over the pair's vectors, weights their
//! sum. PyTorch `AttentionFiltration` (`tools/reference/dbl_ref/sgraf.py`),
//! on one pair's nodes `X: [m, S]`:
//!
//! `a_k = σ(bn(w_a·x_k + b_a))`, `α_k = a_k / (Σ_k |a_k| + 1e-8)`,
//! output `L2(Σ_k α_k x_k)` [S].
//!
//! Pairs are stacked (pair j owns rows `offsets[j]..offsets[j+1]`).

use rand::Rng;

use crate::engine::activation::sigmoid;
use crate::engine::batchnorm::BatchNorm;
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
    /// `{prefix}.bn`: `BatchNorm1d(1)` (inference form).
    pub bn: BatchNorm,
}

/// Forward state (buffers reused across calls).
#[derive(Debug, Default, Clone)]
pub struct SafState {
    /// Gate logits before the batch norm. [M]
    z: Vec<f32>,
    /// α. [M]
    alpha: Vec<f32>,
    /// σ(bn(z)). [M]
    a: Vec<f32>,
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
        }
    }

    fn dim(&self) -> usize {
        self.attn.in_dim()
    }

    /// x: [M, S] stacked nodes (offsets[0] = 0) → `st.v`: [n, S].
    pub fn forward(&self, x: &[f32], offsets: &[usize], st: &mut SafState) {
        let s = self.dim();
        let m_all = x.len() / s;
        let n = offsets.len() - 1;
        st.z.resize(m_all, 0.0);
        self.attn.forward_into(x, &mut st.z, Par::Seq);
        st.a.clone_from(&st.z);
        self.bn.forward(&mut st.a, 1);
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

    /// From dv: [n, S] (consumed) → dx: [M, S] (overwritten); accumulates
    /// `attn_sim_w` and `bn` gradients. x: the forward input.
    pub fn backward(
        &mut self,
        x: &[f32],
        offsets: &[usize],
        st: &SafState,
        dv: &mut [f32],
        dx: &mut Vec<f32>,
    ) {
        let s = self.dim();
        let m_all = x.len() / s;
        l2norm::backward(&st.v, &st.vnorm, dv, s);
        dx.clear();
        dx.resize(m_all * s, 0.0);
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
                dx[k * s..(k + 1) * s]
                    .iter_mut()
                    .zip(ds)
                    .for_each(|(g, &v)| *g = st.alpha[k] * v);
            }
            // α = a / (Σ|a| + eps), a > 0: da_k = (dα_k − Σ dα·α) / den; then σ'.
            for k in a..b {
                let ak = st.a[k];
                let da = (dalpha[k] - dot) / st.den[j];
                du[k] = (da * ak as f64 * (1.0 - ak as f64)) as f32;
            }
        }
        self.bn.backward(&st.z, &mut du, 1);
        let mut tmp = vec![0.0f32; m_all * s];
        self.attn.backward(x, &du, Some(&mut tmp), Par::Seq);
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
