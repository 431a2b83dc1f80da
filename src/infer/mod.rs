//! Inference (design.md decision 10, open_clip's split): a matcher built from
//! weights and a backbone [`ModelConfig`](crate::model::ModelConfig), with no
//! training types involved, that
//! - encodes region features → image representations ([`Matcher::encode_images`]),
//! - encodes captions (token ids, or raw text through the tokenizer and the
//!   vocabulary: [`LoadedMatcher::encode_texts`]) → caption representations,
//! - scores blocks of images × captions in f32 or bf16 ([`Matcher::scorer`]),
//! - explains one pair's score ([`explain`]: attention, per-word contributions).
//!
//! Everything that scores goes through here: `Trainable::score_split` of the
//! paper backbones and `dbl score` ([`split::score_split`]), `dbl bench`'s
//! scoring, the index, `dbl search` and `dbl serve`. The trainer keeps only
//! forward/backward.
//!
//! Backbones: [`registry`] is the one table mapping a backbone to its
//! inference implementation; a new backbone is one file implementing
//! [`Matcher`] (like [`scan_ave`] or [`vse`]) plus one entry there.

pub mod error;
pub mod explain;
pub mod global;
pub mod loaded;
pub mod matcher;
pub mod registry;
pub mod run;
pub mod scan_ave;
pub mod sgraf;
pub mod split;
pub mod vse;

pub use error::InferError;
pub use global::global_rows;
pub use loaded::LoadedMatcher;
pub use matcher::{CaptionView, ImageView, Matcher, Net};
pub use split::score_split;
