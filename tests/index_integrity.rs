//! Issue 25 §3: what is served is what was built. Index files carry sizes and
//! SHA-256 sums checked at open (a flipped byte, a truncation, a NaN written
//! with a recomputed sum, a manifest that lies are all refused, naming the
//! file); a file truncated or replaced while served answers 503 naming the
//! index, never SIGBUS, while the other indexes keep serving; the weight
//! hash is SHA-256; building refuses empty ids and non-finite encodings.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use dbl::model::Backbone;
use dbl::serve::http::ServeConfig;
use dbl::serve::{Index, Manifest, Models};
use serde_json::{Value, json};
use support::http::{post, request, start};
use support::{BIN, build_index, ok};

struct Fix {
    tmp: tempfile::TempDir,
    data: PathBuf,
    run: PathBuf,
}

fn fix() -> Fix {
    let tmp = tempfile::tempdir().unwrap();
    let data = support::synth(tmp.path());
    let run = support::run(tmp.path(), &data, "run", Backbone::ScanAve, 3);
    Fix { tmp, data, run }
}

impl Fix {
    /// A fresh index `name` (HNSW from 1 item, so the .usearch files exist).
    fn index(&self, name: &str) -> PathBuf {
        let out = self.tmp.path().join(name);
        ok(&build_index(
            &self.run,
            &self.data,
            &out,
            &["--ann-threshold", "1"],
        ));
        out
    }
}

fn open_err(dir: &Path) -> String {
    Index::open(dir, &Models::new()).unwrap_err().to_string()
}

fn edit_manifest(dir: &Path, f: impl FnOnce(&mut Value)) {
    let p = dir.join("manifest.json");
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(&p, v.to_string()).unwrap();
}

/// Writes `bytes` as `dir/name` and records its true size and SHA-256 in the
/// manifest (what an attacker or a buggy tool would do).
fn forge(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes).unwrap();
    let sha = dbl::store::sha256_hex(bytes);
    edit_manifest(dir, |v| {
        v["files"][name] = json!({"bytes": bytes.len(), "sha256": sha});
    });
}

#[test]
fn flipped_truncated_forged_and_lying_files_are_refused_at_open() {
    let f = fix();
    let idx = f.index("idx");
    assert!(Index::open(&idx, &Models::new()).is_ok());
    let m = Manifest::load(&idx).unwrap();
    for name in m.expected_files() {
        assert!(m.files.contains_key(name), "{name} has no checksum");
    }
    let backup = f.tmp.path().join("backup");
    std::fs::create_dir(&backup).unwrap();
    for e in std::fs::read_dir(&idx).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), backup.join(e.file_name())).unwrap();
    }
    let restore = || {
        for e in std::fs::read_dir(&backup).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), idx.join(e.file_name())).unwrap();
        }
    };
    // One flipped byte in each array file.
    for name in [
        "images.npy",
        "images_global.npy",
        "caption_rows.npy",
        "caption_offsets.u64",
        "captions.txt",
        "images.usearch",
    ] {
        let mut b = std::fs::read(idx.join(name)).unwrap();
        let i = b.len() - 3;
        b[i] ^= 0x10;
        std::fs::write(idx.join(name), &b).unwrap();
        let e = open_err(&idx);
        assert!(e.contains(name) && e.contains("SHA-256"), "{name}: {e}");
        restore();
    }
    // Truncated.
    let p = idx.join("caption_rows.npy");
    let len = std::fs::metadata(&p).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(len - 64)
        .unwrap();
    let e = open_err(&idx);
    assert!(
        e.contains("caption_rows.npy") && e.contains("truncated"),
        "{e}"
    );
    restore();
    // A NaN written with a matching checksum: refused all the same.
    let mut b = std::fs::read(idx.join("images.npy")).unwrap();
    let n = b.len();
    b[n - 4..].copy_from_slice(&f32::NAN.to_le_bytes());
    forge(&idx, "images.npy", &b);
    let e = open_err(&idx);
    assert!(e.contains("images.npy") && e.contains("NaN"), "{e}");
    restore();
    // Offsets that do not rise, with a matching checksum.
    let mut b = std::fs::read(idx.join("caption_offsets.u64")).unwrap();
    b[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    forge(&idx, "caption_offsets.u64", &b);
    let e = open_err(&idx);
    assert!(e.contains("offsets must rise"), "{e}");
    restore();
    // A manifest whose fields lie about the arrays or the model.
    let lies: [(&str, Value, &str); 5] = [
        ("regions", json!(35), "image_rows"),
        ("shortlist_dim", json!(8), "shortlist_dim"),
        ("has_ids", json!(true), "lists files"),
        ("ann_threshold", json!(1000), "lists files"),
        ("n_caption_rows", json!(1), "caption_rows.npy"),
    ];
    for (field, value, needle) in lies {
        edit_manifest(&idx, |v| v[field] = value.clone());
        let e = open_err(&idx);
        assert!(e.contains(needle), "{field}: {e}");
        restore();
    }
    edit_manifest(&idx, |v| v["model"]["backbone"] = json!("vse"));
    assert!(open_err(&idx).contains("backbone"));
    restore();
    // A format-1 manifest (no checksums) is refused with what to do.
    edit_manifest(&idx, |v| v["format"] = json!(1));
    assert!(open_err(&idx).contains("rebuild the index"));
    restore();
    assert!(Index::open(&idx, &Models::new()).is_ok());
}

#[test]
fn the_weight_hash_is_sha256_of_the_weights() {
    let f = fix();
    let idx = f.index("idx");
    let m = Manifest::load(&idx).unwrap();
    let models = Models::new();
    let i = Index::open(&idx, &models).unwrap();
    let bytes = std::fs::read(i.model().weights_path()).unwrap();
    assert_eq!(m.model.weight_hash.len(), 64);
    assert_eq!(m.model.weight_hash, dbl::store::sha256_hex(&bytes));
}

/// Truncating (the old SIGBUS) or replacing a served file: that index
/// answers 503 naming itself and the file; the other keeps answering 200.
#[test]
fn a_file_changed_under_the_server_gives_503_for_that_index_only() {
    let f = fix();
    let (a, b) = (f.index("a"), f.index("b"));
    let models = Models::new();
    let indexes = BTreeMap::from([
        ("a".to_string(), Index::open(&a, &models).unwrap()),
        ("b".to_string(), Index::open(&b, &models).unwrap()),
    ]);
    let srv = start(indexes, ServeConfig::default());
    let q = |name: &str| {
        post(
            srv.addr,
            "/v1/search/images",
            &json!({"text": "a dog", "k": 3, "index": name}),
        )
    };
    let cap = |name: &str| {
        post(
            srv.addr,
            "/v1/search/captions",
            &json!({"image_row": 1, "k": 3, "index": name}),
        )
    };
    let (s, before) = q("b");
    assert_eq!(s, 200, "{before}");
    // Truncate every array of b to its header.
    for name in ["images.npy", "caption_rows.npy", "images_global.npy"] {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(b.join(name))
            .unwrap();
        file.set_len(128).unwrap();
    }
    for (s, v) in [q("b"), cap("b")] {
        assert_eq!(s, 503, "{v}");
        let e = v["error"].as_str().unwrap();
        assert!(
            e.contains(b.to_str().unwrap()) && e.contains("changed on disk"),
            "{e}"
        );
        assert!(e.contains("restart"), "{e}");
    }
    let (s, v) = q("a");
    assert_eq!(s, 200, "{v}");
    let (s, v) = cap("a");
    assert_eq!(s, 200, "{v}");
    let (s, h) = request(srv.addr, "GET", "/healthz", &[], b"");
    assert_eq!(s, 200);
    assert_eq!(h["status"], "degraded", "{h}");
    assert_eq!(h["indexes"]["a"]["status"], "ok", "{h}");
    // Replaced by rename (a new inode with the same bytes): also noticed.
    let tmp = a.join("images_global.npy.new");
    std::fs::copy(a.join("images_global.npy"), &tmp).unwrap();
    std::fs::rename(&tmp, a.join("images_global.npy")).unwrap();
    let (s, v) = q("a");
    assert_eq!(s, 503, "{v}");
    assert!(v["error"].as_str().unwrap().contains("replaced"), "{v}");
}

#[test]
fn building_refuses_empty_ids_and_features_that_overflow() {
    let f = fix();
    let ids = f.tmp.path().join("ids.txt");
    let lines: Vec<String> = (0..12)
        .map(|i| {
            if i == 4 {
                String::new()
            } else {
                format!("img{i}")
            }
        })
        .collect();
    std::fs::write(&ids, lines.join("\n") + "\n").unwrap();
    let out = f.tmp.path().join("with_ids");
    let o = build_index(&f.run, &f.data, &out, &["--ids", ids.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("line 5 is empty"),
        "{err}"
    );

    // Finite features near f32::MAX: the encoder overflows; refused naming the image.
    let ims = dbl::data::npy::NpyF32::open_ndim(f.data.join("test_ims.npy"), 3).unwrap();
    let mut x = ims.data().to_vec();
    let per = ims.row_len();
    for v in &mut x[3 * per..4 * per] {
        *v = 3.0e38;
    }
    let big = f.tmp.path().join("big_ims.npy");
    dbl::data::npy::write_f32(&big, ims.shape(), &x).unwrap();
    let o = std::process::Command::new(BIN)
        .args(["index", "build", "--threads", "1", "--run"])
        .arg(&f.run)
        .arg("--images")
        .arg(&big)
        .arg("--out")
        .arg(f.tmp.path().join("big"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("image 3"), "{err}");
}
