//! One writer per sweep folder, and no seed trained under another
//! configuration (issue 25 §4). [`lock`] holds `OUT/dbl.lock` (the run
//! folder lock, [`RunLock`]) for the whole of `dbl sweep`, so two sweeps into
//! one folder cannot interleave; [`check_recorded`] refuses a sweep whose
//! seed folders were trained with a configuration other than the one
//! `sweep.json` records (a folder left so by an earlier race, or edited).

use std::path::Path;

use super::SweepError;
use super::run::seed_dir;
use crate::train::config::TrainConfig;
use crate::train::run_lock::{LockError, RunLock};

/// Locks the sweep folder `out` (creating it) for this process.
pub fn lock(out: &Path) -> Result<RunLock, LockError> {
    RunLock::acquire(out)
}

/// Err when `out`'s seed folder for `cfg.seed` holds a `config.json` that
/// differs from `cfg` in anything but what a sweep may change between
/// invocations (`epochs`, raised by `--extend-epochs`; `stop_after`). The
/// seed's `config.json` is compared in its recorded form (paths relative to
/// the seed folder, [`crate::train::run_config::recorded`]) and its copy of
/// the vocabulary by content.
pub fn check_recorded(out: &Path, cfg: &TrainConfig) -> Result<(), SweepError> {
    let dir = seed_dir(out, cfg.seed);
    let path = dir.join("config.json");
    if !path.is_file() {
        return Ok(());
    }
    let record = |message: String| SweepError::Record {
        path: path.clone(),
        message,
    };
    let text = std::fs::read_to_string(&path).map_err(|e| record(e.to_string()))?;
    let mut rec: TrainConfig = serde_json::from_str(&text).map_err(|e| record(e.to_string()))?;
    rec.epochs = cfg.epochs;
    rec.stop_after = cfg.stop_after;
    let want_vocab = cfg.vocab_path();
    let mut want = crate::train::run_config::recorded(&TrainConfig {
        out: dir.clone(),
        ..cfg.clone()
    });
    let rec_vocab = crate::store::paths::resolve(&dir, &rec.vocab_path());
    let same_words = match (std::fs::read(&rec_vocab), std::fs::read(&want_vocab)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if same_words {
        want.vocab = rec.vocab.clone();
    }
    let cfg = &want;
    if rec == *cfg {
        return Ok(());
    }
    let (a, b) = (
        serde_json::to_value(&rec).unwrap_or_default(),
        serde_json::to_value(cfg).unwrap_or_default(),
    );
    let differ: Vec<String> = match (a.as_object(), b.as_object()) {
        (Some(a), Some(b)) => a
            .keys()
            .filter(|k| a.get(*k) != b.get(*k))
            .cloned()
            .collect(),
        _ => Vec::new(),
    };
    Err(SweepError::Mismatch {
        path: out.join(super::run::MANIFEST),
        what: format!(
            "seed {} was trained with different {differ:?} ({})",
            cfg.seed,
            path.display()
        ),
    })
}
