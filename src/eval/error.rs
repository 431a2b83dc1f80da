//! The error type of the evaluation module (docs/method.md §8): bad similarity-matrix
//! shapes, non-finite scores, protocol preconditions and sharding settings.

/// Everything that can go wrong computing ranks, metrics or sharded scores.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EvalError {
    /// The matrix has no images or no captions.
    #[error(
        "similarity matrix is empty ({n_img} images x {n_cap} captions); \
         at least one image and one caption are needed"
    )]
    Empty { n_img: usize, n_cap: usize },

    /// The caption count is not a whole multiple of the image count.
    #[error(
        "{n_cap} captions is not a whole multiple of {n_img} images: caption k must belong \
         to image k / (captions per image), e.g. 5 captions per image"
    )]
    CaptionsPerImage { n_img: usize, n_cap: usize },

    /// The backing buffer is too short for the declared shape.
    #[error(
        "similarity buffer holds {len} values but a [{n_img}, {n_cap}] matrix with row \
         stride {stride} needs {needed}"
    )]
    Buffer {
        len: usize,
        n_img: usize,
        n_cap: usize,
        stride: usize,
        needed: usize,
    },

    /// A row stride shorter than a row.
    #[error("row stride {stride} is shorter than a row of {n_cap} captions")]
    Stride { stride: usize, n_cap: usize },

    /// `n_img * n_cap` overflows `usize`.
    #[error("a [{n_img}, {n_cap}] similarity matrix is too large to address")]
    TooLarge { n_img: usize, n_cap: usize },

    /// A NaN or infinite score (ranks are undefined for those).
    #[error(
        "similarity[{row}, {col}] (image {row}, caption {col}) is {value}; scores must be \
         finite"
    )]
    NonFinite { row: usize, col: usize, value: f32 },

    /// A fixed-size protocol (COCO 1K and 5K: the MSCOCO `testall` split)
    /// was asked for on a matrix of another shape.
    #[error(
        "protocol {protocol} needs the MSCOCO testall matrix: exactly {images} images x \
         {captions} captions, found {n_img} x {n_cap}; use f30k to score the whole matrix of \
         another split"
    )]
    ProtocolShape {
        protocol: &'static str,
        images: usize,
        captions: usize,
        n_img: usize,
        n_cap: usize,
    },

    /// A fold count that does not divide the image count.
    #[error("{n_img} images cannot be cut into {n_folds} equal folds")]
    Folds { n_img: usize, n_folds: usize },

    /// Metrics were asked to average an empty list.
    #[error("cannot average metrics over zero folds")]
    NoFolds,

    /// Scoring was stopped by its caller ([`crate::watch::Watch::stop_requested`]).
    #[error("scoring interrupted after {done} of {total} blocks; nothing was returned")]
    Interrupted { done: usize, total: usize },

    /// A zero block size for sharded scoring.
    #[error("block size must be at least 1 image x 1 caption, got {images} x {captions}")]
    BlockSize { images: usize, captions: usize },

    /// A streamed band that does not continue where the previous one stopped.
    #[error(
        "streamed band covers images {start}..{end} ({len} values) but images \
         {expected_start}.. with {n_cap} values per image were expected next"
    )]
    Band {
        start: usize,
        end: usize,
        len: usize,
        expected_start: usize,
        n_cap: usize,
    },

    /// Finishing a stream before every image row arrived.
    #[error("stream finished after {seen} of {n_img} image rows")]
    Incomplete { seen: usize, n_img: usize },

    /// A positive score differs between the positives pre-pass and the band pass.
    #[error(
        "scorer is not deterministic: score of image {row}, caption {col} was {first} in \
         the positives pass and {second} in the band pass"
    )]
    NotDeterministic {
        row: usize,
        col: usize,
        first: f32,
        second: f32,
    },

    /// Positive scores of the wrong length given to the streaming ranker.
    #[error("expected {expected} positive scores (one per caption), got {got}")]
    Positives { expected: usize, got: usize },

    /// Embeddings that are not a whole number of `dim`-wide rows.
    #[error(
        "{what} embeddings hold {len} values, which is not a whole number of rows of \
         dimension {dim} (dimension must be at least 1)"
    )]
    Embeddings {
        what: &'static str,
        len: usize,
        dim: usize,
    },
}
