//! End to end: `dbl synth` on a tiny size writes the SCAN precomp layout, re-read with
//! the project's own readers; it refuses a non-empty folder without `--force`.

use std::path::Path;
use std::process::Command;

use dbl::data::npy::NpyF32;
use dbl::data::vocab::{UNK, Vocab};

fn synth(out: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_dbl"))
        .arg("synth")
        .arg("--out")
        .arg(out)
        .args(["--train", "12", "--dev", "4", "--test", "5", "--seed", "3"])
        .args(extra)
        .output()
        .expect("run dbl")
}

#[test]
fn writes_a_readable_dataset_and_guards_the_folder() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("data");
    let r = synth(&out, &[]);
    let stdout = String::from_utf8_lossy(&r.stdout);
    assert!(
        r.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&r.stderr)
    );
    assert!(
        stdout.contains("train_ims.npy") && stdout.contains("vocab.json"),
        "{stdout}"
    );

    let vocab = Vocab::load(out.join("vocab.json")).unwrap();
    assert!(vocab.len() > 4, "vocabulary has only the specials");
    for (split, n) in [("train", 12), ("dev", 4), ("test", 5)] {
        let ims = NpyF32::open_ndim(out.join(format!("{split}_ims.npy")), 3).unwrap();
        assert_eq!(ims.shape(), &[n, 36, 2048], "{split}");
        assert!(ims.data().iter().all(|&x| x.is_finite() && x >= 0.0));
        // Sparse non-negative features, not all zeros: some regions are active.
        assert!(ims.data().iter().filter(|&&x| x > 0.0).count() > ims.data().len() / 4);
        let caps = std::fs::read_to_string(out.join(format!("{split}_caps.txt"))).unwrap();
        let lines: Vec<&str> = caps.lines().collect();
        assert_eq!(lines.len(), 5 * n, "{split}");
        for line in &lines {
            assert!(!line.trim().is_empty(), "{split}: empty caption");
            let ids = vocab.encode_caption(line);
            assert!(ids.len() >= 4, "{split}: {line:?} -> {ids:?}");
        }
        if split == "train" {
            // The vocabulary is built from train+dev, so the most frequent train words
            // (every determiner, "." ...) must have ids of their own.
            let known = lines
                .iter()
                .flat_map(|l| vocab.encode_caption(l))
                .filter(|&id| id != UNK)
                .count();
            assert!(known > 0);
        }
    }

    // Same arguments again: refused (non-empty), then accepted with --force, same bytes.
    let before = std::fs::read(out.join("train_ims.npy")).unwrap();
    let r = synth(&out, &[]);
    assert!(!r.status.success());
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(
        err.contains("not empty") && err.contains("--force"),
        "{err}"
    );
    let r = synth(&out, &["--force"]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert_eq!(std::fs::read(out.join("train_ims.npy")).unwrap(), before);

    // Bad sizes are refused with the field named.
    let r = synth(&dir.path().join("other"), &["--concepts", "1"]);
    assert!(!r.status.success());
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(err.contains("concepts"), "{err}");
}
