//! How much the shortlist costs in recall: R@1/5/10 of two-stage search at
//! shortlist sizes K against exact full ranking (K = gallery), both
//! directions, on an index built with captions laid out as a split
//! (`n_captions = c · n_images`, caption j describes image j / c).
//!
//! Queries are the gallery's own captions (text → image) and images (image →
//! text), their shortlist embeddings the stored global rows (what
//! [`super::Index`] computes for the same query). Exact scores come from one
//! full matrix; a two-stage rank is the exact rank among the K candidates, or
//! a miss when the ground truth is not among them.

use serde::Serialize;

use super::ServeError;
use super::index::Index;

/// R@1/5/10 (percent) of one direction.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Recall {
    /// R@1.
    pub r1: f64,
    /// R@5.
    pub r5: f64,
    /// R@10.
    pub r10: f64,
}

/// One row of the trade-off table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecallRow {
    /// Shortlist size (None: exact full ranking).
    pub k: Option<usize>,
    /// Text → image.
    pub t2i: Recall,
    /// Image → text.
    pub i2t: Recall,
}

fn recall(ranks: &[usize]) -> Recall {
    let at =
        |k: usize| 100.0 * ranks.iter().filter(|&&r| r < k).count() as f64 / ranks.len() as f64;
    Recall {
        r1: at(1),
        r5: at(5),
        r10: at(10),
    }
}

/// 0-based rank of `gt` among `cand` under `score` (higher first, ties by
/// index); `usize::MAX` when `gt` is not a candidate.
fn rank_among(cand: &[usize], gt: usize, score: impl Fn(usize) -> f32) -> usize {
    if !cand.contains(&gt) {
        return usize::MAX;
    }
    let s = score(gt);
    cand.iter()
        .filter(|&&c| {
            let t = score(c);
            t > s || (t == s && c < gt)
        })
        .count()
}

/// The exact row and one row per K in `ks`. `sims`: `[n_img, n_cap]` exact
/// scores of the whole gallery (e.g. from [`Index::score_all`]).
pub fn recall_table(idx: &Index, sims: &[f32], ks: &[usize]) -> Result<Vec<RecallRow>, ServeError> {
    let m = idx.manifest();
    let (ni, nc) = (m.n_images, m.n_captions);
    if nc == 0 || nc % ni != 0 {
        return Err(ServeError::Usage(format!(
            "recall needs a caption gallery of c captions per image, got {nc} captions for {ni} images"
        )));
    }
    let per = nc / ni;
    let mut rows = Vec::new();
    for k in std::iter::once(None).chain(ks.iter().map(|&k| Some(k))) {
        let mut t2i = Vec::with_capacity(nc);
        for j in 0..nc {
            let cand: Vec<usize> = match k {
                None => (0..ni).collect(),
                Some(k) => idx.image_candidates(idx.caption_global(j), k)?,
            };
            t2i.push(rank_among(&cand, j / per, |i| sims[i * nc + j]));
        }
        let mut i2t = Vec::with_capacity(ni);
        for i in 0..ni {
            let cand: Vec<usize> = match k {
                None => (0..nc).collect(),
                Some(k) => idx.caption_candidates(idx.image_global(i), k)?,
            };
            let best = (i * per..(i + 1) * per)
                .map(|gt| rank_among(&cand, gt, |j| sims[i * nc + j]))
                .min()
                .unwrap_or(usize::MAX);
            i2t.push(best);
        }
        rows.push(RecallRow {
            k,
            t2i: recall(&t2i),
            i2t: recall(&i2t),
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_and_misses() {
        let s = [0.5f32, 0.9, 0.5, 0.1];
        assert_eq!(rank_among(&[0, 1, 2, 3], 2, |i| s[i]), 2);
        assert_eq!(rank_among(&[0, 1, 2, 3], 0, |i| s[i]), 1);
        assert_eq!(rank_among(&[1, 3], 0, |i| s[i]), usize::MAX);
        let r = recall(&[0, 4, 9, usize::MAX]);
        assert_eq!((r.r1, r.r5, r.r10), (25.0, 50.0, 75.0));
    }
}
