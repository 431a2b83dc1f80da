//! Index + two-stage search on a tiny synthetic gallery (tests/support):
//! - property: with K = the gallery size, search equals the exact full ranking
//!   (every image / caption scored by the run's head from the raw features,
//!   sorted best first, ties by row), rows and score bits;
//! - HNSW shortlist (threshold 1) with K < gallery: every hit's score is its
//!   exact score, hits sorted;
//! - `dbl search` CLI (text and image features, --json), bad CLI input, an
//!   index whose model changed, a truncated index file.

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use dbl::data::npy::NpyF32;
use dbl::data::precomp::read_captions;
use dbl::eval::sharded::BlockSize;
use dbl::infer::LoadedMatcher;
use dbl::model::Backbone;
use dbl::model::encode::EncodedCaptions;
use dbl::model::precision::HeadPrecision;
use dbl::model::split::score_encoded;
use dbl::serve::{Hit, Index, Models};
use dbl::watch::Unwatched;
use proptest::prelude::*;
use support::{BIN, build_index, ok};

struct Fixture {
    _tmp: tempfile::TempDir,
    data: PathBuf,
    run: PathBuf,
    /// Exact brute-force shortlist.
    exact: PathBuf,
    /// HNSW shortlist (threshold 1).
    hnsw: PathBuf,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let data = support::synth(tmp.path());
        let run = support::run(tmp.path(), &data, "run", Backbone::ScanAve, 5);
        let exact = tmp.path().join("idx");
        let hnsw = tmp.path().join("idx_hnsw");
        ok(&build_index(&run, &data, &exact, &[]));
        ok(&build_index(&run, &data, &hnsw, &["--ann-threshold", "1"]));
        Fixture {
            _tmp: tmp,
            data,
            run,
            exact,
            hnsw,
        }
    })
}

/// Exact ranking from raw inputs: (row, score) best first, ties by row.
fn rank(scores: Vec<f32>) -> Vec<(usize, f32)> {
    let mut v: Vec<(usize, f32)> = scores.into_iter().enumerate().collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    v
}

/// Exact ranking of encoded images x captions (one side has one item).
fn exact(
    m: &LoadedMatcher,
    img: &[f32],
    regions: usize,
    cap: &EncodedCaptions,
) -> Vec<(usize, f32)> {
    let bs = BlockSize::default();
    rank(
        score_encoded(
            m.matcher(),
            img,
            regions,
            cap,
            HeadPrecision::F32,
            bs,
            &Unwatched,
        )
        .unwrap(),
    )
}

fn exact_for_text(m: &LoadedMatcher, ims: &NpyF32, text: &str) -> Vec<(usize, f32)> {
    let (cap, _) = m.encode_texts(&[text]).unwrap();
    let img = m.matcher().encode_images(ims.data(), ims.shape()[1]);
    exact(m, &img, ims.shape()[1], &cap)
}

fn exact_for_image(
    m: &LoadedMatcher,
    ims: &NpyF32,
    row: usize,
    caps: &[String],
) -> Vec<(usize, f32)> {
    let ids: Vec<Vec<u32>> = caps.iter().map(|c| m.vocab().encode_caption(c)).collect();
    let cap = m.matcher().encode_captions(ids.len(), &|k| &ids[k]);
    let img = m.matcher().encode_images(ims.row(row), ims.shape()[1]);
    exact(m, &img, ims.shape()[1], &cap)
}

/// (row, score bits) of hits.
fn hit_bits(hits: &[Hit]) -> Vec<(usize, u32)> {
    hits.iter().map(|h| (h.row, h.score.to_bits())).collect()
}

/// (row, score bits) of a ranking.
fn bits(v: &[(usize, f32)]) -> Vec<(usize, u32)> {
    v.iter().map(|&(r, s)| (r, s.to_bits())).collect()
}

/// The vocabulary's words (specials excluded).
fn words() -> Vec<String> {
    let v = dbl::data::vocab::Vocab::load(fixture().data.join("vocab.json")).unwrap();
    (4..v.len() as u32)
        .map(|i| v.word(i).unwrap().to_string())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// K = gallery size ⇒ exact full ranking (text → images and image → captions).
    #[test]
    fn k_equal_to_gallery_is_exact_ranking(picks in prop::collection::vec(0usize..1000, 1..8), row in 0usize..12) {
        let f = fixture();
        let models = Models::new();
        let idx = Index::open(&f.exact, &models).unwrap();
        let m = LoadedMatcher::from_run(&f.run, None, "best").unwrap();
        let ims = NpyF32::open_ndim(f.data.join("test_ims.npy"), 3).unwrap();
        let w = words();
        let text: Vec<&str> = picks.iter().map(|&p| w[p % w.len()].as_str()).collect();
        let text = text.join(" ");
        let n = idx.manifest().n_images;
        let got = idx.search_images(&text, n, n).unwrap();
        let want = exact_for_text(&m, &ims, &text);
        prop_assert_eq!(hit_bits(&got.hits), bits(&want));

        let caps = read_captions(&f.data.join("test_caps.txt")).unwrap();
        let nc = caps.len();
        let got = idx.search_captions(ims.row(row), nc, nc).unwrap();
        let want = exact_for_image(&m, &ims, row, &caps);
        prop_assert_eq!(hit_bits(&got.hits), bits(&want));
        // The stored gallery row gives the same answer as its raw features.
        let by_row = idx.search_captions_by_row(row, nc, nc).unwrap();
        prop_assert_eq!(hit_bits(&by_row.hits), bits(&want));
    }
}

/// HNSW shortlist of K < gallery: hits are a sorted subset with exact scores.
#[test]
fn hnsw_shortlist_reranks_exactly() {
    let f = fixture();
    let models = Models::new();
    let idx = Index::open(&f.hnsw, &models).unwrap();
    let m = LoadedMatcher::from_run(&f.run, None, "best").unwrap();
    let ims = NpyF32::open_ndim(f.data.join("test_ims.npy"), 3).unwrap();
    let text = read_captions(&f.data.join("test_caps.txt")).unwrap()[7].clone();
    let got = idx.search_images(&text, 3, 5).unwrap();
    assert_eq!((got.hits.len(), got.candidates), (3, 5));
    let exact = exact_for_text(&m, &ims, &text);
    for w in got.hits.windows(2) {
        assert!(w[0].score >= w[1].score);
    }
    for h in &got.hits {
        let e = exact.iter().find(|(r, _)| *r == h.row).unwrap();
        assert_eq!(h.score.to_bits(), e.1.to_bits());
    }
    // Same query twice: same answer (deterministic).
    assert_eq!(idx.search_images(&text, 3, 5).unwrap(), got);
}

fn search(args: &[&str]) -> std::process::Output {
    Command::new(BIN).arg("search").args(args).output().unwrap()
}

#[test]
fn search_cli_text_and_image() {
    let f = fixture();
    let idx = f.exact.to_str().unwrap();
    let out = ok(&search(&[
        "--index", idx, "--text", "a dog", "--k", "3", "--json",
    ]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["hits"].as_array().unwrap().len(), 3);
    let ims = f.data.join("test_ims.npy");
    let out = ok(&search(&[
        "--index",
        idx,
        "--image-features",
        ims.to_str().unwrap(),
        "--row",
        "4",
        "--k",
        "5",
    ]));
    assert_eq!(out.lines().count(), 5, "{out}");
    let bad = |args: &[&str], needle: &str| {
        let o = search(args);
        assert!(!o.status.success(), "{args:?} accepted");
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(e.contains(needle), "{args:?}: {e}");
    };
    bad(&["--index", idx, "--text", "   "], "empty or whitespace");
    bad(
        &["--index", idx, "--text", "zzqx qqzz"],
        "no word of the vocabulary",
    );
    // Out of --k's range: a usage error from the parser (issue 25 §2).
    bad(
        &["--index", idx, "--text", "a dog", "--k", "0"],
        "'--k <K>'",
    );
    bad(&["--index", idx, "--text", "a dog", "--k", "13"], "k = 13");
    bad(
        &[
            "--index",
            idx,
            "--image-features",
            ims.to_str().unwrap(),
            "--row",
            "12",
        ],
        "--row 12",
    );
    let long = "dog ".repeat(2_000);
    bad(&["--index", idx, "--text", &long], "at most 4096");
}

/// An index refuses a model that changed since it was built, and a truncated file.
#[test]
fn index_refuses_other_model_and_truncation() {
    let tmp = tempfile::tempdir().unwrap();
    let data = support::synth(tmp.path());
    let run = support::run(tmp.path(), &data, "run", Backbone::Vse, 1);
    let idx = tmp.path().join("idx");
    ok(&build_index(&run, &data, &idx, &[]));
    let models = Models::new();
    Index::open(&idx, &models).unwrap();
    // Retrain (here: re-initialise with another seed) into the same run folder.
    support::run(tmp.path(), &data, "run", Backbone::Vse, 2);
    let e = Index::open(&idx, &Models::new()).unwrap_err().to_string();
    assert!(e.contains("different model"), "{e}");
    support::run(tmp.path(), &data, "run", Backbone::Vse, 1);
    Index::open(&idx, &Models::new()).unwrap();
    // Truncate the image array.
    let p = idx.join("images.npy");
    let len = std::fs::metadata(&p).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&p)
        .unwrap()
        .set_len(len - 4)
        .unwrap();
    let e = Index::open(&idx, &Models::new()).unwrap_err().to_string();
    assert!(e.contains("images.npy"), "{e}");
    let o = search(&["--index", idx.to_str().unwrap(), "--text", "a dog"]);
    assert!(!o.status.success());
    // Building over an existing index is refused (nothing overwritten).
    let o = build_index(&run, &data, &idx, &[]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("already holds an index"));
}
