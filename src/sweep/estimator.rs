//! The selection-robust estimate of a sweep (docs/method.md §8, item 9):
//! per seed, the mean over every epoch after a burn-in of the paired
//! target − anchor **test** rSum of the same epoch's checkpoints, then its
//! mean over seeds with a 95 % Student-t interval, the seeds it favours the
//! target in, and the epoch checkpoints where the target scored higher.
//!
//! Where the numbers come from: with `test_after_epoch = B` the trainer logs
//! every branch's test metrics at the end of each epoch after the first B as
//! `test` records in `branch{k}/metrics.jsonl` (write-only: selection and
//! patience read dev alone). [`LateTest::read`] collects them when a seed
//! finishes; a cohort that patience stopped within the burn-in has no such
//! record, and is scored once with its last checkpoints instead
//! ([`super::run`]), so that every seed contributes and none is dropped
//! after the fact.
//!
//! Best-on-dev ([`super::summary`]) answers "which checkpoint would a user
//! ship, and how does it do"; it picks one epoch per branch on a noisy dev
//! score. This one averages over the same late epochs of both branches, so a
//! lucky or unlucky pick cannot decide it; it estimates the target's mean
//! advantage once training is past the burn-in.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::SweepError;
use super::run::SeedResult;
use super::stats::{Paired, TIE};
use crate::train::metrics_log::read_records;

/// Test rSum of every branch at each epoch after the burn-in, for one seed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LateTest {
    /// The burn-in B: epochs B + 1 … (1-based) were scored.
    pub after_epoch: usize,
    /// Stage of the scored epochs (1; 2 for the OAS target's stage).
    pub stage: u32,
    /// Scored epochs, 1-based, ascending (every branch has each of them).
    pub epochs: Vec<usize>,
    /// Test rSum per branch and scored epoch: `rsum[k][i]` is branch k at `epochs[i]`.
    pub rsum: Vec<Vec<f64>>,
}

/// (stage, 1-based epoch, rSum) of every record of `kind` in `path`.
fn records(path: &Path, kind: &str, field: &str) -> Result<Vec<(u32, usize, f64)>, SweepError> {
    let bad = |message: String| SweepError::Record {
        path: path.to_path_buf(),
        message,
    };
    let mut out = Vec::new();
    for r in read_records(path).map_err(bad)? {
        if r["kind"].as_str() != Some(kind) {
            continue;
        }
        let (Some(stage), Some(epoch), Some(rsum)) = (
            r["stage"].as_u64(),
            r["epoch"].as_u64(),
            r[field]["rsum"].as_f64(),
        ) else {
            return Err(bad(format!(
                "a `{kind}` record lacks stage, epoch or {field}.rsum: {r}"
            )));
        };
        out.push((stage as u32, epoch as usize + 1, rsum));
    }
    Ok(out)
}

fn metrics_path(run: &Path, k: usize) -> std::path::PathBuf {
    run.join(format!("branch{k}")).join("metrics.jsonl")
}

impl LateTest {
    /// The `test` records of branches 0 … n − 1 of the run folder `run`, on
    /// the last branch's last stage, at the epochs every branch has;
    /// `None` when there are none (or `n` is below 2).
    pub fn read(run: &Path, n: usize, after_epoch: usize) -> Result<Option<Self>, SweepError> {
        if n < 2 {
            return Ok(None);
        }
        let per: Vec<Vec<(u32, usize, f64)>> = (0..n)
            .map(|k| records(&metrics_path(run, k), "test", "test"))
            .collect::<Result<_, _>>()?;
        let Some(stage) = per[n - 1].iter().map(|r| r.0).max() else {
            return Ok(None);
        };
        let at = |k: usize, e: usize| {
            per[k]
                .iter()
                .rev()
                .find(|r| r.0 == stage && r.1 == e)
                .map(|r| r.2)
        };
        let mut epochs: Vec<usize> = per[n - 1]
            .iter()
            .filter(|r| r.0 == stage)
            .map(|r| r.1)
            .filter(|&e| (0..n).all(|k| at(k, e).is_some()))
            .collect();
        epochs.sort_unstable();
        epochs.dedup();
        if epochs.is_empty() {
            return Ok(None);
        }
        let rsum = (0..n)
            .map(|k| epochs.iter().filter_map(|&e| at(k, e)).collect())
            .collect();
        Ok(Some(LateTest {
            after_epoch,
            stage,
            epochs,
            rsum,
        }))
    }

    /// The last (stage, 1-based epoch) that branch `k` of `run` evaluated on dev.
    pub fn last_epoch(run: &Path, k: usize) -> Result<Option<(u32, usize)>, SweepError> {
        let r = records(&metrics_path(run, k), "eval", "dev")?;
        Ok(r.iter().map(|&(s, e, _)| (s, e)).max())
    }

    /// Target (last branch) − anchor (branch 0) per scored epoch.
    pub fn diffs(&self) -> Vec<f64> {
        let (t, a) = (&self.rsum[self.rsum.len() - 1], &self.rsum[0]);
        t.iter().zip(a).map(|(t, a)| t - a).collect()
    }
}

/// The selection-robust estimate over the seeds of a sweep.
#[derive(Debug, Clone, Serialize)]
pub struct LateSummary {
    /// The burn-in B (epochs after it were scored).
    pub after_epoch: usize,
    /// Epochs averaged, per seed in seed order.
    pub epochs_per_seed: Vec<usize>,
    /// Per seed: the mean over its scored epochs of target − anchor test
    /// rSum (`diffs`), with mean, 95 % CI and wins over seeds.
    pub paired: Paired,
    /// Scored epoch checkpoints where the target scored higher than the anchor.
    pub epoch_wins: usize,
    /// Scored epoch checkpoints over all seeds.
    pub epoch_total: usize,
}

/// The estimate over `results` (seed order); `None` unless every seed has
/// late test records with the same burn-in.
pub fn summarize_late(results: &[SeedResult]) -> Option<LateSummary> {
    let lates: Vec<&LateTest> = results
        .iter()
        .map(|r| r.late.as_ref())
        .collect::<Option<_>>()?;
    let after_epoch = lates.first()?.after_epoch;
    if lates.iter().any(|l| l.after_epoch != after_epoch) {
        return None;
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let target: Vec<f64> = lates
        .iter()
        .map(|l| mean(&l.rsum[l.rsum.len() - 1]))
        .collect();
    let anchor: Vec<f64> = lates.iter().map(|l| mean(&l.rsum[0])).collect();
    let all: Vec<f64> = lates.iter().flat_map(|l| l.diffs()).collect();
    Some(LateSummary {
        after_epoch,
        epochs_per_seed: lates.iter().map(|l| l.epochs.len()).collect(),
        paired: Paired::of(&target, &anchor),
        epoch_wins: all.iter().filter(|&&d| d > TIE).count(),
        epoch_total: all.len(),
    })
}

/// "… ; target higher in w of n epoch checkpoints", after [`super::summary::paired_text`].
pub fn late_text(l: &LateSummary) -> String {
    format!(
        "{}; target higher in {} of {} epoch checkpoints (epochs after {})",
        super::summary::paired_text(&l.paired),
        l.epoch_wins,
        l.epoch_total,
        l.after_epoch
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::metrics::{Directional, Metrics};
    use crate::sweep::run::BranchResult;
    use crate::train::config::Regime;

    fn seed(s: u64, late: Option<LateTest>) -> SeedResult {
        let b = |k: usize| BranchResult {
            k,
            role: if k == 0 { "anchor" } else { "target" }.into(),
            label: format!("branch {k}"),
            best_dev_rsum: None,
            test: {
                let d = Directional::from_ranks(&[0]);
                Metrics::new(d, d)
            },
        };
        SeedResult {
            seed: s,
            regime: Regime::Oss,
            branches: vec![b(0), b(1)],
            wall_seconds: 0.0,
            late,
        }
    }

    fn late(epochs: &[usize], anchor: &[f64], target: &[f64]) -> LateTest {
        LateTest {
            after_epoch: 5,
            stage: 1,
            epochs: epochs.to_vec(),
            rsum: vec![anchor.to_vec(), target.to_vec()],
        }
    }

    /// A constructed sweep: per-seed means of the epoch differences, their
    /// interval, the seed wins and the epoch wins, by hand.
    #[test]
    fn estimate_of_a_constructed_sweep() {
        let rs = vec![
            // diffs +4, −2, +1 → seed mean +1.
            seed(
                0,
                Some(late(
                    &[6, 7, 8],
                    &[400.0, 410.0, 405.0],
                    &[404.0, 408.0, 406.0],
                )),
            ),
            // diffs +6, +2 → +4.
            seed(1, Some(late(&[6, 7], &[300.0, 300.0], &[306.0, 302.0]))),
            // one epoch (patience stopped it in the burn-in): −3.
            seed(2, Some(late(&[4], &[500.0], &[497.0]))),
        ];
        let l = summarize_late(&rs).unwrap();
        assert_eq!(l.epochs_per_seed, vec![3, 2, 1]);
        for (got, want) in l.paired.diffs.iter().zip([1.0, 4.0, -3.0]) {
            assert!((got - want).abs() < 1e-9, "{got} vs {want}");
        }
        assert!((l.paired.mean - 2.0 / 3.0).abs() < 1e-9);
        // sd of (1, 4, −3): Σ(x − m)² = 1/9 + 100/9 + 121/9 = 74/3, over n − 1 = 2.
        let sd = (74.0f64 / 3.0 / 2.0).sqrt();
        assert!((l.paired.sd - sd).abs() < 1e-9);
        let h = 4.302_652_729_749_464 * sd / 3f64.sqrt();
        assert!((l.paired.ci95.0 - (2.0 / 3.0 - h)).abs() < 1e-8);
        assert_eq!((l.paired.wins, l.paired.ties), (2, 0));
        assert_eq!((l.epoch_wins, l.epoch_total), (4, 6));
        assert!(late_text(&l).contains("target higher in 4 of 6 epoch checkpoints"));
        // One seed without records: no estimate rather than a partial one.
        let mut partial = rs.clone();
        partial[1].late = None;
        assert!(summarize_late(&partial).is_none());
    }

    /// Records are paired by (stage, epoch) across branches; a later
    /// duplicate (an extended seed) wins; dev records are not test records.
    #[test]
    fn reads_and_pairs_test_records() {
        let tmp = tempfile::tempdir().unwrap();
        let write = |k: usize, lines: &[String]| {
            let d = tmp.path().join(format!("branch{k}"));
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("metrics.jsonl"), lines.join("\n") + "\n").unwrap();
        };
        let rec = |kind: &str, e: usize, r: f64| {
            let field = if kind == "test" { "test" } else { "dev" };
            format!(r#"{{"kind":"{kind}","stage":1,"epoch":{e},"{field}":{{"rsum":{r}}}}}"#)
        };
        write(
            0,
            &[
                rec("eval", 5, 1.0),
                rec("test", 5, 100.0),
                rec("test", 6, 110.0),
                rec("eval", 6, 2.0),
                rec("test", 6, 111.0),
            ],
        );
        write(
            1,
            &[
                rec("test", 5, 103.0),
                rec("eval", 5, 9.0),
                rec("test", 6, 108.0),
                rec("test", 7, 1.0),
            ],
        );
        let l = LateTest::read(tmp.path(), 2, 5).unwrap().unwrap();
        assert_eq!(l.epochs, vec![6, 7]);
        assert_eq!(l.rsum, vec![vec![100.0, 111.0], vec![103.0, 108.0]]);
        assert_eq!(l.diffs(), vec![3.0, -3.0]);
        assert_eq!(LateTest::last_epoch(tmp.path(), 0).unwrap(), Some((1, 7)));
        assert!(LateTest::read(tmp.path(), 1, 5).unwrap().is_none());
    }
}
