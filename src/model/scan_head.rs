//! The scan-ave similarity head (spec §5.3) as one fused, tiled kernel,
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
//! Three GEMMs with M = N_w per image in the forward pass, six in the
//! backward. The backward recomputes an image's intermediates instead of
//! storing `B²·L·d` tensors: between passes nothing is kept but the inputs.
//! Images run in parallel (rayon) in as many contiguous chunks as the pool has
//! threads, each chunk accumulating its own parameter and word gradients,
//! reduced in chunk order — bitwise deterministic for a fixed thread count.
//! The same kernel (forward only) scores evaluation blocks ([`ScanScorer`]).

use std::ops::Range;

use rand::Rng;
use rayon::prelude::*;

use crate::engine::activation::softmax_backward;
use crate::engine::gemm::{MatMut, MatRef, Par, gemm};
use crate::engine::l2norm::{self, EPS};
use crate::engine::linear::Linear;
use crate::engine::param::{Module, Param};
use crate::eval::sharded::BlockScorer;

/// Slope of the attention LeakyReLU.
const LEAKY: f32 = 0.1;

/// `sim_enc`: `sim_tran_w` (d → S) and `sim_eval_w` (S → 1), plus λ.
#[derive(Debug, Clone, PartialEq)]
pub struct ScanHead {
    /// `sim_enc.sim_tran_w`: weight [S, d], bias [S].
    pub tran: Linear,
    /// `sim_enc.sim_eval_w`: weight [1, S], bias [1].
    pub eval: Linear,
    /// Softmax smoothing λ (9.0).
    pub smooth: f32,
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
    fn n_cap(&self) -> usize {
        self.offsets.len() - 1
    }
    fn n_words(&self) -> usize {
        self.offsets[self.n_cap()] - self.offsets[0]
    }
}

/// Per-thread buffers of one image's pass (resized as needed).
#[derive(Debug, Default)]
struct Work {
    /// Â (normalised attention), then reused. [N_w, R]
    ahat: Vec<f32>,
    /// α (softmax). [N_w, R]
    alpha: Vec<f32>,
    /// Column norms per (caption, region). [n_cap, R]
    colnorm: Vec<f32>,
    /// C (normalised context). [N_w, d]
    c: Vec<f32>,
    cnorm: Vec<f32>,
    /// C − W. [N_w, d]
    diff: Vec<f32>,
    /// D = (C − W)², then dD / dC0 in the backward. [N_w, d]
    dsq: Vec<f32>,
    /// H (normalised). [N_w, S]
    t: Vec<f32>,
    tnorm: Vec<f32>,
    /// h_j (normalised). [n_cap, S]
    h: Vec<f32>,
    hnorm: Vec<f32>,
    /// Backward scratch: dT [N_w, S], dα [N_w, R], dh [n_cap, S].
    dt: Vec<f32>,
    dalpha: Vec<f32>,
    dh: Vec<f32>,
}

/// Sets `v`'s length to `n` without clearing it: every caller overwrites all
/// `n` values before reading them (GEMMs with β = 0 or element-wise writes), so
/// zeroing would only cost a memset per image (~5 % of a training step).
fn resize(v: &mut Vec<f32>, n: usize) {
    if v.len() < n {
        v.resize(n, 0.0);
    } else {
        v.truncate(n);
    }
}

/// Gradients accumulated by one chunk of images.
struct Acc {
    tran_w: Vec<f32>,
    tran_b: Vec<f64>,
    eval_w: Vec<f64>,
    eval_b: f64,
    /// d loss / d words. [N_w, d]
    words: Vec<f32>,
}

impl ScanHead {
    /// Xavier-uniform `sim_tran_w` then `sim_eval_w` (spec §5.3), biases 0.
    pub fn new<R: Rng + ?Sized>(embed: usize, sim_dim: usize, smooth: f32, rng: &mut R) -> Self {
        ScanHead {
            tran: Linear::xavier("sim_enc.sim_tran_w", embed, sim_dim, true, rng),
            eval: Linear::xavier("sim_enc.sim_eval_w", sim_dim, 1, true, rng),
            smooth,
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

    /// Forward of one image against all captions of `w`; leaves every
    /// intermediate in `k` and writes the scores. v: [R, d] → out: [n_cap].
    fn image_forward(&self, v: &[f32], w: Words<'_>, k: &mut Work, out: &mut [f32]) {
        let d = self.embed();
        let s = self.sim_dim();
        let r = v.len() / d;
        let (nc, nw) = (w.n_cap(), w.n_words());
        let o0 = w.offsets[0];
        let words = &w.data[..nw * d];
        // 1. A = W·Vᵀ, LeakyReLU.
        resize(&mut k.ahat, nw * r);
        gemm(
            MatMut::new(&mut k.ahat, nw, r),
            MatRef::new(words, nw, d),
            MatRef::new(v, r, d).t(),
            1.0,
            0.0,
            Par::Seq,
        );
        k.ahat
            .iter_mut()
            .for_each(|x| *x = if *x > 0.0 { *x } else { *x * LEAKY });
        // 2. Normalise over each caption's words, per region.
        resize(&mut k.colnorm, nc * r);
        let mut acc = vec![0.0f64; r];
        for j in 0..nc {
            let rows = w.offsets[j] - o0..w.offsets[j + 1] - o0;
            acc.fill(0.0);
            for row in k.ahat[rows.start * r..rows.end * r].chunks_exact(r) {
                acc.iter_mut()
                    .zip(row)
                    .for_each(|(a, &x)| *a += x as f64 * x as f64);
            }
            let cn = &mut k.colnorm[j * r..(j + 1) * r];
            cn.iter_mut()
                .zip(&acc)
                .for_each(|(n, &a)| *n = a.sqrt() as f32);
            // x / (n + eps) as x · (1 / (n + eps)) in f64: bitwise the same
            // (see `l2norm::forward`), one divide per region instead of per value.
            let inv: Vec<f64> = cn.iter().map(|&n| 1.0 / (n + EPS) as f64).collect();
            for row in k.ahat[rows.start * r..rows.end * r].chunks_exact_mut(r) {
                row.iter_mut()
                    .zip(&inv)
                    .for_each(|(x, &q)| *x = (*x as f64 * q) as f32);
            }
        }
        // 3. α = softmax(λ·Â) over regions; C = L2(α·V).
        resize(&mut k.alpha, nw * r);
        for (a, row) in k.alpha.chunks_exact_mut(r).zip(k.ahat.chunks_exact(r)) {
            let m = row.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x)) * self.smooth;
            let mut sum = 0.0f64;
            for (y, &x) in a.iter_mut().zip(row) {
                *y = (x * self.smooth - m).exp();
                sum += *y as f64;
            }
            let inv = (1.0 / sum) as f32;
            a.iter_mut().for_each(|y| *y *= inv);
        }
        resize(&mut k.c, nw * d);
        gemm(
            MatMut::new(&mut k.c, nw, d),
            MatRef::new(&k.alpha, nw, r),
            MatRef::new(v, r, d),
            1.0,
            0.0,
            Par::Seq,
        );
        k.cnorm = l2norm::forward(&mut k.c, d);
        // 4. D = (C − W)²; H = L2(D·W_tᵀ + b_t).
        resize(&mut k.diff, nw * d);
        resize(&mut k.dsq, nw * d);
        for ((df, sq), (&c, &x)) in k
            .diff
            .iter_mut()
            .zip(k.dsq.iter_mut())
            .zip(k.c.iter().zip(words))
        {
            *df = c - x;
            *sq = *df * *df;
        }
        resize(&mut k.t, nw * s);
        self.tran.forward_into(&k.dsq, &mut k.t, Par::Seq);
        k.tnorm = l2norm::forward(&mut k.t, s);
        // 5. h_j = L2(mean H); s = tanh(w_e·h + b_e).
        resize(&mut k.h, nc * s);
        let mut hs = vec![0.0f64; s];
        for j in 0..nc {
            let rows = w.offsets[j] - o0..w.offsets[j + 1] - o0;
            hs.fill(0.0);
            for row in k.t[rows.start * s..rows.end * s].chunks_exact(s) {
                hs.iter_mut().zip(row).for_each(|(a, &x)| *a += x as f64);
            }
            let inv = 1.0 / rows.len() as f64;
            k.h[j * s..(j + 1) * s]
                .iter_mut()
                .zip(&hs)
                .for_each(|(y, &a)| *y = (a * inv) as f32);
        }
        k.hnorm = l2norm::forward(&mut k.h, s);
        let we = &self.eval.weight.value;
        let be = self.eval.bias.as_ref().map_or(0.0, |b| b.value[0]);
        for (j, o) in out.iter_mut().enumerate() {
            let z: f64 = k.h[j * s..(j + 1) * s]
                .iter()
                .zip(we)
                .map(|(&a, &b)| a as f64 * b as f64)
                .sum();
            *o = (z as f32 + be).tanh();
        }
    }

    /// Backward of one image, after [`Self::image_forward`] filled `k` and
    /// `sims`. ds: [n_cap] (d loss / d s_ij); writes dv: [R, d] and
    /// accumulates into `acc`.
    #[allow(clippy::too_many_arguments)]
    fn image_backward(
        &self,
        v: &[f32],
        w: Words<'_>,
        k: &mut Work,
        sims: &[f32],
        ds: &[f32],
        dv: &mut [f32],
        acc: &mut Acc,
    ) {
        let d = self.embed();
        let s = self.sim_dim();
        let r = v.len() / d;
        let (nc, nw) = (w.n_cap(), w.n_words());
        let o0 = w.offsets[0];
        let words = &w.data[..nw * d];
        let we = &self.eval.weight.value;
        // 5. tanh, w_e, L2 of h_j, mean.
        resize(&mut k.dh, nc * s);
        for j in 0..nc {
            let dz = ds[j] * (1.0 - sims[j] * sims[j]);
            acc.eval_b += dz as f64;
            let hj = &k.h[j * s..(j + 1) * s];
            acc.eval_w
                .iter_mut()
                .zip(hj)
                .for_each(|(g, &x)| *g += dz as f64 * x as f64);
            k.dh[j * s..(j + 1) * s]
                .iter_mut()
                .zip(we)
                .for_each(|(g, &x)| *g = dz * x);
        }
        l2norm::backward(&k.h, &k.hnorm, &mut k.dh, s);
        resize(&mut k.dt, nw * s);
        for j in 0..nc {
            let rows = w.offsets[j] - o0..w.offsets[j + 1] - o0;
            let inv = 1.0 / rows.len() as f32;
            let dh = &k.dh[j * s..(j + 1) * s];
            for row in k.dt[rows.start * s..rows.end * s].chunks_exact_mut(s) {
                row.iter_mut().zip(dh).for_each(|(g, &x)| *g = x * inv);
            }
        }
        // 4. L2 of H, W_t, the square.
        l2norm::backward(&k.t, &k.tnorm, &mut k.dt, s);
        gemm(
            MatMut::new(&mut acc.tran_w, s, d),
            MatRef::new(&k.dt, nw, s).t(),
            MatRef::new(&k.dsq, nw, d),
            1.0,
            1.0,
            Par::Seq,
        );
        for row in k.dt.chunks_exact(s) {
            acc.tran_b
                .iter_mut()
                .zip(row)
                .for_each(|(g, &x)| *g += x as f64);
        }
        // dD overwrites D.
        gemm(
            MatMut::new(&mut k.dsq, nw, d),
            MatRef::new(&k.dt, nw, s),
            MatRef::new(&self.tran.weight.value, s, d),
            1.0,
            0.0,
            Par::Seq,
        );
        // dC = 2(C − W)·dD; dW gets the opposite.
        for ((g, &df), dw) in k.dsq.iter_mut().zip(&k.diff).zip(acc.words.iter_mut()) {
            let x = 2.0 * df * *g;
            *g = x;
            *dw -= x;
        }
        // 3. L2 of C, α·V, softmax.
        l2norm::backward(&k.c, &k.cnorm, &mut k.dsq, d);
        resize(&mut k.dalpha, nw * r);
        gemm(
            MatMut::new(&mut k.dalpha, nw, r),
            MatRef::new(&k.dsq, nw, d),
            MatRef::new(v, r, d).t(),
            1.0,
            0.0,
            Par::Seq,
        );
        gemm(
            MatMut::new(dv, r, d),
            MatRef::new(&k.alpha, nw, r).t(),
            MatRef::new(&k.dsq, nw, d),
            1.0,
            0.0,
            Par::Seq,
        );
        softmax_backward(&k.alpha, &mut k.dalpha, r);
        k.dalpha.iter_mut().for_each(|g| *g *= self.smooth);
        // 2. Normalisation over each caption's words (per region).
        let mut dot = vec![0.0f64; r];
        for j in 0..nc {
            let rows = w.offsets[j] - o0..w.offsets[j + 1] - o0;
            let span = rows.start * r..rows.end * r;
            dot.fill(0.0);
            for (yr, gr) in k.ahat[span.clone()]
                .chunks_exact(r)
                .zip(k.dalpha[span.clone()].chunks_exact(r))
            {
                dot.iter_mut()
                    .zip(yr.iter().zip(gr))
                    .for_each(|(a, (&y, &g))| *a += y as f64 * g as f64);
            }
            let cn = &k.colnorm[j * r..(j + 1) * r];
            let coef: Vec<(f64, f64)> = cn
                .iter()
                .zip(&dot)
                .map(|(&n, &dt)| {
                    let den = (n + EPS) as f64;
                    let kk = if n > 0.0 { dt * den / n as f64 } else { 0.0 };
                    (1.0 / den, kk)
                })
                .collect();
            for (yr, gr) in k.ahat[span.clone()]
                .chunks_exact(r)
                .zip(k.dalpha[span].chunks_exact_mut(r))
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
            MatMut::new(&mut acc.words, nw, d),
            MatRef::new(&k.dalpha, nw, r),
            MatRef::new(v, r, d),
            1.0,
            1.0,
            Par::Seq,
        );
        gemm(
            MatMut::new(dv, r, d),
            MatRef::new(&k.dalpha, nw, r).t(),
            MatRef::new(words, nw, d),
            1.0,
            1.0,
            Par::Seq,
        );
    }

    /// Scores every image of `img` against every caption of `w`, in parallel
    /// over images. img: [n_img, R, d] → [n_img, n_cap].
    pub fn forward(&self, img: &[f32], n_regions: usize, w: Words<'_>) -> Vec<f32> {
        let d = self.embed();
        let nc = w.n_cap();
        let mut out = vec![0.0f32; img.len() / (n_regions * d) * nc];
        if nc == 0 {
            return out;
        }
        out.par_chunks_mut(nc)
            .zip(img.par_chunks(n_regions * d))
            .for_each_init(Work::default, |k, (o, v)| self.image_forward(v, w, k, o));
        out
    }

    /// Back-propagates `d_sims: [n_img, n_cap]` through [`Self::forward`]
    /// (whose output is `sims`), recomputing each image's intermediates.
    /// Accumulates `sim_enc.*` gradients; returns (d img [n_img, R, d],
    /// d words [N_w, d]).
    pub fn backward(
        &mut self,
        img: &[f32],
        n_regions: usize,
        w: Words<'_>,
        sims: &[f32],
        d_sims: &[f32],
    ) -> (Vec<f32>, Vec<f32>) {
        let d = self.embed();
        let s = self.sim_dim();
        let (nc, nw) = (w.n_cap(), w.n_words());
        let per = n_regions * d;
        let n_img = img.len() / per;
        assert!(
            sims.len() == n_img * nc && d_sims.len() == n_img * nc,
            "scan head backward: sims {} and d_sims {} for [{n_img}, {nc}]",
            sims.len(),
            d_sims.len()
        );
        let mut dimg = vec![0.0f32; img.len()];
        let chunk = n_img.div_ceil(rayon::current_num_threads().max(1)).max(1);
        let this = &*self;
        let accs: Vec<Acc> = dimg
            .par_chunks_mut(chunk * per)
            .enumerate()
            .map(|(c, dimg_c)| {
                let mut acc = Acc {
                    tran_w: vec![0.0; s * d],
                    tran_b: vec![0.0; s],
                    eval_w: vec![0.0; s],
                    eval_b: 0.0,
                    words: vec![0.0; nw * d],
                };
                let mut k = Work::default();
                let mut row = vec![0.0f32; nc];
                for (ii, dv) in dimg_c.chunks_exact_mut(per).enumerate() {
                    let i = c * chunk + ii;
                    let v = &img[i * per..(i + 1) * per];
                    this.image_forward(v, w, &mut k, &mut row);
                    this.image_backward(
                        v,
                        w,
                        &mut k,
                        &sims[i * nc..(i + 1) * nc],
                        &d_sims[i * nc..(i + 1) * nc],
                        dv,
                        &mut acc,
                    );
                }
                acc
            })
            .collect();
        let mut dwords = vec![0.0f32; nw * d];
        let mut tran_b = vec![0.0f64; s];
        let mut eval_w = vec![0.0f64; s];
        let mut eval_b = 0.0f64;
        let mut tran_w = vec![0.0f32; s * d];
        for a in &accs {
            dwords.iter_mut().zip(&a.words).for_each(|(x, &y)| *x += y);
            tran_w.iter_mut().zip(&a.tran_w).for_each(|(x, &y)| *x += y);
            tran_b.iter_mut().zip(&a.tran_b).for_each(|(x, &y)| *x += y);
            eval_w.iter_mut().zip(&a.eval_w).for_each(|(x, &y)| *x += y);
            eval_b += a.eval_b;
        }
        add(&mut self.tran.weight.grad, tran_w.iter().copied());
        if let Some(b) = &mut self.tran.bias {
            add(&mut b.grad, tran_b.iter().map(|&x| x as f32));
        }
        add(&mut self.eval.weight.grad, eval_w.iter().map(|&x| x as f32));
        if let Some(b) = &mut self.eval.bias {
            b.grad[0] += eval_b as f32;
        }
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

/// Block scorer over encoded evaluation data: images [n_img, R, d] and the
/// stacked words of all captions. Each score depends only on its image and
/// caption (the kernel's per-caption reductions never cross captions), so
/// results do not depend on the block shape.
#[derive(Debug, Clone, Copy)]
pub struct ScanScorer<'a> {
    head: &'a ScanHead,
    img: &'a [f32],
    n_regions: usize,
    words: Words<'a>,
}

impl<'a> ScanScorer<'a> {
    /// img: [n_img, R, d]; words: all captions (`offsets[0] = 0`).
    pub fn new(head: &'a ScanHead, img: &'a [f32], n_regions: usize, words: Words<'a>) -> Self {
        ScanScorer {
            head,
            img,
            n_regions,
            words,
        }
    }
}

impl BlockScorer for ScanScorer<'_> {
    fn n_images(&self) -> usize {
        self.img.len() / (self.n_regions * self.head.embed())
    }
    fn n_captions(&self) -> usize {
        self.words.n_cap()
    }
    fn score_block(&self, images: Range<usize>, captions: Range<usize>, out: &mut [f32]) {
        let d = self.head.embed();
        let per = self.n_regions * d;
        let offsets = &self.words.offsets[captions.start..=captions.end];
        let w = Words {
            data: &self.words.data[offsets[0] * d..],
            offsets,
        };
        let nc = captions.len();
        let mut k = Work::default();
        for (ii, o) in images.zip(out.chunks_exact_mut(nc)) {
            self.head
                .image_forward(&self.img[ii * per..(ii + 1) * per], w, &mut k, o);
        }
    }
}
