//! `dbl bench` (issue #5): the Rust side of the engine-vs-PyTorch benchmark.
//! Same configurations, inputs and FLOP count as `tools/bench/` (the JSON
//! contract is in `tools/bench/README.md`); one file per concern:
//!
//! - [`config`]: the six configurations;
//! - [`inputs`]: the deterministic inputs (splitmix64 hash) shared with the peer;
//! - [`flops`]: the analytic FLOP count (port of `tools/bench/flops.py`);
//! - [`train`]: a training repetition (the trainer's cohort step);
//! - [`score`]: a scoring repetition (encode + sharded scoring, phases timed);
//! - `score_cuda` (feature `cuda`): the same repetition on the GPU;
//! - [`measure`]: median, CPU time, peak RSS, load average.

pub mod config;
pub mod flops;
pub mod inputs;
pub mod measure;
pub mod score;
#[cfg(feature = "cuda")]
pub mod score_cuda;
pub mod train;

/// What can stop a benchmark.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("bench model: {0}")]
    Model(#[from] crate::model::config::ConfigError),
    #[error("bench engine: {0}")]
    Engine(#[from] crate::engine::error::EngineError),
    #[error("bench loss: {0}")]
    Loss(#[from] crate::loss::LossError),
    #[error("bench inputs: {0}")]
    Npy(#[from] crate::data::npy::NpyError),
    #[error("bench scoring: {0}")]
    Eval(#[from] crate::eval::error::EvalError),
    #[error("bench scoring: {0}")]
    Amx(#[from] crate::engine::amx::Unavailable),
    #[error(transparent)]
    Infer(#[from] crate::infer::InferError),
    #[error("bench: --head-precision bf16 applies to scan-score only (vse has no similarity head)")]
    Bf16NeedsScan,
    #[cfg(feature = "cuda")]
    #[error("bench on the GPU: {0}")]
    Cuda(#[from] crate::engine::cuda::CudaError),
    #[error("bench scoring: score {0} (row-major) is not finite")]
    NonFinite(usize),
}
