//! [`CudaError`]: everything the CUDA backend can fail with, each naming the
//! step that failed.

use cudarc::cublas::result::CublasError;
use cudarc::driver::DriverError;
use cudarc::nvrtc::CompileError;

/// A failure of the CUDA backend.
#[derive(Debug, thiserror::Error)]
pub enum CudaError {
    /// A shared library of CUDA could not be loaded.
    #[error(
        "CUDA: the {0} library was not found (searched the dynamic loader's path for \
         {1}); install the NVIDIA driver / CUDA 13 libraries or add their folder to \
         LD_LIBRARY_PATH"
    )]
    Library(&'static str, &'static str),
    /// The model is a backbone without a CUDA scorer.
    #[error("CUDA scoring does not support the `{0}` backbone (score it on the CPU)")]
    UnsupportedBackbone(&'static str),
    /// The driver loaded but reports no device.
    #[error("CUDA: no GPU found (the driver reports {0} devices)")]
    NoDevice(i32),
    /// A driver call failed.
    #[error("CUDA driver: {what}: {source}")]
    Driver {
        /// The step that failed.
        what: &'static str,
        /// The driver's error.
        source: DriverError,
    },
    /// NVRTC rejected the kernels (the log says where).
    #[error("CUDA: compiling the kernels with NVRTC for {arch}: {source}")]
    Compile {
        /// The target architecture.
        arch: String,
        /// NVRTC's error and log.
        source: CompileError,
    },
    /// A cuBLAS call failed.
    #[error("cuBLAS: {what}: {source:?}")]
    Blas {
        /// The step that failed.
        what: &'static str,
        /// cuBLAS's status.
        source: CublasError,
    },
    /// A caption without tokens.
    #[error("caption {0} has no tokens (every caption needs at least one)")]
    EmptyCaption(usize),
    /// A token id outside the embedding table.
    #[error("caption {caption}: token id {id} is outside the vocabulary of {vocab} words")]
    TokenOutOfRange {
        /// The caption's index.
        caption: usize,
        /// The offending id.
        id: u32,
        /// The table's rows.
        vocab: usize,
    },
    /// A size does not fit the 32-bit integers kernels and cuBLAS take.
    #[error("CUDA: {what} = {value} does not fit a 32-bit int")]
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// Its value.
        value: usize,
    },
}

/// `map_err` helper: a driver error at step `what`.
pub(crate) fn driver(what: &'static str) -> impl FnOnce(DriverError) -> CudaError {
    move |source| CudaError::Driver { what, source }
}

/// `map_err` helper: a cuBLAS error at step `what`.
pub(crate) fn blas(what: &'static str) -> impl FnOnce(CublasError) -> CudaError {
    move |source| CudaError::Blas { what, source }
}

/// `usize` → `i32` for kernel and cuBLAS arguments.
pub(crate) fn int(what: &'static str, value: usize) -> Result<i32, CudaError> {
    i32::try_from(value).map_err(|_| CudaError::TooLarge { what, value })
}
