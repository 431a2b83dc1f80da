//! Single-precision GEMM on row-major slices, a thin wrapper over
//! `faer::linalg::matmul::matmul` (pure Rust, multi-threaded on rayon):
//! `C ← α·op(A)·op(B) + β·C`, where `op` is the identity or a transpose.
//!
//! Transposes are views (swapped strides), never copies: a PyTorch-layout
//! weight `W: [out, in]` is used as `Wᵀ` by `MatRef::new(w, out, in).t()`.
//! Rows may be strided (`with_row_stride`) so a prefix of a batch or a block of
//! columns can be multiplied in place.

use faer::Accum;

/// How a GEMM may use threads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Par {
    /// One thread (the caller's).
    #[default]
    Seq,
    /// faer's rayon parallelism on the current rayon pool with this many
    /// tasks; 0 means `rayon::current_num_threads()`. Results are bitwise
    /// reproducible for a fixed thread count.
    Rayon(usize),
}

impl Par {
    /// `Seq` for 1 thread, otherwise `Rayon(threads)` (0 = all of the pool).
    pub fn threads(threads: usize) -> Self {
        if threads == 1 {
            Par::Seq
        } else {
            Par::Rayon(threads)
        }
    }

    /// Whether element-wise loops may be split across rayon tasks too.
    pub fn is_parallel(self) -> bool {
        matches!(self, Par::Rayon(_))
    }

    fn to_faer(self) -> faer::Par {
        match self {
            Par::Seq => faer::Par::Seq,
            Par::Rayon(n) => faer::Par::rayon(n),
        }
    }
}

/// A read-only matrix view: `rows × cols`, row-major with a row stride,
/// optionally transposed.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a> {
    data: &'a [f32],
    /// Rows and columns of the stored (untransposed) matrix.
    stored_rows: usize,
    stored_cols: usize,
    row_stride: usize,
    transposed: bool,
}

impl<'a> MatRef<'a> {
    /// A contiguous row-major `[rows, cols]` matrix; `data.len()` must be `rows·cols`.
    #[track_caller]
    pub fn new(data: &'a [f32], rows: usize, cols: usize) -> Self {
        assert_eq!(
            data.len(),
            rows * cols,
            "gemm: a [{rows}, {cols}] matrix needs {} values, got {}",
            rows * cols,
            data.len()
        );
        MatRef {
            data,
            stored_rows: rows,
            stored_cols: cols,
            row_stride: cols,
            transposed: false,
        }
    }

    /// A row-major `[rows, cols]` matrix whose row `i` starts at `data[i·row_stride]`.
    #[track_caller]
    pub fn with_row_stride(data: &'a [f32], rows: usize, cols: usize, row_stride: usize) -> Self {
        let need = strided_len(data.len(), rows, cols, row_stride, "matrix");
        MatRef {
            data: &data[..need],
            stored_rows: rows,
            stored_cols: cols,
            row_stride,
            transposed: false,
        }
    }

    /// The transpose, as a view.
    pub fn t(self) -> Self {
        MatRef {
            transposed: !self.transposed,
            ..self
        }
    }

    /// Rows of the (possibly transposed) matrix.
    pub fn rows(&self) -> usize {
        if self.transposed {
            self.stored_cols
        } else {
            self.stored_rows
        }
    }

    /// Columns of the (possibly transposed) matrix.
    pub fn cols(&self) -> usize {
        if self.transposed {
            self.stored_rows
        } else {
            self.stored_cols
        }
    }

    fn to_faer(self) -> faer::MatRef<'a, f32> {
        let m = faer::MatRef::from_row_major_slice_with_stride(
            self.data,
            self.stored_rows,
            self.stored_cols,
            self.row_stride.max(1),
        );
        if self.transposed { m.transpose() } else { m }
    }
}

/// A mutable row-major matrix view (the GEMM destination).
#[derive(Debug)]
pub struct MatMut<'a> {
    data: &'a mut [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
}

impl<'a> MatMut<'a> {
    /// A contiguous row-major `[rows, cols]` matrix; `data.len()` must be `rows·cols`.
    #[track_caller]
    pub fn new(data: &'a mut [f32], rows: usize, cols: usize) -> Self {
        assert_eq!(
            data.len(),
            rows * cols,
            "gemm: a [{rows}, {cols}] destination needs {} values, got {}",
            rows * cols,
            data.len()
        );
        MatMut {
            data,
            rows,
            cols,
            row_stride: cols,
        }
    }

    /// A row-major `[rows, cols]` destination whose row `i` starts at `data[i·row_stride]`.
    #[track_caller]
    pub fn with_row_stride(
        data: &'a mut [f32],
        rows: usize,
        cols: usize,
        row_stride: usize,
    ) -> Self {
        let need = strided_len(data.len(), rows, cols, row_stride, "destination");
        MatMut {
            data: &mut data[..need],
            rows,
            cols,
            row_stride,
        }
    }

    fn scale(&mut self, beta: f32) {
        for i in 0..self.rows {
            let row = &mut self.data[i * self.row_stride..i * self.row_stride + self.cols];
            if beta == 0.0 {
                row.fill(0.0);
            } else {
                row.iter_mut().for_each(|v| *v *= beta);
            }
        }
    }
}

/// `C ← α·A·B + β·C` with `A: [m, k]`, `B: [k, n]`, `C: [m, n]` (pass `.t()`
/// views for transposed operands). `β = 0` overwrites `C` without reading it
/// (so stale or NaN contents do not leak in), `β = 1` accumulates.
///
/// # Panics
/// If the inner or outer dimensions disagree.
#[track_caller]
pub fn gemm(mut c: MatMut<'_>, a: MatRef<'_>, b: MatRef<'_>, alpha: f32, beta: f32, par: Par) {
    let (m, k) = (a.rows(), a.cols());
    let n = b.cols();
    assert!(
        b.rows() == k && c.rows == m && c.cols == n,
        "gemm: cannot multiply [{m}, {k}] by [{}, {n}] into [{}, {}]",
        b.rows(),
        c.rows,
        c.cols
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        c.scale(beta);
        return;
    }
    if a.transposed && a.row_stride == a.stored_cols && m * k >= TRANSPOSE_MIN && n >= 32 {
        // faer runs 1.3–1.8× faster on a row-major A than on a transposed view
        // for weight gradients dW = dYᵀ·X (measured, 1 thread, alternating in
        // one process: image FC 45 → 81 GFLOP/s, GRU W_hh 47 → 77); the copy costs m·k moves against
        // 2·m·k·n FLOP. The buffer is taken out of the thread-local slot, not
        // borrowed, so a rayon task stolen during the product may use it too.
        let mut buf = ROW_MAJOR_A.with(|c| c.take());
        buf.resize(m * k, 0.0);
        transpose(a.data, k, m, &mut buf);
        gemm(c, MatRef::new(&buf, m, k), b, alpha, beta, par);
        ROW_MAJOR_A.with(|c| c.replace(buf));
        return;
    }
    let accum = if beta == 0.0 {
        Accum::Replace
    } else {
        if beta != 1.0 {
            c.scale(beta);
        }
        Accum::Add
    };
    // Built as the transpose of a column-major view: faer 0.24.4's
    // `MatMut::from_row_major_slice_with_stride_mut` swaps the two strides
    // (it builds a column-major view after checking row-major bounds), which
    // writes out of bounds for non-square shapes.
    let dst =
        faer::MatMut::from_column_major_slice_with_stride_mut(c.data, n, m, c.row_stride.max(1))
            .transpose_mut();
    faer::linalg::matmul::matmul(dst, accum, a.to_faer(), b.to_faer(), alpha, par.to_faer());
    clear_upper_simd_state();
    if par.is_parallel() {
        // The micro-kernels also ran on rayon workers; clean those too.
        rayon::broadcast(|_| clear_upper_simd_state());
    }
}

/// A transposed A with at least this many values is copied row-major first.
const TRANSPOSE_MIN: usize = 1 << 15;

thread_local! {
    /// [`gemm`]'s buffer for row-major copies of transposed A operands.
    static ROW_MAJOR_A: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
}

/// `dst = srcᵀ` in 16 × 16 blocks. src: [rows, cols] → dst: [cols, rows].
pub fn transpose(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    const B: usize = 16;
    assert!(
        src.len() == rows * cols && dst.len() == rows * cols,
        "transpose: [{rows}, {cols}] from {} into {} values",
        src.len(),
        dst.len()
    );
    for r0 in (0..rows).step_by(B) {
        for c0 in (0..cols).step_by(B) {
            for r in r0..(r0 + B).min(rows) {
                for c in c0..(c0 + B).min(cols) {
                    dst[c * rows + r] = src[r * cols + c];
                }
            }
        }
    }
}

/// Executes `vzeroupper` on the calling thread when the CPU has AVX.
/// [`gemm`] calls it after every multiplication (on every rayon worker too
/// when parallel); call it yourself after any other AVX-512 kernel.
///
/// faer's AVX-512 micro-kernels can return with the upper halves of the vector
/// registers dirty. This crate is compiled for baseline x86-64, so the
/// element-wise code that follows a GEMM uses legacy-SSE encodings, and every
/// such instruction then pays a merge penalty (measured here: the GRU gate loop
/// ran ~10× slower after a GEMM than in isolation). Clearing the state once
/// per GEMM costs nothing measurable.
#[inline]
pub fn clear_upper_simd_state() {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx")]
        unsafe fn zeroupper() {
            // Only reached when AVX is available (checked below); vzeroupper
            // has no other precondition.
            std::arch::x86_64::_mm256_zeroupper()
        }
        if std::arch::is_x86_feature_detected!("avx") {
            // SAFETY: AVX support was just checked.
            unsafe { zeroupper() }
        }
    }
}

/// Convenience: `C ← α·op(A)·op(B) + β·C` on contiguous row-major slices, where
/// `a` is stored `[m, k]` (or `[k, m]` if `trans_a`) and `b` is stored `[k, n]`
/// (or `[n, k]` if `trans_b`).
#[allow(clippy::too_many_arguments)]
#[track_caller]
pub fn sgemm(
    c: &mut [f32],
    a: &[f32],
    trans_a: bool,
    b: &[f32],
    trans_b: bool,
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    beta: f32,
    par: Par,
) {
    let a = if trans_a {
        MatRef::new(a, k, m).t()
    } else {
        MatRef::new(a, m, k)
    };
    let b = if trans_b {
        MatRef::new(b, n, k).t()
    } else {
        MatRef::new(b, k, n)
    };
    gemm(MatMut::new(c, m, n), a, b, alpha, beta, par);
}

/// Values a `[rows, cols]` view with `row_stride` spans; panics (naming `what`)
/// when the stride is shorter than a row or `len` values are too few.
#[track_caller]
fn strided_len(len: usize, rows: usize, cols: usize, row_stride: usize, what: &str) -> usize {
    assert!(
        row_stride >= cols,
        "gemm: row stride {row_stride} < {cols} columns"
    );
    let need = if rows == 0 {
        0
    } else {
        (rows - 1) * row_stride + cols
    };
    assert!(
        len >= need,
        "gemm: a [{rows}, {cols}] {what} with row stride {row_stride} needs {need} values, got {len}"
    );
    need
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::rng::{seeded, symmetric_f32};

    fn rand_vec(n: usize, seed: u64) -> Vec<f32> {
        let mut r = seeded(seed);
        (0..n).map(|_| symmetric_f32(&mut r, 1.0)).collect()
    }

    /// Naive f64 reference of α·op(A)·op(B) + β·C.
    #[allow(clippy::too_many_arguments)]
    fn naive(
        c: &[f32],
        a: &[f32],
        ta: bool,
        b: &[f32],
        tb: bool,
        m: usize,
        n: usize,
        k: usize,
        alpha: f32,
        beta: f32,
    ) -> Vec<f64> {
        let mut out = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut s = 0.0f64;
                for p in 0..k {
                    let av = if ta { a[p * m + i] } else { a[i * k + p] } as f64;
                    let bv = if tb { b[j * k + p] } else { b[p * n + j] } as f64;
                    s += av * bv;
                }
                out[i * n + j] = alpha as f64 * s + beta as f64 * c[i * n + j] as f64;
            }
        }
        out
    }

    #[test]
    fn all_transpose_and_beta_combinations_match_naive() {
        let (m, n, k) = (37, 29, 53);
        for &(ta, tb) in &[(false, false), (true, false), (false, true), (true, true)] {
            for &(alpha, beta) in &[(1.0f32, 0.0f32), (0.5, 1.0), (-2.0, 0.25)] {
                for par in [Par::Seq, Par::Rayon(2)] {
                    let a = rand_vec(m * k, 1);
                    let b = rand_vec(k * n, 2);
                    let c0 = rand_vec(m * n, 3);
                    let want = naive(&c0, &a, ta, &b, tb, m, n, k, alpha, beta);
                    let mut c = c0.clone();
                    sgemm(&mut c, &a, ta, &b, tb, m, n, k, alpha, beta, par);
                    // f32 GEMM with k = 53 terms of size <= 1: |error| well under 1e-5.
                    for (x, y) in c.iter().zip(&want) {
                        assert!(
                            (*x as f64 - y).abs() < 1e-5,
                            "{ta} {tb} {alpha} {beta}: {x} vs {y}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn large_transposed_a_is_copied_row_major_and_still_right() {
        let (m, n, k) = (300, 40, 200);
        assert!(m * k >= TRANSPOSE_MIN);
        let a = rand_vec(m * k, 6);
        let b = rand_vec(k * n, 7);
        let c0 = rand_vec(m * n, 8);
        for tb in [false, true] {
            for par in [Par::Seq, Par::Rayon(2)] {
                let want = naive(&c0, &a, true, &b, tb, m, n, k, 0.5, 1.0);
                let mut c = c0.clone();
                sgemm(&mut c, &a, true, &b, tb, m, n, k, 0.5, 1.0, par);
                for (x, y) in c.iter().zip(&want) {
                    assert!((*x as f64 - y).abs() < 1e-4, "{tb}: {x} vs {y}");
                }
            }
        }
    }

    #[test]
    fn transpose_blocks() {
        let src: Vec<f32> = (0..37 * 21).map(|x| x as f32).collect();
        let mut dst = vec![0.0; src.len()];
        transpose(&src, 37, 21, &mut dst);
        for r in 0..37 {
            for c in 0..21 {
                assert_eq!(dst[c * 37 + r], src[r * 21 + c]);
            }
        }
    }

    #[test]
    fn beta_zero_ignores_nan_and_strided_views_work() {
        let (m, n, k) = (4, 3, 5);
        let a = rand_vec(m * k, 4);
        let b = rand_vec(k * n, 5);
        let mut c = vec![f32::NAN; m * n];
        sgemm(&mut c, &a, false, &b, false, m, n, k, 1.0, 0.0, Par::Seq);
        assert!(c.iter().all(|v| v.is_finite()));
        // Write into columns 2..5 of a [4, 7] buffer, reading A as the
        // first 5 columns of a [4, 8] buffer.
        let mut wide_a = vec![0.0f32; m * 8];
        for i in 0..m {
            wide_a[i * 8..i * 8 + k].copy_from_slice(&a[i * k..(i + 1) * k]);
        }
        let mut wide_c = vec![7.0f32; m * 7];
        gemm(
            MatMut::with_row_stride(&mut wide_c[2..], m, n, 7),
            MatRef::with_row_stride(&wide_a, m, k, 8),
            MatRef::new(&b, k, n),
            1.0,
            0.0,
            Par::Seq,
        );
        for i in 0..m {
            assert_eq!(&wide_c[i * 7..i * 7 + 2], &[7.0, 7.0]);
            for j in 0..n {
                assert!((wide_c[i * 7 + 2 + j] - c[i * n + j]).abs() < 1e-6);
            }
        }
    }

    #[test]
    #[should_panic(expected = "cannot multiply")]
    fn mismatched_shapes_panic() {
        let a = vec![0.0; 6];
        let b = vec![0.0; 6];
        let mut c = vec![0.0; 4];
        gemm(
            MatMut::new(&mut c, 2, 2),
            MatRef::new(&a, 2, 3),
            MatRef::new(&b, 2, 3),
            1.0,
            0.0,
            Par::Seq,
        );
    }
}
