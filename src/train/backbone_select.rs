//! Maps `model.backbone` to a model type for the trainer. Everything else in
//! `crate::train` is generic over `Trainable`: every registered backbone
//! (the table in `crate::model::registry`) builds [`Model`]; `tiny`
//! ([`TinyModel`]) is the trainer's test-only model. A new backbone needs no
//! edit here.

use crate::data::precomp::{Precomp, Split};
use crate::data::vocab::Vocab;
use crate::engine::device::{Device, DeviceError};
use crate::eval::metrics::Metrics;
use crate::model::precision::HeadPrecision;
use crate::model::{Model, ModelConfig};
use crate::train::TrainError;
use crate::train::config::{BackboneName, ConfigError, TrainConfig};
use crate::train::run_store::given_weights;
use crate::train::runner::{self, RunSummary};
use crate::train::test_model::TinyModel;
use crate::watch::{Unwatched, Watch};

/// Vocabulary size and region-feature dimension the model is built for.
#[derive(Debug, Clone, Copy)]
pub struct Dims {
    /// Rows of the word embedding table (V, or V + 1 with the OAS `<mask>`).
    pub vocab: usize,
    /// Region feature size.
    pub img_dim: usize,
    /// Regions per image.
    pub regions: usize,
}

/// Reads the vocabulary size and the feature dimension of `cfg`'s data.
pub fn dims(cfg: &TrainConfig) -> Result<Dims, TrainError> {
    let vocab = Vocab::load(cfg.vocab_path())?;
    let train = Precomp::open(&cfg.data, Split::Train, &vocab)?;
    // OAS appends `<mask>` (id V): the embedding table has V + 1 rows.
    let rows = cfg
        .caption_augment(vocab.len())
        .map_or(vocab.len(), |a| a.embedding_rows());
    Ok(Dims {
        vocab: rows,
        img_dim: train.dim(),
        regions: train.n_regions(),
    })
}

/// The complete configuration of the registered backbone `cfg.model`
/// names, for data of dims `d` (`None` for the test-only `tiny`); a size the
/// config gives that the data contradicts is an error naming it.
pub fn model_config(cfg: &TrainConfig, d: Dims) -> Result<Option<ModelConfig>, TrainError> {
    let m = cfg
        .model
        .clone()
        .with_data(d.vocab, d.img_dim, d.regions)
        .map_err(|e| {
            TrainError::Config(ConfigError::Invalid {
                key: "model",
                message: e.to_string(),
            })
        })?;
    Ok(match m.backbone {
        BackboneName::Net(backbone) => Some(m.with_backbone(backbone)),
        BackboneName::Tiny => None,
    })
}

/// The constructor of the registered backbone `bc` (see [`model_config`]),
/// its seed drawn from the run's init stream.
fn model_builder(
    bc: ModelConfig,
) -> impl Fn(&mut crate::engine::rng::EngineRng) -> Result<Model, TrainError> + use<> {
    move |rng: &mut crate::engine::rng::EngineRng| {
        use rand::Rng as _;
        Model::new(&bc, rng.next_u64()).map_err(|e| {
            TrainError::Config(ConfigError::Invalid {
                key: "model",
                message: e.to_string(),
            })
        })
    }
}

/// The weights `cfg.init` names ([`given_weights`]).
fn init_weights(cfg: &TrainConfig) -> Result<Option<(std::path::PathBuf, Vec<u8>)>, TrainError> {
    cfg.init
        .as_deref()
        .map(|spec| given_weights("init", spec))
        .transpose()
}

/// `build`, then (with `init`) the given weights loaded over the fresh
/// initialisation (the RNG draws stay as without, so the rest of the run's
/// random streams do not move).
fn with_init<M: crate::engine::param::Module>(
    init: Option<(std::path::PathBuf, Vec<u8>)>,
    build: impl Fn(&mut crate::engine::rng::EngineRng) -> Result<M, TrainError>,
) -> impl Fn(&mut crate::engine::rng::EngineRng) -> Result<M, TrainError> {
    move |rng| {
        let mut m = build(rng)?;
        if let Some((path, bytes)) = &init {
            crate::model::weights::load_bytes(&mut m, bytes, path).map_err(|e| {
                TrainError::Config(ConfigError::Invalid {
                    key: "init",
                    message: e.to_string(),
                })
            })?;
        }
        Ok(m)
    }
}

/// Runs `$body` with `$build` bound to (`$init`: the weights every built
/// model starts from, see [`with_init`]) a `&dyn Fn(&mut EngineRng) -> Result<M, TrainError>`
/// constructing the configured backbone (a registered [`Model`], or `tiny`).
macro_rules! with_backbone {
    ($cfg:expr, $init:expr, $build:ident => $body:expr) => {{
        let cfg: &TrainConfig = $cfg;
        let d = dims(cfg)?;
        let m = cfg.model.clone();
        let init = $init;
        match model_config(cfg, d)? {
            None => {
                let f = with_init(init, move |rng: &mut crate::engine::rng::EngineRng| {
                    Ok(TinyModel::new(
                        d.img_dim, d.vocab, m.word_dim, m.embed, m.dropout, rng,
                    )?)
                });
                let $build: &dyn Fn(
                    &mut crate::engine::rng::EngineRng,
                ) -> Result<TinyModel, TrainError> = &f;
                $body
            }
            Some(bc) => {
                let f = with_init(init, model_builder(bc));
                let $build: &dyn Fn(
                    &mut crate::engine::rng::EngineRng,
                ) -> Result<Model, TrainError> = &f;
                $body
            }
        }
    }};
}

/// Trains (or with `resume`, continues) the run `cfg` describes, split
/// across the ranks of `comm` ([`crate::dist::Solo`] for one process).
pub fn train(
    cfg: &TrainConfig,
    resume: bool,
    comm: &dyn crate::dist::Comm,
) -> Result<RunSummary, TrainError> {
    train_watched(cfg, resume, comm, &Unwatched)
}

/// [`train`] observed by `watch`: every step and dev evaluation is reported,
/// and a stop request ends the run with [`TrainError::Interrupted`] in the
/// state a killed process leaves (see [`runner::train`]).
pub fn train_watched(
    cfg: &TrainConfig,
    resume: bool,
    comm: &dyn crate::dist::Comm,
    watch: &dyn Watch,
) -> Result<RunSummary, TrainError> {
    let init = if resume { None } else { init_weights(cfg)? };
    with_backbone!(cfg, init, build => runner::train(cfg, build, resume, comm, watch))
}

/// Metrics of every branch's best checkpoint of the run `cfg` on `split`.
pub fn test(cfg: &TrainConfig, split: Split) -> Result<Vec<Metrics>, TrainError> {
    with_backbone!(cfg, None, build => runner::test_branches(cfg, split, build))
}

/// Similarities of branch `k`'s `tag` checkpoint on `split`, the head in
/// `precision`: → (sims [n_images, n_captions], n_images).
pub fn score(
    cfg: &TrainConfig,
    k: usize,
    tag: &str,
    split: Split,
    precision: HeadPrecision,
) -> Result<(Vec<f32>, usize), TrainError> {
    with_backbone!(cfg, None, build => runner::score_branch(cfg, k, tag, split, precision, build))
}

/// [`score`] on `device`: the CPU engine, or (feature `cuda`) the GPU scorer
/// with the same checkpoint (f32; `precision` must be f32 there).
pub fn score_on(
    cfg: &TrainConfig,
    k: usize,
    tag: &str,
    split: Split,
    precision: HeadPrecision,
    device: Device,
) -> Result<(Vec<f32>, usize), TrainError> {
    match device {
        Device::Cpu => score(cfg, k, tag, split, precision),
        Device::Cuda => score_cuda(cfg, k, tag, split),
    }
}

#[cfg(feature = "cuda")]
fn score_cuda(
    cfg: &TrainConfig,
    k: usize,
    tag: &str,
    split: Split,
) -> Result<(Vec<f32>, usize), TrainError> {
    let Some(bc) = model_config(cfg, dims(cfg)?)? else {
        return Err(DeviceError::Unsupported("the test-only backbone `tiny`").into());
    };
    let m = crate::train::run_store::load_branch(cfg, k, tag, &model_builder(bc))?;
    let vocab = Vocab::load(cfg.vocab_path())?;
    let ds = Precomp::open(&cfg.data, split, &vocab)?;
    let scorer = crate::model::cuda::CudaScorer::new(&m).map_err(DeviceError::from)?;
    let sims = scorer.score_split(&ds).map_err(DeviceError::from)?;
    Ok((sims, ds.n_images()))
}

#[cfg(not(feature = "cuda"))]
fn score_cuda(
    _cfg: &TrainConfig,
    _k: usize,
    _tag: &str,
    _split: Split,
) -> Result<(Vec<f32>, usize), TrainError> {
    Err(DeviceError::NotBuilt.into())
}
