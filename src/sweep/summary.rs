//! What the seeds of one sweep say together: per branch, the test R@1/5/10
//! both ways and rSum as mean ± sd over seeds; the paired difference
//! target − anchor in test rSum per seed with its mean, 95 % Student-t
//! interval and win count. Written as `summary.json`, `summary.md` and
//! `summary.{png,svg}` (per-seed rSum per branch with mean ± sd; the paired
//! differences with mean and 95 % CI). [`chart`] also draws `dbl sweep compare`.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::estimator::{LateSummary, late_text, summarize_late};
use super::run::SeedResult;
use super::stats::{MeanSd, Paired};
use super::{SweepError, write_json};
use crate::plot::grid::Grid;
use crate::plot::intervals::{Interval, IntervalChart, IntervalSeries};
use crate::store::write_atomic;
use crate::train::config::Regime;

/// Mean ± sd of one retrieval direction's recalls.
#[derive(Debug, Clone, Serialize)]
pub struct RecallSummary {
    /// R@1.
    pub r1: MeanSd,
    /// R@5.
    pub r5: MeanSd,
    /// R@10.
    pub r10: MeanSd,
}

/// One branch over the seeds.
#[derive(Debug, Clone, Serialize)]
pub struct BranchSummary {
    /// Role (`anchor`, `target`, `baseline`, `branch{k}`).
    pub role: String,
    /// Legend label.
    pub label: String,
    /// Image → text.
    pub i2t: RecallSummary,
    /// Text → image.
    pub t2i: RecallSummary,
    /// rSum.
    pub rsum: MeanSd,
    /// Test rSum per seed, in seed order.
    pub rsum_per_seed: Vec<f64>,
}

/// One sweep over the seeds.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Sweep name (its folder name).
    pub name: String,
    /// Regime trained.
    pub regime: Regime,
    /// Finished seeds, in order.
    pub seeds: Vec<u64>,
    /// Every branch by index.
    pub branches: Vec<BranchSummary>,
    /// Test rSum, target (last branch) − anchor (branch 0), paired by seed;
    /// absent for a one-branch run.
    pub paired_rsum: Option<Paired>,
    /// The selection-robust estimate ([`super::estimator`]): target − anchor
    /// test rSum averaged over every epoch after the burn-in; absent unless
    /// every seed logged late test records.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub late: Option<LateSummary>,
    /// Wall seconds per seed.
    pub wall_seconds: MeanSd,
}

/// Summarises finished seeds (all of one configuration).
pub fn summarize(name: &str, results: &[SeedResult]) -> Result<Summary, String> {
    let first = results
        .first()
        .ok_or_else(|| "no finished seed yet".to_string())?;
    let nb = first.branches.len();
    if let Some(r) = results
        .iter()
        .find(|r| r.branches.len() != nb || r.regime != first.regime)
    {
        return Err(format!(
            "seed {} has {} branches of regime {}, seed {} has {nb} of {}",
            r.seed,
            r.branches.len(),
            r.regime.name(),
            first.seed,
            first.regime.name()
        ));
    }
    let col = |k: usize, f: &dyn Fn(&crate::eval::metrics::Metrics) -> f64| -> Vec<f64> {
        results.iter().map(|r| f(&r.branches[k].test)).collect()
    };
    let branches: Vec<BranchSummary> = (0..nb)
        .map(|k| {
            let rsum = col(k, &|m| m.rsum);
            BranchSummary {
                role: first.branches[k].role.clone(),
                label: first.branches[k].label.clone(),
                i2t: RecallSummary {
                    r1: MeanSd::of(&col(k, &|m| m.i2t.r1)),
                    r5: MeanSd::of(&col(k, &|m| m.i2t.r5)),
                    r10: MeanSd::of(&col(k, &|m| m.i2t.r10)),
                },
                t2i: RecallSummary {
                    r1: MeanSd::of(&col(k, &|m| m.t2i.r1)),
                    r5: MeanSd::of(&col(k, &|m| m.t2i.r5)),
                    r10: MeanSd::of(&col(k, &|m| m.t2i.r10)),
                },
                rsum: MeanSd::of(&rsum),
                rsum_per_seed: rsum,
            }
        })
        .collect();
    let paired_rsum =
        (nb >= 2).then(|| Paired::of(&branches[nb - 1].rsum_per_seed, &branches[0].rsum_per_seed));
    let wall: Vec<f64> = results.iter().map(|r| r.wall_seconds).collect();
    Ok(Summary {
        name: name.to_string(),
        regime: first.regime,
        seeds: results.iter().map(|r| r.seed).collect(),
        branches,
        paired_rsum,
        late: summarize_late(results),
        wall_seconds: MeanSd::of(&wall),
    })
}

fn pm(m: &MeanSd) -> String {
    if m.sd.is_nan() {
        format!("{:.1}", m.mean)
    } else {
        format!("{:.1} ± {:.1}", m.mean, m.sd)
    }
}

/// "mean +x.x, 95 % CI [a, b], target won w of n (t ties)".
pub fn paired_text(p: &Paired) -> String {
    let ci = if p.ci95.0.is_nan() {
        "95 % CI needs ≥ 2 seeds".to_string()
    } else {
        format!("95 % CI [{:+.1}, {:+.1}]", p.ci95.0, p.ci95.1)
    };
    let ties = if p.ties > 0 {
        format!(" ({} tied)", p.ties)
    } else {
        String::new()
    };
    format!(
        "mean {:+.1}, {ci}, target higher in {} of {} seeds{ties}",
        p.mean,
        p.wins,
        p.diffs.len()
    )
}

/// The Markdown report of one sweep.
pub fn markdown(s: &Summary) -> String {
    let mut t = format!(
        "# Sweep `{}` ({} regime), {} seeds: {:?}\n\nTest split, each branch's best-on-dev checkpoint; mean ± sample sd over seeds.\n\n\
         | branch | i2t R@1 | i2t R@5 | i2t R@10 | t2i R@1 | t2i R@5 | t2i R@10 | rSum |\n\
         |---|---|---|---|---|---|---|---|\n",
        s.name,
        s.regime.name(),
        s.seeds.len(),
        s.seeds
    );
    for b in &s.branches {
        t.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
            b.label,
            pm(&b.i2t.r1),
            pm(&b.i2t.r5),
            pm(&b.i2t.r10),
            pm(&b.t2i.r1),
            pm(&b.t2i.r5),
            pm(&b.t2i.r10),
            pm(&b.rsum)
        ));
    }
    t.push_str("\nTest rSum per seed:\n\n| seed |");
    for b in &s.branches {
        t.push_str(&format!(" {} |", b.label));
    }
    if s.paired_rsum.is_some() {
        t.push_str(" target − anchor |");
    }
    t.push_str("\n|---|");
    for _ in 0..s.branches.len() + usize::from(s.paired_rsum.is_some()) {
        t.push_str("---|");
    }
    t.push('\n');
    for (i, seed) in s.seeds.iter().enumerate() {
        t.push_str(&format!("| {seed} |"));
        for b in &s.branches {
            t.push_str(&format!(" {:.1} |", b.rsum_per_seed[i]));
        }
        if let Some(p) = &s.paired_rsum {
            t.push_str(&format!(" {:+.1} |", p.diffs[i]));
        }
        t.push('\n');
    }
    if let Some(p) = &s.paired_rsum {
        t.push_str(&format!(
            "\nPaired target − anchor test rSum: {} (Student t, {} degrees of freedom).\n",
            paired_text(p),
            p.diffs.len().saturating_sub(1)
        ));
    }
    if let Some(l) = &s.late {
        t.push_str(&late_markdown(s, l));
    }
    t.push_str(&format!(
        "\nWall time per seed: {} s.\n",
        pm(&s.wall_seconds)
    ));
    t
}

/// The selection-robust section of [`markdown`]: per seed, the epochs averaged
/// and the mean target − anchor test rSum over them; then over the seeds.
fn late_markdown(s: &Summary, l: &LateSummary) -> String {
    let mut t = format!(
        "\nSelection-robust estimate: target − anchor test rSum of the same epoch's \
         checkpoints, averaged over every epoch after epoch {} (docs/method.md §8):\n\n\
         | seed | epochs averaged | mean target − anchor |\n|---|---|---|\n",
        l.after_epoch
    );
    for (i, seed) in s.seeds.iter().enumerate() {
        t.push_str(&format!(
            "| {seed} | {} | {:+.1} |\n",
            l.epochs_per_seed[i], l.paired.diffs[i]
        ));
    }
    t.push_str(&format!(
        "\nOver the seeds: {} (Student t, {} degrees of freedom).\n",
        late_text(l),
        l.paired.diffs.len().saturating_sub(1)
    ));
    t
}

fn interval(values: &[f64], centre: f64, half: f64) -> Option<Interval> {
    let h = if half.is_finite() { half } else { 0.0 };
    Some(Interval {
        values: values.to_vec(),
        centre,
        lo: centre - h,
        hi: centre + h,
    })
}

/// A paired difference as an interval: its mean, 95 % CI and per-seed values.
pub(super) fn paired_interval(p: &Paired) -> Option<Interval> {
    interval(&p.diffs, p.mean, (p.ci95.1 - p.ci95.0) / 2.0)
}

/// Two panels over `sums` (categories = sweeps): test rSum per branch role
/// (per-seed dots, mean ± sd), and the paired target − anchor rSum (per-seed
/// dots, mean and 95 % CI, zero line).
pub fn chart(title: &str, sums: &[Summary]) -> Grid<IntervalChart> {
    let categories: Vec<String> = sums.iter().map(|s| s.name.clone()).collect();
    let mut roles: Vec<String> = Vec::new();
    for s in sums {
        for b in &s.branches {
            if !roles.contains(&b.role) {
                roles.push(b.role.clone());
            }
        }
    }
    // anchor first, target last, intermediate branches between.
    roles.sort_by_key(|r| match r.as_str() {
        "baseline" => (0, 0),
        "anchor" => (1, 0),
        "target" => (3, 0),
        other => (2, other.trim_start_matches("branch").parse().unwrap_or(0)),
    });
    let series = roles
        .iter()
        .map(|role| IntervalSeries {
            name: role.clone(),
            per_category: sums
                .iter()
                .map(|s| {
                    let b = s.branches.iter().find(|b| &b.role == role)?;
                    interval(&b.rsum_per_seed, b.rsum.mean, b.rsum.sd)
                })
                .collect(),
        })
        .collect();
    let any_late = sums.iter().any(|s| s.late.is_some());
    let paired = IntervalSeries {
        name: if any_late {
            "target − anchor, best-on-dev (mean, 95 % CI)"
        } else {
            "target − anchor (mean, 95 % CI)"
        }
        .into(),
        per_category: sums
            .iter()
            .map(|s| paired_interval(s.paired_rsum.as_ref()?))
            .collect(),
    };
    let mut paired_series = vec![paired];
    if any_late {
        paired_series.push(IntervalSeries {
            name: "target − anchor, mean over epochs after the burn-in (mean, 95 % CI)".into(),
            per_category: sums
                .iter()
                .map(|s| paired_interval(&s.late.as_ref()?.paired))
                .collect(),
        });
    }
    let x_label = "sweep (folder name)";
    Grid::row(vec![
        IntervalChart {
            title: format!("{title}: test rSum per branch (mean ± sd)"),
            x_label: x_label.into(),
            y_label: "test rSum (of 600)".into(),
            categories: categories.clone(),
            series,
            zero_line: false,
        },
        IntervalChart {
            title: format!("{title}: paired target − anchor"),
            x_label: x_label.into(),
            y_label: "Δ test rSum (target − anchor)".into(),
            categories,
            series: paired_series,
            zero_line: true,
        },
    ])
}

/// Writes `OUT/summary.{json,md,png,svg}` and the seeds' dev curves
/// `OUT/curves.{png,svg}` ([`super::curves`]); returns the paths.
pub fn write(out: &Path, s: &Summary) -> Result<Vec<PathBuf>, SweepError> {
    let json_path = out.join("summary.json");
    write_json(&json_path, s)?;
    let md_path = out.join("summary.md");
    write_atomic(&md_path, markdown(s).as_bytes())?;
    let mut files = vec![json_path, md_path];
    files.extend(chart(&s.name, std::slice::from_ref(s)).write(&out.join("summary"))?);
    files.extend(super::curves::write(&s.name, out, &s.seeds)?);
    Ok(files)
}
