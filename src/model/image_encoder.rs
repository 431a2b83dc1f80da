//! Image encoder (docs/method.md §5.1): region features → `Linear(img_dim → d)`
//! (`img_enc.fc`) → either L2 per region (scan-ave) or pooling over regions
//! (mean / max / GPO, `img_enc.gpool`) then L2 (vse). PyTorch: `ImageEncoder` in
//! `tools/reference/dbl_ref/models.py`.

use rand::Rng;

use crate::engine::gemm::Par;
use crate::engine::l2norm;
use crate::engine::linear::Linear;
use crate::engine::param::{Module, Param};
use crate::model::config::VsePool;
use crate::model::gpo::{Gpo, GpoCache};

/// `img_enc`: the FC layer and the output pooling.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageEncoder {
    /// `img_enc.fc`: weight [d, img_dim], bias [d].
    pub fc: Linear,
    /// `None`: one embedding per region; `Some(p)`: one per image.
    pub pool: Option<VsePool>,
    /// `img_enc.gpool` (pool = GPO only).
    pub gpool: Option<Gpo>,
}

/// What [`ImageEncoder::backward`] needs.
#[derive(Debug, Clone)]
pub struct ImageCache {
    /// The FC input. x: [n, R, img_dim]
    x: Vec<f32>,
    /// Max pooling: the region chosen per (image, feature), [n, d]; empty otherwise.
    argmax: Vec<u32>,
    /// Normalised output. y: [n, R, d] or [n, d]
    y: Vec<f32>,
    /// Row norms of the output before normalisation.
    norms: Vec<f32>,
    n_regions: usize,
    /// GPO: its cache and its input (the FC output [n, R, d]).
    gpo: Option<(GpoCache, Vec<f32>)>,
}

impl ImageEncoder {
    /// Xavier-uniform FC (docs/method.md §5.1), bias 0.
    pub fn new<R: Rng + ?Sized>(
        img_dim: usize,
        embed: usize,
        pool: Option<VsePool>,
        rng: &mut R,
    ) -> Self {
        let fc = Linear::xavier("img_enc.fc", img_dim, embed, true, rng);
        ImageEncoder {
            fc,
            pool,
            gpool: (pool == Some(VsePool::Gpo)).then(|| Gpo::new("img_enc.gpool", rng)),
        }
    }

    /// Embedding width d.
    pub fn embed(&self) -> usize {
        self.fc.out_dim()
    }

    /// Forward without keeping a cache (evaluation).
    /// x: [n, R, img_dim] → [n, R, d] (no pooling) or [n, d].
    pub fn encode(&self, x: &[f32], n_regions: usize, par: Par) -> Vec<f32> {
        self.forward(x.to_vec(), n_regions, par).0
    }

    /// x: [n, R, img_dim] (taken by value; kept for backward) →
    /// ([n, R, d] or [n, d], cache).
    ///
    /// Mean pooling is applied to the features *before* the FC layer:
    /// `mean_r(x_r·Wᵀ + b) = (mean_r x_r)·Wᵀ + b` exactly in real arithmetic,
    /// and it costs 1/R of the FLOPs in both passes (the authors pool after;
    /// the results differ by f32 rounding only, within the parity tests).
    pub fn forward(&self, x: Vec<f32>, n_regions: usize, par: Par) -> (Vec<f32>, ImageCache) {
        let d = self.embed();
        if self.pool == Some(VsePool::Mean) {
            let x = mean_over_regions(&x, n_regions, self.fc.in_dim());
            let mut y = self.fc.forward(&x, par);
            let norms = l2norm::forward(&mut y, d);
            let cache = ImageCache {
                x,
                argmax: Vec::new(),
                y: y.clone(),
                norms,
                n_regions,
                gpo: None,
            };
            return (y, cache);
        }
        let regions = self.fc.forward(&x, par);
        let mut argmax = Vec::new();
        let mut gpo = None;
        let mut y = match self.pool {
            None => regions,
            Some(VsePool::Gpo) => {
                let g = self.gpool.as_ref().expect("GPO pooling has img_enc.gpool");
                let n = regions.len() / (n_regions * d).max(1);
                let offs: Vec<usize> = (0..=n).map(|i| i * n_regions).collect();
                let (y, c) = g.forward(&regions, &offs, d);
                gpo = Some((c, regions));
                y
            }
            // Mean pooling returned above; max pooling over the FC outputs.
            Some(_) => {
                let n = regions.len() / (n_regions * d).max(1);
                let mut out = vec![0.0f32; n * d];
                argmax = vec![0u32; n * d];
                for (i, img) in regions.chunks_exact(n_regions * d).enumerate() {
                    let o = &mut out[i * d..(i + 1) * d];
                    let am = &mut argmax[i * d..(i + 1) * d];
                    o.copy_from_slice(&img[..d]);
                    for (r, row) in img.chunks_exact(d).enumerate().skip(1) {
                        for k in 0..d {
                            if row[k] > o[k] {
                                o[k] = row[k];
                                am[k] = r as u32;
                            }
                        }
                    }
                }
                out
            }
        };
        let norms = l2norm::forward(&mut y, d);
        let cache = ImageCache {
            x,
            argmax,
            y: y.clone(),
            norms,
            n_regions,
            gpo,
        };
        (y, cache)
    }

    /// dy: same shape as the forward output. Accumulates `img_enc.fc` grads
    /// (the input gradient is not needed: region features are data).
    pub fn backward(&mut self, cache: &ImageCache, mut dy: Vec<f32>, par: Par) {
        let d = self.embed();
        let r = cache.n_regions;
        l2norm::backward(&cache.y, &cache.norms, &mut dy, d);
        let d_regions = match self.pool {
            None => dy,
            // The cached input is already the per-image mean of the features.
            Some(VsePool::Mean) => dy,
            Some(VsePool::Gpo) => {
                let (c, regions) = cache.gpo.as_ref().expect("GPO cache");
                let g = self.gpool.as_mut().expect("GPO pooling has img_enc.gpool");
                g.backward(regions, c, &dy, d)
            }
            Some(VsePool::Max) => {
                let n = dy.len() / d;
                let mut g = vec![0.0f32; n * r * d];
                for i in 0..n {
                    let src = &dy[i * d..(i + 1) * d];
                    let dst = &mut g[i * r * d..(i + 1) * r * d];
                    let am = &cache.argmax[i * d..(i + 1) * d];
                    for k in 0..d {
                        dst[am[k] as usize * d + k] = src[k];
                    }
                }
                g
            }
        };
        self.fc.backward(&cache.x, &d_regions, None, par);
    }
}

/// Per-image mean of the region features (f64 sums). x: [n, R, D] → [n, D].
fn mean_over_regions(x: &[f32], n_regions: usize, dim: usize) -> Vec<f32> {
    let per = n_regions * dim;
    let n = x.len().checked_div(per).unwrap_or(0);
    let mut out = vec![0.0f32; n * dim];
    let mut acc = vec![0.0f64; dim];
    let inv = 1.0 / n_regions as f64;
    for (img, o) in x.chunks_exact(per).zip(out.chunks_exact_mut(dim)) {
        acc.fill(0.0);
        for r in img.chunks_exact(dim) {
            acc.iter_mut().zip(r).for_each(|(a, &v)| *a += v as f64);
        }
        o.iter_mut()
            .zip(&acc)
            .for_each(|(v, &a)| *v = (a * inv) as f32);
    }
    out
}

impl Module for ImageEncoder {
    fn params(&self) -> Vec<&Param> {
        let mut v = self.fc.params();
        v.extend(self.gpool.iter().flat_map(|g| g.params()));
        v
    }
    fn params_mut(&mut self) -> Vec<&mut Param> {
        let mut v = self.fc.params_mut();
        v.extend(self.gpool.iter_mut().flat_map(|g| g.params_mut()));
        v
    }
}
