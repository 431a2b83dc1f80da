//! The scan-ave similarity head (docs/method.md §5.3) as one fused, tiled kernel,
//! forward and backward. PyTorch: `SimilarityHead` + `scan_attention` in
//! `tools/reference/dbl_ref/models.py` (the authors' per-caption loop).
//!
//! The words of all captions are stacked (`N_w = Σ n_j` rows, caption `j`
//! owning rows `offsets[j]..offsets[j+1]`) and each image `i` (regions
//! `V_i: [R, d]`) is scored against all of them at once:
//!
//! 1. `A = W·V_iᵀ` [N_w, R] → LeakyReLU 0.1 → `P`
//! 2. `Â[k][r] = P[k][r] / (‖P[·∈j][r]‖ + 1e-8)` (norm over caption j's words)
//! 3. `α = softmax_r(λ·Â)`; `C = L2(α·V_i)` [N_w, d]
//! 4. `D = (C − W)²`; `H = L2(D·W_tᵀ + b_t)` [N_w, S]
//! 5. `h_j = L2(mean_{k∈j} H_k)`; `s_ij = tanh(w_e·h_j + b_e)`
//!
//! Three GEMMs with M = N_w per image in the forward pass, seven in the
//! backward. Training keeps each image's small forward state (Â, α, H, h and
//! norms: `B²·L·(2R + S)` floats, [`HeadCache`]); the `B²·L·d` tensors C,
//! C − W and D are never stored but rebuilt per image in the backward pass
//! from α with one GEMM.
//! Images run in parallel (rayon) in as many contiguous chunks as the pool has
//! threads, each chunk accumulating its own parameter and word gradients,
//! reduced in chunk order — bitwise deterministic for a fixed thread count.
//! The same kernel (forward only) scores evaluation blocks
//! (`scan_scorer::ScanScorer`), optionally with its three GEMMs in bf16 on
//! Intel AMX ([`Bf16Tile`]: operands rounded to bf16, f32 accumulation;
//! normalisations, softmax and reductions stay f32).

use std::ops::Range;

use rand::Rng;
use rayon::prelude::*;

use crate::engine::activation::softmax_backward;
use crate::engine::amx::{self, PackedB};
use crate::engine::bf16::to_bf16;
use crate::engine::fastmath;
use crate::engine::gemm::{MatMut, MatRef, Par, gemm};
use crate::engine::l2norm::{self, EPS};
use crate::engine::linear::Linear;
use crate::engine::param::{Module, Param};
use crate::engine::reduce::{dot_f64, dot_lanes};
use crate::engine::simd;
use crate::model::sparse_pairs::{self, CompactWords, Selection, gather_rows};

/// Slope of the attention LeakyReLU.
const LEAKY: f32 = 0.1;

/// Words per tile: three `[TILE_WORDS, d]` f32 buffers at d = 1024 take
/// 3 MiB, about what a core's L2 holds next to the GEMM panels.
const TILE_WORDS: usize = 256;

/// `sim_enc`: `sim_tran_w` (d → S) and `sim_eval_w` (S → 1), plus λ.
#[derive(Debug, Clone, PartialEq)]
pub struct ScanHead {
    /// `sim_enc.sim_tran_w`: weight [S, d], bias [S].
    pub tran: Linear,
    /// `sim_enc.sim_eval_w`: weight [1, S], bias [1].
    pub eval: Linear,
    /// Softmax smoothing λ (9.0).
    pub smooth: f32,
    /// Words per tile ([`TILE_WORDS`]; tests vary it: scores and gradients do
    /// not depend on it beyond f32 rounding of the gradient sums).
    tile_words: usize,
    /// Back-propagate only the captions with a non-zero loss gradient
    /// ([`crate::model::sparse_pairs`]; on by default, tests turn it off to
    /// compare with the full pass).
    sparse: bool,
}

/// Stacked caption words. words: [N_w, d]; offsets: [n_cap + 1], offsets[0] = 0.
#[derive(Debug, Clone, Copy)]
pub struct Words<'a> {
    /// All words, caption after caption.
    pub data: &'a [f32],
    /// Caption `j` owns rows `offsets[j]..offsets[j+1]` (each non-empty).
    pub offsets: &'a [usize],
}

impl Words<'_> {
    pub(super) fn n_cap(&self) -> usize {
        self.offsets.len() - 1
    }
    pub(super) fn n_words(&self) -> usize {
        self.offsets[self.n_cap()] - self.offsets[0]
    }

    /// Captions `caps` (relative to this view) as a view of their own. d: word width.
    pub(super) fn slice(&self, caps: Range<usize>, d: usize) -> Words<'_> {
        let offsets = &self.offsets[caps.start..=caps.end];
        Words {
            data: &self.data[(offsets[0] - self.offsets[0]) * d..],
            offsets,
        }
    }

    /// The word rows (relative to this view) of captions `caps`.
    pub(super) fn word_rows(&self, caps: &Range<usize>) -> Range<usize> {
        self.offsets[caps.start] - self.offsets[0]..self.offsets[caps.end] - self.offsets[0]
    }

    /// Consecutive caption ranges of at most `max_words` words each (a
    /// caption longer than that is a tile of its own). Tiles keep an image's
    /// `[words, d]` intermediates within the per-core L2 cache.
    pub(super) fn tiles(&self, max_words: usize) -> Vec<Range<usize>> {
        let mut tiles = Vec::new();
        let mut start = 0;
        for j in 0..self.n_cap() {
            if j > start && self.offsets[j + 1] - self.offsets[start] > max_words {
                tiles.push(start..j);
                start = j;
            }
        }
        if start < self.n_cap() {
            tiles.push(start..self.n_cap());
        }
        tiles
    }
}

/// What one image's forward pass leaves for its backward pass: everything but
/// the `[N_w, d]` tensors (C, C − W, D), which the backward rebuilds from α
/// with one GEMM. In training one is kept per image —
/// `N_w·(2R + S + 1) + n_cap·(R + S + 1)` floats (≈ 2 MiB at B = 128,
/// R = 36, S = 256), against the `N_w·3d` (≈ 18 MiB) a stored pass would need.
#[derive(Debug, Default)]
pub(super) struct Saved {
    /// Â (normalised attention). [N_w, R]
    ahat: Vec<f32>,
    /// α (softmax). [N_w, R]
    alpha: Vec<f32>,
    /// Column norms per (caption, region). [n_cap, R]
    colnorm: Vec<f32>,
    /// H (normalised). [N_w, S]
    pub(super) t: Vec<f32>,
    tnorm: Vec<f32>,
    /// h_j (normalised). [n_cap, S]
    h: Vec<f32>,
    hnorm: Vec<f32>,
}

impl Saved {
    /// α (softmax over regions) of the last pass. [N_w, R]
    pub(super) fn attention(&self) -> &[f32] {
        &self.alpha
    }
}

/// What the scoring pass computed for one image × one caption, kept to
/// explain its score (`crate::model::explain`, [`ScanHead::trace_pair`]).
#[derive(Debug, Clone, PartialEq)]
pub struct PairTrace {
    /// The score `s = tanh(w_e·h + b_e)`, as the block scorer computes it.
    pub score: f32,
    /// Word-to-region attention α (softmax over regions). [n_w, R]
    pub attention: Vec<f32>,
    /// Per-word similarity vectors H (L2-normalised). [n_w, S]
    pub word_vectors: Vec<f32>,
    /// ‖mean_k H_k‖, the norm `h` was divided by.
    pub pooled_norm: f32,
}

/// Per-thread buffers of one image's pass (resized as needed).
#[derive(Debug, Default)]
pub(super) struct Scratch {
    /// C (normalised context). [N_w, d]
    c: Vec<f32>,
    cnorm: Vec<f32>,
    /// D = (C − W)², then dD / dC0 in the backward. [N_w, d]
    dsq: Vec<f32>,
    /// bf16 path (rows rounded up to 32, columns to the operand's pad):
    /// W·Vᵀ [N_w, R_pad] f32, α [N_w, R_pad] bf16, D [N_w, d_pad] bf16 and
    /// the projection [N_w, S_pad] f32.
    att16: Vec<f32>,
    alpha16: Vec<u16>,
    dsq16: Vec<u16>,
    t16: Vec<f32>,
    /// Backward: dT [N_w, S] (the input of [`ScanHead::local_backward`]),
    /// dα [N_w, R], dh [n_cap, S].
    pub(super) dt: Vec<f32>,
    dalpha: Vec<f32>,
    dh: Vec<f32>,
}

/// The AMX operands of one image × caption-tile pass (eval only).
#[derive(Debug, Clone, Copy)]
pub(super) struct Bf16Tile<'a> {
    /// `W_t` ([`ScanHead::pack_projection_bf16`]).
    pub proj: &'a PackedB,
    /// The tile's words in bf16: rows from its first word on, row stride
    /// d rounded up to 32, at least N_w rounded up to 32 rows.
    pub words: &'a [u16],
    /// Vᵀ for `A = W·Vᵀ` (`PackedB::from_weight(v, R, d)`).
    pub vt: &'a PackedB,
    /// V for `α·V` (`PackedB::from_kn(v, R, d)`).
    pub v: &'a PackedB,
}

/// Step 1's logits `A = W·Vᵀ` of a tile's words against a group of images,
/// computed by one GEMM ([`ScanHead::group_logits`]): one N = G·R product
/// runs near the GEMM's peak where G products with N = R do not. The
/// image's row k is `data[k·stride + col..][..R]`.
#[derive(Debug, Clone, Copy)]
pub(super) struct GroupLogits<'a> {
    data: &'a [f32],
    stride: usize,
    col: usize,
}

impl<'a> GroupLogits<'a> {
    /// The R columns from `col` on of data: [N_w, stride] (from
    /// [`ScanHead::group_logits`]), one image's logits.
    pub(super) fn image(data: &'a [f32], stride: usize, col: usize, r: usize) -> Self {
        debug_assert!(col + r <= stride);
        GroupLogits { data, stride, col }
    }
}

/// How one image × caption-tile forward pass runs its GEMMs.
#[derive(Debug, Clone, Copy)]
pub(super) enum Kernel<'a> {
    /// f32. `wt`: `W_t` transposed, [d, S] ([`ScanHead::projection_t`],
    /// made once per call of a batch or block scorer).
    F32 { wt: &'a [f32] },
    /// bf16 on AMX (eval only).
    Bf16(&'a Bf16Tile<'a>),
}

impl<'a> Kernel<'a> {
    fn bf16(self) -> Option<&'a Bf16Tile<'a>> {
        match self {
            Kernel::F32 { .. } => None,
            Kernel::Bf16(b) => Some(b),
        }
    }
}

/// The forward state of every image of a training batch, for
/// [`ScanHead::backward`].
#[derive(Debug, Default)]
pub struct HeadCache {
    pub(super) saved: Vec<Saved>,
}

impl HeadCache {
    /// Panics (naming `head`) unless `sims`, `d_sims` are [n_img, n_cap]
    /// and the cache holds n_img × n_tiles tile states.
    pub(super) fn check(
        &self,
        head: &str,
        sims: &[f32],
        d_sims: &[f32],
        n_img: usize,
        nc: usize,
        nt: usize,
    ) {
        assert!(
            sims.len() == n_img * nc
                && d_sims.len() == n_img * nc
                && self.saved.len() == n_img * nt,
            "{head} backward: sims {}, d_sims {} and {} cached tiles for [{n_img}, {nc}] \
             in {nt} tiles",
            sims.len(),
            d_sims.len(),
            self.saved.len()
        );
    }
}

/// Sets `v`'s length to `n` without clearing it: every caller overwrites all
/// `n` values before reading them (GEMMs with β = 0 or element-wise writes), so
/// zeroing would only cost a memset per image (~5 % of a training step).
pub(super) fn resize(v: &mut Vec<f32>, n: usize) {
    if v.len() < n {
        v.resize(n, 0.0);
    } else {
        v.truncate(n);
    }
}

/// The fused row pass of step 3b–4a, one row at a time while it is in L1:
/// L2-normalise row k of C (its first d values; row stride `cs`), keep its
/// norm in `cnorm[k]`, and write `D = (C − W)²` through `store` (f32 as is,
/// or rounded to bf16) into row k of `dsq` (stride `ds`). The normalised C
/// is written back only with `keep_c` (the backward pass reads it; the
/// forward pass needs only D). words: [N_w, d]; c, dsq: at least N_w rows.
#[allow(clippy::too_many_arguments)]
fn normalise_and_square<T>(
    c: &mut [f32],
    cs: usize,
    words: &[f32],
    cnorm: &mut [f32],
    dsq: &mut [T],
    ds: usize,
    store: impl Fn(f32) -> T,
    keep_c: bool,
) {
    if cnorm.is_empty() {
        return;
    }
    let d = words.len() / cnorm.len();
    simd::dispatch(
        #[inline(always)]
        || {
            for (((c, sq), w), n) in c
                .chunks_exact_mut(cs)
                .zip(dsq.chunks_exact_mut(ds))
                .zip(words.chunks_exact(d))
                .zip(cnorm.iter_mut())
            {
                let c = &mut c[..d];
                *n = dot_lanes(c, c).sqrt() as f32;
                let inv = l2norm::inverse(*n);
                for ((q, c), &x) in sq.iter_mut().zip(c.iter_mut()).zip(w) {
                    // l2norm::forward_row's value; stored only when kept.
                    let cn = l2norm::scale(*c, inv);
                    if keep_c {
                        *c = cn;
                    }
                    let df = cn - x;
                    *q = store(df * df);
                }
            }
        },
    )
}

/// Gradients of `W_t` and `w_e` accumulated by one chunk of images.
pub(super) struct Acc {
    pub(super) tran_w: Vec<f32>,
    pub(super) tran_b: Vec<f64>,
    pub(super) eval_w: Vec<f64>,
    pub(super) eval_b: f64,
}

/// Backward of the eval projection `z_j = w_e·x_j + b_e` of one pair from
/// dz: accumulates `w_e`'s and `b_e`'s gradients into `acc` (when given)
/// and writes dx_j = dz·w_e. x_j, dx_j: [S].
pub(super) fn eval_linear_backward(
    acc: Option<&mut Acc>,
    we: &[f32],
    dz: f32,
    x: &[f32],
    dx: &mut [f32],
) {
    if let Some(acc) = acc {
        acc.eval_b += dz as f64;
        acc.eval_w
            .iter_mut()
            .zip(x)
            .for_each(|(g, &v)| *g += dz as f64 * v as f64);
    }
    dx.iter_mut().zip(we).for_each(|(g, &w)| *g = dz * w);
}

impl Acc {
    /// Adds another chunk's sums (chunk order fixes the result).
    pub(super) fn add(&mut self, a: &Acc) {
        self.tran_w
            .iter_mut()
            .zip(&a.tran_w)
            .for_each(|(x, &y)| *x += y);
        self.tran_b
            .iter_mut()
            .zip(&a.tran_b)
            .for_each(|(x, &y)| *x += y);
        self.eval_w
            .iter_mut()
            .zip(&a.eval_w)
            .for_each(|(x, &y)| *x += y);
        self.eval_b += a.eval_b;
    }

    /// Adds the sums into `head`'s `W_t` and `w_e` gradients.
    pub(super) fn apply(&self, head: &mut ScanHead) {
        add(&mut head.tran.weight.grad, self.tran_w.iter().copied());
        if let Some(b) = &mut head.tran.bias {
            add(&mut b.grad, self.tran_b.iter().map(|&x| x as f32));
        }
        add(
            &mut head.eval.weight.grad,
            self.eval_w.iter().map(|&x| x as f32),
        );
        if let Some(b) = &mut head.eval.bias {
            b.grad[0] += self.eval_b as f32;
        }
    }

    /// Zeros for a head of width d and similarity width S.
    pub(super) fn new(d: usize, s: usize) -> Self {
        Acc {
            tran_w: vec![0.0; s * d],
            tran_b: vec![0.0; s],
            eval_w: vec![0.0; s],
            eval_b: 0.0,
        }
    }
}

impl ScanHead {
    /// Xavier-uniform `sim_tran_w` then `sim_eval_w` (docs/method.md §5.3), biases 0.
    pub fn new<R: Rng + ?Sized>(embed: usize, sim_dim: usize, smooth: f32, rng: &mut R) -> Self {
        let tran = Linear::xavier("sim_enc.sim_tran_w", embed, sim_dim, true, rng);
        let eval = Linear::xavier("sim_enc.sim_eval_w", sim_dim, 1, true, rng);
        Self::from_layers(tran, eval, smooth)
    }

    /// A head from its layers: `tran` d → S (W_t), `eval` S → 1 (w_e).
    pub fn from_layers(tran: Linear, eval: Linear, smooth: f32) -> Self {
        ScanHead {
            tran,
            eval,
            smooth,
            tile_words: TILE_WORDS,
            sparse: true,
        }
    }

    /// Embedding width d.
    pub fn embed(&self) -> usize {
        self.tran.in_dim()
    }

    /// Similarity vector width S.
    pub fn sim_dim(&self) -> usize {
        self.tran.out_dim()
    }

    /// Words per caption tile.
    pub(super) fn tile_words(&self) -> usize {
        self.tile_words
    }

    /// Tiles of at most `n` words (tests: several tiles in a small batch).
    #[cfg(test)]
    pub(super) fn set_tile_words(&mut self, n: usize) {
        self.tile_words = n;
    }

    /// How the backward pass walks one image's captions, from its gradient
    /// row ds: [n_cap] ([`sparse_pairs::select`], or always dense).
    pub(super) fn selection(&self, ds: &[f32]) -> Selection {
        if self.sparse {
            sparse_pairs::select(ds)
        } else {
            Selection::Dense
        }
    }

    /// Turns the sparse backward pass ([`crate::model::sparse_pairs`]) off
    /// or on (tests compare the two).
    #[cfg(test)]
    pub(super) fn set_sparse(&mut self, on: bool) {
        self.sparse = on;
    }

    /// `W_t` (`sim_tran_w.weight`, [S, d]) packed in bf16 for
    /// [`Bf16Tile::proj`].
    pub fn pack_projection_bf16(&self) -> PackedB {
        PackedB::from_weight(&self.tran.weight.value, self.sim_dim(), self.embed())
    }

    /// `W_t` transposed, [d, S], for [`Kernel::F32`].
    pub(super) fn projection_t(&self) -> Vec<f32> {
        self.tran.weight_t()
    }

    /// Steps 3b–4a of one image: `C = L2(α·V)` and `D = (C − W)²` into `sc`
    /// (`sc.dsq`; with `bf16`, α·V on AMX and D into `sc.dsq16`); the
    /// normalised C stays in `sc.c` only with `keep_c`.
    /// v: [R, d]; alpha: [N_w, R].
    fn context(
        &self,
        v: &[f32],
        words: &[f32],
        alpha: &[f32],
        sc: &mut Scratch,
        bf16: Option<&Bf16Tile<'_>>,
        keep_c: bool,
    ) {
        let d = self.embed();
        let r = v.len() / d;
        let nw = words.len() / d;
        resize(&mut sc.cnorm, nw);
        if let Some(b) = bf16 {
            let mp = nw.next_multiple_of(amx::BLOCK);
            let (rp, cs, kp) = (b.v.k_pad(), b.v.n_pad(), b.proj.k_pad());
            // Rows nw.. of the bf16 operands keep earlier (finite) values whose
            // products are dropped; pad columns are never written, so stay 0.
            sc.alpha16.resize(mp * rp, 0);
            for (dst, src) in sc.alpha16.chunks_exact_mut(rp).zip(alpha.chunks_exact(r)) {
                dst.iter_mut().zip(src).for_each(|(q, &a)| *q = to_bf16(a));
            }
            resize(&mut sc.c, mp * cs);
            amx::gemm(&sc.alpha16, mp, b.v, &mut sc.c);
            sc.dsq16.resize(mp * kp, 0);
            normalise_and_square(
                &mut sc.c,
                cs,
                words,
                &mut sc.cnorm,
                &mut sc.dsq16,
                kp,
                to_bf16,
                keep_c,
            );
            return;
        }
        resize(&mut sc.c, nw * d);
        gemm(
            MatMut::new(&mut sc.c, nw, d),
            MatRef::new(alpha, nw, r),
            MatRef::new(v, r, d),
            1.0,
            0.0,
            Par::Seq,
        );
        resize(&mut sc.dsq, nw * d);
        normalise_and_square(
            &mut sc.c,
            d,
            words,
            &mut sc.cnorm,
            &mut sc.dsq,
            d,
            |x| x,
            keep_c,
        );
    }

    /// Step 4a in bf16: `T = D·W_tᵀ + b_t` from `sc.dsq16` on AMX. → t: [N_w, S].
    fn project_bf16(&self, p: &PackedB, nw: usize, sc: &mut Scratch, t: &mut Vec<f32>) {
        let s = self.sim_dim();
        let mp = nw.next_multiple_of(amx::BLOCK);
        resize(&mut sc.t16, mp * p.n_pad());
        amx::gemm(&sc.dsq16[..mp * p.k_pad()], mp, p, &mut sc.t16);
        resize(t, nw * s);
        let zeros = vec![0.0f32; s];
        let bias = self.tran.bias.as_ref().map_or(&zeros, |b| &b.value);
        for (row, src) in t.chunks_exact_mut(s).zip(sc.t16.chunks_exact(p.n_pad())) {
            row.iter_mut()
                .zip(src)
                .zip(bias)
                .for_each(|((y, &x), &b)| *y = x + b);
        }
    }

    /// Step 1's `A = W·Vᵀ` for a group of images at once (scoring):
    /// vs: the group's rows [M, d]; words: [N_w, d] → out: [N_w, M]
    /// (read per image with [`GroupLogits::image`]). Each value is the same
    /// dot product the per-image GEMM forms, up to its summation order.
    pub(super) fn group_logits(&self, vs: &[f32], words: &[f32], out: &mut Vec<f32>) {
        let d = self.embed();
        let (gr, nw) = (vs.len() / d, words.len() / d);
        resize(out, nw * gr);
        gemm(
            MatMut::new(out, nw, gr),
            MatRef::new(words, nw, d),
            MatRef::new(vs, gr, d).t(),
            1.0,
            0.0,
            Par::Seq,
        );
    }

    /// [`Self::image_forward`] of image `v` against the captions `t` of `w`
    /// (one tile), writing their scores into `out[t]`. out: [n_cap of w].
    #[allow(clippy::too_many_arguments)]
    pub(super) fn tile_forward(
        &self,
        v: &[f32],
        w: Words<'_>,
        t: &Range<usize>,
        sv: &mut Saved,
        sc: &mut Scratch,
        out: &mut [f32],
        k: Kernel<'_>,
    ) {
        let tw = w.slice(t.clone(), self.embed());
        self.image_forward(v, tw, sv, sc, &mut out[t.clone()], k);
    }

    /// Forward of one image against all captions of `w`; leaves what the
    /// backward pass needs in `sv`, uses `sc` as scratch, and writes the
    /// scores. With `bf16` (eval only) the three GEMMs run on AMX.
    /// v: [R, d] → out: [n_cap].
    fn image_forward(
        &self,
        v: &[f32],
        w: Words<'_>,
        sv: &mut Saved,
        sc: &mut Scratch,
        out: &mut [f32],
        k: Kernel<'_>,
    ) {
        let s = self.sim_dim();
        let nc = w.n_cap();
        let o0 = w.offsets[0];
        self.local_forward(v, w, sv, sc, k, None);
        // 5. h_j = L2(mean H); s = tanh(w_e·h + b_e).
        resize(&mut sv.h, nc * s);
        let mut hs = vec![0.0f64; s];
        for j in 0..nc {
            let rows = w.offsets[j] - o0..w.offsets[j + 1] - o0;
            hs.fill(0.0);
            for row in sv.t[rows.start * s..rows.end * s].chunks_exact(s) {
                hs.iter_mut().zip(row).for_each(|(a, &x)| *a += x as f64);
            }
            let inv = 1.0 / rows.len() as f64;
            sv.h[j * s..(j + 1) * s]
                .iter_mut()
                .zip(&hs)
                .for_each(|(y, &a)| *y = (a * inv) as f32);
        }
        sv.hnorm = l2norm::forward(&mut sv.h, s);
        let we = &self.eval.weight.value;
        let be = self.eval.bias.as_ref().map_or(0.0, |b| b.value[0]);
        for (j, o) in out.iter_mut().enumerate() {
            let z = dot_f64(&sv.h[j * s..(j + 1) * s], we);
            *o = (z as f32 + be).tanh();
        }
    }

    /// Steps 1–4 of one image against all captions of `w` (the local
    /// alignment shared with the SGRAF heads, docs/method.md §13): leaves the
    /// normalised per-word similarity vectors H in `sv.t` ([N_w, S], norms in
    /// `sv.tnorm`) and the attention state for [`Self::local_backward`].
    /// v: [R, d]; `logits`: step 1's product when already formed for a
    /// group of images (f32 kernel only).
    pub(super) fn local_forward(
        &self,
        v: &[f32],
        w: Words<'_>,
        sv: &mut Saved,
        sc: &mut Scratch,
        k: Kernel<'_>,
        logits: Option<GroupLogits<'_>>,
    ) {
        let d = self.embed();
        let s = self.sim_dim();
        let r = v.len() / d;
        let (nc, nw) = (w.n_cap(), w.n_words());
        let words = &w.data[..nw * d];
        let bf16 = k.bf16();
        // 1. A = W·Vᵀ, LeakyReLU.
        resize(&mut sv.ahat, nw * r);
        if let Some(g) = logits {
            debug_assert!(bf16.is_none(), "group logits are f32");
            for (dst, src) in sv.ahat.chunks_exact_mut(r).zip(g.data.chunks(g.stride)) {
                dst.copy_from_slice(&src[g.col..g.col + r]);
            }
        } else if let Some(b) = bf16 {
            let mp = nw.next_multiple_of(amx::BLOCK);
            let rs = b.vt.n_pad();
            resize(&mut sc.att16, mp * rs);
            amx::gemm(&b.words[..mp * b.vt.k_pad()], mp, b.vt, &mut sc.att16);
            for (dst, src) in sv.ahat.chunks_exact_mut(r).zip(sc.att16.chunks_exact(rs)) {
                dst.copy_from_slice(&src[..r]);
            }
        } else {
            gemm(
                MatMut::new(&mut sv.ahat, nw, r),
                MatRef::new(words, nw, d),
                MatRef::new(v, r, d).t(),
                1.0,
                0.0,
                Par::Seq,
            );
        }
        resize(&mut sv.colnorm, nc * r);
        resize(&mut sv.alpha, nw * r);
        simd::dispatch(
            #[inline(always)]
            || self.attention(w, sv),
        );
        self.context(v, words, &sv.alpha, sc, bf16, false);
        // 4. H = L2(D·W_tᵀ + b_t).
        match k {
            Kernel::Bf16(b) => self.project_bf16(b.proj, nw, sc, &mut sv.t),
            Kernel::F32 { wt } => {
                resize(&mut sv.t, nw * s);
                self.tran.forward_into_t(&sc.dsq, &mut sv.t, wt, Par::Seq);
            }
        }
        sv.tnorm = l2norm::forward(&mut sv.t, s);
    }

    /// Steps 1b–3a of [`Self::local_forward`] on `sv.ahat` (= A): LeakyReLU,
    /// the per-caption column norms (`sv.colnorm`), Â, and α (`sv.alpha`).
    #[inline(always)]
    fn attention(&self, w: Words<'_>, sv: &mut Saved) {
        let r = sv.colnorm.len() / w.n_cap();
        let nc = w.n_cap();
        let o0 = w.offsets[0];
        sv.ahat
            .iter_mut()
            .for_each(|x| *x = if *x > 0.0 { *x } else { *x * LEAKY });
        // 2. Normalise over each caption's words, per region.
        let mut acc = vec![0.0f64; r];
        let mut inv = vec![0.0f64; r];
        for j in 0..nc {
            let rows = w.offsets[j] - o0..w.offsets[j + 1] - o0;
            acc.fill(0.0);
            for row in sv.ahat[rows.start * r..rows.end * r].chunks_exact(r) {
                acc.iter_mut()
                    .zip(row)
                    .for_each(|(a, &x)| *a += x as f64 * x as f64);
            }
            let cn = &mut sv.colnorm[j * r..(j + 1) * r];
            cn.iter_mut()
                .zip(&acc)
                .for_each(|(n, &a)| *n = a.sqrt() as f32);
            // x / (n + eps) as x · (1 / (n + eps)) in f64: bitwise the same
            // (see `l2norm::forward`), one divide per region instead of per value.
            inv.iter_mut()
                .zip(cn.iter())
                .for_each(|(q, &n)| *q = 1.0 / (n + EPS) as f64);
            for row in sv.ahat[rows.start * r..rows.end * r].chunks_exact_mut(r) {
                row.iter_mut()
                    .zip(&inv)
                    .for_each(|(x, &q)| *x = (*x as f64 * q) as f32);
            }
        }
        // 3. α = softmax(λ·Â) over regions (then C = L2(α·V), D = (C − W)²).
        for (a, row) in sv.alpha.chunks_exact_mut(r).zip(sv.ahat.chunks_exact(r)) {
            let m = row.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x)) * self.smooth;
            // The exponentials vectorise; the f64 sum stays in order.
            for (y, &x) in a.iter_mut().zip(row) {
                *y = fastmath::exp(x * self.smooth - m);
            }
            let sum = a.iter().fold(0.0f64, |s, &y| s + y as f64);
            let inv = (1.0 / sum) as f32;
            a.iter_mut().for_each(|y| *y *= inv);
        }
    }

    /// Backward of one image against the captions of `w` from its forward
    /// state `sv` and scores `sims`. ds: [n_cap] (d loss / d s_ij);
    /// accumulates into dv: [R, d], dwords: [N_w, d] and `acc`. Rebuilds C
    /// and D (one GEMM) instead of keeping them.
    #[allow(clippy::too_many_arguments)]
    fn image_backward(
        &self,
        v: &[f32],
        w: Words<'_>,
        sv: &Saved,
        sc: &mut Scratch,
        sims: &[f32],
        ds: &[f32],
        dv: &mut [f32],
        dwords: &mut [f32],
        acc: &mut Acc,
    ) {
        let s = self.sim_dim();
        let nc = w.n_cap();
        let o0 = w.offsets[0];
        let we = &self.eval.weight.value;
        // 5. tanh, w_e, L2 of h_j, mean.
        resize(&mut sc.dh, nc * s);
        for j in 0..nc {
            let dz = ds[j] * (1.0 - sims[j] * sims[j]);
            let hj = &sv.h[j * s..(j + 1) * s];
            eval_linear_backward(Some(acc), we, dz, hj, &mut sc.dh[j * s..(j + 1) * s]);
        }
        l2norm::backward(&sv.h, &sv.hnorm, &mut sc.dh, s);
        resize(&mut sc.dt, w.n_words() * s);
        for j in 0..nc {
            let rows = w.offsets[j] - o0..w.offsets[j + 1] - o0;
            let inv = 1.0 / rows.len() as f32;
            let dh = &sc.dh[j * s..(j + 1) * s];
            for row in sc.dt[rows.start * s..rows.end * s].chunks_exact_mut(s) {
                row.iter_mut().zip(dh).for_each(|(g, &x)| *g = x * inv);
            }
        }
        self.local_backward(v, w, sv, sc, dv, dwords, acc);
    }

    /// Backward of [`Self::local_forward`] from `sc.dt` (d loss / d H,
    /// [N_w, S], consumed): accumulates into dv: [R, d], dwords: [N_w, d]
    /// and `acc.tran_*`. Rebuilds C and D (one GEMM) instead of keeping them.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn local_backward(
        &self,
        v: &[f32],
        w: Words<'_>,
        sv: &Saved,
        sc: &mut Scratch,
        dv: &mut [f32],
        dwords: &mut [f32],
        acc: &mut Acc,
    ) {
        let d = self.embed();
        let s = self.sim_dim();
        let r = v.len() / d;
        let (nc, nw) = (w.n_cap(), w.n_words());
        let o0 = w.offsets[0];
        let words = &w.data[..nw * d];
        self.context(v, words, &sv.alpha, sc, None, true);
        // 4. L2 of H, W_t, the square.
        l2norm::backward(&sv.t, &sv.tnorm, &mut sc.dt, s);
        gemm(
            MatMut::new(&mut acc.tran_w, s, d),
            MatRef::new(&sc.dt, nw, s).t(),
            MatRef::new(&sc.dsq, nw, d),
            1.0,
            1.0,
            Par::Seq,
        );
        for row in sc.dt.chunks_exact(s) {
            acc.tran_b
                .iter_mut()
                .zip(row)
                .for_each(|(g, &x)| *g += x as f64);
        }
        // dD overwrites D.
        gemm(
            MatMut::new(&mut sc.dsq, nw, d),
            MatRef::new(&sc.dt, nw, s),
            MatRef::new(&self.tran.weight.value, s, d),
            1.0,
            0.0,
            Par::Seq,
        );
        // dC = 2(C − W)·dD (dW gets the opposite), then the L2 of C, one
        // pass per row while it is in L1.
        for ((((g, c), w), dw), &n) in sc
            .dsq
            .chunks_exact_mut(d)
            .zip(sc.c.chunks_exact(d))
            .zip(words.chunks_exact(d))
            .zip(dwords.chunks_exact_mut(d))
            .zip(&sc.cnorm)
        {
            for (((g, &c), &x), dw) in g.iter_mut().zip(c).zip(w).zip(dw.iter_mut()) {
                let v = 2.0 * (c - x) * *g;
                *g = v;
                *dw -= v;
            }
            l2norm::backward_row(c, n, g);
        }
        // 3. α·V, softmax.
        resize(&mut sc.dalpha, nw * r);
        gemm(
            MatMut::new(&mut sc.dalpha, nw, r),
            MatRef::new(&sc.dsq, nw, d),
            MatRef::new(v, r, d).t(),
            1.0,
            0.0,
            Par::Seq,
        );
        gemm(
            MatMut::new(dv, r, d),
            MatRef::new(&sv.alpha, nw, r).t(),
            MatRef::new(&sc.dsq, nw, d),
            1.0,
            1.0,
            Par::Seq,
        );
        softmax_backward(&sv.alpha, &mut sc.dalpha, r);
        sc.dalpha.iter_mut().for_each(|g| *g *= self.smooth);
        // 2. Normalisation over each caption's words (per region).
        let mut dot = vec![0.0f64; r];
        let mut coef = vec![(0.0f64, 0.0f64); r];
        for j in 0..nc {
            let rows = w.offsets[j] - o0..w.offsets[j + 1] - o0;
            let span = rows.start * r..rows.end * r;
            dot.fill(0.0);
            for (yr, gr) in sv.ahat[span.clone()]
                .chunks_exact(r)
                .zip(sc.dalpha[span.clone()].chunks_exact(r))
            {
                dot.iter_mut()
                    .zip(yr.iter().zip(gr))
                    .for_each(|(a, (&y, &g))| *a += y as f64 * g as f64);
            }
            let cn = &sv.colnorm[j * r..(j + 1) * r];
            for ((c, &n), &dt) in coef.iter_mut().zip(cn).zip(&dot) {
                let den = (n + EPS) as f64;
                let kk = if n > 0.0 { dt * den / n as f64 } else { 0.0 };
                *c = (1.0 / den, kk);
            }
            for (yr, gr) in sv.ahat[span.clone()]
                .chunks_exact(r)
                .zip(sc.dalpha[span].chunks_exact_mut(r))
            {
                for ((g, &y), &(inv, kk)) in gr.iter_mut().zip(yr).zip(&coef) {
                    let dp = (*g as f64 - y as f64 * kk) * inv;
                    // 1. LeakyReLU: Â has the sign of A.
                    *g = if y > 0.0 {
                        dp as f32
                    } else {
                        (dp * LEAKY as f64) as f32
                    };
                }
            }
        }
        // 1. A = W·Vᵀ.
        gemm(
            MatMut::new(dwords, nw, d),
            MatRef::new(&sc.dalpha, nw, r),
            MatRef::new(v, r, d),
            1.0,
            1.0,
            Par::Seq,
        );
        gemm(
            MatMut::new(dv, r, d),
            MatRef::new(&sc.dalpha, nw, r).t(),
            MatRef::new(words, nw, d),
            1.0,
            1.0,
            Par::Seq,
        );
    }

    /// The backward pass of image `v` for the captions `sel` of `w` only
    /// (the others have a zero gradient, [`crate::model::sparse_pairs`]):
    /// recomputes their forward state in a compact batch, back-propagates
    /// it, and adds the word gradients into dwords: [N_w of w, d].
    /// sims, ds: the image's row [n_cap of w]; wt: [`Self::projection_t`].
    #[allow(clippy::too_many_arguments)]
    fn compact_backward(
        &self,
        wt: &[f32],
        v: &[f32],
        w: Words<'_>,
        sel: &[usize],
        sims: &[f32],
        ds: &[f32],
        sc: &mut Scratch,
        dv: &mut [f32],
        dwords: &mut [f32],
        acc: &mut Acc,
    ) {
        if sel.is_empty() {
            return;
        }
        let d = self.embed();
        let cw = CompactWords::gather(w, sel, d);
        let cv = cw.view();
        let (sims, ds) = (gather_rows(sims, sel, 1), gather_rows(ds, sel, 1));
        let mut dwc = vec![0.0f32; cv.n_words() * d];
        let mut sv = Saved::default();
        let mut out = vec![0.0f32; sel.len()];
        for t in cv.tiles(self.tile_words) {
            self.tile_forward(v, cv, &t, &mut sv, sc, &mut out, Kernel::F32 { wt });
            let rows = cv.word_rows(&t);
            self.image_backward(
                v,
                cv.slice(t.clone(), d),
                &sv,
                sc,
                &sims[t.clone()],
                &ds[t],
                dv,
                &mut dwc[rows.start * d..rows.end * d],
                acc,
            );
        }
        cw.scatter_add(&dwc, dwords, d);
    }

    /// Image `v` against one caption (`words`) through the pass the block
    /// scorer runs (`ScanScorer`: [`Self::tile_forward`], f32 kernel), keeping
    /// its attention and per-word vectors. v: [R, d]; words: [n_w, d], n_w ≥ 1.
    pub fn trace_pair(&self, v: &[f32], words: &[f32]) -> PairTrace {
        let offsets = [0, words.len() / self.embed()];
        let w = Words {
            data: words,
            offsets: &offsets,
        };
        let (mut sv, mut sc) = (Saved::default(), Scratch::default());
        let wt = self.projection_t();
        let mut out = [0.0f32];
        let k = Kernel::F32 { wt: &wt };
        self.tile_forward(v, w, &(0..1), &mut sv, &mut sc, &mut out, k);
        PairTrace {
            score: out[0],
            attention: sv.alpha,
            word_vectors: sv.t,
            pooled_norm: sv.hnorm[0],
        }
    }

    /// Scores every image of `img` against every caption of `w`, in parallel
    /// over images, keeping nothing. img: [n_img, R, d] → [n_img, n_cap].
    pub fn forward(&self, img: &[f32], n_regions: usize, w: Words<'_>) -> Vec<f32> {
        let d = self.embed();
        let nc = w.n_cap();
        let mut out = vec![0.0f32; img.len() / (n_regions * d) * nc];
        if nc == 0 {
            return out;
        }
        let tiles = w.tiles(self.tile_words);
        let wt = self.projection_t();
        out.par_chunks_mut(nc)
            .zip(img.par_chunks(n_regions * d))
            .for_each_init(
                || (Saved::default(), Scratch::default()),
                |(sv, sc), (o, v)| {
                    for t in &tiles {
                        self.tile_forward(v, w, t, sv, sc, o, Kernel::F32 { wt: &wt });
                    }
                },
            );
        out
    }

    /// [`Self::forward`] that also keeps each image's forward state for
    /// [`Self::backward`]. img: [n_img, R, d] → ([n_img, n_cap], cache).
    pub fn forward_train(
        &self,
        img: &[f32],
        n_regions: usize,
        w: Words<'_>,
    ) -> (Vec<f32>, HeadCache) {
        let d = self.embed();
        let nc = w.n_cap();
        let n_img = img.len() / (n_regions * d);
        let mut out = vec![0.0f32; n_img * nc];
        let tiles = w.tiles(self.tile_words);
        let nt = tiles.len();
        let mut saved: Vec<Saved> = (0..n_img * nt).map(|_| Saved::default()).collect();
        let wt = self.projection_t();
        if nc > 0 {
            out.par_chunks_mut(nc)
                .zip(img.par_chunks(n_regions * d))
                .zip(saved.par_chunks_mut(nt))
                .for_each_init(Scratch::default, |sc, ((o, v), svs)| {
                    for (t, sv) in tiles.iter().zip(svs) {
                        self.tile_forward(v, w, t, sv, sc, o, Kernel::F32 { wt: &wt });
                    }
                });
        }
        (out, HeadCache { saved })
    }

    /// Back-propagates `d_sims: [n_img, n_cap]` through
    /// [`Self::forward_train`] (whose outputs are `sims` and `cache`).
    /// Accumulates `sim_enc.*` gradients; returns (d img [n_img, R, d],
    /// d words [N_w, d]).
    pub fn backward(
        &mut self,
        img: &[f32],
        n_regions: usize,
        w: Words<'_>,
        cache: &HeadCache,
        sims: &[f32],
        d_sims: &[f32],
    ) -> (Vec<f32>, Vec<f32>) {
        let d = self.embed();
        let s = self.sim_dim();
        let (nc, nw) = (w.n_cap(), w.n_words());
        let per = n_regions * d;
        let n_img = img.len() / per;
        let tiles = w.tiles(self.tile_words);
        let nt = tiles.len();
        cache.check("scan head", sims, d_sims, n_img, nc, nt);
        let wt = self.projection_t();
        let mut dimg = vec![0.0f32; img.len()];
        let chunk = n_img.div_ceil(rayon::current_num_threads().max(1)).max(1);
        let this = &*self;
        let accs: Vec<(Acc, Vec<f32>)> = dimg
            .par_chunks_mut(chunk * per)
            .zip(cache.saved.par_chunks(chunk * nt))
            .enumerate()
            .map(|(c, (dimg_c, saved_c))| {
                let mut acc = Acc::new(d, s);
                let mut dwords = vec![0.0f32; nw * d];
                let mut sc = Scratch::default();
                for (ii, (dv, svs)) in dimg_c
                    .chunks_exact_mut(per)
                    .zip(saved_c.chunks_exact(nt))
                    .enumerate()
                {
                    let i = c * chunk + ii;
                    let v = &img[i * per..(i + 1) * per];
                    let row = i * nc..(i + 1) * nc;
                    match this.selection(&d_sims[row.clone()]) {
                        Selection::Dense => {
                            for (t, sv) in tiles.iter().zip(svs) {
                                let rows = w.word_rows(t);
                                let (a, b) = (i * nc + t.start, i * nc + t.end);
                                this.image_backward(
                                    v,
                                    w.slice(t.clone(), d),
                                    sv,
                                    &mut sc,
                                    &sims[a..b],
                                    &d_sims[a..b],
                                    dv,
                                    &mut dwords[rows.start * d..rows.end * d],
                                    &mut acc,
                                );
                            }
                        }
                        Selection::Sparse(sel) => this.compact_backward(
                            &wt,
                            v,
                            w,
                            &sel,
                            &sims[row.clone()],
                            &d_sims[row],
                            &mut sc,
                            dv,
                            &mut dwords,
                            &mut acc,
                        ),
                    }
                }
                (acc, dwords)
            })
            .collect();
        let mut dwords = vec![0.0f32; nw * d];
        let mut total = Acc::new(d, s);
        for (a, dw) in &accs {
            dwords.iter_mut().zip(dw).for_each(|(x, &y)| *x += y);
            total.add(a);
        }
        total.apply(self);
        (dimg, dwords)
    }
}

fn add(dst: &mut [f32], src: impl Iterator<Item = f32>) {
    dst.iter_mut().zip(src).for_each(|(g, x)| *g += x);
}

impl Module for ScanHead {
    fn params(&self) -> Vec<&Param> {
        let mut v = self.tran.params();
        v.extend(self.eval.params());
        v
    }
    fn params_mut(&mut self) -> Vec<&mut Param> {
        let mut v = self.tran.params_mut();
        v.extend(self.eval.params_mut());
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::rng::seeded;
    use crate::engine::testutil::{assert_outputs_close, rand_vec};

    /// Scores and every gradient of a 60-caption batch (≈ 420 words) with the
    /// default tiling (several tiles) and with one tile per image.
    fn run(tile_words: usize) -> Vec<Vec<f32>> {
        run_with(tile_words, false, |_| 1.0)
    }

    /// [`run`] with the sparse backward on or off and the loss gradient
    /// of pair (image i, caption j) scaled by `keep(i·60 + j)`.
    fn run_with(tile_words: usize, sparse: bool, keep: impl Fn(usize) -> f32) -> Vec<Vec<f32>> {
        let (d, s, r, n_img) = (16, 8, 5, 3);
        let mut head = ScanHead::new(d, s, 9.0, &mut seeded(7));
        head.tile_words = tile_words;
        head.set_sparse(sparse);
        let mut offsets = vec![0usize];
        for j in 0..60 {
            offsets.push(offsets[j] + 3 + (j * 7) % 9);
        }
        let nw = offsets[60];
        let words = rand_vec(nw * d, 1, 1.0);
        let img = rand_vec(n_img * r * d, 2, 1.0);
        let w = Words {
            data: &words,
            offsets: &offsets,
        };
        let (sims, cache) = head.forward_train(&img, r, w);
        assert_eq!(sims, head.forward(&img, r, w), "forward_train = forward");
        let mut ds = rand_vec(sims.len(), 3, 1.0);
        ds.iter_mut().enumerate().for_each(|(k, g)| *g *= keep(k));
        let (dimg, dwords) = head.backward(&img, r, w, &cache, &sims, &ds);
        let mut out = vec![sims, dimg, dwords];
        out.extend(head.params().iter().map(|p| p.grad.clone()));
        out
    }

    #[test]
    fn tiling_changes_nothing_but_rounding() {
        let tiled = run(TILE_WORDS.min(64));
        let whole = run(usize::MAX);
        assert_outputs_close(&tiled, &whole, 1e-6, "tiled vs whole");
        // Scores depend only on their own caption: identical bits.
        assert_eq!(tiled[0], whole[0]);
    }

    /// A hardest-negative-like gradient: a few captions per image (image 1
    /// none at all), the rest exactly zero. The sparse pass must equal the
    /// full one; the gradients must also be non-trivial (not all zero).
    #[test]
    fn sparse_backward_equals_the_full_pass() {
        let keep = |k: usize| {
            let (i, j) = (k / 60, k % 60);
            let hit = i != 1 && (j == i || j == 17 + i || j == 59 - 3 * i);
            if hit { 1.0 } else { 0.0 }
        };
        for tile in [TILE_WORDS.min(64), usize::MAX] {
            let full = run_with(tile, false, keep);
            let sparse = run_with(tile, true, keep);
            assert_outputs_close(&sparse, &full, 1e-6, &format!("tile {tile}"));
            for (k, g) in full.iter().enumerate().skip(1) {
                assert!(g.iter().any(|&x| x != 0.0), "output {k} is all zero");
            }
            // Caption 1 (words 3..13, d = 16) is reached by no image.
            assert!(sparse[2][3 * 16..13 * 16].iter().all(|&x| x == 0.0));
        }
        // A dense gradient takes the full path: identical bits.
        assert_eq!(run_with(64, true, |_| 1.0), run_with(64, false, |_| 1.0));
    }
}
