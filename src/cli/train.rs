//! `dbl train`: trains a run from a TOML config (docs/method.md §4, §7) — see
//! [`crate::train::config::TrainConfig`] for every key — or continues one
//! with `--resume RUN_DIR` (bit for bit: the same trajectory as an
//! uninterrupted run).

use std::path::PathBuf;

use anyhow::Context;

use crate::train::backbone_select;
use crate::train::config::{Regime, TrainConfig};

/// Arguments of `dbl train`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// TOML run config (keys: see the TrainConfig docs); defaults are the authors' F30K values.
    #[arg(long, value_name = "FILE", conflicts_with = "resume")]
    pub config: Option<PathBuf>,
    /// Continue the run in RUN_DIR from its `last` checkpoints (reads RUN_DIR/config.json).
    #[arg(long, value_name = "RUN_DIR")]
    pub resume: Option<PathBuf>,
    /// Override any config key by dotted path, e.g. --set loss.margin=0.1 --set loss.peer.form=relative (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Dataset folder (config key `data`).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Run folder for checkpoints and metrics (config key `out`).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Training regime (config key `regime`).
    #[arg(long, value_enum)]
    pub regime: Option<Regime>,
    /// Epochs (config key `epochs`; stage 1 for OAS).
    #[arg(long, value_name = "N")]
    pub epochs: Option<usize>,
    /// Seed of initialisation, shuffling and dropout (config key `seed`).
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
    /// Start every branch from the weights of a run's `best` checkpoint
    /// (`RUN` or `RUN:BRANCH`, e.g. a run written by `dbl import`; default
    /// branch: its last) with a fresh optimiser (config key `init`).
    #[arg(long, value_name = "RUN[:BRANCH]", conflicts_with = "resume")]
    pub init: Option<String>,
}

fn quoted(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// The dotted overrides the flags stand for, then the `--set` ones.
fn overrides(args: &Args) -> Vec<String> {
    let mut o = Vec::new();
    if let Some(d) = &args.data {
        o.push(format!("data={}", quoted(&d.to_string_lossy())));
    }
    if let Some(d) = &args.out {
        o.push(format!("out={}", quoted(&d.to_string_lossy())));
    }
    if let Some(r) = args.regime {
        o.push(format!("regime={}", quoted(r.name())));
    }
    if let Some(e) = args.epochs {
        o.push(format!("epochs={e}"));
    }
    if let Some(s) = args.seed {
        o.push(format!("seed={s}"));
    }
    if let Some(i) = &args.init {
        o.push(format!("init={}", quoted(i)));
    }
    o.extend(args.set.iter().cloned());
    o
}

/// Builds and validates the configuration `args` describe.
pub fn config(args: &Args) -> anyhow::Result<TrainConfig> {
    let o = overrides(args);
    let mut cfg = match (&args.resume, &args.config) {
        (Some(run), _) => {
            let mut c = TrainConfig::load_json(&run.join("config.json"), &o)?;
            if args.out.is_none() {
                c.out = run.clone();
            }
            c
        }
        (None, Some(path)) => TrainConfig::load(path, &o)?,
        (None, None) => TrainConfig::from_toml_str("", "defaults", &o)?,
    };
    if cfg.vocab.is_none() {
        cfg.vocab = Some(cfg.vocab_path());
    }
    cfg.validate()?;
    Ok(cfg)
}

/// Runs `dbl train` (under `mpirun -n N`: one rank of a data-parallel job,
/// docs/method.md §14; only rank 0 writes and prints).
pub fn run(args: Args) -> anyhow::Result<()> {
    let comm = crate::dist::world()?;
    crate::dist::world::abort_on_error(comm.as_ref(), || train(&args, comm.as_ref()))
}

fn train(args: &Args, comm: &dyn crate::dist::Comm) -> anyhow::Result<()> {
    let cfg = config(args)?;
    if comm.rank() == 0 {
        eprintln!(
            "dbl train: {} the run in {} (config.json, checkpoints/, branch*/metrics.jsonl)",
            if args.resume.is_some() {
                "resuming"
            } else {
                "writing"
            },
            cfg.out.display()
        );
    }
    let threads = cfg.threads;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .context("starting the worker threads")?;
    let summary = pool.install(|| backbone_select::train(&cfg, args.resume.is_some(), comm))?;
    if comm.rank() != 0 {
        return Ok(());
    }
    for (k, m) in summary.best_dev.iter().enumerate() {
        match m {
            Some(m) => println!("branch{k}: best dev rSum {:.2}", m.rsum),
            None => println!("branch{k}: not evaluated yet"),
        }
    }
    if summary.stopped {
        println!(
            "stopped early (stop_after); continue with: dbl train --resume {}",
            cfg.out.display()
        );
    }
    Ok(())
}
