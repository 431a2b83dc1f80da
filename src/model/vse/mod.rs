//! The embedding backbone "vse": image encoder with mean (or max) pooling over
//! regions, text encoder with mean pooling over valid words (or VSE∞'s GPO
//! over both, docs/method.md §13.5), both L2
//! normalised; score = cosine = one GEMM `img·capᵀ`. PyTorch: `Vse` in
//! `tools/reference/dbl_ref/models.py` (parameters `img_enc.fc.*`,
//! `txt_enc.embed.weight`, `txt_enc.cap_rnn.*`).
//!
//! The backbone "vse-infty" is this network with VSE∞'s precomp region
//! encoder (`precomp_enc_type basic`, docs/method.md §13.7): the region MLP
//! `img_enc.mlp` added to the image FC before pooling, GPO on both sides
//! always (VSE∞'s; a training config records `vse_pool = "gpo"` and refuses
//! anything else, `crate::train::config`).

pub mod explain;
pub mod flops;
pub mod matcher;
pub mod region_encoder;
pub mod region_mlp;

use std::ops::Range;

use crate::data::batch::Batch;
use crate::data::precomp::Precomp;
use crate::engine::dropout::{Dropout, RowWindow};
use crate::engine::gemm::{MatMut, MatRef, gemm};
use crate::engine::param::{Module, Param};
use crate::engine::rng::{EngineRng, seeded};
use crate::model::config::{Backbone, ConfigError, ModelConfig, VsePool};
use crate::model::encode::EncodedCaptions;
use crate::model::image_encoder::ImageEncoder;
use crate::model::precision::HeadPrecision;
use crate::model::split::score_split_checked;
use crate::model::text_encoder::{TextCache, TextEncoder};
use crate::model::vse::region_encoder::VseImageCache;
use crate::model::vse::region_mlp::RegionMlp;
use crate::model::weights::TensorShapes;
use crate::model::{ENCODER_PAR, Trainable};

/// vse: the scan-ave encoders with pooling, no similarity head (vse-infty:
/// and the region MLP).
#[derive(Debug, Clone, PartialEq)]
pub struct Vse {
    /// `img_enc` (pooled).
    pub img_enc: ImageEncoder,
    /// `img_enc.mlp`: vse-infty's region MLP (`None`: vse).
    pub mlp: Option<RegionMlp>,
    /// `txt_enc` (mean-pooled).
    pub txt_enc: TextEncoder,
}

/// What [`Vse::backward`] needs (or one rank's shard of it).
#[derive(Debug)]
pub struct VseCache {
    /// Taken by the image side's backward.
    img_cache: Option<VseImageCache>,
    txt_cache: TextCache,
    /// The shard's image embeddings. [b, d]
    img: Vec<f32>,
    /// Every scored caption's embedding (after `score_shard`). [n_captions, d]
    cap: Vec<f32>,
}

impl Vse {
    /// A freshly initialised model, all draws from `seed`: `img_enc`, then
    /// (vse-infty) `img_enc.mlp`, then `txt_enc`.
    pub fn new(cfg: &ModelConfig, seed: u64) -> Result<Self, ConfigError> {
        cfg.validate()?;
        let mut rng = seeded(seed);
        let infty = cfg.backbone == Backbone::VseInfty;
        let pool = if infty { VsePool::Gpo } else { cfg.vse_pool };
        let img_enc = ImageEncoder::new(cfg.img_dim, cfg.embed, Some(pool), &mut rng);
        Ok(Vse {
            img_enc,
            mlp: infty.then(|| RegionMlp::new(cfg.img_dim, cfg.embed, &mut rng)),
            txt_enc: {
                let drop =
                    Dropout::new(cfg.dropout).map_err(|_| ConfigError::Dropout(cfg.dropout))?;
                if pool == VsePool::Gpo {
                    TextEncoder::with_gpo(cfg.vocab_size, cfg.word_dim, cfg.embed, drop, &mut rng)
                } else {
                    TextEncoder::new(
                        cfg.vocab_size,
                        cfg.word_dim,
                        cfg.embed,
                        drop,
                        true,
                        &mut rng,
                    )
                }
            },
        })
    }

    fn embed(&self) -> usize {
        self.img_enc.embed()
    }
}

impl Vse {
    /// Its configuration read from a weights file's tensors (`None`: not
    /// `backbone`'s layout, which has no similarity head `sim_enc.*`, and the
    /// region MLP `img_enc.mlp.*` exactly for vse-infty; GPO pooling when
    /// `img_enc.gpool.*` is there).
    pub fn from_tensors(
        backbone: Backbone,
        t: &TensorShapes,
    ) -> Option<Result<ModelConfig, String>> {
        let mlp = t.has_prefix("img_enc.mlp.");
        (!t.has_prefix("sim_enc.") && mlp == (backbone == Backbone::VseInfty)).then(|| {
            let pool = if t.has_prefix("img_enc.gpool.") {
                VsePool::Gpo
            } else {
                VsePool::Mean
            };
            Ok(ModelConfig {
                vse_pool: pool,
                ..t.encoder_config(backbone)?
            })
        })
    }
}

impl Trainable for Vse {
    type Cache = VseCache;

    fn forward(&self, batch: &Batch, train: bool, rng: &mut EngineRng) -> (Vec<f32>, VseCache) {
        let (cap, mut cache) = self.encode_rows(batch, 0..batch.size(), train, rng);
        let sims = self.score_rows(&mut cache, cap.rows);
        (sims, cache)
    }

    fn backward(&mut self, mut cache: VseCache, d_sims: &[f32]) {
        let dcap = self.backward_rows(&mut cache, d_sims);
        self.txt_enc.backward(cache.txt_cache, dcap, ENCODER_PAR);
    }

    fn encode_shard(
        &self,
        batch: &Batch,
        rows: Range<usize>,
        train: bool,
        rng: &mut EngineRng,
    ) -> Option<(EncodedCaptions, VseCache)> {
        // The region MLP's batch statistics are the whole batch's: no split
        // in training mode.
        if train && self.mlp.is_some() {
            return None;
        }
        Some(self.encode_rows(batch, rows, train, rng))
    }

    fn score_shard(&self, cache: &mut VseCache, captions: EncodedCaptions) -> Vec<f32> {
        self.score_rows(cache, captions.rows)
    }

    fn backward_shard(&mut self, cache: &mut VseCache, d_block: &[f32]) -> Vec<f32> {
        self.backward_rows(cache, d_block)
    }

    fn backward_captions(&mut self, cache: VseCache, d_captions: Vec<f32>) {
        self.txt_enc
            .backward(cache.txt_cache, d_captions, ENCODER_PAR);
    }

    /// Through the inference layer ([`crate::model::split`]).
    /// Images sharded across the ranks ([`crate::model::split::score_split_ranks`]).
    fn score_split_ranks(&self, ds: &Precomp, comm: &dyn crate::dist::Comm) -> Vec<f32> {
        crate::model::split::score_split_ranks(self, ds, HeadPrecision::F32, comm)
            .unwrap_or_else(|e| panic!("vse: scoring split {:?}: {e}", ds.split()))
    }

    fn score_split(&self, ds: &Precomp) -> Vec<f32> {
        score_split_checked(self, ds, HeadPrecision::F32)
            .unwrap_or_else(|e| panic!("vse: scoring split {:?}: {e}", ds.split()))
    }
}

impl Vse {
    /// Encodes pairs `rows` of `batch`: image embeddings kept in the cache,
    /// caption embeddings returned ([b, d], one row per caption).
    fn encode_rows(
        &self,
        batch: &Batch,
        rows: Range<usize>,
        train: bool,
        rng: &mut EngineRng,
    ) -> (EncodedCaptions, VseCache) {
        let (img, img_cache) = self.encode_images(
            batch.image_rows(rows.clone()).to_vec(),
            batch.n_regions,
            train,
        );
        let (cap, txt_cache) = self.txt_enc.forward_rows(
            batch.token_rows(rows.clone()),
            &batch.lengths[rows.clone()],
            batch.max_len,
            (train, rng),
            RowWindow {
                first: rows.start,
                total: batch.size(),
            },
            ENCODER_PAR,
        );
        let cache = VseCache {
            img_cache: Some(img_cache),
            txt_cache,
            img,
            cap: Vec::new(),
        };
        let offsets = (0..=rows.len()).collect();
        (EncodedCaptions { rows: cap, offsets }, cache)
    }

    /// Cosines of the cached images with `cap` [n_captions, d] (kept for the
    /// backward) → [b, n_captions].
    fn score_rows(&self, cache: &mut VseCache, cap: Vec<f32>) -> Vec<f32> {
        let d = self.embed();
        let (ni, nc) = (cache.img.len() / d, cap.len() / d);
        let mut sims = vec![0.0f32; ni * nc];
        gemm(
            MatMut::new(&mut sims, ni, nc),
            MatRef::new(&cache.img, ni, d),
            MatRef::new(&cap, nc, d).t(),
            1.0,
            0.0,
            ENCODER_PAR,
        );
        cache.cap = cap;
        sims
    }

    /// Image-side backward of `d_sims` [b, n_captions]; returns
    /// dL/d(caption embeddings) [n_captions, d].
    fn backward_rows(&mut self, cache: &mut VseCache, d_sims: &[f32]) -> Vec<f32> {
        let d = self.embed();
        let (ni, nc) = (cache.img.len() / d, cache.cap.len() / d);
        let mut dimg = vec![0.0f32; ni * d];
        let mut dcap = vec![0.0f32; nc * d];
        gemm(
            MatMut::new(&mut dimg, ni, d),
            MatRef::new(d_sims, ni, nc),
            MatRef::new(&cache.cap, nc, d),
            1.0,
            0.0,
            ENCODER_PAR,
        );
        gemm(
            MatMut::new(&mut dcap, nc, d),
            MatRef::new(d_sims, ni, nc).t(),
            MatRef::new(&cache.img, ni, d),
            1.0,
            0.0,
            ENCODER_PAR,
        );
        let img_cache = cache
            .img_cache
            .take()
            .expect("one image backward per forward");
        match (img_cache, &mut self.mlp) {
            (VseImageCache::Plain(c), _) => self.img_enc.backward(&c, dimg, ENCODER_PAR),
            (VseImageCache::Mlp(c), Some(mlp)) => {
                region_encoder::backward(&mut self.img_enc, mlp, c, dimg, ENCODER_PAR)
            }
            (VseImageCache::Mlp(_), None) => unreachable!("a region-MLP cache without the MLP"),
        }
        dcap
    }

    /// Pooled, normalised image embeddings: x: [n, R, img_dim] → ([n, d],
    /// cache); vse-infty through its region encoder (`train`: the MLP's
    /// batch norm on the batch's statistics).
    pub fn encode_images(
        &self,
        x: Vec<f32>,
        n_regions: usize,
        train: bool,
    ) -> (Vec<f32>, VseImageCache) {
        match &self.mlp {
            None => {
                let (y, c) = self.img_enc.forward(x, n_regions, ENCODER_PAR);
                (y, VseImageCache::Plain(c))
            }
            Some(mlp) => {
                let (y, c) =
                    region_encoder::forward(&self.img_enc, mlp, x, n_regions, train, ENCODER_PAR);
                (y, VseImageCache::Mlp(c))
            }
        }
    }
}

impl Module for Vse {
    fn params(&self) -> Vec<&Param> {
        let mut v = self.img_enc.params();
        v.extend(self.mlp.iter().flat_map(|m| m.params()));
        v.extend(self.txt_enc.params());
        v
    }
    fn params_mut(&mut self) -> Vec<&mut Param> {
        let mut v = self.img_enc.params_mut();
        v.extend(self.mlp.iter_mut().flat_map(|m| m.params_mut()));
        v.extend(self.txt_enc.params_mut());
        v
    }
    fn buffers(&self) -> Vec<&Param> {
        self.mlp.iter().flat_map(|m| m.buffers()).collect()
    }
    fn buffers_mut(&mut self) -> Vec<&mut Param> {
        self.mlp.iter_mut().flat_map(|m| m.buffers_mut()).collect()
    }
}

#[cfg(test)]
mod tests {
    use crate::engine::param::Module;
    use crate::model::{Backbone, Model, ModelConfig, VsePool};

    /// docs/method.md §13.7: VSE∞'s region MLP adds 1,577,472 parameters at
    /// img_dim 2048, d 1024 to vse with GPO pooling.
    #[test]
    fn vse_infty_adds_the_region_mlp_s_parameters() {
        let gpo = ModelConfig {
            vse_pool: VsePool::Gpo,
            ..ModelConfig::new(Backbone::Vse, 8481)
        };
        let vse = Model::new(&gpo, 0).unwrap();
        let infty = Model::new(&ModelConfig::new(Backbone::VseInfty, 8481), 0).unwrap();
        assert_eq!(infty.num_params() - vse.num_params(), 1_577_472);
    }
}
