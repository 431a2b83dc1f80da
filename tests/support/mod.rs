//! Shared fixtures of the CLI tests: a tiny synthetic data set
//! (`dbl synth`, 12 test images × 36 regions × 2048 features, 60 captions)
//! and a run folder holding an untrained scan-ave or vse model at small
//! sizes (d = 16), written as `dbl train` lays a run out.

#![allow(dead_code)]

pub mod http;
pub mod parity;
pub mod sweep;

use std::path::{Path, PathBuf};
use std::process::Command;

use dbl::data::vocab::Vocab;
use dbl::model::weights;
use dbl::model::{Backbone, Model, ModelConfig};
use dbl::store::{BranchSave, Store};

pub const BIN: &str = env!("CARGO_BIN_EXE_dbl");

/// Generates the data set into `dir/data` (20 training images).
pub fn synth(dir: &Path) -> PathBuf {
    synth_with(dir, 20)
}

/// Generates the data set into `dir/data` with `train` training images.
pub fn synth_with(dir: &Path, train: usize) -> PathBuf {
    synth_sized(dir, train, 12, 12)
}

/// Generates the data set into `dir/data` with `train`, `dev` and `test` images.
pub fn synth_sized(dir: &Path, train: usize, dev: usize, test: usize) -> PathBuf {
    let d = dir.join("data");
    let out = Command::new(BIN)
        .args(["synth", "--out"])
        .arg(&d)
        .args(["--train", &train.to_string()])
        .args(["--dev", &dev.to_string(), "--test", &test.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    d
}

/// Writes a run folder `dir/name` with one branch of `backbone` (seed `seed`).
pub fn run(dir: &Path, data: &Path, name: &str, backbone: Backbone, seed: u64) -> PathBuf {
    let vocab = Vocab::load(data.join("vocab.json")).unwrap();
    let cfg = ModelConfig {
        embed: 16,
        word_dim: 8,
        sim_dim: 8,
        ..ModelConfig::new(backbone, vocab.len())
    };
    let model = Model::new(&cfg, seed).unwrap();
    let run = dir.join(name);
    std::fs::create_dir_all(run.join("branch0")).unwrap();
    // One committed checkpoint (last = best), as `dbl train` writes it.
    let mut store = Store::open(&run).unwrap();
    let files = vec![("model.safetensors", weights::to_bytes(&model).unwrap())];
    store
        .commit(
            &[BranchSave {
                k: 0,
                files,
                best: true,
            }],
            &[],
        )
        .unwrap();
    let config = serde_json::json!({
        "data": data,
        "vocab": null,
        "threads": 1,
        "model": {
            "backbone": backbone.name(),
            "embed": 16, "word_dim": 8, "sim_dim": 8,
            "dropout": 0.4, "smooth": 9.0, "vse_pool": "mean"
        }
    });
    std::fs::write(run.join("config.json"), config.to_string()).unwrap();
    run
}

/// `dbl index build` of the test split with `run`; extra args appended.
pub fn build_index(run: &Path, data: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(["index", "build", "--threads", "1", "--run"])
        .arg(run)
        .arg("--images")
        .arg(data.join("test_ims.npy"))
        .arg("--captions")
        .arg(data.join("test_caps.txt"))
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

/// In `dir`: the data set, an untrained scan-ave run (seed 3) and its index
/// of the test split (`extra`: more `index build` flags) → (data, run, index).
pub fn scan_index(dir: &Path, extra: &[&str]) -> (PathBuf, PathBuf, PathBuf) {
    let data = synth(dir);
    let run = run(dir, &data, "run", Backbone::ScanAve, 3);
    let idx = dir.join("idx");
    ok(&build_index(&run, &data, &idx, extra));
    (data, run, idx)
}

/// Asserts success and returns stdout.
pub fn ok(o: &std::process::Output) -> String {
    assert!(
        o.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}
