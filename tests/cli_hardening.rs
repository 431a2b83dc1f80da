//! Issue 25 §4: one writer per sweep folder, no seed reported under a
//! configuration it was not trained with, `--seeds` bounded as command-line
//! input, and no panic when the reader of stdout goes away (`| head -1`).
//! Each failed before its fix: a second sweep wrote into a folder in use, a
//! rerun adopted seeds of another configuration, a huge range was expanded
//! (aborting on allocation), and `println!` panicked on the closed pipe.

mod support;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use support::{BIN, ok};

/// Synthetic data and a tiny-model sweep config with `lr`.
fn setup(lr: f64) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("data");
    ok(&Command::new(BIN)
        .args(["synth", "--out"])
        .arg(&d)
        .args(["--train", "40", "--dev", "12", "--test", "12"])
        .output()
        .unwrap());
    let cfg = config(tmp.path(), &d, "a.toml", lr);
    (tmp, d, cfg)
}

fn config(dir: &Path, data: &Path, name: &str, lr: f64) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(
        &p,
        format!(
            "data = {:?}\nregime = \"baseline\"\nepochs = 1\nbatch_size = 8\nthreads = 1\n\
             lr = {lr}\n[model]\nbackbone = \"tiny\"\nembed = 16\n",
            data.display().to_string()
        ),
    )
    .unwrap();
    p
}

fn sweep(cfg: &Path, seeds: &str, out: &Path) -> Output {
    Command::new(BIN)
        .args(["sweep", "--config"])
        .arg(cfg)
        .args(["--seeds", seeds, "--out"])
        .arg(out)
        .output()
        .unwrap()
}

#[test]
fn a_sweep_folder_in_use_is_refused_naming_its_holder() {
    let (tmp, _, cfg) = setup(0.0002);
    let out = tmp.path().join("sw");
    let held = dbl::train::run_lock::RunLock::acquire(&out).unwrap();
    let o = sweep(&cfg, "0", &out);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains(&format!("PID {}", std::process::id())),
        "{err}"
    );
    assert!(!out.join("sweep.json").exists(), "nothing written");
    drop(held);
    ok(&sweep(&cfg, "0", &out));
}

/// What two racing sweeps left: `sweep.json` names config A while seed 0 ran
/// config B. A rerun with A must not report B's numbers as A's.
#[test]
fn seeds_trained_under_another_configuration_are_refused() {
    let (tmp, data, a) = setup(0.0002);
    let b = config(tmp.path(), &data, "b.toml", 0.0005);
    let out = tmp.path().join("sw");
    ok(&sweep(&b, "0", &out));
    let mut m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("sweep.json")).unwrap()).unwrap();
    m["config"] = std::fs::read_to_string(&a).unwrap().into();
    std::fs::write(out.join("sweep.json"), m.to_string()).unwrap();
    let o = sweep(&a, "0", &out);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains("seed 0 was trained with different") && err.contains("lr"),
        "{err}"
    );
}

#[test]
fn seed_ranges_are_bounded_usage_errors() {
    let (tmp, _, cfg) = setup(0.0002);
    let out = tmp.path().join("sw");
    for seeds in [
        "0..18446744073709551615",
        "0..=100000",
        "9223372036854775808",
        "x",
    ] {
        let o = sweep(&cfg, seeds, &out);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{seeds}: {err}");
        assert!(err.contains("--seeds"), "{seeds}: {err}");
        assert!(!err.contains(".toml"), "not blamed on the config: {err}");
    }
    assert!(!out.exists(), "nothing written");
}

/// `dbl vocab show V.json | head -1`: the reader closes the pipe at once.
#[test]
fn a_closed_stdout_ends_quietly() {
    let (_tmp, data, _) = setup(0.0002);
    let mut c = Command::new(BIN)
        .args(["vocab", "show"])
        .arg(data.join("vocab.json"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(c.stdout.take());
    let mut err = String::new();
    c.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    c.wait().unwrap();
    assert!(!err.contains("panicked"), "{err}");
    assert!(!err.contains("Broken pipe"), "{err}");
}
