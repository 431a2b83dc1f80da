//! The CUDA backend (feature `cuda`, issue #16):
//! `cudarc` with the driver, NVRTC and cuBLAS loaded at run time, so a build
//! with the feature still runs (and its CPU tests pass) where no CUDA is
//! installed. The CPU engine stays the reference; the GPU paths are
//! parity-checked against it (`tests/cuda_parity.rs`, `tools/gpu/check.sh`).
//!
//! - [`error`]: what can fail ([`CudaError`]);
//! - [`gpu`]: the context, its stream and cuBLAS handle ([`Gpu`]);
//! - [`kernels`]: the CUDA C kernels (`kernels.cu`), compiled by NVRTC for the
//!   device's compute capability, and their launchers;
//! - [`blas`]: row-major f32 GEMMs on cuBLAS with TF32 off.
//!
//! Device buffers are `cudarc`'s `CudaSlice<f32>`; all work goes to one
//! stream in order, so a launch sequence is deterministic on a given GPU.

pub mod blas;
pub mod error;
pub mod gpu;
pub mod kernels;

pub use error::CudaError;
pub use gpu::Gpu;
