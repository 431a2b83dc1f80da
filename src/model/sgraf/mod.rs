//! The SGRAF backbones "sgr" and "saf" (Diao et al., AAAI 2021;
//! docs/method.md §13): the scan-ave encoders, the global self-attention
//! modules and the SGRAF similarity head. PyTorch: `Sgraf` in
//! `tools/reference/dbl_ref/sgraf.py`; parameters in its `state_dict` order:
//! `img_enc.fc.*`, `txt_enc.embed.weight`, `txt_enc.cap_rnn.*`,
//! `sim_enc.v_global_w.*`, `sim_enc.t_global_w.*`, `sim_enc.sim_tranloc_w.*`,
//! `sim_enc.sim_tranglo_w.*`, `sim_enc.sim_eval_w.*`, then
//! `sim_enc.SGR_module.{0,1,2}.*` or `sim_enc.SAF_module.*`.

pub mod attention_filtration;
pub mod explain;
pub mod flops;
pub mod global_attn;
pub mod graph_reasoning;
pub mod head;
pub mod matcher;

use crate::data::batch::Batch;
use crate::data::precomp::Precomp;
use crate::engine::dropout::Dropout;
use crate::engine::param::{Module, Param};
use crate::engine::rng::{EngineRng, seeded};
use crate::model::config::{Backbone, ConfigError, ModelConfig};
use crate::model::encode::uniform_offsets;
use crate::model::image_encoder::{ImageCache, ImageEncoder};
use crate::model::precision::HeadPrecision;
use crate::model::scan_ave::{stack_words, unstack_words};
use crate::model::scan_head::Words;
use crate::model::sgraf::global_attn::{GlobalAttention, GlobalCache};
use crate::model::sgraf::head::{SgrafHead, SgrafHeadCache};
use crate::model::split::score_split_checked;
use crate::model::text_encoder::{TextCache, TextEncoder};
use crate::model::weights::TensorShapes;
use crate::model::{ENCODER_PAR, Trainable};

/// sgr or saf (which one: [`SgrafHead::reason`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Sgraf {
    /// `img_enc` (per-region embeddings).
    pub img_enc: ImageEncoder,
    /// `txt_enc` (per-word embeddings).
    pub txt_enc: TextEncoder,
    /// `sim_enc.v_global_w` (VisualSA).
    pub v_global: GlobalAttention,
    /// `sim_enc.t_global_w` (TextSA).
    pub t_global: GlobalAttention,
    /// The rest of `sim_enc`.
    pub head: SgrafHead,
}

/// What [`Sgraf::backward`] needs from its forward pass.
#[derive(Debug)]
pub struct SgrafCache {
    img_cache: ImageCache,
    txt_cache: TextCache,
    v_cache: GlobalCache,
    t_cache: GlobalCache,
    /// Region embeddings. [B, R, d]
    img: Vec<f32>,
    n_regions: usize,
    /// Stacked words. [N_w, d]
    words: Vec<f32>,
    /// [B + 1]
    offsets: Vec<usize>,
    max_len: usize,
    /// Global vectors. [B, d] each
    img_glo: Vec<f32>,
    cap_glo: Vec<f32>,
    sims: Vec<f32>,
    head: SgrafHeadCache,
}

impl Sgraf {
    /// A freshly initialised model (docs/method.md §13.4), all draws from `seed`:
    /// `img_enc`, `txt_enc`, `v_global_w`, `t_global_w`, then the head.
    pub fn new(cfg: &ModelConfig, seed: u64) -> Result<Self, ConfigError> {
        cfg.validate()?;
        let mut rng = seeded(seed);
        let drop = Dropout::new(cfg.dropout).map_err(|_| ConfigError::Dropout(cfg.dropout))?;
        let img_enc = ImageEncoder::new(cfg.img_dim, cfg.embed, None, &mut rng);
        let txt_enc = TextEncoder::new(
            cfg.vocab_size,
            cfg.word_dim,
            cfg.embed,
            drop,
            false,
            &mut rng,
        );
        let v_global =
            GlobalAttention::visual("sim_enc.v_global_w", cfg.embed, cfg.regions, drop, &mut rng);
        let t_global = GlobalAttention::textual("sim_enc.t_global_w", cfg.embed, drop, &mut rng);
        let head = SgrafHead::new(
            cfg.embed,
            cfg.sim_dim,
            cfg.smooth,
            cfg.backbone == Backbone::Sgr,
            &mut rng,
        );
        Ok(Sgraf {
            img_enc,
            txt_enc,
            v_global,
            t_global,
            head,
        })
    }

    /// Regions per image the visual batch norm is built for.
    pub fn regions(&self) -> usize {
        self.v_global.local_bn.as_ref().map_or(0, |b| b.channels())
    }

    fn check_regions(&self, n_regions: usize) {
        assert_eq!(
            n_regions,
            self.regions(),
            "sgraf: images have {n_regions} regions, the model was built for {} \
             (model config `regions`)",
            self.regions()
        );
    }

    /// Eval-mode global vectors of encoded images: img: [n, R, d] → [n, d].
    pub fn image_globals(&self, img: &[f32], n_regions: usize) -> Vec<f32> {
        self.check_regions(n_regions);
        let n = img.len() / (n_regions * self.head.embed()).max(1);
        let offs = uniform_offsets(n, n_regions);
        let mut rng = seeded(0); // eval mode never draws
        self.v_global
            .forward(img, &offs, false, &mut rng, ENCODER_PAR)
            .0
    }

    /// Eval-mode global vectors of stacked captions: words [N_w, d],
    /// offsets [n + 1] (offsets[0] = 0) → [n, d].
    pub fn caption_globals(&self, words: &[f32], offsets: &[usize]) -> Vec<f32> {
        let mut rng = seeded(0);
        self.t_global
            .forward(words, offsets, false, &mut rng, ENCODER_PAR)
            .0
    }
}

impl Sgraf {
    /// Its configuration read from a weights file's tensors (`None`: not
    /// `backbone`'s layout: `sim_enc.SGR_module.*` for sgr,
    /// `sim_enc.SAF_module.*` for saf).
    pub fn from_tensors(
        backbone: Backbone,
        t: &TensorShapes,
    ) -> Option<Result<ModelConfig, String>> {
        let module = if backbone == Backbone::Sgr {
            "sim_enc.SGR_module."
        } else {
            "sim_enc.SAF_module."
        };
        t.has_prefix(module).then(|| {
            Ok(ModelConfig {
                sim_dim: t.dim("sim_enc.sim_tranloc_w.weight", 0)?,
                regions: t.dim("sim_enc.v_global_w.embedding_local.1.weight", 0)?,
                ..t.encoder_config(backbone)?
            })
        })
    }
}

impl Trainable for Sgraf {
    type Cache = SgrafCache;

    fn forward(&self, batch: &Batch, train: bool, rng: &mut EngineRng) -> (Vec<f32>, SgrafCache) {
        let d = self.head.embed();
        self.check_regions(batch.n_regions);
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
        let n_img = img.len() / (batch.n_regions * d);
        let (img_glo, v_cache) = self.v_global.forward(
            &img,
            &uniform_offsets(n_img, batch.n_regions),
            train,
            rng,
            ENCODER_PAR,
        );
        let (cap_glo, t_cache) = self
            .t_global
            .forward(&words, &offsets, train, rng, ENCODER_PAR);
        let w = Words {
            data: &words,
            offsets: &offsets,
        };
        let (sims, head) =
            self.head
                .forward_train(&img, &img_glo, batch.n_regions, w, &cap_glo, train);
        let cache = SgrafCache {
            img_cache,
            txt_cache,
            v_cache,
            t_cache,
            img,
            n_regions: batch.n_regions,
            words,
            offsets,
            max_len: batch.max_len,
            img_glo,
            cap_glo,
            sims: sims.clone(),
            head,
        };
        (sims, cache)
    }

    fn backward(&mut self, cache: SgrafCache, d_sims: &[f32]) {
        let d = self.head.embed();
        let w = Words {
            data: &cache.words,
            offsets: &cache.offsets,
        };
        let (mut dimg, dimg_glo, mut dwords, dcap_glo) = self.head.backward(
            &cache.img,
            &cache.img_glo,
            cache.n_regions,
            w,
            &cache.cap_glo,
            &cache.head,
            &cache.sims,
            d_sims,
        );
        let n_img = cache.img_glo.len() / d;
        self.v_global.backward(
            &cache.img,
            &uniform_offsets(n_img, cache.n_regions),
            cache.v_cache,
            dimg_glo,
            &mut dimg,
            ENCODER_PAR,
        );
        self.t_global.backward(
            &cache.words,
            &cache.offsets,
            cache.t_cache,
            dcap_glo,
            &mut dwords,
            ENCODER_PAR,
        );
        let dpad = unstack_words(&dwords, &cache.offsets, cache.max_len, d);
        self.txt_enc.backward(cache.txt_cache, dpad, ENCODER_PAR);
        self.img_enc.backward(&cache.img_cache, dimg, ENCODER_PAR);
    }

    /// Through the inference layer ([`crate::model::split`]); f32 only.
    fn score_split(&self, ds: &Precomp) -> Vec<f32> {
        score_split_checked(self, ds, HeadPrecision::F32)
            .unwrap_or_else(|e| panic!("sgraf: scoring split {:?}: {e}", ds.split()))
    }
}

impl Module for Sgraf {
    fn params(&self) -> Vec<&Param> {
        let mut v = self.img_enc.params();
        v.extend(self.txt_enc.params());
        v.extend(self.v_global.params());
        v.extend(self.t_global.params());
        v.extend(self.head.params());
        v
    }
    fn params_mut(&mut self) -> Vec<&mut Param> {
        let mut v = self.img_enc.params_mut();
        v.extend(self.txt_enc.params_mut());
        v.extend(self.v_global.params_mut());
        v.extend(self.t_global.params_mut());
        v.extend(self.head.params_mut());
        v
    }
    /// VisualSA's batch-norm running statistics, then SAF's (PyTorch's
    /// `named_buffers` order).
    fn buffers(&self) -> Vec<&Param> {
        let mut v = self.v_global.buffers();
        v.extend(self.head.buffers());
        v
    }
    fn buffers_mut(&mut self) -> Vec<&mut Param> {
        let mut v = self.v_global.buffers_mut();
        v.extend(self.head.buffers_mut());
        v
    }
}
