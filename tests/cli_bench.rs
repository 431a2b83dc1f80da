//! End-to-end `dbl bench`: the JSON line of the contract in
//! `tools/bench/README.md` on a tiny scoring split, and bad arguments failing
//! with a message. Expected FLOP counts were printed by
//! `python3 -c "import flops; print(flops.count('vse-score', 2, 3)['total'])"`
//! (and `scan-score`) in `tools/bench/`. No assertion on time.

use std::process::Command;

use serde_json::Value;

fn dbl_bench(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_dbl"))
        .arg("bench")
        .args(args)
        .output()
        .expect("run dbl")
}

fn json_line(config: &str, flops: u64) {
    let out = dbl_bench(&[
        "--config",
        config,
        "--threads",
        "1",
        "--reps",
        "2",
        "--images",
        "2",
        "--captions",
        "3",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
    assert_eq!(v["config"], config);
    assert_eq!(v["impl"], "rust");
    assert_eq!(v["threads"], 1);
    assert_eq!(v["flops"], flops);
    assert_eq!(v["images"], 2);
    assert_eq!(v["captions"], 3);
    let secs = v["seconds"].as_array().expect("seconds");
    assert_eq!(secs.len(), 2);
    assert!(secs.iter().all(|s| s.as_f64().is_some_and(|x| x > 0.0)));
    assert!(v["median"].as_f64().is_some_and(|x| x > 0.0));
    assert!(v["peak_rss_kb"].as_u64().is_some_and(|x| x > 0));
    for p in ["encode_images", "encode_captions", "score"] {
        assert!(v["phases"][p].as_f64().is_some(), "phase {p}");
    }
}

#[test]
fn vse_score_json_line() {
    json_line("vse-score", 790_081_536);
}

#[test]
fn scan_score_json_line() {
    json_line("scan-score", 830_376_960);
}

#[test]
fn unknown_config_is_named() {
    let out = dbl_bench(&["--config", "nope", "--json"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("nope") && err.contains("scan-train-baseline"),
        "{err}"
    );
}

#[test]
fn zero_threads_is_rejected() {
    let out = dbl_bench(&["--config", "vse-score", "--threads", "0"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--threads"));
}

/// `--device cuda` says what is missing: the feature in a plain build; with
/// the feature on a machine without CUDA, the library or the device (on a
/// GPU machine the run succeeds, which tools/gpu/check.sh covers).
#[test]
fn device_cuda_names_what_is_missing() {
    let out = dbl_bench(&[
        "--config",
        "vse-score",
        "--device",
        "cuda",
        "--images",
        "2",
        "--captions",
        "3",
        "--reps",
        "1",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    if cfg!(feature = "cuda") {
        if out.status.success() {
            eprintln!("a GPU is present: the refusal is not exercised here");
            return;
        }
        assert!(
            err.contains("CUDA: the") || err.contains("no GPU found"),
            "{err}"
        );
    } else {
        assert!(!out.status.success());
        assert!(err.contains("built without CUDA support"), "{err}");
    }
    let train = dbl_bench(&["--config", "vse-train", "--device", "cuda"]);
    assert!(!train.status.success());
}
