//! Mini-batches over a [`Precomp`] split (docs/method.md §6.3; mirrors the authors'
//! `DataLoader(shuffle=…)` + `collate_fn` in `OSS/data.py`).
//!
//! A pass over a split is a [`BatchPlan`]: the caption order (a seeded
//! per-epoch shuffle for training, dataset order for evaluation) cut into
//! batches of `B` captions, the last partial batch kept. [`Batch::fill`]
//! collates one batch exactly like `collate_fn`: the (image, caption) pairs
//! are stable-sorted together by caption length, descending, so row `i` of the
//! gathered images is always the image of caption `i` (positives on the
//! diagonal); captions are right-padded with `<pad>` = 0.
//!
//! Memory: image rows are copied out of the memory map and each row's pages
//! are released right after (`MADV_DONTNEED`), so an epoch over an 8.5 GB
//! feature file keeps little more than the batch buffer resident.

use std::cmp::Reverse;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::data::precomp::Precomp;

/// Training batch size (authors' `--batch_size` default).
pub const TRAIN_BATCH_SIZE: usize = 128;
/// Evaluation batch size (authors' validation/test loaders).
pub const EVAL_BATCH_SIZE: usize = 100;

/// The caption order of one pass, cut into batches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchPlan {
    order: Vec<usize>,
    batch_size: usize,
}

impl BatchPlan {
    /// Training order for `epoch`: a uniform shuffle of `0..n` fixed by
    /// `(seed, epoch)` alone (ChaCha8 seeded from `seed`, stream = `epoch`,
    /// Fisher–Yates with unbiased bounded draws). Panics if `batch_size == 0`.
    pub fn train(n: usize, batch_size: usize, seed: u64, epoch: u64) -> Self {
        assert!(batch_size > 0, "batch size must be positive");
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(epoch);
        let mut order: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = below(&mut rng, i as u64 + 1) as usize;
            order.swap(i, j);
        }
        Self { order, batch_size }
    }

    /// Evaluation order: `0..n` in dataset order. Panics if `batch_size == 0`.
    pub fn eval(n: usize, batch_size: usize) -> Self {
        assert!(batch_size > 0, "batch size must be positive");
        Self {
            order: (0..n).collect(),
            batch_size,
        }
    }

    /// Number of batches (`ceil(n / B)`).
    pub fn len(&self) -> usize {
        self.order.len().div_ceil(self.batch_size)
    }

    /// True when there are no captions.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Batch size `B` (the last batch may be smaller).
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// The whole caption order.
    pub fn order(&self) -> &[usize] {
        &self.order
    }

    /// Caption indices of batch `b`, in drawn (unsorted) order. Panics if
    /// `b >= len()`.
    pub fn batch(&self, b: usize) -> &[usize] {
        let lo = b * self.batch_size;
        &self.order[lo..(lo + self.batch_size).min(self.order.len())]
    }

    /// All batches in order.
    pub fn batches(&self) -> impl Iterator<Item = &[usize]> {
        self.order.chunks(self.batch_size)
    }
}

/// Uniform draw from `0..n` (`n > 0`), Lemire's multiply-and-reject method.
fn below(rng: &mut ChaCha8Rng, n: u64) -> u64 {
    let mut m = u128::from(rng.next_u64()) * u128::from(n);
    if (m as u64) < n {
        let threshold = n.wrapping_neg() % n;
        while (m as u64) < threshold {
            m = u128::from(rng.next_u64()) * u128::from(n);
        }
    }
    (m >> 64) as u64
}

/// One collated batch of `size()` (image, caption) pairs, sorted by caption
/// length descending (stable: ties keep their drawn order).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Batch {
    /// Gathered region features, row `i` = image of caption `caption_ids[i]`.
    /// images: [size, n_regions, dim]
    pub images: Vec<f32>,
    /// Regions per image.
    pub n_regions: usize,
    /// Feature dimension.
    pub dim: usize,
    /// Caption ids right-padded with 0. tokens: [size, max_len]
    pub tokens: Vec<u32>,
    /// Longest caption of the batch (`lengths[0]`), `<start>`/`<end>` included.
    pub max_len: usize,
    /// Caption lengths, non-increasing. lengths: [size]
    pub lengths: Vec<usize>,
    /// Dataset index of each caption. caption_ids: [size]
    pub caption_ids: Vec<usize>,
    /// Row of `_ims.npy` of each caption's image (`k / im_div`). image_ids: [size]
    pub image_ids: Vec<usize>,
    /// The authors' `img_id` (`k / 5`, used by CMPM only). img_ids: [size]
    pub img_ids: Vec<usize>,
}

impl Batch {
    /// Collates the captions `indices` of `ds` into a new batch.
    pub fn gather(ds: &Precomp, indices: &[usize]) -> Self {
        let mut b = Self::default();
        b.fill(ds, indices);
        b
    }

    /// Collates the captions `indices` of `ds` into `self`, reusing its
    /// buffers, releasing the mapped pages of each row once copied.
    /// Panics if an index is out of range.
    pub fn fill(&mut self, ds: &Precomp, indices: &[usize]) {
        self.caption_ids.clear();
        self.caption_ids.extend_from_slice(indices);
        self.caption_ids
            .sort_by_key(|&k| Reverse(ds.caption_len(k)));
        let n = self.caption_ids.len();
        self.lengths.clear();
        self.lengths
            .extend(self.caption_ids.iter().map(|&k| ds.caption_len(k)));
        self.image_ids.clear();
        self.image_ids
            .extend(self.caption_ids.iter().map(|&k| ds.image_of(k)));
        self.img_ids.clear();
        self.img_ids
            .extend(self.caption_ids.iter().map(|&k| ds.img_id(k)));
        self.max_len = self.lengths.first().copied().unwrap_or(0);
        self.tokens.clear();
        self.tokens.resize(n * self.max_len, 0);
        if self.max_len > 0 {
            for (row, &k) in self
                .tokens
                .chunks_exact_mut(self.max_len)
                .zip(&self.caption_ids)
            {
                let cap = ds.caption(k);
                row[..cap.len()].copy_from_slice(cap);
            }
        }
        self.n_regions = ds.n_regions();
        self.dim = ds.dim();
        let row_len = self.n_regions * self.dim;
        // Every element is overwritten below; resizing a reused buffer to the
        // same length costs nothing.
        self.images.resize(n * row_len, 0.0);
        if row_len > 0 {
            let map = ds.images();
            self.images
                .par_chunks_exact_mut(row_len)
                .zip(self.image_ids.par_iter())
                .for_each(|(dst, &r)| {
                    dst.copy_from_slice(map.row(r));
                    // Release at once: a fault maps the row's whole page-cache
                    // folio (up to 2 MiB), so waiting for the end of the batch
                    // would hold up to B × 2 MiB resident.
                    map.release_rows(r..r + 1);
                });
        }
    }

    /// Number of pairs in the batch.
    pub fn size(&self) -> usize {
        self.caption_ids.len()
    }

    /// Region features of pairs `rows` (one shard). [rows.len(), n_regions, dim]
    pub fn image_rows(&self, rows: std::ops::Range<usize>) -> &[f32] {
        let n = self.n_regions * self.dim;
        &self.images[rows.start * n..rows.end * n]
    }

    /// Padded token ids of pairs `rows` (one shard). [rows.len(), max_len]
    pub fn token_rows(&self, rows: std::ops::Range<usize>) -> &[u32] {
        &self.tokens[rows.start * self.max_len..rows.end * self.max_len]
    }

    /// Region features of pair `i`. img: [n_regions, dim]
    pub fn image(&self, i: usize) -> &[f32] {
        let n = self.n_regions * self.dim;
        &self.images[i * n..(i + 1) * n]
    }

    /// Padded caption of pair `i`. ids: [max_len]
    pub fn caption(&self, i: usize) -> &[u32] {
        &self.tokens[i * self.max_len..(i + 1) * self.max_len]
    }
}

/// Walks a [`BatchPlan`] over a split, collating into one reused [`Batch`].
#[derive(Debug)]
pub struct Loader<'a> {
    ds: &'a Precomp,
    plan: BatchPlan,
    next: usize,
    batch: Batch,
}

impl<'a> Loader<'a> {
    /// A loader over `ds` following `plan`.
    pub fn new(ds: &'a Precomp, plan: BatchPlan) -> Self {
        Self {
            ds,
            plan,
            next: 0,
            batch: Batch::default(),
        }
    }

    /// Training loader for `epoch` (see [`BatchPlan::train`]).
    pub fn train(ds: &'a Precomp, batch_size: usize, seed: u64, epoch: u64) -> Self {
        Self::new(ds, BatchPlan::train(ds.len(), batch_size, seed, epoch))
    }

    /// Evaluation loader (dataset order).
    pub fn eval(ds: &'a Precomp, batch_size: usize) -> Self {
        Self::new(ds, BatchPlan::eval(ds.len(), batch_size))
    }

    /// The plan being followed.
    pub fn plan(&self) -> &BatchPlan {
        &self.plan
    }

    /// The next batch, or `None` at the end of the pass.
    pub fn next_batch(&mut self) -> Option<&Batch> {
        if self.next >= self.plan.len() {
            return None;
        }
        self.batch.fill(self.ds, self.plan.batch(self.next));
        self.next += 1;
        Some(&self.batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::npy::write_f32;
    use crate::data::precomp::Split;
    use crate::data::vocab::Vocab;

    fn is_permutation(order: &[usize]) -> bool {
        let mut s = order.to_vec();
        s.sort_unstable();
        s.iter().enumerate().all(|(i, &x)| i == x)
    }

    #[test]
    fn train_plan_is_a_seeded_permutation_per_epoch() {
        let a = BatchPlan::train(1000, 128, 7, 0);
        assert!(is_permutation(a.order()));
        assert_eq!(a, BatchPlan::train(1000, 128, 7, 0));
        assert_ne!(a.order(), BatchPlan::train(1000, 128, 7, 1).order());
        assert_ne!(a.order(), BatchPlan::train(1000, 128, 8, 0).order());
        assert_eq!(a.len(), 8);
        assert_eq!(a.batch(7).len(), 1000 - 7 * 128);
        assert_eq!(a.batches().map(<[usize]>::len).sum::<usize>(), 1000);
        // F30K: 145,000 captions at B = 128 give 1,133 iterations (docs/method.md §6.1).
        assert_eq!(BatchPlan::eval(145_000, 128).len(), 1133);
        let e = BatchPlan::eval(250, EVAL_BATCH_SIZE);
        assert_eq!(e.batch(2), &(200..250).collect::<Vec<_>>()[..]);
    }

    #[test]
    fn shuffle_is_uniform_over_permutations_of_four() {
        // 24,000 epochs over 4 items: each of the 24 orders expects 1,000
        // hits, sd ≈ 31; 6 sd (±190) fails only for a biased shuffle.
        let mut counts = std::collections::HashMap::new();
        for epoch in 0..24_000 {
            *counts
                .entry(BatchPlan::train(4, 4, 3, epoch).order().to_vec())
                .or_insert(0usize) += 1;
        }
        assert_eq!(counts.len(), 24);
        for (perm, c) in counts {
            assert!((810..=1190).contains(&c), "{perm:?} drawn {c} times");
        }
    }

    #[test]
    fn below_stays_in_range_and_hits_every_value() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for n in [1u64, 2, 3, 7, 1 << 40] {
            let mut seen = std::collections::HashSet::new();
            for _ in 0..200 {
                let x = below(&mut rng, n);
                assert!(x < n);
                seen.insert(x);
            }
            if n <= 7 {
                assert_eq!(seen.len() as u64, n);
            }
        }
    }

    /// 4 images × 5 captions of varied lengths, image i filled with value i.
    fn dataset(dir: &std::path::Path) -> Precomp {
        let (n, r, d) = (4, 2, 3);
        let data: Vec<f32> = (0..n * r * d).map(|i| (i / (r * d)) as f32).collect();
        write_f32(dir.join("train_ims.npy"), &[n, r, d], &data).unwrap();
        let caps: Vec<String> = (0..n * 5)
            .map(|k| vec!["w"; (k * 7) % 5 + 1].join(" "))
            .collect();
        std::fs::write(dir.join("train_caps.txt"), caps.join("\n")).unwrap();
        let v = Vocab::build(["w"].iter().copied(), 1, true);
        Precomp::open(dir, Split::Train, &v).unwrap()
    }

    #[test]
    fn batch_sorts_pairs_together_and_pads() {
        let dir = tempfile::tempdir().unwrap();
        let ds = dataset(dir.path());
        let idx = [3usize, 17, 0, 9, 12, 5];
        let b = Batch::gather(&ds, &idx);
        assert_eq!(b.size(), 6);
        // Stable descending sort of the drawn order by length.
        let mut want: Vec<usize> = idx.to_vec();
        want.sort_by_key(|&k| Reverse(ds.caption_len(k)));
        assert_eq!(b.caption_ids, want);
        assert!(b.lengths.windows(2).all(|w| w[0] >= w[1]));
        assert_eq!(b.max_len, b.lengths[0]);
        for i in 0..b.size() {
            let k = b.caption_ids[i];
            assert_eq!(b.lengths[i], ds.caption_len(k));
            assert_eq!(b.image_ids[i], k / 5);
            assert_eq!(b.img_ids[i], k / 5);
            assert!(b.image(i).iter().all(|&x| x == (k / 5) as f32));
            let row = b.caption(i);
            assert_eq!(&row[..b.lengths[i]], ds.caption(k));
            assert!(row[b.lengths[i]..].iter().all(|&t| t == 0));
        }
        // Ties keep their drawn order: captions 0 and 5 both have one word.
        let p0 = b.caption_ids.iter().position(|&k| k == 0).unwrap();
        let p5 = b.caption_ids.iter().position(|&k| k == 5).unwrap();
        assert_eq!(ds.caption_len(0), ds.caption_len(5));
        assert!(p0 < p5);
    }

    #[test]
    fn loader_covers_the_epoch_once_with_partial_last_batch() {
        let dir = tempfile::tempdir().unwrap();
        let ds = dataset(dir.path());
        let mut l = Loader::train(&ds, 6, 11, 2);
        let mut seen = Vec::new();
        let mut sizes = Vec::new();
        while let Some(b) = l.next_batch() {
            sizes.push(b.size());
            seen.extend_from_slice(&b.caption_ids);
            assert_eq!(b.images.len(), b.size() * 2 * 3);
        }
        assert_eq!(sizes, vec![6, 6, 6, 2]);
        assert!(is_permutation(&seen));
        let mut e = Loader::eval(&ds, EVAL_BATCH_SIZE);
        let b = e.next_batch().unwrap();
        assert_eq!(b.size(), 20);
        assert!(e.next_batch().is_none());
    }
}
