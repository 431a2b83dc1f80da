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
    /// A served index file changed on disk after the index was opened.
    #[error(
        "index {index}: {file} changed on disk since the server opened it ({what}); this index \
         is not served until `dbl serve` is restarted (restore the file, or rebuild the index \
         into a new folder and serve that)"
    )]
    Changed {
        /// The index folder.
        index: PathBuf,
        /// The file.
        file: PathBuf,
        /// What changed.
        what: String,
    },
    /// A query whose encoding or scores are not finite.
    #[error(
        "{0} is not finite: the values are too large for the model (f32 overflow); give \
         features in the range the model was trained on"
    )]
    NotFinite(String),
    /// A bad request argument (k, row, shapes, missing gallery).
    #[error("{0}")]
    BadRequest(String),
    /// Bad command-line arguments for building.
    #[error("{0}")]
    Usage(String),
}

impl ServeError {
    /// True when the index cannot be served now but others can: answer 503.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, ServeError::Changed { .. })
    }

    /// True when the request (not the server) is at fault: answer 4xx.
    pub fn is_client(&self) -> bool {
        use crate::infer::InferError as I;
        matches!(
            self,
            ServeError::BadRequest(_)
                | ServeError::NotFinite(_)
                | ServeError::Infer(I::Text(_) | I::Features(_))
        )
    }
}
