//! Inference (docs/method.md §8, open_clip's split): a matcher loaded from a
//! run folder or a backbone [`ModelConfig`](crate::model::ModelConfig) plus
//! weights, with no training types involved, that
//! - encodes region features → image representations ([`Matcher::encode_images`]),
//! - encodes captions (token ids, or raw text through the tokenizer and the
//!   vocabulary: [`LoadedMatcher::encode_texts`]) → caption representations,
//! - scores blocks of images × captions in f32 or bf16 ([`Matcher::scorer`]),
//! - explains one pair's score ([`explain`]: attention, per-word contributions).
//!
//! The [`Matcher`] contract itself, split scoring and the backbone registry
//! live one layer down, in [`crate::model`] (`model::matcher`,
//! `model::split`, `model::registry`), so backbones implement them without
//! importing this module. Everything that scores goes through them:
//! `Trainable::score_split` of the paper backbones and `dbl score`, `dbl
//! bench`'s scoring, the index, `dbl search` and `dbl serve`.

pub mod error;
pub mod global;
pub mod loaded;
pub mod run;

pub use crate::model::matcher::{CaptionView, ImageView, Matcher, Net};
pub use crate::model::split::score_split;
pub use error::InferError;
pub use global::global_rows;
pub use loaded::LoadedMatcher;
