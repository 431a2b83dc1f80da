//! Forward scoring on an NVIDIA GPU (feature `cuda`, issue #16) for both
//! backbones, from the weights of a loaded CPU [`crate::model::Model`]
//! (uploaded once): the same computation as `Trainable::score_split`
//! (docs/method.md §5, §8), parity-checked against it
//! (`tests/cuda_parity.rs`, `tools/gpu/check.sh`).
//!
//! - [`weights`]: the parameters on the device;
//! - [`images`]: image encoder (FC + L2, vse pooling);
//! - [`text`]: embedding + packed BiGRU (directions averaged) + L2 / mean pool;
//! - [`scan`]: the scan-ave head, tiled over image blocks × caption tiles so
//!   no `n_img·N_w·d` tensor exists (one `[nb, nw, d]` tile buffer);
//! - [`scorer`]: [`CudaScorer`], encode + score a split.
//!
//! Training (backward passes, Adam) is not on the GPU yet.

pub mod images;
pub mod scan;
pub mod scorer;
pub mod text;
pub mod weights;

pub use scorer::CudaScorer;
