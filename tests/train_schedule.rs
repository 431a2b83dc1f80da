//! End-to-end `dbl train` records of the learning-rate schedule per regime
//! (the authors' OSS code decays once, their OAS/MSS code at every multiple of
//! `lr_update`; docs/method.md §7) and of the logged loss terms (`peer` is
//! α·L_peer, `peer_unweighted` the authors' `Loss_boo`).

use std::path::Path;
use std::process::Command;

mod support;

const BIN: &str = env!("CARGO_BIN_EXE_dbl");

/// Trains a tiny run for 3 epochs with `lr_update = 1` plus `extra` overrides.
fn train(data: &Path, out: &Path, regime: &str, extra: &[&str]) {
    let mut c = Command::new(BIN);
    c.args(["train", "--data"]).arg(data).arg("--out").arg(out);
    c.args(["--regime", regime, "--epochs", "3", "--seed", "5"]);
    for s in [
        "model.backbone=tiny",
        "model.embed=16",
        "model.word_dim=8",
        "batch_size=16",
        "max_steps_per_epoch=1",
        "threads=1",
        "log_every=1",
        "lr=1e-3",
        "lr_update=1",
        "oas.epochs=3",
        "oas.lr_update=1",
    ]
    .iter()
    .chain(extra)
    {
        c.args(["--set", s]);
    }
    let o = c.output().unwrap();
    assert!(
        o.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The step records of `run/branch{k}/metrics.jsonl`.
fn steps(run: &Path, k: usize) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join(format!("branch{k}/metrics.jsonl")))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["kind"] == "step")
        .collect()
}

/// The learning rate of each (stage, epoch) of branch `k`, in order.
fn lrs(run: &Path, k: usize) -> Vec<(u64, u64, f64)> {
    let mut v: Vec<(u64, u64, f64)> = steps(run, k)
        .iter()
        .map(|r| {
            (
                r["stage"].as_u64().unwrap(),
                r["epoch"].as_u64().unwrap(),
                r["lr"].as_f64().unwrap(),
            )
        })
        .collect();
    v.dedup();
    v
}

/// (regime, overrides, branch, stage, expected lr per epoch).
type Case = (&'static str, &'static [&'static str], usize, u64, [f64; 3]);

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * b.abs()
}

#[test]
fn lr_schedule_is_the_authors_per_regime_and_selectable() {
    let tmp = tempfile::tempdir().unwrap();
    let d = support::synth_with(tmp.path(), 40);
    let (once, every) = ([1e-3, 1e-4, 1e-4], [1e-3, 1e-4, 1e-5]);
    let check = |run: &Path, k: usize, stage: u64, want: &[f64; 3], what: &str| {
        let got: Vec<f64> = lrs(run, k)
            .into_iter()
            .filter(|r| r.0 == stage)
            .map(|r| r.2)
            .collect();
        assert_eq!(got.len(), 3, "{what}: {got:?}");
        assert!(
            got.iter().zip(want).all(|(g, w)| close(*g, *w)),
            "{what}: lr per epoch {got:?}, expected {want:?}"
        );
    };

    let cases: [Case; 6] = [
        ("oss", &[], 1, 1, once),
        ("oss", &["lr_schedule=every"], 1, 1, every),
        ("mss", &[], 1, 1, every),
        ("mss", &["lr_schedule=once"], 1, 1, once),
        ("oas", &[], 0, 1, every),
        ("oas", &[], 1, 2, every),
    ];
    for (i, (regime, extra, k, stage, want)) in cases.iter().enumerate() {
        let run = tmp.path().join(format!("run{i}"));
        train(&d, &run, regime, extra);
        check(
            &run,
            *k,
            *stage,
            want,
            &format!("{regime} {extra:?} stage {stage}"),
        );
    }

    let bad = Command::new(BIN)
        .args(["train", "--data"])
        .arg(&d)
        .arg("--out")
        .arg(tmp.path().join("bad"))
        .args(["--set", "lr_schedule=twice"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("lr_schedule") || err.contains("twice"),
        "{err}"
    );
}

/// `loss = base + peer`, `peer = α·peer_unweighted` (α = 0.5 here), and the
/// first branch of an OSS cohort, which has no peers, logs 0 for both.
#[test]
fn logged_peer_terms_are_weighted_and_unweighted() {
    let tmp = tempfile::tempdir().unwrap();
    let d = support::synth_with(tmp.path(), 40);
    for regime in ["oss", "mss"] {
        let run = tmp.path().join(regime);
        train(&d, &run, regime, &["loss.alpha=0.5"]);
        let recs = steps(&run, 1);
        assert!(!recs.is_empty());
        for r in &recs {
            let f = |k: &str| {
                r[k].as_f64()
                    .unwrap_or_else(|| panic!("{regime}: no `{k}` in {r}"))
            };
            assert!((f("loss") - f("base") - f("peer")).abs() < 1e-9, "{r}");
            assert!((f("peer") - 0.5 * f("peer_unweighted")).abs() < 1e-9, "{r}");
            assert!(f("peer_unweighted") > 0.0, "{regime}: {r}");
        }
    }
    for r in steps(&tmp.path().join("oss"), 0) {
        assert_eq!(r["peer"].as_f64(), Some(0.0));
        assert_eq!(r["peer_unweighted"].as_f64(), Some(0.0));
    }
}
