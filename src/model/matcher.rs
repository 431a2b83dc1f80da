//! The [`Matcher`] contract: what every backbone provides for inference.
//!
//! Representations are plain row-major f32:
//! - images: `[n_img, rows, d]`, `rows` = R (one row per region, cross-attention
//!   backbones such as scan-ave) or 1 (pooled, embedding backbones such as vse);
//! - captions: stacked rows ([`EncodedCaptions`]): caption k is
//!   `rows[offsets[k]·d..offsets[k+1]·d]`, one row per token or one pooled row.
//!
//! Scoring borrows them as [`ImageView`] / [`CaptionView`], so they may live in
//! memory-mapped index files.

use crate::data::npy::NpyF32;
use crate::engine::param::Module;
use crate::eval::sharded::BlockScorer;
use crate::model::ENCODER_PAR;
use crate::model::encode::{ENCODE_CHUNK, EncodedCaptions, encode_caption_list, read_rows};
use crate::model::explain::PairExplanation;
use crate::model::image_encoder::ImageEncoder;
use crate::model::precision::{HeadPrecision, PrecisionError};
use crate::model::text_encoder::TextEncoder;
use crate::watch::Watch;

use thiserror::Error;

/// Why a block scorer could not be built or a split not scored.
#[derive(Debug, Error)]
pub enum ScoreError {
    /// The precision asked for is not available.
    #[error(transparent)]
    Precision(#[from] PrecisionError),
    /// Scoring failed (empty or oversized block).
    #[error(transparent)]
    Eval(#[from] crate::eval::error::EvalError),
    /// Encoded inputs of the wrong shape (the message says which).
    #[error("{0}")]
    Shape(String),
    /// The caller asked the call to stop ([`crate::watch::Watch`]).
    #[error("{0} interrupted; nothing was returned")]
    Interrupted(&'static str),
}

/// Encoded images, borrowed. data: `[n_img, rows, d]`.
#[derive(Debug, Clone, Copy)]
pub struct ImageView<'a> {
    /// `[n_img, rows, d]` row-major.
    pub data: &'a [f32],
    /// Rows per image (R, or 1 when pooled).
    pub rows: usize,
}

/// Encoded captions, borrowed: caption k = `rows[offsets[k]·d..offsets[k+1]·d]`.
#[derive(Debug, Clone, Copy)]
pub struct CaptionView<'a> {
    /// `[offsets[n], d]` row-major.
    pub rows: &'a [f32],
    /// `[n + 1]`, `offsets[0] = 0`, non-decreasing.
    pub offsets: &'a [usize],
}

impl<'a> From<&'a EncodedCaptions> for CaptionView<'a> {
    fn from(c: &'a EncodedCaptions) -> Self {
        CaptionView {
            rows: &c.rows,
            offsets: &c.offsets,
        }
    }
}

impl CaptionView<'_> {
    /// Number of captions.
    pub fn len(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }
    /// True when there is no caption.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A backbone in evaluation mode (no dropout, no caches, no gradients).
///
/// Implementations must be deterministic for a fixed rayon pool size, and
/// their scorers block-invariant (a score depends only on its image and
/// caption), which `score_full` and the index's re-ranking rely on.
pub trait Matcher: Send + Sync + std::fmt::Debug {
    /// The image and text encoders (both backbones of the paper share their
    /// design; a backbone with other encoders overrides the provided methods
    /// below and may return its own here).
    fn encoders(&self) -> (&ImageEncoder, &TextEncoder);
    /// Joint embedding width d.
    fn embed_dim(&self) -> usize {
        self.encoders().1.embed_dim()
    }
    /// Region feature width D the image encoder takes.
    fn img_dim(&self) -> usize {
        self.encoders().0.fc.in_dim()
    }
    /// Vocabulary size V the text encoder takes (ids `0..V`).
    fn vocab_size(&self) -> usize {
        self.encoders().1.embed.vocab()
    }
    /// Rows per encoded image for `n_regions` regions: R or 1 (pooled).
    fn image_rows(&self, n_regions: usize) -> usize;
    /// Rows per encoded caption of `n_tokens` tokens: n_tokens or 1 (pooled).
    fn caption_rows(&self, n_tokens: usize) -> usize;
    /// x: `[n, R, D]` → `[n, image_rows(R), d]`.
    fn encode_images(&self, x: &[f32], n_regions: usize) -> Vec<f32> {
        self.encoders().0.encode(x, n_regions, PAR)
    }
    /// Encodes `n` captions given as token ids (`<start>`/`<end>` included,
    /// every id `< vocab_size()`, every caption non-empty), stacked by index.
    fn encode_captions<'a>(
        &self,
        n: usize,
        caption: &dyn Fn(usize) -> &'a [u32],
    ) -> EncodedCaptions {
        encode_caption_list(self.encoders().1, n, caption, PAR)
    }
    /// Explains the score of one encoded image `img: [image_rows(R), d]`
    /// and one encoded caption `cap: [caption_rows(n), d]` from the pass
    /// [`Self::scorer`] runs (f32): [`super::explain`].
    fn explain_pair(&self, img: &[f32], cap: &[f32]) -> Result<PairExplanation, ScoreError>;
    /// A block scorer over `img` × `cap` with the head in `precision`
    /// (bf16: AMX and a similarity head; others answer
    /// [`PrecisionError::NoHead`]).
    fn scorer<'a>(
        &'a self,
        img: ImageView<'a>,
        cap: CaptionView<'a>,
        precision: HeadPrecision,
    ) -> Result<Box<dyn BlockScorer + 'a>, ScoreError>;
}

/// A matcher whose parameters can be loaded (what the registry builds).
pub trait Net: Matcher + Module {
    /// As a plain matcher.
    fn as_matcher(&self) -> &dyn Matcher;
}

impl<T: Matcher + Module> Net for T {
    fn as_matcher(&self) -> &dyn Matcher {
        self
    }
}

/// The encoding chunks of rows `rows`: [`ENCODE_CHUNK`] rows each, from
/// `rows.start`. An image's bits depend on its chunk's GEMM shapes, so every
/// path that must give `dbl score`'s bits chunks this way.
fn encode_chunks(rows: std::ops::Range<usize>) -> impl Iterator<Item = std::ops::Range<usize>> {
    let n = rows.end;
    rows.step_by(ENCODE_CHUNK)
        .map(move |start| start..(start + ENCODE_CHUNK).min(n))
}

/// Encodes rows `rows` of a memory-mapped `[N, R, D]` feature array in chunks
/// of [`ENCODE_CHUNK`] from `rows.start`, dropping each chunk's pages once
/// copied (the resident set holds one chunk of raw features):
/// → `[rows.len(), image_rows(R), d]`. `each_chunk(done)` reports progress
/// (the end row of each chunk).
pub fn encode_image_rows(
    m: &dyn Matcher,
    map: &NpyF32,
    rows: std::ops::Range<usize>,
    regions: usize,
    each_chunk: &dyn Fn(usize),
) -> Vec<f32> {
    let mut out = Vec::new();
    for chunk in encode_chunks(rows) {
        let end = chunk.end;
        out.extend(m.encode_images(&read_rows(map, chunk), regions));
        each_chunk(end);
    }
    out
}

/// Encodes in-memory region features x: `[n, R, D]` (checked by the caller,
/// e.g. [`LoadedMatcher::check_features`](super::LoadedMatcher::check_features))
/// in the chunks of [`encode_image_rows`], so the same rows give the same
/// bits as `dbl score`: → `[n, image_rows(R), d]`. `watch` is asked between
/// chunks whether to stop ([`ScoreError::Interrupted`]).
pub fn encode_image_array(
    m: &dyn Matcher,
    x: &[f32],
    regions: usize,
    watch: &dyn Watch,
) -> Result<Vec<f32>, ScoreError> {
    let per = regions * m.img_dim();
    let n = x.len() / per.max(1);
    let mut out = Vec::with_capacity(n * m.image_rows(regions) * m.embed_dim());
    for chunk in encode_chunks(0..n) {
        if watch.stop_requested() {
            return Err(ScoreError::Interrupted("encoding images"));
        }
        out.extend(m.encode_images(&x[chunk.start * per..chunk.end * per], regions));
    }
    Ok(out)
}

/// The encoders' threading (re-exported for implementations).
pub(crate) const PAR: crate::engine::gemm::Par = ENCODER_PAR;
