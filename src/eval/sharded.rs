//! Sharded exact scoring (docs/method.md §8 step 3; the authors' `shard_attn_scores`,
//! which fills the `(N, 5N)` matrix in 100 x 100 blocks): a [`BlockScorer`]
//! fills one block of images x captions, and the drivers tile the matrix,
//! either into one dense buffer ([`score_full`], rayon over all blocks) or
//! band by band into a sink ([`score_bands`], rayon over the blocks of a band,
//! memory of one band), e.g. an `NpyWriter` or a streaming ranker.
//!
//! Block sizes never change results as long as the scorer is block-invariant
//! (every score depends only on its image and caption), which the property
//! tests check for the dot-product scorer. Both drivers report each matrix
//! ([`Event::Matrix`]) and each scored block ([`Event::Blocks`]) to the
//! caller's [`Watch`] and to [`Display`], the open [`crate::progress`]
//! phase's observer, through one [`Tee`]: the one progress path.

use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};

use rayon::prelude::*;

use super::error::EvalError;
use crate::progress::Display;
use crate::watch::{Event, Tee, Unwatched, Watch};

/// Something that scores blocks of the image x caption similarity matrix.
///
/// Implementations must fill every value of `out` and be deterministic: the
/// same block always gives the same bits (sharded evaluation re-scores the
/// blocks holding positives; [`crate::eval::streaming`] checks this).
pub trait BlockScorer: Sync {
    /// Number of images (rows of the full matrix).
    fn n_images(&self) -> usize;
    /// Number of captions (columns of the full matrix).
    fn n_captions(&self) -> usize;
    /// Scores images `images` against captions `captions`.
    /// out: `[images.len(), captions.len()]`, row-major.
    fn score_block(&self, images: Range<usize>, captions: Range<usize>, out: &mut [f32]);
}

/// Tile shape for sharded scoring. Default: 100 x 100, the authors'
/// `shard_size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockSize {
    /// Images per block (>= 1).
    pub images: usize,
    /// Captions per block (>= 1).
    pub captions: usize,
}

impl Default for BlockSize {
    fn default() -> Self {
        Self {
            images: 100,
            captions: 100,
        }
    }
}

impl BlockSize {
    /// Both sides must be at least 1.
    pub fn validate(&self) -> Result<(), EvalError> {
        if self.images == 0 || self.captions == 0 {
            return Err(EvalError::BlockSize {
                images: self.images,
                captions: self.captions,
            });
        }
        Ok(())
    }

    /// Image range of image block `b` of a matrix with `n_img` images.
    pub fn image_range(&self, b: usize, n_img: usize) -> Range<usize> {
        b * self.images..((b + 1) * self.images).min(n_img)
    }

    /// Caption range of caption block `b` of a matrix with `n_cap` captions.
    pub fn caption_range(&self, b: usize, n_cap: usize) -> Range<usize> {
        b * self.captions..((b + 1) * self.captions).min(n_cap)
    }
}

/// Checks the block size and the scorer's shape; returns `(n_img, n_cap)`.
fn check<S: BlockScorer + ?Sized>(
    scorer: &S,
    block: BlockSize,
) -> Result<(usize, usize), EvalError> {
    block.validate()?;
    let (n_img, n_cap) = (scorer.n_images(), scorer.n_captions());
    if n_img == 0 || n_cap == 0 {
        return Err(EvalError::Empty { n_img, n_cap });
    }
    n_img
        .checked_mul(n_cap)
        .ok_or(EvalError::TooLarge { n_img, n_cap })?;
    Ok((n_img, n_cap))
}

/// [`check`], then `scorer` observed by `watch` and the progress display:
/// the matrix is announced to both ([`Event::Matrix`], once per matrix) and
/// each block is reported as it is scored.
fn observed<'a, S: BlockScorer + ?Sized>(
    scorer: &'a S,
    block: BlockSize,
    watch: &'a Tee<'a>,
) -> Result<Watched<'a, S>, EvalError> {
    let (n_img, n_cap) = check(scorer, block)?;
    watch.report(&Event::Matrix {
        pairs: (n_img * n_cap) as u64,
    });
    Ok(Watched {
        inner: scorer,
        watch,
        done: AtomicUsize::new(0),
        total: n_img.div_ceil(block.images) * n_cap.div_ceil(block.captions),
    })
}

/// Scores one block into `scratch` (resized; pre-filled with NaN so a scorer
/// that skips values is caught by the finiteness checks downstream).
fn score_into<S: BlockScorer + ?Sized>(
    scorer: &S,
    images: Range<usize>,
    captions: Range<usize>,
    scratch: &mut Vec<f32>,
) {
    scratch.clear();
    scratch.resize(images.len() * captions.len(), f32::NAN);
    scorer.score_block(images, captions, scratch);
}

/// Scores the full matrix, rayon over all blocks. Returns `[n_img, n_cap]`,
/// row-major, ready for [`SimMatrix::new`](super::matrix::SimMatrix::new).
pub fn score_full<S: BlockScorer + ?Sized>(
    scorer: &S,
    block: BlockSize,
) -> Result<Vec<f32>, EvalError> {
    score_full_watched(scorer, block, &Unwatched)
}

/// The full matrix of a checked, observed scorer (every block, rayon).
fn fill_full<S: BlockScorer + ?Sized>(scorer: &S, block: BlockSize) -> Vec<f32> {
    let (n_img, n_cap) = (scorer.n_images(), scorer.n_captions());
    let mut out = vec![0.0f32; n_img * n_cap];
    let n_cb = n_cap.div_ceil(block.captions);
    let n_ib = n_img.div_ceil(block.images);
    // Hand each block the disjoint row pieces it owns.
    let mut pieces: Vec<Vec<&mut [f32]>> = (0..n_ib * n_cb).map(|_| Vec::new()).collect();
    for (i, row) in out.chunks_mut(n_cap).enumerate() {
        let ib = i / block.images;
        for (cb, piece) in row.chunks_mut(block.captions).enumerate() {
            pieces[ib * n_cb + cb].push(piece);
        }
    }
    pieces
        .into_par_iter()
        .enumerate()
        .for_each_init(Vec::new, |scratch, (b, rows)| {
            let captions = block.caption_range(b % n_cb, n_cap);
            let width = captions.len();
            score_into(
                scorer,
                block.image_range(b / n_cb, n_img),
                captions,
                scratch,
            );
            for (dst, src) in rows.into_iter().zip(scratch.chunks(width)) {
                dst.copy_from_slice(src);
            }
        });
    out
}

/// A scorer that reports each block to a [`Watch`] and, once a stop is
/// requested, skips the blocks still to come (they stay NaN).
struct Watched<'a, S: ?Sized> {
    inner: &'a S,
    watch: &'a dyn Watch,
    done: AtomicUsize,
    total: usize,
}

impl<S: BlockScorer + ?Sized> BlockScorer for Watched<'_, S> {
    fn n_images(&self) -> usize {
        self.inner.n_images()
    }
    fn n_captions(&self) -> usize {
        self.inner.n_captions()
    }
    fn score_block(&self, images: Range<usize>, captions: Range<usize>, out: &mut [f32]) {
        if self.watch.stop_requested() {
            return;
        }
        self.inner.score_block(images, captions, out);
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        self.watch.report(&Event::Blocks {
            done,
            total: self.total,
            pairs: out.len() as u64,
        });
    }
}

/// [`score_full`] observed by `watch`: one [`Event::Matrix`], then one
/// [`Event::Blocks`] per block; when `watch` asks to stop, the remaining
/// blocks are skipped and [`EvalError::Interrupted`] is returned.
pub fn score_full_watched<S: BlockScorer + ?Sized>(
    scorer: &S,
    block: BlockSize,
    watch: &dyn Watch,
) -> Result<Vec<f32>, EvalError> {
    let tee = Tee(watch, &Display);
    let w = observed(scorer, block, &tee)?;
    let out = fill_full(&w, block);
    let done = w.done.into_inner();
    if done < w.total {
        return Err(EvalError::Interrupted {
            done,
            total: w.total,
        });
    }
    Ok(out)
}

/// Scores the matrix one band of `block.images` images at a time (rayon over
/// the band's caption blocks) and hands each band, in order, to `sink`
/// together with its image range. band: `[range.len(), n_cap]`.
///
/// Peak memory is one band. Errors of the sink stop the scoring.
pub fn score_bands<S, F, E>(scorer: &S, block: BlockSize, mut sink: F) -> Result<(), E>
where
    S: BlockScorer + ?Sized,
    F: FnMut(Range<usize>, &[f32]) -> Result<(), E>,
    E: From<EvalError>,
{
    let tee = Tee(&Unwatched, &Display);
    let scorer = observed(scorer, block, &tee)?;
    let (n_img, n_cap) = (scorer.n_images(), scorer.n_captions());
    let n_cb = n_cap.div_ceil(block.captions);
    let mut band = Vec::new();
    for ib in 0..n_img.div_ceil(block.images) {
        let images = block.image_range(ib, n_img);
        band.clear();
        band.resize(images.len() * n_cap, 0.0f32);
        let mut pieces: Vec<Vec<&mut [f32]>> = (0..n_cb).map(|_| Vec::new()).collect();
        for row in band.chunks_mut(n_cap) {
            for (cb, piece) in row.chunks_mut(block.captions).enumerate() {
                pieces[cb].push(piece);
            }
        }
        pieces
            .into_par_iter()
            .enumerate()
            .for_each_init(Vec::new, |scratch, (cb, rows)| {
                let captions = block.caption_range(cb, n_cap);
                let width = captions.len();
                score_into(&scorer, images.clone(), captions, scratch);
                for (dst, src) in rows.into_iter().zip(scratch.chunks(width)) {
                    dst.copy_from_slice(src);
                }
            });
        sink(images, &band)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// s(i, k) = 1000 i + k: every value says where it belongs.
    struct Coords {
        n_img: usize,
        n_cap: usize,
    }

    impl BlockScorer for Coords {
        fn n_images(&self) -> usize {
            self.n_img
        }
        fn n_captions(&self) -> usize {
            self.n_cap
        }
        fn score_block(&self, images: Range<usize>, captions: Range<usize>, out: &mut [f32]) {
            let w = captions.len();
            for (r, i) in images.enumerate() {
                for (c, k) in captions.clone().enumerate() {
                    out[r * w + c] = (1000 * i + k) as f32;
                }
            }
        }
    }

    #[test]
    fn every_value_lands_in_place() {
        let s = Coords {
            n_img: 7,
            n_cap: 13,
        };
        let want: Vec<f32> = (0..7)
            .flat_map(|i| (0..13).map(move |k| (1000 * i + k) as f32))
            .collect();
        for (bi, bc) in [(1, 1), (2, 5), (3, 13), (7, 4), (100, 100)] {
            let block = BlockSize {
                images: bi,
                captions: bc,
            };
            assert_eq!(score_full(&s, block).unwrap(), want, "{bi}x{bc}");
            let mut streamed = Vec::new();
            let mut next = 0;
            score_bands(&s, block, |rows, band| {
                assert_eq!(rows.start, next);
                next = rows.end;
                streamed.extend_from_slice(band);
                Ok::<(), EvalError>(())
            })
            .unwrap();
            assert_eq!(streamed, want, "bands {bi}x{bc}");
        }
    }

    /// Stops once `after` blocks were reported; counts the reports.
    struct StopAfter {
        after: usize,
        seen: AtomicUsize,
    }

    impl Watch for StopAfter {
        fn report(&self, event: &Event) {
            match event {
                Event::Matrix { pairs } => assert_eq!(*pairs, 7 * 13),
                Event::Blocks { total: 12, .. } => {
                    self.seen.fetch_add(1, Ordering::Relaxed);
                }
                _ => panic!("unexpected {event:?}"),
            }
        }
        fn stop_requested(&self) -> bool {
            self.seen.load(Ordering::Relaxed) >= self.after
        }
    }

    /// Watched scoring gives the same matrix and one report per block; a
    /// stop request ends it with `Interrupted` before every block is scored.
    #[test]
    fn watched_scoring_reports_and_stops() {
        let s = Coords {
            n_img: 7,
            n_cap: 13,
        };
        let block = BlockSize {
            images: 2,
            captions: 5,
        };
        let never = StopAfter {
            after: usize::MAX,
            seen: AtomicUsize::new(0),
        };
        let got = score_full_watched(&s, block, &never).unwrap();
        assert_eq!(got, score_full(&s, block).unwrap());
        assert_eq!(never.seen.into_inner(), 4 * 3);
        let stop = StopAfter {
            after: 3,
            seen: AtomicUsize::new(0),
        };
        // One worker: the stop is seen right after the third block.
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        match pool.install(|| score_full_watched(&s, block, &stop)) {
            Err(EvalError::Interrupted { done, total: 12 }) => assert_eq!(done, 3),
            other => panic!("expected Interrupted, got {other:?}"),
        }
    }

    #[test]
    fn rejects_zero_blocks_and_empty_scorers() {
        let s = Coords { n_img: 2, n_cap: 4 };
        let zero = BlockSize {
            images: 0,
            captions: 3,
        };
        assert_eq!(
            score_full(&s, zero).unwrap_err(),
            EvalError::BlockSize {
                images: 0,
                captions: 3
            }
        );
        let empty = Coords { n_img: 0, n_cap: 4 };
        assert!(matches!(
            score_full(&empty, BlockSize::default()),
            Err(EvalError::Empty { .. })
        ));
    }
}
