//! `dbl explain` end to end on the synthetic test split, for every registered
//! backbone: the score it prints is the one `dbl score` wrote for that
//! (image, caption) pair (bit for bit for scan-ave and vse, within 1e-6 for
//! sgr / saf, whose scorer groups images), the JSON has one attention row and
//! contribution per word, and the pictures are written with their texts.

mod support;

use std::path::Path;
use std::process::Command;

use dbl::data::npy::{NpyF32, write_f32};
use dbl::model::Backbone;
use serde_json::Value;
use support::{BIN, ok};

fn explain(run: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(["explain", "--split", "test", "--run"])
        .arg(run)
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn explanation_score_is_dbl_score_for_the_pair() {
    let tmp = tempfile::tempdir().unwrap();
    let data = support::synth(tmp.path());
    let (i, j) = (5usize, 17usize);
    for (b, seed) in [
        (Backbone::ScanAve, 1),
        (Backbone::Vse, 2),
        (Backbone::Sgr, 3),
        (Backbone::Saf, 4),
    ] {
        let run = support::run(tmp.path(), &data, b.name(), b, seed);
        let sims = tmp.path().join(format!("{}.npy", b.name()));
        ok(&Command::new(BIN)
            .args(["score", "--split", "test", "--run"])
            .arg(&run)
            .arg("--out")
            .arg(&sims)
            .output()
            .unwrap());
        let m = NpyF32::open(&sims).unwrap();
        let want = m.row(i)[j];
        let out = tmp.path().join(format!("{}_explain", b.name()));
        let (si, sj) = (i.to_string(), j.to_string());
        let dir = out.to_str().unwrap();
        let args = [
            "--image-row",
            &si,
            "--caption-row",
            &sj,
            "--json",
            "--out",
            dir,
        ];
        let o = explain(&run, &args);
        let ex: Value = serde_json::from_str(&ok(&o)).unwrap();
        let got = ex["score"].as_f64().unwrap() as f32;
        if matches!(b, Backbone::Sgr | Backbone::Saf) {
            assert!((got - want).abs() <= 1e-6, "{b:?}: {got} vs {want}");
        } else {
            assert_eq!(got.to_bits(), want.to_bits(), "{b:?}: {got} vs {want}");
        }
        let words = ex["words"].as_array().unwrap();
        assert!(words.len() >= 3 && words[0] == "<start>", "{ex}");
        assert_eq!(ex["backbone"], b.name());
        if b == Backbone::Vse {
            assert!(ex["attention"].is_null());
            assert_eq!(ex["features"].as_array().unwrap().len(), 16);
            assert!(!out.join("attention.png").exists());
        } else {
            let att = ex["attention"].as_array().unwrap();
            assert_eq!(att.len(), words.len());
            assert_eq!(att[0].as_array().unwrap().len(), 36);
            assert_eq!(
                ex["word_contributions"].as_array().unwrap().len(),
                words.len()
            );
            let svg = std::fs::read_to_string(out.join("attention.svg")).unwrap();
            for t in [
                "image region",
                "word (its part of the logit)",
                "attention α (softmax over regions)",
            ] {
                assert!(svg.contains(t), "{b:?}: no {t:?} in the picture");
            }
            assert!(
                svg.contains(&format!("score {got:.4}")),
                "{b:?}: title without the score"
            );
            assert!(out.join("attention.png").is_file());
        }
        assert!(out.join("explain.json").is_file());
    }
}

/// `--image` draws the best words' top regions over the photo, with the
/// boxes of the split (`{split}_boxes.npy`); bad rows and missing boxes are
/// refused with what was expected.
#[test]
fn regions_are_drawn_over_the_image_and_bad_input_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let data = support::synth(tmp.path());
    let run = support::run(tmp.path(), &data, "run", Backbone::ScanAve, 1);
    let photo = tmp.path().join("photo.png");
    image::RgbImage::from_pixel(160, 120, image::Rgb([90, 140, 90]))
        .save(&photo)
        .unwrap();
    let out = tmp.path().join("ex");
    let args = [
        "--image-row",
        "2",
        "--caption",
        "a dog on the grass",
        "--image",
    ];
    let mut c = Command::new(BIN);
    c.args(["explain", "--split", "test", "--run"]).arg(&run);
    c.args(args).arg(&photo).arg("--out").arg(&out);
    let o = c.output().unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("test_boxes.npy"), "{err}");
    // Boxes in pixels: region r at x = 4r.
    let boxes: Vec<f32> = (0..12 * 36)
        .flat_map(|k| {
            let r = (k % 36) as f32;
            [4.0 * r, 10.0, 4.0 * r + 20.0, 60.0]
        })
        .collect();
    write_f32(data.join("test_boxes.npy"), &[12, 36, 4], &boxes).unwrap();
    let o = c.output().unwrap();
    let stdout = ok(&o);
    assert!(stdout.contains("score"), "{stdout}");
    let img = image::open(out.join("regions.png")).unwrap().to_rgb8();
    assert!(img.width() > 160 && img.height() > 120);

    let o = explain(&run, &["--image-row", "99", "--caption-row", "0"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--image-row 99") && err.contains("0..12"),
        "{err}"
    );
    let o = explain(&run, &["--image-row", "0", "--caption", "zzzz qqqq"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("no word of the vocabulary"), "{err}");
}
