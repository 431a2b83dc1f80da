//! `tiny`: a small matching model for trainer tests and smoke runs — not a
//! paper backbone. Image = mean of its region features → Linear → L2;
//! caption = mean of its (dropped-out) word embeddings → Linear → L2;
//! S = v·tᵀ (cosine). Built from engine layers with a hand-written backward
//! (checked against finite differences below).

use crate::data::batch::Batch;
use crate::data::precomp::Precomp;
use crate::engine::dropout::{Dropout, DropoutMask};
use crate::engine::embedding::Embedding;
use crate::engine::gemm::{MatMut, MatRef, Par, gemm};
use crate::engine::l2norm;
use crate::engine::linear::Linear;
use crate::engine::param::{Module, Param};
use crate::engine::rng::EngineRng;
use crate::model::Trainable;

/// The tiny model.
#[derive(Debug, Clone)]
pub struct TinyModel {
    img_fc: Linear,
    embed: Embedding,
    txt_fc: Linear,
    dropout: Dropout,
}

/// What `forward` keeps for `backward`.
pub struct TinyCache {
    pooled_img: Vec<f32>,
    v: Vec<f32>,
    v_norms: Vec<f32>,
    pooled_txt: Vec<f32>,
    t: Vec<f32>,
    t_norms: Vec<f32>,
    tokens: Vec<u32>,
    lengths: Vec<usize>,
    max_len: usize,
    mask: DropoutMask,
}

/// Mean over the rows of each of `n` `[rows, dim]` blocks. x: [n, rows, dim] → [n, dim].
fn mean_rows(x: &[f32], n: usize, rows: usize, dim: usize) -> Vec<f32> {
    let mut out = vec![0.0; n * dim];
    for (o, block) in out.chunks_exact_mut(dim).zip(x.chunks_exact(rows * dim)) {
        for r in block.chunks_exact(dim) {
            o.iter_mut().zip(r).for_each(|(a, &b)| *a += b);
        }
        o.iter_mut().for_each(|a| *a /= rows as f32);
    }
    out
}

impl TinyModel {
    /// A randomly initialised model: `img_dim` region features, `vocab` words.
    pub fn new(
        img_dim: usize,
        vocab: usize,
        word_dim: usize,
        embed: usize,
        dropout: f32,
        rng: &mut EngineRng,
    ) -> Result<Self, crate::engine::error::EngineError> {
        Ok(TinyModel {
            img_fc: Linear::xavier("img_enc.fc", img_dim, embed, true, rng),
            embed: Embedding::uniform("txt_enc.embed", vocab, word_dim, 0.1, rng),
            txt_fc: Linear::xavier("txt_enc.fc", word_dim, embed, true, rng),
            dropout: Dropout::new(dropout)?,
        })
    }

    fn embed_images(&self, pooled: &[f32]) -> (Vec<f32>, Vec<f32>) {
        let mut v = self.img_fc.forward(pooled, Par::Seq);
        let norms = l2norm::forward(&mut v, self.img_fc.out_dim());
        (v, norms)
    }

    /// Mean of the first `lengths[b]` rows of x: [B, max_len, wd] → [B, wd].
    fn pool_words(x: &[f32], lengths: &[usize], max_len: usize, wd: usize) -> Vec<f32> {
        let mut out = vec![0.0; lengths.len() * wd];
        for (b, (o, &len)) in out.chunks_exact_mut(wd).zip(lengths).enumerate() {
            for l in 0..len {
                let r = &x[(b * max_len + l) * wd..(b * max_len + l + 1) * wd];
                o.iter_mut().zip(r).for_each(|(a, &v)| *a += v);
            }
            o.iter_mut().for_each(|a| *a /= len.max(1) as f32);
        }
        out
    }

    fn embed_captions(
        &self,
        tokens: &[u32],
        lengths: &[usize],
        max_len: usize,
        train: bool,
        rng: &mut EngineRng,
    ) -> (Vec<f32>, Vec<f32>, Vec<f32>, DropoutMask) {
        let wd = self.embed.dim();
        let mut x = self.embed.forward(tokens);
        let mask = self.dropout.forward(&mut x, train, rng);
        let pooled = Self::pool_words(&x, lengths, max_len, wd);
        let mut t = self.txt_fc.forward(&pooled, Par::Seq);
        let norms = l2norm::forward(&mut t, self.txt_fc.out_dim());
        (pooled, t, norms, mask)
    }
}

impl Module for TinyModel {
    fn params(&self) -> Vec<&Param> {
        let mut p = self.img_fc.params();
        p.extend(self.embed.params());
        p.extend(self.txt_fc.params());
        p
    }
    fn params_mut(&mut self) -> Vec<&mut Param> {
        let mut p = self.img_fc.params_mut();
        p.extend(self.embed.params_mut());
        p.extend(self.txt_fc.params_mut());
        p
    }
}

impl Trainable for TinyModel {
    type Cache = TinyCache;

    fn forward(&self, batch: &Batch, train: bool, rng: &mut EngineRng) -> (Vec<f32>, TinyCache) {
        let b = batch.size();
        let e = self.img_fc.out_dim();
        let pooled_img = mean_rows(&batch.images, b, batch.n_regions, batch.dim);
        let (v, v_norms) = self.embed_images(&pooled_img);
        let (pooled_txt, t, t_norms, mask) =
            self.embed_captions(&batch.tokens, &batch.lengths, batch.max_len, train, rng);
        let mut sims = vec![0.0; b * b];
        gemm(
            MatMut::new(&mut sims, b, b),
            MatRef::new(&v, b, e),
            MatRef::new(&t, b, e).t(),
            1.0,
            0.0,
            Par::Seq,
        );
        let cache = TinyCache {
            pooled_img,
            v,
            v_norms,
            pooled_txt,
            t,
            t_norms,
            tokens: batch.tokens.clone(),
            lengths: batch.lengths.clone(),
            max_len: batch.max_len,
            mask,
        };
        (sims, cache)
    }

    fn backward(&mut self, c: TinyCache, d_sims: &[f32]) {
        let b = c.lengths.len();
        let e = self.img_fc.out_dim();
        let wd = self.embed.dim();
        // dv = dS·t, dt = dSᵀ·v.
        let mut dv = vec![0.0; b * e];
        let mut dt = vec![0.0; b * e];
        gemm(
            MatMut::new(&mut dv, b, e),
            MatRef::new(d_sims, b, b),
            MatRef::new(&c.t, b, e),
            1.0,
            0.0,
            Par::Seq,
        );
        gemm(
            MatMut::new(&mut dt, b, e),
            MatRef::new(d_sims, b, b).t(),
            MatRef::new(&c.v, b, e),
            1.0,
            0.0,
            Par::Seq,
        );
        l2norm::backward(&c.v, &c.v_norms, &mut dv, e);
        l2norm::backward(&c.t, &c.t_norms, &mut dt, e);
        self.img_fc.backward(&c.pooled_img, &dv, None, Par::Seq);
        let mut dpool = vec![0.0; b * wd];
        self.txt_fc
            .backward(&c.pooled_txt, &dt, Some(&mut dpool), Par::Seq);
        let mut dx = vec![0.0; b * c.max_len * wd];
        for (bi, &len) in c.lengths.iter().enumerate() {
            let g = &dpool[bi * wd..(bi + 1) * wd];
            for l in 0..len {
                let row = &mut dx[(bi * c.max_len + l) * wd..(bi * c.max_len + l + 1) * wd];
                row.iter_mut()
                    .zip(g)
                    .for_each(|(d, &v)| *d = v / len as f32);
            }
        }
        c.mask.backward(&mut dx);
        self.embed.backward(&c.tokens, &dx);
    }

    fn score_split(&self, ds: &Precomp) -> Vec<f32> {
        let (n_img, n_cap) = (ds.n_images(), ds.len());
        let e = self.img_fc.out_dim();
        let mut pooled = Vec::with_capacity(n_img * ds.dim());
        for r in 0..n_img {
            pooled.extend(mean_rows(ds.images().row(r), 1, ds.n_regions(), ds.dim()));
        }
        let (v, _) = self.embed_images(&pooled);
        let mut t = Vec::with_capacity(n_cap * e);
        let mut rng = crate::engine::rng::seeded(0);
        for k in 0..n_cap {
            let cap = ds.caption(k);
            let (_, tk, _, _) = self.embed_captions(cap, &[cap.len()], cap.len(), false, &mut rng);
            t.extend(tk);
        }
        let mut sims = vec![0.0; n_img * n_cap];
        gemm(
            MatMut::new(&mut sims, n_img, n_cap),
            MatRef::new(&v, n_img, e),
            MatRef::new(&t, n_cap, e).t(),
            1.0,
            0.0,
            Par::Seq,
        );
        sims
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::rng::seeded;
    use crate::engine::testutil::{dot_loss, rand_vec};

    fn toy_batch() -> Batch {
        let (b, r, d, l) = (4, 3, 6, 5);
        Batch {
            images: rand_vec(b * r * d, 3, 1.0),
            n_regions: r,
            dim: d,
            tokens: vec![1, 4, 5, 6, 2, 1, 7, 3, 2, 0, 1, 8, 2, 0, 0, 1, 9, 2, 0, 0],
            max_len: l,
            lengths: vec![5, 4, 3, 3],
            caption_ids: (0..b).collect(),
            image_ids: (0..b).collect(),
            img_ids: (0..b).collect(),
        }
    }

    /// Finite differences of Σ c⊙S over every parameter, dropout on (the same
    /// mask each evaluation: the rng is re-seeded). h = 2e-3 (the embedding
    /// values are ~0.1, so engine::testutil's 1e-2 is a 10 % step through the
    /// L2 normalisation's curvature); f32 rounding then contributes
    /// ~1e-7·|L|/h ≈ 1e-4 and truncation ~1e-4, so |fd − analytic| ≤ 1e-3 + 1e-2·|fd|.
    #[test]
    fn backward_matches_finite_differences() {
        let batch = toy_batch();
        let model = TinyModel::new(6, 10, 5, 4, 0.3, &mut seeded(1)).unwrap();
        let c = rand_vec(16, 9, 1.0);
        let loss = |m: &TinyModel| dot_loss(&m.forward(&batch, true, &mut seeded(5)).0, &c);
        let mut m = model.clone();
        let (_, cache) = m.forward(&batch, true, &mut seeded(5));
        m.backward(cache, &c);
        let analytic: Vec<Vec<f32>> = m.params().iter().map(|p| p.grad.clone()).collect();
        let h = 2e-3f32;
        let mut checked = 0;
        for (pi, g) in analytic.iter().enumerate() {
            for (i, &an32) in g.iter().enumerate() {
                let mut plus = model.clone();
                let x = plus.params_mut()[pi].value[i];
                plus.params_mut()[pi].value[i] = x + h;
                let mut minus = model.clone();
                minus.params_mut()[pi].value[i] = x - h;
                let denom = ((x + h) - (x - h)) as f64;
                let fd = (loss(&plus) - loss(&minus)) / denom;
                let an = an32 as f64;
                assert!(
                    (fd - an).abs() <= 1e-3 + 1e-2 * fd.abs(),
                    "param {} [{i}]: fd {fd} vs analytic {an}",
                    model.params()[pi].name
                );
                checked += 1;
            }
        }
        assert!(checked > 50);
        // Not vacuous: some gradient is clearly non-zero.
        assert!(analytic.iter().flatten().any(|g| g.abs() > 1e-3));
    }

    #[test]
    fn eval_mode_ignores_rng_and_train_mode_uses_it() {
        let batch = toy_batch();
        let m = TinyModel::new(6, 10, 5, 4, 0.4, &mut seeded(1)).unwrap();
        let mut r = seeded(3);
        let before = r.get_word_pos();
        let (a, _) = m.forward(&batch, false, &mut r);
        assert_eq!(r.get_word_pos(), before);
        let (b, _) = m.forward(&batch, false, &mut seeded(99));
        assert_eq!(a, b);
        let (t, _) = m.forward(&batch, true, &mut r);
        assert_ne!(a, t);
        assert!(r.get_word_pos() > before);
    }
}
