//! `dbl index build`: encodes a gallery once into an index folder
//! ([`super::manifest`] lists the files). Images are encoded chunk by chunk
//! from the memory-mapped `_ims.npy` and streamed to `images.npy`; captions in
//! groups of [`CAPTION_GROUP`] (each group length-sorted inside, as
//! `Matcher::encode_captions` does; a caption's output does not depend on its
//! group) and streamed to `caption_rows.npy`. Peak memory is one chunk plus
//! the global embeddings. Non-finite encodings are refused; at the end every
//! file's size and SHA-256 go into the manifest ([`super::files`]).
//!
//! Across the ranks of a [`Comm`] (`mpirun -n N dbl index build`), chunk
//! (group) j is encoded by rank j mod N; each round's N chunks are gathered
//! in order and rank 0 alone writes: the same files, bit for bit, as one
//! process (docs/method.md §14).

use std::io::Write;
use std::path::{Path, PathBuf};

use super::ServeError;
use super::files::sum_file;
use super::manifest::{FORMAT, Manifest, ModelRef};
use super::shortlist::build_hnsw;
use crate::data::npy::{NpyF32, NpyWriter};
use crate::data::precomp::read_captions;
use crate::dist::Comm;
use crate::infer::LoadedMatcher;
use crate::infer::global::global_rows;
use crate::model::encode::ENCODE_CHUNK;
use crate::model::encode::uniform_offsets;

/// Captions encoded per group while building.
pub const CAPTION_GROUP: usize = 8192;

/// Default gallery size from which the shortlist uses HNSW.
pub const ANN_THRESHOLD: usize = 10_000;

/// What to build.
#[derive(Debug, Clone)]
pub struct BuildSpec {
    /// The re-ranking model's run, branch (None = last) and tag.
    pub run: PathBuf,
    /// Branch.
    pub branch: Option<usize>,
    /// Checkpoint tag.
    pub tag: String,
    /// A second run whose (pooled) encoders shortlist; None = the run's own.
    pub shortlist_run: Option<PathBuf>,
    /// `[N, R, D]` region features.
    pub images: PathBuf,
    /// One caption per line (optional).
    pub captions: Option<PathBuf>,
    /// One id per image row (optional).
    pub ids: Option<PathBuf>,
    /// Output folder (created; must not hold a manifest).
    pub out: PathBuf,
    /// HNSW from this many items.
    pub ann_threshold: usize,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ServeError + '_ {
    move |source| ServeError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// `run` as the index folder `out` records it (relative to `out` when given
/// relative, [`crate::store::paths::record`]; `Manifest::load` resolves it).
fn model_ref(out: &Path, run: &Path, branch: usize, tag: &str, m: &LoadedMatcher) -> ModelRef {
    ModelRef {
        run: crate::store::paths::record(out, run),
        branch,
        tag: tag.to_string(),
        backbone: m.config().backbone.name().to_string(),
        weight_hash: m.weight_hash().to_string(),
    }
}

/// The shortlist side: the run's own encoders or a second model.
enum Side<'a> {
    Own,
    Other(&'a LoadedMatcher),
}

/// Builds the index across the ranks of `comm` (rank 0 writes);
/// `progress(done, total, what)` reports progress.
pub fn build(
    spec: &BuildSpec,
    progress: &dyn Fn(usize, usize, &str),
    comm: &dyn Comm,
) -> Result<Manifest, ServeError> {
    let lead = comm.rank() == 0;
    let run = crate::infer::run::RunDir::open(&spec.run)?;
    let k = run.branch(spec.branch)?;
    let main = LoadedMatcher::from_run(&spec.run, Some(k), &spec.tag)?;
    let sl_model = match &spec.shortlist_run {
        Some(p) => Some(LoadedMatcher::from_run(p, None, "best")?),
        None => None,
    };
    let side = match &sl_model {
        Some(m) => Side::Other(m),
        None => Side::Own,
    };
    let m = main.matcher();
    let feats = NpyF32::open_ndim(&spec.images, 3)?;
    let (n_img, regions, dim) = (feats.shape()[0], feats.shape()[1], feats.shape()[2]);
    if dim != m.img_dim() {
        return Err(ServeError::Usage(format!(
            "{}: features of width {dim}, the model takes {}",
            spec.images.display(),
            m.img_dim()
        )));
    }
    if n_img == 0 || regions == 0 {
        return Err(ServeError::Usage(format!(
            "{}: empty gallery (shape {:?})",
            spec.images.display(),
            feats.shape()
        )));
    }
    let ids = match &spec.ids {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(io(p))?;
            let ids: Vec<&str> = text.lines().collect();
            if let Some(i) = ids.iter().position(|id| id.trim().is_empty()) {
                return Err(ServeError::Usage(format!(
                    "{}: line {} is empty (every image needs an id)",
                    p.display(),
                    i + 1
                )));
            }
            if ids.len() != n_img {
                return Err(ServeError::Usage(format!(
                    "{}: {} ids for {n_img} images (one id per line expected)",
                    p.display(),
                    ids.len()
                )));
            }
            Some(text)
        }
        None => None,
    };
    crate::os_error::check_out_dir(&spec.out).map_err(|w| {
        ServeError::Usage(format!(
            "--out {}: {w}; an index is a folder (created when missing)",
            spec.out.display()
        ))
    })?;
    if spec.out.join("manifest.json").exists() {
        return Err(ServeError::Usage(format!(
            "{}: already holds an index (manifest.json); choose a new --out",
            spec.out.display()
        )));
    }
    // Every rank has checked the output folder before rank 0 creates it.
    comm.barrier();
    let out = |f: &str| spec.out.join(f);
    if lead {
        std::fs::create_dir_all(&spec.out).map_err(io(&spec.out))?;
        if let Some(text) = &ids {
            std::fs::write(out("ids.txt"), text).map_err(io(&out("ids.txt")))?;
        }
    }
    let d = m.embed_dim();
    let rows = m.image_rows(regions);

    // Images.
    let mut w = match lead {
        true => Some(NpyWriter::create(out("images.npy"), &[n_img, rows, d])?),
        false => None,
    };
    let mut img_global = Vec::new();
    let starts: Vec<usize> = (0..n_img).step_by(ENCODE_CHUNK).collect();
    for round in starts.chunks(comm.size()) {
        let Some(&start) = round.get(comm.rank()) else {
            gather_round(comm, &[], &[], w.as_mut(), &mut img_global)?;
            continue;
        };
        let end = (start + ENCODE_CHUNK).min(n_img);
        let x: Vec<f32> = (start..end)
            .flat_map(|i| feats.row(i).iter().copied())
            .collect();
        if let Some(i) = x.iter().position(|v| !v.is_finite()) {
            return Err(ServeError::Usage(format!(
                "{}: image {} holds a non-finite value",
                spec.images.display(),
                start + i / feats.row_len()
            )));
        }
        let reps = m.encode_images(&x, regions);
        let global = match side {
            Side::Own => global_rows(&reps, &uniform_offsets(end - start, rows), d),
            Side::Other(s) => {
                let g = s.matcher().encode_images(&x, regions);
                let gd = s.matcher().embed_dim();
                global_rows(
                    &g,
                    &uniform_offsets(end - start, g.len() / gd / (end - start)),
                    gd,
                )
            }
        };
        let (per, gper) = (reps.len() / (end - start), global.len() / (end - start));
        let finite = |j: usize| {
            reps[j * per..(j + 1) * per]
                .iter()
                .chain(&global[j * gper..(j + 1) * gper])
                .all(|v| v.is_finite())
        };
        if let Some(row) = (0..end - start).find(|&j| !finite(j)) {
            return Err(ServeError::Usage(format!(
                "{}: image {} encodes to a non-finite value (features too large for the model?)",
                spec.images.display(),
                start + row
            )));
        }
        feats.release_rows(start..end);
        gather_round(comm, &reps, &global, w.as_mut(), &mut img_global)?;
        progress(end, n_img, "images");
    }
    if let Some(w) = w {
        w.finish()?;
    }
    let sdim = img_global.len() / n_img;
    if lead {
        crate::data::npy::write_f32(out("images_global.npy"), &[n_img, sdim], &img_global)?;
        if n_img >= spec.ann_threshold {
            build_hnsw(&img_global, sdim, &out("images.usearch"))?;
        }
    }
    drop(img_global);

    // Captions.
    let (mut n_cap, mut n_rows) = (0, 0);
    if let Some(cp) = &spec.captions {
        let texts = read_captions(cp)?;
        n_cap = texts.len();
        if lead {
            let mut body = texts.join("\n");
            body.push('\n');
            std::fs::write(out("captions.txt"), body).map_err(io(&out("captions.txt")))?;
        }
        let ids: Vec<Vec<u32>> = texts
            .iter()
            .map(|t| main.vocab().encode_caption(t))
            .collect();
        n_rows = ids.iter().map(|c| m.caption_rows(c.len())).sum();
        let mut w = match lead {
            true => Some(NpyWriter::create(out("caption_rows.npy"), &[n_rows, d])?),
            false => None,
        };
        let mut offsets: Vec<u64> = vec![0];
        let mut cap_global = Vec::new();
        let starts: Vec<usize> = (0..n_cap).step_by(CAPTION_GROUP).collect();
        for round in starts.chunks(comm.size()) {
            let Some(&start) = round.get(comm.rank()) else {
                gather_round(comm, &[], &[], w.as_mut(), &mut cap_global)?;
                gather_counts(comm, &[], &mut offsets);
                continue;
            };
            let end = (start + CAPTION_GROUP).min(n_cap);
            let enc = m.encode_captions(end - start, &|j| &ids[start + j]);
            let global = match side {
                Side::Own => global_rows(&enc.rows, &enc.offsets, d),
                Side::Other(s) => {
                    let sids: Vec<Vec<u32>> = texts[start..end]
                        .iter()
                        .map(|t| s.vocab().encode_caption(t))
                        .collect();
                    let g = s.matcher().encode_captions(end - start, &|j| &sids[j]);
                    global_rows(&g.rows, &g.offsets, s.matcher().embed_dim())
                }
            };
            if enc.rows.iter().chain(&global).any(|v| !v.is_finite()) {
                return Err(ServeError::Usage(format!(
                    "{}: a caption of lines {}..={} encodes to a non-finite value",
                    cp.display(),
                    start + 1,
                    end
                )));
            }
            gather_round(comm, &enc.rows, &global, w.as_mut(), &mut cap_global)?;
            let counts: Vec<u64> = enc
                .offsets
                .windows(2)
                .map(|p| (p[1] - p[0]) as u64)
                .collect();
            gather_counts(comm, &counts, &mut offsets);
            progress(end, n_cap, "captions");
        }
        if let Some(w) = w {
            w.finish()?;
        }
        if lead {
            let bytes: Vec<u8> = offsets.iter().flat_map(|o| o.to_le_bytes()).collect();
            let p = out("caption_offsets.u64");
            std::fs::File::create(&p)
                .and_then(|mut f| f.write_all(&bytes).and_then(|()| f.sync_all()))
                .map_err(io(&p))?;
            crate::data::npy::write_f32(out("captions_global.npy"), &[n_cap, sdim], &cap_global)?;
            if n_cap >= spec.ann_threshold {
                build_hnsw(&cap_global, sdim, &out("captions.usearch"))?;
            }
        }
    }

    let mut manifest = Manifest {
        format: FORMAT,
        model: model_ref(&spec.out, &spec.run, k, &spec.tag, &main),
        shortlist_model: sl_model.as_ref().map(|s| {
            let p = spec.shortlist_run.as_ref().expect("set with the model");
            let b = crate::infer::run::RunDir::open(p)
                .map(|r| r.branches - 1)
                .unwrap_or(0);
            model_ref(&spec.out, p, b, "best", s)
        }),
        embed_dim: d,
        img_dim: dim,
        regions,
        image_rows: rows,
        shortlist_dim: sdim,
        n_images: n_img,
        n_captions: n_cap,
        n_caption_rows: n_rows,
        ann_threshold: spec.ann_threshold,
        has_ids: ids.is_some(),
        files: Default::default(),
    };
    if lead {
        for name in manifest.expected_files() {
            let sum = sum_file(&out(name))?;
            manifest.files.insert(name.to_string(), sum);
        }
        manifest.save(&spec.out)?;
    }
    Ok(manifest)
}

/// One round of chunks, one per rank in rank order: their encodings `rows`
/// are gathered to `w` (rank 0's writer) and their global embeddings
/// appended to `global`.
fn gather_round(
    comm: &dyn Comm,
    rows: &[f32],
    global: &[f32],
    w: Option<&mut NpyWriter>,
    all_global: &mut Vec<f32>,
) -> Result<(), ServeError> {
    let (all_rows, _) = comm.all_gather_f32(rows);
    if let Some(w) = w {
        w.write(&all_rows)?;
    }
    all_global.extend(comm.all_gather_f32(global).0);
    Ok(())
}

/// Appends one round's per-caption row counts (rank order) to the running `offsets`.
fn gather_counts(comm: &dyn Comm, counts: &[u64], offsets: &mut Vec<u64>) {
    for c in comm.all_gather_u64(counts).0 {
        offsets.push(offsets.last().copied().unwrap_or(0) + c);
    }
}
