//! `dbl demo --out DIR`: the whole pipeline on the default synthetic data set
//! ([`crate::data::synth`]), judged over seeds: generate the data into
//! `DIR/data`, write the run configuration `DIR/oss.toml` (an OSS cohort,
//! K = 2: branch 0 = anchor, branch 1 = DBL target with Relative Max boosting;
//! scan-ave at embed 256, batch 32, sum over negatives in L_raw), train it once
//! per seed through `dbl sweep` (`DIR/oss/seed{s}`; running the demo again
//! resumes), score each branch's best-on-dev checkpoint on test, and print per
//! seed and on average the anchor and target test rSum and their paired
//! difference with its 95 % interval. Whatever the seeds show is what it
//! prints. `DIR/results.json` holds the numbers, `DIR/oss/summary.*` the sweep
//! summary, `DIR/oss/seed{s}/report/` the curves.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context, anyhow};
use indicatif::{ProgressBar, ProgressDrawTarget};
use serde_json::json;

use crate::data::synth::{self, SynthConfig};
use crate::loss::BoostForm;
use crate::sweep::run::{open_sweep, run_seed, seed_config, seed_dir};
use crate::sweep::seeds::parse_seeds;
use crate::sweep::summary::{self, paired_text};
use crate::train::config::BackboneName;
use crate::train::report::report;

/// Arguments of `dbl demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output folder (data/, oss.toml, oss/, results.json). Running the demo
    /// again with the same options resumes it.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Training seeds (`A..B`, B exclusive; or a list `0,3`); at least 2 for a paired interval.
    #[arg(long, value_name = "SEEDS", default_value = "0..2")]
    pub seeds: String,
    /// Seed of the synthetic data set.
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub data_seed: u64,
    /// Backbone to train (`tiny` is a mean-pooling smoke-test model, not a paper backbone).
    #[arg(long, value_enum, default_value = "scan-ave")]
    pub backbone: BackboneName,
    /// Joint embedding width (GRU hidden size too); the paper's 1024 is too slow
    /// for a 10-minute demo on 2 cores.
    #[arg(long, value_name = "D", default_value_t = 256)]
    pub embed: usize,
    /// Training batch size (the paper's 128 gives 4× fewer steps per epoch).
    #[arg(long, value_name = "B", default_value_t = 32)]
    pub batch: usize,
    /// Learning rate. The authors' 2e-4 needs many epochs; measured on the default
    /// synthetic set (EXPERIMENTS.md "Calibration"), 1e-3 reaches dev rSum 554
    /// after one epoch of 2,000 images where 2e-4 reaches 128.
    #[arg(long, value_name = "LR", default_value_t = 1e-3)]
    pub lr: f64,
    /// Boosting form of the target (`relative` = Relative Max; `absolute` = Absolute Max).
    #[arg(long, value_enum, default_value = "relative")]
    pub boost: BoostForm,
    /// Epochs per seed.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub epochs: usize,
    /// Training images of the synthetic set (dev/test keep the defaults).
    #[arg(long, value_name = "N", default_value_t = 1_000)]
    pub train_images: usize,
    /// Worker threads (0 = all cores).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub threads: usize,
}

/// The demo's run configuration (TOML, the keys of `dbl train --config`).
fn config_toml(args: &Args) -> String {
    let data = toml::Value::String(args.out.join("data").to_string_lossy().into_owned());
    let boost = match args.boost {
        BoostForm::Relative => "relative",
        BoostForm::Absolute => "absolute",
    };
    format!(
        "# Written by `dbl demo`; train the same seeds with\n\
         # dbl sweep --config THIS --seeds {seeds} --out DIR\n\
         data = {data}\n\
         regime = \"oss\"\n\
         branches = 2\n\
         epochs = {epochs}\n\
         lr = {lr:e}\n\
         lr_update = 0\n\
         batch_size = {batch}\n\
         threads = {threads}\n\
         log_every = 10\n\n\
         [model]\n\
         backbone = \"{backbone}\"\n\
         embed = {embed}\n\n\
         [loss]\n\
         margin = 0.2\n\
         alpha = 1.0\n\n\
         [loss.base]\n\
         kind = \"triplet\"\n\
         reduction = \"sum\"\n\n\
         [loss.peer]\n\
         kind = \"boost\"\n\
         form = \"{boost}\"\n\
         reduction = \"hardest\"\n",
        seeds = args.seeds,
        epochs = args.epochs,
        lr = args.lr,
        batch = args.batch,
        threads = args.threads,
        backbone = args.backbone.name(),
        embed = args.embed,
    )
}

/// Runs `dbl demo`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let seeds = parse_seeds(&args.seeds)?;
    let data = args.out.join("data");
    std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
    if !data.join("vocab.json").is_file() {
        let scfg = SynthConfig {
            seed: args.data_seed,
            train: args.train_images,
            ..SynthConfig::default()
        };
        scfg.validate()?;
        eprintln!("generating the synthetic data set into {}", data.display());
        let pb = ProgressBar::new((scfg.train + scfg.dev + scfg.test) as u64);
        if !std::io::stderr().is_terminal() {
            pb.set_draw_target(ProgressDrawTarget::hidden());
        }
        synth::generate(&scfg, &data, &mut |n| pb.set_position(n as u64))?;
        pb.finish_and_clear();
    }
    let toml_path = args.out.join("oss.toml");
    let text = config_toml(&args);
    crate::store::write_atomic(&toml_path, text.as_bytes())?;
    let sweep_dir = args.out.join("oss");
    let manifest = open_sweep(&toml_path, &[], &sweep_dir, None)?;
    let what = toml_path.display().to_string();
    let cfgs = seeds
        .iter()
        .map(|&s| seed_config(&manifest, &what, &sweep_dir, s, &[]))
        .collect::<Result<Vec<_>, _>>()?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads)
        .build()
        .context("starting the worker threads")?;
    let mut results = Vec::new();
    for cfg in &cfgs {
        eprintln!(
            "seed {}: training anchor + target ({} epochs) into {}",
            cfg.seed,
            cfg.epochs,
            cfg.out.display()
        );
        let r = pool
            .install(|| run_seed(cfg))?
            .ok_or_else(|| anyhow!("seed {} stopped before its last epoch", cfg.seed))?;
        let rep = report(&seed_dir(&sweep_dir, cfg.seed)).map_err(|m| anyhow!(m))?;
        for f in rep.files {
            eprintln!("wrote {}", f.display());
        }
        results.push(r);
    }
    let s = summary::summarize("demo", &results).map_err(|m| anyhow!(m))?;
    let files = summary::write(&sweep_dir, &s)?;
    println!(
        "test rSum (of 600), best-on-dev checkpoint of each branch:\n{:<6} {:>8} {:>8} {:>16}",
        "seed", "anchor", "target", "target − anchor"
    );
    let mut per_seed = Vec::new();
    for r in &results {
        let (a, t) = (&r.branches[0].test, &r.branches[1].test);
        println!(
            "{:<6} {:>8.1} {:>8.1} {:>+16.1}",
            r.seed,
            a.rsum,
            t.rsum,
            t.rsum - a.rsum
        );
        per_seed.push(json!({"seed": r.seed, "anchor": a, "target": t,
            "target_minus_anchor_rsum": t.rsum - a.rsum, "wall_seconds": r.wall_seconds}));
    }
    let (a, t) = (&s.branches[0].rsum, &s.branches[1].rsum);
    println!(
        "{:<6} {:>8.1} {:>8.1} {:>+16.1}",
        "mean",
        a.mean,
        t.mean,
        t.mean - a.mean
    );
    let paired = s
        .paired_rsum
        .as_ref()
        .ok_or_else(|| anyhow!("the demo run has one branch"))?;
    println!("target − anchor: {}", paired_text(paired));
    println!(
        "\nmean over seeds  {:>6} {:>6} {:>6}   {:>6} {:>6} {:>6}   {:>6}",
        "i2t@1", "@5", "@10", "t2i@1", "@5", "@10", "rSum"
    );
    for b in &s.branches {
        println!(
            "{:<16} {:>6.1} {:>6.1} {:>6.1}   {:>6.1} {:>6.1} {:>6.1}   {:>6.1}",
            b.role,
            b.i2t.r1.mean,
            b.i2t.r5.mean,
            b.i2t.r10.mean,
            b.t2i.r1.mean,
            b.t2i.r5.mean,
            b.t2i.r10.mean,
            b.rsum.mean
        );
    }
    let out = json!({
        "config": toml_path,
        "data": data,
        "seeds": per_seed,
        "mean_rsum": {"anchor": a.mean, "target": t.mean},
        "sd_rsum": {"anchor": a.sd, "target": t.sd},
        "paired_rsum": paired,
    });
    let path = args.out.join("results.json");
    crate::store::write_atomic(&path, serde_json::to_string_pretty(&out)?.as_bytes())?;
    for f in files {
        eprintln!("wrote {}", f.display());
    }
    println!("wrote {}", path.display());
    Ok(())
}
