//! `dbl synth`: writes the deterministic synthetic dataset (SCAN precomp layout, docs/method.md §6)
//! described in design.md "Synthetic data"; the generator is [`crate::data::synth`].

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::data::synth::{self, Preset, SynthConfig};

/// Size presets for `--preset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PresetArg {
    /// 2,000 / 200 / 200 images (≈ 0.7 GB).
    Small,
    /// 29,000 / 1,014 / 1,000 images, the Flickr30K precomp sizes (≈ 9.1 GB).
    F30k,
}

/// Arguments of `dbl synth`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output folder (created if missing; must be empty unless --force).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Split sizes to start from; --train/--dev/--test override them.
    #[arg(long, value_enum, default_value = "small")]
    pub preset: PresetArg,
    /// Training images [default: from --preset].
    #[arg(long, value_name = "N")]
    pub train: Option<usize>,
    /// Validation images [default: from --preset].
    #[arg(long, value_name = "N")]
    pub dev: Option<usize>,
    /// Test images [default: from --preset].
    #[arg(long, value_name = "N")]
    pub test: Option<usize>,
    /// Seed of the world and of every image.
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub seed: u64,
    /// Number of latent concepts (each a noun with 1-3 synonyms and a feature prototype)
    /// [default: 150, or 15 with --hard].
    #[arg(long, value_name = "C")]
    pub concepts: Option<usize>,
    /// The harder variant: 15 concepts, so many images share what their captions
    /// name and converged models stay well below rSum 600.
    #[arg(long)]
    pub hard: bool,
    /// Non-zero dimensions of each concept prototype.
    #[arg(long, value_name = "K", default_value_t = SynthConfig::default().proto_nnz)]
    pub proto_nnz: usize,
    /// Mean prototype value (higher: concepts stand out more from the noise).
    #[arg(long, value_name = "X", default_value_t = SynthConfig::default().signal)]
    pub signal: f32,
    /// Standard deviation of the noise in concept regions (before ReLU).
    #[arg(long, value_name = "X", default_value_t = SynthConfig::default().concept_noise)]
    pub concept_noise: f32,
    /// Standard deviation of background regions (before ReLU).
    #[arg(long, value_name = "X", default_value_t = SynthConfig::default().background_noise)]
    pub background_noise: f32,
    /// Largest scale of the faint random concept in half of the background regions.
    #[arg(long, value_name = "X", default_value_t = SynthConfig::default().clutter)]
    pub clutter: f32,
    /// Write into a non-empty --out, replacing files with the same names.
    #[arg(long)]
    pub force: bool,
}

/// Runs `dbl synth`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let preset = match args.preset {
        PresetArg::Small => Preset::Small,
        PresetArg::F30k => Preset::F30k,
    };
    let base = SynthConfig::preset(preset);
    let base = if args.hard { base.hard() } else { base };
    let cfg = SynthConfig {
        train: args.train.unwrap_or(base.train),
        dev: args.dev.unwrap_or(base.dev),
        test: args.test.unwrap_or(base.test),
        seed: args.seed,
        concepts: args.concepts.unwrap_or(base.concepts),
        proto_nnz: args.proto_nnz,
        signal: args.signal,
        concept_noise: args.concept_noise,
        background_noise: args.background_noise,
        clutter: args.clutter,
        ..base
    };
    cfg.validate()?;

    let out = &args.out;
    if out.exists() {
        if !out.is_dir() {
            bail!("--out {}: exists and is not a directory", out.display());
        }
        let non_empty = std::fs::read_dir(out)
            .with_context(|| format!("--out {}: cannot list the folder", out.display()))?
            .next()
            .is_some();
        if non_empty && !args.force {
            bail!(
                "--out {}: folder is not empty; pass --force to write into it anyway",
                out.display()
            );
        }
    } else {
        std::fs::create_dir_all(out)
            .with_context(|| format!("--out {}: cannot create the folder", out.display()))?;
    }

    let total = (cfg.train + cfg.dev + cfg.test) as u64;
    let bar = ProgressBar::new(total);
    if std::io::stderr().is_terminal() {
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} images ({eta} left)",
            )
            .expect("static progress template"),
        );
    } else {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    let start = Instant::now();
    let summary = synth::generate(&cfg, out, &mut |n| bar.set_position(n as u64))
        .with_context(|| format!("writing the synthetic dataset to {}", out.display()))?;
    bar.finish_and_clear();

    println!(
        "synthetic dataset (seed {}, {} concepts) in {}:",
        cfg.seed,
        cfg.concepts,
        out.display()
    );
    for (split, n, ims, caps) in &summary.splits {
        println!(
            "  {:<5} {} [{n}, {}, {}] float32, {} ({} captions)",
            split.name(),
            ims.display(),
            cfg.regions,
            cfg.dim,
            caps.display(),
            n * synth::CAPTIONS_PER_IMAGE
        );
    }
    println!(
        "  vocab {} ({} words)",
        summary.vocab.0.display(),
        summary.vocab.1
    );
    println!(
        "wrote {:.2} GB in {:.1} s",
        summary.bytes as f64 / 1e9,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
