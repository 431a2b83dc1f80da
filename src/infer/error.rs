//! Errors of the inference layer: loading a run's model, text queries.

use std::path::PathBuf;

use thiserror::Error;

/// Why a matcher could not be loaded or a query not encoded.
#[derive(Debug, Error)]
pub enum InferError {
    /// File system error.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A run file that does not hold what it should.
    #[error("{path}: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
    /// The backbone has no inference implementation in the registry.
    #[error("{path}: backbone `{name}` has no inference implementation (registered: {registered})")]
    Unregistered {
        /// The run's config.json.
        path: PathBuf,
        /// The backbone named there.
        name: String,
        /// The registered names, comma separated.
        registered: String,
    },
    /// `--branch` out of range.
    #[error("--branch {k}: the run in {run} has branches 0..{last}")]
    Branch {
        /// Requested branch.
        k: usize,
        /// The run folder.
        run: PathBuf,
        /// Highest branch on disk.
        last: usize,
    },
    /// The run folder has no `branch{k}` folder.
    #[error(
        "{0}: no branch folders (branch0, branch1, ...) — is this a run written by `dbl train`?"
    )]
    NoBranches(PathBuf),
    /// Weights file.
    #[error(transparent)]
    Weights(#[from] crate::model::weights::WeightsError),
    /// Checkpoint folder.
    #[error(transparent)]
    Checkpoint(#[from] crate::store::CheckpointError),
    /// Vocabulary.
    #[error(transparent)]
    Vocab(#[from] crate::data::vocab::VocabError),
    /// Invalid backbone configuration.
    #[error("{path}: model config: {source}")]
    Config {
        /// The run's config.json.
        path: PathBuf,
        /// The cause.
        source: crate::model::config::ConfigError,
    },
    /// A text query that cannot be encoded.
    #[error("text query: {0}")]
    Text(String),
    /// The caller asked a long call to stop ([`crate::watch::Watch`]).
    #[error("{0} interrupted; nothing was returned")]
    Interrupted(&'static str),
    /// Region features of the wrong shape or with non-finite values.
    #[error("image features: {0}")]
    Features(String),
    /// The precision asked for is not available.
    #[error(transparent)]
    Precision(#[from] crate::model::precision::PrecisionError),
    /// Scoring failed (empty or oversized block).
    #[error(transparent)]
    Eval(#[from] crate::eval::error::EvalError),
}

impl From<crate::model::matcher::ScoreError> for InferError {
    fn from(e: crate::model::matcher::ScoreError) -> Self {
        use crate::model::matcher::ScoreError;
        match e {
            ScoreError::Precision(p) => InferError::Precision(p),
            ScoreError::Eval(e) => InferError::Eval(e),
            ScoreError::Shape(m) => InferError::Features(m),
            ScoreError::Interrupted(what) => InferError::Interrupted(what),
        }
    }
}
