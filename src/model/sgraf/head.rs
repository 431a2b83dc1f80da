//! The SGRAF similarity head (docs/method.md §13): SGR or SAF over the
//! global and local alignment vectors of each (image, caption) pair.
//! PyTorch: `EncoderSimilarity` in `tools/reference/dbl_ref/sgraf.py`.
//!
//! For image i (regions `V_i: [R, d]`, global vector `g_i: [d]`) and caption
//! j (words `W_j: [n_j, d]`, global vector `c_j: [d]`):
//! 1. local vectors `H = L2((C − W_j)²·W_locᵀ + b_loc)` [n_j, S] — steps 1–4
//!    of the scan-ave kernel ([`ScanHead::local_forward`], with `sim_tranloc_w`);
//! 2. global vector `G = L2((g_i − c_j)²·W_gloᵀ + b_glo)` [S];
//! 3. nodes `X = [G; H]` [n_j + 1, S] → SGR ([`GraphStep`] × steps, then
//!    node 0) or SAF ([`AttentionFiltration`]) → `v` [S];
//! 4. `s_ij = σ(w_e·v + b_e)`.
//!
//! Step 2 runs once per image over all captions (one GEMM with a row per
//! caption); steps 1, 3 and 4 run per caption tile.
//!
//! Memory: training keeps what scan-ave keeps per (image, caption tile) —
//! attention, normalised H and norms ([`HeadCache`]) — plus the tile's
//! global alignment, nodes and reasoning state ([`PairRest`], of size
//! B²·L·S for SGR), and nothing of size B²·L·d. Images run in parallel, each
//! against caption tiles of at most the scan kernel's tile size in words.
//! Parameter gradients are summed per contiguous chunk of images and reduced
//! in chunk order (bitwise deterministic for a fixed thread count).
//!
//! SAF in training mode normalises each caption's gate logits with their
//! statistics over every image of the batch (docs/method.md §13.4), so the
//! training forward runs in three passes (the logits of every pair in
//! parallel; each caption's batch norm; the rest in parallel) and so does
//! the backward, which is then dense: a pair the loss does not reach still
//! gets a gradient through its caption's statistics.

use rand::Rng;
use rayon::prelude::*;

use crate::engine::activation::sigmoid;
use crate::engine::batchnorm_train::{self, BatchStats};
use crate::engine::gemm::Par;
use crate::engine::l2norm;
use crate::engine::linear::Linear;
use crate::engine::param::{Module, Param};
use crate::engine::reduce::dot_f64;
use crate::model::scan_head::{
    Acc, GroupLogits, HeadCache, Kernel, Saved, ScanHead, Scratch, Words, eval_linear_backward,
    resize,
};
use crate::model::sgraf::attention_filtration::{AttentionFiltration, SafState};
use crate::model::sgraf::graph_reasoning::{GraphStep, RootState, StepState};
use crate::model::sparse_pairs::{CompactWords, Selection, gather_rows, scatter_add_rows};

/// SGR's number of reasoning steps (the authors' `sgr_step`).
pub const SGR_STEPS: usize = 3;

/// Images whose attention logits one GEMM forms when scoring
/// ([`ScanHead::group_logits`]).
const LOGIT_GROUP: usize = 4;

/// How the pair's alignment vectors become one.
// One per model, never moved in hot loops.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Reasoning {
    /// `sim_enc.SGR_module.{0,1,2}`.
    Sgr(Vec<GraphStep>),
    /// `sim_enc.SAF_module`.
    Saf(AttentionFiltration),
}

impl Module for Reasoning {
    fn params(&self) -> Vec<&Param> {
        match self {
            Reasoning::Sgr(steps) => steps.iter().flat_map(|s| s.params()).collect(),
            Reasoning::Saf(f) => f.params(),
        }
    }
    fn params_mut(&mut self) -> Vec<&mut Param> {
        match self {
            Reasoning::Sgr(steps) => steps.iter_mut().flat_map(|s| s.params_mut()).collect(),
            Reasoning::Saf(f) => f.params_mut(),
        }
    }
    /// SAF's batch-norm running statistics; SGR has none.
    fn buffers(&self) -> Vec<&Param> {
        match self {
            Reasoning::Sgr(_) => Vec::new(),
            Reasoning::Saf(f) => f.buffers(),
        }
    }
    fn buffers_mut(&mut self) -> Vec<&mut Param> {
        match self {
            Reasoning::Sgr(_) => Vec::new(),
            Reasoning::Saf(f) => f.buffers_mut(),
        }
    }
}

/// `sim_enc` without the global self-attention modules (those run on the
/// encoders' outputs, see `crate::model::sgraf`).
#[derive(Debug, Clone, PartialEq)]
pub struct SgrafHead {
    /// The local alignment: `tran` = `sim_enc.sim_tranloc_w`, `eval` = `sim_enc.sim_eval_w`.
    pub local: ScanHead,
    /// `sim_enc.sim_tranglo_w`: d → S.
    pub glo: Linear,
    /// SGR or SAF.
    pub reason: Reasoning,
}

/// One (image, caption tile)'s state after the local alignment: a
/// per-thread buffer when scoring, kept per tile for the backward pass when
/// training ([`SgrafHeadCache`]).
#[derive(Debug, Default)]
struct PairRest {
    /// Node offsets (pair j: rows `noffs[j]..noffs[j+1]`, the global vector first). [n + 1]
    noffs: Vec<usize>,
    /// X. [M, S]
    nodes: Vec<f32>,
    /// SGR's full steps (all but the last).
    steps: Vec<StepState>,
    /// SGR's last step (node 0 only).
    root: RootState,
    saf: SafState,
    /// The pair vectors v. [n, S]
    vec: Vec<f32>,
}

/// One image's global alignment against every caption (step 2, one GEMM
/// with a row per caption, not per tile).
#[derive(Debug, Default)]
struct ImageGlo {
    /// (g − c_j)². [n_cap, d]
    dsq: Vec<f32>,
    /// G (normalised) and norms. [n_cap, S], [n_cap]
    gvec: Vec<f32>,
    gnorm: Vec<f32>,
}

/// What [`SgrafHead::forward_train`] keeps for [`SgrafHead::backward`], per
/// (image, caption tile), image-major.
#[derive(Debug)]
pub struct SgrafHeadCache {
    local: HeadCache,
    rests: Vec<PairRest>,
    /// Per image.
    glos: Vec<ImageGlo>,
    /// SAF in training mode: each caption's batch statistics of its gate
    /// logits over the batch's images. [n_cap]; empty otherwise.
    gate_stats: Vec<BatchStats>,
}

/// What the scoring pass computed for one image × one caption, kept to
/// explain its score (`crate::model::explain`, [`SgrafHead::trace_pair`]).
/// Nodes are the global alignment first, then one per word.
#[derive(Debug, Clone, PartialEq)]
pub struct SgrafTrace {
    /// The score `s = σ(w_e·v + b_e)`, as the block scorer computes it.
    pub score: f32,
    /// Word-to-region attention α of the local alignment. [n_w, R]
    pub attention: Vec<f32>,
    /// The input of the aggregation (SAF: the nodes X; SGR: the last
    /// step's input, i.e. X after the first steps). [n_w + 1, S]
    pub nodes: Vec<f32>,
    /// How the aggregation weighed each node (SAF: α; SGR: the last step's
    /// edges from node 0). [n_w + 1]
    pub node_weights: Vec<f32>,
    /// The pair vector v. [S]
    pub vector: Vec<f32>,
    /// SAF: the norm v was divided by; SGR: 1 (v = relu(…) is not normalised).
    pub vector_norm: f32,
}

/// One image's inputs to the head: regions v: [R, d], global vector g: [d],
/// and the captions it is scored against (words `w`, global vectors
/// cap_glo: [n_cap, d]).
#[derive(Clone, Copy)]
struct ImageInputs<'a> {
    v: &'a [f32],
    g: &'a [f32],
    w: Words<'a>,
    cap_glo: &'a [f32],
}

/// One image's forward state: per caption tile of [`ImageInputs::w`]
/// (`saved`, `rests`), and its global alignment.
struct ImageState<'a> {
    saved: &'a [Saved],
    rests: &'a [PairRest],
    glo: &'a ImageGlo,
    /// SAF in training mode: per tile, the gradient of its gate logits.
    gate_dz: Option<&'a [Vec<f32>]>,
}

/// Where one image's backward pass adds its input gradients: dv: [R, d],
/// dg: [d], dwords: [N_w, d] and dcap: [n_cap, d] (of [`ImageInputs::w`]).
struct ImageGrads<'a> {
    dv: &'a mut [f32],
    dg: &'a mut [f32],
    dwords: &'a mut [f32],
    dcap: &'a mut [f32],
}

/// [`SgrafHead::prepare`]'s result.
struct Prep {
    plans: Vec<Linear>,
    /// `W_t` transposed, [d, S] (`ScanHead::projection_t`).
    wt: Vec<f32>,
    /// `W_glo` transposed, [d, S].
    wglo: Vec<f32>,
}

/// Gradients summed by one chunk of images.
struct ChunkGrads {
    acc: Acc,
    glo: Linear,
    reason: Reasoning,
    /// SGR: the steps' edge projections' gradients (see [`GraphStep::plan`]).
    plans: Vec<Linear>,
}

/// Gradients for the caller: (d img [n_img, R, d], d img_glo [n_img, d],
/// d words [N_w, d], d cap_glo [n_cap, d]).
pub type HeadGrads = (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>);

fn add_grads(dst: &mut impl Module, src: &impl Module) {
    for (p, q) in dst.params_mut().into_iter().zip(src.params()) {
        p.grad.iter_mut().zip(&q.grad).for_each(|(a, &b)| *a += b);
    }
}

impl SgrafHead {
    /// Xavier-uniform `sim_tranloc_w`, `sim_tranglo_w`, `sim_eval_w`, then the
    /// reasoning module (`sgr`: 3 steps), biases 0.
    pub fn new<R: Rng + ?Sized>(
        embed: usize,
        sim_dim: usize,
        smooth: f32,
        sgr: bool,
        rng: &mut R,
    ) -> Self {
        let tran = Linear::xavier("sim_enc.sim_tranloc_w", embed, sim_dim, true, rng);
        let glo = Linear::xavier("sim_enc.sim_tranglo_w", embed, sim_dim, true, rng);
        let eval = Linear::xavier("sim_enc.sim_eval_w", sim_dim, 1, true, rng);
        let reason = if sgr {
            Reasoning::Sgr(
                (0..SGR_STEPS)
                    .map(|i| GraphStep::new(&format!("sim_enc.SGR_module.{i}"), sim_dim, rng))
                    .collect(),
            )
        } else {
            Reasoning::Saf(AttentionFiltration::new("sim_enc.SAF_module", sim_dim, rng))
        };
        SgrafHead {
            local: ScanHead::from_layers(tran, eval, smooth),
            glo,
            reason,
        }
    }

    /// Embedding width d.
    pub fn embed(&self) -> usize {
        self.local.embed()
    }

    /// What the head derives from its weights once per call (a batch or a
    /// block of scores): SGR's edge projections ([`GraphStep::plan`], one
    /// per step; none for SAF), and `W_t` and `W_glo` transposed
    /// ([`Linear::forward_into_t`]).
    fn prepare(&self) -> Prep {
        let plans = match &self.reason {
            Reasoning::Sgr(steps) => steps.iter().map(GraphStep::plan).collect(),
            Reasoning::Saf(_) => Vec::new(),
        };
        Prep {
            plans,
            wt: self.local.projection_t(),
            wglo: self.glo.weight_t(),
        }
    }

    /// Step 2 for one image: g: [d], cap_glo: [n_cap, d] → `ig`;
    /// prep: [`Self::prepare`].
    fn glo_forward(&self, prep: &Prep, g: &[f32], cap_glo: &[f32], ig: &mut ImageGlo) {
        let d = self.embed();
        let s = self.local.sim_dim();
        let nc = cap_glo.len() / d;
        resize(&mut ig.dsq, nc * d);
        for (row, c) in ig.dsq.chunks_exact_mut(d).zip(cap_glo.chunks_exact(d)) {
            for ((q, &a), &b) in row.iter_mut().zip(g).zip(c) {
                let df = a - b;
                *q = df * df;
            }
        }
        resize(&mut ig.gvec, nc * s);
        self.glo
            .forward_into_t(&ig.dsq, &mut ig.gvec, &prep.wglo, Par::Seq);
        ig.gnorm = l2norm::forward(&mut ig.gvec, s);
    }

    /// Backward of [`Self::glo_forward`] from dgvec: [n_cap, S] (consumed):
    /// accumulates into dg: [d], dcap: [n_cap, d] and `glo`'s gradients.
    #[allow(clippy::too_many_arguments)]
    fn glo_backward(
        &self,
        glo: &mut Linear,
        g: &[f32],
        cap_glo: &[f32],
        ig: &ImageGlo,
        dgvec: &mut [f32],
        dg: &mut [f32],
        dcap: &mut [f32],
    ) {
        let d = self.embed();
        let s = self.local.sim_dim();
        l2norm::backward(&ig.gvec, &ig.gnorm, dgvec, s);
        let mut ddsq = vec![0.0f32; cap_glo.len()];
        glo.backward(&ig.dsq, dgvec, Some(&mut ddsq), Par::Seq);
        for ((gq, c), dc) in ddsq
            .chunks_exact(d)
            .zip(cap_glo.chunks_exact(d))
            .zip(dcap.chunks_exact_mut(d))
        {
            for f in 0..d {
                let t = 2.0 * (g[f] - c[f]) * gq[f];
                dg[f] += t;
                dc[f] -= t;
            }
        }
    }

    /// One image against the captions of `w` (one tile): scores into out: [n],
    /// the local alignment's state into `sv`.
    /// v: [R, d], g: [d], cg: the tile's caption global vectors [n, d];
    /// prep: [`Self::prepare`]; logits: step 1's product when formed for a
    /// group of images ([`ScanHead::group_logits`]).
    #[allow(clippy::too_many_arguments)]
    fn pair_forward(
        &self,
        prep: &Prep,
        v: &[f32],
        w: Words<'_>,
        gvec: &[f32],
        sv: &mut Saved,
        sc: &mut Scratch,
        r: &mut PairRest,
        out: &mut [f32],
        logits: Option<GroupLogits<'_>>,
        batch_gates: bool,
    ) {
        let k = Kernel::F32 { wt: &prep.wt };
        self.local.local_forward(v, w, sv, sc, k, logits);
        self.pair_rest(&prep.plans, w, gvec, sv, r, out, batch_gates);
    }

    /// [`Self::pair_forward`] after the local alignment (whose H is in
    /// `sv.t`); gvec: the tile's global vectors G [n, S] ([`Self::glo_forward`]).
    /// `batch_gates` (SAF in training mode): stop at the gate logits and
    /// leave `out` alone; [`Self::forward_train`] normalises them over the
    /// batch and calls [`Self::pair_finish`].
    #[allow(clippy::too_many_arguments)]
    fn pair_rest(
        &self,
        plans: &[Linear],
        w: Words<'_>,
        gvec: &[f32],
        sv: &Saved,
        r: &mut PairRest,
        out: &mut [f32],
        batch_gates: bool,
    ) {
        let s = self.local.sim_dim();
        let nc = w.n_cap();
        // Nodes: [G_j; H_j] per caption.
        let o0 = w.offsets[0];
        r.noffs.clear();
        r.noffs.push(0);
        for j in 0..nc {
            let n = w.offsets[j + 1] - w.offsets[j] + 1;
            r.noffs.push(r.noffs[j] + n);
        }
        resize(&mut r.nodes, r.noffs[nc] * s);
        for j in 0..nc {
            let a = r.noffs[j];
            r.nodes[a * s..(a + 1) * s].copy_from_slice(&gvec[j * s..(j + 1) * s]);
            let (wa, wb) = (w.offsets[j] - o0, w.offsets[j + 1] - o0);
            r.nodes[(a + 1) * s..r.noffs[j + 1] * s].copy_from_slice(&sv.t[wa * s..wb * s]);
        }
        resize(&mut r.vec, nc * s);
        match &self.reason {
            Reasoning::Sgr(steps) => {
                // Every node through the first steps, node 0 through the last.
                let last = steps.len() - 1;
                r.steps.resize_with(last, StepState::default);
                for (k, step) in steps[..last].iter().enumerate() {
                    let (done, rest) = r.steps.split_at_mut(k);
                    let x = if k == 0 { &r.nodes } else { &done[k - 1].y };
                    step.forward(&plans[k], x, &r.noffs, &mut rest[0]);
                }
                let x = if last == 0 {
                    &r.nodes
                } else {
                    &r.steps[last - 1].y
                };
                steps[last].forward_root(&plans[last], x, &r.noffs, &mut r.root);
                r.vec.copy_from_slice(&r.root.y);
            }
            Reasoning::Saf(f) if batch_gates => {
                f.logits(&r.nodes, &mut r.saf);
                return;
            }
            Reasoning::Saf(f) => {
                f.forward(&r.nodes, &r.noffs, &mut r.saf);
                r.vec.copy_from_slice(&r.saf.v);
            }
        }
        self.eval_scores(r, out);
    }

    /// SAF in training mode, after the batch norm over the batch (its
    /// output in `r.saf.a`): the rest of the aggregation and the scores
    /// out: [n] of one (image, caption tile).
    fn pair_finish(&self, r: &mut PairRest, out: &mut [f32]) {
        let Reasoning::Saf(f) = &self.reason else {
            unreachable!("batch gates are SAF's")
        };
        f.finish(&r.nodes, &r.noffs, &mut r.saf);
        r.vec.copy_from_slice(&r.saf.v);
        self.eval_scores(r, out);
    }

    /// `s_j = σ(w_e·v_j + b_e)` of the pair vectors `r.vec` into out: [n].
    fn eval_scores(&self, r: &PairRest, out: &mut [f32]) {
        let s = self.local.sim_dim();
        let we = &self.local.eval.weight.value;
        let be = self.local.eval.bias.as_ref().map_or(0.0, |b| b.value[0]);
        for (j, o) in out.iter_mut().enumerate() {
            *o = sigmoid(dot_f64(&r.vec[j * s..(j + 1) * s], we) as f32 + be);
        }
    }

    /// Backward of [`Self::eval_scores`] from the scores `sims` and
    /// `ds` = d loss / d sims: [n] → d `r.vec` [n, S]; with `acc`, also
    /// accumulates `sim_eval_w`'s gradients.
    fn eval_backward(
        &self,
        r: &PairRest,
        sims: &[f32],
        ds: &[f32],
        mut acc: Option<&mut Acc>,
    ) -> Vec<f32> {
        let s = self.local.sim_dim();
        // s = σ(w_e·v + b_e).
        let we = &self.local.eval.weight.value;
        let mut dvec = vec![0.0f32; sims.len() * s];
        for j in 0..sims.len() {
            let dz = ds[j] * sims[j] * (1.0 - sims[j]);
            let (vj, dj) = (&r.vec[j * s..(j + 1) * s], &mut dvec[j * s..(j + 1) * s]);
            eval_linear_backward(acc.as_deref_mut(), we, dz, vj, dj);
        }
        dvec
    }

    /// SAF in training mode, first backward pass: the gradient at the
    /// output of the gates' batch norm [M] of one (image, caption tile)
    /// from its scores `sims` and `ds` = d loss / d sims: [n].
    fn pair_gate_grad(&self, r: &PairRest, sims: &[f32], ds: &[f32]) -> Vec<f32> {
        let Reasoning::Saf(f) = &self.reason else {
            unreachable!("batch gates are SAF's")
        };
        let mut dvec = self.eval_backward(r, sims, ds, None);
        f.gate_grad(&r.nodes, &r.noffs, &r.saf, &mut dvec, None)
    }

    /// Backward of [`Self::pair_forward`] from its states `sv` and `r`,
    /// the scores `sims` and `ds` = d loss / d
    /// sims: [n]. Accumulates into dv: [R, d], dwords: the tile's words
    /// [N_w, d] and `gr`; writes dgvec: the gradient of the tile's G [n, S].
    /// gate_dz: SAF in training mode, the gradient of the gate logits
    /// [M] (through the batch's statistics, [`Self::backward`]).
    #[allow(clippy::too_many_arguments)]
    fn pair_backward(
        &self,
        v: &[f32],
        w: Words<'_>,
        sv: &Saved,
        r: &PairRest,
        sc: &mut Scratch,
        sims: &[f32],
        ds: &[f32],
        dv: &mut [f32],
        dwords: &mut [f32],
        dgvec: &mut [f32],
        gr: &mut ChunkGrads,
        gate_dz: Option<&[f32]>,
    ) {
        let s = self.local.sim_dim();
        let nc = w.n_cap();
        let mut dvec = self.eval_backward(r, sims, ds, Some(&mut gr.acc));
        // Reasoning.
        let m_all = r.noffs[nc];
        let mut dnodes = Vec::new();
        match &mut gr.reason {
            Reasoning::Sgr(steps) => {
                let last = steps.len() - 1;
                let mut dy = Vec::with_capacity(m_all * s);
                let x = if last == 0 {
                    &r.nodes
                } else {
                    &r.steps[last - 1].y
                };
                let plan = &mut gr.plans[last];
                steps[last].backward_root(plan, x, &r.noffs, &r.root, &mut dvec, &mut dy);
                for k in (0..last).rev() {
                    let x = if k == 0 { &r.nodes } else { &r.steps[k - 1].y };
                    let plan = &mut gr.plans[k];
                    steps[k].backward(plan, x, &r.noffs, &r.steps[k], &mut dy, &mut dnodes);
                    std::mem::swap(&mut dy, &mut dnodes);
                }
                dnodes = dy;
            }
            Reasoning::Saf(f) => match gate_dz {
                Some(dz) => {
                    f.gate_grad(&r.nodes, &r.noffs, &r.saf, &mut dvec, Some(&mut dnodes));
                    f.logits_backward(&r.nodes, dz, &mut dnodes);
                }
                None => f.backward(&r.nodes, &r.noffs, &r.saf, &mut dvec, &mut dnodes),
            },
        }
        // Split the node gradient: G rows and the words' H rows.
        let o0 = w.offsets[0];
        resize(&mut sc.dt, w.n_words() * s);
        for j in 0..nc {
            let a = r.noffs[j];
            dgvec[j * s..(j + 1) * s].copy_from_slice(&dnodes[a * s..(a + 1) * s]);
            let (wa, wb) = (w.offsets[j] - o0, w.offsets[j + 1] - o0);
            sc.dt[wa * s..wb * s].copy_from_slice(&dnodes[(a + 1) * s..r.noffs[j + 1] * s]);
        }
        self.local
            .local_backward(v, w, sv, sc, dv, dwords, &mut gr.acc);
    }

    /// Scores one image against all captions of `w` (tiled) into out: [n_cap],
    /// keeping each tile's state in `saved` and `rests` (one of each per
    /// tile, for the backward pass). v: [R, d], g: [d], cap_glo: [n_cap, d].
    #[allow(clippy::too_many_arguments)]
    fn image_forward(
        &self,
        prep: &Prep,
        v: &[f32],
        g: &[f32],
        w: Words<'_>,
        cap_glo: &[f32],
        saved: &mut [Saved],
        rests: &mut [PairRest],
        ig: &mut ImageGlo,
        sc: &mut Scratch,
        out: &mut [f32],
        batch_gates: bool,
    ) {
        let d = self.embed();
        let s = self.local.sim_dim();
        self.glo_forward(prep, g, cap_glo, ig);
        let tiles = w.tiles(self.local.tile_words());
        debug_assert!(saved.len() == tiles.len() && rests.len() == tiles.len());
        for ((t, sv), r) in tiles.into_iter().zip(saved).zip(rests) {
            let tw = w.slice(t.clone(), d);
            self.pair_forward(
                prep,
                v,
                tw,
                &ig.gvec[t.start * s..t.end * s],
                sv,
                sc,
                r,
                &mut out[t],
                None,
                batch_gates,
            );
        }
    }

    /// Backward of [`Self::image_forward`] for one image from its kept
    /// state: every caption tile, then the global alignment. sims, ds: the
    /// image's scores and their loss gradients [n_cap].
    #[allow(clippy::too_many_arguments)]
    fn image_backward(
        &self,
        x: &ImageInputs<'_>,
        state: &ImageState<'_>,
        sims: &[f32],
        ds: &[f32],
        out: ImageGrads<'_>,
        sc: &mut Scratch,
        gr: &mut ChunkGrads,
    ) {
        let d = self.embed();
        let s = self.local.sim_dim();
        let mut dgvec = vec![0.0f32; x.w.n_cap() * s];
        let tiles = x.w.tiles(self.local.tile_words());
        for (k, ((t, sv), r)) in tiles.iter().zip(state.saved).zip(state.rests).enumerate() {
            let rows = x.w.word_rows(t);
            self.pair_backward(
                x.v,
                x.w.slice(t.clone(), d),
                sv,
                r,
                sc,
                &sims[t.clone()],
                &ds[t.clone()],
                out.dv,
                &mut out.dwords[rows.start * d..rows.end * d],
                &mut dgvec[t.start * s..t.end * s],
                gr,
                state.gate_dz.map(|dz| dz[k].as_slice()),
            );
        }
        self.glo_backward(
            &mut gr.glo,
            x.g,
            x.cap_glo,
            state.glo,
            &mut dgvec,
            out.dg,
            out.dcap,
        );
    }

    /// [`Self::image_backward`] for the captions `sel` of `x.w` only (the
    /// others have a zero gradient, [`crate::model::sparse_pairs`]):
    /// recomputes their forward state in a compact batch, back-propagates
    /// it, and adds the word and caption gradients into `out`.
    #[allow(clippy::too_many_arguments)]
    fn compact_backward(
        &self,
        prep: &Prep,
        x: &ImageInputs<'_>,
        sel: &[usize],
        sims: &[f32],
        ds: &[f32],
        out: ImageGrads<'_>,
        sc: &mut Scratch,
        gr: &mut ChunkGrads,
    ) {
        if sel.is_empty() {
            return;
        }
        let d = self.embed();
        let cw = CompactWords::gather(x.w, sel, d);
        let cap_glo = gather_rows(x.cap_glo, sel, d);
        let cx = ImageInputs {
            w: cw.view(),
            cap_glo: &cap_glo,
            ..*x
        };
        let nt = cx.w.tiles(self.local.tile_words()).len();
        let mut saved: Vec<Saved> = (0..nt).map(|_| Saved::default()).collect();
        let mut rests: Vec<PairRest> = (0..nt).map(|_| PairRest::default()).collect();
        let mut glo = ImageGlo::default();
        let mut scores = vec![0.0f32; sel.len()];
        self.image_forward(
            prep,
            cx.v,
            cx.g,
            cx.w,
            cx.cap_glo,
            &mut saved,
            &mut rests,
            &mut glo,
            sc,
            &mut scores,
            false,
        );
        let state = ImageState {
            saved: &saved,
            rests: &rests,
            glo: &glo,
            gate_dz: None,
        };
        let mut dwords = vec![0.0f32; cx.w.n_words() * d];
        let mut dcap = vec![0.0f32; sel.len() * d];
        let grads = ImageGrads {
            dv: out.dv,
            dg: out.dg,
            dwords: &mut dwords,
            dcap: &mut dcap,
        };
        let (sims, ds) = (gather_rows(sims, sel, 1), gather_rows(ds, sel, 1));
        self.image_backward(&cx, &state, &sims, &ds, grads, sc, gr);
        cw.scatter_add(&dwords, out.dwords, d);
        scatter_add_rows(&dcap, sel, out.dcap, d);
    }

    /// Scores every image against every caption (img: [n_img, R, d],
    /// img_glo: [n_img, d], cap_glo: [n_cap, d] → [n_img, n_cap]), in parallel
    /// over images, and keeps each (image, tile)'s state for
    /// [`Self::backward`]: what scan-ave keeps (`N_w·(2R + S + 1)` floats per
    /// image; the `[N_w, d]` tensors are rebuilt in the backward pass) and
    /// the state after the local alignment ([`PairRest`]: for SGR about
    /// `7·(N_w + n_cap)·S` floats per image, docs/method.md §13.6).
    /// `train`: SAF's batch norm in training mode (each caption's gate
    /// logits normalised with their statistics over the `n_img` images);
    /// otherwise, and always for SGR, every pair is scored on its own.
    pub fn forward_train(
        &self,
        img: &[f32],
        img_glo: &[f32],
        n_regions: usize,
        w: Words<'_>,
        cap_glo: &[f32],
        train: bool,
    ) -> (Vec<f32>, SgrafHeadCache) {
        let d = self.embed();
        let nc = w.n_cap();
        let n_img = img_glo.len() / d;
        let tiles = w.tiles(self.local.tile_words());
        let nt = tiles.len();
        let mut out = vec![0.0f32; n_img * nc];
        let mut saved: Vec<Saved> = (0..n_img * nt).map(|_| Saved::default()).collect();
        let mut rests: Vec<PairRest> = (0..n_img * nt).map(|_| PairRest::default()).collect();
        let mut glos: Vec<ImageGlo> = (0..n_img).map(|_| ImageGlo::default()).collect();
        let batch_gates = train && matches!(self.reason, Reasoning::Saf(_)) && n_img > 0;
        let mut gate_stats = Vec::new();
        if nc > 0 {
            let prep = self.prepare();
            out.par_chunks_mut(nc)
                .zip(img.par_chunks(n_regions * d))
                .zip(img_glo.par_chunks(d))
                .zip(saved.par_chunks_mut(nt))
                .zip(rests.par_chunks_mut(nt))
                .zip(glos.par_iter_mut())
                .for_each_init(Scratch::default, |sc, (((((o, v), g), sv), r), ig)| {
                    self.image_forward(&prep, v, g, w, cap_glo, sv, r, ig, sc, o, batch_gates);
                });
            if batch_gates {
                gate_stats = self.gate_norm(&tiles, &mut rests);
                out.par_chunks_mut(nc)
                    .zip(rests.par_chunks_mut(nt))
                    .for_each(|(o, rs)| {
                        for (t, r) in tiles.iter().zip(rs) {
                            self.pair_finish(r, &mut o[t.clone()]);
                        }
                    });
            }
        }
        let local = HeadCache { saved };
        let cache = SgrafHeadCache {
            local,
            rests,
            glos,
            gate_stats,
        };
        (out, cache)
    }

    /// SAF's batch norm in training mode over a batch whose pairs stopped
    /// at their gate logits (`rests`: image-major, one per caption tile of
    /// `tiles`): for each caption in order, its logits over every image
    /// and node, `[n_img, 1, n_j + 1]` as PyTorch's `BatchNorm1d(1)` sees
    /// them, normalised with their own statistics into each pair's
    /// `saf.a`. Returns the statistics, one per caption.
    fn gate_norm(
        &self,
        tiles: &[std::ops::Range<usize>],
        rests: &mut [PairRest],
    ) -> Vec<BatchStats> {
        let Reasoning::Saf(f) = &self.reason else {
            unreachable!("batch gates are SAF's")
        };
        let nt = tiles.len();
        for r in rests.iter_mut() {
            r.saf.a.resize(r.saf.z.len(), 0.0);
        }
        let mut stats = Vec::new();
        let mut buf = Vec::new();
        for (t, tile) in tiles.iter().enumerate() {
            for j in 0..tile.len() {
                buf.clear();
                for r in rests.iter().skip(t).step_by(nt) {
                    buf.extend_from_slice(&r.saf.z[r.noffs[j]..r.noffs[j + 1]]);
                }
                // n_img·(n_j + 1) ≥ 2 values: training mode always applies.
                stats.push(f.bn.forward_train(&mut buf, 1));
                let mut at = 0;
                for r in rests.iter_mut().skip(t).step_by(nt) {
                    let rows = r.noffs[j]..r.noffs[j + 1];
                    r.saf.a[rows.clone()].copy_from_slice(&buf[at..at + rows.len()]);
                    at += rows.len();
                }
            }
        }
        stats
    }

    /// Backward of [`Self::gate_norm`]: turns each pair's gradient at the
    /// batch norm's output (`du`, one per entry of `rests`) into the
    /// gradient of its gate logits, through its caption's statistics
    /// `stats`; accumulates γ and β's gradients and takes one
    /// running-statistics step per caption, in caption order (as PyTorch
    /// does in its forward).
    fn gate_norm_backward(
        &mut self,
        tiles: &[std::ops::Range<usize>],
        rests: &[PairRest],
        stats: &[BatchStats],
        du: &mut [Vec<f32>],
    ) {
        let Reasoning::Saf(f) = &mut self.reason else {
            unreachable!("batch gates are SAF's")
        };
        let nt = tiles.len();
        let (mut z, mut g) = (Vec::new(), Vec::new());
        for (t, tile) in tiles.iter().enumerate() {
            for j in 0..tile.len() {
                z.clear();
                g.clear();
                for (r, dr) in rests.iter().zip(du.iter()).skip(t).step_by(nt) {
                    let rows = r.noffs[j]..r.noffs[j + 1];
                    z.extend_from_slice(&r.saf.z[rows.clone()]);
                    g.extend_from_slice(&dr[rows]);
                }
                let s = &stats[tile.start + j];
                batchnorm_train::backward(&mut f.bn, &mut f.running, &z, Some(s), &mut g, 1);
                let mut at = 0;
                for (r, dr) in rests.iter().zip(du.iter_mut()).skip(t).step_by(nt) {
                    let rows = r.noffs[j]..r.noffs[j + 1];
                    dr[rows.clone()].copy_from_slice(&g[at..at + rows.len()]);
                    at += rows.len();
                }
            }
        }
    }

    /// Scores images `images` of `enc` against all captions of `w`
    /// sequentially into out: [images.len(), n_cap] (the evaluation block
    /// scorer). enc: encoded images `[n, 1 + R, d]`, each its global vector
    /// then its R regions (the inference layout, read in place).
    pub fn score_block(
        &self,
        enc: &[f32],
        n_regions: usize,
        images: std::ops::Range<usize>,
        w: Words<'_>,
        cap_glo: &[f32],
        out: &mut [f32],
    ) {
        let d = self.embed();
        let s = self.local.sim_dim();
        let rows = n_regions + 1;
        let per = rows * d;
        let nc = w.n_cap();
        if nc == 0 {
            return;
        }
        let mut sc = Scratch::default();
        let (mut sv, mut r) = (Saved::default(), PairRest::default());
        let mut igs: Vec<ImageGlo> = (0..LOGIT_GROUP).map(|_| ImageGlo::default()).collect();
        let mut logits = Vec::new();
        let prep = self.prepare();
        let tiles = w.tiles(self.local.tile_words());
        // Groups of images: their global alignments, then per caption tile
        // one logits GEMM for the group (over all its rows: the global rows'
        // R + 1st columns cost 1/R more and are skipped) and the rest of each
        // image's pass.
        let first = images.start;
        for (gi, outs) in out.chunks_mut(LOGIT_GROUP * nc).enumerate() {
            let i0 = first + gi * LOGIT_GROUP;
            let n = outs.len() / nc;
            let group = &enc[i0 * per..(i0 + n) * per];
            for (ig, x) in igs.iter_mut().zip(group.chunks_exact(per)) {
                self.glo_forward(&prep, &x[..d], cap_glo, ig);
            }
            for t in &tiles {
                let tw = w.slice(t.clone(), d);
                self.local
                    .group_logits(group, &tw.data[..tw.n_words() * d], &mut logits);
                for (k, o) in outs.chunks_exact_mut(nc).enumerate() {
                    let at = GroupLogits::image(&logits, n * rows, k * rows + 1, n_regions);
                    self.pair_forward(
                        &prep,
                        &group[k * per + d..(k + 1) * per],
                        tw,
                        &igs[k].gvec[t.start * s..t.end * s],
                        &mut sv,
                        &mut sc,
                        &mut r,
                        &mut o[t.clone()],
                        Some(at),
                        false,
                    );
                }
            }
        }
    }

    /// One image against one caption through the pass [`Self::score_block`]
    /// runs (global alignment, the logits GEMM over the image's rows, the
    /// pair's forward), keeping what explains the score. enc: the encoded
    /// image `[1 + R, d]` (global vector first); words: [n_w, d], n_w ≥ 1;
    /// cap_glo: [d].
    pub fn trace_pair(&self, enc: &[f32], words: &[f32], cap_glo: &[f32]) -> SgrafTrace {
        let d = self.embed();
        let r = enc.len() / d - 1;
        let offsets = [0, words.len() / d];
        let w = Words {
            data: words,
            offsets: &offsets,
        };
        let prep = self.prepare();
        let mut ig = ImageGlo::default();
        self.glo_forward(&prep, &enc[..d], cap_glo, &mut ig);
        let mut logits = Vec::new();
        self.local.group_logits(enc, words, &mut logits);
        let at = GroupLogits::image(&logits, 1 + r, 1, r);
        let (mut sv, mut sc, mut rest) =
            (Saved::default(), Scratch::default(), PairRest::default());
        let mut out = [0.0f32];
        let v = &enc[d..];
        self.pair_forward(
            &prep,
            v,
            w,
            &ig.gvec,
            &mut sv,
            &mut sc,
            &mut rest,
            &mut out,
            Some(at),
            false,
        );
        let (nodes, node_weights, vector_norm) = match &self.reason {
            Reasoning::Sgr(steps) => {
                let x = match rest.steps.last() {
                    Some(st) => st.y.clone(),
                    None => rest.nodes.clone(),
                };
                debug_assert_eq!(steps.len(), rest.steps.len() + 1);
                (x, rest.root.edges().to_vec(), 1.0)
            }
            Reasoning::Saf(_) => (
                rest.nodes.clone(),
                rest.saf.weights().to_vec(),
                rest.saf.norms()[0],
            ),
        };
        SgrafTrace {
            score: out[0],
            attention: sv.attention().to_vec(),
            nodes,
            node_weights,
            vector: rest.vec,
            vector_norm,
        }
    }

    /// Back-propagates `d_sims: [n_img, n_cap]` through
    /// [`Self::forward_train`] (whose outputs are `sims` and `cache`).
    /// Accumulates the head's gradients; returns the inputs' gradients.
    #[allow(clippy::too_many_arguments)]
    pub fn backward(
        &mut self,
        img: &[f32],
        img_glo: &[f32],
        n_regions: usize,
        w: Words<'_>,
        cap_glo: &[f32],
        cache: &SgrafHeadCache,
        sims: &[f32],
        d_sims: &[f32],
    ) -> HeadGrads {
        let d = self.embed();
        let s = self.local.sim_dim();
        let (nc, nw) = (w.n_cap(), w.n_words());
        let per = n_regions * d;
        let n_img = img_glo.len() / d;
        let tiles = w.tiles(self.local.tile_words());
        let nt = tiles.len();
        cache.local.check("sgraf head", sims, d_sims, n_img, nc, nt);
        assert!(
            cache.rests.len() == cache.local.saved.len() && cache.glos.len() == n_img,
            "sgraf head cache"
        );
        // SAF in training mode: the gradient of every pair's gate logits
        // first (through its caption's batch statistics, which couple the
        // images); the pass below then runs densely from it.
        let gate_dz = (!cache.gate_stats.is_empty()).then(|| {
            assert_eq!(
                cache.gate_stats.len(),
                nc,
                "sgraf head cache: gate statistics"
            );
            let mut du: Vec<Vec<f32>> = cache
                .rests
                .par_iter()
                .enumerate()
                .map(|(k, r)| {
                    let t = &tiles[k % nt];
                    let row = (k / nt) * nc + t.start..(k / nt) * nc + t.end;
                    self.pair_gate_grad(r, &sims[row.clone()], &d_sims[row])
                })
                .collect();
            self.gate_norm_backward(&tiles, &cache.rests, &cache.gate_stats, &mut du);
            du
        });
        let gate_dz = gate_dz.as_deref();
        let mut dimg = vec![0.0f32; img.len()];
        let mut dimg_glo = vec![0.0f32; img_glo.len()];
        let chunk = n_img.div_ceil(rayon::current_num_threads().max(1)).max(1);
        let this = &*self;
        let prep = self.prepare();
        let prep_ref = &prep;
        let fresh = || {
            let mut glo = this.glo.clone();
            glo.zero_grad();
            let mut reason = this.reason.clone();
            reason.zero_grad();
            ChunkGrads {
                acc: Acc::new(d, s),
                glo,
                reason,
                plans: prep_ref.plans.clone(),
            }
        };
        let parts: Vec<(ChunkGrads, Vec<f32>, Vec<f32>)> = dimg
            .par_chunks_mut(chunk * per)
            .zip(dimg_glo.par_chunks_mut(chunk * d))
            .zip(cache.local.saved.par_chunks(chunk * nt))
            .zip(cache.rests.par_chunks(chunk * nt))
            .zip(cache.glos.par_chunks(chunk))
            .enumerate()
            .map(|(c, ((((dimg_c, dglo_c), saved_c), rests_c), glos_c))| {
                let mut gr = fresh();
                let mut dwords = vec![0.0f32; nw * d];
                let mut dcap = vec![0.0f32; nc * d];
                let mut sc = Scratch::default();
                for (ii, ((((dv, dg), svs), rs), ig)) in dimg_c
                    .chunks_exact_mut(per)
                    .zip(dglo_c.chunks_exact_mut(d))
                    .zip(saved_c.chunks_exact(nt))
                    .zip(rests_c.chunks_exact(nt))
                    .zip(glos_c)
                    .enumerate()
                {
                    let i = c * chunk + ii;
                    let v = &img[i * per..(i + 1) * per];
                    let g = &img_glo[i * d..(i + 1) * d];
                    let row = i * nc..(i + 1) * nc;
                    let (sims, ds) = (&sims[row.clone()], &d_sims[row]);
                    let image = ImageInputs { v, g, w, cap_glo };
                    let out = ImageGrads {
                        dv,
                        dg,
                        dwords: &mut dwords,
                        dcap: &mut dcap,
                    };
                    let selection = match gate_dz {
                        Some(_) => Selection::Dense,
                        None => this.local.selection(ds),
                    };
                    match selection {
                        Selection::Dense => {
                            let state = ImageState {
                                saved: svs,
                                rests: rs,
                                glo: ig,
                                gate_dz: gate_dz.map(|g| &g[i * nt..(i + 1) * nt]),
                            };
                            this.image_backward(&image, &state, sims, ds, out, &mut sc, &mut gr);
                        }
                        Selection::Sparse(sel) => this.compact_backward(
                            prep_ref, &image, &sel, sims, ds, out, &mut sc, &mut gr,
                        ),
                    }
                }
                (gr, dwords, dcap)
            })
            .collect();
        let mut dwords = vec![0.0f32; nw * d];
        let mut dcap = vec![0.0f32; nc * d];
        let mut total = Acc::new(d, s);
        let mut plan_grads = prep.plans;
        for (gr, dw, dc) in &parts {
            dwords.iter_mut().zip(dw).for_each(|(x, &y)| *x += y);
            dcap.iter_mut().zip(dc).for_each(|(x, &y)| *x += y);
            total.add(&gr.acc);
            add_grads(&mut self.glo, &gr.glo);
            add_grads(&mut self.reason, &gr.reason);
            for (p, q) in plan_grads.iter_mut().zip(&gr.plans) {
                add_grads(p, q);
            }
        }
        total.apply(&mut self.local);
        if let Reasoning::Sgr(steps) = &mut self.reason {
            for (step, plan) in steps.iter_mut().zip(&plan_grads) {
                step.absorb_plan_grad(plan);
            }
        }
        (dimg, dimg_glo, dwords, dcap)
    }
}

impl Module for SgrafHead {
    /// `sim_tranloc_w`, `sim_tranglo_w`, `sim_eval_w`, then the reasoning
    /// module (the PyTorch registration order).
    fn params(&self) -> Vec<&Param> {
        let mut v = self.local.tran.params();
        v.extend(self.glo.params());
        v.extend(self.local.eval.params());
        v.extend(self.reason.params());
        v
    }
    fn params_mut(&mut self) -> Vec<&mut Param> {
        let mut v = self.local.tran.params_mut();
        v.extend(self.glo.params_mut());
        v.extend(self.local.eval.params_mut());
        v.extend(self.reason.params_mut());
        v
    }
    fn buffers(&self) -> Vec<&Param> {
        self.reason.buffers()
    }
    fn buffers_mut(&mut self) -> Vec<&mut Param> {
        self.reason.buffers_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::rng::seeded;
    use crate::engine::simd::{self, Level};
    use crate::engine::testutil::{assert_outputs_close, rand_vec};

    /// Random head inputs: `n_img` images of `r` regions and `nc` captions,
    /// caption j of `len(j)` words, width d.
    #[derive(Clone)]
    struct Inputs {
        offsets: Vec<usize>,
        words: Vec<f32>,
        img: Vec<f32>,
        img_glo: Vec<f32>,
        cap_glo: Vec<f32>,
    }

    impl Inputs {
        fn new(d: usize, r: usize, n_img: usize, nc: usize, len: impl Fn(usize) -> usize) -> Self {
            let mut offsets = vec![0usize];
            for j in 0..nc {
                offsets.push(offsets[j] + len(j));
            }
            Inputs {
                words: rand_vec(offsets[nc] * d, 1, 1.0),
                offsets,
                img: rand_vec(n_img * r * d, 2, 1.0),
                img_glo: rand_vec(n_img * d, 4, 1.0),
                cap_glo: rand_vec(nc * d, 5, 1.0),
            }
        }

        fn words(&self) -> Words<'_> {
            Words {
                data: &self.words,
                offsets: &self.offsets,
            }
        }
    }

    /// Scores, input gradients and every parameter gradient of a 40-caption
    /// batch against 3 images, with the loss gradient of pair (i, j) kept
    /// where `keep(i, j)` (zero elsewhere), the sparse backward on or off;
    /// `train`: SAF's batch norm in training mode.
    fn run(
        sgr: bool,
        train: bool,
        sparse: bool,
        keep: impl Fn(usize, usize) -> bool,
    ) -> Vec<Vec<f32>> {
        let (d, s, r, n_img, nc) = (16, 8, 5, 3, 40);
        let mut head = SgrafHead::new(d, s, 9.0, sgr, &mut seeded(11));
        head.local.set_sparse(sparse);
        let x = Inputs::new(d, r, n_img, nc, |j| 2 + (j * 5) % 7);
        let (img, img_glo, cap_glo, w) = (&x.img, &x.img_glo, &x.cap_glo, x.words());
        let (sims, cache) = head.forward_train(img, img_glo, r, w, cap_glo, train);
        let mut ds = rand_vec(sims.len(), 3, 1.0);
        for (k, g) in ds.iter_mut().enumerate() {
            if !keep(k / nc, k % nc) {
                *g = 0.0;
            }
        }
        let (dimg, dglo, dwords, dcap) =
            head.backward(img, img_glo, r, w, cap_glo, &cache, &sims, &ds);
        let mut out = vec![sims, dimg, dglo, dwords, dcap];
        out.extend(head.params().iter().map(|p| p.grad.clone()));
        out.extend(head.buffers().iter().map(|p| p.value.clone()));
        out
    }

    /// A hardest-negative-like gradient: image 1 gets none, caption 1 is
    /// reached by no image.
    fn sparse_keep(i: usize, j: usize) -> bool {
        i != 1 && (j == i || j == 13 + i || j == 39 - 5 * i)
    }

    /// The sparse backward ([`crate::model::sparse_pairs`]) equals the full
    /// pass to f32 rounding, for SGR and SAF (in eval mode: each pair's
    /// score is its own), on a hardest-negative-like gradient; a dense
    /// gradient gives identical bits.
    #[test]
    fn sparse_backward_equals_the_full_pass() {
        let keep = sparse_keep;
        for sgr in [true, false] {
            let full = run(sgr, false, false, keep);
            let sparse = run(sgr, false, true, keep);
            assert_outputs_close(&sparse, &full, 1e-6, &format!("sgr {sgr}"));
            // Not vacuous: the input gradients and W_loc, W_glo, w_e.
            for k in [1, 2, 3, 4, 5, 7, 9] {
                assert!(
                    full[k].iter().any(|&x| x != 0.0),
                    "sgr {sgr}, output {k} is all zero"
                );
            }
            // Image 1 gets no gradient at all; caption 1 (reached by no image) neither.
            assert!(sparse[1][5 * 16..10 * 16].iter().all(|&x| x == 0.0));
            assert!(sparse[2][16..32].iter().all(|&x| x == 0.0));
            assert!(sparse[4][16..32].iter().all(|&x| x == 0.0));
            let all = |_: usize, _: usize| true;
            assert_eq!(
                run(sgr, false, true, all),
                run(sgr, false, false, all),
                "sgr {sgr}: dense"
            );
        }
    }

    /// SAF in training mode: each caption's gate statistics couple the
    /// images, so an image the loss does not reach still gets a gradient,
    /// the backward ignores the sparse setting (identical bits either way),
    /// and the running statistics take one step per caption.
    #[test]
    fn saf_training_mode_couples_the_images() {
        let train = run(false, true, true, sparse_keep);
        assert_eq!(train, run(false, true, false, sparse_keep));
        let eval = run(false, false, false, sparse_keep);
        assert_ne!(train[0], eval[0], "batch statistics change the scores");
        assert!(
            train[1][5 * 16..10 * 16].iter().any(|&x| x != 0.0),
            "image 1 gets a gradient through the statistics"
        );
        let (mean, var) = (&train[train.len() - 2], &train[train.len() - 1]);
        assert!(mean[0] != 0.0 && var[0] != 1.0, "running statistics moved");
        // Eval mode leaves them at PyTorch's initial 0 and 1.
        assert_eq!(eval[eval.len() - 2..], [vec![0.0], vec![1.0]]);
        // SGR has no batch norm in the head: training mode changes nothing.
        assert_eq!(
            run(true, true, false, sparse_keep),
            run(true, false, false, sparse_keep)
        );
    }

    /// SAF in training mode (and in eval mode) against central differences
    /// of the forward's scores: every input and parameter gradient, with
    /// captions in several tiles and a loss that reaches only some pairs
    /// (in training mode the rest get theirs through the batch statistics).
    #[test]
    fn saf_backward_matches_finite_differences() {
        for train in [true, false] {
            saf_finite_differences(train);
        }
    }

    fn saf_finite_differences(train: bool) {
        use crate::engine::testutil::{assert_grad_close, dot_loss, fd_grad};
        // Smaller than FD_EPS: the head's curvature (scan attention at λ = 9)
        // makes FD_EPS's central differences miss by ~1e-3.
        const EPS: f32 = 2e-3;
        let (d, s, r, n_img, nc) = (6, 5, 3, 3, 5);
        let mut head = SgrafHead::new(d, s, 9.0, false, &mut seeded(5));
        head.local.set_tile_words(7);
        if let Reasoning::Saf(f) = &mut head.reason {
            f.bn.weight.value = vec![1.4];
            f.bn.bias.value = vec![-0.3];
        }
        let mut x = Inputs::new(d, r, n_img, nc, |j| 2 + (j * 2) % 4);
        assert!(head.local.tile_words() < x.offsets[nc], "several tiles");
        let mut up = rand_vec(n_img * nc, 9, 1.0);
        up.iter_mut().step_by(3).for_each(|g| *g = 0.0);
        let loss = |h: &SgrafHead, x: &Inputs| {
            let (sims, _) = h.forward_train(&x.img, &x.img_glo, r, x.words(), &x.cap_glo, train);
            dot_loss(&sims, &up)
        };
        let mut h = head.clone();
        let (sims, cache) = h.forward_train(&x.img, &x.img_glo, r, x.words(), &x.cap_glo, train);
        let (dimg, dglo, dwords, dcap) = h.backward(
            &x.img,
            &x.img_glo,
            r,
            x.words(),
            &x.cap_glo,
            &cache,
            &sims,
            &up,
        );
        let fd = |x: &mut Inputs, which: usize| {
            let mut v = match which {
                0 => x.img.clone(),
                1 => x.img_glo.clone(),
                2 => x.words.clone(),
                _ => x.cap_glo.clone(),
            };
            fd_grad(&mut v, EPS, |v| {
                let mut y = Inputs { ..x.clone() };
                match which {
                    0 => y.img = v.to_vec(),
                    1 => y.img_glo = v.to_vec(),
                    2 => y.words = v.to_vec(),
                    _ => y.cap_glo = v.to_vec(),
                }
                loss(&head, &y)
            })
        };
        let m = if train { "train" } else { "eval" };
        assert_grad_close(&format!("{m}: d img"), &dimg, &fd(&mut x, 0));
        assert_grad_close(&format!("{m}: d img_glo"), &dglo, &fd(&mut x, 1));
        assert_grad_close(&format!("{m}: d words"), &dwords, &fd(&mut x, 2));
        assert_grad_close(&format!("{m}: d cap_glo"), &dcap, &fd(&mut x, 3));
        for k in 0..head.params().len() {
            let mut w = head.params()[k].value.clone();
            let fw = fd_grad(&mut w, EPS, |w| {
                let mut h2 = head.clone();
                h2.params_mut()[k].value = w.to_vec();
                loss(&h2, &x)
            });
            let name = format!("{m}: {}", head.params()[k].name);
            assert_grad_close(&name, &h.params()[k].grad, &fw);
        }
    }

    /// The evaluation scorer (images in groups of [`LOGIT_GROUP`] sharing one
    /// logits GEMM, read in place from the `[n, 1 + R, d]` layout) gives the
    /// training forward's scores for any image range: ranges that start
    /// mid-group, end with a short group, or hold one image.
    #[test]
    fn grouped_scoring_equals_the_training_forward() {
        let (d, s, r, n_img, nc) = (16, 8, 5, 11, 30);
        for sgr in [true, false] {
            let head = SgrafHead::new(d, s, 9.0, sgr, &mut seeded(3));
            let x = Inputs::new(d, r, n_img, nc, |j| 1 + (j * 3) % 8);
            let (img, img_glo, cap_glo, w) = (&x.img, &x.img_glo, &x.cap_glo, x.words());
            let (want, _) = head.forward_train(img, img_glo, r, w, cap_glo, false);
            let mut enc = Vec::new();
            for i in 0..n_img {
                enc.extend_from_slice(&img_glo[i * d..(i + 1) * d]);
                enc.extend_from_slice(&img[i * r * d..(i + 1) * r * d]);
            }
            for range in [0..n_img, 2..9, 5..6, 3..11] {
                let score = |level| {
                    let mut got = vec![f32::NAN; range.len() * nc];
                    simd::capped(level, || {
                        head.score_block(&enc, r, range.clone(), w, cap_glo, &mut got)
                    });
                    got
                };
                let got = score(Level::Avx512);
                // Every vector level gives the same bits (engine::simd).
                for level in [Level::Baseline, Level::Avx2] {
                    assert_eq!(score(level), got, "sgr {sgr}, {level:?}");
                }
                let exp = &want[range.start * nc..range.end * nc];
                assert_outputs_close(
                    &[got],
                    &[exp.to_vec()],
                    1e-6,
                    &format!("sgr {sgr}, images {range:?}"),
                );
            }
        }
    }
}
