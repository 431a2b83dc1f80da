//! `dbl explain`: why did a caption match an image? For one image (a row of
//! a split, or region features from a `.npy`) and one caption (text, or a
//! caption row of the split) under a trained run: the score, each word's
//! contribution to it and, for scan-ave / sgr / saf, the word-to-region
//! attention the head used ([`crate::model::explain`], docs/method.md §16).
//! The image is encoded in the same chunk as `dbl score` encodes it, so the
//! score printed is `dbl score`'s for that pair.
//!
//! With `--out DIR`: `DIR/explain.json`, `DIR/attention.{png,svg}` (words ×
//! regions heatmap, words labelled with their contributions) and, with
//! `--image FILE` and region boxes (`--boxes`, default the split's
//! `{split}_boxes.npy`, `[N, R, 4]`), `DIR/regions.png`: the top regions of
//! the most contributing words drawn over the photo.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use super::checkpoint_args::CheckpointArgs;
use super::score::ScoreSplit;
use crate::data::npy::NpyF32;
use crate::data::precomp::{Precomp, Split};
use crate::infer::LoadedMatcher;
use crate::infer::run::RunDir;
use crate::model::encode::{ENCODE_CHUNK, caption_chunk};
use crate::model::explain::{Explanation, explain_encoded, words_of};
use crate::model::matcher::encode_image_rows;
use crate::plot::heatmap::Heatmap;
use crate::plot::regions::{WordBoxes, draw_regions};

/// Arguments of `dbl explain`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub ck: CheckpointArgs,
    /// Split of the run's dataset the rows refer to.
    #[arg(long, value_enum, default_value_t = ScoreSplit::Test)]
    pub split: ScoreSplit,
    /// The image: a row of the split's `{split}_ims.npy`.
    #[arg(
        long,
        value_name = "ROW",
        required_unless_present = "features",
        conflicts_with = "features"
    )]
    pub image_row: Option<usize>,
    /// The image: region features, a float32 `.npy` of shape [R, D] or [1, R, D].
    #[arg(long, value_name = "NPY")]
    pub features: Option<PathBuf>,
    /// The caption as text (tokenised with the run's vocabulary).
    #[arg(
        long,
        value_name = "TEXT",
        required_unless_present = "caption_row",
        conflicts_with = "caption_row"
    )]
    pub caption: Option<String>,
    /// The caption: a row of the split's `{split}_caps.txt`.
    #[arg(long, value_name = "ROW")]
    pub caption_row: Option<usize>,
    /// Write explain.json, attention.{png,svg} (and regions.png) into this folder.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// A photo of the image (PNG or JPEG) to draw the top regions over (needs boxes).
    #[arg(long, value_name = "FILE")]
    pub image: Option<PathBuf>,
    /// Region boxes, float32 `.npy` [N, R, 4] (x1, y1, x2, y2) indexed by image row
    /// (default: the split's `{split}_boxes.npy`); or [R, 4] for `--features`.
    #[arg(long, value_name = "NPY")]
    pub boxes: Option<PathBuf>,
    /// Regions listed (and drawn) per word.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub top: usize,
    /// Print the explanation as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Region features of one image from `path`: → (features `[R, D]`, R).
fn read_features(path: &Path) -> anyhow::Result<(Vec<f32>, usize)> {
    let map = NpyF32::open(path).with_context(|| format!("--features {}", path.display()))?;
    match map.shape() {
        [r, _] => Ok((map.data().to_vec(), *r)),
        [1, r, _] => Ok((map.data().to_vec(), *r)),
        s => bail!(
            "--features {}: shape {s:?}; expected [R, D] or [1, R, D] (one image)",
            path.display()
        ),
    }
}

/// The boxes of image `row` (or of the only image) from `path`: `[R][4]`.
fn read_boxes(path: &Path, row: Option<usize>, regions: usize) -> anyhow::Result<Vec<[f32; 4]>> {
    let map = NpyF32::open(path).with_context(|| format!("boxes {}", path.display()))?;
    let flat = match (map.shape(), row) {
        ([n, r, 4], Some(i)) if *r == regions && i < *n => map.row(i).to_vec(),
        ([r, 4], None) if *r == regions => map.data().to_vec(),
        (s, _) => bail!(
            "boxes {}: shape {s:?}; expected [N, {regions}, 4] indexed by --image-row \
             (or [{regions}, 4] with --features)",
            path.display()
        ),
    };
    Ok(flat
        .chunks_exact(4)
        .map(|c| [c[0], c[1], c[2], c[3]])
        .collect())
}

/// Runs `dbl explain`.
pub fn run(args: Args) -> anyhow::Result<()> {
    if let Some(d) = &args.out {
        super::out_path::dir("--out", d)?;
    }
    let run = RunDir::open(&args.ck.run)?;
    let m = LoadedMatcher::from_run(&args.ck.run, args.ck.branch, &args.ck.tag)?;
    let split = Split::from(args.split);
    let ds = || {
        Precomp::open(&run.data, split, m.vocab()).with_context(|| {
            format!(
                "opening the run's {} split in {}",
                split.name(),
                run.data.display()
            )
        })
    };
    let matcher = m.matcher();
    let d = matcher.embed_dim();
    // The image, encoded in the chunk `dbl score` encodes it in (same bits).
    let (img, regions, what_image) = match (&args.image_row, &args.features) {
        (Some(i), _) => {
            let ds = ds()?;
            let n = ds.n_images();
            if *i >= n {
                bail!(
                    "--image-row {i}: the {} split has rows 0..{n}",
                    split.name()
                );
            }
            let start = i / ENCODE_CHUNK * ENCODE_CHUNK;
            let chunk = start..(start + ENCODE_CHUNK).min(n);
            let enc = encode_image_rows(matcher, ds.images(), chunk, ds.n_regions(), &|_| {});
            let per = matcher.image_rows(ds.n_regions()) * d;
            let at = (i - start) * per;
            (
                enc[at..at + per].to_vec(),
                ds.n_regions(),
                format!("{} image {i}", split.name()),
            )
        }
        (None, Some(path)) => {
            let (x, r) = read_features(path)?;
            m.check_features(&x, r)?;
            (matcher.encode_images(&x, r), r, path.display().to_string())
        }
        (None, None) => bail!("give --image-row or --features"),
    };
    let ids: Vec<u32> = match (&args.caption, args.caption_row) {
        (Some(text), _) => m.tokens(text)?.ids,
        (None, Some(j)) => {
            let ds = ds()?;
            if j >= ds.len() {
                bail!(
                    "--caption-row {j}: the {} split has captions 0..{}",
                    split.name(),
                    ds.len()
                );
            }
            ds.caption(j).to_vec()
        }
        (None, None) => bail!("give --caption or --caption-row"),
    };
    // A caption of the split is encoded with the captions `dbl score`
    // encodes it with (same bits); a text alone, as a search encodes it.
    let (cap, at) = match args.caption_row {
        Some(j) if args.caption.is_none() => {
            let ds = ds()?;
            let (chunk, at) = caption_chunk(ds.len(), |k| ds.caption_len(k), j);
            (
                matcher.encode_captions(chunk.len(), &|t| ds.caption(chunk[t])),
                at,
            )
        }
        _ => (matcher.encode_captions(1, &|_| &ids), 0),
    };
    let cap_rows = &cap.rows[cap.offsets[at] * d..cap.offsets[at + 1] * d];
    let pair = explain_encoded(matcher, &img, regions, cap_rows, ids.len())?;
    let words = words_of(m.vocab(), &ids);
    let ex = Explanation::new(run.backbone_name(), words, regions, pair, args.top);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&ex)?);
    } else {
        print_table(&ex, &what_image);
    }
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).with_context(|| format!("--out {}", dir.display()))?;
        let path = dir.join("explain.json");
        crate::store::write_atomic(&path, serde_json::to_string_pretty(&ex)?.as_bytes())?;
        eprintln!("wrote {}", path.display());
        let title = title(&ex, &what_image);
        if let Some(h) = heatmap(&ex, &title) {
            for f in h.write(&dir.join("attention"))? {
                eprintln!("wrote {}", f.display());
            }
        }
        if let Some(photo) = &args.image {
            let boxes_path = match (&args.boxes, args.image_row) {
                (Some(p), _) => p.clone(),
                (None, Some(_)) => run.data.join(format!("{}_boxes.npy", split.name())),
                (None, None) => bail!("--image with --features needs --boxes ([R, 4])"),
            };
            let boxes = read_boxes(&boxes_path, args.image_row, regions)?;
            let out = dir.join("regions.png");
            draw_regions(photo, &title, &word_boxes(&ex, &boxes, 5), &out)?;
            eprintln!("wrote {}", out.display());
        }
    } else if args.image.is_some() {
        bail!("--image draws into --out DIR: give --out");
    }
    Ok(())
}

/// `scan-ave: "a dog runs" × test image 3, score 0.5312`.
fn title(ex: &Explanation, what_image: &str) -> String {
    let text: Vec<&str> = ex
        .words
        .iter()
        .map(String::as_str)
        .filter(|w| !matches!(*w, "<start>" | "<end>"))
        .collect();
    let mut caption = text.join(" ");
    if caption.chars().count() > 60 {
        caption = caption.chars().take(57).collect::<String>() + "...";
    }
    format!(
        "{}: \"{caption}\" × {what_image}, score {:.4}",
        ex.backbone, ex.pair.score
    )
}

/// The words × regions heatmap (none for vse, which has no attention).
fn heatmap(ex: &Explanation, title: &str) -> Option<Heatmap> {
    let att = ex.pair.attention.as_ref()?;
    Some(Heatmap {
        title: title.to_string(),
        x_label: "image region".into(),
        y_label: "word (its part of the logit)".into(),
        value_label: "attention α (softmax over regions)".into(),
        row_labels: ex
            .words
            .iter()
            .zip(&ex.pair.word_contributions)
            .map(|(w, c)| format!("{w} ({c:+.3})"))
            .collect(),
        col_labels: (0..ex.regions).map(|r| r.to_string()).collect(),
        values: att.clone(),
    })
}

/// The `n` most contributing words with their top regions' boxes.
fn word_boxes(ex: &Explanation, boxes: &[[f32; 4]], n: usize) -> Vec<WordBoxes> {
    let mut order: Vec<usize> = (0..ex.words.len())
        .filter(|&k| !matches!(ex.words[k].as_str(), "<start>" | "<end>"))
        .collect();
    let c = &ex.pair.word_contributions;
    order.sort_by(|&a, &b| c[b].total_cmp(&c[a]).then(a.cmp(&b)));
    order
        .into_iter()
        .take(n)
        .map(|k| {
            let top = &ex.top_regions[k];
            let list: Vec<String> = top.iter().map(|r| r.region.to_string()).collect();
            WordBoxes {
                label: format!(
                    "{} ({:+.3}): regions {}",
                    ex.words[k],
                    c[k],
                    list.join(", ")
                ),
                boxes: top.iter().map(|r| boxes[r.region]).collect(),
            }
        })
        .collect()
}

fn print_table(ex: &Explanation, what_image: &str) {
    println!("{}", title(ex, what_image));
    println!(
        "logit {:.4} = Σ contributions + constant {:+.4}; score = {}(logit)",
        ex.logit,
        ex.pair.constant,
        format!("{:?}", ex.pair.link).to_lowercase()
    );
    println!("contributions: {}", ex.pair.method);
    if let Some(g) = ex.pair.global_contribution {
        println!("{:<16} {:>+9.4}", "(global node)", g);
    }
    for (k, w) in ex.words.iter().enumerate() {
        let c = ex.pair.word_contributions.get(k).copied();
        let top: Vec<String> = ex
            .top_regions
            .get(k)
            .into_iter()
            .flatten()
            .map(|r| format!("{} ({:.2})", r.region, r.attention))
            .collect();
        match c {
            Some(c) => println!("{w:<16} {c:>+9.4}   top regions: {}", top.join(", ")),
            None => println!("{w}"),
        }
    }
    for f in ex.pair.features.iter().take(10) {
        println!("feature {:<8} {:>+9.4}", f.feature, f.contribution);
    }
}
