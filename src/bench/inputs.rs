//! The deterministic benchmark inputs shared with the PyTorch peer, bit for bit
//! (`tools/bench/configs.py` header, `tools/bench/README.md` "Inputs"): the
//! splitmix64 hash `mix(tag, i)`, caption lengths and tokens, region features,
//! the length-sorted training batch and the scoring split.

use crate::data::batch::Batch;

/// Hash tag of caption lengths.
pub const TAG_LEN: u64 = 0xB1;
/// Hash tag of caption tokens.
pub const TAG_TOK: u64 = 0xB2;
/// Hash tag of region features.
pub const TAG_IMG: u64 = 0xB3;

/// splitmix64 finaliser of `(tag << 32 | idx) + 0x9E3779B97F4A7C15` (`configs.mix`).
pub fn mix(tag: u64, idx: u64) -> u64 {
    let mut z = ((tag << 32) | idx).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Length of caption `c` incl. `<start>`/`<end>`: `max(4, popcount(mix(0xB1, c)) - 20)`.
pub fn caption_length(c: usize) -> usize {
    (mix(TAG_LEN, c as u64).count_ones() as usize)
        .saturating_sub(20)
        .max(4)
}

/// Token ids of caption `c` (no padding): `[1] + [4 + mix(0xB2, 64c + j) % (V - 4)] + [2]`.
pub fn caption_tokens(c: usize, vocab: usize) -> Vec<u32> {
    let len = caption_length(c);
    let mut ids = Vec::with_capacity(len);
    ids.push(1);
    for j in 1..len - 1 {
        let h = mix(TAG_TOK, 64 * c as u64 + j as u64);
        ids.push((4 + h % (vocab as u64 - 4)) as u32);
    }
    ids.push(2);
    ids
}

/// Region features of image `i`: `(mix(0xB3, (i·R + r)·D + f) >> 40) · 2^-24`.
/// out: [R, D] row-major, appended to `out`.
pub fn push_image_features(i: usize, regions: usize, img_dim: usize, out: &mut Vec<f32>) {
    let per = (regions * img_dim) as u64;
    let base = i as u64 * per;
    out.extend((0..per).map(|k| (mix(TAG_IMG, base + k) >> 40) as f32 * (1.0 / 16_777_216.0)));
}

/// Features of images `0..n`: [n, R, D] (the tests' reference; the bench
/// streams them through a file, `score::ScoreBench`).
#[cfg(test)]
pub fn image_features(n: usize, regions: usize, img_dim: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(n * regions * img_dim);
    for i in 0..n {
        push_image_features(i, regions, img_dim, &mut out);
    }
    out
}

/// The training batch: pairs `0..b` (caption c ↔ image c) ordered by caption
/// length descending, ties in index order (`configs.train_batch_order`).
pub fn train_batch(b: usize, regions: usize, img_dim: usize, vocab: usize) -> Batch {
    let mut order: Vec<usize> = (0..b).collect();
    order.sort_by_key(|&c| std::cmp::Reverse(caption_length(c)));
    let lengths: Vec<usize> = order.iter().map(|&c| caption_length(c)).collect();
    let max_len = lengths.first().copied().unwrap_or(0);
    let mut tokens = vec![0u32; b * max_len];
    let mut images = Vec::with_capacity(b * regions * img_dim);
    for (row, &c) in order.iter().enumerate() {
        let t = caption_tokens(c, vocab);
        tokens[row * max_len..row * max_len + t.len()].copy_from_slice(&t);
        push_image_features(c, regions, img_dim, &mut images);
    }
    Batch {
        images,
        n_regions: regions,
        dim: img_dim,
        tokens,
        max_len,
        lengths,
        caption_ids: order.clone(),
        image_ids: order.clone(),
        img_ids: order,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected values printed by tools/bench/configs.py (numpy implementation).
    #[test]
    fn lengths_match_python() {
        let l: Vec<usize> = (0..8).map(caption_length).collect();
        assert_eq!(l, [14, 8, 8, 13, 11, 11, 10, 14]);
    }

    #[test]
    fn tokens_match_python() {
        assert_eq!(
            caption_tokens(0, 8481),
            [
                1, 1195, 2530, 8015, 3781, 2834, 4396, 6080, 3562, 3392, 3652, 6411, 3042, 2
            ]
        );
        assert_eq!(
            caption_tokens(2, 8481),
            [1, 7491, 7237, 2254, 5119, 1492, 2911, 2]
        );
    }

    #[test]
    #[allow(clippy::excessive_precision)] // digits as Python printed them
    fn features_match_python() {
        let f = image_features(2, 36, 2048);
        // Python: f[0,0,:3], f[1,35,2047], f[1,5,100] (exact f32 values).
        assert_eq!(&f[..3], &[0.939_324_26_f32, 0.868_148_98, 0.441_116_63]);
        assert_eq!(f[36 * 2048 + 35 * 2048 + 2047], 0.325_426_52_f32);
        assert_eq!(f[36 * 2048 + 5 * 2048 + 100], 0.158_231_26_f32);
    }

    #[test]
    fn batch_order_matches_python() {
        let b = train_batch(128, 1, 1, 8481);
        assert_eq!(
            &b.caption_ids[..10],
            &[14, 26, 34, 52, 77, 15, 42, 53, 78, 103]
        );
        assert!(b.lengths.windows(2).all(|w| w[0] >= w[1]));
        assert_eq!(b.max_len, b.lengths[0]);
        let row = 3;
        let c = b.caption_ids[row];
        let t = caption_tokens(c, 8481);
        assert_eq!(
            &b.tokens[row * b.max_len..row * b.max_len + t.len()],
            &t[..]
        );
        assert_eq!(b.images[row], image_features(c + 1, 1, 1)[c]);
    }
}
