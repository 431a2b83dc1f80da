//! Analytic forward FLOP of a backbone (what `dbl bench` reports; the formula
//! is `tools/bench/flops.py`'s). Dominant GEMM terms only, multiply-add = 2
//! FLOP. Each backbone lists its own terms (`forward_flops` in its folder,
//! reached through the backbone table); the terms every backbone shares
//! (the encoders, the SCAN attention) are here.
//!
//! A term named `image_*` takes the region features (data) as input: its
//! backward computes the weight gradient only (`crate::bench::flops` counts
//! it 1× extra in a training step, every other term 2×).

use crate::model::config::ModelConfig;

/// Named forward FLOP terms of one pass.
pub type FlopTerms = Vec<(&'static str, u128)>;

/// The sizes a pass is counted at: `n_img` images of `cfg.regions` regions,
/// captions of `lengths` tokens.
#[derive(Debug, Clone, Copy)]
pub struct FlopShape<'a> {
    /// The backbone's sizes.
    pub cfg: &'a ModelConfig,
    /// Images.
    pub n_img: usize,
    /// Tokens per caption.
    pub lengths: &'a [usize],
}

impl<'a> FlopShape<'a> {
    /// `n_img` images against captions of `lengths` tokens, at `cfg`'s sizes.
    pub fn new(cfg: &'a ModelConfig, n_img: usize, lengths: &'a [usize]) -> Self {
        FlopShape {
            cfg,
            n_img,
            lengths,
        }
    }
    /// Images n.
    pub fn n(&self) -> u128 {
        self.n_img as u128
    }
    /// Captions.
    pub fn n_cap(&self) -> u128 {
        self.lengths.len() as u128
    }
    /// Tokens over all captions T.
    pub fn tokens(&self) -> u128 {
        self.lengths.iter().map(|&l| l as u128).sum()
    }
    /// Regions per image R.
    pub fn regions(&self) -> u128 {
        self.cfg.regions as u128
    }
    /// Embedding width E.
    pub fn embed(&self) -> u128 {
        self.cfg.embed as u128
    }
    /// Similarity width S.
    pub fn sim_dim(&self) -> u128 {
        self.cfg.sim_dim as u128
    }
}

/// The encoders every backbone has: the image FC on every region
/// (`image_fc`) and the BiGRU on every token (`gru`, 3 gates × 2 GEMMs × 2
/// directions).
pub fn encoder_terms(s: &FlopShape<'_>) -> FlopTerms {
    let (e, r) = (s.embed(), s.regions());
    vec![
        ("image_fc", 2 * s.n() * r * s.cfg.img_dim as u128 * e),
        ("gru", 12 * s.tokens() * e * (s.cfg.word_dim as u128 + e)),
    ]
}

/// The SCAN attention of every (image, word) pair and the head's `W_t`
/// projection of every attended word (scan-ave, sgr, saf).
pub fn scan_attention_terms(s: &FlopShape<'_>) -> FlopTerms {
    let (e, r, t) = (s.embed(), s.regions(), s.tokens());
    vec![
        ("head_attn", 2 * s.n() * t * r * e),
        ("head_ctx", 2 * s.n() * t * r * e),
        ("head_tran", 2 * s.n() * t * e * s.sim_dim()),
    ]
}
