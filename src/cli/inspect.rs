//! `dbl inspect DIR`: validates every split of a SCAN precomp folder (docs/method.md §6)
//! and prints a summary; `--epoch` also collates one training epoch and
//! reports batches/s and peak RSS. Library side: [`dbl::data::inspect`].

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::data::batch::TRAIN_BATCH_SIZE;
use crate::data::inspect::{Summary, open_all, peak_rss_bytes, run_epoch};
use crate::data::precomp::Split;
use crate::data::vocab::Vocab;

/// Arguments of `dbl inspect`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Dataset folder in the SCAN precomp layout: `{split}_ims.npy` (f32, [images, regions, dim])
    /// and `{split}_caps.txt` (one caption per line) for any of train, dev, test, testall.
    pub dir: PathBuf,
    /// Vocabulary JSON (authors' format: word2idx / idx2word / idx). Default: DIR/vocab.json.
    #[arg(long, value_name = "PATH")]
    pub vocab: Option<PathBuf>,
    /// Also collate one full shuffled training epoch of the train split (copying every image
    /// out of the memory map) and report batches/s and peak resident memory.
    #[arg(long)]
    pub epoch: bool,
    /// Batch size for `--epoch`.
    #[arg(long, default_value_t = TRAIN_BATCH_SIZE, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..), value_name = "N")]
    pub batch_size: usize,
    /// Shuffle seed for `--epoch` (epoch 0 of this seed is collated).
    #[arg(long, default_value_t = 0, value_name = "SEED")]
    pub seed: u64,
}

fn bar(len: u64, what: &str) -> ProgressBar {
    let pb = if std::io::stderr().is_terminal() {
        ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr())
    } else {
        ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::hidden())
    };
    let style =
        ProgressStyle::with_template("{msg:>16} [{bar:40}] {pos}/{len} {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
    pb.set_style(style);
    pb.set_message(what.to_string());
    pb
}

/// Runs `dbl inspect`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let vocab_path = args
        .vocab
        .clone()
        .unwrap_or_else(|| args.dir.join("vocab.json"));
    let vocab = Vocab::load(&vocab_path).context("loading the vocabulary")?;
    let datasets = open_all(&args.dir, &vocab)?;
    for ds in &datasets {
        let pb = bar(
            ds.n_images_in_file() as u64,
            &format!("finite {}", ds.split()),
        );
        let r = ds.check_finite_with(|n| pb.inc(n as u64));
        pb.finish_and_clear();
        r?;
    }
    let summary = Summary::new(&args.dir, &vocab_path, &vocab, &datasets, true);
    print!("{summary}");
    if args.epoch {
        let train = datasets
            .iter()
            .find(|d| d.split() == Split::Train)
            .with_context(|| {
                format!(
                    "--epoch needs the train split ({} and {})",
                    args.dir.join(Split::Train.ims_file()).display(),
                    args.dir.join(Split::Train.caps_file()).display()
                )
            })?;
        let n_batches = train.len().div_ceil(args.batch_size);
        let pb = bar(n_batches as u64, "epoch");
        let stats = run_epoch(train, args.batch_size, args.seed, 0, || pb.inc(1));
        pb.finish_and_clear();
        println!(
            "{stats} (batch size {}, seed {})",
            args.batch_size, args.seed
        );
    }
    if let Some(peak) = peak_rss_bytes() {
        println!(
            "peak resident memory: {:.1} MiB",
            peak as f64 / (1 << 20) as f64
        );
    }
    Ok(())
}
