//! vse explanation of one pair (docs/method.md §16): no attention (vse pools
//! before matching), so each embedding feature's part of the cosine.

use crate::model::explain::{FeatureContribution, Link, PairExplanation};

/// vse: img, cap: `[d]` pooled, normalised embeddings; `score` as the
/// scorer computed it (the dot product's rounding is the scorer's).
pub fn pooled(img: &[f32], cap: &[f32], score: f32) -> PairExplanation {
    let mut features: Vec<FeatureContribution> = img
        .iter()
        .zip(cap)
        .enumerate()
        .map(|(feature, (&a, &b))| FeatureContribution {
            feature,
            contribution: a as f64 * b as f64,
        })
        .collect();
    features.sort_by(|a, b| {
        b.contribution
            .abs()
            .total_cmp(&a.contribution.abs())
            .then(a.feature.cmp(&b.feature))
    });
    PairExplanation {
        score,
        link: Link::Identity,
        attention: None,
        word_contributions: Vec::new(),
        global_contribution: None,
        node_weights: None,
        features,
        constant: 0.0,
        method: "each embedding feature's part img_f·cap_f of the cosine of the pooled \
                 embeddings (no attention: vse pools before matching)",
    }
}
