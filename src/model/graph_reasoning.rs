//! SGR, similarity graph reasoning (docs/method.md §13.2): steps of message
//! passing over a fully connected graph whose nodes are one pair's
//! similarity vectors (the global one first, then one per word). One step,
//! PyTorch `GraphReasoning` (`tools/reference/dbl_ref/sgraf.py`), on nodes
//! `X: [m, S]`:
//!
//! `Q = X·W_qᵀ + b_q`, `K = X·W_kᵀ + b_k`, `E = softmax_row(Q·Kᵀ)` [m, m],
//! `Y = relu((E·X)·W_gᵀ + b_g)`.
//!
//! The nodes of many pairs are stacked (pair j owns rows
//! `offsets[j]..offsets[j+1]`): the three linear maps run as one GEMM over
//! all of them, the m×m edges per pair.

use rand::Rng;

use crate::engine::activation::{softmax_backward, softmax_forward};
use crate::engine::gemm::{MatMut, MatRef, Par, gemm};
use crate::engine::linear::Linear;
use crate::engine::param::{Module, Param};

/// One `GraphReasoning(S)` step.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphStep {
    /// `{prefix}.graph_query_w`: S → S.
    pub query: Linear,
    /// `{prefix}.graph_key_w`: S → S.
    pub key: Linear,
    /// `{prefix}.sim_graph_w`: S → S.
    pub graph: Linear,
}

/// One step's forward state (buffers reused across calls).
#[derive(Debug, Default, Clone)]
pub struct StepState {
    /// Q, K. [M, S]
    q: Vec<f32>,
    k: Vec<f32>,
    /// Edges E per pair, pair after pair (Σ m_j² values).
    e: Vec<f32>,
    /// E·X. [M, S]
    msg: Vec<f32>,
    /// Output Y (after relu). [M, S]
    pub y: Vec<f32>,
}

/// Offsets of pair j's block in the stacked edge buffer: Σ_{i<j} m_i².
fn edge_offsets(offsets: &[usize]) -> Vec<usize> {
    let mut e = vec![0usize];
    for w in offsets.windows(2) {
        let m = w[1] - w[0];
        e.push(e.last().copied().unwrap_or(0) + m * m);
    }
    e
}

impl GraphStep {
    /// Xavier-uniform weights (query, key, graph), zero biases.
    pub fn new<R: Rng + ?Sized>(prefix: &str, sim_dim: usize, rng: &mut R) -> Self {
        let lin = |name: &str, rng: &mut R| {
            Linear::xavier(&format!("{prefix}.{name}"), sim_dim, sim_dim, true, rng)
        };
        let query = lin("graph_query_w", rng);
        let key = lin("graph_key_w", rng);
        let graph = lin("sim_graph_w", rng);
        GraphStep { query, key, graph }
    }

    fn dim(&self) -> usize {
        self.query.in_dim()
    }

    /// x: [M, S] stacked nodes (offsets[0] = 0) → `st.y`: [M, S].
    pub fn forward(&self, x: &[f32], offsets: &[usize], st: &mut StepState) {
        let s = self.dim();
        let m_all = x.len() / s;
        st.q.resize(m_all * s, 0.0);
        st.k.resize(m_all * s, 0.0);
        self.query.forward_into(x, &mut st.q, Par::Seq);
        self.key.forward_into(x, &mut st.k, Par::Seq);
        let eo = edge_offsets(offsets);
        st.e.resize(eo[eo.len() - 1], 0.0);
        st.msg.resize(m_all * s, 0.0);
        for j in 0..offsets.len() - 1 {
            let (a, b) = (offsets[j], offsets[j + 1]);
            let m = b - a;
            let e = &mut st.e[eo[j]..eo[j + 1]];
            gemm(
                MatMut::new(e, m, m),
                MatRef::new(&st.q[a * s..b * s], m, s),
                MatRef::new(&st.k[a * s..b * s], m, s).t(),
                1.0,
                0.0,
                Par::Seq,
            );
            softmax_forward(e, m);
            gemm(
                MatMut::new(&mut st.msg[a * s..b * s], m, s),
                MatRef::new(e, m, m),
                MatRef::new(&x[a * s..b * s], m, s),
                1.0,
                0.0,
                Par::Seq,
            );
        }
        st.y.resize(m_all * s, 0.0);
        self.graph.forward_into(&st.msg, &mut st.y, Par::Seq);
        st.y.iter_mut().for_each(|v| *v = v.max(0.0));
    }

    /// From dy: [M, S] (consumed) → dx: [M, S] (overwritten); accumulates
    /// this step's parameter gradients. x: the forward input.
    pub fn backward(
        &mut self,
        x: &[f32],
        offsets: &[usize],
        st: &StepState,
        dy: &mut [f32],
        dx: &mut Vec<f32>,
    ) {
        let s = self.dim();
        let m_all = x.len() / s;
        dy.iter_mut()
            .zip(&st.y)
            .for_each(|(g, &y)| *g = if y > 0.0 { *g } else { 0.0 });
        let mut dmsg = vec![0.0f32; m_all * s];
        self.graph.backward(&st.msg, dy, Some(&mut dmsg), Par::Seq);
        dx.clear();
        dx.resize(m_all * s, 0.0);
        let eo = edge_offsets(offsets);
        let mut de = vec![0.0f32; eo[eo.len() - 1]];
        for j in 0..offsets.len() - 1 {
            let (a, b) = (offsets[j], offsets[j + 1]);
            let m = b - a;
            let e = &st.e[eo[j]..eo[j + 1]];
            let dej = &mut de[eo[j]..eo[j + 1]];
            // msg = E·X.
            gemm(
                MatMut::new(dej, m, m),
                MatRef::new(&dmsg[a * s..b * s], m, s),
                MatRef::new(&x[a * s..b * s], m, s).t(),
                1.0,
                0.0,
                Par::Seq,
            );
            gemm(
                MatMut::new(&mut dx[a * s..b * s], m, s),
                MatRef::new(e, m, m).t(),
                MatRef::new(&dmsg[a * s..b * s], m, s),
                1.0,
                0.0,
                Par::Seq,
            );
            softmax_backward(e, dej, m);
        }
        // E = softmax(Q·Kᵀ): dQ = dA·K, dK = dAᵀ·Q (reusing dmsg for dQ).
        let mut dk = vec![0.0f32; m_all * s];
        for j in 0..offsets.len() - 1 {
            let (a, b) = (offsets[j], offsets[j + 1]);
            let m = b - a;
            let dej = &de[eo[j]..eo[j + 1]];
            gemm(
                MatMut::new(&mut dmsg[a * s..b * s], m, s),
                MatRef::new(dej, m, m),
                MatRef::new(&st.k[a * s..b * s], m, s),
                1.0,
                0.0,
                Par::Seq,
            );
            gemm(
                MatMut::new(&mut dk[a * s..b * s], m, s),
                MatRef::new(dej, m, m).t(),
                MatRef::new(&st.q[a * s..b * s], m, s),
                1.0,
                0.0,
                Par::Seq,
            );
        }
        let mut tmp = vec![0.0f32; m_all * s];
        self.query.backward(x, &dmsg, Some(&mut tmp), Par::Seq);
        dx.iter_mut().zip(&tmp).for_each(|(g, &v)| *g += v);
        self.key.backward(x, &dk, Some(&mut tmp), Par::Seq);
        dx.iter_mut().zip(&tmp).for_each(|(g, &v)| *g += v);
    }
}

impl Module for GraphStep {
    fn params(&self) -> Vec<&Param> {
        let mut v = self.query.params();
        v.extend(self.key.params());
        v.extend(self.graph.params());
        v
    }
    fn params_mut(&mut self) -> Vec<&mut Param> {
        let mut v = self.query.params_mut();
        v.extend(self.key.params_mut());
        v.extend(self.graph.params_mut());
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
        let s = 5;
        let offsets = [0, 3, 7];
        let mut step = GraphStep::new("g", s, &mut seeded(1));
        for p in step.params_mut() {
            p.value = rand_vec(p.numel(), p.numel() as u64, 0.8);
        }
        let mut x = rand_vec(7 * s, 2, 1.0);
        let up = rand_vec(7 * s, 3, 1.0);
        let f = |st: &GraphStep, x: &[f32]| {
            let mut state = StepState::default();
            st.forward(x, &offsets, &mut state);
            dot_loss(&state.y, &up)
        };
        let mut state = StepState::default();
        step.forward(&x, &offsets, &mut state);
        let mut dy = up.clone();
        let mut dx = Vec::new();
        step.backward(&x, &offsets, &state, &mut dy, &mut dx);
        let fx = fd_grad(&mut x, FD_EPS, |x| f(&step, x));
        assert_grad_close("dx", &dx, &fx);
        for k in 0..step.params().len() {
            let mut w = step.params()[k].value.clone();
            let fw = fd_grad(&mut w, FD_EPS, |w| {
                let mut s2 = step.clone();
                s2.params_mut()[k].value = w.to_vec();
                f(&s2, &x)
            });
            assert_grad_close(&step.params()[k].name.clone(), &step.params()[k].grad, &fw);
        }
    }
}
