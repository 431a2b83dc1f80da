//! End-to-end tests of `dbl vocab build` / `dbl vocab show`.

use std::path::Path;
use std::process::{Command, Output};

use dbl::data::vocab::Vocab;

fn dbl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dbl"))
        .args(args)
        .output()
        .expect("run dbl")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn build_counts_tokens_over_files_and_show_prints_it() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("train_caps.txt");
    let b = dir.path().join("dev_caps.txt");
    std::fs::write(&a, "A dog runs.\nA dog's ball.\n  a DOG sits .\n").unwrap();
    std::fs::write(&b, "a cat, a dog\n").unwrap();
    let out = dir.path().join("vocab.json");

    let o = dbl(&[
        "vocab",
        "build",
        "--captions",
        s(&a),
        s(&b),
        "--out",
        s(&out),
        "--threshold",
        "2",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8(o.stdout).unwrap();
    // Counts: a 5, dog 4, . 3; everything else once.
    assert!(stdout.contains("vocabulary size 7"), "{stdout}");
    let v = Vocab::load(&out).unwrap();
    let words: Vec<&str> = (0..v.len() as u32).map(|i| v.word(i).unwrap()).collect();
    assert_eq!(
        words,
        ["<pad>", "<start>", "<end>", "<unk>", "a", "dog", "."]
    );

    let o = dbl(&[
        "vocab",
        "build",
        "--captions",
        s(&a),
        s(&b),
        "--out",
        s(&out),
        "--threshold",
        "2",
        "--drop-punctuation",
    ]);
    assert!(o.status.success());
    assert_eq!(Vocab::load(&out).unwrap().len(), 6);

    let o = dbl(&["vocab", "show", s(&out), "--top", "5"]);
    assert!(o.status.success());
    let stdout = String::from_utf8(o.stdout).unwrap();
    assert!(stdout.contains("valid vocabulary, size 6"), "{stdout}");
    assert!(
        stdout.contains("4\ta\n") && !stdout.contains("5\tdog"),
        "{stdout}"
    );
}

#[test]
fn build_rejects_empty_lines_and_bad_utf8_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let caps = dir.path().join("caps.txt");
    let out = dir.path().join("vocab.json");
    std::fs::write(&caps, "a dog\n\na cat\n").unwrap();
    let o = dbl(&["vocab", "build", "--captions", s(&caps), "--out", s(&out)]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("caps.txt:2: empty caption line"), "{err}");
    assert!(!out.exists());

    std::fs::write(&caps, b"a dog\na \xe9t\xe9\n").unwrap();
    let o = dbl(&["vocab", "build", "--captions", s(&caps), "--out", s(&out)]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("caps.txt:2: not valid UTF-8"), "{err}");

    let o = dbl(&[
        "vocab",
        "build",
        "--captions",
        s(&dir.path().join("nope.txt")),
        "--out",
        s(&out),
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("nope.txt"));
}

#[test]
fn show_reports_missing_and_malformed_vocabularies() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.json");
    let o = dbl(&["vocab", "show", s(&missing)]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("missing.json"), "{err}");

    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        "{\"word2idx\": {\"<pad>\": 0}, \"idx2word\": {\"0\": \"<pad>\"}, \"idx\": 1}",
    )
    .unwrap();
    let o = dbl(&["vocab", "show", s(&bad)]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("bad.json") && err.contains("invalid vocabulary"),
        "{err}"
    );

    std::fs::write(&bad, "not json").unwrap();
    let o = dbl(&["vocab", "show", s(&bad)]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a vocabulary JSON"));
}
