//! `dbl sweep compare DIR…`: several sweeps (e.g. baseline, OSS-RM, OSS-AM,
//! MSS, OAS) side by side, recomputed from each folder's finished seeds:
//! a Markdown table (test rSum mean ± sd per branch, the paired
//! target − anchor difference with its 95 % CI and wins) and the
//! [`super::summary::chart`] over all of them.

use std::path::{Path, PathBuf};

use super::run::read_results;
use super::summary::{Summary, chart, paired_text, summarize};
use super::{SweepError, write_json};
use crate::train::checkpoint::write_atomic;

/// Summaries of `dirs` (name = folder name), in the given order.
pub fn load(dirs: &[PathBuf]) -> Result<Vec<Summary>, SweepError> {
    dirs.iter()
        .map(|d| {
            let name = d
                .file_name()
                .map_or_else(|| d.display().to_string(), |n| n.to_string_lossy().into());
            summarize(&name, &read_results(d)?).map_err(|message| SweepError::Record {
                path: d.clone(),
                message,
            })
        })
        .collect()
}

/// The side-by-side Markdown table.
pub fn markdown(sums: &[Summary]) -> String {
    let mut t = String::from(
        "| sweep | regime | seeds | branch | test rSum (mean ± sd) | target − anchor rSum |\n\
         |---|---|---|---|---|---|\n",
    );
    for s in sums {
        for (k, b) in s.branches.iter().enumerate() {
            let paired = match (&s.paired_rsum, k + 1 == s.branches.len()) {
                (Some(p), true) => paired_text(p),
                _ => String::new(),
            };
            let sd = if b.rsum.sd.is_nan() {
                String::new()
            } else {
                format!(" ± {:.1}", b.rsum.sd)
            };
            t.push_str(&format!(
                "| {} | {} | {} | {} | {:.1}{sd} | {paired} |\n",
                s.name,
                s.regime.name(),
                s.seeds.len(),
                b.label,
                b.rsum.mean
            ));
        }
    }
    t
}

/// Writes `OUT/compare.{md,json,png,svg}`; returns the paths and the table.
pub fn write(out: &Path, sums: &[Summary]) -> Result<(Vec<PathBuf>, String), SweepError> {
    std::fs::create_dir_all(out).map_err(|source| SweepError::Io {
        path: out.to_path_buf(),
        source,
    })?;
    let table = markdown(sums);
    let md = out.join("compare.md");
    write_atomic(&md, table.as_bytes())?;
    let json = out.join("compare.json");
    write_json(&json, sums)?;
    let mut files = vec![md, json];
    files.extend(chart("sweeps", sums).write(&out.join("compare"))?);
    Ok((files, table))
}
