//! Evaluation-mode encoding of a whole split (spec §8 steps 1–2): the images
//! (one per `_ims.npy` row in use) and every caption, in chunks, so that
//! scoring can then run sharded over the encoded data.

use crate::data::npy::NpyF32;
use crate::data::precomp::Precomp;
use crate::engine::gemm::Par;
use crate::engine::rng::seeded;
use crate::model::image_encoder::ImageEncoder;
use crate::model::text_encoder::TextEncoder;

/// Images encoded per forward pass (the authors' evaluation batch size is 100;
/// the result does not depend on it beyond GEMM blocking).
pub const ENCODE_CHUNK: usize = 128;

/// Captions encoded per forward pass (each caption's output does not depend
/// on its chunk; larger chunks measured no faster and hold more GRU state).
pub const CAPTION_CHUNK: usize = 128;

/// Encodes images `0..ds.n_images()`: → [n_img, R, d] (no pooling) or [n_img, d].
pub fn encode_images(enc: &ImageEncoder, ds: &Precomp, par: Par) -> Vec<f32> {
    encode_image_rows(enc, ds.images(), ds.n_images(), ds.n_regions(), par)
}

/// Encodes rows `0..n` of a memory-mapped [N, R, D] feature array in chunks of
/// [`ENCODE_CHUNK`], dropping each chunk's pages once it is copied, so the
/// resident set holds one chunk of raw features rather than the whole file:
/// → [n, R, d] (no pooling) or [n, d].
pub fn encode_image_rows(
    enc: &ImageEncoder,
    map: &NpyF32,
    n: usize,
    regions: usize,
    par: Par,
) -> Vec<f32> {
    let mut out = Vec::new();
    for start in (0..n).step_by(ENCODE_CHUNK) {
        let end = (start + ENCODE_CHUNK).min(n);
        let mut x = Vec::with_capacity((end - start) * map.row_len());
        for i in start..end {
            x.extend_from_slice(map.row(i));
        }
        map.release_rows(start..end);
        out.extend(enc.encode(&x, regions, par));
    }
    out
}

/// Encodes every caption of `ds` in eval mode (captions of a chunk sorted by
/// length, as packing needs) and hands each one's output to
/// `place(caption index, rows)`: rows = [len, d] per word, or [d] if pooled.
pub fn encode_captions(
    enc: &TextEncoder,
    ds: &Precomp,
    par: Par,
    place: impl FnMut(usize, &[f32]),
) {
    encode_caption_list(enc, ds.len(), |k| ds.caption(k), par, place)
}

/// [`encode_captions`] over `n` captions given by `caption(k)` (token ids,
/// `<start>`/`<end>` included), in chunks of [`CAPTION_CHUNK`] captions of
/// similar length (`place` is called in that order, not by index).
pub fn encode_caption_list<'a>(
    enc: &TextEncoder,
    n: usize,
    caption: impl Fn(usize) -> &'a [u32],
    par: Par,
    mut place: impl FnMut(usize, &[f32]),
) {
    let d = enc.embed_dim();
    let mut rng = seeded(0); // eval mode never draws from it
    // Chunks of captions of (nearly) equal length, longest first: every
    // timestep of the packed GRU then has about a full chunk of rows, instead
    // of a tail of steps with a handful of long captions.
    let mut all: Vec<usize> = (0..n).collect();
    all.sort_by_key(|&k| std::cmp::Reverse(caption(k).len()));
    for order in all.chunks(CAPTION_CHUNK) {
        let lengths: Vec<usize> = order.iter().map(|&k| caption(k).len()).collect();
        let l = lengths[0];
        let mut ids = vec![0u32; order.len() * l];
        for (row, &k) in ids.chunks_exact_mut(l).zip(order) {
            let cap = caption(k);
            row[..cap.len()].copy_from_slice(cap);
        }
        let (y, _) = enc.forward(&ids, &lengths, l, false, &mut rng, par);
        for (p, &k) in order.iter().enumerate() {
            if enc.pool_mean {
                place(k, &y[p * d..(p + 1) * d]);
            } else {
                place(k, &y[p * l * d..(p * l + lengths[p]) * d]);
            }
        }
    }
}
