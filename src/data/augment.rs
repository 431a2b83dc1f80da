//! OAS caption augmentation (docs/method.md §6.4; the authors' OAS
//! `data.py`): a `<mask>` token is appended to the vocabulary (id = V, so the
//! embedding table has V + 1 rows) and every training caption token except
//! `<start>` and `<end>` is, with u ~ U(0, 1):
//! u < 0.1 → replaced by `<mask>`; 0.1 ≤ u < 0.12 → replaced by a uniformly
//! random id in [0, V + 1) (special ids included); 0.12 ≤ u < 0.2 → deleted;
//! otherwise kept (the spec's v = u / 0.2 thresholds 0.5 and 0.6).
//! Augmenting a [`Batch`] re-sorts its pairs by the new caption lengths
//! (descending, stable), as the authors' collate does after augmenting.
//! Deterministic: the RNG is keyed by (seed, stage, epoch) in [`augment_rng`].

use std::cmp::Reverse;

use rand::{Rng, RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::data::batch::Batch;

/// Probability that a word is changed at all.
pub const P_CHANGE: f64 = 0.2;
/// Of the changed words: below this fraction → `<mask>`.
pub const MASK_BELOW: f64 = 0.5;
/// Of the changed words: below this fraction (and ≥ [`MASK_BELOW`]) → random id; above → deleted.
pub const RANDOM_BELOW: f64 = 0.6;

/// The augmentation for a vocabulary of `vocab_len` words (`<mask>` = `vocab_len`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaptionAugment {
    /// Id of `<mask>` (= V).
    pub mask_id: u32,
}

/// The RNG of the augmentation in `stage`, `epoch` of a run seeded `seed`
/// (ChaCha8 stream 2^40 + stage·2^20 + epoch: apart from the init and dropout streams).
pub fn augment_rng(seed: u64, stage: u32, epoch: usize) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    r.set_stream((1u64 << 40) + (u64::from(stage) << 20) + epoch as u64);
    r
}

impl CaptionAugment {
    /// For a vocabulary of `vocab_len` words.
    pub fn new(vocab_len: usize) -> Self {
        CaptionAugment {
            mask_id: vocab_len as u32,
        }
    }

    /// Rows of the embedding table the augmented model needs (V + 1).
    pub fn embedding_rows(&self) -> usize {
        self.mask_id as usize + 1
    }

    /// Augments one caption `ids` (`<start>` … `<end>`, no padding).
    pub fn caption(&self, ids: &[u32], rng: &mut impl Rng) -> Vec<u32> {
        let mut out = Vec::with_capacity(ids.len());
        for (i, &id) in ids.iter().enumerate() {
            if i == 0 || i + 1 == ids.len() {
                out.push(id);
                continue;
            }
            let u = (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
            if u >= P_CHANGE {
                out.push(id);
                continue;
            }
            let v = u / P_CHANGE;
            if v < MASK_BELOW {
                out.push(self.mask_id);
            } else if v < RANDOM_BELOW {
                out.push(rng.random_range(0..=self.mask_id));
            }
        }
        out
    }

    /// Augments every caption of `b` (in row order), then re-sorts the pairs
    /// by the new lengths, descending and stable, keeping every per-pair
    /// array (images, ids) aligned.
    pub fn batch(&self, b: &mut Batch, rng: &mut impl Rng) {
        let n = b.size();
        let caps: Vec<Vec<u32>> = (0..n)
            .map(|i| self.caption(&b.caption(i)[..b.lengths[i]], rng))
            .collect();
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&i| Reverse(caps[i].len()));
        let row = b.n_regions * b.dim;
        let images: Vec<f32> = order
            .iter()
            .flat_map(|&i| b.images[i * row..(i + 1) * row].iter().copied())
            .collect();
        let perm = |v: &[usize]| order.iter().map(|&i| v[i]).collect::<Vec<_>>();
        b.caption_ids = perm(&b.caption_ids);
        b.image_ids = perm(&b.image_ids);
        b.img_ids = perm(&b.img_ids);
        b.images = images;
        b.lengths = order.iter().map(|&i| caps[i].len()).collect();
        b.max_len = b.lengths.first().copied().unwrap_or(0);
        b.tokens = vec![0; n * b.max_len];
        for (dst, &i) in b.tokens.chunks_exact_mut(b.max_len.max(1)).zip(&order) {
            dst[..caps[i].len()].copy_from_slice(&caps[i]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Over 200,000 words: 10 % masked, 8 % deleted (± 0.4 %), 2 % random ids;
    /// `<start>`/`<end>` untouched; same seed ⇒ same result, another seed differs.
    #[test]
    fn rates_and_determinism() {
        let v = 50u32;
        let aug = CaptionAugment::new(v as usize);
        assert_eq!(aug.embedding_rows(), 51);
        let cap: Vec<u32> = std::iter::once(1)
            .chain((0..20).map(|i| 4 + i % 40))
            .chain(std::iter::once(2))
            .collect();
        let (mut masked, mut deleted, mut changed_ids, mut words) = (0, 0, 0, 0);
        let mut rng = augment_rng(5, 2, 3);
        for _ in 0..10_000 {
            let out = aug.caption(&cap, &mut rng);
            assert_eq!((out[0], *out.last().unwrap()), (1, 2));
            words += 20;
            deleted += 22 - out.len();
            masked += out.iter().filter(|&&t| t == v).count();
            // Random ids outside the caption's words {4..=23} and not `<mask>`.
            changed_ids += out[1..out.len() - 1]
                .iter()
                .filter(|&&t| t != v && !(4..=23).contains(&t))
                .count();
        }
        let f = |c: usize| c as f64 / words as f64;
        assert!((f(masked) - 0.10).abs() < 0.004, "masked {}", f(masked));
        assert!((f(deleted) - 0.08).abs() < 0.004, "deleted {}", f(deleted));
        // 2 % random ids, of which 30 of the 51 possible values are foreign.
        let foreign = 0.02 * 30.0 / 51.0;
        assert!(
            (f(changed_ids) - foreign).abs() < 0.002,
            "random ids {}",
            f(changed_ids)
        );
        let a = aug.caption(&cap, &mut augment_rng(9, 1, 0));
        assert_eq!(a, aug.caption(&cap, &mut augment_rng(9, 1, 0)));
        let others: Vec<Vec<u32>> = (0..5)
            .map(|e| aug.caption(&cap, &mut augment_rng(9, 1, e + 1)))
            .collect();
        assert!(others.iter().any(|o| *o != a));
    }

    /// Random replacement ids cover [0, V] and nothing else.
    #[test]
    fn random_ids_stay_in_the_extended_vocabulary() {
        let aug = CaptionAugment::new(6);
        let cap = [1u32, 4, 5, 4, 5, 4, 5, 4, 5, 2];
        let mut seen = [false; 7];
        let mut rng = augment_rng(0, 1, 0);
        for _ in 0..20_000 {
            for t in aug.caption(&cap, &mut rng) {
                assert!(t <= 6);
                seen[t as usize] = true;
            }
        }
        assert!(seen.iter().all(|&s| s), "{seen:?}");
    }

    /// A batch stays aligned after augmenting and re-sorting: row i's image is
    /// still the image of caption_ids[i]; lengths non-increasing; padding 0.
    #[test]
    fn batch_rows_stay_aligned() {
        let n = 6;
        let (r, d) = (2, 3);
        let mut b = Batch {
            images: (0..n * r * d).map(|x| (x / (r * d)) as f32).collect(),
            n_regions: r,
            dim: d,
            tokens: Vec::new(),
            max_len: 0,
            lengths: Vec::new(),
            caption_ids: (0..n).collect(),
            image_ids: (0..n).collect(),
            img_ids: (0..n).collect(),
        };
        let caps: Vec<Vec<u32>> = (0..n)
            .map(|i| {
                let mut c = vec![1u32];
                c.extend((0..(12 - i)).map(|j| 4 + j as u32));
                c.push(2);
                c
            })
            .collect();
        b.max_len = caps[0].len();
        b.lengths = caps.iter().map(Vec::len).collect();
        b.tokens = vec![0; n * b.max_len];
        for (i, c) in caps.iter().enumerate() {
            b.tokens[i * b.max_len..i * b.max_len + c.len()].copy_from_slice(c);
        }
        let aug = CaptionAugment::new(40);
        let mut changed = false;
        for e in 0..20 {
            let mut x = b.clone();
            aug.batch(&mut x, &mut augment_rng(1, 2, e));
            assert!(x.lengths.windows(2).all(|w| w[0] >= w[1]));
            assert_eq!(x.max_len, x.lengths[0]);
            for i in 0..n {
                let id = x.caption_ids[i];
                assert_eq!(x.image_ids[i], id);
                assert!(x.image(i).iter().all(|&v| v == id as f32));
                let c = x.caption(i);
                assert!(c[x.lengths[i]..].iter().all(|&t| t == 0));
                assert_eq!((c[0], c[x.lengths[i] - 1]), (1, 2));
            }
            changed |= x.tokens != b.tokens;
        }
        assert!(changed);
    }
}
