//! Communication between the processes of one job (docs/method.md §14): the
//! [`Comm`] trait the trainer and the scorer are written against, its
//! one-process implementation [`Solo`] (the default: a plain `dbl train` is
//! the N = 1 case of the same code), and, with the cargo feature `mpi`,
//! [`mpi::MpiComm`] over the system MPI (`mpirun -n N dbl …`).
//!
//! Every collective is *blocking* and *called by every rank in the same
//! order*; buffers are f32 (features, gradients, scores) or u64 (counts).
//! [`Traffic`] counts the bytes each rank sends under the ring algorithms
//! (see [`Traffic::add`]), for `BENCHMARKS.md` and the step records.

#[cfg(feature = "mpi")]
pub mod mpi;
pub mod shard;
// Used by `mpi` only; its text is tested without the feature.
#[cfg_attr(not(feature = "mpi"), allow(dead_code))]
mod whereabouts;
pub mod world;

use std::sync::atomic::{AtomicU64, Ordering};

pub use shard::shard_rows;
pub use world::{DistError, world};

/// The collectives dbl needs. Rank order is the data order: gathers
/// concatenate rank 0's part first.
pub trait Comm: Send + Sync {
    /// This process's rank, 0-based.
    fn rank(&self) -> usize;
    /// Number of ranks N.
    fn size(&self) -> usize;
    /// Every rank's `local` concatenated in rank order → (all, per-rank lengths).
    fn all_gather_f32(&self, local: &[f32]) -> (Vec<f32>, Vec<usize>);
    /// [`Self::all_gather_f32`] for integers (counts, offsets).
    fn all_gather_u64(&self, local: &[u64]) -> (Vec<u64>, Vec<usize>);
    /// `buf ← Σ_ranks buf`, the same bits on every rank.
    fn all_reduce_sum(&self, buf: &mut [f32]);
    /// Σ_ranks `buf` (every rank passes the same length, `Σ counts`), of which
    /// this rank receives its part: elements `Σ counts[..rank] ..` + `counts[rank]`.
    fn reduce_scatter_sum(&self, buf: &[f32], counts: &[usize]) -> Vec<f32>;
    /// Waits for every rank.
    fn barrier(&self);
    /// Ends the whole job (every rank) with `code`, after printing `message`.
    fn abort(&self, code: i32, message: &str) -> !;
    /// Bytes this rank has sent so far (ring model, [`Traffic`]).
    fn bytes_sent(&self) -> u64;
}

/// Bytes sent by one rank, counted per collective under the ring
/// algorithms (what a bandwidth-optimal MPI does for large buffers):
/// all-gather and reduce-scatter of a total of S bytes send (N − 1)/N·S per
/// rank, all-reduce 2(N − 1)/N·S. With N = 2 these are the exact payloads of a pairwise exchange.
#[derive(Debug, Default)]
pub struct Traffic(AtomicU64);

/// Kind of collective, for [`Traffic::add`].
#[derive(Debug, Clone, Copy)]
pub enum Collective {
    /// All-gather or reduce-scatter.
    GatherScatter,
    /// All-reduce.
    Reduce,
}

impl Traffic {
    /// Counts one collective over `total_bytes` (the full, gathered or
    /// reduced buffer) among `n` ranks.
    pub fn add(&self, kind: Collective, total_bytes: usize, n: usize) {
        if n <= 1 {
            return;
        }
        let s = total_bytes as u64;
        let n64 = n as u64;
        let b = match kind {
            Collective::GatherScatter => s * (n64 - 1) / n64,
            Collective::Reduce => 2 * s * (n64 - 1) / n64,
        };
        self.0.fetch_add(b, Ordering::Relaxed);
    }

    /// Bytes counted so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// One process: rank 0 of 1. Gathers copy, reductions are the identity.
#[derive(Debug, Default, Clone, Copy)]
pub struct Solo;

impl Comm for Solo {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn all_gather_f32(&self, local: &[f32]) -> (Vec<f32>, Vec<usize>) {
        (local.to_vec(), vec![local.len()])
    }
    fn all_gather_u64(&self, local: &[u64]) -> (Vec<u64>, Vec<usize>) {
        (local.to_vec(), vec![local.len()])
    }
    fn all_reduce_sum(&self, _buf: &mut [f32]) {}
    fn reduce_scatter_sum(&self, buf: &[f32], counts: &[usize]) -> Vec<f32> {
        debug_assert_eq!(counts, [buf.len()]);
        buf.to_vec()
    }
    fn barrier(&self) {}
    fn abort(&self, code: i32, message: &str) -> ! {
        eprintln!("{message}");
        std::process::exit(code)
    }
    fn bytes_sent(&self) -> u64 {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_model_bytes() {
        let t = Traffic::default();
        t.add(Collective::Reduce, 1000, 1);
        assert_eq!(t.get(), 0);
        t.add(Collective::Reduce, 1000, 2);
        assert_eq!(t.get(), 1000);
        t.add(Collective::GatherScatter, 1000, 4);
        assert_eq!(t.get(), 1750);
    }

    #[test]
    fn solo_is_the_identity() {
        let s = Solo;
        let (g, c) = s.all_gather_f32(&[1.0, 2.0]);
        assert_eq!((g, c), (vec![1.0, 2.0], vec![2]));
        let mut b = vec![3.0];
        s.all_reduce_sum(&mut b);
        assert_eq!(b, [3.0]);
        assert_eq!(s.reduce_scatter_sum(&[1.0, 2.0], &[2]), [1.0, 2.0]);
        assert_eq!((s.rank(), s.size(), s.bytes_sent()), (0, 1, 0));
    }
}
