//! Scores a whole split (docs/method.md §8 steps 1–3, eval mode): encode the
//! split's images (memory-mapped, chunk by chunk) and every caption, then
//! score every pair with the matcher's block scorer over 100 × 100 shards.
//! Across the ranks of a [`Comm`] (`mpirun -n N dbl score`), each rank takes
//! whole encoding chunks of images and the rows are gathered: bit-identical
//! to one process (docs/method.md §14).

use crate::data::precomp::Precomp;
use crate::dist::{Comm, Solo, shard_rows};
use crate::eval::sharded::{BlockSize, score_full_watched};
use crate::model::encode::ENCODE_CHUNK;
use crate::model::encode::EncodedCaptions;
use crate::model::matcher::{CaptionView, ImageView, Matcher, ScoreError, encode_image_rows};
use crate::model::precision::{HeadPrecision, PrecisionError};
use crate::watch::{Unwatched, Watch};

/// Encodes images `0..ds.n_images()` (im_div rule): → `[n_img, rows, d]`.
pub fn encode_split_images(m: &dyn Matcher, ds: &Precomp) -> Vec<f32> {
    encode_image_rows(m, ds.images(), 0..ds.n_images(), ds.n_regions(), &|_| {})
}

/// The images rank `rank` of `size` scores: whole [`ENCODE_CHUNK`]s, so every
/// image is encoded in the same chunk (same GEMM shapes, same bits) as in one process.
pub fn image_shard(n_images: usize, size: usize, rank: usize) -> std::ops::Range<usize> {
    let c = shard_rows(n_images.div_ceil(ENCODE_CHUNK), size, rank);
    (c.start * ENCODE_CHUNK).min(n_images)..(c.end * ENCODE_CHUNK).min(n_images)
}

/// Encodes every caption of `ds`.
pub fn encode_split_captions(m: &dyn Matcher, ds: &Precomp) -> EncodedCaptions {
    m.encode_captions(ds.len(), &|k| ds.caption(k))
}

/// Similarities of every image × caption of `ds`: → `[ds.n_images(), ds.len()]`
/// row-major. bf16 needs AMX and a similarity head.
pub fn score_split(
    m: &dyn Matcher,
    ds: &Precomp,
    precision: HeadPrecision,
) -> Result<Vec<f32>, ScoreError> {
    score_split_ranks(m, ds, precision, &Solo)
}

/// [`score_split`] across the ranks of `comm`: rank r encodes its
/// [`image_shard`] and every caption, scores its rows, and the rows are
/// all-gathered in rank order (every rank returns the whole matrix).
pub fn score_split_ranks(
    m: &dyn Matcher,
    ds: &Precomp,
    precision: HeadPrecision,
    comm: &dyn Comm,
) -> Result<Vec<f32>, ScoreError> {
    score_split_watched(m, ds, precision, comm, &Unwatched)
}

/// [`score_split_ranks`] observed by `watch` (block progress; a stop request
/// ends the scoring with an `Interrupted` error).
pub fn score_split_watched(
    m: &dyn Matcher,
    ds: &Precomp,
    precision: HeadPrecision,
    comm: &dyn Comm,
    watch: &dyn Watch,
) -> Result<Vec<f32>, ScoreError> {
    let rows = image_shard(ds.n_images(), comm.size(), comm.rank());
    let img = encode_image_rows(m, ds.images(), rows.clone(), ds.n_regions(), &|_| {});
    let cap = encode_split_captions(m, ds);
    // (One process keeps score_encoded's error on an empty split.)
    let mine = if rows.is_empty() && comm.size() > 1 {
        Vec::new()
    } else {
        score_encoded(
            m,
            &img,
            ds.n_regions(),
            &cap,
            precision,
            BlockSize::default(),
            watch,
        )?
    };
    Ok(comm.all_gather_f32(&mine).0)
}

/// Scores encoded images (`[n_img, image_rows(regions), d]`) × captions in
/// blocks of `block`, observed by `watch` ([`score_full_watched`];
/// [`Unwatched`] for none): → `[n_img, n_cap]`.
pub fn score_encoded(
    m: &dyn Matcher,
    img: &[f32],
    regions: usize,
    cap: &EncodedCaptions,
    precision: HeadPrecision,
    block: BlockSize,
    watch: &dyn Watch,
) -> Result<Vec<f32>, ScoreError> {
    let view = ImageView {
        data: img,
        rows: m.image_rows(regions),
    };
    let scorer = m.scorer(view, CaptionView::from(cap), precision)?;
    Ok(score_full_watched(scorer.as_ref(), block, watch)?)
}

/// [`score_split`] for `Trainable::score_split_with`: precision errors are
/// returned; anything else (an empty split) is a bug of the caller and panics.
pub fn score_split_checked(
    m: &dyn Matcher,
    ds: &Precomp,
    precision: HeadPrecision,
) -> Result<Vec<f32>, PrecisionError> {
    match score_split(m, ds, precision) {
        Ok(s) => Ok(s),
        Err(ScoreError::Precision(p)) => Err(p),
        Err(e) => panic!("scoring split {:?}: {e}", ds.split()),
    }
}
