//! The benchmark configurations of `tools/bench/configs.py` (same names
//! and dimensions): the released backbone's sizes (docs/method.md §5), F30K vocabulary
//! 8,481 (docs/method.md §6.2), batch 128 (docs/method.md §7), eval batch / shard 100 (docs/method.md §6.3).

use crate::model::{Backbone, ModelConfig};

/// Training step or split scoring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One optimiser step of every branch on the fixed batch.
    Train,
    /// Encode a split in eval mode and score every image × caption pair.
    Score,
}

/// One configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchConfig {
    /// Name shared with the peer (`scan-train-baseline`, …).
    pub name: &'static str,
    /// What a repetition is.
    pub kind: Kind,
    /// Network.
    pub backbone: Backbone,
    /// Joint embedding d.
    pub embed: usize,
    /// 1 = baseline, 2 = OSS (branch 1 boosts from branch 0 with RM).
    pub branches: usize,
    /// Training batch.
    pub batch: usize,
    /// Head similarity width.
    pub sim_dim: usize,
    /// Word embedding width.
    pub word_dim: usize,
    /// Region feature width.
    pub img_dim: usize,
    /// Regions per image.
    pub regions: usize,
    /// Vocabulary size.
    pub vocab: usize,
}

/// Eval batch and scoring shard (docs/method.md §6.3, `evaluation.shard_attn_scores`).
pub const SHARD: usize = 100;
/// F30K test images (docs/method.md §6.1).
pub const FULL_IMAGES: usize = 1000;
/// F30K test captions.
pub const FULL_CAPTIONS: usize = 5000;

const fn cfg(
    name: &'static str,
    kind: Kind,
    backbone: Backbone,
    embed: usize,
    branches: usize,
) -> BenchConfig {
    BenchConfig {
        name,
        kind,
        backbone,
        embed,
        branches,
        batch: 128,
        sim_dim: 256,
        word_dim: 300,
        img_dim: 2048,
        regions: 36,
        vocab: 8481,
    }
}

/// Every configuration, in `configs.py` order.
pub const CONFIGS: [BenchConfig; 10] = [
    cfg(
        "scan-train-baseline",
        Kind::Train,
        Backbone::ScanAve,
        1024,
        1,
    ),
    cfg(
        "scan-train-baseline-e256",
        Kind::Train,
        Backbone::ScanAve,
        256,
        1,
    ),
    cfg("scan-train-oss", Kind::Train, Backbone::ScanAve, 1024, 2),
    cfg("vse-train", Kind::Train, Backbone::Vse, 1024, 1),
    cfg("scan-score", Kind::Score, Backbone::ScanAve, 1024, 1),
    cfg("vse-score", Kind::Score, Backbone::Vse, 1024, 1),
    cfg("sgr-train", Kind::Train, Backbone::Sgr, 1024, 1),
    cfg("saf-train", Kind::Train, Backbone::Saf, 1024, 1),
    cfg("sgr-score", Kind::Score, Backbone::Sgr, 1024, 1),
    cfg("saf-score", Kind::Score, Backbone::Saf, 1024, 1),
];

impl BenchConfig {
    /// Looks a configuration up by name.
    pub fn get(name: &str) -> Option<&'static BenchConfig> {
        CONFIGS.iter().find(|c| c.name == name)
    }

    /// The model configuration (authors' defaults for everything not listed).
    pub fn model(&self) -> ModelConfig {
        ModelConfig {
            word_dim: self.word_dim,
            embed: self.embed,
            sim_dim: self.sim_dim,
            img_dim: self.img_dim,
            regions: self.regions,
            ..ModelConfig::new(self.backbone, self.vocab)
        }
    }
}
