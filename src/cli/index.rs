//! `dbl index build`: encodes a gallery (region features, optionally captions)
//! with a trained run into an index folder for `dbl search` / `dbl serve`
//! (see `crate::serve::manifest` for the files).

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::bounds::{threads, usize_in};
use super::checkpoint_args::CheckpointArgs;
use crate::data::npy::{NpyF32, write_f32};
use crate::serve::build::{ANN_THRESHOLD, BuildSpec, build};
use crate::serve::config::SHORTLIST;
use crate::serve::recall::recall_table;
use crate::serve::recall_plot::write_recall_charts;
use crate::serve::{Index, Models};

/// Arguments of `dbl index`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

/// `dbl index` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Encode a gallery once and write an index folder (memory-mapped arrays + manifest.json).
    Build(BuildArgs),
    /// R@1/5/10 of two-stage search at shortlist sizes K against exact full ranking
    /// (the index's own captions and images as queries; c captions per image).
    Recall(RecallArgs),
}

/// Arguments of `dbl index recall`.
#[derive(Debug, clap::Args)]
pub struct RecallArgs {
    /// Index folder built with --captions from a split (c captions per image).
    #[arg(long, value_name = "IDX")]
    pub index: PathBuf,
    /// Shortlist sizes to measure.
    #[arg(
        long,
        value_name = "K,...",
        value_delimiter = ',',
        default_value = "20,50,100,200",
        value_parser = usize_in(SHORTLIST)
    )]
    pub k: Vec<usize>,
    /// Worker threads (0 = every core; at most 4 x the cores).
    #[arg(long, value_name = "T", default_value_t = 0, value_parser = threads)]
    pub threads: usize,
    /// Exact scores of the whole gallery: read from this `.npy` ([n_images, n_captions])
    /// if it exists, else computed and written there (reuse across indexes of one run).
    #[arg(long, value_name = "S.npy")]
    pub sims: Option<PathBuf>,
    /// Also draw the trade-off: STEM_t2i.{png,svg} and STEM_i2t.{png,svg}.
    #[arg(long, value_name = "STEM")]
    pub plot: Option<PathBuf>,
}

/// Arguments of `dbl index build`.
#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    #[command(flatten)]
    pub ck: CheckpointArgs,
    /// Gallery images: region features `[N, R, D]` float32 `.npy` (e.g. `test_ims.npy`).
    #[arg(long, value_name = "X_ims.npy")]
    pub images: PathBuf,
    /// Gallery captions, one per line (e.g. `test_caps.txt`); enables image → text search.
    #[arg(long, value_name = "X_caps.txt")]
    pub captions: Option<PathBuf>,
    /// One id per image row (default: the row numbers).
    #[arg(long, value_name = "FILE")]
    pub ids: Option<PathBuf>,
    /// A vse run whose embeddings make the shortlist (default: the run's own encoders,
    /// mean-pooled — a weak shortlist for scan-ave, see BENCHMARKS.md "Retrieval").
    #[arg(long, value_name = "RUN_DIR")]
    pub shortlist_run: Option<PathBuf>,
    /// Galleries of at least this many items get an HNSW shortlist; smaller ones brute force.
    #[arg(long, value_name = "N", default_value_t = ANN_THRESHOLD, value_parser = usize_in(1..=usize::MAX))]
    pub ann_threshold: usize,
    /// Output folder (created; must not already hold an index).
    #[arg(long, value_name = "IDX")]
    pub out: PathBuf,
    /// Worker threads (0 = every core; at most 4 x the cores).
    #[arg(long, value_name = "T", default_value_t = 0, value_parser = threads)]
    pub threads: usize,
}

/// Runs `dbl index`.
pub fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        Command::Build(a) => run_build(a),
        Command::Recall(a) => run_recall(a),
    }
}

fn run_recall(a: RecallArgs) -> anyhow::Result<()> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(a.threads)
        .build()
        .context("starting the worker threads")?;
    let models = Models::new();
    let idx = Index::open(&a.index, &models)?;
    let m = idx.manifest();
    let shape = [m.n_images, m.n_captions];
    let sims = match &a.sims {
        Some(p) if p.exists() => {
            let s = NpyF32::open_ndim(p, 2)?;
            if s.shape() != shape {
                anyhow::bail!(
                    "--sims {}: shape {:?}, the index needs {shape:?}",
                    p.display(),
                    s.shape()
                );
            }
            s.data().to_vec()
        }
        _ => {
            let s = pool.install(|| idx.score_all())?;
            if let Some(p) = &a.sims {
                write_f32(p, &shape, &s)?;
            }
            s
        }
    };
    let rows = pool.install(|| recall_table(&idx, &sims, &a.k))?;
    let shortlist = m
        .shortlist_model
        .as_ref()
        .map_or("own", |s| s.backbone.as_str());
    if let Some(stem) = &a.plot {
        let hnsw = if m.n_images >= m.ann_threshold {
            "HNSW"
        } else {
            "exact"
        };
        let what = format!("{}, {shortlist} {hnsw} shortlist", m.model.backbone);
        for p in write_recall_charts(&rows, &what, stem)? {
            eprintln!("wrote {}", p.display());
        }
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({
            "index": a.index,
            "n_images": m.n_images,
            "n_captions": m.n_captions,
            "backbone": m.model.backbone,
            "shortlist": shortlist,
            "hnsw_images": m.n_images >= m.ann_threshold,
            "hnsw_captions": m.n_captions >= m.ann_threshold,
            "rows": rows,
        }))?
    );
    Ok(())
}

/// `dbl index build`, under `mpirun -n N` with the encoding split across the
/// ranks (rank 0 writes and prints).
fn run_build(a: BuildArgs) -> anyhow::Result<()> {
    let comm = crate::dist::world()?;
    crate::dist::world::abort_on_error(comm.as_ref(), || build_on(a, comm.as_ref()))
}

fn build_on(a: BuildArgs, comm: &dyn crate::dist::Comm) -> anyhow::Result<()> {
    let spec = BuildSpec {
        run: a.ck.run,
        branch: a.ck.branch,
        tag: a.ck.tag,
        shortlist_run: a.shortlist_run,
        images: a.images,
        captions: a.captions,
        ids: a.ids,
        out: a.out,
        ann_threshold: a.ann_threshold,
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(a.threads)
        .build()
        .context("starting the worker threads")?;
    let pb = ProgressBar::new(0);
    if comm.rank() != 0 || !std::io::stderr().is_terminal() {
        pb.set_draw_target(ProgressDrawTarget::hidden());
    }
    pb.set_style(
        ProgressStyle::with_template("{msg} {bar:30} {pos}/{len} [{elapsed_precise}]")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let t = std::time::Instant::now();
    let m = pool.install(|| {
        build(
            &spec,
            &|done, total, what| {
                pb.set_length(total as u64);
                pb.set_position(done as u64);
                pb.set_message(what.to_string());
            },
            comm,
        )
    })?;
    pb.finish_and_clear();
    if comm.rank() != 0 {
        return Ok(());
    }
    if m.shortlist_model.is_none() && m.model.backbone == "scan-ave" {
        eprintln!(
            "warning: the shortlist comes from scan-ave's own encoders, mean-pooled, which \
             were not trained for cosine search (BENCHMARKS.md: text → image R@1 66 against \
             83 exact at K = 100); build with --shortlist-run VSE_RUN, or search with K close \
             to the gallery size"
        );
    }
    println!(
        "index {}: {} images ({} rows x {}), {} captions, backbone {}, shortlist {} (dim {}), built in {:.1} s",
        spec.out.display(),
        m.n_images,
        m.image_rows,
        m.embed_dim,
        m.n_captions,
        m.model.backbone,
        m.shortlist_model
            .as_ref()
            .map_or("own encoders".to_string(), |s| format!(
                "{} run",
                s.backbone
            )),
        m.shortlist_dim,
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
