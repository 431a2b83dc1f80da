//! Issue 25 §4: one writer per sweep folder, no seed reported under a
//! configuration it was not trained with, `--seeds` bounded as command-line
//! input, and no panic when the reader of stdout goes away (`| head -1`).
//! Each failed before its fix: a second sweep wrote into a folder in use, a
//! rerun adopted seeds of another configuration, a huge range was expanded
//! (aborting on allocation), and `println!` panicked on the closed pipe.
//! Also the earlier probe's input and output paths: splits of different
//! widths accepted by `inspect`, symbolic link loops read as missing files,
//! missing checkpoints unnamed by the importers, an `--out` that is a file
//! reported as a lock error, and a missing output folder reported under a
//! temporary file name.

mod support;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use support::BIN;
use support::ok;
use support::sweep::tiny_config;

/// Synthetic data and a tiny-model sweep config with `lr`.
fn setup(lr: f64) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let d = support::synth_sized(tmp.path(), 40, 12, 12);
    let cfg = config(tmp.path(), &d, "a.toml", lr);
    (tmp, d, cfg)
}

fn config(dir: &Path, data: &Path, name: &str, lr: f64) -> PathBuf {
    tiny_config(
        &dir.join(name),
        data,
        "baseline",
        1,
        &format!("lr = {lr}\n"),
    )
}

fn sweep(cfg: &Path, seeds: &str, out: &Path) -> Output {
    support::sweep::sweep(cfg, seeds, out, &[])
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

fn dbl(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

/// Runs `dbl ARGS…` (paths as given) → stderr, asserting it failed.
fn fails(args: &[&dyn AsRef<std::ffi::OsStr>]) -> String {
    let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_ref()).collect();
    let o = dbl(&args);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(!o.status.success(), "{args:?} succeeded: {err}");
    err
}

/// `dbl inspect` used to accept a test split 32 dims wide beside a 2048-dim
/// training split; it must name the split that disagrees and what it expected.
#[test]
fn inspect_refuses_splits_of_different_widths() {
    let tmp = tempfile::tempdir().unwrap();
    let data = support::synth(tmp.path());
    dbl::data::npy::write_f32(
        data.join("test_ims.npy"),
        &[12, 36, 32],
        &[0.5; 12 * 36 * 32],
    )
    .unwrap();
    let err = fails(&[&"inspect", &data]);
    assert!(
        err.contains("test_ims.npy: features are 36 regions x 32 dims")
            && err.contains("train_ims.npy (the training split) has 36 x 2048"),
        "{err}"
    );
}

/// A split file that is a symbolic link loop (to itself, or two links to
/// each other) used to read as "missing"; it must be named as a loop.
#[test]
fn a_symlink_loop_is_named_as_one() {
    let tmp = tempfile::tempdir().unwrap();
    let data = support::synth(tmp.path());
    let ims = data.join("test_ims.npy");
    std::fs::remove_file(&ims).unwrap();
    std::os::unix::fs::symlink("test_ims.npy", &ims).unwrap();
    let err = fails(&[&"inspect", &data]);
    assert!(
        err.contains("test_ims.npy") && err.contains("symbolic link loop"),
        "{err}"
    );
    assert!(!err.contains("missing"), "{err}");
    std::fs::remove_file(&ims).unwrap();
    std::os::unix::fs::symlink("other", &ims).unwrap();
    std::os::unix::fs::symlink("test_ims.npy", data.join("other")).unwrap();
    let err = fails(&[&"inspect", &data]);
    assert!(
        err.contains("test_ims.npy") && err.contains("symbolic link loop"),
        "{err}"
    );
    // The dataset folder itself a loop.
    let d = tmp.path().join("loop");
    std::os::unix::fs::symlink("loop", &d).unwrap();
    let err = fails(&[&"inspect", &d]);
    assert!(err.contains("symbolic link loop"), "{err}");
}

/// `import-torch` and `import` name a missing checkpoint before looking for
/// Python (a missing torch used to hide the mistyped path).
#[test]
fn importers_name_a_missing_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("no_such_model.pth");
    for err in [
        fails(&[
            &"import-torch",
            &missing,
            &tmp.path().join("w.safetensors"),
            &"--python",
            &"/nonexistent/python3",
        ]),
        fails(&[
            &"import",
            &missing,
            &"--out",
            &tmp.path().join("run"),
            &"--python",
            &"/nonexistent/python3",
        ]),
    ] {
        assert!(
            err.contains(&missing.display().to_string()) && err.contains("does not exist"),
            "{err}"
        );
        assert!(!err.contains("torch"), "{err}");
    }
}

/// Every command that takes an output folder says that an `--out` naming a
/// file is a file (train and sweep used to report a lock error, index build
/// "already exists"), before doing any work.
#[test]
fn an_out_that_is_a_file_is_named_as_a_file() {
    let (tmp, data, _) = setup(0.0002);
    let file = tmp.path().join("a_file");
    std::fs::write(&file, "x").unwrap();
    // A training config whose `out` is the file.
    let cfg = tmp.path().join("t.toml");
    let text = std::fs::read_to_string(tmp.path().join("a.toml")).unwrap();
    std::fs::write(
        &cfg,
        format!("out = {:?}\n{text}", file.display().to_string()),
    )
    .unwrap();
    let run = support::run(tmp.path(), &data, "run", dbl::model::Backbone::Vse, 0);
    let cases: Vec<Vec<&dyn AsRef<std::ffi::OsStr>>> = vec![
        vec![&"train", &"--config", &cfg],
        vec![
            &"sweep",
            &"--config",
            &cfg,
            &"--seeds",
            &"0",
            &"--out",
            &file,
        ],
        vec![&"sweep", &"compare", &run, &"--out", &file],
        vec![&"synth", &"--out", &file],
        vec![&"demo", &"--quick", &"--out", &file],
        vec![&"import", &file, &"--out", &file],
    ];
    let idx_images = data.join("test_ims.npy");
    let idx_caps = data.join("test_caps.txt");
    let mut all = cases;
    all.push(vec![
        &"index",
        &"build",
        &"--run",
        &run,
        &"--images",
        &idx_images,
        &"--captions",
        &idx_caps,
        &"--out",
        &file,
    ]);
    all.push(vec![
        &"explain",
        &"--run",
        &run,
        &"--image-row",
        &"0",
        &"--caption-row",
        &"0",
        &"--out",
        &file,
    ]);
    for args in all {
        let err = fails(&args);
        assert!(
            err.contains(&file.display().to_string()) && err.contains("is a file"),
            "{:?}: {err}",
            args.iter().map(|a| a.as_ref()).collect::<Vec<_>>()
        );
        assert!(!err.contains("lock"), "{err}");
    }
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "x",
        "left as it was"
    );
}

/// A file output whose folder does not exist (or is a file) is named as the
/// user gave it, before any work; `score` used to fail after scoring, naming
/// its temporary file (`x.npy.tmpPID`).
#[test]
fn a_missing_output_folder_is_named_as_given() {
    let tmp = tempfile::tempdir().unwrap();
    let data = support::synth(tmp.path());
    let run = support::run(tmp.path(), &data, "run", dbl::model::Backbone::Vse, 0);
    let missing = tmp.path().join("no_such_folder");
    let file = tmp.path().join("a_file");
    std::fs::write(&file, "x").unwrap();
    let pth = tmp.path().join("m.pth");
    std::fs::write(&pth, "not read").unwrap();
    for (parent, words) in [
        (&missing, "does not exist"),
        (&file, "is a file, where a folder was expected"),
    ] {
        let (npy, json, st) = (
            parent.join("x.npy"),
            parent.join("v.json"),
            parent.join("w.safetensors"),
        );
        for (args, out) in [
            (
                vec![
                    &"score" as &dyn AsRef<std::ffi::OsStr>,
                    &"--run",
                    &run,
                    &"--split",
                    &"test",
                    &"--out",
                    &npy,
                ],
                &npy,
            ),
            (
                vec![
                    &"vocab",
                    &"build",
                    &"--captions",
                    &data.join("test_caps.txt"),
                    &"--out",
                    &json,
                ],
                &json,
            ),
            (vec![&"import-torch", &pth, &st], &st),
        ] {
            let err = fails(&args);
            assert!(
                err.contains(&out.display().to_string())
                    && err.contains(&format!("its folder {} {words}", parent.display())),
                "{err}"
            );
            assert!(!err.contains(&format!("{}.tmp", out.display())), "{err}");
        }
    }
}
