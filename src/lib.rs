//! dbl — Deep Boosting Learning (Diao et al., IEEE TIP 2024) for image-text
//! matching: train, evaluate and serve, in Rust.
//!
//! Module map:
//! - [`data`]: SCAN precomp reader (mmap `.npy`), vocabulary, NLTK-identical
//!   tokenizer, batching, synthetic generator.
//! - [`dist`]: the communicator (one process, or MPI ranks) of data-parallel
//!   training and sharded scoring.
//! - [`eval`]: exact (sharded) scoring, ranks, R@K metrics and protocols.
//! - [`infer`]: loaded matcher (encode images / captions, score blocks), the
//!   backbone registry, split scoring.
//! - [`serve`]: index folders, two-stage search (ANN shortlist + exact
//!   re-ranking) and the HTTP service.
//! - [`plot`]: readable pictures (bundled font, titles, axes, legends).
//! - [`sweep`]: one configuration over seeds, summaries with confidence intervals.
//! - [`watch`]: progress reports and stop requests of long calls (training,
//!   scoring), for callers such as the Python binding.
//! - [`cli`]: one file per `dbl` subcommand; `main.rs` only dispatches.

pub mod bench;
pub mod cli;
pub mod data;
pub mod dist;
pub mod engine;
pub mod eval;
pub mod infer;
pub mod loss;
pub mod model;
pub mod os_error;
pub mod plot;
pub mod serve;
pub mod store;
pub mod sweep;
pub mod train;
pub mod watch;
