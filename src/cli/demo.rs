//! `dbl demo --out DIR`: the whole pipeline on the default synthetic data set
//! (design.md "Synthetic data"): generate it into `DIR/data`, train an OSS
//! cohort (K = 2, Relative Max boosting: branch 0 = anchor, branch 1 = DBL
//! target) in `DIR/oss` and an MSS run in `DIR/mss`, evaluate every branch's
//! best checkpoint on test, print the table, write `DIR/results.json` and
//! the report pictures. Budget (defaults): 6 epochs, the first 2 with
//! sum-over-negatives (design.md: hardest negatives alone plateau on small
//! data), lr ×0.1 at epoch 4, MSS m0 = 0.99 (the paper's 0.99995 would leave the
//! teacher at its initialisation over so few steps).

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget};
use serde_json::json;

use crate::data::precomp::Split;
use crate::data::synth::{self, SynthConfig};
use crate::eval::metrics::Metrics;
use crate::loss::{BaseLoss, BoostConfig, BoostForm, LossConfig, PeerLoss, Reduction};
use crate::train::backbone_select;
use crate::train::config::{BackboneName, ModelConfig, Regime, TrainConfig};
use crate::train::report::report;

/// Arguments of `dbl demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output folder (data/, oss/, mss/, results.json); must not hold earlier runs.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Seed of the data set and of training.
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub seed: u64,
    /// Backbone to train (`tiny` is a mean-pooling smoke-test model, not a paper backbone).
    #[arg(long, value_enum, default_value = "vse")]
    pub backbone: BackboneName,
    /// Joint embedding width (GRU hidden size too); the paper's 1024 is too slow for a
    /// 10-minute demo on 2 cores, so the demo defaults to 256.
    #[arg(long, value_name = "D", default_value_t = 256)]
    pub embed: usize,
    /// Initial learning rate. The authors' 2e-4 (spec §7) needs tens of epochs; the
    /// demo's few epochs use 2e-3 (measured: dev rSum 53 vs 22 after 2 epochs).
    #[arg(long, value_name = "LR", default_value_t = 2e-3)]
    pub lr: f64,
    /// Boosting form of the target (`relative` = Relative Max, the demo's default;
    /// `absolute` = Absolute Max).
    #[arg(long, value_enum, default_value = "relative")]
    pub boost: BoostForm,
    /// Which runs to train: OSS anchor + target, MSS student + EMA teacher, or both.
    #[arg(long, value_enum, default_value = "both")]
    pub runs: DemoRuns,
    /// Epochs of each run.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub epochs: usize,
    /// Training images of the synthetic set (dev/test keep the defaults).
    #[arg(long, value_name = "N", default_value_t = SynthConfig::default().train)]
    pub train_images: usize,
    /// Worker threads (0 = all cores).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub threads: usize,
}

/// The runs `dbl demo` trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DemoRuns {
    /// OSS then MSS.
    Both,
    /// Only the OSS anchor + target.
    Oss,
    /// Only the MSS run.
    Mss,
}

fn run_config(args: &Args, regime: Regime, name: &str) -> TrainConfig {
    let data = args.out.join("data");
    TrainConfig {
        vocab: Some(data.join("vocab.json")),
        data,
        out: args.out.join(name),
        model: ModelConfig {
            backbone: args.backbone,
            embed: args.embed,
            ..ModelConfig::default()
        },
        regime,
        branches: 2,
        // Sum over negatives in L_raw for the whole (short) run: switching to
        // hardest negatives after a 2-epoch warm-up collapsed dev rSum from 53 to
        // 17 at this budget (VSE++'s early-training collapse, design.md); the
        // boosting term keeps its hardest (Relative Max) form.
        loss: LossConfig {
            base: BaseLoss::Triplet {
                reduction: Reduction::Sum,
            },
            peer: PeerLoss::Boost(BoostConfig {
                form: args.boost,
                reduction: Reduction::Hardest,
                ..BoostConfig::default()
            }),
            ..LossConfig::default()
        },
        epochs: args.epochs,
        lr: args.lr,
        lr_update: (args.epochs * 2).div_ceil(3),
        seed: args.seed,
        threads: args.threads,
        mss: crate::train::config::MssConfig { m0: 0.99 },
        ..TrainConfig::default()
    }
}

fn row(name: &str, m: &Metrics) -> String {
    format!(
        "{name:<12} {:>6.1} {:>6.1} {:>6.1}   {:>6.1} {:>6.1} {:>6.1}   {:>7.1}",
        m.i2t.r1, m.i2t.r5, m.i2t.r10, m.t2i.r1, m.t2i.r5, m.t2i.r10, m.rsum
    )
}

/// Runs `dbl demo`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let oss = run_config(&args, Regime::Oss, "oss");
    let mss = run_config(&args, Regime::Mss, "mss");
    backbone_select::check_available(&oss)?;
    let data = args.out.join("data");
    std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
    if !data.join("vocab.json").is_file() {
        let scfg = SynthConfig {
            seed: args.seed,
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
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads)
        .build()
        .context("starting the worker threads")?;
    let mut results = serde_json::Map::new();
    let mut table = vec![format!(
        "{:<12} {:>6} {:>6} {:>6}   {:>6} {:>6} {:>6}   {:>7}",
        "test", "i2t@1", "@5", "@10", "t2i@1", "@5", "@10", "rSum"
    )];
    let runs: Vec<(&str, &TrainConfig)> = match args.runs {
        DemoRuns::Both => vec![("oss", &oss), ("mss", &mss)],
        DemoRuns::Oss => vec![("oss", &oss)],
        DemoRuns::Mss => vec![("mss", &mss)],
    };
    for (name, cfg) in runs {
        cfg.validate()?;
        eprintln!(
            "training {name} ({} epochs) into {}",
            cfg.epochs,
            cfg.out.display()
        );
        pool.install(|| backbone_select::train(cfg, false))?;
        let test = pool.install(|| backbone_select::test(cfg, Split::Test))?;
        let (anchor, target) = (&test[0], &test[1]);
        table.push(row(&format!("{name} anchor"), anchor));
        table.push(row(&format!("{name} target"), target));
        results.insert(
            name.to_string(),
            json!({"anchor": anchor, "target": target, "run": cfg.out}),
        );
        let r = report(&cfg.out).map_err(|m| anyhow::anyhow!(m))?;
        for f in r.files {
            eprintln!("wrote {}", f.display());
        }
    }
    for l in &table {
        println!("{l}");
    }
    let path = args.out.join("results.json");
    let text = serde_json::to_string_pretty(&serde_json::Value::Object(results))?;
    crate::train::checkpoint::write_atomic(&path, text.as_bytes())?;
    println!("wrote {}", path.display());
    Ok(())
}
