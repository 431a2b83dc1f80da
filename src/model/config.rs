//! Typed, validated configuration of a matching network (docs/method.md §5):
//! which network and its sizes. One type for every layer: the training
//! config's `[model]` section embeds it (`crate::train::config`, whose
//! backbone choice adds the trainer's test-only `tiny`, hence the parameter
//! `B`), a run's `config.json` records it, and inference builds from it.
//! Defaults are the authors' (d = 1024, word dim 300, sim dim 256, region
//! features 2048, 36 regions, smoothing λ = 9, word dropout 0.4).
//!
//! The sizes the data decides (`vocab_size`, `img_dim`, `regions`) may be
//! left out of a config file (0 = not given): training takes them from the
//! data ([`ModelConfig::with_data`], which refuses a given one that
//! disagrees), inference from the weights.

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use crate::model::registry::Backbone;

/// The released DBL backbone is the default choice.
impl Default for Backbone {
    fn default() -> Self {
        Backbone::ScanAve
    }
}

/// How `vse` pools region embeddings into one image embedding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum VsePool {
    /// Mean over regions (default).
    #[default]
    Mean,
    /// Element-wise max over regions (gradient to the first maximal region).
    Max,
    /// VSE∞'s Generalized Pooling Operator over regions and over words
    /// (docs/method.md §13.5).
    Gpo,
}

/// Network configuration: `B` is the backbone choice ([`Backbone`], the
/// table in [`crate::model::registry`]; the trainer's choice adds `tiny`).
/// Validate once with [`ModelConfig::validate`] (a network's complete
/// config) or [`ModelConfig::validate_choices`] (a config file's section,
/// before the data gives its sizes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig<B = Backbone> {
    /// Network kind (default scan-ave).
    #[serde(default)]
    pub backbone: B,
    /// Vocabulary size V (rows of the word embedding; 8,481 for F30K): from
    /// the data or the weights when 0 (not given).
    #[serde(default, skip_serializing_if = "unset")]
    pub vocab_size: usize,
    /// Word embedding width (default 300).
    #[serde(default = "d_word_dim")]
    pub word_dim: usize,
    /// Joint embedding width d (default 1024; GRU hidden size too).
    #[serde(default = "d_embed")]
    pub embed: usize,
    /// Similarity vector width of the scan-ave and SGRAF heads (default 256).
    #[serde(default = "d_sim_dim")]
    pub sim_dim: usize,
    /// Region feature width (2048 in the authors' data): from the data or
    /// the weights when 0 (not given).
    #[serde(default, skip_serializing_if = "unset")]
    pub img_dim: usize,
    /// Attention softmax smoothing λ (default 9.0).
    #[serde(default = "d_smooth")]
    pub smooth: f32,
    /// Word-embedding dropout probability in training (default 0.4).
    #[serde(default = "d_dropout")]
    pub dropout: f32,
    /// Region pooling of `vse` (default mean; ignored by the others).
    #[serde(default)]
    pub vse_pool: VsePool,
    /// Regions per image (36 in the authors' data): the channels of
    /// sgr/saf's visual batch norm (`BatchNorm1d(36)` in the authors' code;
    /// the others ignore it): from the data or the weights when 0 (not given).
    #[serde(default, skip_serializing_if = "unset")]
    pub regions: usize,
}

fn unset(v: &usize) -> bool {
    *v == 0
}

fn d_word_dim() -> usize {
    300
}
fn d_embed() -> usize {
    1024
}
fn d_sim_dim() -> usize {
    256
}
fn d_img_dim() -> usize {
    2048
}
fn d_regions() -> usize {
    36
}
fn d_smooth() -> f32 {
    9.0
}
fn d_dropout() -> f32 {
    0.4
}

/// A configuration value out of range; messages name the config key.
#[derive(Debug, Error, PartialEq)]
pub enum ConfigError {
    /// A size is zero.
    #[error("`model.{field}` must be at least 1, got 0")]
    ZeroSize {
        /// The field.
        field: &'static str,
    },
    /// `dropout` outside [0, 1).
    #[error("`model.dropout` must lie in [0, 1), got {0}")]
    Dropout(f32),
    /// `smooth` not finite and positive.
    #[error("`model.smooth` must be finite and > 0, got {0}")]
    Smooth(f32),
    /// A size the data decides was given and differs from the data's.
    #[error(
        "`model.{field}` is {given} but the data gives {data} (leave it out: it is read from \
         the data)"
    )]
    DataMismatch {
        /// The field.
        field: &'static str,
        /// The configured value.
        given: usize,
        /// The data's value.
        data: usize,
    },
}

impl<B: Default> Default for ModelConfig<B> {
    /// The authors' sizes for the default backbone; the data's sizes not given.
    fn default() -> Self {
        ModelConfig {
            backbone: B::default(),
            vocab_size: 0,
            word_dim: d_word_dim(),
            embed: d_embed(),
            sim_dim: d_sim_dim(),
            img_dim: 0,
            smooth: d_smooth(),
            dropout: d_dropout(),
            vse_pool: VsePool::Mean,
            regions: 0,
        }
    }
}

impl ModelConfig {
    /// The authors' sizes for `backbone` at vocabulary size `vocab_size`
    /// (2048-wide features, 36 regions).
    pub fn new(backbone: Backbone, vocab_size: usize) -> Self {
        ModelConfig {
            backbone,
            vocab_size,
            img_dim: d_img_dim(),
            regions: d_regions(),
            ..Self::default()
        }
    }
}

impl<B> ModelConfig<B> {
    /// Checks what a config file chooses (sizes, dropout, smoothing); the
    /// data's sizes may still be 0 (not given).
    pub fn validate_choices(&self) -> Result<(), ConfigError> {
        for (field, v) in [
            ("word_dim", self.word_dim),
            ("embed", self.embed),
            ("sim_dim", self.sim_dim),
        ] {
            if v == 0 {
                return Err(ConfigError::ZeroSize { field });
            }
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(ConfigError::Dropout(self.dropout));
        }
        if !(self.smooth.is_finite() && self.smooth > 0.0) {
            return Err(ConfigError::Smooth(self.smooth));
        }
        Ok(())
    }

    /// Checks every field of a network's complete config (the data's sizes given).
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (field, v) in self.data_sizes() {
            if v == 0 {
                return Err(ConfigError::ZeroSize { field });
            }
        }
        self.validate_choices()
    }

    fn data_sizes(&self) -> [(&'static str, usize); 3] {
        [
            ("vocab_size", self.vocab_size),
            ("img_dim", self.img_dim),
            ("regions", self.regions),
        ]
    }

    /// The same sizes with backbone choice `backbone`.
    pub fn with_backbone<C>(self, backbone: C) -> ModelConfig<C> {
        ModelConfig {
            backbone,
            vocab_size: self.vocab_size,
            word_dim: self.word_dim,
            embed: self.embed,
            sim_dim: self.sim_dim,
            img_dim: self.img_dim,
            smooth: self.smooth,
            dropout: self.dropout,
            vse_pool: self.vse_pool,
            regions: self.regions,
        }
    }

    /// The complete, validated config for data of `vocab_size` words (rows
    /// of the word embedding), `img_dim`-wide features and `regions` regions
    /// per image; a size given here that differs from the data's is refused.
    pub fn with_data(
        mut self,
        vocab_size: usize,
        img_dim: usize,
        regions: usize,
    ) -> Result<Self, ConfigError> {
        for ((field, given), data) in self
            .data_sizes()
            .into_iter()
            .zip([vocab_size, img_dim, regions])
        {
            if given != 0 && given != data {
                return Err(ConfigError::DataMismatch { field, given, data });
            }
        }
        (self.vocab_size, self.img_dim, self.regions) = (vocab_size, img_dim, regions);
        self.validate()?;
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_round_trip() {
        let c = ModelConfig::new(Backbone::ScanAve, 8481);
        c.validate().unwrap();
        let s = serde_json::to_string(&c).unwrap();
        assert!(s.contains("\"scan-ave\""), "{s}");
        let back: ModelConfig = serde_json::from_str(&s).unwrap();
        assert_eq!(back, c);
        let minimal: ModelConfig =
            serde_json::from_str(r#"{"backbone":"vse","vocab_size":10}"#).unwrap();
        let filled = minimal.clone().with_data(10, 2048, 36).unwrap();
        assert_eq!(filled, ModelConfig::new(Backbone::Vse, 10));
        // The data's sizes are left out when not given, and refused when they disagree.
        assert_eq!(
            serde_json::to_string(&ModelConfig::<Backbone>::default()).unwrap(),
            r#"{"backbone":"scan-ave","word_dim":300,"embed":1024,"sim_dim":256,"smooth":9.0,"dropout":0.4,"vse_pool":"mean"}"#
        );
        assert_eq!(
            minimal.with_data(11, 2048, 36),
            Err(ConfigError::DataMismatch {
                field: "vocab_size",
                given: 10,
                data: 11
            })
        );
    }

    #[test]
    fn rejects_bad_values() {
        let mut c = ModelConfig::new(Backbone::Vse, 0);
        assert_eq!(
            c.validate(),
            Err(ConfigError::ZeroSize {
                field: "vocab_size"
            })
        );
        c.vocab_size = 5;
        c.dropout = 1.0;
        assert_eq!(c.validate(), Err(ConfigError::Dropout(1.0)));
        c.dropout = 0.0;
        c.smooth = f32::NAN;
        assert!(matches!(c.validate(), Err(ConfigError::Smooth(_))));
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("`model.smooth`")
        );
        // A config file's section (the data's sizes not given yet) checks its choices only.
        let section = ModelConfig::<Backbone>::default();
        section.validate_choices().unwrap();
        assert_eq!(
            section.validate(),
            Err(ConfigError::ZeroSize {
                field: "vocab_size"
            })
        );
    }
}
