//! Matching networks (docs/method.md §5): shared layers (encoders, the SCAN
//! head's kernels, GPO), one folder per backbone (`scan_ave/`, `vse/`,
//! `sgraf/`: network, forward/backward, scorer, parameter names, FLOP
//! count), the table
//! that registers them ([`registry`]), and the two contracts a backbone
//! implements: [`Trainable`] (what the trainer drives) and
//! [`matcher::Matcher`] (what inference and split scoring drive).

// Shared layers and contracts.
pub mod backbone;
pub mod config;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod encode;
pub mod explain;
pub mod flops;
pub mod gpo;
pub mod image_encoder;
pub mod matcher;
pub mod precision;
pub mod registry;
pub mod scan_head;
pub mod sparse_pairs;
pub mod split;
pub mod text_encoder;
pub mod weights;

// Backbones: one folder each, registered in `registry`.
pub mod scan_ave;
pub mod sgraf;
pub mod vse;

pub use config::{Backbone, ModelConfig, VsePool};
pub use registry::{Model, ModelCache};

use crate::data::batch::Batch;
use crate::data::precomp::Precomp;
use crate::dist::Comm;
use crate::engine::gemm::Par;
use crate::engine::param::Module;
use crate::engine::rng::EngineRng;
use crate::model::encode::EncodedCaptions;
use crate::model::precision::{HeadPrecision, PrecisionError};

/// Threading of the encoders' GEMMs: faer on the current rayon pool (results
/// are bitwise reproducible for a fixed pool size).
pub const ENCODER_PAR: Par = Par::Rayon(0);

/// What the trainer (`crate::train`) needs from a backbone.
///
/// Every regime (baseline, OAS, OSS cohorts, MSS) is written against this
/// trait only, so any backbone trains under any regime and loss.
pub trait Trainable: Module + Clone + Send + Sync {
    /// Whatever `forward` keeps for `backward` (activations, dropout masks).
    type Cache: Send;

    /// Scores a batch: returns `sims: [B, B]` row-major, rows = the batch's
    /// images, columns = its captions, positives on the diagonal.
    /// `train` turns dropout on (drawing masks from `rng`); eval mode never
    /// touches `rng`.
    fn forward(&self, batch: &Batch, train: bool, rng: &mut EngineRng) -> (Vec<f32>, Self::Cache);

    /// Back-propagates `d_sims: [B, B]` (dL/dsims, same layout), accumulating
    /// into every parameter's `grad` (PyTorch `.grad +=` semantics).
    fn backward(&mut self, cache: Self::Cache, d_sims: &[f32]);

    /// Scores a whole split in eval mode (docs/method.md §8 steps 1–3):
    /// returns `[ds.n_images(), ds.len()]` row-major (images de-duplicated by
    /// the im_div rule, all captions).
    fn score_split(&self, ds: &Precomp) -> Vec<f32>;

    /// [`Self::score_split`] with the similarity head's projection in
    /// `precision`. Backbones without a similarity head support f32 only.
    fn score_split_with(
        &self,
        ds: &Precomp,
        precision: HeadPrecision,
    ) -> Result<Vec<f32>, PrecisionError> {
        match precision {
            HeadPrecision::F32 => Ok(self.score_split(ds)),
            HeadPrecision::Bf16 => Err(PrecisionError::NoHead),
        }
    }

    /// [`Self::score_split`] across the ranks of `comm` (docs/method.md §14):
    /// every rank returns the whole matrix, the same bits as one process.
    /// Default: every rank scores everything.
    fn score_split_ranks(&self, ds: &Precomp, _comm: &dyn Comm) -> Vec<f32> {
        self.score_split(ds)
    }

    // Data-parallel training (docs/method.md §14, `crate::train::sharded`):
    // `forward` = `score_shard ∘ all-gather ∘ encode_shard`, `backward` =
    // `backward_captions ∘ reduce-scatter ∘ backward_shard`. A backbone that
    // keeps the defaults still trains under MPI, each rank running the whole
    // batch (same results, no speed-up).

    /// Encodes this rank's `rows` of `batch` (pairs `rows`: images and their
    /// captions; dropout masks as in the whole batch, and `rng` left where the
    /// whole batch leaves it). Keeps the images; returns the captions to be
    /// all-gathered (`None`: this backbone does not split; nothing drawn).
    fn encode_shard(
        &self,
        _batch: &Batch,
        _rows: std::ops::Range<usize>,
        _train: bool,
        _rng: &mut EngineRng,
    ) -> Option<(EncodedCaptions, Self::Cache)> {
        None
    }

    /// Scores the shard's images against `captions` (every rank's, in rank
    /// order): → [rows, n_captions] row-major.
    fn score_shard(&self, _cache: &mut Self::Cache, _captions: EncodedCaptions) -> Vec<f32> {
        unreachable!("score_shard is only called after encode_shard returned Some")
    }

    /// Back-propagates `d_block` ([rows, n_captions]) through the scoring and
    /// the image side; returns dL/d(gathered caption rows) [Σ rows, d].
    fn backward_shard(&mut self, _cache: &mut Self::Cache, _d_block: &[f32]) -> Vec<f32> {
        unreachable!("backward_shard is only called after encode_shard returned Some")
    }

    /// Back-propagates dL/d(this shard's caption rows) (reduced over ranks)
    /// through the text side.
    fn backward_captions(&mut self, _cache: Self::Cache, _d_captions: Vec<f32>) {
        unreachable!("backward_captions is only called after encode_shard returned Some")
    }
}
