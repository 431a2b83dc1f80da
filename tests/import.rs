//! `dbl import`: checkpoints in the original codebases' layouts (written by
//! the PyTorch port, `tools/reference/make_import_fixtures.py`, and converted
//! by `tools/import_torch.py`, so these tests need no Python) become run
//! folders that score like the port; malformed checkpoints are refused with
//! an error naming what is wrong. The `.pth.tar` route (python3 + torch) is
//! tested when torch is installed.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use dbl::data::vocab::{SPECIALS, Vocab};
use dbl::eval::sharded::BlockSize;
use dbl::infer::LoadedMatcher;
use dbl::model::precision::HeadPrecision;
use dbl::model::split::score_encoded;
use safetensors::SafeTensors;

fn fixture(dir: &str, name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join(dir)
        .join(name)
}

/// A dataset folder holding only a vocabulary of the fixtures' 50 words.
fn data_dir(root: &Path) -> PathBuf {
    let d = root.join("data");
    std::fs::create_dir_all(&d).unwrap();
    let mut words: Vec<String> = SPECIALS.iter().map(|s| s.to_string()).collect();
    words.extend((4..50).map(|i| format!("w{i}")));
    Vocab::from_words(words)
        .unwrap()
        .save(d.join("vocab.json"))
        .unwrap();
    d
}

fn import(args: &[&Path], data: &Path, out: &Path) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dbl"));
    c.arg("import");
    for a in args {
        c.arg(a);
    }
    c.arg("--data").arg(data).arg("--out").arg(out);
    c.output().unwrap()
}

fn import_converted(name: &str, root: &Path) -> (Output, PathBuf) {
    let out = root.join(format!("run_{name}"));
    let st = fixture("import", &format!("{name}.safetensors"));
    let js = fixture("import", &format!("{name}.json"));
    let mut c = Command::new(env!("CARGO_BIN_EXE_dbl"));
    c.arg("import")
        .arg(&st)
        .arg("--options")
        .arg(&js)
        .arg("--data")
        .arg(data_dir(root))
        .arg("--out")
        .arg(&out);
    (c.output().unwrap(), out)
}

fn f32s(st: &SafeTensors<'_>, name: &str) -> (Vec<usize>, Vec<f32>) {
    let t = st.tensor(name).unwrap();
    let v = t
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    (t.shape().to_vec(), v)
}

fn i64s(st: &SafeTensors<'_>, name: &str) -> Vec<usize> {
    st.tensor(name)
        .unwrap()
        .data()
        .chunks_exact(8)
        .map(|b| i64::from_le_bytes(b.try_into().unwrap()) as usize)
        .collect()
}

/// Scores the port fixture `batch`'s images × captions with the run's
/// branch 0 through the inference path, and compares with `sims` of `want`.
fn scores_like_the_port(run: &Path, batch: &str, want: &str) {
    let m = LoadedMatcher::from_run(run, Some(0), "best").unwrap();
    let bb = std::fs::read(fixture("model", batch)).unwrap();
    let b = SafeTensors::deserialize(&bb).unwrap();
    let (ishape, images) = f32s(&b, "images");
    let lengths = i64s(&b, "lengths");
    let tokens: Vec<u32> = i64s(&b, "tokens").iter().map(|&t| t as u32).collect();
    let max_len = tokens.len() / lengths.len();
    let caps: Vec<&[u32]> = (0..lengths.len())
        .map(|k| &tokens[k * max_len..k * max_len + lengths[k]])
        .collect();
    let mm = m.matcher();
    let img = mm.encode_images(&images, ishape[1]);
    let cap = mm.encode_captions(caps.len(), &|k| caps[k]);
    let sims = score_encoded(
        mm,
        &img,
        ishape[1],
        &cap,
        HeadPrecision::F32,
        BlockSize::default(),
        &dbl::watch::Unwatched,
    )
    .unwrap();
    let wb = std::fs::read(fixture("model", want)).unwrap();
    let port = f32s(&SafeTensors::deserialize(&wb).unwrap(), "sims").1;
    let r = support::parity::rel(&sims, &port);
    println!("  {run:?}: rel {r:.3e}");
    assert!(r <= 1e-5, "{}: rel {r:.3e} > 1e-5", run.display());
}

#[test]
fn every_layout_imports_and_scores_like_the_port() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, backbone, batch, want) in [
        (
            "dbl_oss",
            "scan-ave",
            "scan_small.safetensors",
            "scan_small.safetensors",
        ),
        (
            "sgraf_sgr",
            "sgr",
            "sgr_small.safetensors",
            "sgr_ckpt.sims.safetensors",
        ),
        (
            "sgraf_saf",
            "saf",
            "saf_small.safetensors",
            "saf_small.safetensors",
        ),
        (
            "vse_infty",
            "vse",
            "vse_gpo_small.safetensors",
            "vse_gpo_small.safetensors",
        ),
        // VSE∞'s `precomp_enc_type basic`: the region MLP's batch norm with
        // running statistics (folded on import), scored in eval mode.
        (
            "vse_infty_basic",
            "vse-infty",
            "vse_infty_small.safetensors",
            "vse_infty_small.safetensors",
        ),
    ] {
        let (o, run) = import_converted(name, tmp.path());
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(stdout.contains(backbone), "{name}: {stdout}");
        scores_like_the_port(&run, batch, want);
    }
}

#[test]
fn branches_become_one_run_and_the_epoch_is_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let st = fixture("import", "dbl_oss.safetensors");
    let out = tmp.path().join("oss");
    let o = Command::new(env!("CARGO_BIN_EXE_dbl"))
        .arg("import")
        .args([&st, &st])
        .arg("--options")
        .arg(fixture("import", "dbl_oss.json"))
        .arg("--data")
        .arg(data_dir(tmp.path()))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["regime"], "oss");
    assert_eq!(cfg["branches"], 2);
    scores_like_the_port(&out, "scan_small.safetensors", "scan_small.safetensors");
    let last = LoadedMatcher::from_run(&out, Some(1), "last").unwrap();
    assert_eq!(last.config().backbone.name(), "scan-ave");
    // A second import into the same folder is refused, and loses nothing.
    let again = import(&[&st], &tmp.path().join("data"), &out);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));
    assert!(out.join("config.json").is_file());
}

fn refused(args: &[&Path], options: Option<&Path>, data: &Path, out: &Path) -> String {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dbl"));
    c.arg("import").args(args);
    if let Some(o) = options {
        c.arg("--options").arg(o);
    }
    let o = c
        .arg("--data")
        .arg(data)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    assert!(!o.status.success(), "accepted: {args:?}");
    assert!(
        !out.join("config.json").exists(),
        "a refused import wrote a run"
    );
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn malformed_checkpoints_are_refused_with_what_is_wrong() {
    let tmp = tempfile::tempdir().unwrap();
    let data = data_dir(tmp.path());
    let out = tmp.path().join("run");
    let e = refused(
        &[&fixture("import", "bad_missing.safetensors")],
        None,
        &data,
        &out,
    );
    assert!(e.contains("sim_enc.sim_eval_w.weight"), "{e}");
    let e = refused(
        &[&fixture("import", "bad_shape.safetensors")],
        None,
        &data,
        &out,
    );
    assert!(e.contains("sim_enc.sim_eval_w.weight"), "{e}");
    // Options that contradict the tensors.
    let opts = tmp.path().join("opts.json");
    std::fs::write(&opts, r#"{"layout": "dbl", "opt": {"embed_size": 1024}}"#).unwrap();
    let e = refused(
        &[&fixture("import", "dbl_oss.safetensors")],
        Some(&opts),
        &data,
        &out,
    );
    assert!(e.contains("embed_size = 1024") && e.contains("32"), "{e}");
    // Not a checkpoint at all.
    let junk = tmp.path().join("junk.safetensors");
    std::fs::write(&junk, b"not a checkpoint").unwrap();
    let e = refused(&[&junk], None, &data, &out);
    assert!(e.contains("junk.safetensors"), "{e}");
    // Branches of different networks.
    let e = refused(
        &[
            &fixture("import", "dbl_oss.safetensors"),
            &fixture("import", "sgraf_saf.safetensors"),
        ],
        None,
        &data,
        &out,
    );
    assert!(e.contains("different networks"), "{e}");
    // VSE∞'s image encoder on raw images (`precomp_enc_type backbone`).
    let e = refused(
        &[&fixture("import", "bad_precomp.safetensors")],
        Some(&fixture("import", "bad_precomp.json")),
        &data,
        &out,
    );
    assert!(
        e.contains("precomp_enc_type = \"backbone\"") && e.contains("basic"),
        "{e}"
    );
    // Options that say `basic` over a checkpoint without the region MLP.
    std::fs::write(
        &opts,
        r#"{"layout": "vse_infty", "opt": {"precomp_enc_type": "basic"}}"#,
    )
    .unwrap();
    let e = refused(
        &[&fixture("import", "vse_infty.safetensors")],
        Some(&opts),
        &data,
        &out,
    );
    assert!(e.contains("img_enc.mlp"), "{e}");
    // No dataset given and the options' one is not here.
    let o = Command::new(env!("CARGO_BIN_EXE_dbl"))
        .arg("import")
        .arg(fixture("import", "dbl_oss.safetensors"))
        .arg("--options")
        .arg(fixture("import", "dbl_oss.json"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && e.contains("--data"), "{e}");
}

/// The `.pth.tar` route: python3 + torch convert, then the same run.
#[test]
fn pth_checkpoints_import_through_python() {
    let has_torch = Command::new("python3")
        .args(["-c", "import torch, safetensors"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_torch {
        println!("note: python3 with torch/safetensors not found; skipping the .pth route");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = data_dir(tmp.path());
    let out = tmp.path().join("sgr");
    let o = import(&[&fixture("import", "sgraf_sgr.pth.tar")], &data, &out);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    scores_like_the_port(&out, "sgr_small.safetensors", "sgr_ckpt.sims.safetensors");
    let out = tmp.path().join("vse_infty_basic");
    let o = import(
        &[&fixture("import", "vse_infty_basic.pth.tar")],
        &data,
        &out,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    scores_like_the_port(
        &out,
        "vse_infty_small.safetensors",
        "vse_infty_small.safetensors",
    );
    let e = refused(
        &[&fixture("import", "bad_precomp.pth.tar")],
        None,
        &data,
        &tmp.path().join("bad"),
    );
    assert!(e.contains("precomp_enc_type"), "{e}");
    let e = refused(
        &[&fixture("import", "bad_layout.pth.tar")],
        None,
        &data,
        &tmp.path().join("bad"),
    );
    assert!(e.contains("no state_dict found"), "{e}");
}

/// Adds `{train,dev,test}` splits to the fixtures' dataset folder `data`:
/// `n` images of 4 regions × 64 features (the fixtures' `img_dim`) and five
/// captions each over the fixtures' words, deterministic.
fn add_splits(data: &Path) {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) as u32
    };
    for (split, n) in [("train", 16), ("dev", 5), ("test", 5)] {
        let feats: Vec<f32> = (0..n * 4 * 64)
            .map(|_| (next() % 1000) as f32 / 1000.0)
            .collect();
        dbl::data::npy::write_f32(data.join(format!("{split}_ims.npy")), &[n, 4, 64], &feats)
            .unwrap();
        let caps: Vec<String> = (0..n * 5)
            .map(|_| {
                let len = 3 + next() as usize % 5;
                let words: Vec<String> =
                    (0..len).map(|_| format!("w{}", 4 + next() % 46)).collect();
                words.join(" ")
            })
            .collect();
        std::fs::write(
            data.join(format!("{split}_caps.txt")),
            caps.join("\n") + "\n",
        )
        .unwrap();
    }
}

/// `dbl score --run RUN --branch K` of the test split at 1 thread → the
/// similarity matrix's bytes.
fn score_bytes(run: &Path, branch: usize, out: &Path) -> Vec<u8> {
    let o = Command::new(env!("CARGO_BIN_EXE_dbl"))
        .args(["score", "--run"])
        .arg(run)
        .args(["--branch", &branch.to_string(), "--threads", "1", "--out"])
        .arg(out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::read(out).unwrap()
}

/// An imported checkpoint (the port's DBL layout) is the frozen anchor of
/// an OAS run given by `oas.anchor`: stage 1 is skipped, the target trains
/// against it, and the anchor scores exactly as the imported run does.
#[test]
fn an_imported_run_is_the_frozen_anchor_of_oas() {
    let tmp = tempfile::tempdir().unwrap();
    let (o, imported) = import_converted("dbl_oss", tmp.path());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let data = tmp.path().join("data");
    add_splits(&data);
    let train = |out: &Path, extra: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_dbl"));
        c.args(["train", "--data"])
            .arg(&data)
            .arg("--out")
            .arg(out)
            .args(["--regime", "oas", "--epochs", "3", "--seed", "1"]);
        let anchor = format!(
            "oas.anchor={}",
            toml::Value::String(imported.display().to_string())
        );
        for s in [
            anchor.as_str(),
            "model.embed=32",
            "model.word_dim=16",
            "model.sim_dim=16",
            "oas.epochs=1",
            "batch_size=8",
            "max_steps_per_epoch=2",
            "threads=1",
            "lr=0.01",
            "log_every=1",
        ]
        .iter()
        .chain(extra)
        {
            c.args(["--set", s]);
        }
        c.output().unwrap()
    };
    let run = tmp.path().join("oas");
    let o = train(&run, &["oas.augment=false"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Stage 1 never ran (its 3 epochs would have logged steps); stage 2 did.
    let log = |k: usize| {
        std::fs::read_to_string(run.join(format!("branch{k}/metrics.jsonl"))).unwrap_or_default()
    };
    assert!(
        !log(0).contains("\"stage\":1"),
        "stage 1 trained: {}",
        log(0)
    );
    assert_eq!(
        log(1).matches("\"kind\":\"step\"").count(),
        2,
        "stage 2 took two steps: {}",
        log(1)
    );
    // The anchor stayed frozen: it scores as the imported run, bit for bit.
    let given = score_bytes(&imported, 0, &tmp.path().join("imported.npy"));
    let anchor = score_bytes(&run, 0, &tmp.path().join("anchor.npy"));
    assert!(
        given == anchor,
        "the anchor's scores differ from the imported run's"
    );
    let target = score_bytes(&run, 1, &tmp.path().join("target.npy"));
    assert!(
        target != given,
        "the target did not train away from its anchor"
    );
    // With caption augmentation (the default) the anchor lacks the `<mask>` row: said so.
    // Nothing is written then.
    let refused = tmp.path().join("oas_aug");
    let o = train(&refused, &[]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && e.contains("oas.anchor") && e.contains("oas.augment = false"),
        "{e}"
    );
    assert!(
        !refused.join("config.json").exists(),
        "a refused anchor wrote a run"
    );
}
