//! The released DBL backbone "scan-ave" (docs/method.md §5): image encoder (per-region
//! embeddings) + text encoder (per-word embeddings) + the fused SCAN head.
//! PyTorch: `ScanAve` in `tools/reference/dbl_ref/models.py`; parameters in
//! its `state_dict` order: `img_enc.fc.*`, `txt_enc.embed.weight`,
//! `txt_enc.cap_rnn.*`, `sim_enc.sim_tran_w.*`, `sim_enc.sim_eval_w.*`.

pub mod explain;
pub mod flops;
pub mod matcher;
pub mod scorer;

use std::ops::Range;

use crate::data::batch::Batch;
use crate::data::precomp::Precomp;
use crate::engine::dropout::{Dropout, RowWindow};
use crate::engine::param::{Module, Param};
use crate::engine::rng::{EngineRng, seeded};
use crate::model::config::{Backbone, ConfigError, ModelConfig};
use crate::model::encode::EncodedCaptions;
use crate::model::image_encoder::{ImageCache, ImageEncoder};
use crate::model::precision::{HeadPrecision, PrecisionError};
use crate::model::scan_head::{HeadCache, ScanHead, Words};
use crate::model::split::score_split_checked;
use crate::model::text_encoder::{TextCache, TextEncoder};
use crate::model::weights::TensorShapes;
use crate::model::{ENCODER_PAR, Trainable};

/// scan-ave: 13,052,077 parameters at the default sizes and V = 8,481.
#[derive(Debug, Clone, PartialEq)]
pub struct ScanAve {
    /// `img_enc`.
    pub img_enc: ImageEncoder,
    /// `txt_enc`.
    pub txt_enc: TextEncoder,
    /// `sim_enc`.
    pub sim_enc: ScanHead,
}

/// What [`ScanAve::backward`] needs from its forward pass (or one rank's
/// shard of it: its images, its captions, scored against every rank's captions).
#[derive(Debug)]
pub struct ScanAveCache {
    img_cache: ImageCache,
    txt_cache: TextCache,
    /// The shard's region embeddings. [b, R, d]
    img: Vec<f32>,
    n_regions: usize,
    /// The shard's caption lengths. [b]
    lengths: Vec<usize>,
    max_len: usize,
    /// Every rank's stacked words (after `score_shard`). [N_w, d]
    words: EncodedCaptions,
    /// [b, n_captions]
    sims: Vec<f32>,
    head: HeadCache,
}

impl ScanAve {
    /// A freshly initialised model (docs/method.md §5 init), all draws from `seed`:
    /// `img_enc`, then `txt_enc`, then `sim_enc`.
    pub fn new(cfg: &ModelConfig, seed: u64) -> Result<Self, ConfigError> {
        cfg.validate()?;
        let mut rng = seeded(seed);
        Ok(ScanAve {
            img_enc: ImageEncoder::new(cfg.img_dim, cfg.embed, None, &mut rng),
            txt_enc: TextEncoder::new(
                cfg.vocab_size,
                cfg.word_dim,
                cfg.embed,
                Dropout::new(cfg.dropout).map_err(|_| ConfigError::Dropout(cfg.dropout))?,
                false,
                &mut rng,
            ),
            sim_enc: ScanHead::new(cfg.embed, cfg.sim_dim, cfg.smooth, &mut rng),
        })
    }
}

/// Stacks the valid rows of padded per-word output [n, L, d] → ([N_w, d], offsets [n+1]).
pub fn stack_words(
    padded: &[f32],
    lengths: &[usize],
    l: usize,
    d: usize,
) -> (Vec<f32>, Vec<usize>) {
    let mut offsets = Vec::with_capacity(lengths.len() + 1);
    offsets.push(0);
    let mut words = Vec::with_capacity(lengths.iter().sum::<usize>() * d);
    for (j, &len) in lengths.iter().enumerate() {
        words.extend_from_slice(&padded[j * l * d..(j * l + len) * d]);
        offsets.push(offsets[j] + len);
    }
    (words, offsets)
}

/// The inverse of [`stack_words`]: stacked rows [N_w, d] → padded [n, L, d]
/// (zeros past each caption's length).
pub fn unstack_words(words: &[f32], offsets: &[usize], l: usize, d: usize) -> Vec<f32> {
    let n = offsets.len() - 1;
    let mut pad = vec![0.0f32; n * l * d];
    for j in 0..n {
        let (a, b) = (offsets[j], offsets[j + 1]);
        pad[j * l * d..(j * l + b - a) * d].copy_from_slice(&words[a * d..b * d]);
    }
    pad
}

impl ScanAve {
    /// Its configuration read from a weights file's tensors (`None`: not
    /// scan-ave's layout, which has `sim_enc.sim_tran_w` and no SGRAF module).
    pub fn from_tensors(
        backbone: Backbone,
        t: &TensorShapes,
    ) -> Option<Result<ModelConfig, String>> {
        let ours = t.has("sim_enc.sim_tran_w.weight")
            && !t.has_prefix("sim_enc.SGR_module.")
            && !t.has_prefix("sim_enc.SAF_module.");
        ours.then(|| {
            Ok(ModelConfig {
                sim_dim: t.dim("sim_enc.sim_tran_w.weight", 0)?,
                ..t.encoder_config(backbone)?
            })
        })
    }
}

impl Trainable for ScanAve {
    type Cache = ScanAveCache;

    fn forward(&self, batch: &Batch, train: bool, rng: &mut EngineRng) -> (Vec<f32>, ScanAveCache) {
        let (words, mut cache) = self.encode_rows(batch, 0..batch.size(), train, rng);
        let sims = self.score_rows(&mut cache, words);
        (sims, cache)
    }

    fn backward(&mut self, mut cache: ScanAveCache, d_sims: &[f32]) {
        let dwords = self.backward_rows(&mut cache, d_sims);
        self.backward_words(cache, dwords);
    }

    fn encode_shard(
        &self,
        batch: &Batch,
        rows: Range<usize>,
        train: bool,
        rng: &mut EngineRng,
    ) -> Option<(EncodedCaptions, ScanAveCache)> {
        Some(self.encode_rows(batch, rows, train, rng))
    }

    fn score_shard(&self, cache: &mut ScanAveCache, captions: EncodedCaptions) -> Vec<f32> {
        self.score_rows(cache, captions)
    }

    fn backward_shard(&mut self, cache: &mut ScanAveCache, d_block: &[f32]) -> Vec<f32> {
        self.backward_rows(cache, d_block)
    }

    fn backward_captions(&mut self, cache: ScanAveCache, d_captions: Vec<f32>) {
        self.backward_words(cache, d_captions)
    }

    /// Images sharded across the ranks ([`crate::model::split::score_split_ranks`]).
    fn score_split_ranks(&self, ds: &Precomp, comm: &dyn crate::dist::Comm) -> Vec<f32> {
        crate::model::split::score_split_ranks(self, ds, HeadPrecision::F32, comm)
            .unwrap_or_else(|e| panic!("scan-ave: scoring split {:?}: {e}", ds.split()))
    }

    fn score_split(&self, ds: &Precomp) -> Vec<f32> {
        self.score_split_with(ds, HeadPrecision::F32)
            .unwrap_or_else(|e| panic!("scan-ave: scoring split {:?}: {e}", ds.split()))
    }

    /// Through the inference layer ([`crate::model::split`]); errors only
    /// when bf16 is asked for on a machine without AMX.
    fn score_split_with(
        &self,
        ds: &Precomp,
        precision: HeadPrecision,
    ) -> Result<Vec<f32>, PrecisionError> {
        score_split_checked(self, ds, precision)
    }
}

impl ScanAve {
    /// Encodes pairs `rows` of `batch`: region embeddings kept in the cache,
    /// the captions' words returned stacked ([N_w, d], offsets by caption).
    fn encode_rows(
        &self,
        batch: &Batch,
        rows: Range<usize>,
        train: bool,
        rng: &mut EngineRng,
    ) -> (EncodedCaptions, ScanAveCache) {
        let d = self.sim_enc.embed();
        let (img, img_cache) = self.img_enc.forward(
            batch.image_rows(rows.clone()).to_vec(),
            batch.n_regions,
            ENCODER_PAR,
        );
        let lengths = &batch.lengths[rows.clone()];
        let (padded, txt_cache) = self.txt_enc.forward_rows(
            batch.token_rows(rows.clone()),
            lengths,
            batch.max_len,
            (train, rng),
            RowWindow {
                first: rows.start,
                total: batch.size(),
            },
            ENCODER_PAR,
        );
        let (rows_out, offsets) = stack_words(&padded, lengths, batch.max_len, d);
        let cache = ScanAveCache {
            img_cache,
            txt_cache,
            img,
            n_regions: batch.n_regions,
            lengths: lengths.to_vec(),
            max_len: batch.max_len,
            words: EncodedCaptions::default(),
            sims: Vec::new(),
            head: HeadCache::default(),
        };
        let words = EncodedCaptions {
            rows: rows_out,
            offsets,
        };
        (words, cache)
    }

    /// Scores the cached images against `words` (kept for the backward).
    /// → [b, n_captions]
    fn score_rows(&self, cache: &mut ScanAveCache, words: EncodedCaptions) -> Vec<f32> {
        let w = Words {
            data: &words.rows,
            offsets: &words.offsets,
        };
        let (sims, head) = self.sim_enc.forward_train(&cache.img, cache.n_regions, w);
        cache.words = words;
        cache.sims = sims.clone();
        cache.head = head;
        sims
    }

    /// Head and image-side backward of `d_sims` [b, n_captions]; returns
    /// dL/d(words) [N_w, d] of every scored caption.
    fn backward_rows(&mut self, cache: &mut ScanAveCache, d_sims: &[f32]) -> Vec<f32> {
        let w = Words {
            data: &cache.words.rows,
            offsets: &cache.words.offsets,
        };
        let (dimg, dwords) = self.sim_enc.backward(
            &cache.img,
            cache.n_regions,
            w,
            &cache.head,
            &cache.sims,
            d_sims,
        );
        self.img_enc.backward(&cache.img_cache, dimg, ENCODER_PAR);
        dwords
    }

    /// Text-side backward of dL/d(this shard's words) [Σ lengths, d].
    fn backward_words(&mut self, cache: ScanAveCache, dwords: Vec<f32>) {
        let d = self.sim_enc.embed();
        let offsets: Vec<usize> = std::iter::once(0)
            .chain(cache.lengths.iter().scan(0, |a, &len| {
                *a += len;
                Some(*a)
            }))
            .collect();
        let dpad = unstack_words(&dwords, &offsets, cache.max_len, d);
        self.txt_enc.backward(cache.txt_cache, dpad, ENCODER_PAR);
    }
}

impl Module for ScanAve {
    fn params(&self) -> Vec<&Param> {
        let mut v = self.img_enc.params();
        v.extend(self.txt_enc.params());
        v.extend(self.sim_enc.params());
        v
    }
    fn params_mut(&mut self) -> Vec<&mut Param> {
        let mut v = self.img_enc.params_mut();
        v.extend(self.txt_enc.params_mut());
        v.extend(self.sim_enc.params_mut());
        v
    }
}
