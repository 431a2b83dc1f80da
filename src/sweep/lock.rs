//! One writer per sweep folder, and no seed trained under another
//! configuration (issue 25 §4). [`lock`] holds `OUT/dbl.lock` (the run
//! folder lock, [`RunLock`]) for the whole of `dbl sweep`, so two sweeps into
//! one folder cannot interleave; [`check_recorded`] refuses a sweep whose
//! seed folders were trained with a configuration other than the one
//! `sweep.json` records (a folder left so by an earlier race, or edited).

use std::path::{Path, PathBuf};

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
/// the vocabulary by content. A seed written before runs recorded relative
/// paths (its `out` and `data` as the sweep was given them) is compared with
/// both configurations' paths resolved and normalised ([`same_paths`]).
pub fn check_recorded(out: &Path, cfg: &TrainConfig) -> Result<(), SweepError> {
    let given = cfg;
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
    if rec == *cfg || (same_words && same_paths(&rec, given, &dir)) {
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

/// Whether the seed's recorded configuration `rec` (read from the seed
/// folder `dir`, in either format) equals `given` once the paths of both are
/// resolved ([`crate::store::paths::resolve`]: relative to the seed folder,
/// else as given) and made canonical, and the vocabulary is left out (the
/// caller compares it by content). This is what makes a seed written before
/// runs recorded relative paths (`out` the seed folder as given, `data` as
/// given) match its sweep.
fn same_paths(rec: &TrainConfig, given: &TrainConfig, dir: &Path) -> bool {
    let canonical = |p: PathBuf| p.canonicalize().unwrap_or(p);
    let rec = TrainConfig {
        out: canonical(crate::store::paths::resolve(dir, &rec.out)),
        data: canonical(crate::store::paths::resolve(dir, &rec.data)),
        vocab: None,
        ..rec.clone()
    };
    let given = TrainConfig {
        out: canonical(dir.to_path_buf()),
        data: canonical(given.data.clone()),
        vocab: None,
        epochs: rec.epochs,
        stop_after: rec.stop_after,
        ..given.clone()
    };
    rec == given
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A seed folder as dbl wrote it before runs recorded relative paths:
    /// `out` the absolute seed folder, `data` absolute, no vocabulary copy.
    fn old_seed(out: &Path, data: &Path, lr: f64) -> TrainConfig {
        let dir = seed_dir(out, 0);
        std::fs::create_dir_all(&dir).unwrap();
        let old = TrainConfig {
            out: dir.clone(),
            data: data.to_path_buf(),
            vocab: None,
            lr,
            ..TrainConfig::default()
        };
        std::fs::write(
            dir.join("config.json"),
            serde_json::to_string_pretty(&old).unwrap(),
        )
        .unwrap();
        old
    }

    #[test]
    fn a_seed_recorded_in_the_old_format_matches_its_sweep() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join("vocab.json"), "{}").unwrap();
        let out = tmp.path().join("sw");
        let old = old_seed(&out, &data, 2e-4);
        // The sweep's configuration for seed 0: the data as given (here
        // through a `..` path), the seed folder as its `out`.
        let cfg = TrainConfig {
            data: out.join("..").join("data"),
            out: seed_dir(&out, 0),
            epochs: old.epochs + 3,
            ..old.clone()
        };
        check_recorded(&out, &cfg).unwrap();
        // Another learning rate is still refused, and so is other data.
        let e = check_recorded(
            &out,
            &TrainConfig {
                lr: 5e-4,
                ..cfg.clone()
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("\"lr\""), "{e}");
        let other = tmp.path().join("other");
        std::fs::create_dir_all(&other).unwrap();
        std::fs::write(other.join("vocab.json"), "{}").unwrap();
        assert!(check_recorded(&out, &TrainConfig { data: other, ..cfg }).is_err());
    }
}
