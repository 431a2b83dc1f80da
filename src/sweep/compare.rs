//! `dbl sweep compare DIR…`: several sweeps (e.g. baseline, OSS-RM, OSS-AM,
//! MSS, OAS) side by side, recomputed from each folder's finished seeds:
//! a Markdown table (test rSum mean ± sd per branch, the paired
//! target − anchor difference with its 95 % CI and wins, best-on-dev and,
//! where the seeds logged late test records, the selection-robust mean over
//! the epochs after the burn-in ([`super::estimator`]); with a baseline
//! sweep, also each target against that sweep's anchor, paired by seed) and
//! the [`super::summary::chart`] over all of them (with a baseline, its
//! paired panel also shows each target against the baseline's anchor).
//! `compare.json` is the list of summaries, each with `vs_baseline` when a
//! baseline was given.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::estimator::late_text;
use super::run::read_results;
use super::stats::Paired;
use super::summary::{Summary, chart, paired_interval, paired_text, summarize};
use super::{SweepError, write_json};
use crate::plot::intervals::IntervalSeries;
use crate::store::write_atomic;

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

/// Test rSum of `s`'s target (last branch) − `base`'s anchor (branch 0),
/// paired on the seeds both have finished; `None` without a common seed.
/// The question a regime's row cannot answer alone: does its target beat an
/// independently trained baseline (e.g. the OSS anchor), not only its own
/// anchor (for MSS, the target's EMA)?
pub fn against_baseline(s: &Summary, base: &Summary) -> Option<Paired> {
    let target = &s.branches.last()?.rsum_per_seed;
    let anchor = &base.branches.first()?.rsum_per_seed;
    let (t, a): (Vec<f64>, Vec<f64>) = s
        .seeds
        .iter()
        .zip(target)
        .filter_map(|(seed, &t)| {
            let j = base.seeds.iter().position(|x| x == seed)?;
            Some((t, anchor[j]))
        })
        .unzip();
    (!t.is_empty()).then(|| Paired::of(&t, &a))
}

/// The side-by-side Markdown table; with `base`, a last column pairs each
/// target with `base`'s anchor ([`against_baseline`]).
pub fn markdown(sums: &[Summary], base: Option<&Summary>) -> String {
    let mut t = String::from(
        "| sweep | regime | seeds | branch | test rSum (mean ± sd) | target − anchor rSum |",
    );
    let late = sums.iter().any(|s| s.late.is_some());
    if late {
        t.push_str(" target − anchor rSum, mean over epochs after the burn-in |");
    }
    if let Some(b) = base {
        t.push_str(&format!(" target − {} anchor rSum |", b.name));
    }
    t.push_str("\n|---|---|---|---|---|---|");
    t.push_str(if late { "---|" } else { "" });
    t.push_str(if base.is_some() { "---|\n" } else { "\n" });
    for s in sums {
        for (k, b) in s.branches.iter().enumerate() {
            let last = k + 1 == s.branches.len();
            let paired = match (&s.paired_rsum, last) {
                (Some(p), true) => paired_text(p),
                _ => String::new(),
            };
            let vs_base = match base {
                Some(bs) if last && s.branches.len() > 1 => {
                    against_baseline(s, bs).map_or("no common seed".into(), |p| paired_text(&p))
                }
                _ => String::new(),
            };
            let sd = if b.rsum.sd.is_nan() {
                String::new()
            } else {
                format!(" ± {:.1}", b.rsum.sd)
            };
            t.push_str(&format!(
                "| {} | {} | {} | {} | {:.1}{sd} | {paired} |",
                s.name,
                s.regime.name(),
                s.seeds.len(),
                b.label,
                b.rsum.mean
            ));
            if late {
                let text = match (&s.late, last) {
                    (Some(l), true) => late_text(l),
                    (None, true) if s.branches.len() > 1 => "no late test records".into(),
                    _ => String::new(),
                };
                t.push_str(&format!(" {text} |"));
            }
            if base.is_some() {
                t.push_str(&format!(" {vs_base} |"));
            }
            t.push('\n');
        }
    }
    t
}

/// One sweep of `compare.json`: its summary, and with a baseline sweep its
/// target against that sweep's anchor ([`against_baseline`]).
#[derive(Serialize)]
struct Row<'a> {
    #[serde(flatten)]
    summary: &'a Summary,
    #[serde(skip_serializing_if = "Option::is_none")]
    vs_baseline: Option<VsBaseline<'a>>,
}

/// [`Row::vs_baseline`]: `paired` is null without a common seed.
#[derive(Serialize)]
struct VsBaseline<'a> {
    baseline: &'a str,
    paired: Option<Paired>,
}

/// Writes `OUT/compare.{md,json,png,svg}`; returns the paths and the table.
pub fn write(
    out: &Path,
    sums: &[Summary],
    base: Option<&Summary>,
) -> Result<(Vec<PathBuf>, String), SweepError> {
    std::fs::create_dir_all(out).map_err(|source| SweepError::Io {
        path: out.to_path_buf(),
        source,
    })?;
    let table = markdown(sums, base);
    let md = out.join("compare.md");
    write_atomic(&md, table.as_bytes())?;
    let json = out.join("compare.json");
    let rows: Vec<Row<'_>> = sums
        .iter()
        .map(|s| Row {
            summary: s,
            vs_baseline: base.filter(|_| s.branches.len() > 1).map(|b| VsBaseline {
                baseline: &b.name,
                paired: against_baseline(s, b),
            }),
        })
        .collect();
    write_json(&json, &rows)?;
    let mut files = vec![md, json];
    let mut picture = chart("sweeps", sums);
    if let Some(b) = base {
        // The right-hand panel (paired differences) also shows each target
        // against the baseline's anchor.
        let panel = &mut picture.panels[1];
        panel.title = "sweeps: paired target − anchor (its own, and the baseline's)".into();
        panel.series.push(IntervalSeries {
            name: format!("target − {} anchor (mean, 95 % CI)", b.name),
            per_category: rows
                .iter()
                .map(|r| paired_interval(r.vs_baseline.as_ref()?.paired.as_ref()?))
                .collect(),
        });
    }
    files.extend(picture.write(&out.join("compare"))?);
    Ok((files, table))
}
