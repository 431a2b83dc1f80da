//! VSE∞'s Generalized Pooling Operator (Chen et al., CVPR 2021;
//! docs/method.md §13.5): a weighted sum of an item's features sorted per
//! dimension, the weights generated from the item's size alone. PyTorch:
//! `Gpo` in `tools/reference/dbl_ref/gpo.py`.
//!
//! For an item of n rows `x_k: [d]`:
//! 1. positional encodings `pe_t` (sin/cos, width 32) for t = 0..n → bi-GRU
//!    (32 → 32, directions averaged) → `linear` (32 → 1, no bias) → `z_t`;
//! 2. `w = softmax_t(z / 0.1)`;
//! 3. per dimension f, the values `x_{·f}` sorted descending `s_{·f}`;
//!    output `Σ_t w_t s_{tf}` [d] (the caller L2-normalises).
//!
//! The weights depend only on n, so the GRU runs once per distinct size of
//! the batch (images: one; captions: one per length).

use rand::Rng;

use crate::engine::activation::{softmax_backward, softmax_forward};
use crate::engine::gemm::Par;
use crate::engine::gru::{BiGru, GruCache};
use crate::engine::linear::Linear;
use crate::engine::param::{Module, Param};

/// Width of the positional encodings and of the GRU (the authors' `GPO(32, 32)`).
pub const GPO_DIM: usize = 32;
/// Softmax temperature of the pooling weights.
const TEMPERATURE: f32 = 0.1;

/// `{prefix}.gru.*` and `{prefix}.linear.weight`.
#[derive(Debug, Clone, PartialEq)]
pub struct Gpo {
    /// `{prefix}.gru`: BiGRU(32 → 32).
    pub gru: BiGru,
    /// `{prefix}.linear`: 32 → 1, no bias.
    pub linear: Linear,
}

/// What [`Gpo::backward`] needs.
#[derive(Debug, Clone)]
pub struct GpoCache {
    /// Distinct sizes, descending. [u]
    sizes: Vec<usize>,
    gru: GruCache,
    /// GRU output (averaged directions). [u, n_max, 32]
    h: Vec<f32>,
    /// Pooling weights per distinct size (valid positions only). [u, n_max]
    w: Vec<f32>,
    /// Item → index into `sizes`. [n_items]
    which: Vec<usize>,
    /// Per item, per (rank t, dim f): the row holding the t-th largest value. [N, d]
    order: Vec<u32>,
    /// Stacked item offsets. [n_items + 1]
    offsets: Vec<usize>,
}

/// `positional_encoding_1d(32, n)`: row t = [sin(t·q_0), cos(t·q_0), sin(t·q_1), …],
/// q_i = exp(−2i·ln(10⁴)/32), in f32 as PyTorch computes it. → [n, 32]
fn positional_encoding(n: usize) -> Vec<f32> {
    let mut pe = vec![0.0f32; n * GPO_DIM];
    let k = -(10000.0f32.ln() / GPO_DIM as f32);
    for t in 0..n {
        for i in 0..GPO_DIM / 2 {
            let q = ((2 * i) as f32 * k).exp();
            let a = t as f32 * q;
            pe[t * GPO_DIM + 2 * i] = a.sin();
            pe[t * GPO_DIM + 2 * i + 1] = a.cos();
        }
    }
    pe
}

impl Gpo {
    /// PyTorch's default inits: GRU U(±1/√32), linear U(±1/√32).
    pub fn new<R: Rng + ?Sized>(prefix: &str, rng: &mut R) -> Self {
        let gru = BiGru::uniform(&format!("{prefix}.gru"), GPO_DIM, GPO_DIM, rng);
        let mut linear = Linear::new(&format!("{prefix}.linear"), GPO_DIM, 1, false);
        linear
            .weight
            .init_uniform(rng, 1.0 / (GPO_DIM as f32).sqrt());
        Gpo { gru, linear }
    }

    /// Pools stacked items: x: [N, d], item i = rows `offsets[i]..offsets[i+1]`
    /// (each non-empty) → ([n_items, d], cache).
    pub fn forward(&self, x: &[f32], offsets: &[usize], d: usize) -> (Vec<f32>, GpoCache) {
        let n_items = offsets.len() - 1;
        let size = |i: usize| offsets[i + 1] - offsets[i];
        let mut sizes: Vec<usize> = (0..n_items).map(size).collect();
        sizes.sort_unstable_by(|a, b| b.cmp(a));
        sizes.dedup();
        let which: Vec<usize> = (0..n_items)
            .map(|i| sizes.iter().position(|&s| s == size(i)).unwrap_or(0))
            .collect();
        let nmax = sizes[0];
        let pe = positional_encoding(nmax);
        let mut input = vec![0.0f32; sizes.len() * nmax * GPO_DIM];
        for (u, &s) in sizes.iter().enumerate() {
            input[u * nmax * GPO_DIM..(u * nmax + s) * GPO_DIM].copy_from_slice(&pe[..s * GPO_DIM]);
        }
        let (h, gru) = self.gru.forward(&input, &sizes, nmax, Par::Seq);
        let mut w = vec![0.0f32; sizes.len() * nmax];
        self.linear.forward_into(&h, &mut w, Par::Seq);
        for (u, &s) in sizes.iter().enumerate() {
            let row = &mut w[u * nmax..u * nmax + s];
            row.iter_mut().for_each(|z| *z /= TEMPERATURE);
            softmax_forward(row, s);
            w[u * nmax + s..(u + 1) * nmax].fill(0.0);
        }
        let mut out = vec![0.0f32; n_items * d];
        let mut order = vec![0u32; offsets[n_items] * d];
        let mut col: Vec<(f32, u32)> = Vec::new();
        for i in 0..n_items {
            let (a, n) = (offsets[i], size(i));
            let wi = &w[which[i] * nmax..which[i] * nmax + n];
            for f in 0..d {
                col.clear();
                col.extend((0..n).map(|k| (x[(a + k) * d + f], k as u32)));
                // Descending, ties by position (a stable order).
                col.sort_by(|p, q| q.0.total_cmp(&p.0).then(p.1.cmp(&q.1)));
                let mut acc = 0.0f64;
                for (t, &(v, k)) in col.iter().enumerate() {
                    acc += wi[t] as f64 * v as f64;
                    order[(a + t) * d + f] = k;
                }
                out[i * d + f] = acc as f32;
            }
        }
        let cache = GpoCache {
            sizes,
            gru,
            h,
            w,
            which,
            order,
            offsets: offsets.to_vec(),
        };
        (out, cache)
    }

    /// From dy: [n_items, d] → dx: [N, d]; accumulates the GRU and linear
    /// gradients. x: the forward input.
    pub fn backward(&mut self, x: &[f32], cache: &GpoCache, dy: &[f32], d: usize) -> Vec<f32> {
        let offs = &cache.offsets;
        let n_items = offs.len() - 1;
        let nmax = cache.sizes[0];
        let mut dx = vec![0.0f32; x.len()];
        let mut dw = vec![0.0f64; cache.sizes.len() * nmax];
        for i in 0..n_items {
            let (a, n) = (offs[i], offs[i + 1] - offs[i]);
            let u = cache.which[i];
            let wi = &cache.w[u * nmax..u * nmax + n];
            let g = &dy[i * d..(i + 1) * d];
            for t in 0..n {
                let ord = &cache.order[(a + t) * d..(a + t + 1) * d];
                let mut acc = 0.0f64;
                for f in 0..d {
                    let k = ord[f] as usize;
                    acc += g[f] as f64 * x[(a + k) * d + f] as f64;
                    dx[(a + k) * d + f] += wi[t] * g[f];
                }
                dw[u * nmax + t] += acc;
            }
        }
        let mut dz: Vec<f32> = dw.iter().map(|&v| v as f32).collect();
        for (u, &s) in cache.sizes.iter().enumerate() {
            let (w, g) = (
                &cache.w[u * nmax..u * nmax + s],
                &mut dz[u * nmax..u * nmax + s],
            );
            softmax_backward(w, g, s);
            g.iter_mut().for_each(|v| *v /= TEMPERATURE);
        }
        let mut dh = vec![0.0f32; cache.h.len()];
        self.linear.backward(&cache.h, &dz, Some(&mut dh), Par::Seq);
        // The GRU's input (the positional encodings) is constant.
        self.gru.backward(&cache.gru, &dh, Par::Seq);
        dx
    }
}

impl Module for Gpo {
    fn params(&self) -> Vec<&Param> {
        let mut v = self.gru.params();
        v.extend(self.linear.params());
        v
    }
    fn params_mut(&mut self) -> Vec<&mut Param> {
        let mut v = self.gru.params_mut();
        v.extend(self.linear.params_mut());
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
        let d = 4;
        let offsets = [0, 5, 8, 13];
        let mut gpo = Gpo::new("g", &mut seeded(3));
        // Values at least 0.02 apart in every column, so the finite
        // differences never reorder a sort.
        let mut x: Vec<f32> = (0..13 * d)
            .map(|i| ((i * 37) % 53) as f32 * 0.02 - 0.5)
            .collect();
        let up = rand_vec(3 * d, 2, 1.0);
        let f = |g: &Gpo, x: &[f32]| dot_loss(&g.forward(x, &offsets, d).0, &up);
        let (_, cache) = gpo.forward(&x, &offsets, d);
        let dx = gpo.backward(&x, &cache, &up, d);
        let fx = fd_grad(&mut x, FD_EPS, |x| f(&gpo, x));
        assert_grad_close("dx", &dx, &fx);
        let mut w = gpo.linear.weight.value.clone();
        let fw = fd_grad(&mut w, FD_EPS, |w| {
            let mut g = gpo.clone();
            g.linear.weight.value = w.to_vec();
            f(&g, &x)
        });
        assert_grad_close("linear", &gpo.linear.weight.grad, &fw);
        let k = 1; // weight_hh_l0
        let mut w = gpo.gru.params()[k].value.clone();
        let fw = fd_grad(&mut w, FD_EPS, |w| {
            let mut g = gpo.clone();
            g.gru.params_mut()[k].value = w.to_vec();
            f(&g, &x)
        });
        assert_grad_close("gru", &gpo.gru.params()[k].grad, &fw);
    }
}
