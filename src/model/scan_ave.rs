//! The released DBL backbone "scan-ave" (docs/method.md §5): image encoder (per-region
//! embeddings) + text encoder (per-word embeddings) + the fused SCAN head.
//! PyTorch: `ScanAve` in `tools/reference/dbl_ref/models.py`; parameters in
//! its `state_dict` order: `img_enc.fc.*`, `txt_enc.embed.weight`,
//! `txt_enc.cap_rnn.*`, `sim_enc.sim_tran_w.*`, `sim_enc.sim_eval_w.*`.

use crate::data::batch::Batch;
use crate::data::precomp::Precomp;
use crate::engine::dropout::Dropout;
use crate::engine::param::{Module, Param};
use crate::engine::rng::{EngineRng, seeded};
use crate::infer::split::score_split_checked;
use crate::model::config::{ConfigError, ModelConfig};
use crate::model::image_encoder::{ImageCache, ImageEncoder};
use crate::model::precision::{HeadPrecision, PrecisionError};
use crate::model::scan_head::{HeadCache, ScanHead, Words};
use crate::model::text_encoder::{TextCache, TextEncoder};
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

/// What [`ScanAve::backward`] needs from its forward pass.
#[derive(Debug)]
pub struct ScanAveCache {
    img_cache: ImageCache,
    txt_cache: TextCache,
    /// Region embeddings. [B, R, d]
    img: Vec<f32>,
    n_regions: usize,
    /// Stacked words. [N_w, d]
    words: Vec<f32>,
    /// [B + 1]
    offsets: Vec<usize>,
    max_len: usize,
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

impl Trainable for ScanAve {
    type Cache = ScanAveCache;

    fn forward(&self, batch: &Batch, train: bool, rng: &mut EngineRng) -> (Vec<f32>, ScanAveCache) {
        let d = self.sim_enc.embed();
        let (img, img_cache) =
            self.img_enc
                .forward(batch.images.clone(), batch.n_regions, ENCODER_PAR);
        let (padded, txt_cache) = self.txt_enc.forward(
            &batch.tokens,
            &batch.lengths,
            batch.max_len,
            train,
            rng,
            ENCODER_PAR,
        );
        let (words, offsets) = stack_words(&padded, &batch.lengths, batch.max_len, d);
        let w = Words {
            data: &words,
            offsets: &offsets,
        };
        let (sims, head) = self.sim_enc.forward_train(&img, batch.n_regions, w);
        let cache = ScanAveCache {
            img_cache,
            txt_cache,
            img,
            n_regions: batch.n_regions,
            words,
            offsets,
            max_len: batch.max_len,
            sims: sims.clone(),
            head,
        };
        (sims, cache)
    }

    fn backward(&mut self, cache: ScanAveCache, d_sims: &[f32]) {
        let d = self.sim_enc.embed();
        let w = Words {
            data: &cache.words,
            offsets: &cache.offsets,
        };
        let (dimg, dwords) = self.sim_enc.backward(
            &cache.img,
            cache.n_regions,
            w,
            &cache.head,
            &cache.sims,
            d_sims,
        );
        let dpad = unstack_words(&dwords, &cache.offsets, cache.max_len, d);
        self.txt_enc.backward(cache.txt_cache, dpad, ENCODER_PAR);
        self.img_enc.backward(&cache.img_cache, dimg, ENCODER_PAR);
    }

    fn score_split(&self, ds: &Precomp) -> Vec<f32> {
        self.score_split_with(ds, HeadPrecision::F32)
            .unwrap_or_else(|e| panic!("scan-ave: scoring split {:?}: {e}", ds.split()))
    }

    /// Through the inference layer ([`crate::infer::split`]); errors only
    /// when bf16 is asked for on a machine without AMX.
    fn score_split_with(
        &self,
        ds: &Precomp,
        precision: HeadPrecision,
    ) -> Result<Vec<f32>, PrecisionError> {
        score_split_checked(self, ds, precision)
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
