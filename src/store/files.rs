//! Writing files so that a crash never leaves a half-written one, and the
//! error type of everything the checkpoint store reads or writes.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::model::weights;

/// Everything that can go wrong reading or writing a checkpoint.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Format { path: PathBuf, message: String },
    #[error(transparent)]
    Weights(#[from] weights::WeightsError),
    #[error("{path}: {what}")]
    Missing { path: PathBuf, what: String },
    #[error(
        "{path}: checkpoint file is corrupt (expected {expected}, found {found}); \
         it cannot be trusted: resume from another copy of the run, or retrain"
    )]
    Corrupt {
        path: PathBuf,
        expected: String,
        found: String,
    },
    #[error(
        "{path}: this run folder was written by an older dbl (branch*/last/ folders, no \
         checkpoints/MANIFEST.json) and cannot be resumed by this version; retrain it into a new --out"
    )]
    Legacy { path: PathBuf },
    #[error("test hook: injected failure at filesystem step {step} ({what})")]
    Injected { step: usize, what: String },
}

pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub(crate) fn format_err(path: &Path, message: impl Into<String>) -> CheckpointError {
    CheckpointError::Format {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    let mut f = File::create(path).map_err(io(path))?;
    f.write_all(bytes).map_err(io(path))?;
    f.sync_all().map_err(io(path))
}

pub(crate) fn sync_dir(path: &Path) -> Result<(), CheckpointError> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(io(path))
}

/// Writes `bytes` to `path` atomically (temp file, fsync, rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    let parent = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(io(parent))?;
    let tmp = parent.join(format!(
        ".{}.tmp-{}",
        path.file_name()
            .map(|s| s.to_string_lossy())
            .unwrap_or_default(),
        std::process::id()
    ));
    write_synced(&tmp, bytes)?;
    fs::rename(&tmp, path).map_err(io(path))?;
    sync_dir(parent)
}
