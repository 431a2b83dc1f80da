//! Errors of index building, opening and searching. Each names the file or
//! the request field and what was expected; [`ServeError::is_client`] tells
//! the HTTP layer which ones are the caller's fault (4xx).

use std::path::PathBuf;

use thiserror::Error;

/// What can go wrong building, opening or searching an index.
#[derive(Debug, Error)]
pub enum ServeError {
    /// File system error.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// An index file that is not what the manifest says (truncated, wrong shape).
    #[error("{path}: {message}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
    /// The index was built by another model than the one loaded.
    #[error(
        "{index}: built by weights {built} but {weights} now holds {now} (a different model); rebuild the index"
    )]
    OtherModel {
        /// The index folder.
        index: PathBuf,
        /// Hash in the manifest.
        built: String,
        /// The weights file.
        weights: PathBuf,
        /// Hash of the weights file now.
        now: String,
    },
    /// Loading a model or encoding a query.
    #[error(transparent)]
    Infer(#[from] crate::infer::InferError),
    /// A `.npy` file.
    #[error(transparent)]
    Npy(#[from] crate::data::npy::NpyError),
    /// A captions file.
    #[error(transparent)]
    Precomp(#[from] crate::data::precomp::PrecompError),
    /// The ANN index.
    #[error("ANN index {path}: {message}")]
    Ann {
        /// The file (or "memory").
        path: PathBuf,
        /// usearch's message.
        message: String,
    },
    /// A bad request argument (k, row, shapes, missing gallery).
    #[error("{0}")]
    BadRequest(String),
    /// Bad command-line arguments for building.
    #[error("{0}")]
    Usage(String),
}

impl ServeError {
    /// True when the request (not the server) is at fault: answer 4xx.
    pub fn is_client(&self) -> bool {
        use crate::infer::InferError as I;
        matches!(
            self,
            ServeError::BadRequest(_) | ServeError::Infer(I::Text(_) | I::Features(_))
        )
    }
}
