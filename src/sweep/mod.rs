//! `dbl sweep`: the same training configuration once per seed, each branch's
//! best-on-dev checkpoint scored on test, and what the seeds say together
//! (evidence about the method is seeded: several seeds, paired differences):
//!
//! - [`seeds`]: the `--seeds` list syntax.
//! - [`run`]: trains and tests the seeds one after another into `OUT/seed{s}/`,
//!   resumable (finished seeds are skipped, an interrupted one resumes).
//! - [`stats`]: mean, sd, Student-t quantiles, paired target − anchor interval.
//! - [`summary`]: per-branch mean ± sd of the test metrics, the paired
//!   difference, written as `summary.{json,md,png,svg}`.
//! - [`curves`]: every seed's dev rSum per epoch and branch, `curves.{png,svg}`.
//! - [`estimator`]: the selection-robust estimate beside best-on-dev: the
//!   paired target − anchor test rSum averaged over every epoch after a burn-in.
//! - [`compare`]: several sweeps side by side (`dbl sweep compare`).

pub mod compare;
pub mod curves;
pub mod estimator;
pub mod lock;
pub mod run;
pub mod seeds;
pub mod stats;
pub mod summary;

use std::path::PathBuf;

/// Everything that can stop a sweep.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("--seeds `{spec}`: {message} (expected e.g. 0..5, 0..=4 or 0,3,7)")]
    Seeds { spec: String, message: String },
    #[error(
        "{path}: this sweep folder was started with a different configuration \
         ({what}); use a new --out or the original config and --set flags"
    )]
    Mismatch { path: PathBuf, what: String },
    #[error("{path}: {message}")]
    Record { path: PathBuf, message: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Config(#[from] crate::train::config::ConfigError),
    #[error(transparent)]
    Train(#[from] crate::train::TrainError),
    #[error(transparent)]
    Checkpoint(#[from] crate::store::CheckpointError),
    #[error(transparent)]
    Plot(#[from] crate::plot::PlotError),
}

/// Writes `value` as pretty JSON to `path`, atomically (temp file + rename).
pub(crate) fn write_json<T: serde::Serialize + ?Sized>(
    path: &std::path::Path,
    value: &T,
) -> Result<(), SweepError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| SweepError::Record {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    crate::store::write_atomic(path, text.as_bytes())?;
    Ok(())
}
