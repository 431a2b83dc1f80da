//! End-to-end `dbl train` / `dbl report` on a tiny synthetic set with the
//! `tiny` backbone (dropout 0.4 on): resume bit-exactness, crash-safe saves,
//! determinism, and the report pictures.

use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_dbl");

fn data() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("data");
    let out = Command::new(BIN)
        .args(["synth", "--out"])
        .arg(&d)
        .args(["--train", "40", "--dev", "12", "--test", "12"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (tmp, d)
}

fn train(
    data: &Path,
    out: &Path,
    regime: &str,
    extra: &[&str],
    env: Option<(&str, &str)>,
) -> std::process::Output {
    let mut c = Command::new(BIN);
    c.args(["train", "--data"]).arg(data).arg("--out").arg(out);
    c.args(["--regime", regime, "--epochs", "2", "--seed", "3"]);
    for s in [
        "model.backbone=tiny",
        "model.embed=16",
        "model.word_dim=8",
        "batch_size=16",
        "max_steps_per_epoch=2",
        "threads=1",
        "log_every=1",
        "oas.epochs=2",
    ] {
        c.args(["--set", s]);
    }
    for s in extra {
        c.args(["--set", s]);
    }
    if let Some((k, v)) = env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn resume(run: &Path, env: Option<(&str, &str)>) -> std::process::Output {
    let mut c = Command::new(BIN);
    c.args(["train", "--resume"])
        .arg(run)
        .args(["--set", "stop_after=100"]);
    if let Some((k, v)) = env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn ok(o: &std::process::Output) {
    assert!(
        o.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn files(run: &Path, branches: usize, tag: &str) -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    for k in 0..branches {
        for f in ["model.safetensors", "optim.safetensors"] {
            let p = run.join(format!("branch{k}/{tag}/{f}"));
            if p.exists() {
                v.push(std::fs::read(p).unwrap());
            }
        }
    }
    assert!(!v.is_empty());
    v
}

/// 2 epochs straight vs 1 epoch (stop_after) + --resume + 1 epoch: bitwise
/// identical weights and Adam state, for OSS (K = 2), MSS and OAS.
#[test]
fn resume_is_bit_exact() {
    let (tmp, d) = data();
    for (regime, n) in [("oss", 2), ("mss", 2), ("oas", 2)] {
        let a = tmp.path().join(format!("{regime}_a"));
        let b = tmp.path().join(format!("{regime}_b"));
        ok(&train(&d, &a, regime, &[], None));
        let half = train(&d, &b, regime, &["stop_after=1"], None);
        ok(&half);
        assert!(String::from_utf8_lossy(&half.stdout).contains("--resume"));
        assert_ne!(
            files(&a, n, "last"),
            files(&b, n, "last"),
            "{regime}: half run must differ"
        );
        ok(&resume(&b, None));
        assert_eq!(
            files(&a, n, "last"),
            files(&b, n, "last"),
            "{regime}: resumed run differs"
        );
        // Starting again over a run with checkpoints is refused.
        let again = train(&d, &a, regime, &[], None);
        assert!(!again.status.success());
        assert!(String::from_utf8_lossy(&again.stderr).contains("--resume"));
    }
}

/// Same seed and threads ⇒ identical; another seed ⇒ different.
#[test]
fn training_is_deterministic() {
    let (tmp, d) = data();
    let a = tmp.path().join("a");
    let b = tmp.path().join("b");
    let c = tmp.path().join("c");
    ok(&train(&d, &a, "oss", &["branches=3"], None));
    ok(&train(&d, &b, "oss", &["branches=3"], None));
    ok(&train(&d, &c, "oss", &["branches=3", "seed=4"], None));
    assert_eq!(files(&a, 3, "last"), files(&b, 3, "last"));
    assert_ne!(files(&a, 3, "last"), files(&c, 3, "last"));
}

/// The process aborts while writing a checkpoint (mid-write, and between the
/// two renames): the previous `last` checkpoint survives, still loads and
/// resuming from it reproduces the uninterrupted run.
#[test]
fn crash_during_save_keeps_last_good_checkpoint() {
    let (tmp, d) = data();
    let full = tmp.path().join("full");
    ok(&train(&d, &full, "oss", &[], None));
    for point in ["mid-write", "between-renames"] {
        let run = tmp.path().join(point);
        ok(&train(&d, &run, "oss", &["stop_after=1"], None));
        let before = files(&run, 2, "last");
        let crashed = resume(&run, Some(("DBL_TEST_ABORT_SAVE", point)));
        assert!(!crashed.status.success(), "{point}: the hook must abort");
        let last = run.join("branch0/last");
        let good = if last.join("state.json").exists() {
            last
        } else {
            run.join("branch0/last.old")
        };
        assert!(
            good.join("state.json").exists(),
            "{point}: no complete checkpoint left"
        );
        let m = std::fs::read(good.join("model.safetensors")).unwrap();
        assert!(
            before.contains(&m),
            "{point}: surviving checkpoint is not the last good one"
        );
        ok(&resume(&run, None));
        assert_eq!(
            files(&full, 2, "last"),
            files(&run, 2, "last"),
            "{point}: resume after crash differs"
        );
    }
}

/// `dbl report` writes non-empty PNG and SVG curves.
#[test]
fn report_writes_png_and_svg() {
    let (tmp, d) = data();
    let run = tmp.path().join("run");
    ok(&train(&d, &run, "oss", &[], None));
    let o = Command::new(BIN).arg("report").arg(&run).output().unwrap();
    ok(&o);
    for name in ["loss", "rsum"] {
        let png = std::fs::read(run.join(format!("report/{name}.png"))).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let svg = std::fs::read_to_string(run.join(format!("report/{name}.svg"))).unwrap();
        assert!(
            svg.contains("<svg") && (svg.contains("polyline") || svg.contains("<path")),
            "{name}.svg has no curve"
        );
        // Readable: axis labels with units and a legend naming the branches.
        let unit = if name == "loss" {
            "training step"
        } else {
            "epoch"
        };
        for want in [unit, "anchor (branch 0)", "target (branch 1)"] {
            assert!(svg.contains(want), "{name}.svg lacks {want:?}");
        }
        assert!(png.len() > 10_000, "{name}.png is {} bytes", png.len());
    }
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("branch1"), "{stdout}");
}

/// Unknown keys and invalid backbone options fail before any work, naming the key.
#[test]
fn bad_config_fails_early() {
    let (tmp, d) = data();
    let run = tmp.path().join("run");
    let o = train(&d, &run, "oss", &["loss.margn=0.1"], None);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("margn"));
    let o = train(
        &d,
        &run,
        "oss",
        &["model.backbone=vse", "model.dropout=1.5"],
        None,
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("model") && err.contains("dropout"), "{err}");
    assert!(!run.join("branch0").exists());
}

/// Resuming with a backbone that does not match the checkpoint (here another
/// embedding width) fails before any step, naming the tensor and both shapes,
/// and leaves the checkpoint as it was.
#[test]
fn resume_with_mismatched_backbone_fails_naming_the_tensor() {
    let (tmp, d) = data();
    let run = tmp.path().join("run");
    ok(&train(&d, &run, "baseline", &["stop_after=1"], None));
    let before = std::fs::read(run.join("branch0/last/model.safetensors")).unwrap();
    let o = Command::new(BIN)
        .args(["train", "--resume"])
        .arg(&run)
        .args(["--set", "model.embed=12"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("model.safetensors") && err.contains("expects"),
        "{err}"
    );
    let after = std::fs::read(run.join("branch0/last/model.safetensors")).unwrap();
    assert_eq!(before, after);
}

/// `dbl score` writes the matrix `dbl eval` reads, with the same metrics it
/// prints; a missing branch and bf16 on a head-less backbone are refused.
#[test]
fn score_writes_the_matrix_eval_reads() {
    let (tmp, d) = data();
    let run = tmp.path().join("run");
    ok(&train(&d, &run, "oss", &[], None));
    let sims = tmp.path().join("sims.npy");
    let o = Command::new(BIN)
        .args(["score", "--run"])
        .arg(&run)
        .args(["--split", "test", "--json", "--out"])
        .arg(&sims)
        .output()
        .unwrap();
    ok(&o);
    let scored: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let e = Command::new(BIN)
        .args(["eval", "--protocol", "f30k", "--json", "--sims"])
        .arg(&sims)
        .output()
        .unwrap();
    ok(&e);
    let evaluated: serde_json::Value = serde_json::from_slice(&e.stdout).unwrap();
    assert_eq!(scored, evaluated);
    let header = std::fs::read(&sims).unwrap();
    let text = String::from_utf8_lossy(&header[..128]);
    assert!(text.contains("(12, 60)"), "{text}");

    let refused = |args: &[&str], needle: &str| {
        let o = Command::new(BIN)
            .arg("score")
            .args(args)
            .arg("--run")
            .arg(&run)
            .output()
            .unwrap();
        assert!(!o.status.success(), "{args:?} was accepted");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    };
    refused(&["--branch", "2"], "branches 0..1");
    refused(&["--head-precision", "bf16"], "scan-ave backbone only");
}

/// `patience = 2`: with a learning rate too small to move dev rSum, a 12-epoch
/// run stops two epochs after its best (each branch's best epoch + 2 = the
/// last epoch trained), well before epoch 12; resuming the stopped run trains nothing more.
#[test]
fn patience_stops_when_dev_rsum_stalls() {
    let (tmp, d) = data();
    let run = tmp.path().join("run");
    ok(&train(
        &d,
        &run,
        "oss",
        &["epochs=12", "lr=1e-12", "patience=2"],
        None,
    ));
    let evals = |k: usize| -> Vec<serde_json::Value> {
        std::fs::read_to_string(run.join(format!("branch{k}/metrics.jsonl")))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|r| r["kind"] == "eval")
            .collect()
    };
    let n = evals(0).len();
    assert!(n < 12, "{n} evaluations: patience did not stop the run");
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(run.join("branch0/last/state.json")).unwrap(),
    )
    .unwrap();
    let best_max = (0..2)
        .map(|k| {
            let s: serde_json::Value = serde_json::from_str(
                &std::fs::read_to_string(run.join(format!("branch{k}/last/state.json"))).unwrap(),
            )
            .unwrap();
            s["best_epoch"].as_u64().unwrap()
        })
        .max()
        .unwrap();
    assert_eq!(state["epoch"].as_u64().unwrap(), best_max + 2);
    ok(&resume(&run, None));
    assert_eq!(evals(0).len(), n, "the resumed run trained on");
}

/// Rows of `txt_enc.embed` in a checkpoint's safetensors header.
fn embed_rows(ck: &Path) -> u64 {
    let bytes = std::fs::read(ck.join("model.safetensors")).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    header["txt_enc.embed.weight"]["shape"][0]
        .as_u64()
        .or_else(|| header["txt_enc.embed"]["shape"][0].as_u64())
        .unwrap_or_else(|| panic!("no embedding in {header}"))
}

/// OAS appends `<mask>` (docs/method.md §6.4): the embedding table has V + 1
/// rows, V without the augmentation, and the augmentation changes the trajectory.
#[test]
fn oas_augmentation_adds_the_mask_row() {
    let (tmp, d) = data();
    let v = serde_json::from_str::<serde_json::Value>(
        &std::fs::read_to_string(d.join("vocab.json")).unwrap(),
    )
    .unwrap()["idx"]
        .as_u64()
        .unwrap();
    let on = tmp.path().join("on");
    let off = tmp.path().join("off");
    ok(&train(&d, &on, "oas", &[], None));
    ok(&train(&d, &off, "oas", &["oas.augment=false"], None));
    assert_eq!(embed_rows(&on.join("branch1/last")), v + 1);
    assert_eq!(embed_rows(&off.join("branch1/last")), v);
    let a = std::fs::read_to_string(on.join("branch0/metrics.jsonl")).unwrap();
    let b = std::fs::read_to_string(off.join("branch0/metrics.jsonl")).unwrap();
    let first_loss = |s: &str| {
        serde_json::from_str::<serde_json::Value>(s.lines().next().unwrap()).unwrap()["loss"]
            .clone()
    };
    assert_ne!(first_loss(&a), first_loss(&b));
}
