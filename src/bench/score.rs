//! A scoring repetition (docs/method.md §8 steps 1–3, eval mode) on the deterministic
//! split, through the inference layer exactly as `Trainable::score_split`
//! (`crate::infer`): images with `matcher::encode_image_rows`, captions with
//! `Matcher::encode_captions` (chunks of `CAPTION_CHUNK`, sorted by length as
//! the packed GRU needs), then every pair with the matcher's block scorer and
//! `score_full` over `SHARD` × `SHARD` blocks (scan-ave: `ScanScorer`; vse:
//! `DotScorer`). Inputs are generated before timing.
//! The region features go to a temporary `.npy` that is memory-mapped and
//! streamed chunk by chunk, as `dbl eval` reads
//! a split's `_ims.npy`; the peer, like the authors' loader, holds them in RAM.
//! Each phase is timed separately.

use std::path::PathBuf;
use std::time::Instant;

use super::BenchError;
use super::config::{BenchConfig, SHARD};
use super::inputs::{caption_tokens, push_image_features};
use crate::data::npy::{NpyF32, NpyWriter};
use crate::eval::sharded::BlockSize;
use crate::infer::InferError;
use crate::model::Model;
use crate::model::matcher::{ScoreError, encode_image_rows};
use crate::model::precision::{HeadPrecision, PrecisionError};
use crate::model::split::score_encoded;
use crate::watch::Unwatched;

/// Seconds of each phase of one repetition.
#[derive(Debug, Clone, Copy, Default)]
pub struct Phases {
    /// Image encoder over the split.
    pub encode_images: f64,
    /// Text encoder over the split.
    pub encode_captions: f64,
    /// Scoring every pair.
    pub score: f64,
}

/// A model and the split it scores.
pub struct ScoreBench {
    model: Model,
    regions: usize,
    n_img: usize,
    /// [n_img, R, D], memory-mapped from `path`.
    features: NpyF32,
    /// The temporary file behind `features`, removed on drop.
    path: PathBuf,
    /// Captions `0..n_cap`, unpadded.
    captions: Vec<Vec<u32>>,
}

impl ScoreBench {
    /// Builds the model (eval mode) and the split `0..n_img` × `0..n_cap`,
    /// writing the features to a temporary `.npy` in [`std::env::temp_dir`].
    pub fn new(
        cfg: &BenchConfig,
        n_img: usize,
        n_cap: usize,
        seed: u64,
    ) -> Result<Self, BenchError> {
        let path = std::env::temp_dir().join(format!(
            "dbl-bench-{}-{}x{}x{}.npy",
            std::process::id(),
            n_img,
            cfg.regions,
            cfg.img_dim
        ));
        let mut w = NpyWriter::create(&path, &[n_img, cfg.regions, cfg.img_dim])?;
        let mut row = Vec::with_capacity(cfg.regions * cfg.img_dim);
        for i in 0..n_img {
            row.clear();
            push_image_features(i, cfg.regions, cfg.img_dim, &mut row);
            w.write(&row)?;
        }
        w.finish()?;
        let features = NpyF32::open_ndim(&path, 3)?;
        Ok(ScoreBench {
            model: Model::new(&cfg.model(), seed)?,
            regions: cfg.regions,
            n_img,
            features,
            path,
            captions: (0..n_cap).map(|c| caption_tokens(c, cfg.vocab)).collect(),
        })
    }

    /// Encodes and scores the split, the scan-ave head's projection in
    /// `precision` (bf16 needs AMX and scan-ave): → (scores [n_img, n_cap],
    /// phase seconds).
    pub fn run(&self, precision: HeadPrecision) -> Result<(Vec<f32>, Phases), BenchError> {
        let m = self.model.matcher();
        let t0 = Instant::now();
        let img = encode_image_rows(m, &self.features, 0..self.n_img, self.regions, &|_| {});
        let t1 = Instant::now();
        let cap = m.encode_captions(self.captions.len(), &|k| &self.captions[k]);
        let t2 = Instant::now();
        let block = BlockSize {
            images: SHARD,
            captions: SHARD,
        };
        block.validate()?;
        let sims = match score_encoded(m, &img, self.regions, &cap, precision, block, &Unwatched) {
            Ok(s) => s,
            Err(ScoreError::Precision(PrecisionError::NoHead)) => {
                return Err(BenchError::Bf16NeedsScan);
            }
            Err(e) => return Err(InferError::from(e).into()),
        };
        finish(sims, [t0, t1, t2, Instant::now()])
    }
}

/// A repetition's result: the scores (refused when one is not finite) and
/// the phase seconds from the four instants that bound the three phases.
pub(super) fn finish(
    sims: Vec<f32>,
    [t0, t1, t2, t3]: [Instant; 4],
) -> Result<(Vec<f32>, Phases), BenchError> {
    if let Some(i) = sims.iter().position(|v| !v.is_finite()) {
        return Err(BenchError::NonFinite(i));
    }
    Ok((
        sims,
        Phases {
            encode_images: (t1 - t0).as_secs_f64(),
            encode_captions: (t2 - t1).as_secs_f64(),
            score: (t3 - t2).as_secs_f64(),
        },
    ))
}

impl ScoreBench {
    /// The benchmark's model.
    pub fn model(&self) -> &Model {
        &self.model
    }
    /// Region features [n_img, R, D] (memory-mapped).
    pub fn features(&self) -> &NpyF32 {
        &self.features
    }
    /// Regions per image.
    pub fn regions(&self) -> usize {
        self.regions
    }
    /// Images in the split.
    pub fn n_images(&self) -> usize {
        self.n_img
    }
    /// The split's captions (token ids).
    pub fn captions(&self) -> &[Vec<u32>] {
        &self.captions
    }
}

impl Drop for ScoreBench {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
