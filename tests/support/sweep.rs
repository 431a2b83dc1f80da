//! Shared pieces of the `dbl sweep` tests: a training config of the
//! test-only `tiny` backbone (d = 16, batch 8, one thread), the sweep
//! command, and reading a JSON record.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::BIN;

/// Writes `path`: a `tiny` config on `data` with `regime` and `epochs`, and
/// `extra` top-level lines (each ending in a newline, e.g. `"lr = 0.01\n"`).
pub fn tiny_config(path: &Path, data: &Path, regime: &str, epochs: usize, extra: &str) -> PathBuf {
    std::fs::write(
        path,
        format!(
            "data = {:?}\nregime = \"{regime}\"\nepochs = {epochs}\nbatch_size = 8\nthreads = 1\n\
             {extra}[model]\nbackbone = \"tiny\"\nembed = 16\n",
            data.display().to_string()
        ),
    )
    .unwrap();
    path.to_path_buf()
}

/// `dbl sweep --config CFG --seeds SEEDS --out OUT EXTRA…`.
pub fn sweep(cfg: &Path, seeds: &str, out: &Path, extra: &[&str]) -> Output {
    Command::new(BIN)
        .args(["sweep", "--config"])
        .arg(cfg)
        .args(["--seeds", seeds, "--out"])
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

/// A JSON file's value.
pub fn json(p: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}
