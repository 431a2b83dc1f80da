//! Training (docs/method.md §4, §7; issue #4): the DBL regimes (baseline, OAS, OSS
//! K-branch cascade, MSS), schedules, crash-safe checkpoints with bit-exact
//! resume, the metrics log and the curves report.
//!
//! - [`config`]: `TrainConfig` (TOML + dotted overrides, validated up front).
//! - [`runner`]: the epoch loop shared by every regime, generic over `Trainable`;
//!   [`step`]: one step of each regime (forward, loss, backward, clip, Adam);
//!   [`run_store`]: a branch's checkpoint I/O and the run folder's checks.
//! - [`backbone_select`]: maps the configured backbone name to a model type
//!   (every registered backbone, or the test-only `tiny`).
//! - [`sharded`]: one model's step split across ranks; [`resources`]: memory
//!   and thread checks; [`branch_label`]: branch names in reports.
//! - [`store`]: the run's checkpoints as atomic, checksummed generations;
//!   [`checkpoint`]: one branch's files; [`run_lock`]: one writer per run.
//! - [`run_config`]: the run folder's `config.json` and vocabulary copy,
//!   paths recorded relative to the folder so that it can move.
//! - [`schedule`], [`metrics_log`], [`report`].
//! - [`test_model`]: the `tiny` model used by tests and smoke runs.

pub mod backbone_select;
pub mod branch_label;
pub mod checkpoint;
pub mod config;
pub mod metrics_log;
pub mod report;
pub mod resources;
pub mod run_config;
pub mod run_lock;
pub mod run_store;
pub mod runner;
pub mod schedule;
pub mod sharded;
pub mod stale_branches;
pub mod step;
pub mod test_model;

use std::path::PathBuf;

/// Everything that can stop a training run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error("{path}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("checkpoint")]
    Checkpoint(#[from] crate::store::CheckpointError),
    #[error("vocabulary")]
    Vocab(#[from] crate::data::vocab::VocabError),
    #[error("data")]
    Data(#[from] crate::data::precomp::PrecompError),
    #[error("engine")]
    Engine(#[from] crate::engine::error::EngineError),
    #[error("loss")]
    Loss(#[from] crate::loss::LossError),
    #[error("evaluation")]
    Eval(#[from] crate::eval::error::EvalError),
    #[error(transparent)]
    Precision(#[from] crate::model::precision::PrecisionError),
    #[error(transparent)]
    Device(#[from] crate::engine::device::DeviceError),
    #[error(
        "{0} already holds checkpoints (checkpoints/MANIFEST.json): pass --resume {0} to continue it, or choose a new --out"
    )]
    RunExists(PathBuf),
    #[error(transparent)]
    Lock(#[from] run_lock::LockError),
    #[error(
        "{out} holds `{name}`, which dbl did not write; a run folder must be new, empty or a dbl \
         run: choose another --out (nothing was written)"
    )]
    ForeignFiles { out: PathBuf, name: String },
    #[error("{0}")]
    Resources(String),
    #[error(
        "training interrupted: {0} keeps its last committed epoch; continue with \
         dbl train --resume {0}"
    )]
    Interrupted(PathBuf),
}
