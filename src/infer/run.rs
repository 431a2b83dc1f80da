//! A run folder written by `dbl train`, read for inference without the
//! training config type: `RUN/config.json` is read as JSON for its `model`
//! section (backbone and sizes), `data`, `vocab` and `threads` (paths
//! relative to the run folder, [`crate::store::paths::resolve`]);
//! checkpoints are read through the run's checkpoint store
//! (`RUN/checkpoints/MANIFEST.json`), which checks every file's SHA-256.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::InferError;
use crate::store::paths::resolve;
use crate::store::{Store, Tag};

/// What inference needs from a run folder.
#[derive(Debug, Clone)]
pub struct RunDir {
    /// The folder.
    pub dir: PathBuf,
    /// `config.json`'s `model` object (backbone name and sizes).
    pub model: serde_json::Map<String, Value>,
    /// The dataset folder the run was trained on (resolved against the run folder).
    pub data: PathBuf,
    /// The vocabulary file (`vocab`: the run's own copy `RUN/vocab.json` for
    /// runs that have one; else `data/vocab.json`).
    pub vocab: PathBuf,
    /// The run's worker threads (0 = every core).
    pub threads: usize,
    /// Number of `branch{k}` folders (k = 0..branches).
    pub branches: usize,
    /// Tokens training appended to the vocabulary, so the word embedding has
    /// `vocab + appended` rows: 1 (`<mask>`, id V) for an OAS run with caption
    /// augmentation (docs/method.md §6.4), else 0.
    pub appended_tokens: usize,
}

fn format(path: &Path, message: impl Into<String>) -> InferError {
    InferError::Format {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

impl RunDir {
    /// Reads `dir/config.json` and counts the branch folders.
    pub fn open(dir: &Path) -> Result<Self, InferError> {
        let path = dir.join("config.json");
        let text = std::fs::read_to_string(&path).map_err(|source| InferError::Io {
            path: path.clone(),
            source,
        })?;
        let v: Value =
            serde_json::from_str(&text).map_err(|e| format(&path, format!("not JSON: {e}")))?;
        let model = v
            .get("model")
            .and_then(Value::as_object)
            .cloned()
            .ok_or_else(|| format(&path, "expected an object `model`"))?;
        let data = v
            .get("data")
            .and_then(Value::as_str)
            .map(|d| resolve(dir, Path::new(d)))
            .ok_or_else(|| format(&path, "expected a string `data` (dataset folder)"))?;
        let vocab = match v.get("vocab") {
            Some(Value::String(s)) => resolve(dir, Path::new(s)),
            None | Some(Value::Null) => data.join("vocab.json"),
            Some(_) => return Err(format(&path, "`vocab` must be a path or null")),
        };
        let threads = v.get("threads").and_then(Value::as_u64).unwrap_or(0) as usize;
        let oas_augment = v.get("regime").and_then(Value::as_str) == Some("oas")
            && v.pointer("/oas/augment").and_then(Value::as_bool) == Some(true);
        let branches = (0..)
            .take_while(|k| dir.join(format!("branch{k}")).is_dir())
            .count();
        if branches == 0 {
            return Err(InferError::NoBranches(dir.to_path_buf()));
        }
        Ok(RunDir {
            dir: dir.to_path_buf(),
            model,
            data,
            vocab,
            threads,
            branches,
            appended_tokens: usize::from(oas_augment),
        })
    }

    /// The backbone's name as written (`scan-ave`, `vse`, `tiny`, …).
    pub fn backbone_name(&self) -> &str {
        self.model
            .get("backbone")
            .and_then(Value::as_str)
            .unwrap_or("scan-ave")
    }

    /// `branch` (default: the last, the DBL target), checked against the folders.
    pub fn branch(&self, branch: Option<usize>) -> Result<usize, InferError> {
        let k = branch.unwrap_or(self.branches - 1);
        if k >= self.branches {
            return Err(InferError::Branch {
                k,
                run: self.dir.clone(),
                last: self.branches - 1,
            });
        }
        Ok(k)
    }

    /// The weights of branch `k`'s `tag` checkpoint (`best` or `last`),
    /// checked against the manifest's size and SHA-256: → (path, bytes).
    pub fn weights(&self, k: usize, tag: &str) -> Result<(PathBuf, Vec<u8>), InferError> {
        let store = Store::open(&self.dir)?;
        Ok(store.read(k, Tag::parse(tag)?, "model.safetensors")?)
    }
}
