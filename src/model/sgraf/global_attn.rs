//! SGRAF's global representations by self-attention (docs/method.md §13.1):
//! `VisualSA` over an image's regions and `TextSA` over a caption's words.
//! PyTorch: `GlobalAttention` in `tools/reference/dbl_ref/sgraf.py`.
//!
//! For one item with rows `x_k` (k = 1..n, L2-normalised embeddings) and
//! their mean `x̄`:
//! - `l_k = drop(tanh(bn_R(W_l·x_k + b_l)))` (bn over the region index, images only;
//!   both batch norms use batch statistics in training mode, [`batchnorm_train`]),
//! - `g = drop(tanh(bn_d(W_g·x̄ + b_g)))` (bn over features, images only),
//! - `a = softmax_k(w_c·(l_k ⊙ g) + b_c)`, output `L2(Σ_k a_k x_k)`.
//!
//! Items are stacked: rows `offsets[i]..offsets[i+1]` of `x: [N, d]` belong
//! to item i (images: `R` rows each, as bn_R requires).

use rand::Rng;

use crate::engine::activation::softmax_backward;
use crate::engine::batchnorm::BatchNorm;
use crate::engine::batchnorm_train::{self, BatchStats, RunningStats};
use crate::engine::dropout::{Dropout, DropoutMask};
use crate::engine::gemm::Par;
use crate::engine::l2norm;
use crate::engine::linear::Linear;
use crate::engine::param::{Module, Param};
use crate::engine::rng::EngineRng;

/// `VisualSA` (with both batch norms) or `TextSA` (without).
#[derive(Debug, Clone, PartialEq)]
pub struct GlobalAttention {
    /// `{prefix}.embedding_local.0`: d → d.
    pub local: Linear,
    /// `{prefix}.embedding_local.1`: over R regions (VisualSA only).
    pub local_bn: Option<BatchNorm>,
    /// `{prefix}.embedding_global.0`: d → d.
    pub global: Linear,
    /// `{prefix}.embedding_global.1`: over d features (VisualSA only).
    pub global_bn: Option<BatchNorm>,
    /// Running statistics of `local_bn` and `global_bn` (buffers).
    pub local_running: Option<RunningStats>,
    pub global_running: Option<RunningStats>,
    /// `{prefix}.embedding_common.0`: d → 1.
    pub common: Linear,
    /// Dropout after both tanh (0.4 in the authors' code).
    pub dropout: Dropout,
}

/// What [`GlobalAttention::backward`] needs.
#[derive(Debug)]
pub struct GlobalCache {
    /// Linear outputs before the batch norm (kept only when there is one). [N, d], [n, d]
    l_lin: Vec<f32>,
    g_lin: Vec<f32>,
    /// tanh outputs before dropout. [N, d], [n, d]
    l_tanh: Vec<f32>,
    g_tanh: Vec<f32>,
    /// After dropout. [N, d], [n, d]
    l: Vec<f32>,
    g: Vec<f32>,
    l_mask: DropoutMask,
    g_mask: DropoutMask,
    /// Item means. [n, d]
    mean: Vec<f32>,
    /// Attention weights. [N]
    a: Vec<f32>,
    /// Batch statistics of the two batch norms (training mode only).
    l_stats: Option<BatchStats>,
    g_stats: Option<BatchStats>,
    /// Normalised outputs and their norms. [n, d], [n]
    out: Vec<f32>,
    norms: Vec<f32>,
}

impl GlobalAttention {
    /// `VisualSA(d, dropout, R)` named `prefix`; Xavier-uniform linears, bn γ = 1, β = 0.
    pub fn visual<R: Rng + ?Sized>(
        prefix: &str,
        embed: usize,
        regions: usize,
        dropout: Dropout,
        rng: &mut R,
    ) -> Self {
        let mut m = Self::textual(prefix, embed, dropout, rng);
        let (local, global) = (
            format!("{prefix}.embedding_local.1"),
            format!("{prefix}.embedding_global.1"),
        );
        m.local_bn = Some(BatchNorm::new(&local, regions));
        m.global_bn = Some(BatchNorm::new(&global, embed));
        m.local_running = Some(RunningStats::new(&local, regions));
        m.global_running = Some(RunningStats::new(&global, embed));
        m
    }

    /// `TextSA(d, dropout)` named `prefix`.
    pub fn textual<R: Rng + ?Sized>(
        prefix: &str,
        embed: usize,
        dropout: Dropout,
        rng: &mut R,
    ) -> Self {
        GlobalAttention {
            local: Linear::xavier(
                &format!("{prefix}.embedding_local.0"),
                embed,
                embed,
                true,
                rng,
            ),
            local_bn: None,
            global: Linear::xavier(
                &format!("{prefix}.embedding_global.0"),
                embed,
                embed,
                true,
                rng,
            ),
            global_bn: None,
            local_running: None,
            global_running: None,
            common: Linear::xavier(&format!("{prefix}.embedding_common.0"), embed, 1, true, rng),
            dropout,
        }
    }

    fn embed(&self) -> usize {
        self.local.in_dim()
    }

    /// x: [N, d] stacked items (`offsets`: [n + 1], each item non-empty) →
    /// ([n, d] normalised global vectors, cache). `train` draws dropout masks
    /// from `rng` (local first, then global); eval never touches it.
    pub fn forward(
        &self,
        x: &[f32],
        offsets: &[usize],
        train: bool,
        rng: &mut EngineRng,
        par: Par,
    ) -> (Vec<f32>, GlobalCache) {
        let d = self.embed();
        let n = offsets.len() - 1;
        let mut mean = vec![0.0f32; n * d];
        for (i, m) in mean.chunks_exact_mut(d).enumerate() {
            let rows = &x[offsets[i] * d..offsets[i + 1] * d];
            let mut acc = vec![0.0f64; d];
            for r in rows.chunks_exact(d) {
                acc.iter_mut().zip(r).for_each(|(a, &v)| *a += v as f64);
            }
            let inv = 1.0 / (offsets[i + 1] - offsets[i]) as f64;
            m.iter_mut()
                .zip(&acc)
                .for_each(|(y, &a)| *y = (a * inv) as f32);
        }
        // Batch norms: batch statistics in training mode (docs/method.md §13.4).
        let branch = |lin: &Linear, bn: Option<(&BatchNorm, &RunningStats)>, input, inner| {
            let pre = lin.forward(input, par);
            let mut t = pre.clone();
            let stats =
                bn.and_then(|(bn, r)| batchnorm_train::forward(bn, r, &mut t, inner, train));
            crate::engine::activation::tanh_forward(&mut t);
            (if bn.is_some() { pre } else { Vec::new() }, t, stats)
        };
        let local_bn = self.local_bn.as_ref().zip(self.local_running.as_ref());
        let global_bn = self.global_bn.as_ref().zip(self.global_running.as_ref());
        let (l_lin, l_tanh, l_stats) = branch(&self.local, local_bn, &x[..offsets[n] * d], d);
        let (g_lin, g_tanh, g_stats) = branch(&self.global, global_bn, &mean, 1);
        let mut l = l_tanh.clone();
        let l_mask = self.dropout.forward(&mut l, train, rng);
        let mut g = g_tanh.clone();
        let g_mask = self.dropout.forward(&mut g, train, rng);
        let wc = &self.common.weight.value;
        let bc = self.common.bias.as_ref().map_or(0.0, |b| b.value[0]);
        let mut a = vec![0.0f32; offsets[n]];
        let mut out = vec![0.0f32; n * d];
        let mut gw = vec![0.0f32; d];
        for i in 0..n {
            let (s, e) = (offsets[i], offsets[i + 1]);
            gw.iter_mut()
                .zip(&g[i * d..(i + 1) * d])
                .zip(wc)
                .for_each(|((y, &gv), &w)| *y = gv * w);
            for k in s..e {
                a[k] = (crate::engine::reduce::dot_f64(&l[k * d..(k + 1) * d], &gw) as f32) + bc;
            }
            crate::engine::activation::softmax_forward(&mut a[s..e], e - s);
            let o = &mut out[i * d..(i + 1) * d];
            let mut acc = vec![0.0f64; d];
            for k in s..e {
                let ak = a[k] as f64;
                acc.iter_mut()
                    .zip(&x[k * d..(k + 1) * d])
                    .for_each(|(y, &v)| *y += ak * v as f64);
            }
            o.iter_mut().zip(&acc).for_each(|(y, &v)| *y = v as f32);
        }
        let norms = l2norm::forward(&mut out, d);
        let cache = GlobalCache {
            l_lin,
            g_lin,
            l_tanh,
            g_tanh,
            l,
            g,
            l_mask,
            g_mask,
            mean,
            a,
            l_stats,
            g_stats,
            out: out.clone(),
            norms,
        };
        (out, cache)
    }

    /// Back-propagates `dout: [n, d]`; accumulates parameter gradients and
    /// adds d loss / d x into `dx: [N, d]`. x, offsets: the forward inputs.
    pub fn backward(
        &mut self,
        x: &[f32],
        offsets: &[usize],
        cache: GlobalCache,
        mut dout: Vec<f32>,
        dx: &mut [f32],
        par: Par,
    ) {
        let d = self.embed();
        let n = offsets.len() - 1;
        let nr = offsets[n];
        l2norm::backward(&cache.out, &cache.norms, &mut dout, d);
        // out_i = Σ a_k x_k.
        let mut da = vec![0.0f32; nr];
        for i in 0..n {
            let ds = &dout[i * d..(i + 1) * d];
            for k in offsets[i]..offsets[i + 1] {
                let xk = &x[k * d..(k + 1) * d];
                da[k] = crate::engine::reduce::dot_f64(ds, xk) as f32;
                dx[k * d..(k + 1) * d]
                    .iter_mut()
                    .zip(ds)
                    .for_each(|(g, &v)| *g += cache.a[k] * v);
            }
        }
        for i in 0..n {
            let (s, e) = (offsets[i], offsets[i + 1]);
            softmax_backward(&cache.a[s..e], &mut da[s..e], e - s);
        }
        // a_k logits = w_c·(l_k ⊙ g_i) + b_c.
        let wc = self.common.weight.value.clone();
        let mut dwc = vec![0.0f64; d];
        let mut dbc = 0.0f64;
        let mut dl = vec![0.0f32; nr * d];
        let mut dg = vec![0.0f32; n * d];
        for i in 0..n {
            let gi = &cache.g[i * d..(i + 1) * d];
            let mut dgi = vec![0.0f64; d];
            for k in offsets[i]..offsets[i + 1] {
                let dz = da[k];
                dbc += dz as f64;
                let lk = &cache.l[k * d..(k + 1) * d];
                for f in 0..d {
                    dwc[f] += dz as f64 * (lk[f] * gi[f]) as f64;
                    dl[k * d + f] = dz * wc[f] * gi[f];
                    dgi[f] += (dz * wc[f]) as f64 * lk[f] as f64;
                }
            }
            dg[i * d..(i + 1) * d]
                .iter_mut()
                .zip(&dgi)
                .for_each(|(y, &v)| *y = v as f32);
        }
        self.common
            .weight
            .grad
            .iter_mut()
            .zip(&dwc)
            .for_each(|(g, &v)| *g += v as f32);
        if let Some(b) = &mut self.common.bias {
            b.grad[0] += dbc as f32;
        }
        // Dropout, tanh, batch norm, linear: local branch on x, global on the means.
        let back = |lin: &mut Linear,
                    bn: Option<(&mut BatchNorm, &mut RunningStats)>,
                    stats: Option<&BatchStats>,
                    mask: &DropoutMask,
                    t: &[f32],
                    pre: &[f32],
                    input: &[f32],
                    mut dy: Vec<f32>,
                    inner: usize|
         -> Vec<f32> {
            mask.backward(&mut dy);
            dy.iter_mut().zip(t).for_each(|(g, &y)| *g *= 1.0 - y * y);
            if let Some((bn, r)) = bn {
                batchnorm_train::backward(bn, r, pre, stats, &mut dy, inner);
            }
            let mut din = vec![0.0f32; input.len()];
            lin.backward(input, &dy, Some(&mut din), par);
            din
        };
        let dxl = back(
            &mut self.local,
            self.local_bn.as_mut().zip(self.local_running.as_mut()),
            cache.l_stats.as_ref(),
            &cache.l_mask,
            &cache.l_tanh,
            &cache.l_lin,
            &x[..nr * d],
            dl,
            d,
        );
        dx.iter_mut().zip(&dxl).for_each(|(g, &v)| *g += v);
        let dmean = back(
            &mut self.global,
            self.global_bn.as_mut().zip(self.global_running.as_mut()),
            cache.g_stats.as_ref(),
            &cache.g_mask,
            &cache.g_tanh,
            &cache.g_lin,
            &cache.mean,
            dg,
            1,
        );
        for i in 0..n {
            let inv = 1.0 / (offsets[i + 1] - offsets[i]) as f32;
            let dm = &dmean[i * d..(i + 1) * d];
            for k in offsets[i]..offsets[i + 1] {
                dx[k * d..(k + 1) * d]
                    .iter_mut()
                    .zip(dm)
                    .for_each(|(g, &v)| *g += v * inv);
            }
        }
    }
}

impl Module for GlobalAttention {
    fn params(&self) -> Vec<&Param> {
        let mut v = self.local.params();
        v.extend(self.local_bn.iter().flat_map(|b| b.params()));
        v.extend(self.global.params());
        v.extend(self.global_bn.iter().flat_map(|b| b.params()));
        v.extend(self.common.params());
        v
    }
    fn params_mut(&mut self) -> Vec<&mut Param> {
        let mut v = self.local.params_mut();
        v.extend(self.local_bn.iter_mut().flat_map(|b| b.params_mut()));
        v.extend(self.global.params_mut());
        v.extend(self.global_bn.iter_mut().flat_map(|b| b.params_mut()));
        v.extend(self.common.params_mut());
        v
    }
    fn buffers(&self) -> Vec<&Param> {
        let r = self.local_running.iter().chain(&self.global_running);
        r.flat_map(|r| [&r.mean, &r.var]).collect()
    }
    fn buffers_mut(&mut self) -> Vec<&mut Param> {
        let r = self
            .local_running
            .iter_mut()
            .chain(&mut self.global_running);
        r.flat_map(|r| [&mut r.mean, &mut r.var]).collect()
    }
}
