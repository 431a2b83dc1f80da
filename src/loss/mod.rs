//! Losses on B×B score matrices (docs/method.md §3, §3.7): the hinge triplet loss
//! (L_raw), DBL boosting (relative RM/RS, absolute AM/AS) with optional margin
//! adaptation, the cohort combination, and the cooperative baselines used in
//! the paper's comparison (mutual learning, distillation, InfoNCE).
//!
//! Conventions shared by every file here:
//! - Scores: `[n, n]` row-major, rows = images, columns = captions, positives
//!   on the diagonal ([`ScoreMatrix`]); "i2t" queries are rows, "t2i" queries
//!   are columns; the diagonal is never a negative.
//! - Arithmetic is f64 (inputs are f32 scores widened exactly); hinge losses
//!   are summed over the batch, KL / cross-entropy losses are batch means.
//! - Every function returns the value and dL/dS of the branch being trained
//!   ([`LossOutput`]); anchor scores are stop-gradient except in
//!   [`mutual::mutual_learning`], which also returns dL/dS^a.
//! - Non-smooth points follow PyTorch 2.x (see [`reduction`]): a hinge passes
//!   gradient only where its argument is strictly positive, and the hardest
//!   negative is the *first* maximal index of the zero-diagonal cost row/column.
//!
//! The PyTorch mirror of every function is `tools/reference/dbl_ref/losses.py`;
//! `tests/loss_parity.rs` compares the two on the fixtures it writes.

pub mod boost_absolute;
pub mod boost_relative;
pub mod cohort;
pub mod config;
pub mod decoupled_info_nce;
pub mod distillation;
pub mod info_nce;
pub mod margin;
pub mod mutual;
pub mod output;
pub mod reduction;
pub mod scores;
mod softmax;
pub mod triplet;

pub use config::{BaseLoss, BoostConfig, BoostForm, LossConfig, PeerLoss};
pub use margin::MarginAdaptation;
pub use output::LossOutput;
pub use reduction::Reduction;
pub use scores::ScoreMatrix;

/// Everything that can go wrong computing a loss.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LossError {
    #[error("{what}: expected an {n}x{n} score matrix ({} values), got {len} values", n * n)]
    NotSquare { what: String, n: usize, len: usize },
    #[error("{what}: empty score matrix (a batch needs at least one pair)")]
    Empty { what: String },
    #[error("{what}: score at row {row}, column {col} is {value}; scores must be finite")]
    NonFinite {
        what: String,
        row: usize,
        col: usize,
        value: f32,
    },
    #[error(
        "score matrices differ in size: the target is {target}x{target} but {what} is \
         {other}x{other} (every branch must score the same batch)"
    )]
    SizeMismatch {
        what: String,
        target: usize,
        other: usize,
    },
    #[error("loss option `{field}` = {value}: expected {expected}")]
    BadOption {
        field: &'static str,
        value: f64,
        expected: &'static str,
    },
    #[error("{loss} needs at least {min} pairs per batch, got {n}")]
    TooFewPairs {
        loss: &'static str,
        min: usize,
        n: usize,
    },
    #[error("cohort branch index {k} is out of range for {branches} branches")]
    BranchIndex { k: usize, branches: usize },
}

/// Checks a non-negative, finite option (margins, α, β).
pub(crate) fn check_non_negative(field: &'static str, value: f64) -> Result<(), LossError> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(LossError::BadOption {
            field,
            value,
            expected: "a finite number >= 0",
        })
    }
}

/// Checks a strictly positive, finite option (temperatures, scales).
pub(crate) fn check_positive(field: &'static str, value: f64) -> Result<(), LossError> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(LossError::BadOption {
            field,
            value,
            expected: "a finite number > 0",
        })
    }
}

#[cfg(test)]
mod test_support;
