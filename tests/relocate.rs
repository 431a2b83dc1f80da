//! Run folders and index folders that move (README "Moving runs and
//! indexes"): trained and indexed with relative paths from one working
//! directory, then moved together with their data, used from another working
//! directory (score, search, resume), and a run moved without its data used
//! with `--data` given again (index build and search need nothing outside
//! the run folder: it keeps a copy of its vocabulary).

use std::path::Path;
use std::process::{Command, Output};

mod support;

const BIN: &str = env!("CARGO_BIN_EXE_dbl");

fn dbl(cwd: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .current_dir(cwd)
        .args(args)
        .output()
        .unwrap()
}

fn ok(o: Output, what: &str) -> String {
    assert!(
        o.status.success(),
        "{what}: stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn search(cwd: &Path, index: &str) -> serde_json::Value {
    let out = ok(
        dbl(
            cwd,
            &[
                "search", "--index", index, "--text", "a dog", "--json", "--k", "3",
            ],
        ),
        "search",
    );
    serde_json::from_str(&out).unwrap()
}

#[test]
fn runs_and_indexes_work_after_a_move() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    std::fs::create_dir_all(&a).unwrap();
    support::synth_with(&a, 20);
    // Train (stopping after one of two epochs) and index with paths relative to `a`.
    let mut train = vec![
        "train", "--data", "data", "--out", "runs/r", "--regime", "baseline",
    ];
    train.extend(["--epochs", "2"]);
    for s in [
        "model.backbone=vse",
        "model.embed=16",
        "model.word_dim=8",
        "batch_size=10",
        "max_steps_per_epoch=1",
        "threads=1",
        "stop_after=1",
    ] {
        train.extend(["--set", s]);
    }
    ok(dbl(&a, &train), "train");
    assert!(
        a.join("runs/r/vocab.json").is_file(),
        "the run keeps its vocabulary"
    );
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(a.join("runs/r/config.json")).unwrap())
            .unwrap();
    assert_eq!(config["data"], "../../data", "{config}");
    let build = [
        "index",
        "build",
        "--run",
        "runs/r",
        "--images",
        "data/test_ims.npy",
        "--out",
        "idx",
    ];
    ok(dbl(&a, &build), "index build");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(a.join("idx/manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["model"]["run"], "../runs/r", "{manifest}");
    let score = ["score", "--run", "runs/r", "--split", "test", "--json"];
    let before = ok(dbl(&a, &score), "score");
    let hits = search(&a, "idx");

    // Move everything and work from the parent folder.
    let b = tmp.path().join("b");
    std::fs::rename(&a, &b).unwrap();
    let top = tmp.path();
    let moved_score = ["score", "--run", "b/runs/r", "--split", "test", "--json"];
    assert_eq!(ok(dbl(top, &moved_score), "score after the move"), before);
    assert_eq!(search(top, "b/idx"), hits);
    // The moved run resumes from another working directory.
    ok(
        dbl(
            top,
            &["train", "--resume", "b/runs/r", "--set", "stop_after=5"],
        ),
        "resume after the move",
    );
    let metrics = std::fs::read_to_string(b.join("runs/r/branch0/metrics.jsonl")).unwrap();
    assert!(metrics.contains("\"epoch\": 1") || metrics.contains("\"epoch\":1"));

    // The run alone, without its data: scoring names the missing data and
    // works with --data; an index builds from it and answers.
    let c = tmp.path().join("c");
    std::fs::create_dir_all(&c).unwrap();
    std::fs::rename(b.join("runs/r"), c.join("r")).unwrap();
    let lost = dbl(top, &["score", "--run", "c/r", "--split", "test"]);
    assert!(!lost.status.success());
    let err = String::from_utf8_lossy(&lost.stderr);
    assert!(err.contains("data"), "{err}");
    let again = [
        "score", "--run", "c/r", "--branch", "0", "--split", "test", "--json", "--data", "b/data",
    ];
    ok(dbl(top, &again), "score with --data");
    let build = [
        "index",
        "build",
        "--run",
        "c/r",
        "--images",
        "b/data/test_ims.npy",
        "--out",
        "c/idx",
    ];
    ok(dbl(top, &build), "index build from the moved run");
    assert_eq!(search(&c, "idx")["hits"].as_array().map(Vec::len), Some(3));
}

/// `config.json` as dbl wrote it before the one `ModelConfig`
/// (`tests/fixtures/runs/`): today's `dbl train` writes the same file for the
/// same command, and a run folder holding the old file scores and resumes.
#[test]
fn a_run_config_written_before_the_one_model_config_still_reads() {
    let tmp = tempfile::tempdir().unwrap();
    support::synth(tmp.path());
    let sets = [
        "oas.epochs=1",
        "model.backbone=sgr",
        "model.embed=16",
        "model.word_dim=8",
        "model.sim_dim=8",
        "max_steps_per_epoch=1",
        "batch_size=8",
        "threads=1",
        "oas.augment=false",
    ];
    let mut args = vec![
        "train", "--data", "data", "--out", "run", "--regime", "oas", "--epochs", "1",
    ];
    for s in &sets {
        args.extend(["--set", s]);
    }
    ok(dbl(tmp.path(), &args), "train");
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/runs/config_fb51c74.json");
    let old: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&fixture).unwrap()).unwrap();
    let config = tmp.path().join("run/config.json");
    let mut now: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    // The one key added since (unset here); every other key as before.
    let anchor = now["oas"].as_object_mut().unwrap().remove("anchor");
    assert_eq!(anchor, Some(serde_json::Value::Null));
    assert_eq!(now, old, "config.json's format changed");
    std::fs::copy(&fixture, &config).unwrap();
    ok(
        dbl(tmp.path(), &["score", "--run", "run", "--branch", "0"]),
        "score of the old config",
    );
    ok(
        dbl(
            tmp.path(),
            &["train", "--resume", "run", "--set", "oas.epochs=2"],
        ),
        "resume of the old config",
    );
}
