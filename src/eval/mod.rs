//! Evaluation (docs/method.md §8): ranks and R@K metrics from a similarity matrix,
//! protocols (f30k, coco1k, coco5k) and sharded exact scoring.
//!
//! - [`matrix`]: validated view of an image x caption similarity matrix.
//! - [`ranks`]: O(N)-per-query ranks with an explicit tie rule.
//! - [`metrics`]: R@1/5/10, medr, meanr, rSum (serde JSON).
//! - [`protocol`]: whole-matrix and 5-fold protocols.
//! - [`sharded`]: block scorer trait and tiled scoring drivers.
//! - [`dot`]: exact dot-product block scorer.
//! - [`streaming`]: exact ranks from bands, without the full matrix.

pub mod dot;
pub mod error;
pub mod matrix;
pub mod metrics;
pub mod protocol;
pub mod ranks;
pub mod sharded;
pub mod streaming;

#[cfg(test)]
mod proptests;

pub use error::EvalError;
pub use matrix::SimMatrix;
pub use metrics::{Directional, Metrics};
pub use protocol::{Evaluation, Protocol};
pub use ranks::Ranks;
pub use sharded::{BlockScorer, BlockSize};
