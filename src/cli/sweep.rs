//! `dbl sweep`: one training configuration over several seeds, then each
//! branch's best-on-dev checkpoint on test and the summary with confidence
//! intervals ([`crate::sweep`]); `dbl sweep compare DIR…` puts sweeps side by side;
//! `dbl sweep summarize DIR…` rewrites a sweep's summary (and its curves) from
//! its finished seeds.

use std::path::PathBuf;

use anyhow::{Context, anyhow};

use crate::sweep::run::{Manifest, open_sweep, run_seed, seed_config, seed_dir};
use crate::sweep::seeds::parse_seeds;
use crate::sweep::{compare, estimator, summary};
use crate::train::config::Regime;

/// Arguments of `dbl sweep`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct Args {
    /// TOML run config (the keys of `dbl train --config`); `seed` and `out` are set per seed.
    #[arg(long, value_name = "FILE", required = true)]
    pub config: Option<PathBuf>,
    /// Seeds: `A..B` (B exclusive), `A..=B`, or a list `0,3,7`.
    #[arg(long, value_name = "SEEDS", required = true, value_parser = seeds_arg)]
    pub seeds: Option<String>,
    /// Override any config key by dotted path (repeatable), e.g. --set loss.peer.form=relative.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Sweep folder: seed{s}/ run folders, sweep.json, summary.{json,md,png,svg} and
    /// curves.{png,svg} (every seed's dev rSum per epoch and branch). With
    /// `--set test_after_epoch=B` the summary also reports the selection-robust
    /// estimate: target − anchor test rSum averaged over every epoch after B.
    /// Running the same command again skips finished seeds and resumes an interrupted one.
    #[arg(long, value_name = "DIR", required = true)]
    pub out: Option<PathBuf>,
    /// Stop each seed after N epochs of training in this invocation (leaves the
    /// sweep resumable; for time-boxed sessions).
    #[arg(long, value_name = "N")]
    pub stop_after: Option<usize>,
    /// Raise `epochs` of an existing sweep to N (baseline and OSS only): seeds
    /// that reached the old cap resume from their last checkpoint, exactly as
    /// if N had been set from the start (constant schedules, patience decided
    /// from the checkpointed state); seeds that patience stopped stay stopped.
    /// MSS (its EMA schedule spans all epochs) and OAS (two stages) are refused.
    #[arg(long, value_name = "N")]
    pub extend_epochs: Option<usize>,
    #[command(subcommand)]
    pub command: Option<SweepCommand>,
}

/// `dbl sweep` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum SweepCommand {
    /// Several sweep folders side by side (test rSum per branch, paired differences).
    Compare(CompareArgs),
    /// Rewrite summary.{json,md,png,svg} and curves.{png,svg} of sweep folders
    /// from their finished seeds' records (reads only; trains nothing).
    Summarize(SummarizeArgs),
}

/// Arguments of `dbl sweep summarize`.
#[derive(Debug, clap::Args)]
pub struct SummarizeArgs {
    /// Sweep folders written by `dbl sweep`.
    #[arg(value_name = "DIR", required = true)]
    pub dirs: Vec<PathBuf>,
}

/// Arguments of `dbl sweep compare`.
#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    /// Sweep folders written by `dbl sweep` (named by their folder names).
    #[arg(value_name = "DIR", required = true)]
    pub dirs: Vec<PathBuf>,
    /// Where to write compare.{md,json,png,svg}.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub out: PathBuf,
    /// A sweep whose anchor (branch 0) is the baseline: pairs every target
    /// with it by seed (e.g. the OSS anchor, trained on the plain triplet
    /// loss, against MSS's and OAS's targets), as a column of compare.md,
    /// `vs_baseline` in compare.json and a series of the picture's right panel.
    #[arg(long, value_name = "DIR")]
    pub baseline: Option<PathBuf>,
}

/// `--seeds` checked as the command line is parsed (a usage error naming
/// the flag, never blamed on the config file).
fn seeds_arg(s: &str) -> Result<String, String> {
    parse_seeds(s)
        .map(|_| s.to_string())
        .map_err(|e| e.to_string())
}

/// Runs `dbl sweep`.
pub fn run(args: Args) -> anyhow::Result<()> {
    if let Some(SweepCommand::Summarize(a)) = &args.command {
        for (dir, s) in a.dirs.iter().zip(compare::load(&a.dirs)?) {
            for f in summary::write(dir, &s)? {
                println!("wrote {}", f.display());
            }
        }
        return Ok(());
    }
    if let Some(SweepCommand::Compare(c)) = args.command {
        super::out_path::dir("--out", &c.out)?;
        let sums = compare::load(&c.dirs)?;
        let base = match &c.baseline {
            Some(b) => compare::load(std::slice::from_ref(b))?.pop(),
            None => None,
        };
        let (files, table) = compare::write(&c.out, &sums, base.as_ref())?;
        print!("{table}");
        for f in files {
            println!("wrote {}", f.display());
        }
        return Ok(());
    }
    let (Some(config), Some(seeds), Some(out)) = (&args.config, &args.seeds, &args.out) else {
        return Err(anyhow!("--config, --seeds and --out are required"));
    };
    let seeds = parse_seeds(seeds)?;
    let _lock = crate::sweep::lock::lock(out)?;
    let mut manifest = open_sweep(config, &args.set, out, None)?;
    if let Some(n) = args.extend_epochs {
        // Check the extended configuration before recording it.
        let probe = Manifest {
            epochs: Some(n),
            ..manifest.clone()
        };
        let c = seed_config(&probe, &config.display().to_string(), out, seeds[0], &[])?;
        if !matches!(c.regime, Regime::Baseline | Regime::Oss) {
            return Err(anyhow!(
                "--extend-epochs: a {} sweep cannot be extended (MSS's EMA schedule spans \
                 all epochs, OAS trains in two stages); start a new sweep with more epochs",
                c.regime.name()
            ));
        }
        manifest = open_sweep(config, &args.set, out, Some(n))?;
    }
    let what = config.display().to_string();
    let extra: Vec<String> = args
        .stop_after
        .map(|n| vec![format!("stop_after={n}")])
        .unwrap_or_default();
    // Validate every seed's configuration before training any.
    let cfgs = seeds
        .iter()
        .map(|&s| seed_config(&manifest, &what, out, s, &extra))
        .collect::<Result<Vec<_>, _>>()?;
    for c in &cfgs {
        crate::sweep::lock::check_recorded(out, c)?;
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(cfgs[0].threads)
        .build()
        .context("starting the worker threads")?;
    let mut finished = Vec::new();
    let mut stopped = None;
    for cfg in &cfgs {
        eprintln!("seed {}: {}", cfg.seed, seed_dir(out, cfg.seed).display());
        match pool.install(|| run_seed(cfg))? {
            Some(r) => {
                let line: Vec<String> = r
                    .branches
                    .iter()
                    .map(|b| format!("{} {:.1}", b.role, b.test.rsum))
                    .collect();
                println!("seed {}: test rSum {}", r.seed, line.join(", "));
                finished.push(r);
            }
            None => {
                stopped = Some(cfg.seed);
                break;
            }
        }
    }
    if !finished.is_empty() {
        let name = out
            .file_name()
            .map_or_else(|| out.display().to_string(), |n| n.to_string_lossy().into());
        let s = summary::summarize(&name, &finished).map_err(|m| anyhow!(m))?;
        if let Some(p) = &s.paired_rsum {
            println!(
                "target − anchor test rSum over {} seeds, best-on-dev checkpoints: {}",
                p.diffs.len(),
                summary::paired_text(p)
            );
        }
        if let Some(l) = &s.late {
            println!(
                "target − anchor test rSum over {} seeds, mean over the epochs after the burn-in: {}",
                l.paired.diffs.len(),
                estimator::late_text(l)
            );
        }
        for f in summary::write(out, &s)? {
            println!("wrote {}", f.display());
        }
    }
    if let Some(seed) = stopped {
        println!(
            "stopped during seed {seed} (--stop-after); run the same command again to continue"
        );
    }
    Ok(())
}
