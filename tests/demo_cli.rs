//! End-to-end `dbl demo` with the test-only `tiny` backbone on a small
//! training set: per-seed and mean anchor / target test rSum and their paired
//! difference are printed and written to results.json, consistently with the
//! per-seed test records; running it again resumes (nothing is retrained).

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_dbl");

#[test]
fn demo_prints_seeds_means_and_paired_difference() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("demo");
    let run = || {
        let o = Command::new(BIN)
            .args(["demo", "--out"])
            .arg(&out)
            .args([
                "--backbone",
                "tiny",
                "--embed",
                "16",
                "--batch",
                "8",
                "--train-images",
                "40",
                "--epochs",
                "2",
                "--threads",
                "1",
                "--data",
                "easy",
                "--seeds",
                "0..2",
                "--dev-images",
                "12",
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        // The last line is the invocation's wall time, which differs between runs.
        let (table, wall) = out.trim_end().rsplit_once('\n').unwrap();
        assert!(wall.starts_with("demo wall time: "), "{out}");
        table.to_string()
    };
    let stdout = run();
    let res: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    let seeds = res["seeds"].as_array().unwrap();
    assert_eq!(seeds.len(), 2);
    let mut diffs = Vec::new();
    for (i, s) in seeds.iter().enumerate() {
        let rec: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(out.join(format!("oss/seed{i}/test.json"))).unwrap(),
        )
        .unwrap();
        let (a, t) = (
            rec["branches"][0]["test"]["rsum"].as_f64().unwrap(),
            rec["branches"][1]["test"]["rsum"].as_f64().unwrap(),
        );
        assert_eq!(s["anchor"]["rsum"].as_f64().unwrap(), a);
        assert_eq!(s["target"]["rsum"].as_f64().unwrap(), t);
        // 2 epochs, the cap: patience (2) had no epoch left to stop it.
        let best = s["best_dev_epoch"].as_array().unwrap();
        assert_eq!(best.len(), 2);
        assert_eq!(
            (s["epochs"].as_u64(), s["stopped_by"].as_str()),
            (Some(2), Some("cap"))
        );
        assert!(
            stdout.contains(&format!(
                "{:<6} {a:>8.1} {t:>8.1} {:>+16.1}       2  cap       {} / {}",
                i,
                t - a,
                best[0],
                best[1]
            )),
            "{stdout}"
        );
        diffs.push(t - a);
    }
    let mean = (diffs[0] + diffs[1]) / 2.0;
    assert!((res["paired_rsum"]["mean"].as_f64().unwrap() - mean).abs() < 1e-9);
    assert!(
        stdout.contains("mean ") && stdout.contains("95 % CI"),
        "{stdout}"
    );
    assert!(
        stdout.contains("2 of 2 seeds reached the 2-epoch cap"),
        "{stdout}"
    );
    // One sentence on what the interval supports, matching its position.
    let (lo, hi) = (
        res["paired_rsum"]["ci95"][0].as_f64().unwrap(),
        res["paired_rsum"]["ci95"][1].as_f64().unwrap(),
    );
    let want = if lo > 0.0 {
        "The interval lies above zero"
    } else if hi < 0.0 {
        "The interval lies below zero"
    } else {
        "The interval includes zero"
    };
    assert!(stdout.contains(want), "{stdout}");
    assert!(res["reading"].as_str().unwrap().starts_with(want));
    assert!(out.join("oss/seed1/report/rsum.svg").is_file());
    assert!(out.join("oss/summary.png").is_file());
    // Again: resumes, prints the same table.
    assert_eq!(run(), stdout);
}
