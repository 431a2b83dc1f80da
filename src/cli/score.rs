//! `dbl score`: scores a split of a trained run's dataset with one branch's
//! checkpoint and writes the image × caption similarity matrix (float32
//! `.npy`, `[n_images, n_captions]`, rows = images) that `dbl eval` reads;
//! prints the whole-matrix metrics (docs/method.md §8). `--head-precision bf16` runs the
//! scan-ave head's projection in bf16 on Intel AMX. Shows its progress on
//! stderr ([`crate::progress`]: a bar on a terminal, lines otherwise).

use std::path::PathBuf;

use anyhow::Context;

use super::checkpoint_args::CheckpointArgs;
use crate::data::npy::write_f32;
use crate::data::precomp::{Precomp, Split};
use crate::engine::device::{self, Device};
use crate::eval::SimMatrix;
use crate::eval::protocol::whole_metrics;
use crate::infer::LoadedMatcher;
use crate::infer::run::RunDir;
use crate::model::Backbone;
use crate::model::precision::HeadPrecision;
use crate::model::registry;
use crate::model::split::score_split_ranks;
use crate::train::backbone_select;
use crate::train::config::TrainConfig;

/// Splits `dbl score` can score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ScoreSplit {
    Dev,
    Test,
    Testall,
}

impl From<ScoreSplit> for Split {
    fn from(s: ScoreSplit) -> Split {
        match s {
            ScoreSplit::Dev => Split::Dev,
            ScoreSplit::Test => Split::Test,
            ScoreSplit::Testall => Split::Testall,
        }
    }
}

/// Arguments of `dbl score`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub ck: CheckpointArgs,
    /// Split of the run's dataset to score.
    #[arg(long, value_enum, default_value_t = ScoreSplit::Test)]
    pub split: ScoreSplit,
    /// Dataset folder holding the split (default: the run's own, as
    /// `config.json` records it relative to the run folder); give it again
    /// when the run was moved without its data.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Precision of the scan-ave similarity head's projection: `bf16` needs
    /// Intel AMX (Sapphire Rapids or later).
    #[arg(long, value_enum, default_value_t = HeadPrecision::F32)]
    pub head_precision: HeadPrecision,
    /// Run on the CPU engine or on the GPU (`cuda`: f32 only, needs a build
    /// with `--features cuda`, an NVIDIA driver and CUDA 13 libraries).
    #[arg(long, value_enum, default_value_t = Device::Cpu)]
    pub device: Device,
    /// Write the similarity matrix here (float32 `.npy`, [n_images, n_captions]).
    #[arg(long, value_name = "NPY")]
    pub out: Option<PathBuf>,
    /// Worker threads (default: the run's `threads`; 0 = every core; at most 4 x the cores).
    #[arg(long, value_name = "T", value_parser = super::bounds::threads)]
    pub threads: Option<usize>,
    /// Print the metrics as one JSON object instead of a line.
    #[arg(long)]
    pub json: bool,
}

/// Runs `dbl score`: registered backbones through the inference layer
/// ([`crate::infer`]); the trainer's test-only `tiny` model through its own
/// `score_split`. Under `mpirun -n N` the images are sharded across the
/// ranks (registered backbones on the CPU); rank 0 writes and prints.
pub fn run(args: Args) -> anyhow::Result<()> {
    let comm = crate::dist::world()?;
    crate::dist::world::abort_on_error(comm.as_ref(), || score(&args, comm.as_ref()))
}

fn score(args: &Args, comm: &dyn crate::dist::Comm) -> anyhow::Result<()> {
    if let Some(p) = &args.out {
        super::out_path::file("--out", p)?;
    }
    let mut run = RunDir::open(&args.ck.run)?;
    if let Some(d) = &args.data {
        run.data = d.clone();
    }
    let k = run.branch(args.ck.branch)?;
    device::require(args.device)?;
    if args.device == Device::Cuda && args.head_precision == HeadPrecision::Bf16 {
        anyhow::bail!("--head-precision bf16 runs on Intel AMX; --device cuda is f32 only");
    }
    // 0 (the config default) means every core, as in `dbl train`.
    let threads = args.threads.unwrap_or(run.threads);
    let max_threads = crate::train::resources::max_threads();
    if threads > max_threads {
        anyhow::bail!("--threads {threads}: at most {max_threads} (4 x the cores here)");
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .context("starting the worker threads")?;
    let split = Split::from(args.split);
    let _shown = crate::progress::begin(
        &format!("scoring {}", split.name()),
        "pairs",
        comm.rank() == 0,
    );
    let registered = serde_json::from_value::<Backbone>(run.backbone_name().into())
        .ok()
        .and_then(registry::entry)
        .is_some();
    let (sims, n_img) = if registered && args.device == Device::Cpu {
        let m = LoadedMatcher::from_run(&args.ck.run, Some(k), &args.ck.tag)?;
        let ds = Precomp::open(&run.data, split, m.vocab())?;
        let sims =
            pool.install(|| score_split_ranks(m.matcher(), &ds, args.head_precision, comm))?;
        (sims, ds.n_images())
    } else {
        if comm.size() > 1 {
            anyhow::bail!(
                "scoring across {} MPI ranks needs a registered backbone on the CPU \
                 (this run's `{}` with --device {}): run one process",
                comm.size(),
                run.backbone_name(),
                args.device.name()
            );
        }
        // The GPU scorer (and the test-only `tiny` model) still load through
        // the training configuration.
        let mut cfg = TrainConfig::load_json(&args.ck.run.join("config.json"), &[])?;
        cfg.out = args.ck.run.clone();
        cfg.data = run.data.clone();
        if cfg.vocab.is_none() {
            cfg.vocab = Some(cfg.vocab_path());
        }
        cfg.validate()?;
        pool.install(|| {
            backbone_select::score_on(
                &cfg,
                k,
                &args.ck.tag,
                split,
                args.head_precision,
                args.device,
            )
        })?
    };
    if comm.rank() != 0 {
        return Ok(());
    }
    let n_cap = sims.len() / n_img.max(1);
    if let Some(path) = &args.out {
        write_f32(path, &[n_img, n_cap], &sims)?;
    }
    let m = SimMatrix::new(&sims, n_img, n_cap)?;
    let metrics = whole_metrics(&m);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&metrics)?);
    } else {
        println!(
            "branch{k} {} on {} ({n_img} x {n_cap}, head {}): rSum {:.2}  i2t R@1/5/10 {:.1} {:.1} {:.1}  \
             t2i R@1/5/10 {:.1} {:.1} {:.1}",
            args.ck.tag,
            split.name(),
            args.head_precision.name(),
            metrics.rsum,
            metrics.i2t.r1,
            metrics.i2t.r5,
            metrics.i2t.r10,
            metrics.t2i.r1,
            metrics.t2i.r5,
            metrics.t2i.r10
        );
    }
    Ok(())
}
