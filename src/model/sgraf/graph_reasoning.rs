//! SGR, similarity graph reasoning (docs/method.md §13.2): steps of message
//! passing over a fully connected graph whose nodes are one pair's
//! similarity vectors (the global one first, then one per word). One step,
//! PyTorch `GraphReasoning` (`tools/reference/dbl_ref/sgraf.py`), on nodes
//! `X: [m, S]`:
//!
//! `Q = X·W_qᵀ + b_q`, `K = X·W_kᵀ + b_k`, `E = softmax_row(Q·Kᵀ)` [m, m],
//! `Y = relu((E·X)·W_gᵀ + b_g)`.
//!
//! dbl computes the same edges with one projection instead of two
//! (docs/method.md §13.6): `q_i·k_r = p_i·x_r + (terms constant in r)`
//! with `p_i = B·x_i + c`, `B = W_kᵀ·W_q`, `c = W_kᵀ·b_q`, and a softmax
//! over r ignores what is constant in r (so `b_k` gets no gradient, as in
//! exact arithmetic). `B, c` form a [`Linear`] built once per batch
//! ([`GraphStep::plan`]); its gradients go back to `W_q, b_q, W_k` once per
//! batch ([`GraphStep::absorb_plan_grad`]). The last step is only needed at
//! node 0 ([`GraphStep::forward_root`]).
//!
//! The nodes of many pairs are stacked (pair j owns rows
//! `offsets[j]..offsets[j+1]`): the linear maps run as one GEMM over all of
//! them, the edges per pair.

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

/// One full step's forward state (buffers reused across calls).
#[derive(Debug, Default, Clone)]
pub struct StepState {
    /// P = X·Bᵀ + c. [M, S]
    p: Vec<f32>,
    /// Edges E per pair, pair after pair (Σ m_j² values).
    e: Vec<f32>,
    /// E·X. [M, S]
    msg: Vec<f32>,
    /// Output Y (after relu). [M, S]
    pub y: Vec<f32>,
}

/// The last step's forward state, node 0 of each pair only.
#[derive(Debug, Default, Clone)]
pub struct RootState {
    /// Node 0 of each pair. [n, S]
    x0: Vec<f32>,
    /// u = B·x_0 + c. [n, S]
    u: Vec<f32>,
    /// Row 0 of each pair's edges (Σ m_j values).
    e: Vec<f32>,
    /// Σ_r e_r·x_r. [n, S]
    msg: Vec<f32>,
    /// Node 0 after the step (after relu). [n, S]
    pub y: Vec<f32>,
}

impl RootState {
    /// Row 0 of each pair's edges (softmax over the pair's nodes) of the
    /// last forward (Σ m_j values).
    pub fn edges(&self) -> &[f32] {
        &self.e
    }
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

fn add_into(dst: &mut [f32], src: &[f32]) {
    dst.iter_mut().zip(src).for_each(|(a, &b)| *a += b);
}

/// One pair's edges and messages: projected query nodes pq: [mq, S] against
/// the pair's nodes xb: [m, S] → e: [mq, m] = softmax_row(pq·xbᵀ),
/// msg: [mq, S] = e·xb (both overwritten).
fn edges_forward(pq: MatRef<'_>, xb: MatRef<'_>, e: &mut [f32], msg: &mut [f32]) {
    let (mq, m, s) = (pq.rows(), xb.rows(), xb.cols());
    gemm(MatMut::new(e, mq, m), pq, xb.t(), 1.0, 0.0, Par::Seq);
    softmax_forward(e, m);
    let e = MatRef::new(e, mq, m);
    gemm(MatMut::new(msg, mq, s), e, xb, 1.0, 0.0, Par::Seq);
}

/// Backward of [`edges_forward`] from dmsg: [mq, S]: writes dpq: [mq, S]
/// (overwritten) and adds into dxb: [m, S]; de: [mq, m] scratch.
fn edges_backward(
    pq: MatRef<'_>,
    xb: MatRef<'_>,
    e: &[f32],
    dmsg: MatRef<'_>,
    de: &mut [f32],
    dpq: &mut [f32],
    dxb: &mut [f32],
) {
    let (mq, m, s) = (pq.rows(), xb.rows(), xb.cols());
    // msg = e·X.
    gemm(MatMut::new(de, mq, m), dmsg, xb.t(), 1.0, 0.0, Par::Seq);
    let et = MatRef::new(e, mq, m).t();
    gemm(MatMut::new(dxb, m, s), et, dmsg, 1.0, 1.0, Par::Seq);
    softmax_backward(e, de, m);
    // Logits = pq·Xᵀ: dpq = dl·X, dX += dlᵀ·pq.
    let dl = MatRef::new(de, mq, m);
    gemm(MatMut::new(dpq, mq, s), dl, xb, 1.0, 0.0, Par::Seq);
    gemm(MatMut::new(dxb, m, s), dl.t(), pq, 1.0, 1.0, Par::Seq);
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

    /// The edge projection `p = B·x + c` with `B = W_kᵀ·W_q`, `c = W_kᵀ·b_q`
    /// (a [`Linear`] S → S, zero gradients). Build it once per batch: the
    /// forward and backward passes take it.
    pub fn plan(&self) -> Linear {
        let s = self.dim();
        let mut p = Linear::new("graph_plan", s, s, true);
        gemm(
            MatMut::new(&mut p.weight.value, s, s),
            MatRef::new(&self.key.weight.value, s, s).t(),
            MatRef::new(&self.query.weight.value, s, s),
            1.0,
            0.0,
            Par::Seq,
        );
        if let (Some(c), Some(bq)) = (p.bias.as_mut(), self.query.bias.as_ref()) {
            gemm(
                MatMut::new(&mut c.value, 1, s),
                MatRef::new(&bq.value, 1, s),
                MatRef::new(&self.key.weight.value, s, s),
                1.0,
                0.0,
                Par::Seq,
            );
        }
        p
    }

    /// Adds the gradients accumulated in a [`Self::plan`] (dB, dc) to the
    /// step's own: `dW_q += W_k·dB`, `dW_k += W_q·dBᵀ + b_q·dcᵀ`,
    /// `db_q += W_k·dc` (`b_k` gets none: see the module doc).
    pub fn absorb_plan_grad(&mut self, plan: &Linear) {
        let s = self.dim();
        let db = &plan.weight.grad;
        gemm(
            MatMut::new(&mut self.query.weight.grad, s, s),
            MatRef::new(&self.key.weight.value, s, s),
            MatRef::new(db, s, s),
            1.0,
            1.0,
            Par::Seq,
        );
        gemm(
            MatMut::new(&mut self.key.weight.grad, s, s),
            MatRef::new(&self.query.weight.value, s, s),
            MatRef::new(db, s, s).t(),
            1.0,
            1.0,
            Par::Seq,
        );
        if let (Some(dc), Some(bq)) = (plan.bias.as_ref(), self.query.bias.as_mut()) {
            gemm(
                MatMut::new(&mut self.key.weight.grad, s, s),
                MatRef::new(&bq.value, 1, s).t(),
                MatRef::new(&dc.grad, 1, s),
                1.0,
                1.0,
                Par::Seq,
            );
            gemm(
                MatMut::new(&mut bq.grad, 1, s),
                MatRef::new(&dc.grad, 1, s),
                MatRef::new(&self.key.weight.value, s, s).t(),
                1.0,
                1.0,
                Par::Seq,
            );
        }
    }

    /// `y ← relu(msg·W_gᵀ + b_g)`. msg: [n, S] → y: [n, S].
    fn output(&self, msg: &[f32], y: &mut Vec<f32>) {
        y.resize(msg.len(), 0.0);
        self.graph.forward_into(msg, y, Par::Seq);
        y.iter_mut().for_each(|v| *v = v.max(0.0));
    }

    /// Backward of [`Self::output`] from dy (consumed): → dmsg: [n, S].
    fn output_backward(&mut self, msg: &[f32], y: &[f32], dy: &mut [f32]) -> Vec<f32> {
        dy.iter_mut()
            .zip(y)
            .for_each(|(g, &v)| *g = if v > 0.0 { *g } else { 0.0 });
        let mut dmsg = vec![0.0f32; msg.len()];
        self.graph.backward(msg, dy, Some(&mut dmsg), Par::Seq);
        dmsg
    }

    /// Every node: x: [M, S] stacked nodes (offsets[0] = 0) → `st.y`: [M, S].
    /// `plan`: [`Self::plan`].
    pub fn forward(&self, plan: &Linear, x: &[f32], offsets: &[usize], st: &mut StepState) {
        let s = self.dim();
        let m_all = x.len() / s;
        st.p.resize(m_all * s, 0.0);
        plan.forward_into(x, &mut st.p, Par::Seq);
        let eo = edge_offsets(offsets);
        st.e.resize(eo[eo.len() - 1], 0.0);
        st.msg.resize(m_all * s, 0.0);
        for j in 0..offsets.len() - 1 {
            let (a, b) = (offsets[j], offsets[j + 1]);
            edges_forward(
                MatRef::new(&st.p[a * s..b * s], b - a, s),
                MatRef::new(&x[a * s..b * s], b - a, s),
                &mut st.e[eo[j]..eo[j + 1]],
                &mut st.msg[a * s..b * s],
            );
        }
        self.output(&st.msg, &mut st.y);
    }

    /// From dy: [M, S] (consumed) → dx: [M, S] (overwritten); accumulates
    /// the graph map's gradients here and dB, dc in `plan` (this step's
    /// [`Self::plan`]). x: the forward input.
    pub fn backward(
        &mut self,
        plan: &mut Linear,
        x: &[f32],
        offsets: &[usize],
        st: &StepState,
        dy: &mut [f32],
        dx: &mut Vec<f32>,
    ) {
        let s = self.dim();
        let m_all = x.len() / s;
        let dmsg = self.output_backward(&st.msg, &st.y, dy);
        dx.clear();
        dx.resize(m_all * s, 0.0);
        let eo = edge_offsets(offsets);
        let mut de = vec![0.0f32; eo[eo.len() - 1]];
        // dy is spent: it takes dP.
        let dp = dy;
        for j in 0..offsets.len() - 1 {
            let (a, b) = (offsets[j], offsets[j + 1]);
            edges_backward(
                MatRef::new(&st.p[a * s..b * s], b - a, s),
                MatRef::new(&x[a * s..b * s], b - a, s),
                &st.e[eo[j]..eo[j + 1]],
                MatRef::new(&dmsg[a * s..b * s], b - a, s),
                &mut de[eo[j]..eo[j + 1]],
                &mut dp[a * s..b * s],
                &mut dx[a * s..b * s],
            );
        }
        let mut tmp = vec![0.0f32; m_all * s];
        plan.backward(x, dp, Some(&mut tmp), Par::Seq);
        add_into(dx, &tmp);
    }

    /// Node 0 of each pair only (what the last step must deliver):
    /// x: [M, S] stacked nodes → `st.y`: [n_pairs, S].
    pub fn forward_root(&self, plan: &Linear, x: &[f32], offsets: &[usize], st: &mut RootState) {
        let s = self.dim();
        let n = offsets.len() - 1;
        st.x0.resize(n * s, 0.0);
        for (j, row) in st.x0.chunks_exact_mut(s).enumerate() {
            let a = offsets[j];
            row.copy_from_slice(&x[a * s..(a + 1) * s]);
        }
        st.u.resize(n * s, 0.0);
        plan.forward_into(&st.x0, &mut st.u, Par::Seq);
        st.e.resize(offsets[n], 0.0);
        st.msg.resize(n * s, 0.0);
        for j in 0..n {
            let (a, b) = (offsets[j], offsets[j + 1]);
            edges_forward(
                MatRef::new(&st.u[j * s..(j + 1) * s], 1, s),
                MatRef::new(&x[a * s..b * s], b - a, s),
                &mut st.e[a..b],
                &mut st.msg[j * s..(j + 1) * s],
            );
        }
        self.output(&st.msg, &mut st.y);
    }

    /// Backward of [`Self::forward_root`]: from dy: [n_pairs, S] (consumed)
    /// → dx: [M, S] (overwritten; zero where no gradient flows).
    pub fn backward_root(
        &mut self,
        plan: &mut Linear,
        x: &[f32],
        offsets: &[usize],
        st: &RootState,
        dy: &mut [f32],
        dx: &mut Vec<f32>,
    ) {
        let s = self.dim();
        let n = offsets.len() - 1;
        let dmsg = self.output_backward(&st.msg, &st.y, dy);
        dx.clear();
        dx.resize(offsets[n] * s, 0.0);
        let mut de = vec![0.0f32; offsets[n]];
        // dy is spent: it takes du.
        let du = dy;
        for j in 0..n {
            let (a, b) = (offsets[j], offsets[j + 1]);
            edges_backward(
                MatRef::new(&st.u[j * s..(j + 1) * s], 1, s),
                MatRef::new(&x[a * s..b * s], b - a, s),
                &st.e[a..b],
                MatRef::new(&dmsg[j * s..(j + 1) * s], 1, s),
                &mut de[a..b],
                &mut du[j * s..(j + 1) * s],
                &mut dx[a * s..b * s],
            );
        }
        let mut dx0 = vec![0.0f32; n * s];
        plan.backward(&st.x0, du, Some(&mut dx0), Par::Seq);
        for (j, row) in dx0.chunks_exact(s).enumerate() {
            let a = offsets[j];
            add_into(&mut dx[a * s..(a + 1) * s], row);
        }
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

    const S: usize = 5;
    const OFFSETS: [usize; 3] = [0, 3, 7];

    /// A step with random weights, biases included (`b_k` too: it must drop out).
    fn random_step() -> GraphStep {
        let mut step = GraphStep::new("g", S, &mut seeded(1));
        for p in step.params_mut() {
            p.value = rand_vec(p.numel(), p.numel() as u64 + p.name.len() as u64, 0.8);
        }
        step
    }

    /// The textbook step (PyTorch's order: Q, K, softmax(Q·Kᵀ), relu(graph(E·X))).
    fn naive(step: &GraphStep, x: &[f32]) -> Vec<f32> {
        let q = step.query.forward(x, Par::Seq);
        let k = step.key.forward(x, Par::Seq);
        let mut msg = vec![0.0f32; x.len()];
        for w in OFFSETS.windows(2) {
            for i in w[0]..w[1] {
                let mut e: Vec<f32> = (w[0]..w[1])
                    .map(|r| (0..S).map(|f| q[i * S + f] * k[r * S + f]).sum())
                    .collect();
                let m = e.len();
                softmax_forward(&mut e, m);
                for (r, &er) in (w[0]..w[1]).zip(&e) {
                    for f in 0..S {
                        msg[i * S + f] += er * x[r * S + f];
                    }
                }
            }
        }
        let mut y = step.graph.forward(&msg, Par::Seq);
        y.iter_mut().for_each(|v| *v = v.max(0.0));
        y
    }

    fn assert_close(what: &str, got: &[f32], want: &[f32]) {
        assert_eq!(got.len(), want.len(), "{what}: length");
        let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let err = got
            .iter()
            .zip(want)
            .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(
            err <= 1e-5 * scale,
            "{what}: max error {err:e} (scale {scale})"
        );
    }

    #[test]
    fn plan_edges_equal_query_key_edges() {
        let step = random_step();
        let x = rand_vec(7 * S, 2, 1.0);
        let want = naive(&step, &x);
        let mut st = StepState::default();
        step.forward(&step.plan(), &x, &OFFSETS, &mut st);
        assert_close("full step", &st.y, &want);
        let mut root = RootState::default();
        step.forward_root(&step.plan(), &x, &OFFSETS, &mut root);
        let want0: Vec<f32> = [0, 3]
            .iter()
            .flat_map(|&a| want[a * S..(a + 1) * S].to_vec())
            .collect();
        assert_close("root", &root.y, &want0);
    }

    /// Gradients of `dot(forward(x), up)` for the full step (`root` false)
    /// or node 0 only, against finite differences of the textbook step.
    fn check_grads(root: bool) {
        let mut step = random_step();
        let mut x = rand_vec(7 * S, 2, 1.0);
        let n_out = if root { 2 } else { 7 };
        let up = rand_vec(n_out * S, 3, 1.0);
        let f = |st: &GraphStep, x: &[f32]| {
            let y = naive(st, x);
            let y: Vec<f32> = if root {
                [0, 3]
                    .iter()
                    .flat_map(|&a| y[a * S..(a + 1) * S].to_vec())
                    .collect()
            } else {
                y
            };
            dot_loss(&y, &up)
        };
        let mut plan = step.plan();
        let mut dy = up.clone();
        let mut dx = Vec::new();
        if root {
            let mut st = RootState::default();
            step.forward_root(&plan, &x, &OFFSETS, &mut st);
            step.backward_root(&mut plan, &x, &OFFSETS, &st, &mut dy, &mut dx);
        } else {
            let mut st = StepState::default();
            step.forward(&plan, &x, &OFFSETS, &mut st);
            step.backward(&mut plan, &x, &OFFSETS, &st, &mut dy, &mut dx);
        }
        step.absorb_plan_grad(&plan);
        let fx = fd_grad(&mut x, FD_EPS, |x| f(&step, x));
        assert_grad_close("dx", &dx, &fx);
        for k in 0..step.params().len() {
            let mut w = step.params()[k].value.clone();
            let fw = fd_grad(&mut w, FD_EPS, |w| {
                let mut s2 = step.clone();
                s2.params_mut()[k].value = w.to_vec();
                f(&s2, &x)
            });
            let name = step.params()[k].name.clone();
            if name.contains("graph_key_w.bias") {
                // Constant in r under the softmax: no gradient at all.
                assert!(step.params()[k].grad.iter().all(|&g| g == 0.0));
                assert!(fw.iter().all(|g| g.abs() < 1e-2), "{name}: {fw:?}");
            } else {
                assert_grad_close(&name, &step.params()[k].grad, &fw);
            }
        }
    }

    #[test]
    fn full_step_finite_differences() {
        check_grads(false);
    }

    #[test]
    fn root_step_finite_differences() {
        check_grads(true);
    }
}
