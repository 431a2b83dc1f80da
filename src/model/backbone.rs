//! The expansion of the backbone table ([`crate::model::registry`]): from
//! one row per backbone (`Variant = "spelling" => Type`, with its doc), the
//! [`backbones!`] macro writes
//! - `Backbone`, the enum of backbone names (config, CLI and serde spelling),
//!   with `Backbone::ALL` and `Backbone::name`;
//! - `Model` (a backbone with its configuration) and `ModelCache` (its
//!   forward cache), and their forwarding of [`Module`](crate::engine::param::Module)
//!   and [`Trainable`](crate::model::Trainable);
//! - `Model::new`, `Model::config`, `Model::matcher`;
//! - the inference registry `BACKBONES` (`Entry`: name → network builder);
//! - `detect`: which backbone a weights file is (import detection);
//! - `forward_flops`: a pass's FLOP terms (`dbl bench`).
//!
//! A row's type must provide `Type::new(&ModelConfig, seed) -> Result<Self,
//! ConfigError>`, `Type::from_tensors(Backbone, &TensorShapes) ->
//! Option<Result<ModelConfig, String>>` (its checkpoint layout),
//! `Type::forward_flops(&ModelConfig, n_img, lengths) ->
//! FlopTerms` ([`crate::model::flops`]), [`Trainable`](crate::model::Trainable),
//! [`Module`](crate::engine::param::Module) and
//! [`Matcher`](crate::model::matcher::Matcher). Two rows may share a type
//! (sgr and saf are one network with two heads).

/// Expands the backbone table (see the module docs).
macro_rules! backbones {
    ($( $(#[doc = $doc:literal])* $variant:ident = $name:literal => $ty:ty ),+ $(,)?) => {
        /// Which matching network: one variant per row of the backbone table.
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
        )]
        pub enum Backbone {
            $(
                $(#[doc = $doc])*
                #[serde(rename = $name)]
                #[value(name = $name)]
                $variant,
            )+
        }

        impl Backbone {
            /// Every registered backbone, in table order.
            pub const ALL: &'static [Backbone] = &[$(Backbone::$variant),+];

            /// The CLI / config spelling (`scan-ave`, `vse`, …).
            pub fn name(self) -> &'static str {
                match self {
                    $(Backbone::$variant => $name,)+
                }
            }
        }

        /// A backbone with its configuration.
        // A few models live per process and are never moved in hot loops;
        // boxing would only add an indirection.
        #[allow(clippy::large_enum_variant)]
        #[derive(Debug, Clone, PartialEq)]
        pub enum Model {
            $(
                $(#[doc = $doc])*
                $variant(ModelConfig, $ty),
            )+
        }

        /// The forward cache of a [`Model`] (the variant of the model that made it).
        #[derive(Debug)]
        pub enum ModelCache {
            $(
                $(#[doc = $doc])*
                $variant(Box<<$ty as Trainable>::Cache>),
            )+
        }

        impl Model {
            /// Validates `cfg` and initialises the network from `seed` (docs/method.md §5 init).
            pub fn new(cfg: &ModelConfig, seed: u64) -> Result<Self, ConfigError> {
                Ok(match cfg.backbone {
                    $(Backbone::$variant => Model::$variant(cfg.clone(), <$ty>::new(cfg, seed)?),)+
                })
            }

            /// The configuration it was built from.
            pub fn config(&self) -> &ModelConfig {
                match self {
                    $(Model::$variant(c, _) => c,)+
                }
            }

            /// The network as an inference [`Matcher`].
            pub fn matcher(&self) -> &dyn Matcher {
                match self {
                    $(Model::$variant(_, m) => m,)+
                }
            }
        }

        impl Module for Model {
            fn params(&self) -> Vec<&Param> {
                match self {
                    $(Model::$variant(_, m) => m.params(),)+
                }
            }
            fn params_mut(&mut self) -> Vec<&mut Param> {
                match self {
                    $(Model::$variant(_, m) => m.params_mut(),)+
                }
            }
            fn buffers(&self) -> Vec<&Param> {
                match self {
                    $(Model::$variant(_, m) => m.buffers(),)+
                }
            }
            fn buffers_mut(&mut self) -> Vec<&mut Param> {
                match self {
                    $(Model::$variant(_, m) => m.buffers_mut(),)+
                }
            }
        }

        impl Trainable for Model {
            type Cache = ModelCache;

            fn forward(
                &self,
                batch: &Batch,
                train: bool,
                rng: &mut EngineRng,
            ) -> (Vec<f32>, ModelCache) {
                match self {
                    $(Model::$variant(_, m) => {
                        let (s, c) = m.forward(batch, train, rng);
                        (s, ModelCache::$variant(Box::new(c)))
                    })+
                }
            }

            fn backward(&mut self, cache: ModelCache, d_sims: &[f32]) {
                match (self, cache) {
                    $((Model::$variant(_, m), ModelCache::$variant(c)) => m.backward(*c, d_sims),)+
                    _ => panic!("model backward: the cache comes from another backbone"),
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
                    $(Model::$variant(_, m) => {
                        let (w, c) = m.encode_shard(batch, rows, train, rng)?;
                        (w, ModelCache::$variant(Box::new(c)))
                    })+
                })
            }

            fn score_shard(&self, cache: &mut ModelCache, captions: EncodedCaptions) -> Vec<f32> {
                match (self, cache) {
                    $((Model::$variant(_, m), ModelCache::$variant(c)) => m.score_shard(c, captions),)+
                    _ => panic!("model score_shard: the cache comes from another backbone"),
                }
            }

            fn backward_shard(&mut self, cache: &mut ModelCache, d_block: &[f32]) -> Vec<f32> {
                match (self, cache) {
                    $((Model::$variant(_, m), ModelCache::$variant(c)) => m.backward_shard(c, d_block),)+
                    _ => panic!("model backward_shard: the cache comes from another backbone"),
                }
            }

            fn backward_captions(&mut self, cache: ModelCache, d_captions: Vec<f32>) {
                match (self, cache) {
                    $((Model::$variant(_, m), ModelCache::$variant(c)) => {
                        m.backward_captions(*c, d_captions)
                    })+
                    _ => panic!("model backward_captions: the cache comes from another backbone"),
                }
            }

            fn score_split_ranks(&self, ds: &Precomp, comm: &dyn Comm) -> Vec<f32> {
                match self {
                    $(Model::$variant(_, m) => m.score_split_ranks(ds, comm),)+
                }
            }

            fn score_split(&self, ds: &Precomp) -> Vec<f32> {
                match self {
                    $(Model::$variant(_, m) => m.score_split(ds),)+
                }
            }

            fn score_split_with(
                &self,
                ds: &Precomp,
                precision: HeadPrecision,
            ) -> Result<Vec<f32>, PrecisionError> {
                match self {
                    $(Model::$variant(_, m) => m.score_split_with(ds, precision),)+
                }
            }
        }

        /// One registered backbone of inference.
        pub struct Entry {
            /// The backbone.
            pub backbone: Backbone,
            /// Builds the network from a config (weights initialised from seed 0;
            /// callers load a checkpoint over them).
            pub build: fn(&ModelConfig) -> Result<Box<dyn Net>, ConfigError>,
        }

        /// Recognises a weights file (dbl names, e.g. converted from an
        /// original checkpoint): the one registered backbone whose
        /// `from_tensors` claims `t`, with its sizes; or what is wrong.
        pub fn detect(t: &crate::model::weights::TensorShapes) -> Result<ModelConfig, String> {
            let mut found: Vec<ModelConfig> = Vec::new();
            $(
                if let Some(c) = <$ty>::from_tensors(Backbone::$variant, t) {
                    found.push(c?);
                }
            )+
            match found.len() {
                1 => Ok(found.remove(0)),
                0 => Err(format!(
                    "the tensors are no registered backbone's ({})",
                    [$($name),+].join(", ")
                )),
                _ => Err(format!(
                    "the tensors fit several backbones: {}",
                    found.iter().map(|c| c.backbone.name()).collect::<Vec<_>>().join(", ")
                )),
            }
        }

        /// The forward FLOP terms of `cfg`'s backbone scoring `n_img`
        /// images against captions of `lengths` tokens ([`crate::model::flops`]).
        pub fn forward_flops(
            cfg: &ModelConfig,
            n_img: usize,
            lengths: &[usize],
        ) -> crate::model::flops::FlopTerms {
            match cfg.backbone {
                $(Backbone::$variant => <$ty>::forward_flops(cfg, n_img, lengths),)+
            }
        }

        /// Every backbone inference knows, in table order.
        pub const BACKBONES: &[Entry] = &[
            $(Entry {
                backbone: Backbone::$variant,
                build: |c| Ok(Box::new(<$ty>::new(c, 0)?)),
            },)+
        ];
    };
}

pub(crate) use backbones;

#[cfg(test)]
mod tests {
    use crate::engine::param::Module;
    use crate::model::{Backbone, Model, ModelConfig};

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
