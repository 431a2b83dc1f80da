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
    Ok(GemmConfig {
        transa: op(b.t),
        transb: op(a.t),
        m: int("gemm n", s.n)?,
        n: int("gemm m", s.m)?,
        k: int("gemm k", s.k)?,
        alpha: s.alpha,
        lda: int("gemm ldb", b.ld)?,
        ldb: int("gemm lda", a.ld)?,
        beta: s.beta,
        ldc: int("gemm ldc", s.ldc)?,
    })
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
