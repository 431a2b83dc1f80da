//! `dbl demo --out DIR`: the whole pipeline where the effect of DBL can be
//! measured (EXPERIMENTS.md "Study": on the hard synthetic data, trained
//! until dev rSum stops improving, every OSS target ended above its anchor),
//! judged over seeds: generate the hard synthetic data set (15 concepts,
//! [`crate::data::synth`]) into `DIR/data`, write the run configuration
//! `DIR/oss.toml` (an OSS cohort, K = 2: branch 0 = anchor, branch 1 = DBL
//! target with Relative Max boosting; scan-ave at embed 128, batch 32, sum
//! over negatives in L_raw), train it per seed through `dbl sweep`
//! (`DIR/oss/seed{s}`; running the demo again resumes) until no branch has
//! improved its dev rSum for `--patience` epochs, score each branch's
//! best-on-dev checkpoint on test, and print per seed and on average the
//! anchor and target test rSum, their paired difference with its 95 %
//! interval and the win count, and what that interval supports. Whatever the
//! seeds show is what it prints. `--quick` is the 2-minute smoke run on the
//! easy data (2 epochs, 2 seeds) that measures nothing. `DIR/results.json`
//! holds the numbers, `DIR/oss/summary.*` the sweep summary,
//! `DIR/oss/seed{s}/report/` the curves.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context, anyhow};
use indicatif::{ProgressBar, ProgressDrawTarget};
use serde_json::json;

use crate::data::synth::{self, SynthConfig};
use crate::loss::BoostForm;
use crate::sweep::run::{open_sweep, run_seed, seed_config, seed_dir};
use crate::sweep::seeds::parse_seeds;
use crate::sweep::stats::Paired;
use crate::sweep::summary::{self, paired_text};
use crate::train::config::BackboneName;
use crate::train::report::{Curve, report};

/// Arguments of `dbl demo`. Options left out take the full demo's value, or
/// with `--quick` the smoke run's.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output folder (data/, oss.toml, oss/, results.json). Running the demo
    /// again with the same options resumes it.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// The ~2-minute smoke run: easy data (150 concepts), 1,000 training
    /// images, 2 epochs, seeds 0..2, embed 256, no patience. Too short to
    /// measure anything.
    #[arg(long)]
    pub quick: bool,
    /// Training seeds (`A..B`, B exclusive; or a list `0,3`); at least 2 for a
    /// paired interval [full: 0..3; quick: 0..2].
    #[arg(long, value_name = "SEEDS")]
    pub seeds: Option<String>,
    /// Seed of the synthetic data set.
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub data_seed: u64,
    /// Synthetic data: `hard` (15 concepts, where the study measured the
    /// effect) or `easy` (150) [full: hard; quick: easy].
    #[arg(long, value_enum, value_name = "KIND")]
    pub data: Option<DataKind>,
    /// Backbone to train (`tiny` is a mean-pooling smoke-test model, not a paper backbone).
    #[arg(long, value_enum, default_value = "scan-ave")]
    pub backbone: BackboneName,
    /// Joint embedding width (GRU hidden size too); the paper's 1024 is too
    /// slow for a 10-minute demo on 2 cores [full: 128; quick: 256].
    #[arg(long, value_name = "D")]
    pub embed: Option<usize>,
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
    /// Most epochs per seed [full: 24; quick: 2]. The full cap is what the
    /// 10-minute budget allows when every seed runs to it (see [`FULL_EPOCHS`]).
    #[arg(long, value_name = "N")]
    pub epochs: Option<usize>,
    /// Stop a seed once no branch improved its dev rSum for this many epochs
    /// (0 = never; full: 2; quick: 0).
    #[arg(long, value_name = "N")]
    pub patience: Option<usize>,
    /// Training images of the synthetic set [full: 400; quick: 1,000].
    #[arg(long, value_name = "N")]
    pub train_images: Option<usize>,
    /// Dev images (picked the best checkpoint, decided patience) [full: 100; quick: 200].
    #[arg(long, value_name = "N")]
    pub dev_images: Option<usize>,
    /// Worker threads (0 = all cores).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub threads: usize,
}

/// The full demo's epoch cap, set from cost alone (never from results): a
/// seed-epoch of the full demo (400 training images, both branches, dev
/// scoring) costs about 12.3 CPU-s (407 CPU-s for 33 seed-epochs at
/// `f30cbea`), 10 minutes on 2 cores at the 184 % share the demo gets on a
/// quiet machine is about 1,100 CPU-s, and 3 seeds all running to the cap
/// with a 15 % margin allow 3 × 24 × 12.3 ≈ 890 CPU-s.
pub const FULL_EPOCHS: usize = 24;

/// Which synthetic data set the demo trains on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DataKind {
    /// 150 concepts (`dbl synth`'s default).
    Easy,
    /// 15 concepts (`dbl synth --hard`).
    Hard,
}

/// The demo's settings after the presets fill what was not given.
#[derive(Debug, Clone)]
struct Settings {
    seeds: String,
    data: DataKind,
    embed: usize,
    epochs: usize,
    patience: usize,
    train_images: usize,
    dev_images: usize,
}

impl Settings {
    fn of(a: &Args) -> Self {
        let q = a.quick;
        Settings {
            seeds: a
                .seeds
                .clone()
                .unwrap_or_else(|| if q { "0..2" } else { "0..3" }.into()),
            data: a
                .data
                .unwrap_or(if q { DataKind::Easy } else { DataKind::Hard }),
            embed: a.embed.unwrap_or(if q { 256 } else { 128 }),
            epochs: a.epochs.unwrap_or(if q { 2 } else { FULL_EPOCHS }),
            patience: a.patience.unwrap_or(if q { 0 } else { 2 }),
            train_images: a.train_images.unwrap_or(if q { 1_000 } else { 400 }),
            dev_images: a.dev_images.unwrap_or(if q { 200 } else { 100 }),
        }
    }
}

/// The demo's run configuration (TOML, the keys of `dbl train --config`).
fn config_toml(args: &Args, st: &Settings) -> String {
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
         {patience}\
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
        seeds = st.seeds,
        epochs = st.epochs,
        patience = if st.patience > 0 {
            format!("patience = {}\n", st.patience)
        } else {
            String::new()
        },
        lr = args.lr,
        batch = args.batch,
        threads = args.threads,
        backbone = args.backbone.name(),
        embed = st.embed,
    )
}

/// One sentence on what the paired interval does and does not support.
fn reading(p: &Paired) -> String {
    let n = p.diffs.len();
    let (lo, hi) = p.ci95;
    if lo.is_nan() {
        "With one seed there is no interval: this supports no conclusion about the target \
         against its anchor."
            .into()
    } else if lo > 0.0 {
        format!(
            "The interval lies above zero: on this data and these settings the DBL target beat \
             its anchor on average over these {n} seeds (by {lo:+.1} to {hi:+.1} rSum); it does \
             not say how the gain carries over to other data, model sizes or real features."
        )
    } else if hi < 0.0 {
        format!(
            "The interval lies below zero: on this data and these settings the target did worse \
             than its anchor on average over these {n} seeds; it does not say how that carries \
             over to other data, model sizes or real features."
        )
    } else {
        format!(
            "The interval includes zero: these {n} seeds do not establish a difference between \
             target and anchor in either direction, whatever the win count; nor do they show \
             that there is none (more seeds could settle it)."
        )
    }
}

/// How one seed's training ended, read from its dev rSum curves.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ending {
    /// Epochs trained (the last evaluated epoch, 1-based).
    epochs: usize,
    /// Each branch's best-dev epoch (1-based; the first of equal maxima, as
    /// patience counts it).
    best: Vec<usize>,
    /// True when patience stopped the seed before the epoch cap.
    by_patience: bool,
}

impl Ending {
    /// From a seed's dev rSum curves (x = 1-based epoch), its epoch cap and
    /// whether patience was on.
    fn of(rsum: &[Curve], cap: usize, patience: bool) -> Self {
        let epochs = rsum
            .iter()
            .filter_map(|c| c.points.last())
            .map(|p| p.0 as usize)
            .max()
            .unwrap_or(0);
        let best = rsum
            .iter()
            .map(|c| {
                c.points
                    .iter()
                    .fold(None::<(f64, f64)>, |b, &(x, y)| match b {
                        Some((_, by)) if by >= y => b,
                        _ => Some((x, y)),
                    })
                    .map_or(0, |(x, _)| x as usize)
            })
            .collect();
        Ending {
            epochs,
            best,
            by_patience: patience && epochs < cap,
        }
    }

    /// `14 epochs, patience; best dev at 12 / 10` (anchor / target).
    fn text(&self) -> String {
        let best: Vec<String> = self.best.iter().map(usize::to_string).collect();
        format!(
            "{:>6}  {:<8}  {}",
            self.epochs,
            if self.by_patience { "patience" } else { "cap" },
            best.join(" / ")
        )
    }
}

/// Runs `dbl demo`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let t0 = std::time::Instant::now();
    let st = Settings::of(&args);
    let seeds = parse_seeds(&st.seeds)?;
    super::out_path::dir("--out", &args.out)?;
    let data = args.out.join("data");
    std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
    if !data.join("vocab.json").is_file() {
        let base = SynthConfig {
            seed: args.data_seed,
            train: st.train_images,
            dev: st.dev_images,
            ..SynthConfig::default()
        };
        let scfg = match st.data {
            DataKind::Hard => base.hard(),
            DataKind::Easy => base,
        };
        scfg.validate()?;
        eprintln!(
            "generating the {} synthetic data set into {}",
            if st.data == DataKind::Hard {
                "hard"
            } else {
                "easy"
            },
            data.display()
        );
        let pb = ProgressBar::new((scfg.train + scfg.dev + scfg.test) as u64);
        if !std::io::stderr().is_terminal() {
            pb.set_draw_target(ProgressDrawTarget::hidden());
        }
        synth::generate(&scfg, &data, &mut |n| pb.set_position(n as u64))?;
        pb.finish_and_clear();
    }
    let toml_path = args.out.join("oss.toml");
    let text = config_toml(&args, &st);
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
    let mut endings = Vec::new();
    for cfg in &cfgs {
        eprintln!(
            "seed {}: training anchor + target (at most {} epochs{}) into {}",
            cfg.seed,
            cfg.epochs,
            if st.patience > 0 {
                format!(", until dev rSum stalls for {}", st.patience)
            } else {
                String::new()
            },
            cfg.out.display()
        );
        let r = pool
            .install(|| run_seed(cfg))?
            .ok_or_else(|| anyhow!("seed {} stopped before its last epoch", cfg.seed))?;
        let rep = report(&seed_dir(&sweep_dir, cfg.seed)).map_err(|m| anyhow!(m))?;
        for f in &rep.files {
            eprintln!("wrote {}", f.display());
        }
        endings.push(Ending::of(&rep.rsum, cfg.epochs, st.patience > 0));
        results.push(r);
    }
    let s = summary::summarize("demo", &results).map_err(|m| anyhow!(m))?;
    let files = summary::write(&sweep_dir, &s)?;
    println!(
        "test rSum (of 600), best-on-dev checkpoint of each branch; epochs trained, what \
         stopped the seed (patience, or the cap of {} epochs) and each branch's best-dev epoch:\n\
         {:<6} {:>8} {:>8} {:>16}  {:>6}  {:<8}  best (anchor / target)",
        st.epochs, "seed", "anchor", "target", "target − anchor", "epochs", "stop"
    );
    let mut per_seed = Vec::new();
    for (r, e) in results.iter().zip(&endings) {
        let (a, t) = (&r.branches[0].test, &r.branches[1].test);
        println!(
            "{:<6} {:>8.1} {:>8.1} {:>+16.1}  {}",
            r.seed,
            a.rsum,
            t.rsum,
            t.rsum - a.rsum,
            e.text()
        );
        per_seed.push(json!({"seed": r.seed, "anchor": a, "target": t,
            "target_minus_anchor_rsum": t.rsum - a.rsum, "wall_seconds": r.wall_seconds,
            "epochs": e.epochs, "epoch_cap": st.epochs,
            "stopped_by": if e.by_patience { "patience" } else { "cap" },
            "best_dev_epoch": e.best}));
    }
    let capped = endings.iter().filter(|e| !e.by_patience).count();
    if st.patience > 0 && capped > 0 {
        println!(
            "{capped} of {} seeds reached the {}-epoch cap before patience stopped them: \
             they may not have converged.",
            endings.len(),
            st.epochs
        );
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
    let reading = reading(paired);
    println!("{reading}");
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
        "reading": reading,
    });
    let path = args.out.join("results.json");
    crate::store::write_atomic(&path, serde_json::to_string_pretty(&out)?.as_bytes())?;
    for f in files {
        eprintln!("wrote {}", f.display());
    }
    println!("wrote {}", path.display());
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "demo wall time: {secs:.0} s ({}:{:02} min; this invocation, including data generation)",
        secs as u64 / 60,
        secs as u64 % 60
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{Curve, Ending};

    fn curve(points: &[(f64, f64)]) -> Curve {
        Curve {
            branch: 0,
            label: String::new(),
            points: points.to_vec(),
        }
    }

    /// Epochs run are the last evaluated epoch; the best epoch is the first
    /// of equal maxima; patience is read from stopping before the cap.
    #[test]
    fn ending_reads_epochs_best_and_stop() {
        let a = curve(&[(1.0, 100.0), (2.0, 300.0), (3.0, 300.0), (4.0, 250.0)]);
        let t = curve(&[(1.0, 120.0), (2.0, 200.0), (3.0, 310.0), (4.0, 290.0)]);
        let e = Ending::of(&[a.clone(), t.clone()], 24, true);
        assert_eq!(
            e,
            Ending {
                epochs: 4,
                best: vec![2, 3],
                by_patience: true
            }
        );
        assert!(!Ending::of(&[a.clone(), t.clone()], 4, true).by_patience);
        assert!(!Ending::of(&[a, t], 24, false).by_patience);
    }
}
