//! `--run RUN [--branch K] [--tag best|last]`: which branch checkpoint of a
//! trained run a command loads (shared by `dbl score` and `dbl index build`).

use std::path::PathBuf;

/// One branch's checkpoint of a run folder written by `dbl train`.
#[derive(Debug, Clone, clap::Args)]
pub struct CheckpointArgs {
    /// Run folder written by `dbl train` (its `config.json` and checkpoints).
    #[arg(long, value_name = "RUN_DIR")]
    pub run: PathBuf,
    /// Branch of the run (default: the last one, i.e. the DBL target).
    #[arg(long, value_name = "K")]
    pub branch: Option<usize>,
    /// Which checkpoint of the branch: `best` (by dev rSum) or `last`.
    #[arg(long, default_value = "best", value_parser = ["best", "last"])]
    pub tag: String,
}
