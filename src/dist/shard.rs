//! How a batch (or a split) is cut into per-rank shards, and the all-gather
//! of encoded captions (docs/method.md §14).

use std::ops::Range;

use crate::dist::Comm;
use crate::model::encode::EncodedCaptions;

/// Rows of `n` owned by `rank` of `size`: contiguous, in rank order, the
/// first `n mod size` ranks one row longer. Every row has one owner.
pub fn shard_rows(n: usize, size: usize, rank: usize) -> Range<usize> {
    let (q, r) = (n / size, n % size);
    let start = rank * q + rank.min(r);
    start..start + q + usize::from(rank < r)
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
    fn shards_cover_every_row_once() {
        for n in 0..20 {
            for size in 1..6 {
                let mut next = 0;
                for rank in 0..size {
                    let r = shard_rows(n, size, rank);
                    assert_eq!(r.start, next);
                    assert!(r.len() == n / size || r.len() == n / size + 1);
                    next = r.end;
                }
                assert_eq!(next, n);
            }
        }
    }

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
