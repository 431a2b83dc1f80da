//! How a batch (or a split) is cut into per-rank shards (docs/method.md §14).

use std::ops::Range;

/// Rows of `n` owned by `rank` of `size`: contiguous, in rank order, the
/// first `n mod size` ranks one row longer. Every row has one owner.
pub fn shard_rows(n: usize, size: usize, rank: usize) -> Range<usize> {
    let (q, r) = (n / size, n % size);
    let start = rank * q + rank.min(r);
    start..start + q + usize::from(rank < r)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
