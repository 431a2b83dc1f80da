//! Retrieval metrics from ranks (docs/method.md §8 step 5), as the authors'
//! `evaluation.py` computes them in float64:
//! `R@K = 100 * #(rank < K) / n`, `medr = floor(np.median(rank)) + 1`,
//! `meanr = rank.mean() + 1`, `rSum = R@1 + R@5 + R@10` of both directions.
//!
//! Serialised (serde) exactly as
//! `{"i2t": {"r1", "r5", "r10", "medr", "meanr"}, "t2i": {...}, "rsum"}`.

use serde::{Deserialize, Serialize};

use super::error::EvalError;
use super::ranks::Ranks;

/// Metrics of one retrieval direction. Recalls are percentages in `[0, 100]`;
/// `medr` and `meanr` are 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Directional {
    /// R@1: percentage of queries whose ground truth is ranked first.
    pub r1: f64,
    /// R@5.
    pub r5: f64,
    /// R@10.
    pub r10: f64,
    /// Median rank, `floor(median(rank)) + 1` (NumPy median: the mean of the
    /// two middle ranks for an even count).
    pub medr: f64,
    /// Mean rank, `mean(rank) + 1`.
    pub meanr: f64,
}

impl Directional {
    /// Metrics of 0-based `ranks`. Panics on an empty slice (a validated
    /// [`SimMatrix`](super::matrix::SimMatrix) never yields one).
    pub fn from_ranks(ranks: &[usize]) -> Self {
        assert!(!ranks.is_empty(), "metrics of zero queries are undefined");
        let n = ranks.len() as f64;
        let recall = |k: usize| 100.0 * ranks.iter().filter(|&&r| r < k).count() as f64 / n;
        let mut sorted = ranks.to_vec();
        sorted.sort_unstable();
        let mid = sorted.len() / 2;
        let median = if sorted.len() % 2 == 1 {
            sorted[mid] as f64
        } else {
            (sorted[mid - 1] as f64 + sorted[mid] as f64) / 2.0
        };
        // Integer sum: exact, like NumPy's float64 sum of integer-valued ranks
        // below 2^53, so the division rounds identically.
        let sum: u128 = ranks.iter().map(|&r| r as u128).sum();
        Self {
            r1: recall(1),
            r5: recall(5),
            r10: recall(10),
            medr: median.floor() + 1.0,
            meanr: sum as f64 / n + 1.0,
        }
    }

    /// R@1 + R@5 + R@10.
    pub fn recall_sum(&self) -> f64 {
        self.r1 + self.r5 + self.r10
    }
}

/// Both directions and their recall sum.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metrics {
    /// Image-to-text (image annotation): one query per image.
    pub i2t: Directional,
    /// Text-to-image (image search): one query per caption.
    pub t2i: Directional,
    /// rSum = R@1 + R@5 + R@10 (i2t) + R@1 + R@5 + R@10 (t2i).
    pub rsum: f64,
}

impl Metrics {
    /// Combines two directions; rSum is summed left to right as the authors do.
    pub fn new(i2t: Directional, t2i: Directional) -> Self {
        let rsum = i2t.r1 + i2t.r5 + i2t.r10 + t2i.r1 + t2i.r5 + t2i.r10;
        Self { i2t, t2i, rsum }
    }

    /// Metrics of both directions' ranks.
    pub fn from_ranks(ranks: &Ranks) -> Self {
        Self::new(
            Directional::from_ranks(&ranks.i2t),
            Directional::from_ranks(&ranks.t2i),
        )
    }

    /// Field-wise mean over folds (COCO 1K protocol). Each field is summed in
    /// fold order and divided by the fold count, like NumPy's
    /// `np.array(results).mean(axis=0)`; rSum is then the sum of the six
    /// averaged recalls (not the authors' printout, docs/method.md §9 bug 5).
    pub fn average(folds: &[Metrics]) -> Result<Self, EvalError> {
        if folds.is_empty() {
            return Err(EvalError::NoFolds);
        }
        let n = folds.len() as f64;
        let average_dir = |pick: fn(&Metrics) -> Directional| {
            let dirs: Vec<Directional> = folds.iter().map(pick).collect();
            let mean = |f: fn(&Directional) -> f64| dirs.iter().map(f).fold(0.0, |a, x| a + x) / n;
            Directional {
                r1: mean(|d| d.r1),
                r5: mean(|d| d.r5),
                r10: mean(|d| d.r10),
                medr: mean(|d| d.medr),
                meanr: mean(|d| d.meanr),
            }
        };
        Ok(Self::new(average_dir(|m| m.i2t), average_dir(|m| m.t2i)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directional_by_hand() {
        // ranks 0, 0, 3, 7, 12 -> R@1 2/5, R@5 3/5, R@10 4/5, median 3 -> 4,
        // mean 22/5 = 4.4 -> 5.4.
        let d = Directional::from_ranks(&[3, 0, 12, 0, 7]);
        assert_eq!(d.r1, 40.0);
        assert_eq!(d.r5, 60.0);
        assert_eq!(d.r10, 80.0);
        assert_eq!(d.medr, 4.0);
        assert_eq!(d.meanr, 22.0 / 5.0 + 1.0);
    }

    #[test]
    fn even_count_median_is_floored_mean_of_middle_pair() {
        // middle pair 2 and 5 -> 3.5 -> floor 3 -> medr 4.
        assert_eq!(Directional::from_ranks(&[9, 2, 0, 5]).medr, 4.0);
        // middle pair 2 and 4 -> 3 -> medr 4.
        assert_eq!(Directional::from_ranks(&[2, 4]).medr, 4.0);
        assert_eq!(Directional::from_ranks(&[0]).medr, 1.0);
    }

    #[test]
    fn json_shape_is_exact() {
        let d = Directional::from_ranks(&[0, 1]);
        let m = Metrics::new(d, d);
        let v = serde_json::to_value(m).unwrap();
        let keys = |v: &serde_json::Value| -> Vec<String> {
            v.as_object().unwrap().keys().cloned().collect()
        };
        let mut top = keys(&v);
        top.sort();
        assert_eq!(top, ["i2t", "rsum", "t2i"]);
        let mut inner = keys(&v["i2t"]);
        inner.sort();
        assert_eq!(inner, ["meanr", "medr", "r1", "r10", "r5"]);
        assert_eq!(v["rsum"], serde_json::json!(m.rsum));
        let back: Metrics = serde_json::from_value(v).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn average_rejects_no_folds() {
        assert_eq!(Metrics::average(&[]).unwrap_err(), EvalError::NoFolds);
    }
}
