//! [`Model`]: either backbone behind one type, built from a [`ModelConfig`]
//! and a seed, so the trainer, checkpoints and the CLI need not know which.

use crate::data::batch::Batch;
use crate::data::precomp::Precomp;
use crate::engine::param::{Module, Param};
use crate::engine::rng::EngineRng;
use crate::model::Trainable;
use crate::model::config::{Backbone, ConfigError, ModelConfig};
use crate::model::encode::EncodedCaptions;
use crate::model::precision::{HeadPrecision, PrecisionError};
use crate::model::scan_ave::{ScanAve, ScanAveCache};
use crate::model::sgraf::{Sgraf, SgrafCache};
use crate::model::vse::{Vse, VseCache};

/// A backbone with its configuration.
// A few models live per process and are never moved in hot loops; boxing
// would only add an indirection.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Model {
    /// scan-ave.
    ScanAve(ModelConfig, ScanAve),
    /// vse.
    Vse(ModelConfig, Vse),
    /// sgr or saf.
    Sgraf(ModelConfig, Sgraf),
}

/// The forward cache of either backbone.
#[derive(Debug)]
pub enum ModelCache {
    /// From [`Model::ScanAve`].
    ScanAve(ScanAveCache),
    /// From [`Model::Vse`].
    Vse(VseCache),
    /// From [`Model::Sgraf`].
    Sgraf(Box<SgrafCache>),
}

impl Model {
    /// Validates `cfg` and initialises the network from `seed` (docs/method.md §5 init).
    pub fn new(cfg: &ModelConfig, seed: u64) -> Result<Self, ConfigError> {
        Ok(match cfg.backbone {
            Backbone::ScanAve => Model::ScanAve(cfg.clone(), ScanAve::new(cfg, seed)?),
            Backbone::Vse => Model::Vse(cfg.clone(), Vse::new(cfg, seed)?),
            Backbone::Sgr | Backbone::Saf => Model::Sgraf(cfg.clone(), Sgraf::new(cfg, seed)?),
        })
    }

    /// The configuration it was built from.
    pub fn config(&self) -> &ModelConfig {
        match self {
            Model::ScanAve(c, _) | Model::Vse(c, _) | Model::Sgraf(c, _) => c,
        }
    }
}

impl Module for Model {
    fn params(&self) -> Vec<&Param> {
        match self {
            Model::ScanAve(_, m) => m.params(),
            Model::Vse(_, m) => m.params(),
            Model::Sgraf(_, m) => m.params(),
        }
    }
    fn params_mut(&mut self) -> Vec<&mut Param> {
        match self {
            Model::ScanAve(_, m) => m.params_mut(),
            Model::Vse(_, m) => m.params_mut(),
            Model::Sgraf(_, m) => m.params_mut(),
        }
    }
    fn buffers(&self) -> Vec<&Param> {
        match self {
            Model::Sgraf(_, m) => m.buffers(),
            Model::ScanAve(..) | Model::Vse(..) => Vec::new(),
        }
    }
    fn buffers_mut(&mut self) -> Vec<&mut Param> {
        match self {
            Model::Sgraf(_, m) => m.buffers_mut(),
            Model::ScanAve(..) | Model::Vse(..) => Vec::new(),
        }
    }
}

impl Trainable for Model {
    type Cache = ModelCache;

    fn forward(&self, batch: &Batch, train: bool, rng: &mut EngineRng) -> (Vec<f32>, ModelCache) {
        match self {
            Model::ScanAve(_, m) => {
                let (s, c) = m.forward(batch, train, rng);
                (s, ModelCache::ScanAve(c))
            }
            Model::Vse(_, m) => {
                let (s, c) = m.forward(batch, train, rng);
                (s, ModelCache::Vse(c))
            }
            Model::Sgraf(_, m) => {
                let (s, c) = m.forward(batch, train, rng);
                (s, ModelCache::Sgraf(Box::new(c)))
            }
        }
    }

    fn backward(&mut self, cache: ModelCache, d_sims: &[f32]) {
        match (self, cache) {
            (Model::ScanAve(_, m), ModelCache::ScanAve(c)) => m.backward(c, d_sims),
            (Model::Vse(_, m), ModelCache::Vse(c)) => m.backward(c, d_sims),
            (Model::Sgraf(_, m), ModelCache::Sgraf(c)) => m.backward(*c, d_sims),
            _ => panic!("model backward: the cache comes from the other backbone"),
        }
    }

    fn encode_shard(
        &self,
        batch: &Batch,
        rows: std::ops::Range<usize>,
        train: bool,
        rng: &mut EngineRng,
    ) -> Option<(EncodedCaptions, ModelCache)> {
        Some(match self {
            Model::ScanAve(_, m) => {
                let (w, c) = m.encode_shard(batch, rows, train, rng)?;
                (w, ModelCache::ScanAve(c))
            }
            Model::Vse(_, m) => {
                let (w, c) = m.encode_shard(batch, rows, train, rng)?;
                (w, ModelCache::Vse(c))
            }
            // sgr/saf keep the defaults: every rank runs the whole batch.
            Model::Sgraf(_, m) => {
                let (w, c) = m.encode_shard(batch, rows, train, rng)?;
                (w, ModelCache::Sgraf(Box::new(c)))
            }
        })
    }

    fn score_shard(&self, cache: &mut ModelCache, captions: EncodedCaptions) -> Vec<f32> {
        match (self, cache) {
            (Model::ScanAve(_, m), ModelCache::ScanAve(c)) => m.score_shard(c, captions),
            (Model::Vse(_, m), ModelCache::Vse(c)) => m.score_shard(c, captions),
            _ => panic!("model score_shard: the cache comes from the other backbone"),
        }
    }

    fn backward_shard(&mut self, cache: &mut ModelCache, d_block: &[f32]) -> Vec<f32> {
        match (self, cache) {
            (Model::ScanAve(_, m), ModelCache::ScanAve(c)) => m.backward_shard(c, d_block),
            (Model::Vse(_, m), ModelCache::Vse(c)) => m.backward_shard(c, d_block),
            _ => panic!("model backward_shard: the cache comes from the other backbone"),
        }
    }

    fn backward_captions(&mut self, cache: ModelCache, d_captions: Vec<f32>) {
        match (self, cache) {
            (Model::ScanAve(_, m), ModelCache::ScanAve(c)) => m.backward_captions(c, d_captions),
            (Model::Vse(_, m), ModelCache::Vse(c)) => m.backward_captions(c, d_captions),
            _ => panic!("model backward_captions: the cache comes from the other backbone"),
        }
    }

    fn score_split_ranks(&self, ds: &Precomp, comm: &dyn crate::dist::Comm) -> Vec<f32> {
        match self {
            Model::ScanAve(_, m) => m.score_split_ranks(ds, comm),
            Model::Vse(_, m) => m.score_split_ranks(ds, comm),
            Model::Sgraf(_, m) => m.score_split_ranks(ds, comm),
        }
    }

    fn score_split(&self, ds: &Precomp) -> Vec<f32> {
        match self {
            Model::ScanAve(_, m) => m.score_split(ds),
            Model::Vse(_, m) => m.score_split(ds),
            Model::Sgraf(_, m) => m.score_split(ds),
        }
    }

    fn score_split_with(
        &self,
        ds: &Precomp,
        precision: HeadPrecision,
    ) -> Result<Vec<f32>, PrecisionError> {
        match self {
            Model::ScanAve(_, m) => m.score_split_with(ds, precision),
            Model::Vse(_, m) => m.score_split_with(ds, precision),
            Model::Sgraf(_, m) => m.score_split_with(ds, precision),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_count_matches_spec() {
        // docs/method.md §5.5: 13,052,077 at V = 8,481 (F30K), 13,913,677 at V = 11,353 (COCO).
        for (v, want) in [(8481, 13_052_077), (11353, 13_913_677)] {
            let cfg = ModelConfig::new(Backbone::ScanAve, v);
            let m = Model::new(&cfg, 0).unwrap();
            assert_eq!(m.num_params(), want);
        }
        let vse = Model::new(&ModelConfig::new(Backbone::Vse, 8481), 0).unwrap();
        assert_eq!(vse.num_params(), 13_052_077 - 262_400 - 257);
    }

    #[test]
    fn names_follow_the_state_dict() {
        let cfg = ModelConfig {
            embed: 8,
            word_dim: 4,
            sim_dim: 3,
            img_dim: 5,
            ..ModelConfig::new(Backbone::ScanAve, 7)
        };
        let m = Model::new(&cfg, 1).unwrap();
        let names: Vec<&str> = m.params().iter().map(|p| p.name.as_str()).collect();
        let mut want = vec![
            "img_enc.fc.weight",
            "img_enc.fc.bias",
            "txt_enc.embed.weight",
        ];
        let gru: Vec<String> = ["", "_reverse"]
            .iter()
            .flat_map(|s| {
                ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]
                    .iter()
                    .map(move |w| format!("txt_enc.cap_rnn.{w}{s}"))
            })
            .collect();
        want.extend(gru.iter().map(String::as_str));
        want.extend([
            "sim_enc.sim_tran_w.weight",
            "sim_enc.sim_tran_w.bias",
            "sim_enc.sim_eval_w.weight",
            "sim_enc.sim_eval_w.bias",
        ]);
        assert_eq!(names, want);
    }
}
