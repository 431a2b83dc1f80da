//! End-to-end `dbl train` / `dbl report` on a tiny synthetic set with the
//! `tiny` backbone (dropout 0.4 on): resume bit-exactness, crash-safe saves,
//! determinism, and the report pictures.

use std::path::{Path, PathBuf};
use std::process::Command;

use dbl::store::{CRASH_ENV, Store, Tag};

mod support;

const BIN: &str = env!("CARGO_BIN_EXE_dbl");

fn data() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let d = support::synth_with(tmp.path(), 40);
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

/// Every branch's `tag` weights and Adam state, read through the store
/// (so every file is checksum-verified).
fn files(run: &Path, branches: usize, tag: &str) -> Vec<Vec<u8>> {
    let store = Store::open(run).unwrap();
    let tag = Tag::parse(tag).unwrap();
    let mut v = Vec::new();
    for k in 0..branches {
        for f in ["model.safetensors", "optim.safetensors"] {
            if store.has_file(k, tag, f) {
                v.push(store.read(k, tag, f).unwrap().1);
            }
        }
    }
    assert!(!v.is_empty());
    v
}

/// (stage, epoch) of every branch's `last` checkpoint.
fn epochs(run: &Path, branches: usize) -> Vec<(u64, u64)> {
    let store = Store::open(run).unwrap();
    (0..branches)
        .map(|k| {
            let s: serde_json::Value =
                serde_json::from_slice(&store.read(k, Tag::Last, "state.json").unwrap().1).unwrap();
            (s["stage"].as_u64().unwrap(), s["epoch"].as_u64().unwrap())
        })
        .collect()
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

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let t = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &t);
        } else {
            std::fs::copy(e.path(), t).unwrap();
        }
    }
}

/// Crash consistency, end to end: for one branch (baseline) and a cohort
/// (OSS, K = 2), a run stopped after epoch 1 is resumed with the process
/// aborted (`DBL_TEST_CRASH_AT`) before each filesystem step of the epoch-2
/// save in turn, then crashed again at the same step, then resumed cleanly.
/// After every crash a loadable checkpoint remains whose branches are all at
/// one epoch (1, or 2 once the commit point has passed) and which is the
/// uninterrupted run's; the final resume is byte-identical to it.
#[test]
fn crash_at_every_save_step_keeps_a_consistent_checkpoint() {
    let (tmp, d) = data();
    for (regime, n) in [("baseline", 1), ("oss", 2)] {
        let full = tmp.path().join(format!("{regime}_full"));
        ok(&train(&d, &full, regime, &[], None));
        let half = tmp.path().join(format!("{regime}_half"));
        ok(&train(&d, &half, regime, &["stop_after=1"], None));
        let at_1 = (files(&half, n, "last"), epochs(&half, n));
        let at_2 = (files(&full, n, "last"), epochs(&full, n));
        assert!(at_1.1.iter().all(|&e| e == (1, 1)) && at_2.1.iter().all(|&e| e == (1, 2)));
        let mut step = 1;
        loop {
            let run = tmp.path().join(format!("{regime}_{step}"));
            copy_dir(&half, &run);
            let s = step.to_string();
            let crashed = resume(&run, Some((CRASH_ENV, &s)));
            if crashed.status.success() {
                // The save has fewer steps than this: every one was covered.
                assert!(step > 10, "{regime}: only {step} steps?");
                eprintln!(
                    "{regime}: {} filesystem steps per save, all crashed",
                    step - 1
                );
                break;
            }
            let seen = (files(&run, n, "last"), epochs(&run, n));
            assert!(
                seen == at_1 || seen == at_2,
                "{regime}: crash at step {step}"
            );
            let again = resume(&run, Some((CRASH_ENV, &s)));
            let seen = (files(&run, n, "last"), epochs(&run, n));
            assert!(
                seen == at_1 || seen == at_2,
                "{regime}: second crash at {step}"
            );
            if again.status.success() {
                assert!(seen == at_2);
            }
            ok(&resume(&run, None));
            assert_eq!(
                files(&run, n, "last"),
                at_2.0,
                "{regime}: resume after step {step}"
            );
            assert_eq!(files(&run, n, "best"), files(&full, n, "best"));
            std::fs::remove_dir_all(&run).unwrap();
            step += 1;
        }
    }
}

/// `dbl report` writes non-empty PNG and SVG curves.
#[test]
fn report_writes_png_and_svg() {
    let (tmp, d) = data();
    let run = tmp.path().join("run");
    let t = train(&d, &run, "oss", &[], None);
    ok(&t);
    // It said where the run goes before training (issue 27 §4).
    let err = String::from_utf8_lossy(&t.stderr);
    assert!(
        err.lines()
            .next()
            .is_some_and(|l| l.contains(&format!("writing the run in {}", run.display()))),
        "{err}"
    );
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
    // An invalid backbone option, and a size the data decides given and
    // contradicting the data (2048-wide features).
    for (set, says) in [
        (
            "model.dropout=1.5",
            "`model.dropout` must lie in [0, 1), got 1.5",
        ),
        (
            "model.img_dim=512",
            "`model.img_dim` is 512 but the data gives 2048",
        ),
    ] {
        let o = train(&d, &run, "oss", &["model.backbone=vse", set], None);
        assert!(!o.status.success());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(says), "{err}");
        assert!(!run.join("branch0").exists());
    }
}

/// Resuming with a backbone that does not match the checkpoint (here another
/// embedding width) fails before any step, naming the tensor and both shapes,
/// and leaves the checkpoint as it was.
#[test]
fn resume_with_mismatched_backbone_fails_naming_the_tensor() {
    let (tmp, d) = data();
    let run = tmp.path().join("run");
    ok(&train(&d, &run, "baseline", &["stop_after=1"], None));
    let before = files(&run, 1, "last");
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
    assert_eq!(before, files(&run, 1, "last"));
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

/// One writer per run folder: while another process holds the run's lock,
/// `dbl train` (fresh or `--resume`) fails at once naming the holder's PID,
/// and writes nothing.
#[test]
fn second_writer_is_refused_naming_the_holder() {
    let (tmp, d) = data();
    let run = tmp.path().join("run");
    ok(&train(&d, &run, "oss", &["stop_after=1"], None));
    let before = files(&run, 2, "last");
    let lock = dbl::train::run_lock::RunLock::acquire(&run).unwrap();
    let pid = format!("PID {}", std::process::id());
    for o in [resume(&run, None), train(&d, &run, "oss", &[], None)] {
        assert!(!o.status.success());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains(&pid) && err.contains("another dbl process"),
            "{err}"
        );
    }
    assert_eq!(files(&run, 2, "last"), before);
    drop(lock);
    ok(&resume(&run, None));
}

/// A run killed before its first checkpoint can be resumed (it starts from
/// epoch 1, metrics reset) or started again, and either way ends identical to
/// an uninterrupted run; a folder holding a user's own file is refused
/// without touching it.
#[test]
fn every_crash_state_has_a_way_forward() {
    let (tmp, d) = data();
    let full = tmp.path().join("full");
    ok(&train(&d, &full, "oss", &[], None));
    let want = files(&full, 2, "last");
    let step_records = |run: &Path| {
        std::fs::read_to_string(run.join("branch0/metrics.jsonl"))
            .unwrap()
            .lines()
            .filter(|l| l.contains("\"step\"") && !l.contains("\"eval\""))
            .map(|l| {
                let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                // Wall-clock fields differ between runs.
                v.as_object_mut().unwrap().remove("seconds");
                v.as_object_mut().unwrap().remove("step_seconds");
                v
            })
            .collect::<Vec<_>>()
    };
    for how in ["resume", "restart"] {
        let run = tmp.path().join(how);
        let crashed = train(&d, &run, "oss", &[], Some((CRASH_ENV, "1")));
        assert!(!crashed.status.success());
        assert!(
            run.join("config.json").exists() && !run.join("checkpoints/MANIFEST.json").exists()
        );
        let o = if how == "resume" {
            resume(&run, None)
        } else {
            train(&d, &run, "oss", &[], None)
        };
        ok(&o);
        assert_eq!(files(&run, 2, "last"), want, "{how}");
        assert_eq!(
            step_records(&run),
            step_records(&full),
            "{how}: metrics log"
        );
    }
    // A crash mid-run: the resumed log has no duplicate records.
    let run = tmp.path().join("mid");
    ok(&train(&d, &run, "oss", &["stop_after=1"], None));
    assert!(!resume(&run, Some((CRASH_ENV, "20"))).status.success());
    ok(&resume(&run, None));
    assert_eq!(step_records(&run), step_records(&full));

    let mine = tmp.path().join("mine");
    std::fs::create_dir_all(&mine).unwrap();
    std::fs::write(mine.join("config.json"), "my notes").unwrap();
    let o = train(&d, &mine, "oss", &[], None);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("config.json") && err.contains("did not write"),
        "{err}"
    );
    std::fs::write(mine.join("notes.txt"), "keep me").unwrap();
    std::fs::write(mine.join("dbl.lock"), "").unwrap();
    let o = train(&d, &mine, "oss", &[], None);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("notes.txt") && err.contains("did not write"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(mine.join("config.json")).unwrap(),
        "my notes"
    );
    assert_eq!(std::fs::read_dir(&mine).unwrap().count(), 3);
}

/// A flipped byte in a checkpoint's weights is refused on load (score and
/// resume), naming the file, instead of silently changing the results.
#[test]
fn corrupt_weights_are_refused() {
    let (tmp, d) = data();
    let run = tmp.path().join("run");
    ok(&train(&d, &run, "baseline", &["stop_after=1"], None));
    let store = Store::open(&run).unwrap();
    let path = store.dir(0, Tag::Last).unwrap().join("model.safetensors");
    let mut b = std::fs::read(&path).unwrap();
    let n = b.len();
    b[n - 7] ^= 0x01;
    std::fs::write(&path, &b).unwrap();
    let score = Command::new(BIN)
        .args(["score", "--run"])
        .arg(&run)
        .args(["--tag", "last", "--split", "dev"])
        .output()
        .unwrap();
    for o in [score, resume(&run, None)] {
        assert!(!o.status.success());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("corrupt") && err.contains("model.safetensors"),
            "{err}"
        );
    }
}

/// `train` and `score` check what they depend on before any work, naming the
/// file: zero regions, a dev split whose feature shape differs from train's,
/// NaN features (train never scanned for them before).
#[test]
fn data_is_validated_before_work() {
    use dbl::data::npy::{NpyF32, write_f32};
    let (tmp, d) = data();
    let fails = |o: std::process::Output, needles: &[&str]| {
        assert!(!o.status.success());
        let err = String::from_utf8_lossy(&o.stderr);
        for n in needles {
            assert!(err.contains(n), "missing {n:?}: {err}");
        }
    };
    let copy = |name: &str| {
        let c = tmp.path().join(name);
        copy_dir(&d, &c);
        c
    };
    let shape = NpyF32::open(d.join("train_ims.npy"))
        .unwrap()
        .shape()
        .to_vec();
    let (n, r, dim) = (shape[0], shape[1], shape[2]);

    let zero = copy("zero");
    write_f32(zero.join("train_ims.npy"), &[n, 0, dim], &[]).unwrap();
    let run = tmp.path().join("run_zero");
    fails(
        train(&zero, &run, "oss", &[], None),
        &["train_ims.npy", "at least one region"],
    );
    assert!(!run.exists(), "nothing may be written");

    let narrow = copy("narrow");
    let dev = NpyF32::open(d.join("dev_ims.npy")).unwrap();
    let nd = dev.shape()[0];
    write_f32(
        narrow.join("dev_ims.npy"),
        &[nd, r, dim - 1],
        &vec![0.5; nd * r * (dim - 1)],
    )
    .unwrap();
    let run = tmp.path().join("run_narrow");
    fails(
        train(&narrow, &run, "oss", &[], None),
        &["dev_ims.npy", "train_ims.npy", "training split"],
    );
    assert!(!run.exists());

    let nan = copy("nan");
    let mut v = NpyF32::open(d.join("train_ims.npy"))
        .unwrap()
        .data()
        .to_vec();
    v[(n - 1) * r * dim + 3] = f32::NAN;
    write_f32(nan.join("train_ims.npy"), &[n, r, dim], &v).unwrap();
    let run = tmp.path().join("run_nan");
    fails(
        train(&nan, &run, "oss", &[], None),
        &["train_ims.npy", "non-finite", &format!("image {}", n - 1)],
    );
    assert!(!run.exists());

    // Score: a test split of another width than the one the model was trained on.
    let run = tmp.path().join("run_ok");
    let good = copy("good");
    ok(&train(&good, &run, "baseline", &["stop_after=1"], None));
    let t = NpyF32::open(good.join("test_ims.npy")).unwrap();
    let nt = t.shape()[0];
    write_f32(
        good.join("test_ims.npy"),
        &[nt, r, dim + 1],
        &vec![0.5; nt * r * (dim + 1)],
    )
    .unwrap();
    let o = Command::new(BIN)
        .args(["score", "--run"])
        .arg(&run)
        .args(["--tag", "last", "--split", "test"])
        .output()
        .unwrap();
    fails(o, &["test_ims.npy", "train_ims.npy"]);
}

/// Resource limits: an absurd thread count is refused by name, and a run that
/// cannot fit in memory (100,000 branches of the default model) is refused
/// before anything is written.
#[test]
fn impossible_runs_are_refused_up_front() {
    let (tmp, d) = data();
    let run = tmp.path().join("run");
    let o = train(&d, &run, "oss", &["threads=10000"], None);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("threads") && err.contains("10000"), "{err}");
    let o = train(
        &d,
        &run,
        "oss",
        &["model.backbone=vse", "model.embed=1024", "branches=100000"],
        None,
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("GiB of memory") && err.contains("100000 branch"),
        "{err}"
    );
    assert!(!run.exists(), "nothing may be written");
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
    let store = Store::open(&run).unwrap();
    let state_of = |k: usize| -> serde_json::Value {
        serde_json::from_slice(&store.read(k, Tag::Last, "state.json").unwrap().1).unwrap()
    };
    let state = state_of(0);
    let best_max = (0..2)
        .map(|k| state_of(k)["best_epoch"].as_u64().unwrap())
        .max()
        .unwrap();
    assert_eq!(state["epoch"].as_u64().unwrap(), best_max + 2);
    ok(&resume(&run, None));
    assert_eq!(evals(0).len(), n, "the resumed run trained on");
}

/// Rows of `txt_enc.embed` in branch `k`'s `last` weights (safetensors header).
fn embed_rows(run: &Path, k: usize) -> u64 {
    let store = Store::open(run).unwrap();
    let bytes = store.read(k, Tag::Last, "model.safetensors").unwrap().1;
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    header["txt_enc.embed.weight"]["shape"][0]
        .as_u64()
        .or_else(|| header["txt_enc.embed"]["shape"][0].as_u64())
        .unwrap_or_else(|| panic!("no embedding in {header}"))
}

/// OAS appends `<mask>` (docs/method.md §6.4): the embedding table has V + 1
/// rows, V without the augmentation, and the augmentation changes the
/// trajectory; `dbl score` loads either run's branches.
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
    // A registered backbone (vse), so `dbl score` goes through the inference
    // layer, as for every user-facing model (`tiny` is the trainer's own).
    ok(&train(&d, &on, "oas", &["model.backbone=vse"], None));
    ok(&train(
        &d,
        &off,
        "oas",
        &["model.backbone=vse", "oas.augment=false"],
        None,
    ));
    assert_eq!(embed_rows(&on, 1), v + 1);
    assert_eq!(embed_rows(&off, 1), v);
    let a = std::fs::read_to_string(on.join("branch0/metrics.jsonl")).unwrap();
    let b = std::fs::read_to_string(off.join("branch0/metrics.jsonl")).unwrap();
    let first_loss = |s: &str| {
        serde_json::from_str::<serde_json::Value>(s.lines().next().unwrap()).unwrap()["loss"]
            .clone()
    };
    assert_ne!(first_loss(&a), first_loss(&b));
    // Inference loads both stages of either run: `<mask>`'s row is expected
    // exactly when the run trained with the augmentation.
    for (run, tag) in [(&on, "on"), (&off, "off")] {
        for k in ["0", "1"] {
            let sims = tmp.path().join(format!("{tag}{k}.npy"));
            let o = Command::new(BIN)
                .args(["score", "--branch", k, "--split", "test", "--out"])
                .arg(&sims)
                .arg("--run")
                .arg(run)
                .output()
                .unwrap();
            ok(&o);
            assert!(sims.is_file(), "{tag}, branch {k}");
        }
    }
}

/// No silent phases (issue 27 §4): without a terminal the dev evaluation of
/// `dbl train` and the scoring of `dbl score` print progress lines with the
/// rate and the ETA (`DBL_PROGRESS_SECS=0`: one per block of pairs).
#[test]
fn dev_evaluation_and_scoring_show_progress_without_a_terminal() {
    let (tmp, d) = data();
    let run = tmp.path().join("run");
    let every = Some((dbl::progress::LINE_EVERY_ENV, "0"));
    let t = train(&d, &run, "oss", &["model.backbone=vse"], every);
    ok(&t);
    let err = String::from_utf8_lossy(&t.stderr);
    let shows = |err: &str, label: &str| {
        err.lines().any(|l| {
            l.starts_with(label)
                && l.contains("pairs), ")
                && l.contains("pairs/s")
                && l.contains("ETA")
        })
    };
    assert!(
        shows(&err, "stage 1 epoch 2 dev evaluation: 100% ("),
        "{err}"
    );
    let o = Command::new(BIN)
        .args(["score", "--split", "test", "--run"])
        .arg(&run)
        .env(dbl::progress::LINE_EVERY_ENV, "0")
        .output()
        .unwrap();
    ok(&o);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(shows(&err, "scoring test: 100% (720/720 pairs)"), "{err}");
    assert!(err.contains("scoring test: done, 720 pairs in"), "{err}");
}

/// Largest |a − b| over every tensor of two weights files with the same names.
fn max_diff(a: &[u8], b: &[u8]) -> f32 {
    let (a, b) = (
        safetensors::SafeTensors::deserialize(a).unwrap(),
        safetensors::SafeTensors::deserialize(b).unwrap(),
    );
    let f = |t: safetensors::tensor::TensorView<'_>| -> Vec<f32> {
        t.data()
            .chunks_exact(4)
            .map(|x| f32::from_le_bytes([x[0], x[1], x[2], x[3]]))
            .collect()
    };
    let mut m = 0.0f32;
    for name in a.names() {
        let (x, y) = (f(a.tensor(name).unwrap()), f(b.tensor(name).unwrap()));
        m = x.iter().zip(&y).fold(m, |m, (p, q)| m.max((p - q).abs()));
    }
    m
}

/// `--init RUN[:BRANCH]`: every branch of every regime starts from the given
/// weights (at lr 1e-12 the run ends within 1e-6 of them: rounding of the
/// MSS EMA; without `--init`
/// far from them), with a fresh optimiser; a bad source is refused naming
/// `init`.
#[test]
fn init_starts_every_regime_from_given_weights() {
    let (tmp, data) = data();
    let src = support::run(tmp.path(), &data, "src", dbl::model::Backbone::Vse, 5);
    let given = Store::open(&src)
        .unwrap()
        .read(0, Tag::Best, "model.safetensors")
        .unwrap()
        .1;
    let sets = ["model.backbone=vse", "lr=1e-12", "oas.augment=false"];
    for (regime, branches) in [("oss", 2), ("mss", 2), ("oas", 2), ("baseline", 1)] {
        let out = tmp.path().join(format!("init_{regime}"));
        let mut c = Command::new(BIN);
        c.args(["train", "--data"])
            .arg(&data)
            .arg("--out")
            .arg(&out);
        c.args(["--regime", regime, "--epochs", "1", "--seed", "3", "--init"]);
        c.arg(format!("{}:0", src.display()));
        for s in [
            "model.embed=16",
            "model.word_dim=8",
            "batch_size=16",
            "max_steps_per_epoch=2",
            "threads=1",
            "oas.epochs=1",
        ]
        .iter()
        .chain(&sets)
        {
            c.args(["--set", s]);
        }
        ok(&c.output().unwrap());
        let store = Store::open(&out).unwrap();
        for k in 0..branches {
            let w = store.read(k, Tag::Last, "model.safetensors").unwrap().1;
            let d = max_diff(&w, &given);
            assert!(d < 1e-6, "{regime} branch {k}: {d} from the --init weights");
        }
        let fresh = tmp.path().join(format!("fresh_{regime}"));
        let extra: Vec<&str> = sets.to_vec();
        let mut extra = extra;
        extra.push("oas.epochs=1");
        ok(&train(&data, &fresh, regime, &extra, None));
        let w = Store::open(&fresh)
            .unwrap()
            .read(0, Tag::Last, "model.safetensors")
            .unwrap()
            .1;
        assert!(
            w != given,
            "{regime}: a random initialisation gave the --init weights"
        );
    }
    // A branch the run does not have, and a folder that is not a run.
    for bad in [
        format!("{}:7", src.display()),
        tmp.path().display().to_string(),
    ] {
        let o = Command::new(BIN)
            .args(["train", "--data"])
            .arg(&data)
            .arg("--out")
            .arg(tmp.path().join("bad"))
            .args(["--init", &bad, "--set", "model.backbone=vse"])
            .output()
            .unwrap();
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && e.contains("init"), "{bad}: {e}");
    }
}
