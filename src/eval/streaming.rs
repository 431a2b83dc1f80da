//! Exact ranks without holding the similarity matrix (docs/method.md §8 steps 3–4 for
//! matrices too large to keep, e.g. MSCOCO 5K with a heavy head): image bands
//! arrive in order from [`score_bands`]; image-to-text ranks are final per
//! row, text-to-image ranks are counts accumulated over bands against each
//! caption's positive score, which a small pre-pass computes first.
//!
//! The pre-pass scores exactly the blocks (same tiling) that hold positives,
//! so a deterministic scorer reproduces the same bits in the band pass; this
//! is checked, and a mismatch is an error rather than a silently wrong rank.
//! Tie rule and cost per query as in [`super::ranks`].

use std::ops::Range;

use rayon::prelude::*;

use super::error::EvalError;
use super::ranks::{Ranks, i2t_rank, t2i_accumulate_row};
use super::sharded::{BlockScorer, BlockSize, score_bands};

/// Column chunk width for text-to-image counting (one rayon task each).
const T2I_CHUNK: usize = 256;

/// Accumulates ranks from image bands pushed in order.
#[derive(Debug, Clone)]
pub struct StreamingRanks {
    n_img: usize,
    n_cap: usize,
    cpi: usize,
    /// positives: `[n_cap]`, score of caption `k` with image `k / cpi`.
    positives: Vec<f32>,
    i2t: Vec<usize>,
    t2i: Vec<usize>,
    next: usize,
}

impl StreamingRanks {
    /// Starts a stream over an `n_img` x `n_cap` matrix whose positive scores
    /// are `positives` (`[n_cap]`, all finite).
    pub fn new(n_img: usize, n_cap: usize, positives: Vec<f32>) -> Result<Self, EvalError> {
        if n_img == 0 || n_cap == 0 {
            return Err(EvalError::Empty { n_img, n_cap });
        }
        if !n_cap.is_multiple_of(n_img) {
            return Err(EvalError::CaptionsPerImage { n_img, n_cap });
        }
        if positives.len() != n_cap {
            return Err(EvalError::Positives {
                expected: n_cap,
                got: positives.len(),
            });
        }
        let cpi = n_cap / n_img;
        if let Some(k) = positives.iter().position(|x| !x.is_finite()) {
            return Err(EvalError::NonFinite {
                row: k / cpi,
                col: k,
                value: positives[k],
            });
        }
        Ok(Self {
            n_img,
            n_cap,
            cpi,
            positives,
            i2t: vec![0; n_img],
            t2i: vec![0; n_cap],
            next: 0,
        })
    }

    /// Adds the scores of images `images` (the next rows, in order).
    /// band: `[images.len(), n_cap]`.
    pub fn push_band(&mut self, images: Range<usize>, band: &[f32]) -> Result<(), EvalError> {
        let n_cap = self.n_cap;
        if images.start != self.next
            || images.end <= images.start
            || images.end > self.n_img
            || band.len() != images.len() * n_cap
        {
            return Err(EvalError::Band {
                start: images.start,
                end: images.end,
                len: band.len(),
                expected_start: self.next,
                n_cap,
            });
        }
        let (cpi, first) = (self.cpi, images.start);
        // Validate every row: finite, and positives identical to the pre-pass.
        band.par_chunks(n_cap)
            .enumerate()
            .try_for_each(|(r, row)| {
                let i = first + r;
                if let Some(col) = row.iter().position(|x| !x.is_finite()) {
                    return Err(EvalError::NonFinite {
                        row: i,
                        col,
                        value: row[col],
                    });
                }
                let own = cpi * i..cpi * (i + 1);
                for (k, (&got, &want)) in own
                    .clone()
                    .zip(row[own.clone()].iter().zip(&self.positives[own.clone()]))
                {
                    if got.to_bits() != want.to_bits() {
                        return Err(EvalError::NotDeterministic {
                            row: i,
                            col: k,
                            first: want,
                            second: got,
                        });
                    }
                }
                Ok(())
            })?;
        self.i2t[images.clone()]
            .par_iter_mut()
            .zip(band.par_chunks(n_cap))
            .enumerate()
            .for_each(|(r, (rank, row))| *rank = i2t_rank(row, first + r, cpi));
        let positives = &self.positives;
        self.t2i
            .par_chunks_mut(T2I_CHUNK)
            .enumerate()
            .for_each(|(c, counts)| {
                let cols = c * T2I_CHUNK..c * T2I_CHUNK + counts.len();
                for (r, row) in band.chunks(n_cap).enumerate() {
                    t2i_accumulate_row(
                        &row[cols.clone()],
                        first + r,
                        cols.start,
                        cpi,
                        &positives[cols.clone()],
                        counts,
                    );
                }
            });
        self.next = images.end;
        Ok(())
    }

    /// The ranks, once every image row has been pushed.
    pub fn finish(self) -> Result<Ranks, EvalError> {
        if self.next != self.n_img {
            return Err(EvalError::Incomplete {
                seen: self.next,
                n_img: self.n_img,
            });
        }
        Ok(Ranks {
            i2t: self.i2t,
            t2i: self.t2i,
        })
    }
}

/// Positive score of every caption (`s(k / cpi, k)`), computed by scoring the
/// blocks of the `block` tiling that contain positives (about
/// `cpi * block.images / n_cap` of the matrix). positives: `[n_cap]`.
pub fn positive_scores<S: BlockScorer + ?Sized>(
    scorer: &S,
    block: BlockSize,
) -> Result<Vec<f32>, EvalError> {
    block.validate()?;
    let (n_img, n_cap) = (scorer.n_images(), scorer.n_captions());
    if n_img == 0 || n_cap == 0 {
        return Err(EvalError::Empty { n_img, n_cap });
    }
    if !n_cap.is_multiple_of(n_img) {
        return Err(EvalError::CaptionsPerImage { n_img, n_cap });
    }
    let cpi = n_cap / n_img;
    // (image block, caption block) pairs that hold at least one positive.
    let tiles: Vec<(usize, usize)> = (0..n_img.div_ceil(block.images))
        .flat_map(|ib| {
            let imgs = block.image_range(ib, n_img);
            let lo = cpi * imgs.start / block.captions;
            let hi = (cpi * imgs.end - 1) / block.captions;
            (lo..=hi).map(move |cb| (ib, cb))
        })
        .collect();
    let found: Vec<Vec<(usize, f32)>> = tiles
        .into_par_iter()
        .map_init(Vec::new, |scratch: &mut Vec<f32>, (ib, cb)| {
            let imgs = block.image_range(ib, n_img);
            let caps = block.caption_range(cb, n_cap);
            scratch.clear();
            scratch.resize(imgs.len() * caps.len(), f32::NAN);
            scorer.score_block(imgs.clone(), caps.clone(), scratch);
            let w = caps.len();
            caps.clone()
                .filter(|&k| imgs.contains(&(k / cpi)))
                .map(|k| (k, scratch[(k / cpi - imgs.start) * w + (k - caps.start)]))
                .collect()
        })
        .collect();
    let mut positives = vec![f32::NAN; n_cap];
    for (k, s) in found.into_iter().flatten() {
        positives[k] = s;
    }
    Ok(positives)
}

/// Exact ranks of a scorer's full matrix, computed band by band (peak memory
/// one band of `block.images` x `n_cap`). Equal to
/// `ranks(&SimMatrix::new(&score_full(scorer, block)?, ..)?)`.
pub fn rank_sharded<S: BlockScorer + ?Sized>(
    scorer: &S,
    block: BlockSize,
) -> Result<Ranks, EvalError> {
    let positives = positive_scores(scorer, block)?;
    let mut acc = StreamingRanks::new(scorer.n_images(), scorer.n_captions(), positives)?;
    score_bands(scorer, block, |images, band| acc.push_band(images, band))?;
    acc.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_out_of_order_and_incomplete_streams() {
        let mut acc = StreamingRanks::new(2, 4, vec![1.0; 4]).unwrap();
        assert!(matches!(
            acc.push_band(1..2, &[0.0; 4]),
            Err(EvalError::Band {
                expected_start: 0,
                ..
            })
        ));
        assert!(matches!(
            acc.push_band(0..1, &[0.0; 3]),
            Err(EvalError::Band { .. })
        ));
        acc.push_band(0..1, &[1.0, 1.0, 0.0, 0.0]).unwrap();
        assert_eq!(
            acc.clone().finish().unwrap_err(),
            EvalError::Incomplete { seen: 1, n_img: 2 }
        );
        // Positive of caption 2 differs from the pre-pass value.
        assert!(matches!(
            acc.push_band(1..2, &[0.0, 0.0, 0.5, 1.0]),
            Err(EvalError::NotDeterministic { row: 1, col: 2, .. })
        ));
        assert!(matches!(
            acc.push_band(1..2, &[f32::NAN, 0.0, 1.0, 1.0]),
            Err(EvalError::NonFinite { row: 1, col: 0, .. })
        ));
        acc.push_band(1..2, &[0.0, 2.0, 1.0, 1.0]).unwrap();
        let r = acc.finish().unwrap();
        // i2t: image 0 row [1,1,0,0] -> 0; image 1 row [0,2,1,1] -> c1 above: 1.
        assert_eq!(r.i2t, vec![0, 1]);
        // t2i: c0 (1,0) -> 0; c1 (1,2) -> 1; c2 (0,1) -> 0; c3 (0,1) -> 0.
        assert_eq!(r.t2i, vec![0, 1, 0, 0]);
    }

    #[test]
    fn rejects_bad_positives() {
        assert_eq!(
            StreamingRanks::new(2, 4, vec![0.0; 3]).unwrap_err(),
            EvalError::Positives {
                expected: 4,
                got: 3
            }
        );
        assert!(matches!(
            StreamingRanks::new(2, 4, vec![0.0, 0.0, f32::INFINITY, 0.0]),
            Err(EvalError::NonFinite { row: 1, col: 2, .. })
        ));
    }
}
