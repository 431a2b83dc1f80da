//! Why did a pair match? (issue 27 §2, docs/method.md §16.) For one encoded
//! image and one encoded caption, the numbers the similarity head used for
//! that pair, read from the same pass the block scorer runs (the heads'
//! `trace_pair`), so the explanation's score is the scorer's:
//!
//! - scan-ave: the word-to-region attention α `[n_w, R]`, and each word's
//!   share of the pre-tanh logit: `h = mean_k H_k / ‖mean_k H_k‖`, so
//!   `w_e·h = Σ_k w_e·H_k / (n_w ‖mean H‖)` — an exact split over words;
//! - saf: α of the local alignment, and each node's share of the pre-sigmoid
//!   logit: `v = Σ_k a_k X_k / ‖·‖`, so `w_e·v = Σ_k a_k w_e·X_k / ‖·‖`
//!   (node 0 is the global alignment, the others the words);
//! - sgr: α, and the split of the pre-sigmoid logit over the last reasoning
//!   step's input nodes: `y = relu(W_g Σ_k e_k x_k + b_g)`; with the relu's
//!   active set fixed, `w_e·y = Σ_k e_k (W_gᵀ(m ⊙ w_e))·x_k + (m ⊙ w_e)·b_g`
//!   (exact; node k is word k's node after the first steps, which mix words);
//! - vse (pooled, no attention): `s = Σ_f img_f · cap_f`, the contribution of
//!   each embedding feature f, largest magnitudes first.
//!
//! In every case `Σ contributions + constant` is the logit and the link
//! (tanh, σ or identity) of it gives the score up to f32 rounding. The score
//! is the block scorer's bit for bit for scan-ave and vse; for sgr and saf
//! within 1e-6, as the scorer forms the attention logits of four images in
//! one GEMM, so its own last bits depend on an image's neighbours.

use serde::Serialize;

use super::matcher::{Matcher, ScoreError};
use crate::model::scan_head::ScanHead;

/// The function that turns the logit into the score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Link {
    /// scan-ave: `s = tanh(logit)`.
    Tanh,
    /// sgr, saf: `s = σ(logit)`.
    Sigmoid,
    /// vse: `s = logit` (a cosine).
    Identity,
}

impl Link {
    /// The score of `logit`.
    pub fn apply(self, logit: f64) -> f64 {
        match self {
            Link::Tanh => logit.tanh(),
            Link::Sigmoid => 1.0 / (1.0 + (-logit).exp()),
            Link::Identity => logit,
        }
    }
}

/// One embedding feature's part of a pooled (vse) score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeatureContribution {
    /// Feature index f in `0..d`.
    pub feature: usize,
    /// `img_f · cap_f`.
    pub contribution: f64,
}

/// What the head did with one image × caption pair (no words, no ids).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PairExplanation {
    /// The score, bit for bit the block scorer's for this pair.
    pub score: f32,
    /// logit → score.
    pub link: Link,
    /// Word-to-region attention (softmax over regions): `[n_w][R]`; none for vse.
    pub attention: Option<Vec<Vec<f32>>>,
    /// Each word's part of the logit `[n_w]` (empty for vse).
    pub word_contributions: Vec<f64>,
    /// sgr, saf: the global alignment node's part of the logit.
    pub global_contribution: Option<f64>,
    /// sgr, saf: the aggregation's weight of each node (global first) `[n_w + 1]`.
    pub node_weights: Option<Vec<f32>>,
    /// vse: the features' parts of the cosine, largest magnitude first.
    pub features: Vec<FeatureContribution>,
    /// The part of the logit that belongs to no word (biases).
    pub constant: f64,
    /// What the contributions split, in words.
    pub method: &'static str,
}

impl PairExplanation {
    /// `Σ contributions + constant`: the logit the score is the link of.
    pub fn logit(&self) -> f64 {
        self.word_contributions.iter().sum::<f64>()
            + self.global_contribution.unwrap_or(0.0)
            + self.features.iter().map(|f| f.contribution).sum::<f64>()
            + self.constant
    }
}

/// `Σ a·b` in f64.
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum()
}

/// `[n][w]` rows of a row-major buffer.
pub(crate) fn rows(x: &[f32], w: usize) -> Vec<Vec<f32>> {
    x.chunks_exact(w).map(<[f32]>::to_vec).collect()
}

/// The head's final projection: (w_e `[s]`, its bias).
pub(crate) fn eval_layer(head: &ScanHead) -> (&[f32], f64) {
    let we = &head.eval.weight.value;
    let be = head.eval.bias.as_ref().map_or(0.0, |b| b.value[0] as f64);
    (we, be)
}

/// The `k` regions word `w` attended to most: (region, α), largest first.
pub fn top_regions(attention: &[f32], k: usize) -> Vec<(usize, f32)> {
    let mut idx: Vec<usize> = (0..attention.len()).collect();
    idx.sort_by(|&a, &b| attention[b].total_cmp(&attention[a]).then(a.cmp(&b)));
    idx.into_iter().take(k).map(|r| (r, attention[r])).collect()
}

/// Explains `m`'s score of one encoded image `img: [m.image_rows(regions), d]`
/// and one encoded caption `cap: [m.caption_rows(n_tokens), d]`, after
/// checking those shapes.
pub fn explain_encoded(
    m: &dyn Matcher,
    img: &[f32],
    regions: usize,
    cap: &[f32],
    n_tokens: usize,
) -> Result<PairExplanation, ScoreError> {
    let d = m.embed_dim();
    let (ir, cr) = (m.image_rows(regions), m.caption_rows(n_tokens));
    if regions == 0 || n_tokens == 0 || img.len() != ir * d || cap.len() != cr * d {
        return Err(ScoreError::Shape(format!(
            "explain: expected an encoded image of {ir} x {d} and a caption of {cr} x {d} \
             values, got {} and {}",
            img.len(),
            cap.len()
        )));
    }
    m.explain_pair(img, cap)
}

/// One region and the attention a word gave it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegionWeight {
    /// Region index r in `0..R`.
    pub region: usize,
    /// α of the word for r.
    pub attention: f32,
}

/// A pair's explanation with its words (what `dbl explain` and
/// `POST /v1/explain` return).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explanation {
    /// The backbone (`scan-ave`, `sgr`, `saf`, `vse`).
    pub backbone: String,
    /// The caption's tokens, `<start>`/`<end>` included (one per attention row).
    pub words: Vec<String>,
    /// Regions of the image (R).
    pub regions: usize,
    /// Per word, the regions it attended to most (none for vse).
    pub top_regions: Vec<Vec<RegionWeight>>,
    /// The numbers themselves.
    #[serde(flatten)]
    pub pair: PairExplanation,
    /// `Σ contributions + constant` ([`PairExplanation::logit`]).
    pub logit: f64,
}

impl Explanation {
    /// `pair` with the caption's `words` and each word's `top` regions.
    pub fn new(
        backbone: &str,
        words: Vec<String>,
        regions: usize,
        pair: PairExplanation,
        top: usize,
    ) -> Self {
        let top_regions = pair
            .attention
            .iter()
            .flatten()
            .map(|row| {
                top_regions(row, top)
                    .into_iter()
                    .map(|(region, attention)| RegionWeight { region, attention })
                    .collect()
            })
            .collect();
        Explanation {
            backbone: backbone.to_string(),
            words,
            regions,
            top_regions,
            logit: pair.logit(),
            pair,
        }
    }
}

/// The tokens of `ids` as words (`<unk>` for an id outside the vocabulary,
/// e.g. OAS's appended `<mask>`).
pub fn words_of(vocab: &crate::data::vocab::Vocab, ids: &[u32]) -> Vec<String> {
    ids.iter()
        .map(|&i| vocab.word(i).unwrap_or("<unk>").to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::testutil::rand_vec;
    use crate::eval::sharded::BlockSize;
    use crate::model::config::{Backbone, ModelConfig};
    use crate::model::precision::HeadPrecision;
    use crate::model::registry;
    use crate::model::split::score_encoded;
    use crate::watch::Unwatched;

    /// For every backbone, each pair's explanation has the score `dbl score`
    /// computes (the same encoded images and captions through
    /// [`score_encoded`]): bit for bit for scan-ave and vse, within 1e-6 for
    /// sgr and saf (whose scorer's own bits depend on which images share
    /// its logits GEMM); the contributions add up to the logit
    /// whose link is the score (to f32 rounding of the head's own sums); the
    /// attention rows are distributions over the regions.
    #[test]
    fn explanation_scores_are_the_scorer_scores() {
        let (r, v, n_img, n_cap) = (5, 20, 7, 6);
        for &backbone in Backbone::ALL {
            let cfg = ModelConfig {
                embed: 16,
                word_dim: 8,
                sim_dim: 8,
                img_dim: 12,
                regions: r,
                ..ModelConfig::new(backbone, v)
            };
            let net = (registry::entry(backbone).unwrap().build)(&cfg).unwrap();
            let m = net.as_matcher();
            let x = rand_vec(n_img * r * 12, 1, 1.0);
            let caps: Vec<Vec<u32>> = (0..n_cap)
                .map(|j| (0..3 + j).map(|t| ((t * 7 + j * 3) % v) as u32).collect())
                .collect();
            let img = m.encode_images(&x, r);
            let cap = m.encode_captions(n_cap, &|j| &caps[j]);
            let sims = score_encoded(
                m,
                &img,
                r,
                &cap,
                HeadPrecision::F32,
                BlockSize::default(),
                &Unwatched,
            )
            .unwrap();
            let (d, per) = (m.embed_dim(), m.image_rows(r) * m.embed_dim());
            for i in 0..n_img {
                for j in 0..n_cap {
                    let c = &cap.rows[cap.offsets[j] * d..cap.offsets[j + 1] * d];
                    let e = explain_encoded(m, &img[i * per..(i + 1) * per], r, c, caps[j].len())
                        .unwrap();
                    let want = sims[i * n_cap + j];
                    if matches!(backbone, Backbone::Sgr | Backbone::Saf) {
                        // The sgr/saf scorer forms the attention logits of
                        // four images in one GEMM, so its own bits depend
                        // on the neighbours (1e-6, sgraf_head's test).
                        assert!(
                            (e.score - want).abs() <= 1e-6,
                            "{backbone:?} ({i}, {j}): {} vs {want}",
                            e.score
                        );
                    } else {
                        assert_eq!(
                            e.score.to_bits(),
                            want.to_bits(),
                            "{backbone:?} ({i}, {j}): {} vs {want}",
                            e.score
                        );
                    }
                    let back = e.link.apply(e.logit());
                    assert!(
                        (back - want as f64).abs() < 1e-5,
                        "{backbone:?} ({i}, {j}): link(Σ) = {back}, score {want}"
                    );
                    match &e.attention {
                        Some(att) => {
                            assert_eq!(att.len(), caps[j].len());
                            assert_eq!(e.word_contributions.len(), caps[j].len());
                            for row in att {
                                assert_eq!(row.len(), r);
                                let s: f32 = row.iter().sum();
                                assert!((s - 1.0).abs() < 1e-4, "{backbone:?}: Σα = {s}");
                            }
                        }
                        None => assert_eq!(e.features.len(), d),
                    }
                }
            }
        }
    }

    #[test]
    fn wrong_shapes_are_refused() {
        let cfg = ModelConfig {
            embed: 16,
            word_dim: 8,
            sim_dim: 8,
            img_dim: 12,
            ..ModelConfig::new(Backbone::ScanAve, 20)
        };
        let net = (registry::entry(Backbone::ScanAve).unwrap().build)(&cfg).unwrap();
        let m = net.as_matcher();
        let e = explain_encoded(m, &[0.0; 16 * 4], 5, &[0.0; 16 * 3], 3).unwrap_err();
        assert!(
            e.to_string()
                .contains("expected an encoded image of 5 x 16"),
            "{e}"
        );
    }

    #[test]
    fn top_regions_are_the_largest_first() {
        assert_eq!(
            top_regions(&[0.1, 0.5, 0.2, 0.5], 3),
            vec![(1, 0.5), (3, 0.5), (2, 0.2)]
        );
    }
}
