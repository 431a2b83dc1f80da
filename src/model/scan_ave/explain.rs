//! scan-ave's explanation of one pair (docs/method.md §16): the word-to-region
//! attention and each word's exact share of the pre-tanh logit, read from
//! [`ScanHead::trace_pair`] (the scorer's own pass).

use crate::engine::l2norm::EPS;
use crate::model::explain::{Link, PairExplanation, dot, eval_layer, rows};
use crate::model::scan_head::ScanHead;

/// scan-ave: img: `[R, d]` region embeddings; words: `[n_w, d]`.
pub fn scan_ave(head: &ScanHead, img: &[f32], words: &[f32]) -> PairExplanation {
    let t = head.trace_pair(img, words);
    let s = head.sim_dim();
    let n = t.word_vectors.len() / s;
    let r = t.attention.len() / n;
    let (we, be) = eval_layer(head);
    let scale = 1.0 / (n as f64 * (t.pooled_norm + EPS) as f64);
    PairExplanation {
        score: t.score,
        link: Link::Tanh,
        attention: Some(rows(&t.attention, r)),
        word_contributions: t
            .word_vectors
            .chunks_exact(s)
            .map(|h| dot(we, h) * scale)
            .collect(),
        global_contribution: None,
        node_weights: None,
        features: Vec::new(),
        constant: be,
        method: "each word's share of the pre-tanh logit w_e·h (h = the normalised mean of the \
                 words' similarity vectors); score = tanh(Σ + bias)",
    }
}
