//! End-to-end `dbl eval`: metrics of the fixture matrices must equal those
//! computed independently by `tools/fixtures/make_eval_fixture.py` (a NumPy
//! re-implementation of the authors' argsort-based i2t/t2i), and bad inputs
//! must fail with messages naming the file and what was wrong.
//!
//! Tolerances: recalls are exact fractions, compared at 1e-9 relative; medr
//! exactly; meanr and rSum at 1e-12 relative (both sides sum integer ranks
//! exactly, so they agree to the last bit in practice).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/eval")
        .join(name)
}

fn dbl_eval(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_dbl"))
        .arg("eval")
        .args(args)
        .output()
        .expect("run dbl")
}

fn eval_json(sims: &[&str], protocol: &str) -> Value {
    let paths: Vec<String> = sims
        .iter()
        .map(|s| fixture(s).display().to_string())
        .collect();
    let mut args: Vec<&str> = vec!["--sims"];
    args.extend(paths.iter().map(String::as_str));
    args.extend(["--protocol", protocol, "--json"]);
    let out = dbl_eval(&args);
    assert!(
        out.status.success(),
        "dbl eval failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is JSON")
}

fn expected(name: &str) -> Value {
    let text = std::fs::read_to_string(fixture(name)).expect("read expected JSON");
    serde_json::from_str(&text).expect("expected JSON parses")
}

fn close(got: f64, want: f64, rel: f64) -> bool {
    (got - want).abs() <= rel * want.abs().max(1.0)
}

/// Compares every metric; also checks there are no extra or missing keys.
fn assert_metrics(got: &Value, want: &Value) {
    let keys = |v: &Value| -> Vec<String> {
        let mut k: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(got), ["i2t", "rsum", "t2i"]);
    for dir in ["i2t", "t2i"] {
        assert_eq!(keys(&got[dir]), ["meanr", "medr", "r1", "r10", "r5"]);
        let g = |k: &str| got[dir][k].as_f64().unwrap();
        let w = |k: &str| want[dir][k].as_f64().unwrap();
        for k in ["r1", "r5", "r10"] {
            assert!(close(g(k), w(k), 1e-9), "{dir}.{k}: {} vs {}", g(k), w(k));
        }
        assert_eq!(g("medr"), w("medr"), "{dir}.medr");
        assert!(
            close(g("meanr"), w("meanr"), 1e-12),
            "{dir}.meanr: {} vs {}",
            g("meanr"),
            w("meanr")
        );
    }
    let (g, w) = (
        got["rsum"].as_f64().unwrap(),
        want["rsum"].as_f64().unwrap(),
    );
    assert!(close(g, w, 1e-12), "rsum: {g} vs {w}");
}

#[test]
fn single_matrix_matches_numpy_reference() {
    let want = expected("expected_a.json");
    assert_metrics(&eval_json(&["sims_a.npy"], "f30k"), &want);
}

#[test]
fn ensemble_is_the_mean_of_the_matrices() {
    assert_metrics(
        &eval_json(&["sims_a.npy", "sims_b.npy"], "f30k"),
        &expected("expected_ab.json"),
    );
    // The order of the files does not matter.
    assert_metrics(
        &eval_json(&["sims_b.npy", "sims_a.npy"], "f30k"),
        &expected("expected_ab.json"),
    );
}

#[test]
fn ties_follow_reversed_stable_argsort() {
    assert_metrics(
        &eval_json(&["ties.npy"], "f30k"),
        &expected("expected_ties.json"),
    );
}

#[test]
fn table_output_shows_both_directions() {
    let a = fixture("sims_a.npy");
    let out = dbl_eval(&["--sims", a.to_str().unwrap(), "--protocol", "f30k"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("100 images x 500 captions (5 per image)"),
        "{text}"
    );
    assert!(text.lines().any(|l| l.starts_with("i2t ")), "{text}");
    assert!(text.lines().any(|l| l.starts_with("t2i ")), "{text}");
    let want = expected("expected_a.json")["rsum"].as_f64().unwrap();
    assert!(text.contains(&format!("rSum {want:.2}")), "{text}");
}

fn eval_err(args: &[&str]) -> String {
    let out = dbl_eval(args);
    assert!(!out.status.success(), "expected failure for {args:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn shape_mismatch_names_both_files_and_shapes() {
    let (a, t) = (fixture("sims_a.npy"), fixture("ties.npy"));
    let err = eval_err(&[
        "--sims",
        a.to_str().unwrap(),
        t.to_str().unwrap(),
        "--protocol",
        "f30k",
    ]);
    assert!(
        err.contains("sims_a.npy") && err.contains("ties.npy"),
        "{err}"
    );
    assert!(
        err.contains("[100, 500]") && err.contains("[20, 100]"),
        "{err}"
    );
}

#[test]
fn non_finite_scores_are_refused_with_file_and_position() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.npy");
    let mut data = vec![0.5f32; 4 * 20];
    data[2 * 20 + 7] = f32::NAN;
    dbl::data::npy::write_f32(&bad, &[4, 20], &data).unwrap();
    let err = eval_err(&["--sims", bad.to_str().unwrap(), "--protocol", "f30k"]);
    assert!(
        err.contains("bad.npy") && err.contains("[2, 7]") && err.contains("NaN"),
        "{err}"
    );

    data[2 * 20 + 7] = f32::NEG_INFINITY;
    dbl::data::npy::write_f32(&bad, &[4, 20], &data).unwrap();
    let err = eval_err(&["--sims", bad.to_str().unwrap(), "--protocol", "f30k"]);
    assert!(err.contains("[2, 7]") && err.contains("inf"), "{err}");
}

#[test]
fn bad_shapes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    // 3 images, 7 captions: not a whole number of captions per image.
    let ragged = dir.path().join("ragged.npy");
    dbl::data::npy::write_f32(&ragged, &[3, 7], &[0.0; 21]).unwrap();
    let err = eval_err(&["--sims", ragged.to_str().unwrap(), "--protocol", "f30k"]);
    assert!(
        err.contains("ragged.npy") && err.contains("7 captions"),
        "{err}"
    );
    // 1-D array.
    let flat = dir.path().join("flat.npy");
    dbl::data::npy::write_f32(&flat, &[10], &[0.0; 10]).unwrap();
    let err = eval_err(&["--sims", flat.to_str().unwrap(), "--protocol", "f30k"]);
    assert!(
        err.contains("flat.npy") && err.contains("2-dimensional"),
        "{err}"
    );
    // coco1k and coco5k on a matrix that is not MSCOCO testall's 5,000 x
    // 25,000 (issue 25 §4: coco5k used to score any shape).
    let a = fixture("sims_a.npy");
    let shape = dbl::data::npy::NpyF32::open(&a).unwrap().shape().to_vec();
    for protocol in ["coco1k", "coco5k"] {
        let err = eval_err(&["--sims", a.to_str().unwrap(), "--protocol", protocol]);
        assert!(
            err.contains("sims_a.npy")
                && err.contains(&format!("protocol {protocol} needs"))
                && err.contains("5000 images x 25000 captions")
                && err.contains(&format!("found {} x {}", shape[0], shape[1])),
            "{err}"
        );
    }
}
