//! Retrieval over a trained run (served over HTTP with `axum`): an index folder
//! ([`build`]), two-stage search ([`index::Index`]: an ANN shortlist of global
//! embeddings with `usearch`, then exact re-ranking with the run's own head)
//! and the HTTP service ([`http`]) with its search page ([`page`]) and pair
//! explanations ([`explain`]).

pub mod body;
pub mod build;
pub mod config;
pub mod conn;
pub mod error;
pub mod explain;
pub mod files;
pub mod http;
pub mod index;
pub mod manifest;
pub mod metrics;
pub mod models;
pub mod page;
pub mod recall;
pub mod recall_plot;
pub mod shortlist;

pub use error::ServeError;
pub use index::{Hit, Index};
pub use manifest::Manifest;
pub use models::Models;
