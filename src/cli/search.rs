//! `dbl search`: queries an index folder from the command line — text →
//! images (`--text`) or image → captions (`--image-features F.npy --row N`,
//! region features `[N, R, D]`).

use std::path::PathBuf;

use anyhow::Context;

use super::bounds::{threads, usize_in};
use crate::data::npy::NpyF32;
use crate::serve::config::SHORTLIST;
use crate::serve::{Index, Models};

/// Arguments of `dbl search`.
#[derive(Debug, clap::Args)]
#[command(group = clap::ArgGroup::new("query").required(true).args(["text", "image_features"]))]
pub struct Args {
    /// Index folder written by `dbl index build`.
    #[arg(long, value_name = "IDX")]
    pub index: PathBuf,
    /// Text query: find the images it describes.
    #[arg(long, value_name = "TEXT")]
    pub text: Option<String>,
    /// Image query: region features `[N, R, D]` float32 `.npy`; find its captions.
    #[arg(long, value_name = "F.npy", requires = "row")]
    pub image_features: Option<PathBuf>,
    /// Row of `--image-features` to query with.
    #[arg(long, value_name = "N")]
    pub row: Option<usize>,
    /// Results to return.
    #[arg(long, value_name = "K", default_value_t = 10, value_parser = usize_in(SHORTLIST))]
    pub k: usize,
    /// Shortlist size: candidates the run's head re-ranks exactly (≥ k).
    #[arg(long, value_name = "K", default_value_t = 100, value_parser = usize_in(SHORTLIST))]
    pub shortlist: usize,
    /// Print JSON instead of lines.
    #[arg(long)]
    pub json: bool,
    /// Worker threads (0 = every core; at most 4 x the cores).
    #[arg(long, value_name = "T", default_value_t = 0, value_parser = threads)]
    pub threads: usize,
}

/// Runs `dbl search`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads)
        .build()
        .context("starting the worker threads")?;
    let models = Models::new();
    let idx = Index::open(&args.index, &models)?;
    let res = match (&args.text, &args.image_features) {
        (Some(t), _) => pool.install(|| idx.search_images(t, args.k, args.shortlist))?,
        (None, Some(f)) => {
            let feats = NpyF32::open_ndim(f, 3)?;
            let row = args.row.unwrap_or(0);
            if row >= feats.shape()[0] {
                anyhow::bail!(
                    "--row {row}: {} has rows 0..{}",
                    f.display(),
                    feats.shape()[0]
                );
            }
            if feats.shape()[1] != idx.manifest().regions {
                anyhow::bail!(
                    "{}: {} regions per image, the index was built with {}",
                    f.display(),
                    feats.shape()[1],
                    idx.manifest().regions
                );
            }
            pool.install(|| idx.search_captions(feats.row(row), args.k, args.shortlist))?
        }
        (None, None) => unreachable!("clap requires one query"),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&res)?);
    } else {
        if !res.unknown_words.is_empty() {
            eprintln!("not in the vocabulary (ignored): {:?}", res.unknown_words);
        }
        for (i, h) in res.hits.iter().enumerate() {
            match &h.caption {
                Some(c) => println!("{:>3}. {:>8.4}  row {:<6} {c}", i + 1, h.score, h.row),
                None => println!(
                    "{:>3}. {:>8.4}  row {:<6} id {}",
                    i + 1,
                    h.score,
                    h.row,
                    h.id
                ),
            }
        }
    }
    Ok(())
}
