//! `dbl eval`: R@1/5/10, medr, meanr and rSum (docs/method.md §8) from one or more
//! precomputed image x caption similarity matrices (`.npy`, `<f4`,
//! `[n_images, n_captions]`, rows = images, caption k belongs to image
//! k / (n_captions / n_images)). Several matrices are averaged first, the
//! SGR + SAF ensemble habit of the authors' evaluation scripts.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rayon::prelude::*;

use crate::data::npy::NpyF32;
use crate::eval::{Directional, Protocol, SimMatrix};

/// Arguments of `dbl eval`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Similarity matrices to evaluate: little-endian float32 `.npy` files of
    /// shape [n_images, n_captions] (rows are images; caption k belongs to
    /// image k / captions-per-image). With several files, the element-wise
    /// mean is evaluated (model ensembling); all must have the same shape.
    #[arg(long, value_name = "NPY", num_args = 1.., required = true)]
    pub sims: Vec<PathBuf>,

    /// Evaluation protocol: `f30k` scores the whole matrix (of any shape);
    /// `coco5k` scores the whole 5,000 x 25,000 MSCOCO testall matrix and
    /// `coco1k` averages the metrics of its five 1,000-image diagonal folds
    /// (both refuse any other shape).
    #[arg(long, value_enum)]
    pub protocol: Protocol,

    /// Print the metrics as one JSON object
    /// `{"i2t": {"r1","r5","r10","medr","meanr"}, "t2i": {...}, "rsum"}`
    /// instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Opens `path` as a 2-D float32 matrix and refuses NaN / infinite scores.
fn open_matrix(path: &Path) -> anyhow::Result<NpyF32> {
    let a = NpyF32::open_ndim(path, 2)?;
    let cols = a.shape()[1];
    if let Some(pos) = a.data().par_iter().position_first(|x| !x.is_finite()) {
        bail!(
            "{}: similarity[{}, {}] is {}; scores must be finite",
            path.display(),
            pos / cols,
            pos % cols,
            a.data()[pos]
        );
    }
    Ok(a)
}

/// Element-wise mean of equally shaped matrices, accumulated in f64 and
/// rounded once (for two matrices this equals NumPy's float32 `(a + b) / 2`).
fn average(mats: &[NpyF32]) -> Vec<f32> {
    let n = mats.len() as f64;
    let mut out = vec![0.0f32; mats[0].data().len()];
    out.par_chunks_mut(1 << 16)
        .enumerate()
        .for_each(|(c, chunk)| {
            let start = c << 16;
            for (t, o) in chunk.iter_mut().enumerate() {
                let sum = mats
                    .iter()
                    .fold(0.0f64, |acc, m| acc + m.data()[start + t] as f64);
                *o = (sum / n) as f32;
            }
        });
    out
}

fn spinner(msg: &str) -> ProgressBar {
    let pb = ProgressBar::new_spinner();
    if !std::io::stderr().is_terminal() {
        pb.set_draw_target(ProgressDrawTarget::hidden());
    }
    pb.set_style(ProgressStyle::with_template("{spinner} {msg} [{elapsed}]").expect("template"));
    pb.set_message(msg.to_string());
    pb.enable_steady_tick(std::time::Duration::from_millis(120));
    pb
}

fn table_row(name: &str, d: &Directional) -> String {
    format!(
        "{name:<6} {:>8.2} {:>8.2} {:>8.2} {:>7.1} {:>9.2}",
        d.r1, d.r5, d.r10, d.medr, d.meanr
    )
}

/// Runs `dbl eval`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let pb = spinner("loading similarity matrices");
    let mats = args
        .sims
        .iter()
        .map(|p| open_matrix(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let first = &mats[0];
    for m in &mats[1..] {
        if m.shape() != first.shape() {
            bail!(
                "shape mismatch: {} is {:?} but {} is {:?}; ensembled matrices must have the \
                 same shape",
                first.path().display(),
                first.shape(),
                m.path().display(),
                m.shape()
            );
        }
    }
    let (n_img, n_cap) = (first.shape()[0], first.shape()[1]);
    let source = if mats.len() == 1 {
        first.path().display().to_string()
    } else {
        let names: Vec<String> = mats
            .iter()
            .map(|m| m.path().display().to_string())
            .collect();
        format!("mean of {}", names.join(", "))
    };
    let averaged;
    let data: &[f32] = if mats.len() == 1 {
        first.data()
    } else {
        pb.set_message(format!("averaging {} matrices", mats.len()));
        averaged = average(&mats);
        &averaged
    };
    pb.set_message("ranking");
    let m = SimMatrix::new(data, n_img, n_cap).with_context(|| source.clone())?;
    let ev = args.protocol.evaluate(&m).with_context(|| source.clone())?;
    pb.finish_and_clear();

    if args.json {
        println!("{}", serde_json::to_string_pretty(&ev.metrics)?);
        return Ok(());
    }
    println!(
        "protocol {}: {} images x {} captions ({} per image), {}",
        args.protocol,
        n_img,
        n_cap,
        m.captions_per_image(),
        source
    );
    let header = format!(
        "{:<6} {:>8} {:>8} {:>8} {:>7} {:>9}",
        "", "R@1", "R@5", "R@10", "medr", "meanr"
    );
    for (f, fm) in ev.folds.iter().enumerate() {
        println!("fold {f}: rSum {:.2}", fm.rsum);
        println!("{}", table_row("  i2t", &fm.i2t));
        println!("{}", table_row("  t2i", &fm.t2i));
    }
    if !ev.folds.is_empty() {
        println!("mean of {} folds:", ev.folds.len());
    }
    println!("{header}");
    println!("{}", table_row("i2t", &ev.metrics.i2t));
    println!("{}", table_row("t2i", &ev.metrics.t2i));
    println!("rSum {:.2}", ev.metrics.rsum);
    Ok(())
}
