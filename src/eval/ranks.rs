//! 0-based retrieval ranks from a similarity matrix (docs/method.md §8 step 4), the
//! `i2t` / `t2i` loops of the authors' `evaluation.py`, in O(N) per query.
//!
//! The authors sort each query's scores with `np.argsort(s)[::-1]` and take
//! the position of the ground truth. We never sort: the rank of a positive is
//! the number of entries that would come before it in that order.
//!
//! # Tie rule
//!
//! Entry `j` comes before the positive `p` when
//! `s[j] > s[p]`, or `s[j] == s[p]` and `j > p` (the larger index wins a tie).
//!
//! This is exactly the order of `np.argsort(s, kind="stable")[::-1]`: the
//! stable ascending sort keeps tied entries in increasing index order and the
//! reversal puts the largest index first. NumPy's default `argsort` kind
//! (introsort / SIMD sort) is not stable, so on inputs with ties its order is
//! an implementation detail no rule can reproduce in general (it coincides
//! with the rule above on short arrays, where it falls back to insertion
//! sort). With real-valued model scores ties are negligible (docs/method.md §8 item 8).
//!
//! For image-to-text, an image's rank is the best (smallest) rank of any of
//! its `cpi` captions: that is the rank of the positive that comes first,
//! i.e. the largest score, ties to the largest index.
//!
//! Scores must be finite; [`SimMatrix`] guarantees it.

use rayon::prelude::*;

use super::matrix::SimMatrix;

/// Captions are counted for text-to-image ranks in column chunks of this
/// width (one rayon task each), reading the matrix row by row.
const T2I_CHUNK: usize = 256;

/// 0-based ranks of every query of both directions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ranks {
    /// Image-to-text: one rank per image. i2t: `[n_img]`.
    pub i2t: Vec<usize>,
    /// Text-to-image: one rank per caption. t2i: `[n_cap]`.
    pub t2i: Vec<usize>,
}

/// Whether entry (`s_j`, `j`) comes before the positive (`s_p`, `p`) in the
/// descending order defined in the module docs.
#[inline]
pub fn precedes(s_j: f32, j: usize, s_p: f32, p: usize) -> bool {
    s_j > s_p || (s_j == s_p && j > p)
}

/// Index of the first-ranked caption of image `i` among its positives
/// `cpi * i .. cpi * (i + 1)`: the largest score, ties to the largest index.
/// row: `[n_cap]`.
#[inline]
pub fn best_positive(row: &[f32], i: usize, cpi: usize) -> usize {
    let first = cpi * i;
    let mut best = first;
    for k in first + 1..first + cpi {
        if row[k] >= row[best] {
            best = k;
        }
    }
    best
}

/// Image-to-text rank of image `i` given its row. row: `[n_cap]`.
pub fn i2t_rank(row: &[f32], i: usize, cpi: usize) -> usize {
    let p = best_positive(row, i, cpi);
    let s_p = row[p];
    // Split at p so the comparison inside each half needs no index test.
    let (before, after) = row.split_at(p);
    before.iter().filter(|&&s| s > s_p).count() + after[1..].iter().filter(|&&s| s >= s_p).count()
}

/// Adds, for every caption `first_cap + t` of a column chunk, whether image
/// `i`'s score `row[t]` comes before that caption's positive score `pos[t]`.
/// row, pos, counts: `[chunk]`.
#[inline]
pub fn t2i_accumulate_row(
    row: &[f32],
    i: usize,
    first_cap: usize,
    cpi: usize,
    pos: &[f32],
    counts: &mut [usize],
) {
    for (t, ((&s, &s_p), c)) in row.iter().zip(pos).zip(counts.iter_mut()).enumerate() {
        let g = (first_cap + t) / cpi;
        *c += usize::from(precedes(s, i, s_p, g));
    }
}

/// Image-to-text ranks, one per image (rayon over images). i2t: `[n_img]`.
pub fn i2t_ranks(m: &SimMatrix<'_>) -> Vec<usize> {
    let cpi = m.captions_per_image();
    (0..m.n_img())
        .into_par_iter()
        .map(|i| i2t_rank(m.row(i), i, cpi))
        .collect()
}

/// Text-to-image ranks, one per caption: the position of image `k / cpi` in
/// caption `k`'s column. Rayon over column chunks; each chunk walks the rows
/// in memory order, so every query costs O(n_img). t2i: `[n_cap]`.
pub fn t2i_ranks(m: &SimMatrix<'_>) -> Vec<usize> {
    let cpi = m.captions_per_image();
    let mut ranks = vec![0usize; m.n_cap()];
    ranks
        .par_chunks_mut(T2I_CHUNK)
        .enumerate()
        .for_each(|(c, counts)| {
            let first = c * T2I_CHUNK;
            let cols = first..first + counts.len();
            let pos: Vec<f32> = cols.clone().map(|k| m.get(k / cpi, k)).collect();
            for i in 0..m.n_img() {
                t2i_accumulate_row(&m.row(i)[cols.clone()], i, first, cpi, &pos, counts);
            }
        });
    ranks
}

/// Both directions.
pub fn ranks(m: &SimMatrix<'_>) -> Ranks {
    Ranks {
        i2t: i2t_ranks(m),
        t2i: t2i_ranks(m),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference: position in a full descending sort with the documented tie
    /// rule (stable ascending argsort, reversed).
    fn sorted_position(scores: &[f32], target: usize) -> usize {
        let mut idx: Vec<usize> = (0..scores.len()).collect();
        idx.sort_by(|&a, &b| scores[a].partial_cmp(&scores[b]).unwrap()); // stable
        idx.reverse();
        idx.iter().position(|&j| j == target).unwrap()
    }

    #[test]
    fn three_by_three_by_hand() {
        // One caption per image.
        //            c0   c1   c2
        let d = [
            0.9, 0.1, 0.3, // i0: c0 first -> rank 0
            0.8, 0.2, 0.5, // i1: c1 (0.2) below 0.8, 0.5 -> rank 2
            0.1, 0.7, 0.6, // i2: c2 (0.6) below 0.7 -> rank 1
        ];
        let m = SimMatrix::new(&d, 3, 3).unwrap();
        assert_eq!(i2t_ranks(&m), vec![0, 2, 1]);
        // Columns: c0 = [0.9, 0.8, 0.1] -> image 0 first: 0.
        //          c1 = [0.1, 0.2, 0.7] -> image 1 (0.2) below 0.7: 1.
        //          c2 = [0.3, 0.5, 0.6] -> image 2 (0.6) first: 0.
        assert_eq!(t2i_ranks(&m), vec![0, 1, 0]);
    }

    #[test]
    fn two_by_ten_by_hand() {
        // Five captions per image; image 0 owns c0..c4, image 1 owns c5..c9.
        let d = [
            // i0: best positive c2 = 0.6, beaten by c7 = 0.9 and c9 = 0.7 -> rank 2
            0.1, 0.2, 0.6, 0.0, 0.3, 0.5, 0.4, 0.9, 0.05, 0.7, //
            // i1: best positive c5 = 0.8, beaten by nothing -> rank 0
            0.3, 0.2, 0.1, 0.0, 0.4, 0.8, 0.1, 0.2, 0.3, 0.6,
        ];
        let m = SimMatrix::new(&d, 2, 10).unwrap();
        assert_eq!(i2t_ranks(&m), vec![2, 0]);
        // t2i: caption k's column is (d[k], d[10 + k]); positive image k / 5.
        // c0: 0.1 vs 0.3 -> image 0 second: 1; c1: 0.2 vs 0.2 tie -> image 1
        // (larger index) first, image 0 rank 1; c2: 0.6 > 0.1: 0; c3: 0.0 vs
        // 0.0 tie -> 1; c4: 0.3 < 0.4 -> 1; c5: 0.8 > 0.5: 0; c6: 0.1 < 0.4
        // -> 1; c7: 0.2 < 0.9 -> 1; c8: 0.3 > 0.05: 0; c9: 0.6 < 0.7 -> 1.
        assert_eq!(t2i_ranks(&m), vec![1, 1, 0, 1, 1, 0, 1, 1, 0, 1]);
    }

    #[test]
    fn ties_follow_reversed_stable_argsort() {
        // All-equal row: the stable reversed order is 9, 8, ..., 0.
        let row = [0.5f32; 10];
        for p in 0..10 {
            assert_eq!(sorted_position(&row, p), 9 - p);
            let count = (0..10).filter(|&j| precedes(row[j], j, row[p], p)).count();
            assert_eq!(count, 9 - p);
        }
        // i2t with tied positives: image 0's captions 0..5 all 0.5, one
        // distractor above: rank of caption 4 (largest tied index) = 1.
        let mut d = vec![0.5f32; 10];
        d[7] = 0.6;
        d.extend_from_slice(&[0.0; 10]);
        let m = SimMatrix::new(&d, 2, 10).unwrap();
        // Captions 5, 6, 8, 9 tie at 0.5 with larger indices -> also ahead.
        assert_eq!(i2t_ranks(&m)[0], 5);
        assert_eq!(
            i2t_ranks(&m)[0],
            (0..5).map(|k| sorted_position(m.row(0), k)).min().unwrap()
        );
    }

    #[test]
    fn agrees_with_a_full_sort_on_quantised_scores() {
        // Deterministic pseudo-random scores on a coarse grid -> many ties.
        let (n_img, cpi) = (7, 3);
        let n_cap = n_img * cpi;
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let d: Vec<f32> = (0..n_img * n_cap)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state % 5) as f32 * 0.25
            })
            .collect();
        let m = SimMatrix::new(&d, n_img, n_cap).unwrap();
        let r = ranks(&m);
        for i in 0..n_img {
            let want = (cpi * i..cpi * (i + 1))
                .map(|k| sorted_position(m.row(i), k))
                .min()
                .unwrap();
            assert_eq!(r.i2t[i], want, "image {i}");
        }
        for k in 0..n_cap {
            let col: Vec<f32> = (0..n_img).map(|i| m.get(i, k)).collect();
            assert_eq!(r.t2i[k], sorted_position(&col, k / cpi), "caption {k}");
        }
    }
}
