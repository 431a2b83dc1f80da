//! Row-major f32 GEMMs on cuBLAS (column-major underneath: `C = op(A)·op(B)`
//! row-major is `Cᵀ = op(B)ᵀ·op(A)ᵀ` column-major, so the operands swap).
//! The handle runs CUBLAS_DEFAULT_MATH ([`super::Gpu::open`]): plain f32, no
//! TF32.

use cudarc::cublas::sys::cublasOperation_t;
use cudarc::cublas::{Gemm, GemmConfig, StridedBatchedConfig};
use cudarc::driver::{CudaView, CudaViewMut};

use super::error::{CudaError, blas, int};
use super::gpu::Gpu;

/// One operand: a row-major matrix with row stride `ld`, used transposed
/// when `t`.
#[derive(Clone, Copy)]
pub struct Operand<'a, 'b> {
    /// The data.
    pub data: &'a CudaView<'b, f32>,
    /// Row stride of the stored matrix.
    pub ld: usize,
    /// Use the transpose.
    pub t: bool,
}

/// `C[m, n] = α·op(A)[m, k]·op(B)[k, n] + β·C`, row-major (row stride of C: ldc).
pub struct Shape {
    /// Rows of C.
    pub m: usize,
    /// Columns of C.
    pub n: usize,
    /// Inner dimension.
    pub k: usize,
    /// Row stride of C.
    pub ldc: usize,
    /// Scale of the product.
    pub alpha: f32,
    /// Scale of the old C.
    pub beta: f32,
}

fn op(t: bool) -> cublasOperation_t {
    if t {
        cublasOperation_t::CUBLAS_OP_T
    } else {
        cublasOperation_t::CUBLAS_OP_N
    }
}

fn config(s: &Shape, a: &Operand, b: &Operand) -> Result<GemmConfig<f32>, CudaError> {
    for (what, v) in [
        ("gemm m", s.m),
        ("gemm n", s.n),
        ("gemm k", s.k),
        ("gemm lda", a.ld),
        ("gemm ldb", b.ld),
        ("gemm ldc", s.ldc),
    ] {
        int(what, v)?;
    }
    Ok(mapping(s, (a.ld, a.t), (b.ld, b.t)))
}

/// The column-major call computing row-major `C = op(A)·op(B)`: operands
/// swapped, m ↔ n, each operand's transpose flag kept. Sizes fit i32
/// (checked by [`config`]).
fn mapping(s: &Shape, (lda, ta): (usize, bool), (ldb, tb): (usize, bool)) -> GemmConfig<f32> {
    GemmConfig {
        transa: op(tb),
        transb: op(ta),
        m: s.n as i32,
        n: s.m as i32,
        k: s.k as i32,
        alpha: s.alpha,
        lda: ldb as i32,
        ldb: lda as i32,
        beta: s.beta,
        ldc: s.ldc as i32,
    }
}

impl Gpu {
    /// Row-major `C = α·op(A)·op(B) + β·C`.
    pub fn gemm(
        &self,
        s: &Shape,
        a: Operand,
        b: Operand,
        c: &mut CudaViewMut<'_, f32>,
    ) -> Result<(), CudaError> {
        if s.m == 0 || s.n == 0 {
            return Ok(());
        }
        let cfg = config(s, &a, &b)?;
        // SAFETY: the shapes, strides and buffer lengths are the caller's
        // contract (checked by cuBLAS only for consistency, not bounds).
        unsafe { self.blas.gemm(cfg, b.data, a.data, c) }.map_err(blas("sgemm"))
    }

    /// [`Self::gemm`] over `batch` matrices, the i-th at element offsets
    /// `i·stride_*` of each buffer.
    #[allow(clippy::too_many_arguments)]
    pub fn gemm_strided_batched(
        &self,
        s: &Shape,
        a: Operand,
        stride_a: usize,
        b: Operand,
        stride_b: usize,
        c: &mut CudaViewMut<'_, f32>,
        stride_c: usize,
        batch: usize,
    ) -> Result<(), CudaError> {
        if s.m == 0 || s.n == 0 || batch == 0 {
            return Ok(());
        }
        let cfg = StridedBatchedConfig {
            gemm: config(s, &a, &b)?,
            batch_size: int("gemm batch", batch)?,
            stride_a: stride_b as i64,
            stride_b: stride_a as i64,
            stride_c: stride_c as i64,
        };
        // SAFETY: as in `gemm`, for each of the `batch` matrices.
        unsafe { self.blas.gemm_strided_batched(cfg, b.data, a.data, c) }
            .map_err(blas("sgemm strided batched"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Column-major reference sgemm with cuBLAS's argument conventions.
    fn colmajor_sgemm(cfg: &GemmConfig<f32>, a: &[f32], b: &[f32], c: &mut [f32]) {
        let (m, n, k) = (cfg.m as usize, cfg.n as usize, cfg.k as usize);
        let (lda, ldb, ldc) = (cfg.lda as usize, cfg.ldb as usize, cfg.ldc as usize);
        let ta = cfg.transa == cublasOperation_t::CUBLAS_OP_T;
        let tb = cfg.transb == cublasOperation_t::CUBLAS_OP_T;
        for j in 0..n {
            for i in 0..m {
                let mut acc = 0.0f64;
                for p in 0..k {
                    let x = if ta { a[p + i * lda] } else { a[i + p * lda] };
                    let y = if tb { b[j + p * ldb] } else { b[p + j * ldb] };
                    acc += x as f64 * y as f64;
                }
                let o = &mut c[i + j * ldc];
                *o = cfg.alpha * acc as f32 + cfg.beta * *o;
            }
        }
    }

    /// The row-major → column-major mapping of [`config`] (operands swapped,
    /// m ↔ n) gives the row-major product for every transpose combination
    /// and padded strides.
    #[test]
    fn row_major_mapping_matches_a_naive_product() {
        let (m, n, k) = (5, 7, 3);
        for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
            // Stored shapes (row-major) with one column of padding each.
            let (ar, ac) = if ta { (k, m) } else { (m, k) };
            let (br, bc) = if tb { (n, k) } else { (k, n) };
            let (lda, ldb, ldc) = (ac + 1, bc + 1, n + 2);
            let a: Vec<f32> = (0..ar * lda).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..br * ldb).map(|i| (i as f32 * 0.11).cos()).collect();
            let at = |i: usize, p: usize| if ta { a[p * lda + i] } else { a[i * lda + p] };
            let bt = |p: usize, j: usize| if tb { b[j * ldb + p] } else { b[p * ldb + j] };
            let shape = Shape {
                m,
                n,
                k,
                ldc,
                alpha: 1.0,
                beta: 0.0,
            };
            let cfg = mapping(&shape, (lda, ta), (ldb, tb));
            let mut c = vec![0.0f32; m * ldc];
            colmajor_sgemm(&cfg, &b, &a, &mut c);
            for i in 0..m {
                for j in 0..n {
                    let want: f64 = (0..k).map(|p| at(i, p) as f64 * bt(p, j) as f64).sum();
                    assert!(
                        (c[i * ldc + j] as f64 - want).abs() < 1e-5,
                        "ta {ta} tb {tb} ({i}, {j})"
                    );
                }
            }
        }
    }
}
