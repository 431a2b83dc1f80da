//! What a run folder records about its inputs (README "Moving runs and
//! indexes"): `RUN/config.json`, the validated [`TrainConfig`] with `data`
//! recorded relative to the run folder (an absolute `data` stays absolute,
//! [`crate::store::paths::record`]) and `out` as `.`, and `RUN/vocab.json`, a
//! copy of the vocabulary the run was trained with, which `config.json`'s
//! `vocab` names. Inference (`dbl index build`, `search`, `serve`) then needs
//! nothing outside the folder; scoring a split needs the data, found beside
//! the run as it was at training time or given again with `--data`.

use std::path::{Path, PathBuf};

use crate::store::paths::record;
use crate::store::write_atomic;
use crate::train::TrainError;
use crate::train::config::TrainConfig;

/// The vocabulary copy's file name inside a run folder.
pub const VOCAB_FILE: &str = "vocab.json";

/// `config.json` as `cfg.out` records it (`cfg.out` must exist).
pub fn recorded(cfg: &TrainConfig) -> TrainConfig {
    let mut c = cfg.clone();
    c.data = record(&cfg.out, &cfg.data);
    c.vocab = Some(PathBuf::from(VOCAB_FILE));
    c.out = PathBuf::from(".");
    c
}

/// Writes `cfg.out/vocab.json` (a copy of `cfg.vocab_path()`, unless that is
/// already the copy) and `cfg.out/config.json`, each atomically.
pub fn write(cfg: &TrainConfig) -> Result<(), TrainError> {
    let out = &cfg.out;
    let src = cfg.vocab_path();
    let dst = out.join(VOCAB_FILE);
    if !same_file(&src, &dst) {
        let bytes = std::fs::read(&src).map_err(|source| TrainError::Io {
            path: src.clone(),
            source,
        })?;
        write_atomic(&dst, &bytes)?;
    }
    let path = out.join("config.json");
    let json = serde_json::to_string_pretty(&recorded(cfg)).map_err(|e| TrainError::Io {
        path: path.clone(),
        source: std::io::Error::other(e),
    })?;
    write_atomic(&path, json.as_bytes())?;
    Ok(())
}

fn same_file(a: &Path, b: &Path) -> bool {
    matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_paths_relative_to_the_run_and_copies_the_vocabulary() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join("vocab.json"), b"{\"idx\": 0}").unwrap();
        let out = tmp.path().join("runs/oss");
        std::fs::create_dir_all(&out).unwrap();
        let cfg = TrainConfig {
            data: data.clone(),
            vocab: Some(data.join("vocab.json")),
            out: out.clone(),
            ..TrainConfig::default()
        };
        write(&cfg).unwrap();
        assert_eq!(
            std::fs::read(out.join(VOCAB_FILE)).unwrap(),
            b"{\"idx\": 0}"
        );
        let back = TrainConfig::load_json(&out.join("config.json"), &[]).unwrap();
        assert_eq!(back.vocab, Some(out.join(VOCAB_FILE)));
        assert_eq!(back.data, data, "an absolute data path stays absolute");
        assert_eq!(back.out, out);
        // Writing again from the loaded config (a resume) keeps the copy.
        write(&TrainConfig {
            out: out.clone(),
            ..back
        })
        .unwrap();
        assert_eq!(
            std::fs::read(out.join(VOCAB_FILE)).unwrap(),
            b"{\"idx\": 0}"
        );
    }
}
