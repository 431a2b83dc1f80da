//! The selection-robust estimate of `dbl sweep` end to end (tiny backbone,
//! tiny synthetic set): scoring the test split after every epoch past the
//! burn-in changes nothing that training or best-on-dev selection decides
//! (same weights, same dev records, same best-on-dev test numbers); the
//! summary's estimate is the arithmetic of the logged per-epoch records; a
//! cohort that stops within the burn-in is scored at its last epoch, to the
//! same number the per-epoch records give for that epoch.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::sweep::{json, tiny_config};
use support::{BIN, ok};

fn setup() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let d = support::synth_sized(tmp.path(), 40, 12, 16);
    let cfg = tiny_config(&tmp.path().join("run.toml"), &d, "oss", 4, "lr = 0.01\n");
    (tmp, cfg)
}

/// Seeds 0..3 into `out`; asserts success → stdout.
fn sweep(cfg: &Path, out: &Path, extra: &[&str]) -> String {
    ok(&support::sweep::sweep(cfg, "0..3", out, extra))
}

/// (kind, 0-based epoch, the record's dev or test metrics) of a branch's log.
fn records(run: &Path, k: usize, kind: &str) -> Vec<(u64, serde_json::Value)> {
    let text = std::fs::read_to_string(run.join(format!("branch{k}/metrics.jsonl"))).unwrap();
    text.lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["kind"] == kind)
        .map(|r| {
            let field = if kind == "test" { "test" } else { "dev" };
            (r["epoch"].as_u64().unwrap(), r[field].clone())
        })
        .collect()
}

#[test]
fn test_records_change_no_training_or_selection_and_feed_the_estimate() {
    let (tmp, cfg) = setup();
    let plain = tmp.path().join("plain");
    let late = tmp.path().join("late");
    sweep(&cfg, &plain, &[]);
    let out = sweep(&cfg, &late, &["--set", "test_after_epoch=1"]);
    assert!(out.contains("best-on-dev checkpoints:"), "{out}");
    assert!(
        out.contains("mean over the epochs after the burn-in:"),
        "{out}"
    );
    let mut seed_means = Vec::new();
    for s in ["seed0", "seed1", "seed2"] {
        let (p, l) = (plain.join(s), late.join(s));
        // Same weights, Adam state and RNG at every kept checkpoint.
        let files = |d: &Path| json(&d.join("checkpoints/MANIFEST.json"))["files"].clone();
        assert_eq!(files(&p), files(&l), "{s}: checkpoints differ");
        for k in 0..2 {
            assert_eq!(records(&p, k, "eval"), records(&l, k, "eval"), "{s} b{k}");
            assert!(records(&p, k, "test").is_empty());
        }
        // Best-on-dev: same checkpoints chosen, same test numbers.
        let (tp, tl) = (json(&p.join("test.json")), json(&l.join("test.json")));
        assert_eq!(tp["branches"], tl["branches"], "{s}");
        assert!(tp.get("late").is_none());
        // The late records: epochs 2..=4 (after a burn-in of 1), both branches.
        let (a, t) = (records(&l, 0, "test"), records(&l, 1, "test"));
        let epochs: Vec<u64> = a.iter().map(|r| r.0).collect();
        assert_eq!(epochs, vec![1, 2, 3], "{s}");
        let late = &tl["late"];
        assert_eq!(late["epochs"], serde_json::json!([2, 3, 4]));
        let diffs: Vec<f64> = a
            .iter()
            .zip(&t)
            .map(|(a, t)| t.1["rsum"].as_f64().unwrap() - a.1["rsum"].as_f64().unwrap())
            .collect();
        seed_means.push(diffs.iter().sum::<f64>() / diffs.len() as f64);
    }
    let summary = json(&late.join("summary.json"));
    let got: Vec<f64> = summary["late"]["paired"]["diffs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(got.len(), 3);
    for (g, w) in got.iter().zip(&seed_means) {
        assert!((g - w).abs() < 1e-9, "{g} vs {w}");
    }
    assert_eq!(summary["late"]["epoch_total"], 9);
    assert!(json(&plain.join("summary.json")).get("late").is_none());
    let md = std::fs::read_to_string(late.join("summary.md")).unwrap();
    assert!(md.contains("Selection-robust estimate"), "{md}");
    // compare shows both estimates side by side.
    let o = ok(&Command::new(BIN)
        .args(["sweep", "compare"])
        .arg(&late)
        .arg(&plain)
        .arg("--out")
        .arg(tmp.path().join("cmp"))
        .output()
        .unwrap());
    assert!(o.contains("mean over epochs after the burn-in"), "{o}");
    assert!(o.contains("no late test records"), "{o}");
}

#[test]
fn a_cohort_stopped_within_the_burn_in_is_scored_at_its_last_epoch() {
    let (tmp, cfg) = setup();
    let records_run = tmp.path().join("records");
    let fallback = tmp.path().join("fallback");
    sweep(&cfg, &records_run, &["--set", "test_after_epoch=3"]);
    // A burn-in beyond the 4 epochs: no record, so the last checkpoints are scored.
    sweep(&cfg, &fallback, &["--set", "test_after_epoch=9"]);
    for s in ["seed0", "seed1", "seed2"] {
        let r = json(&records_run.join(s).join("test.json"))["late"].clone();
        let f = json(&fallback.join(s).join("test.json"))["late"].clone();
        assert_eq!(r["epochs"], serde_json::json!([4]), "{s}");
        assert_eq!(f["epochs"], serde_json::json!([4]), "{s}");
        assert!(records(&fallback.join(s), 0, "test").is_empty());
        assert_eq!(r["rsum"], f["rsum"], "{s}: the two scoring paths disagree");
    }
}
