//! One model's forward and backward over a global batch split across the
//! ranks of a [`Comm`] (docs/method.md §14) — the trainer's only path; one
//! process is the N = 1 case.
//!
//! Forward: rank r encodes pairs `shard_rows(B, N, r)` (its images and
//! captions; dropout masks as in the whole batch), all-gathers the captions,
//! scores its image rows against all B captions ([b_r, B]) and all-gathers
//! the score blocks: every rank holds the same full [B, B] matrix, so the
//! loss is computed on it identically everywhere. Backward: rank r
//! back-propagates its rows of dL/dS through the head and its images, gets
//! dL/d(every caption row), reduce-scatters it (each caption's gradient
//! summed over the ranks that scored it, delivered to its owner) and
//! back-propagates its captions; finally the parameter gradients are
//! all-reduced, so clipping and Adam see the global gradient on every rank.
//!
//! A backbone without the split hooks runs the whole batch on every rank
//! (identical on all; no gradient exchange needed).

use std::ops::Range;

use crate::data::batch::Batch;
use crate::dist::{Comm, shard_rows};
use crate::engine::param::Module;
use crate::engine::rng::EngineRng;
use crate::model::Trainable;
use crate::model::encode::gather_captions;

/// What [`backward`] needs from [`forward`].
pub enum StepCache<C> {
    /// The model split: this rank's cache, its rows and the f32 counts of
    /// every rank's caption rows.
    Split {
        /// The model's shard cache.
        cache: C,
        /// This rank's pairs.
        rows: Range<usize>,
        /// f32 elements of each rank's caption rows (for the reduce-scatter).
        counts: Vec<usize>,
    },
    /// Every rank ran the whole batch.
    Whole(C),
}

/// Scores `batch` with `m` across the ranks of `comm` → (sims [B, B], the
/// same on every rank; cache). `rng` ends where a one-process forward leaves it.
pub fn forward<M: Trainable>(
    m: &M,
    batch: &Batch,
    train: bool,
    rng: &mut EngineRng,
    comm: &dyn Comm,
) -> (Vec<f32>, StepCache<M::Cache>) {
    let rows = shard_rows(batch.size(), comm.size(), comm.rank());
    match m.encode_shard(batch, rows.clone(), train, rng) {
        Some((captions, mut cache)) => {
            let (all, counts) = gather_captions(comm, &captions);
            let block = m.score_shard(&mut cache, all);
            let (sims, _) = comm.all_gather_f32(&block);
            (
                sims,
                StepCache::Split {
                    cache,
                    rows,
                    counts,
                },
            )
        }
        None => {
            let (sims, cache) = m.forward(batch, train, rng);
            (sims, StepCache::Whole(cache))
        }
    }
}

/// Back-propagates `d_sims` ([B, B], the same on every rank) and leaves the
/// global gradient (Σ over the batch) in every parameter's `grad` on every rank.
pub fn backward<M: Trainable>(
    m: &mut M,
    cache: StepCache<M::Cache>,
    d_sims: &[f32],
    comm: &dyn Comm,
) {
    match cache {
        StepCache::Split {
            mut cache,
            rows,
            counts,
        } => {
            let width = d_sims.len().isqrt();
            debug_assert_eq!(width * width, d_sims.len(), "d_sims must be [B, B]");
            let block = &d_sims[rows.start * width..rows.end * width];
            let d_all = m.backward_shard(&mut cache, block);
            let d_mine = comm.reduce_scatter_sum(&d_all, &counts);
            m.backward_captions(cache, d_mine);
            all_reduce_grads(m, comm);
        }
        StepCache::Whole(cache) => m.backward(cache, d_sims),
    }
}

/// Σ over ranks of every parameter's gradient, in place (one all-reduce of
/// the concatenated gradients). Nothing to do for one rank.
pub fn all_reduce_grads(m: &mut impl Module, comm: &dyn Comm) {
    if comm.size() == 1 {
        return;
    }
    let mut params = m.params_mut();
    let total: usize = params.iter().map(|p| p.grad.len()).sum();
    let mut flat = Vec::with_capacity(total);
    for p in &params {
        flat.extend_from_slice(&p.grad);
    }
    comm.all_reduce_sum(&mut flat);
    let mut at = 0;
    for p in params.iter_mut() {
        let n = p.grad.len();
        p.grad.copy_from_slice(&flat[at..at + n]);
        at += n;
    }
}
