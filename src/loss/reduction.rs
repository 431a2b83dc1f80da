//! How a query's negative costs are reduced (docs/method.md §3.1–3.3): the hardest
//! negative (`max`, VSE++ "max_violation", the released default) or the sum
//! over all negatives; and where the gradient of a hinge goes.
//!
//! Mirrors `cost.clamp(min=0).masked_fill(eye, 0).max(dim)[0].sum()` (hardest)
//! and `….sum()` (sum) in PyTorch 2.x, including its non-smooth conventions:
//! - the diagonal is set to 0 *before* the max, so a query whose negatives all
//!   have zero cost selects an index of value 0 and passes no gradient;
//! - ties: `max(dim)` returns the **first** maximal index (lowest column for an
//!   i2t row, lowest row for a t2i column), and only that element receives the
//!   gradient;
//! - a hinge `[x]_+` passes gradient 1 only where `x > 0` strictly (at `x == 0`
//!   the gradient is 0, as PyTorch's `clamp(min=0)` backward).

use serde::{Deserialize, Serialize};

use super::LossOutput;

/// Reduction of a query's negative costs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reduction {
    /// The largest cost per query (default; docs/method.md §7 "hardest negative on").
    #[default]
    Hardest,
    /// The sum of all negatives' costs.
    Sum,
}

/// i2t: for each row `i` (query image), reduces `[x[i][j]]_+` over `j != i`;
/// returns the sum over rows and adds 1 to `weight[i][j]` for every hinge
/// argument `x[i][j]` through which the value's gradient passes.
/// x, weight: `[n, n]`.
pub(crate) fn reduce_rows(x: &[f64], n: usize, red: Reduction, weight: &mut [f64]) -> f64 {
    reduce(x, n, red, weight, |q, k| q * n + k)
}

/// t2i: the same per column `j` (query caption) over rows `i != j`.
/// x, weight: `[n, n]`.
pub(crate) fn reduce_cols(x: &[f64], n: usize, red: Reduction, weight: &mut [f64]) -> f64 {
    reduce(x, n, red, weight, |q, k| k * n + q)
}

/// `at(query, candidate)` maps to the flat index; `candidate == query` is the
/// (excluded) positive.
fn reduce(
    x: &[f64],
    n: usize,
    red: Reduction,
    weight: &mut [f64],
    at: impl Fn(usize, usize) -> usize,
) -> f64 {
    let mut total = 0.0;
    for q in 0..n {
        match red {
            Reduction::Hardest => {
                let cost = |k: usize| if k == q { 0.0 } else { x[at(q, k)].max(0.0) };
                let (mut best_k, mut best) = (0, cost(0));
                for k in 1..n {
                    let c = cost(k);
                    if c > best {
                        best_k = k;
                        best = c;
                    }
                }
                total += best;
                if best_k != q && x[at(q, best_k)] > 0.0 {
                    weight[at(q, best_k)] += 1.0;
                }
            }
            Reduction::Sum => {
                for k in (0..n).filter(|&k| k != q) {
                    let a = x[at(q, k)];
                    if a > 0.0 {
                        total += a;
                        weight[at(q, k)] += 1.0;
                    }
                }
            }
        }
    }
    total
}

/// Bidirectional hinge over pre-hinge arguments whose gradient w.r.t. the
/// score matrix `S: [n, n]` is +1 at (i, j) and −1 at the query's positive:
/// `x1[i][j]` (i2t, row i, positive S_ii) and `x2[i][j]` (t2i, column j,
/// positive S_jj). Returns `Σ_rows red([x1]_+) + Σ_cols red([x2]_+)` and dL/dS
/// (the shared shape of the triplet loss and relative boosting).
pub(crate) fn pairwise_hinge(x1: &[f64], x2: &[f64], n: usize, red: Reduction) -> LossOutput {
    let mut w1 = vec![0.0; n * n];
    let mut w2 = vec![0.0; n * n];
    let value = reduce_rows(x1, n, red, &mut w1) + reduce_cols(x2, n, red, &mut w2);
    let mut out = LossOutput::zeros(n);
    out.value = value;
    for i in 0..n {
        for j in 0..n {
            let (a, b) = (w1[i * n + j], w2[i * n + j]);
            out.grad[i * n + j] += a + b;
            out.grad[i * n + i] -= a;
            out.grad[j * n + j] -= b;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hardest_picks_first_maximum_and_skips_zero_rows() {
        // row 0: tie between columns 1 and 2 -> column 1; row 1: all costs <= 0.
        let x = [9.0, 0.5, 0.5, -0.1, 7.0, 0.0, 0.0, 0.0, 1.0];
        let mut w = [0.0; 9];
        let v = reduce_rows(&x, 3, Reduction::Hardest, &mut w);
        // rows: 0.5 + 0 + 0 (row 2: costs 0, 0 -> no gradient at x == 0)
        assert_eq!(v, 0.5);
        assert_eq!(w, [0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn columns_use_lowest_row_on_ties_and_sum_counts_positives() {
        let x = [0.0, 0.3, 0.2, 0.0, 0.0, 0.2, 0.0, 0.3, 0.0];
        let mut w = [0.0; 9];
        let v = reduce_cols(&x, 3, Reduction::Hardest, &mut w);
        assert!((v - 0.5).abs() < 1e-15);
        // column 1: rows 0 and 2 tie at 0.3 -> row 0; column 2: rows 0, 1 tie -> row 0.
        assert_eq!(w, [0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        let mut w = [0.0; 9];
        let v = reduce_cols(&x, 3, Reduction::Sum, &mut w);
        assert!((v - 1.0).abs() < 1e-15);
        assert_eq!(w, [0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0]);
    }
}
