//! `IDX/manifest.json`: what an index folder holds and which model made it.
//!
//! Files (all arrays row-major little-endian f32 `.npy`, read into memory
//! when opened; offsets raw little-endian u64), each listed in `files` with
//! its size and SHA-256 ([`super::files`]):
//! - `images.npy` `[n_images, image_rows, d]`: the run's image representations;
//! - `images_global.npy` `[n_images, shortlist_dim]`: shortlist embeddings;
//! - `images.usearch`: HNSW over them (only when `n_images ≥ ann_threshold`);
//! - `ids.txt`: one id per image row (only with `--ids`);
//! - with captions: `captions.txt` (the texts), `caption_rows.npy`
//!   `[n_caption_rows, d]`, `caption_offsets.u64` `[n_captions + 1]`,
//!   `captions_global.npy` `[n_captions, shortlist_dim]`, `captions.usearch`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::ServeError;
use super::files::FileSum;
use crate::store::paths::resolve;

/// Format version written by this build (2: file checksums; SHA-256 weight hashes).
pub const FORMAT: u32 = 2;

/// Which checkpoint of which run.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelRef {
    /// Run folder: relative to the index folder when it was given relative
    /// (so that an index moved together with its run still finds it), else absolute.
    pub run: PathBuf,
    /// Branch.
    pub branch: usize,
    /// Checkpoint tag (`best` or `last`).
    pub tag: String,
    /// Backbone name.
    pub backbone: String,
    /// Weight hash at build time (`infer::loaded::weight_hash`).
    pub weight_hash: String,
}

/// The manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: u32,
    /// The model whose head re-ranks.
    pub model: ModelRef,
    /// The model whose global embeddings shortlist (None: `model`'s own
    /// encoders, mean-pooled and L2-normalised).
    pub shortlist_model: Option<ModelRef>,
    /// Joint embedding width d of `model`.
    pub embed_dim: usize,
    /// Region feature width D.
    pub img_dim: usize,
    /// Regions per image R.
    pub regions: usize,
    /// Rows per encoded image (R, or 1 for pooled backbones).
    pub image_rows: usize,
    /// Width of the shortlist embeddings.
    pub shortlist_dim: usize,
    /// Gallery images.
    pub n_images: usize,
    /// Gallery captions (0 without `--captions`).
    pub n_captions: usize,
    /// Stacked caption representation rows.
    pub n_caption_rows: usize,
    /// Below this many items the shortlist is exact brute force (no HNSW file).
    pub ann_threshold: usize,
    /// Whether `ids.txt` exists.
    pub has_ids: bool,
    /// Every other file of the folder: name → size and SHA-256.
    pub files: BTreeMap<String, FileSum>,
}

impl Manifest {
    /// Reads and checks `dir/manifest.json`; the run paths it returns are
    /// resolved against `dir` ([`crate::store::paths::resolve`]), so the
    /// result is for use, not for [`Manifest::save`].
    pub fn load(dir: &Path) -> Result<Self, ServeError> {
        let path = dir.join("manifest.json");
        let text = std::fs::read_to_string(&path).map_err(|source| ServeError::Io {
            path: path.clone(),
            source,
        })?;
        let corrupt = |message: String| ServeError::Corrupt {
            path: path.clone(),
            message,
        };
        let v: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| corrupt(e.to_string()))?;
        let format = v.get("format").and_then(serde_json::Value::as_u64);
        if format != Some(u64::from(FORMAT)) {
            return Err(corrupt(format!(
                "format {} (this build reads {FORMAT}); rebuild the index with `dbl index build`",
                format.map_or("missing".to_string(), |f| f.to_string())
            )));
        }
        let mut m: Manifest = serde_json::from_value(v).map_err(|e| corrupt(e.to_string()))?;
        // Run folders are recorded relative to the index folder (serve::build).
        m.model.run = resolve(dir, &m.model.run);
        if let Some(s) = m.shortlist_model.as_mut() {
            s.run = resolve(dir, &s.run);
        }
        Ok(m)
    }

    /// The files an index with these fields holds (besides the manifest).
    pub fn expected_files(&self) -> Vec<&'static str> {
        let mut f = vec!["images.npy", "images_global.npy"];
        if self.n_images >= self.ann_threshold {
            f.push("images.usearch");
        }
        if self.has_ids {
            f.push("ids.txt");
        }
        if self.n_captions > 0 {
            f.extend([
                "captions.txt",
                "caption_rows.npy",
                "caption_offsets.u64",
                "captions_global.npy",
            ]);
            if self.n_captions >= self.ann_threshold {
                f.push("captions.usearch");
            }
        }
        f.sort_unstable();
        f
    }

    /// Err unless `files` lists exactly [`Self::expected_files`] (`dir`: for the message).
    pub fn check_files_listed(&self, dir: &Path) -> Result<(), ServeError> {
        let listed: Vec<&str> = self.files.keys().map(String::as_str).collect();
        let expected = self.expected_files();
        if listed != expected {
            return Err(ServeError::Corrupt {
                path: dir.join("manifest.json"),
                message: format!(
                    "lists files {listed:?}, but its counts and flags mean {expected:?}"
                ),
            });
        }
        Ok(())
    }

    /// Writes `dir/manifest.json` (temp file + rename).
    pub fn save(&self, dir: &Path) -> Result<(), ServeError> {
        let path = dir.join("manifest.json");
        let tmp = dir.join("manifest.json.tmp");
        let io = |source| ServeError::Io {
            path: path.clone(),
            source,
        };
        let text = serde_json::to_string_pretty(self).expect("manifest serialises");
        std::fs::write(&tmp, text).map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)
    }
}
