//! A training repetition: exactly what `train::step::cohort_step` does per
//! step (docs/method.md §4.2), built from the same library calls — every branch forwards
//! the batch in train mode, then branch k (in order) takes
//! `LossConfig::branch_loss` (hardest triplet γ 0.2; branch k > 0 adds RM from
//! the detached earlier branches, α 1), zero_grad, backward, clip 2.0, Adam.
//! (`cohort_step` itself needs the trainer's checkpoint/log state, so it is not
//! callable here.)

use super::BenchError;
use super::config::BenchConfig;
use super::inputs::train_batch;
use crate::data::batch::Batch;
use crate::dist::Solo;
use crate::engine::adam::{Adam, AdamConfig};
use crate::engine::clip::clip_grad_norm;
use crate::engine::gemm::Par;
use crate::engine::param::Module;
use crate::engine::rng::EngineRng;
use crate::loss::config::{BoostConfig, BoostForm, LossConfig, PeerLoss};
use crate::model::Model;
use crate::train::runner::{dropout_rng, init_rng};
use crate::train::sharded;
use crate::train::step::forward_branches;
use rand::Rng as _;

/// Gradient-norm clip of the authors' step (docs/method.md §7).
pub const GRAD_CLIP: f32 = 2.0;

/// The branches, their optimisers and the fixed batch.
pub struct TrainBench {
    models: Vec<Model>,
    opts: Vec<Adam>,
    rngs: Vec<EngineRng>,
    batch: Batch,
    loss: LossConfig,
}

impl TrainBench {
    /// Builds `cfg.branches` freshly initialised models (seeded like the
    /// trainer's branches) and the deterministic batch.
    pub fn new(cfg: &BenchConfig, seed: u64) -> Result<Self, BenchError> {
        let mcfg = cfg.model();
        let mut models = Vec::new();
        let mut opts = Vec::new();
        let mut rngs = Vec::new();
        for k in 0..cfg.branches {
            let model_seed = init_rng(seed, k).next_u64();
            let m = Model::new(&mcfg, model_seed)?;
            opts.push(Adam::new(AdamConfig::default(), &m.params())?);
            models.push(m);
            rngs.push(dropout_rng(seed, k));
        }
        let loss = LossConfig {
            peer: PeerLoss::Boost(BoostConfig {
                form: BoostForm::Relative,
                ..BoostConfig::default()
            }),
            ..LossConfig::default()
        };
        loss.validate()?;
        Ok(TrainBench {
            models,
            opts,
            rngs,
            batch: train_batch(cfg.batch, cfg.regions, cfg.img_dim, cfg.vocab),
            loss,
        })
    }

    /// One step of every branch; returns the branches' losses.
    pub fn step(&mut self, par: Par) -> Result<Vec<f64>, BenchError> {
        let (mats, mut caches) = forward_branches(
            self.models.iter().zip(self.rngs.iter_mut()),
            &self.batch,
            &Solo,
        )?;
        let mut losses = Vec::with_capacity(self.models.len());
        for (k, (m, opt)) in self.models.iter_mut().zip(self.opts.iter_mut()).enumerate() {
            let out = self.loss.branch_loss(&mats, k)?;
            let cache = caches[k].take().expect("each cache is used once");
            m.zero_grad();
            sharded::backward(m, cache, &out.grad_f32(), &Solo);
            clip_grad_norm(&mut m.params_mut(), GRAD_CLIP);
            opt.step(&mut m.params_mut(), par)?;
            losses.push(out.value);
        }
        Ok(losses)
    }
}
