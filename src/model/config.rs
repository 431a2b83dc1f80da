//! Typed, validated configuration of a backbone (docs/method.md §5): which network
//! (a [`Backbone`] of the table in [`crate::model::registry`]) and its sizes. Defaults are the authors' (d = 1024, word dim 300, sim dim
//! 256, region features 2048, smoothing λ = 9, word dropout 0.4).

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use crate::model::registry::Backbone;

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

/// Backbone configuration. Validate once with [`ModelConfig::validate`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Network kind.
    pub backbone: Backbone,
    /// Vocabulary size V (rows of the word embedding); 8,481 for F30K.
    pub vocab_size: usize,
    /// Word embedding width (default 300).
    #[serde(default = "d_word_dim")]
    pub word_dim: usize,
    /// Joint embedding width d (default 1024; GRU hidden size too).
    #[serde(default = "d_embed")]
    pub embed: usize,
    /// Similarity vector width of the scan-ave head (default 256).
    #[serde(default = "d_sim_dim")]
    pub sim_dim: usize,
    /// Region feature width (default 2048).
    #[serde(default = "d_img_dim")]
    pub img_dim: usize,
    /// Attention softmax smoothing λ (default 9.0).
    #[serde(default = "d_smooth")]
    pub smooth: f32,
    /// Word-embedding dropout probability in training (default 0.4).
    #[serde(default = "d_dropout")]
    pub dropout: f32,
    /// Region pooling of `vse` (default mean; ignored by scan-ave).
    #[serde(default)]
    pub vse_pool: VsePool,
    /// Regions per image (default 36): the channels of sgr/saf's visual
    /// batch norm (`BatchNorm1d(36)` in the authors' code); others ignore it.
    #[serde(default = "d_regions")]
    pub regions: usize,
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

/// A configuration value out of range.
#[derive(Debug, Error, PartialEq)]
pub enum ConfigError {
    /// A size is zero.
    #[error("model config: `{field}` must be at least 1, got 0")]
    ZeroSize {
        /// The field.
        field: &'static str,
    },
    /// `dropout` outside [0, 1).
    #[error("model config: `dropout` must lie in [0, 1), got {0}")]
    Dropout(f32),
    /// `smooth` not finite and positive.
    #[error("model config: `smooth` must be finite and > 0, got {0}")]
    Smooth(f32),
}

impl ModelConfig {
    /// The authors' sizes for `backbone` at vocabulary size `vocab_size`.
    pub fn new(backbone: Backbone, vocab_size: usize) -> Self {
        ModelConfig {
            backbone,
            vocab_size,
            word_dim: d_word_dim(),
            embed: d_embed(),
            sim_dim: d_sim_dim(),
            img_dim: d_img_dim(),
            smooth: d_smooth(),
            dropout: d_dropout(),
            vse_pool: VsePool::Mean,
            regions: d_regions(),
        }
    }

    /// Checks every field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (field, v) in [
            ("vocab_size", self.vocab_size),
            ("word_dim", self.word_dim),
            ("embed", self.embed),
            ("sim_dim", self.sim_dim),
            ("img_dim", self.img_dim),
            ("regions", self.regions),
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
        assert_eq!(minimal, ModelConfig::new(Backbone::Vse, 10));
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
    }
}
