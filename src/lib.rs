//! dbl — Deep Boosting Learning (Diao et al., IEEE TIP 2024) for image-text
//! matching: train, evaluate and serve, in Rust.
//!
//! Module map (lower layers first; a module imports only modules above it in
//! this list, never one below):
//! - [`os_error`]: operating-system errors in words.
//! - [`watch`]: progress reports and stop requests of long calls (training,
//!   scoring), for callers such as the Python binding.
//! - [`progress`]: progress of long phases (a bar on a terminal, periodic lines
//!   otherwise), fed as a [`watch`] observer.
//! - [`engine`]: parameters, GEMM, layers with hand-written forward/backward,
//!   Adam, clipping, EMA, the CUDA backend.
//! - [`data`]: SCAN precomp reader (mmap `.npy`), vocabulary, NLTK-identical
//!   tokenizer, batching, synthetic generator.
//! - [`dist`]: the communicator (one process, or MPI ranks) of data-parallel
//!   training and sharded scoring.
//! - [`eval`]: exact (sharded) scoring, ranks, R@K metrics and protocols.
//! - [`loss`]: triplet loss, DBL boosting and the cooperative baselines.
//! - [`plot`]: readable pictures (bundled font, titles, axes, legends).
//! - [`model`]: shared layers, one folder per backbone, the backbone table
//!   (`model::registry`), the `Trainable` and `Matcher` contracts, split scoring.
//! - [`store`]: the run's checksummed checkpoint store.
//! - [`infer`]: a matcher loaded from a run folder (weights, vocabulary, text
//!   queries).
//! - [`train`]: the DBL regimes, the epoch loop, steps, checkpoints, metrics.
//! - [`serve`]: index folders, two-stage search (ANN shortlist + exact
//!   re-ranking) and the HTTP service.
//! - [`sweep`]: one configuration over seeds, summaries with confidence intervals.
//! - [`bench`]: `dbl bench`, the engine-vs-PyTorch benchmark.
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
pub mod progress;
pub mod serve;
pub mod store;
pub mod sweep;
pub mod train;
pub mod watch;
