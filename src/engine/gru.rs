//! One-layer bidirectional GRU over packed variable-length sequences, with the
//! two directions' outputs averaged — the text encoder's recurrent layer
//! (docs/method.md §5.2: `nn.GRU(300, 1024, 1, batch_first=True, bidirectional=True)` on a
//! `pack_padded_sequence`, then `(out[..., :H] + out[..., H:]) / 2`).
//!
//! PyTorch gate equations and weight layout (rows of the 3H-tall matrices are
//! the (r, z, n) gates in that order):
//! ```text
//! r  = σ(W_ir x + b_ir + W_hr h + b_hr)
//! z  = σ(W_iz x + b_iz + W_hz h + b_hz)
//! n  = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))
//! h' = (h − n) ⊙ z + n            (= (1 − z) ⊙ n + z ⊙ h)
//! ```
//! with h₀ = 0 in both directions. The backward direction starts at each
//! sequence's true last token (as a packed sequence does), not at padding.
//! Positions at or beyond a sequence's length produce zeros and receive no
//! gradient.
//!
//! Layout and cost. Tokens are packed time-major, like PyTorch's `PackedSequence`:
//! the sequences still running at step t (a prefix of the batch, which is sorted
//! by length, descending) occupy a contiguous block of rows. The input
//! projections of all tokens are one GEMM per direction; the recurrent part is
//! one GEMM per step over the active prefix; the gate math is one fused loop.
//! The backward pass mirrors this: one GEMM per step for dh, and one GEMM each
//! for dW_ih, dW_hh and dx over all tokens.

use rand::Rng;
use rayon::prelude::*;

use crate::engine::fastmath::{sigmoid_in_place, tanh_in_place};
use crate::engine::gemm::{MatMut, MatRef, Par, gemm};
use crate::engine::param::{Module, Param};
use crate::engine::simd;

/// Below this many gate elements per step the fused loops stay on one thread.
const PAR_MIN_ELEMS: usize = 1 << 14;

/// The four parameters of one direction.
#[derive(Debug, Clone, PartialEq)]
pub struct GruDirection {
    /// `weight_ih_l0[_reverse]`: [3H, I].
    pub weight_ih: Param,
    /// `weight_hh_l0[_reverse]`: [3H, H].
    pub weight_hh: Param,
    /// `bias_ih_l0[_reverse]`: [3H].
    pub bias_ih: Param,
    /// `bias_hh_l0[_reverse]`: [3H].
    pub bias_hh: Param,
}

impl GruDirection {
    fn zeros(prefix: &str, suffix: &str, input: usize, hidden: usize) -> Self {
        let g = 3 * hidden;
        GruDirection {
            weight_ih: Param::zeros(format!("{prefix}.weight_ih_l0{suffix}"), &[g, input]),
            weight_hh: Param::zeros(format!("{prefix}.weight_hh_l0{suffix}"), &[g, hidden]),
            bias_ih: Param::zeros(format!("{prefix}.bias_ih_l0{suffix}"), &[g]),
            bias_hh: Param::zeros(format!("{prefix}.bias_hh_l0{suffix}"), &[g]),
        }
    }

    fn params(&self) -> [&Param; 4] {
        [
            &self.weight_ih,
            &self.weight_hh,
            &self.bias_ih,
            &self.bias_hh,
        ]
    }

    fn params_mut(&mut self) -> [&mut Param; 4] {
        [
            &mut self.weight_ih,
            &mut self.weight_hh,
            &mut self.bias_ih,
            &mut self.bias_hh,
        ]
    }
}

/// `nn.GRU(input, hidden, num_layers=1, batch_first=True, bidirectional=True)`
/// with direction-averaged output.
#[derive(Debug, Clone, PartialEq)]
pub struct BiGru {
    /// The forward direction (`*_l0`).
    pub fwd: GruDirection,
    /// The backward direction (`*_l0_reverse`).
    pub bwd: GruDirection,
    input: usize,
    hidden: usize,
}

/// How a sorted batch of lengths packs into time-major rows.
#[derive(Debug, Clone, PartialEq)]
struct Packing {
    /// Sequence lengths, non-increasing, each ≥ 1.
    lengths: Vec<usize>,
    /// Padded length L of the `[B, L, ·]` tensors.
    seq_len: usize,
    /// Sequences active at step t (t < lengths[0]).
    batch_sizes: Vec<usize>,
    /// First packed row of step t; `offsets[T]` = total tokens.
    offsets: Vec<usize>,
}

impl Packing {
    fn new(lengths: &[usize], seq_len: usize) -> Self {
        for (b, w) in lengths.windows(2).enumerate() {
            assert!(
                w[0] >= w[1],
                "gru: lengths must be sorted descending (like pack_padded_sequence); \
                 lengths[{b}] = {} < lengths[{}] = {}",
                w[0],
                b + 1,
                w[1]
            );
        }
        assert!(
            lengths.iter().all(|&l| l >= 1),
            "gru: every sequence needs length >= 1, got {lengths:?}"
        );
        let steps = lengths.first().copied().unwrap_or(0);
        assert!(
            steps <= seq_len,
            "gru: longest sequence ({steps}) exceeds the padded length {seq_len}"
        );
        let batch_sizes: Vec<usize> = (0..steps)
            .map(|t| lengths.iter().take_while(|&&l| l > t).count())
            .collect();
        let mut offsets = Vec::with_capacity(steps + 1);
        let mut acc = 0;
        offsets.push(0);
        for &n in &batch_sizes {
            acc += n;
            offsets.push(acc);
        }
        Packing {
            lengths: lengths.to_vec(),
            seq_len,
            batch_sizes,
            offsets,
        }
    }

    fn steps(&self) -> usize {
        self.batch_sizes.len()
    }

    fn tokens(&self) -> usize {
        *self.offsets.last().unwrap_or(&0)
    }

    /// Rows of step t that have a predecessor in `dir`'s recurrence, and the
    /// packed row where that predecessor block starts.
    fn prev(&self, dir: Dir, t: usize) -> (usize, usize) {
        match dir {
            Dir::Forward if t > 0 => (self.batch_sizes[t], self.offsets[t - 1]),
            Dir::Backward if t + 1 < self.steps() => (self.batch_sizes[t + 1], self.offsets[t + 1]),
            _ => (0, 0),
        }
    }

    /// Copies `[B, L, d]` rows into packed `[N, d]` order.
    fn pack(&self, x: &[f32], d: usize) -> Vec<f32> {
        let mut out = vec![0.0; self.tokens() * d];
        for (t, (&n, &off)) in self.batch_sizes.iter().zip(&self.offsets).enumerate() {
            for b in 0..n {
                let src = (b * self.seq_len + t) * d;
                out[(off + b) * d..(off + b + 1) * d].copy_from_slice(&x[src..src + d]);
            }
        }
        out
    }

    /// Writes packed `[N, d]` rows into a zeroed `[B, L, d]` tensor.
    fn unpack(&self, packed: &[f32], d: usize) -> Vec<f32> {
        let mut out = vec![0.0; self.lengths.len() * self.seq_len * d];
        for (t, (&n, &off)) in self.batch_sizes.iter().zip(&self.offsets).enumerate() {
            for b in 0..n {
                let dst = (b * self.seq_len + t) * d;
                out[dst..dst + d].copy_from_slice(&packed[(off + b) * d..(off + b + 1) * d]);
            }
        }
        out
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    Forward,
    Backward,
}

/// What one direction's forward pass keeps for backward.
#[derive(Debug, Clone, PartialEq)]
struct DirCache {
    /// Per token (packed rows): r, z, n and W_hn·h + b_hn, each H wide: [N, 4H].
    gates: Vec<f32>,
    /// Per token: the hidden state this step produced: [N, H].
    h: Vec<f32>,
}

/// Everything [`BiGru::backward`] needs from [`BiGru::forward`].
#[derive(Debug, Clone, PartialEq)]
pub struct GruCache {
    packing: Packing,
    /// The input in packed order: [N, I].
    x: Vec<f32>,
    dirs: [DirCache; 2],
}

impl GruCache {
    /// Number of real (non-padding) tokens in the batch.
    pub fn tokens(&self) -> usize {
        self.packing.tokens()
    }
}

/// Runs `f(row_index, a_row, b_row)` over matching rows of two buffers, on
/// rayon tasks when allowed and worth it (each row is independent, so the
/// result does not depend on the split).
fn for_rows<F>(par: Par, a: &mut [f32], wa: usize, b: &mut [f32], wb: usize, f: F)
where
    F: Fn(usize, &mut [f32], &mut [f32]) + Sync + Send,
{
    // Each row at the CPU's vector level (`f` is inlined into the dispatch).
    let row = |(i, (ra, rb)): (usize, (&mut [f32], &mut [f32]))| {
        simd::dispatch(
            #[inline(always)]
            || f(i, ra, rb),
        )
    };
    if par.is_parallel() && a.len() + b.len() >= PAR_MIN_ELEMS {
        a.par_chunks_mut(wa)
            .zip(b.par_chunks_mut(wb))
            .enumerate()
            .for_each(row);
    } else {
        a.chunks_mut(wa)
            .zip(b.chunks_mut(wb))
            .enumerate()
            .for_each(row);
    }
}

/// Adds the column sums of `m: [rows, cols]` into `acc: [cols]` (f64 partials, fixed order).
fn add_col_sums(acc: &mut [f32], m: &[f32]) {
    let cols = acc.len();
    let mut s = vec![0.0f64; cols];
    for row in m.chunks_exact(cols) {
        s.iter_mut().zip(row).for_each(|(a, &v)| *a += v as f64);
    }
    acc.iter_mut().zip(&s).for_each(|(a, &v)| *a += v as f32);
}

impl BiGru {
    /// Zero-initialised layer; parameters are named `{prefix}.weight_ih_l0`, …,
    /// `{prefix}.bias_hh_l0_reverse` (PyTorch `state_dict` names and order).
    pub fn new(prefix: &str, input: usize, hidden: usize) -> Self {
        assert!(
            input > 0 && hidden > 0,
            "gru: input ({input}) and hidden ({hidden}) must be positive"
        );
        BiGru {
            fwd: GruDirection::zeros(prefix, "", input, hidden),
            bwd: GruDirection::zeros(prefix, "_reverse", input, hidden),
            input,
            hidden,
        }
    }

    /// PyTorch's default init: every weight and bias U(−1/√H, 1/√H), drawn
    /// parameter by parameter in `state_dict` order (docs/method.md §5: ±0.03125 at H = 1024).
    pub fn uniform<R: Rng + ?Sized>(
        prefix: &str,
        input: usize,
        hidden: usize,
        rng: &mut R,
    ) -> Self {
        let mut g = BiGru::new(prefix, input, hidden);
        let a = (1.0 / (hidden as f64).sqrt()) as f32;
        for p in g.params_mut() {
            p.init_uniform(rng, a);
        }
        g
    }

    /// Input features I.
    pub fn input_dim(&self) -> usize {
        self.input
    }

    /// Hidden size H (= output width, since directions are averaged).
    pub fn hidden_dim(&self) -> usize {
        self.hidden
    }

    /// Forward pass.
    /// x: [B, L, I], lengths: [B] (descending, each in 1..=L) → y: [B, L, H],
    /// the average of the two directions' hidden states, zero at t ≥ length.
    pub fn forward(
        &self,
        x: &[f32],
        lengths: &[usize],
        seq_len: usize,
        par: Par,
    ) -> (Vec<f32>, GruCache) {
        self.run(x, lengths, seq_len, par, true)
    }

    /// [`Self::forward`] for inference: the same output, bitwise, without
    /// keeping the per-token gates (`[N, 4H]` per direction) that only the
    /// backward pass reads. x: [B, L, I] → y: [B, L, H].
    pub fn infer(&self, x: &[f32], lengths: &[usize], seq_len: usize, par: Par) -> Vec<f32> {
        self.run(x, lengths, seq_len, par, false).0
    }

    /// Both directions and their average; `keep`: whether each direction's
    /// cache holds every token's gates.
    fn run(
        &self,
        x: &[f32],
        lengths: &[usize],
        seq_len: usize,
        par: Par,
        keep: bool,
    ) -> (Vec<f32>, GruCache) {
        let (i_dim, h_dim) = (self.input, self.hidden);
        assert_eq!(
            x.len(),
            lengths.len() * seq_len * i_dim,
            "gru: input must be [B={}, L={seq_len}, I={i_dim}]",
            lengths.len()
        );
        let packing = Packing::new(lengths, seq_len);
        let xp = packing.pack(x, i_dim);
        let (d0, d1) = match split_directions(par) {
            Some(inner) => rayon::join(
                || self.forward_dir(&self.fwd, Dir::Forward, &packing, &xp, inner, keep),
                || self.forward_dir(&self.bwd, Dir::Backward, &packing, &xp, inner, keep),
            ),
            None => (
                self.forward_dir(&self.fwd, Dir::Forward, &packing, &xp, par, keep),
                self.forward_dir(&self.bwd, Dir::Backward, &packing, &xp, par, keep),
            ),
        };
        let mut avg = d0.h.clone();
        avg.iter_mut()
            .zip(&d1.h)
            .for_each(|(a, &b)| *a = (*a + b) / 2.0);
        let y = packing.unpack(&avg, h_dim);
        (
            y,
            GruCache {
                packing,
                x: xp,
                dirs: [d0, d1],
            },
        )
    }

    /// One direction; with `keep` the gates of every token stay in the
    /// cache, otherwise one step's gates at a time (the cache's are empty).
    fn forward_dir(
        &self,
        p: &GruDirection,
        dir: Dir,
        pk: &Packing,
        xp: &[f32],
        par: Par,
        keep: bool,
    ) -> DirCache {
        let (i_dim, h) = (self.input, self.hidden);
        let n_tok = pk.tokens();
        let g3 = 3 * h;
        // Input projections of every token at once: gi = X·W_ihᵀ (bias added in the loop).
        let mut gi = vec![0.0; n_tok * g3];
        gemm(
            MatMut::new(&mut gi, n_tok, g3),
            MatRef::new(xp, n_tok, i_dim),
            MatRef::new(&p.weight_ih.value, g3, i_dim).t(),
            1.0,
            0.0,
            par,
        );
        let gate_rows = if keep { n_tok } else { pk.lengths.len() };
        let mut gates = vec![0.0; gate_rows * 4 * h];
        let mut hs = vec![0.0; n_tok * h];
        let mut gh = vec![0.0; pk.lengths.len() * g3];
        let order: Vec<usize> = match dir {
            Dir::Forward => (0..pk.steps()).collect(),
            Dir::Backward => (0..pk.steps()).rev().collect(),
        };
        let (b_ih, b_hh) = (&p.bias_ih.value, &p.bias_hh.value);
        for t in order {
            let (n, off) = (pk.batch_sizes[t], pk.offsets[t]);
            let (n_prev, prev_off) = pk.prev(dir, t);
            // Split the hidden-state buffer into this step's block and its predecessor's.
            let (cur, prev): (&mut [f32], &[f32]) = match dir {
                Dir::Forward => {
                    let (before, after) = hs.split_at_mut(off * h);
                    (
                        &mut after[..n * h],
                        &before[prev_off * h..(prev_off + n_prev) * h],
                    )
                }
                Dir::Backward => {
                    let (before, after) = hs.split_at_mut(pk.offsets[t + 1] * h);
                    let prev = &after[..n_prev * h];
                    debug_assert!(prev_off == pk.offsets[t + 1] || n_prev == 0);
                    (&mut before[off * h..], prev)
                }
            };
            if n_prev > 0 {
                gemm(
                    MatMut::new(&mut gh[..n_prev * g3], n_prev, g3),
                    MatRef::new(prev, n_prev, h),
                    MatRef::new(&p.weight_hh.value, g3, h).t(),
                    1.0,
                    0.0,
                    par,
                );
            }
            let gi_blk = &gi[off * g3..(off + n) * g3];
            let gh_ref = &gh;
            let at = if keep { off } else { 0 };
            let gates_blk = &mut gates[at * 4 * h..(at + n) * 4 * h];
            for_rows(
                par,
                gates_blk,
                4 * h,
                cur,
                h,
                #[inline(always)]
                |b, grow, hrow| {
                    let gi_r = &gi_blk[b * g3..(b + 1) * g3];
                    let (gi_rz, gi_n) = gi_r.split_at(2 * h);
                    let (b_ih_rz, b_ih_n) = b_ih.split_at(2 * h);
                    let (b_hh_rz, b_hh_n) = b_hh.split_at(2 * h);
                    let (g_rz, g_rest) = grow.split_at_mut(2 * h);
                    let (g_n, g_hn) = g_rest.split_at_mut(h);
                    // Without a predecessor the hidden-side products are 0.
                    let zeros = [0.0f32; 0];
                    let (gh_r, hp): (&[f32], &[f32]) = if b < n_prev {
                        (&gh_ref[b * g3..(b + 1) * g3], &prev[b * h..(b + 1) * h])
                    } else {
                        (&zeros, &zeros)
                    };
                    // r, z = σ((gh + b_hh) + (gi + b_ih)); n = tanh((gi_n + b_ih_n) + hn·r),
                    // hn = gh_n + b_hh_n; h = (h_prev − n)·z + n. Separate slice passes
                    // so each vectorises (fastmath's σ and tanh are branch-free).
                    if gh_r.is_empty() {
                        for (((g, &x), &bi), &bh) in
                            g_rz.iter_mut().zip(gi_rz).zip(b_ih_rz).zip(b_hh_rz)
                        {
                            *g = (0.0 + bh) + (x + bi);
                        }
                        for (g, &bh) in g_hn.iter_mut().zip(b_hh_n) {
                            *g = 0.0 + bh;
                        }
                    } else {
                        for ((((g, &x), &bi), &bh), &y) in g_rz
                            .iter_mut()
                            .zip(gi_rz)
                            .zip(b_ih_rz)
                            .zip(b_hh_rz)
                            .zip(&gh_r[..2 * h])
                        {
                            *g = (y + bh) + (x + bi);
                        }
                        for ((g, &bh), &y) in g_hn.iter_mut().zip(b_hh_n).zip(&gh_r[2 * h..]) {
                            *g = y + bh;
                        }
                    }
                    sigmoid_in_place(g_rz);
                    let (g_r, g_z) = g_rz.split_at(h);
                    for ((((g, &x), &bi), &hn), &r) in
                        g_n.iter_mut().zip(gi_n).zip(b_ih_n).zip(&*g_hn).zip(g_r)
                    {
                        *g = (x + bi) + hn * r;
                    }
                    tanh_in_place(g_n);
                    if hp.is_empty() {
                        for ((o, &nn), &z) in hrow.iter_mut().zip(&*g_n).zip(g_z) {
                            *o = (0.0 - nn) * z + nn;
                        }
                    } else {
                        for (((o, &nn), &z), &p) in hrow.iter_mut().zip(&*g_n).zip(g_z).zip(hp) {
                            *o = (p - nn) * z + nn;
                        }
                    }
                },
            );
        }
        if !keep {
            gates = Vec::new();
        }
        DirCache { gates, h: hs }
    }

    /// Backward pass: dy: [B, L, H] (gradient of the averaged output; values
    /// at t ≥ length are ignored) → dx: [B, L, I] (zero at t ≥ length).
    /// Accumulates the gradients of all eight parameters.
    pub fn backward(&mut self, cache: &GruCache, dy: &[f32], par: Par) -> Vec<f32> {
        let (i_dim, h) = (self.input, self.hidden);
        let pk = &cache.packing;
        assert_eq!(
            dy.len(),
            pk.lengths.len() * pk.seq_len * h,
            "gru backward: upstream grad must be [B={}, L={}, H={h}]",
            pk.lengths.len(),
            pk.seq_len
        );
        // Each direction receives half of the averaged output's gradient.
        let mut dyp = pk.pack(dy, h);
        dyp.iter_mut().for_each(|v| *v /= 2.0);
        let n_tok = pk.tokens();
        let mut dxp = vec![0.0; n_tok * i_dim];
        if let Some(inner) = split_directions(par) {
            // Each direction writes its own input gradient; summed after.
            let mut dx_bwd = vec![0.0; n_tok * i_dim];
            let (f, b) = (&mut self.fwd, &mut self.bwd);
            let (x, dirs, dyp) = (&cache.x, &cache.dirs, &dyp);
            let dxf = &mut dxp;
            let dxb = &mut dx_bwd;
            rayon::join(
                || {
                    backward_dir(
                        f,
                        Dir::Forward,
                        pk,
                        x,
                        &dirs[0],
                        dyp,
                        dxf,
                        true,
                        i_dim,
                        h,
                        inner,
                    )
                },
                || {
                    backward_dir(
                        b,
                        Dir::Backward,
                        pk,
                        x,
                        &dirs[1],
                        dyp,
                        dxb,
                        true,
                        i_dim,
                        h,
                        inner,
                    )
                },
            );
            dxp.iter_mut().zip(&dx_bwd).for_each(|(a, &b)| *a += b);
            return pk.unpack(&dxp, i_dim);
        }
        for (k, dir) in [Dir::Forward, Dir::Backward].into_iter().enumerate() {
            let dc = &cache.dirs[k];
            let p = if k == 0 { &mut self.fwd } else { &mut self.bwd };
            backward_dir(
                p,
                dir,
                pk,
                &cache.x,
                dc,
                &dyp,
                &mut dxp,
                k == 0,
                i_dim,
                h,
                par,
            );
        }
        pk.unpack(&dxp, i_dim)
    }
}

/// With a parallel `par` on at least 2 threads, the two directions run side by
/// side (`rayon::join`), each with half of the threads (the per-timestep
/// GEMMs are too small to split well); `None` runs them one after the other
/// with `par`. Deterministic for a fixed thread count either way.
fn split_directions(par: Par) -> Option<Par> {
    let threads = match par {
        Par::Seq => return None,
        Par::Rayon(0) => rayon::current_num_threads(),
        Par::Rayon(n) => n,
    };
    (threads >= 2).then(|| Par::threads(threads / 2))
}

/// Backpropagation through time for one direction.
#[allow(clippy::too_many_arguments)]
fn backward_dir(
    p: &mut GruDirection,
    dir: Dir,
    pk: &Packing,
    xp: &[f32],
    dc: &DirCache,
    dyp: &[f32],
    dxp: &mut [f32],
    first: bool,
    i_dim: usize,
    h: usize,
    par: Par,
) {
    let n_tok = pk.tokens();
    let g3 = 3 * h;
    // Gradients w.r.t. the input-side and hidden-side gate pre-activations.
    let mut dgi = vec![0.0; n_tok * g3];
    let mut dgh = vec![0.0; n_tok * g3];
    // carry[b]: gradient reaching sequence b's hidden state from the step after
    // it (in the direction's own time order). Rows a step never reached stay 0.
    let mut carry = vec![0.0; pk.lengths.len() * h];
    let order: Vec<usize> = match dir {
        Dir::Forward => (0..pk.steps()).rev().collect(),
        Dir::Backward => (0..pk.steps()).collect(),
    };
    for t in order {
        let (n, off) = (pk.batch_sizes[t], pk.offsets[t]);
        let (n_prev, prev_off) = pk.prev(dir, t);
        let gates = &dc.gates[off * 4 * h..(off + n) * 4 * h];
        let prev = &dc.h[prev_off * h..(prev_off + n_prev) * h];
        let dy_blk = &dyp[off * h..(off + n) * h];
        {
            let dgi_blk = &mut dgi[off * g3..(off + n) * g3];
            let dgh_blk = &mut dgh[off * g3..(off + n) * g3];
            let carry_blk = &mut carry[..n * h];
            // The fused loop writes dgi/dgh rows and updates carry rows in place.
            let f = |b: usize, dgi_row: &mut [f32], dgh_row: &mut [f32], carry_row: &mut [f32]| {
                let grow = &gates[b * 4 * h..(b + 1) * 4 * h];
                let has_prev = b < n_prev;
                for j in 0..h {
                    let (r, z, nn, hn) = (grow[j], grow[h + j], grow[2 * h + j], grow[3 * h + j]);
                    let hp = if has_prev { prev[b * h + j] } else { 0.0 };
                    let dh = dy_blk[b * h + j] + carry_row[j];
                    let dn = dh * (1.0 - z);
                    let dz = dh * (hp - nn);
                    let dan = dn * (1.0 - nn * nn);
                    let dar = dan * hn * r * (1.0 - r);
                    let daz = dz * z * (1.0 - z);
                    dgi_row[j] = dar;
                    dgi_row[h + j] = daz;
                    dgi_row[2 * h + j] = dan;
                    dgh_row[j] = dar;
                    dgh_row[h + j] = daz;
                    dgh_row[2 * h + j] = dan * r;
                    carry_row[j] = dh * z;
                }
            };
            if par.is_parallel() && n * g3 >= PAR_MIN_ELEMS {
                dgi_blk
                    .par_chunks_mut(g3)
                    .zip(dgh_blk.par_chunks_mut(g3))
                    .zip(carry_blk.par_chunks_mut(h))
                    .enumerate()
                    .for_each(|(b, ((a, c), d))| f(b, a, c, d));
            } else {
                dgi_blk
                    .chunks_mut(g3)
                    .zip(dgh_blk.chunks_mut(g3))
                    .zip(carry_blk.chunks_mut(h))
                    .enumerate()
                    .for_each(|(b, ((a, c), d))| f(b, a, c, d));
            }
        }
        if n_prev > 0 {
            // carry[b] = dh·z (set above) + dGH_t[b]·W_hh for rows with a predecessor.
            gemm(
                MatMut::new(&mut carry[..n_prev * h], n_prev, h),
                MatRef::new(&dgh[off * g3..(off + n_prev) * g3], n_prev, g3),
                MatRef::new(&p.weight_hh.value, g3, h),
                1.0,
                1.0,
                par,
            );
        }
    }
    // Hidden state feeding each token (zero where the recurrence starts).
    let mut hprev = vec![0.0; n_tok * h];
    for t in 0..pk.steps() {
        let (n_prev, prev_off) = pk.prev(dir, t);
        let off = pk.offsets[t];
        hprev[off * h..(off + n_prev) * h]
            .copy_from_slice(&dc.h[prev_off * h..(prev_off + n_prev) * h]);
    }
    gemm(
        MatMut::new(&mut p.weight_ih.grad, g3, i_dim),
        MatRef::new(&dgi, n_tok, g3).t(),
        MatRef::new(xp, n_tok, i_dim),
        1.0,
        1.0,
        par,
    );
    gemm(
        MatMut::new(&mut p.weight_hh.grad, g3, h),
        MatRef::new(&dgh, n_tok, g3).t(),
        MatRef::new(&hprev, n_tok, h),
        1.0,
        1.0,
        par,
    );
    add_col_sums(&mut p.bias_ih.grad, &dgi);
    add_col_sums(&mut p.bias_hh.grad, &dgh);
    gemm(
        MatMut::new(dxp, n_tok, i_dim),
        MatRef::new(&dgi, n_tok, g3),
        MatRef::new(&p.weight_ih.value, g3, i_dim),
        1.0,
        if first { 0.0 } else { 1.0 },
        par,
    );
}

impl Module for BiGru {
    fn params(&self) -> Vec<&Param> {
        self.fwd
            .params()
            .into_iter()
            .chain(self.bwd.params())
            .collect()
    }
    fn params_mut(&mut self) -> Vec<&mut Param> {
        let (f, b) = (&mut self.fwd, &mut self.bwd);
        f.params_mut().into_iter().chain(b.params_mut()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::rng::seeded;
    use crate::engine::testutil::*;

    const LENS: [usize; 4] = [5, 3, 3, 1];
    const L: usize = 6;
    const I: usize = 3;
    const H: usize = 4;

    fn setup() -> (BiGru, Vec<f32>, Vec<f32>) {
        // Larger-than-default weights so the gates leave their linear regime.
        let mut g = BiGru::new("rnn", I, H);
        for (k, p) in g.params_mut().into_iter().enumerate() {
            p.init_uniform(&mut seeded(10 + k as u64), 0.6);
        }
        let x = rand_vec(LENS.len() * L * I, 1, 1.0);
        let c = rand_vec(LENS.len() * L * H, 2, 1.0);
        (g, x, c)
    }

    #[test]
    fn names_and_default_init() {
        let g = BiGru::uniform("txt_enc.cap_rnn", 300, 1024, &mut seeded(0));
        let names: Vec<&str> = g.params().iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "txt_enc.cap_rnn.weight_ih_l0",
                "txt_enc.cap_rnn.weight_hh_l0",
                "txt_enc.cap_rnn.bias_ih_l0",
                "txt_enc.cap_rnn.bias_hh_l0",
                "txt_enc.cap_rnn.weight_ih_l0_reverse",
                "txt_enc.cap_rnn.weight_hh_l0_reverse",
                "txt_enc.cap_rnn.bias_ih_l0_reverse",
                "txt_enc.cap_rnn.bias_hh_l0_reverse",
            ]
        );
        // docs/method.md §5.5: the Bi-GRU(300 → 1024) has 8,146,944 parameters.
        assert_eq!(g.num_params(), 8_146_944);
        assert!(
            g.params()
                .iter()
                .all(|p| p.value.iter().all(|v| v.abs() <= 0.03125))
        );
    }

    #[test]
    fn padding_is_ignored_and_zero() {
        let (g, x, _) = setup();
        let (y, _) = g.forward(&x, &LENS, L, Par::Seq);
        let mut x2 = x.clone();
        for (b, &len) in LENS.iter().enumerate() {
            for t in len..L {
                x2[(b * L + t) * I..(b * L + t + 1) * I].fill(123.0);
            }
        }
        let (y2, _) = g.forward(&x2, &LENS, L, Par::Seq);
        assert_eq!(y, y2);
        for (b, &len) in LENS.iter().enumerate() {
            assert!(
                y[(b * L + len) * H..(b + 1) * L * H]
                    .iter()
                    .all(|&v| v == 0.0)
            );
            assert!(y[b * L * H..(b * L + len) * H].iter().any(|&v| v != 0.0));
        }
    }

    /// Inference (no gates kept) gives the training forward's output bit
    /// for bit, sequential and with two threads.
    #[test]
    fn inference_equals_the_forward_pass() {
        let (g, x, _) = setup();
        for par in [Par::Seq, Par::Rayon(2)] {
            let (y, cache) = g.forward(&x, &LENS, L, par);
            assert!(
                cache
                    .dirs
                    .iter()
                    .all(|d| d.gates.len() == cache.x.len() / I * 4 * H)
            );
            assert_eq!(g.infer(&x, &LENS, L, par), y, "{par:?}");
        }
    }

    /// Batched packing equals running each sequence on its own (B = 1, L = its length).
    #[test]
    fn batch_equals_one_sequence_at_a_time() {
        let (mut g, x, c) = setup();
        let (y, cache) = g.forward(&x, &LENS, L, Par::Seq);
        let dx = g.backward(&cache, &c, Par::Seq);
        let mut g1 = g.clone();
        g1.zero_grad();
        let grads_batched: Vec<Vec<f32>> = g.params().iter().map(|p| p.grad.clone()).collect();
        for (b, &len) in LENS.iter().enumerate() {
            let xs = &x[b * L * I..(b * L + len) * I];
            let cs = &c[b * L * H..(b * L + len) * H];
            let (ys, cache1) = g1.forward(xs, &[len], len, Par::Seq);
            let dxs = g1.backward(&cache1, cs, Par::Seq);
            for (u, v) in ys.iter().zip(&y[b * L * H..(b * L + len) * H]) {
                assert!((u - v).abs() <= 1e-6, "output b={b}: {u} vs {v}");
            }
            for (u, v) in dxs.iter().zip(&dx[b * L * I..(b * L + len) * I]) {
                assert!((u - v).abs() <= 1e-6, "dx b={b}: {u} vs {v}");
            }
            assert!(
                dx[(b * L + len) * I..(b + 1) * L * I]
                    .iter()
                    .all(|&v| v == 0.0)
            );
        }
        for (p, gb) in g1.params().iter().zip(&grads_batched) {
            for (u, v) in p.grad.iter().zip(gb) {
                assert!(
                    (u - v).abs() <= 1e-5 * v.abs().max(1.0),
                    "{}: {u} vs {v}",
                    p.name
                );
            }
        }
    }

    #[test]
    fn finite_differences() {
        let (mut g, mut x, c) = setup();
        let (_, cache) = g.forward(&x, &LENS, L, Par::Seq);
        let dx = g.backward(&cache, &c, Par::Seq);
        let fx = fd_grad(&mut x, FD_EPS, |x| {
            dot_loss(&g.forward(x, &LENS, L, Par::Seq).0, &c)
        });
        assert_grad_close("dx", &dx, &fx);
        for k in 0..8 {
            let mut w = g.params()[k].value.clone();
            let fw = fd_grad(&mut w, FD_EPS, |w| {
                let mut g2 = g.clone();
                g2.params_mut()[k].value = w.to_vec();
                dot_loss(&g2.forward(&x, &LENS, L, Par::Seq).0, &c)
            });
            let p = g.params()[k];
            assert_grad_close(&p.name, &p.grad, &fw);
        }
    }

    /// The rayon paths (parallel GEMMs and gate loops) agree with Seq.
    #[test]
    fn parallel_matches_sequential() {
        let lens = [9usize, 8, 8, 6, 6, 6, 3, 2, 2, 1];
        let (i, h, l) = (20, 600, 10);
        let mut g = BiGru::uniform("rnn", i, h, &mut seeded(5));
        let x = rand_vec(lens.len() * l * i, 6, 1.0);
        let c = rand_vec(lens.len() * l * h, 7, 1.0);
        let mut run = |par| {
            g.zero_grad();
            let (y, cache) = g.forward(&x, &lens, l, par);
            let dx = g.backward(&cache, &c, par);
            let grads: Vec<f32> = g.params().iter().flat_map(|p| p.grad.clone()).collect();
            (y, dx, grads)
        };
        let s = run(Par::Seq);
        let p = run(Par::Rayon(2));
        let close = |a: &[f32], b: &[f32]| {
            a.iter()
                .zip(b)
                .all(|(u, v)| (u - v).abs() <= 1e-5 * v.abs().max(1.0))
        };
        assert!(close(&s.0, &p.0) && close(&s.1, &p.1) && close(&s.2, &p.2));
    }
}
