//! Evaluation-mode encoding of captions in length-sorted chunks (docs/method.md §8
//! step 2), the chunk sizes, and the stacked caption rows ([`EncodedCaptions`])
//! with their all-gather across ranks; [`crate::model::split`] encodes images and splits.

use crate::data::npy::NpyF32;
use crate::dist::Comm;
use crate::engine::gemm::Par;
use crate::model::text_encoder::TextEncoder;

/// Images encoded per forward pass (the authors' evaluation batch size is 100;
/// the result does not depend on it beyond GEMM blocking).
pub const ENCODE_CHUNK: usize = 128;

/// Captions encoded per forward pass (each caption's output does not depend
/// on its chunk; larger chunks measured no faster and hold more GRU state).
pub const CAPTION_CHUNK: usize = 128;

/// Rows `range` of `map` copied out ([range.len(), row_len]), then released
/// from the page cache (each row is read once per split).
pub fn read_rows(map: &NpyF32, range: std::ops::Range<usize>) -> Vec<f32> {
    let mut x = Vec::with_capacity(range.len() * map.row_len());
    for i in range.clone() {
        x.extend_from_slice(map.row(i));
    }
    map.release_rows(range);
    x
}

/// Captions `0..n` longest first (ties in index order): the order
/// [`encode_caption_list`] encodes them in, [`CAPTION_CHUNK`] at a time.
pub fn length_order(n: usize, len: impl Fn(usize) -> usize) -> Vec<usize> {
    let mut all: Vec<usize> = (0..n).collect();
    all.sort_by_key(|&k| std::cmp::Reverse(len(k)));
    all
}

/// The captions [`encode_caption_list`] encodes together with caption `k`
/// (its chunk, in encoding order) and k's place among them: encoding that
/// chunk alone gives k the bits the whole list gives it.
pub fn caption_chunk(n: usize, len: impl Fn(usize) -> usize, k: usize) -> (Vec<usize>, usize) {
    let all = length_order(n, len);
    let at = all.iter().position(|&c| c == k).unwrap_or(0);
    let start = at / CAPTION_CHUNK * CAPTION_CHUNK;
    let end = (start + CAPTION_CHUNK).min(n);
    (all[start..end].to_vec(), at - start)
}

/// Every caption of a split encoded in eval mode, stacked in caption order:
/// caption k's output is `rows[offsets[k]·d..offsets[k + 1]·d]`, one row per
/// token ([len, d]) or, when the encoder pools, one row ([d], offsets = 0..=n).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EncodedCaptions {
    /// [offsets[n], d]
    pub rows: Vec<f32>,
    /// [n + 1], offsets[0] = 0.
    pub offsets: Vec<usize>,
}

/// Encodes `n` captions given by `caption(k)` (token ids, `<start>`/`<end>`
/// included) in eval mode, in chunks of [`CAPTION_CHUNK`] captions of similar
/// length (as packing needs), stacked by caption index.
pub fn encode_caption_list<'a>(
    enc: &TextEncoder,
    n: usize,
    caption: impl Fn(usize) -> &'a [u32],
    par: Par,
) -> EncodedCaptions {
    let d = enc.embed_dim();
    let mut offsets = Vec::with_capacity(n + 1);
    offsets.push(0usize);
    for k in 0..n {
        offsets.push(offsets[k] + if enc.pool_mean { 1 } else { caption(k).len() });
    }
    let mut rows = vec![0.0f32; offsets[n] * d];
    // Chunks of captions of (nearly) equal length, longest first: every
    // timestep of the packed GRU then has about a full chunk of rows, instead
    // of a tail of steps with a handful of long captions.
    let all = length_order(n, |k| caption(k).len());
    for order in all.chunks(CAPTION_CHUNK) {
        let lengths: Vec<usize> = order.iter().map(|&k| caption(k).len()).collect();
        let l = lengths[0];
        let mut ids = vec![0u32; order.len() * l];
        for (row, &k) in ids.chunks_exact_mut(l).zip(order) {
            let cap = caption(k);
            row[..cap.len()].copy_from_slice(cap);
        }
        let y = enc.encode(&ids, &lengths, l, par);
        for (p, &k) in order.iter().enumerate() {
            let src = if enc.pool_mean {
                p * d..(p + 1) * d
            } else {
                p * l * d..(p * l + lengths[p]) * d
            };
            rows[offsets[k] * d..offsets[k + 1] * d].copy_from_slice(&y[src]);
        }
    }
    EncodedCaptions { rows, offsets }
}

/// Offsets of `n` items of `rows` rows each: `[0, rows, 2·rows, …, n·rows]`.
pub fn uniform_offsets(n: usize, rows: usize) -> Vec<usize> {
    (0..=n).map(|i| i * rows).collect()
}

/// Every rank's captions concatenated in rank order (captions of rank 0
/// first) → (all captions, f32 elements of each rank's rows: the counts a
/// [`Comm::reduce_scatter_sum`] of gradients w.r.t. the gathered rows needs).
pub fn gather_captions(comm: &dyn Comm, local: &EncodedCaptions) -> (EncodedCaptions, Vec<usize>) {
    let counts: Vec<u64> = local
        .offsets
        .windows(2)
        .map(|w| (w[1] - w[0]) as u64)
        .collect();
    let (rows, per_rank) = comm.all_gather_f32(&local.rows);
    let (all_counts, _) = comm.all_gather_u64(&counts);
    let mut offsets = Vec::with_capacity(all_counts.len() + 1);
    offsets.push(0usize);
    for c in all_counts {
        offsets.push(offsets[offsets.len() - 1] + c as usize);
    }
    (EncodedCaptions { rows, offsets }, per_rank)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dist::Solo;

    #[test]
    fn solo_gather_is_the_identity() {
        let c = EncodedCaptions {
            rows: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            offsets: vec![0, 2, 3],
        };
        let (g, counts) = gather_captions(&Solo, &c);
        assert_eq!(g, c);
        assert_eq!(counts, [6]);
    }
}
