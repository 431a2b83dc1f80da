//! Numerically stable row-wise softmax pieces shared by the KL and
//! cross-entropy losses (PyTorch `F.log_softmax(z, dim=-1)`, `torch.logsumexp`).

/// log Σ_k exp(z_k) over the entries of `row` whose index is not `skip`.
/// Needs at least one entry left.
pub(crate) fn logsumexp(row: &[f64], skip: Option<usize>) -> f64 {
    let keep = |k: &usize| Some(*k) != skip;
    let max = (0..row.len())
        .filter(keep)
        .map(|k| row[k])
        .fold(f64::NEG_INFINITY, f64::max);
    let sum: f64 = (0..row.len())
        .filter(keep)
        .map(|k| (row[k] - max).exp())
        .sum();
    max + sum.ln()
}

/// Row-wise log-softmax of z: `[n, n]` → `[n, n]`.
pub(crate) fn log_softmax_rows(z: &[f64], n: usize) -> Vec<f64> {
    let mut out = vec![0.0; n * n];
    for (row, dst) in z.chunks_exact(n).zip(out.chunks_exact_mut(n)) {
        let lse = logsumexp(row, None);
        for (d, &v) in dst.iter_mut().zip(row) {
            *d = v - lse;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_softmax_is_normalised_and_stable() {
        let z = [1000.0, 1001.0, -5.0, 0.0];
        let l = log_softmax_rows(&z, 2);
        for row in l.chunks(2) {
            let s: f64 = row.iter().map(|v| v.exp()).sum();
            assert!((s - 1.0).abs() < 1e-12, "{s}"); // ulp(1000) ≈ 1e-13
        }
        assert!((l[1] - l[0] - 1.0).abs() < 1e-12);
        let lse = logsumexp(&[0.0, 3.0, 1.0], Some(1));
        assert!((lse - (1.0f64 + 1.0f64.exp()).ln()).abs() < 1e-14);
    }
}
