//! End-to-end `dbl sweep` / `dbl sweep compare` on a tiny synthetic set with
//! the test-only `tiny` backbone: an interrupted seed resumes to the same
//! result as an uninterrupted sweep (same seed, same thread count ⇒ identical
//! numbers), finished seeds are skipped, a changed configuration is refused,
//! and the summaries agree with the per-seed results.

mod support;

use std::path::PathBuf;
use std::process::{Command, Output};

use support::sweep::{json, tiny_config};
use support::{BIN, ok};

/// The seeds every sweep of this file runs.
const SEEDS: &str = "0..2";

fn setup() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let d = support::synth_sized(tmp.path(), 40, 12, 12);
    let cfg = tiny_config(&tmp.path().join("run.toml"), &d, "oss", 3, "");
    (tmp, cfg)
}

fn sweep(cfg: &std::path::Path, out: &std::path::Path, extra: &[&str]) -> Output {
    support::sweep::sweep(cfg, SEEDS, out, extra)
}

#[test]
fn interrupted_sweep_resumes_to_the_uninterrupted_result() {
    let (tmp, cfg) = setup();
    let straight = tmp.path().join("straight");
    let out1 = ok(&sweep(&cfg, &straight, &[]));
    assert!(out1.contains("seed 0: test rSum anchor"), "{out1}");

    let cut = tmp.path().join("cut");
    let o = ok(&sweep(&cfg, &cut, &["--stop-after", "1"]));
    assert!(o.contains("stopped during seed 0"), "{o}");
    assert!(cut.join("seed0/checkpoints/MANIFEST.json").is_file());
    assert!(!cut.join("seed0/test.json").exists());
    assert!(!cut.join("summary.json").exists());
    // Changing the configuration of a started sweep is refused and changes nothing.
    let o = sweep(&cfg, &cut, &["--set", "lr=0.1"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("different configuration"));
    // Resume: seed 0 continues from its checkpoint, seed 1 runs.
    let o = ok(&sweep(&cfg, &cut, &[]));
    assert!(o.contains("seed 1: test rSum"), "{o}");
    for s in ["seed0", "seed1"] {
        let a = json(&straight.join(s).join("test.json"));
        let b = json(&cut.join(s).join("test.json"));
        for k in 0..2 {
            assert_eq!(
                a["branches"][k]["test"], b["branches"][k]["test"],
                "{s} branch {k}"
            );
        }
    }
    // A finished sweep is not retrained: the result files are untouched.
    let before = std::fs::metadata(cut.join("seed0/test.json"))
        .unwrap()
        .modified()
        .unwrap();
    ok(&sweep(&cfg, &cut, &[]));
    let after = std::fs::metadata(cut.join("seed0/test.json"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(before, after);

    // Summary: means and paired differences agree with the per-seed records.
    let s = json(&cut.join("summary.json"));
    let rs = |seed: &str, k: usize| {
        json(&cut.join(seed).join("test.json"))["branches"][k]["test"]["rsum"]
            .as_f64()
            .unwrap()
    };
    let (a0, a1, t0, t1) = (
        rs("seed0", 0),
        rs("seed1", 0),
        rs("seed0", 1),
        rs("seed1", 1),
    );
    let mean_anchor = s["branches"][0]["rsum"]["mean"].as_f64().unwrap();
    assert!((mean_anchor - (a0 + a1) / 2.0).abs() < 1e-9);
    let diffs: Vec<f64> = s["paired_rsum"]["diffs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    // JSON floats need not round-trip to the last bit: compare to 1e-9.
    assert_eq!(diffs.len(), 2);
    for (d, want) in diffs.iter().zip([t0 - a0, t1 - a1]) {
        assert!(
            (d - want).abs() < 1e-9,
            "{diffs:?} vs {}, {}",
            t0 - a0,
            t1 - a1
        );
    }
    let md = std::fs::read_to_string(cut.join("summary.md")).unwrap();
    for want in ["anchor (branch 0)", "target (branch 1)", "95 % CI", "rSum"] {
        assert!(md.contains(want), "summary.md lacks {want}:\n{md}");
    }
    let svg = std::fs::read_to_string(cut.join("summary.svg")).unwrap();
    for want in ["test rSum (of 600)", "anchor", "target", "cut"] {
        assert!(svg.contains(want), "summary.svg lacks {want}");
    }
    assert!(std::fs::read(cut.join("summary.png")).unwrap().len() > 10_000);
    // One dev-curve panel per seed, each branch named.
    let curves = std::fs::read_to_string(cut.join("curves.svg")).unwrap();
    for want in [
        "cut, seed 0",
        "cut, seed 1",
        "dev rSum (of 600)",
        "anchor",
        "target",
    ] {
        assert!(curves.contains(want), "curves.svg lacks {want}");
    }
    assert!(std::fs::read(cut.join("curves.png")).unwrap().len() > 10_000);

    // summarize: a deleted summary is rewritten from the seeds, identical.
    let md_before = std::fs::read_to_string(cut.join("summary.md")).unwrap();
    std::fs::remove_file(cut.join("summary.md")).unwrap();
    ok(&Command::new(BIN)
        .args(["sweep", "summarize"])
        .arg(&cut)
        .output()
        .unwrap());
    assert_eq!(
        std::fs::read_to_string(cut.join("summary.md")).unwrap(),
        md_before
    );

    // compare: both sweeps side by side.
    let cmp = tmp.path().join("cmp");
    let o = ok(&Command::new(BIN)
        .args(["sweep", "compare"])
        .arg(&straight)
        .arg(&cut)
        .arg("--out")
        .arg(&cmp)
        .output()
        .unwrap());
    assert!(o.contains("| straight |") && o.contains("| cut |"), "{o}");
    assert!(cmp.join("compare.svg").is_file() && cmp.join("compare.png").is_file());

    // --baseline: every target against straight's anchor, paired by seed.
    // straight and cut trained the same seeds identically, so cut's target
    // against straight's anchor is cut's own target − anchor.
    let o = ok(&Command::new(BIN)
        .args(["sweep", "compare"])
        .arg(&straight)
        .arg(&cut)
        .arg("--baseline")
        .arg(&straight)
        .arg("--out")
        .arg(&cmp)
        .output()
        .unwrap());
    assert!(o.contains("target − straight anchor rSum"), "{o}");
    let mean = (t0 - a0 + t1 - a1) / 2.0;
    let row = o
        .lines()
        .find(|l| l.starts_with("| cut |") && l.contains("target"))
        .unwrap_or_else(|| panic!("no cut target row:\n{o}"));
    let want = format!("mean {mean:+.1}");
    assert_eq!(row.matches(&want).count(), 2, "{row}");
    assert!(row.ends_with("of 2 seeds |"), "{row}");
    // compare.json carries the same pairing.
    // The picture's paired panel shows the baseline pairing too.
    let svg = std::fs::read_to_string(cmp.join("compare.svg")).unwrap();
    assert!(
        svg.contains("straight anchor (mean, 95 % CI)"),
        "compare.svg lacks the baseline series"
    );
    let j = json(&cmp.join("compare.json"));
    let cut_row = j
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "cut")
        .unwrap();
    assert_eq!(cut_row["vs_baseline"]["baseline"], "straight");
    let got = cut_row["vs_baseline"]["paired"]["mean"].as_f64().unwrap();
    assert!((got - mean).abs() < 1e-9, "{got} vs {mean}");
    assert_eq!(
        cut_row["vs_baseline"]["paired"]["diffs"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

/// A seed interrupted before its first checkpoint starts over; bad seed lists are refused.
#[test]
fn seed_without_checkpoint_restarts_and_bad_seeds_fail() {
    let (tmp, cfg) = setup();
    let out = tmp.path().join("sw");
    std::fs::create_dir_all(out.join("seed0/branch0")).unwrap();
    std::fs::write(out.join("seed0/branch0/metrics.jsonl"), "").unwrap();
    let o = ok(&Command::new(BIN)
        .args(["sweep", "--config"])
        .arg(&cfg)
        .args(["--seeds", "0", "--out"])
        .arg(&out)
        .output()
        .unwrap());
    assert!(o.contains("seed 0: test rSum"), "{o}");
    let o = Command::new(BIN)
        .args(["sweep", "--config"])
        .arg(&cfg)
        .args(["--seeds", "3..1", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--seeds"));
}

/// `--extend-epochs`: a 2-epoch sweep extended to 3 equals a 3-epoch sweep
/// (same seeds, same thread count ⇒ identical test numbers); lowering is
/// refused, and so is extending MSS, which leaves its manifest untouched.
#[test]
fn extended_sweep_equals_the_longer_sweep() {
    let (tmp, cfg3) = setup();
    let text = std::fs::read_to_string(&cfg3).unwrap();
    let cfg2 = tmp.path().join("run2.toml");
    std::fs::write(&cfg2, text.replace("epochs = 3", "epochs = 2")).unwrap();
    let long = tmp.path().join("long");
    ok(&sweep(&cfg3, &long, &[]));
    let short = tmp.path().join("short");
    ok(&sweep(&cfg2, &short, &[]));
    let o = ok(&sweep(&cfg2, &short, &["--extend-epochs", "3"]));
    assert!(o.contains("seed 1: test rSum"), "{o}");
    for s in ["seed0", "seed1"] {
        let a = json(&long.join(s).join("test.json"));
        let b = json(&short.join(s).join("test.json"));
        assert_eq!(a["branches"], b["branches"], "{s}");
        // wall_seconds covers every invocation, the 2-epoch one included.
        let before = json(&short.join(s).join("test.epochs2.json"))["wall_seconds"]
            .as_f64()
            .unwrap();
        assert!(b["wall_seconds"].as_f64().unwrap() > before, "{s}");
    }
    // The extension is recorded: the plain command keeps 3 epochs (nothing retrains).
    ok(&sweep(&cfg2, &short, &[]));
    assert!(!short.join("seed0/test.epochs3.json").exists());
    let o = sweep(&cfg2, &short, &["--extend-epochs", "2"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("below the 3 epochs"));

    let mss = tmp.path().join("mss.toml");
    std::fs::write(&mss, text.replace("regime = \"oss\"", "regime = \"mss\"")).unwrap();
    let out = tmp.path().join("mss");
    let o = sweep(&mss, &out, &["--extend-epochs", "5"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("cannot be extended"), "{err}");
    let m = std::fs::read_to_string(out.join("sweep.json")).unwrap();
    assert!(!m.contains("\"epochs\""), "{m}");
}
