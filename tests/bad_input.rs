//! Bad inputs at the CLI level: `dbl inspect` on a small, valid precomp
//! folder with exactly one thing broken must exit non-zero, and its stderr
//! must name the offending file and the problem. A control test checks that
//! the unbroken folder passes, so each failure is due to the one defect.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use dbl::data::npy::write_f32;
use dbl::data::vocab::Vocab;

const N_IMG: usize = 2;
const N_REG: usize = 3;
const DIM: usize = 4;

fn captions() -> Vec<String> {
    (0..N_IMG * 5)
        .map(|k| format!("a dog number {k} runs on the grass"))
        .collect()
}

/// A valid `test` split (2 images × 3 regions × 4 dims, 10 captions) plus
/// `vocab.json`.
fn valid_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let feats: Vec<f32> = (0..N_IMG * N_REG * DIM).map(|i| i as f32 * 0.25).collect();
    write_f32(d.join("test_ims.npy"), &[N_IMG, N_REG, DIM], &feats).unwrap();
    std::fs::write(d.join("test_caps.txt"), captions().join("\n") + "\n").unwrap();
    let caps = captions();
    Vocab::build(caps.iter().map(String::as_str), 1, true)
        .save(d.join("vocab.json"))
        .unwrap();
    dir
}

fn ims(dir: &Path) -> PathBuf {
    dir.join("test_ims.npy")
}

fn caps(dir: &Path) -> PathBuf {
    dir.join("test_caps.txt")
}

fn inspect(dir: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dbl"))
        .arg("inspect")
        .arg(dir)
        .args(extra)
        .output()
        .expect("run dbl")
}

/// Runs `dbl inspect` and asserts failure with every `needles` in stderr.
fn assert_fails(dir: &Path, extra: &[&str], needles: &[&str]) {
    let out = inspect(dir, extra);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "dbl inspect succeeded on bad input; stdout:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    for n in needles {
        assert!(stderr.contains(n), "stderr lacks {n:?}:\n{stderr}");
    }
}

/// A `.npy` file with a NumPy-style header (`version` 1 or 2) and `payload`.
fn npy_bytes(version: u8, dict: &str, payload: &[u8]) -> Vec<u8> {
    let prefix = if version == 1 { 10 } else { 12 };
    let mut d = dict.to_string();
    while !(prefix + d.len() + 1).is_multiple_of(64) {
        d.push(' ');
    }
    d.push('\n');
    let mut out = b"\x93NUMPY".to_vec();
    out.extend_from_slice(&[version, 0]);
    if version == 1 {
        out.extend_from_slice(&(d.len() as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&(d.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(d.as_bytes());
    out.extend_from_slice(payload);
    out
}

fn dict(descr: &str, fortran: bool, shape: &str) -> String {
    let f = if fortran { "True" } else { "False" };
    format!("{{'descr': '{descr}', 'fortran_order': {f}, 'shape': {shape}, }}")
}

const SHAPE: &str = "(2, 3, 4)";

#[test]
fn control_valid_folder_passes() {
    let dir = valid_dir();
    let out = inspect(dir.path(), &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("splits: test"), "{stdout}");
    assert!(stdout.contains("2 images × 3 regions × 4 dims"), "{stdout}");
    assert!(stdout.contains("5 captions per image"), "{stdout}");
    assert!(stdout.contains("all finite"), "{stdout}");
}

#[test]
fn truncated_npy() {
    let dir = valid_dir();
    let bytes = std::fs::read(ims(dir.path())).unwrap();
    std::fs::write(ims(dir.path()), &bytes[..bytes.len() - 6]).unwrap();
    assert_fails(dir.path(), &[], &["test_ims.npy", "truncated file"]);
}

#[test]
fn wrong_dtype_f8() {
    let dir = valid_dir();
    let b = npy_bytes(1, &dict("<f8", false, SHAPE), &[0u8; 24 * 8]);
    std::fs::write(ims(dir.path()), b).unwrap();
    assert_fails(
        dir.path(),
        &[],
        &["test_ims.npy", "unsupported dtype", "<f8"],
    );
}

#[test]
fn wrong_dtype_i4() {
    let dir = valid_dir();
    let b = npy_bytes(1, &dict("<i4", false, SHAPE), &[0u8; 24 * 4]);
    std::fs::write(ims(dir.path()), b).unwrap();
    assert_fails(
        dir.path(),
        &[],
        &["test_ims.npy", "unsupported dtype", "<i4"],
    );
}

#[test]
fn big_endian_f4() {
    let dir = valid_dir();
    let b = npy_bytes(1, &dict(">f4", false, SHAPE), &[0u8; 24 * 4]);
    std::fs::write(ims(dir.path()), b).unwrap();
    assert_fails(
        dir.path(),
        &[],
        &["test_ims.npy", "unsupported dtype", ">f4"],
    );
}

#[test]
fn fortran_order() {
    let dir = valid_dir();
    let b = npy_bytes(1, &dict("<f4", true, SHAPE), &[0u8; 24 * 4]);
    std::fs::write(ims(dir.path()), b).unwrap();
    assert_fails(dir.path(), &[], &["test_ims.npy", "Fortran"]);
}

#[test]
fn header_lies_about_shape() {
    let dir = valid_dir();
    // Header claims one image; the payload holds two.
    let b = npy_bytes(1, &dict("<f4", false, "(1, 3, 4)"), &[0u8; 24 * 4]);
    std::fs::write(ims(dir.path()), b).unwrap();
    assert_fails(
        dir.path(),
        &[],
        &["test_ims.npy", "header lies about its shape"],
    );
}

#[test]
fn header_length_over_cap() {
    let dir = valid_dir();
    let mut b = b"\x93NUMPY\x02\x00".to_vec();
    b.extend_from_slice(&1_000_000u32.to_le_bytes());
    b.extend_from_slice(&[b' '; 256]);
    std::fs::write(ims(dir.path()), b).unwrap();
    assert_fails(
        dir.path(),
        &[],
        &["test_ims.npy", "header length 1000000", "cap"],
    );
}

#[test]
fn not_npy_at_all() {
    let dir = valid_dir();
    std::fs::write(ims(dir.path()), "just some text, not an array\n").unwrap();
    assert_fails(dir.path(), &[], &["test_ims.npy", "not a .npy file"]);
}

#[test]
fn wrong_rank() {
    let dir = valid_dir();
    write_f32(ims(dir.path()), &[2, 12], &[0.0; 24]).unwrap();
    assert_fails(
        dir.path(),
        &[],
        &["test_ims.npy", "expected a 3-dimensional array", "[2, 12]"],
    );
}

#[test]
fn caption_count_neither_1x_nor_5x() {
    let dir = valid_dir();
    std::fs::write(caps(dir.path()), captions()[..7].join("\n")).unwrap();
    assert_fails(
        dir.path(),
        &[],
        &[
            "test_caps.txt",
            "test_ims.npy",
            "7 captions",
            "2 images",
            "1× or 5×",
        ],
    );
}

#[test]
fn empty_caption_line() {
    let dir = valid_dir();
    let mut c = captions();
    c[2] = "   ".to_string();
    std::fs::write(caps(dir.path()), c.join("\n")).unwrap();
    assert_fails(dir.path(), &[], &["test_caps.txt:3", "empty caption"]);
}

#[test]
fn non_utf8_captions() {
    let dir = valid_dir();
    let mut bytes = captions().join("\n").into_bytes();
    // First byte of line 2 becomes a lone continuation byte.
    let line2 = bytes.iter().position(|&b| b == b'\n').unwrap() + 1;
    bytes[line2] = 0x80;
    std::fs::write(caps(dir.path()), bytes).unwrap();
    assert_fails(dir.path(), &[], &["test_caps.txt:2", "not valid UTF-8"]);
}

#[test]
fn missing_vocabulary() {
    let dir = valid_dir();
    std::fs::remove_file(dir.path().join("vocab.json")).unwrap();
    assert_fails(dir.path(), &[], &["vocab.json", "does not exist"]);
    // An explicit --vocab path that does not exist is named too.
    let other = dir.path().join("elsewhere.json");
    let other = other.to_str().unwrap();
    assert_fails(
        dir.path(),
        &["--vocab", other],
        &["elsewhere.json", "does not exist"],
    );
}

#[test]
fn malformed_vocabulary_json() {
    let dir = valid_dir();
    std::fs::write(dir.path().join("vocab.json"), "{\"word2idx\": {\"a\": ").unwrap();
    assert_fails(
        dir.path(),
        &[],
        &["vocab.json", "not a vocabulary JSON file"],
    );
}

#[test]
fn nan_in_features() {
    let dir = valid_dir();
    let mut feats: Vec<f32> = (0..N_IMG * N_REG * DIM).map(|i| i as f32).collect();
    feats[DIM * N_REG + 2 * DIM + 3] = f32::NAN;
    write_f32(ims(dir.path()), &[N_IMG, N_REG, DIM], &feats).unwrap();
    assert_fails(
        dir.path(),
        &[],
        &[
            "test_ims.npy",
            "non-finite",
            "image 1, region 2, dimension 3",
        ],
    );
}

#[test]
fn epoch_needs_a_train_split() {
    let dir = valid_dir();
    assert_fails(
        dir.path(),
        &["--epoch"],
        &["--epoch needs the train split", "train_ims.npy"],
    );
}

#[test]
fn control_epoch_over_train_split() {
    let dir = valid_dir();
    let d = dir.path();
    std::fs::rename(ims(d), d.join("train_ims.npy")).unwrap();
    std::fs::rename(caps(d), d.join("train_caps.txt")).unwrap();
    let out = inspect(d, &["--epoch", "--batch-size", "3", "--seed", "5"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // 10 captions at B = 3: 4 batches, the last one partial.
    assert!(
        stdout.contains("epoch: 4 batches (10 captions)"),
        "{stdout}"
    );
    assert_fails(d, &["--epoch", "--batch-size", "0"], &["batch-size"]);
}

/// OS errors in words, never "(os error N)": a folder where the `.npy` file
/// belongs, a symbolic link loop for the vocabulary, and the same through
/// `dbl train`'s config checks.
#[test]
fn os_errors_are_in_words() {
    let dir = valid_dir();
    std::fs::remove_file(ims(dir.path())).unwrap();
    std::fs::create_dir(ims(dir.path())).unwrap();
    assert_fails(
        dir.path(),
        &[],
        &["test_ims.npy", "where a file was expected"],
    );
    let out = inspect(dir.path(), &[]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("os error"));

    let dir = valid_dir();
    let v = dir.path().join("vocab.json");
    let loop_b = dir.path().join("loop_b");
    std::fs::remove_file(&v).unwrap();
    std::os::unix::fs::symlink(&loop_b, &v).unwrap();
    std::os::unix::fs::symlink(&v, &loop_b).unwrap();
    assert_fails(dir.path(), &[], &["vocab.json", "symbolic link loop"]);
    let o = Command::new(env!("CARGO_BIN_EXE_dbl"))
        .args(["train", "--data"])
        .arg(dir.path())
        .arg("--out")
        .arg(dir.path().join("run"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("vocab.json")
            && err.contains("symbolic link loop")
            && !err.contains("os error"),
        "{err}"
    );
}
