//! Every file under `configs/` parses (no unknown keys) and validates, and the
//! paper configurations carry the authors' script.sh facts (epochs, decay
//! points, K, m0, OAS stage 2).

use std::path::{Path, PathBuf};

use dbl::train::config::{Regime, TrainConfig};

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_some_and(|x| x == "toml") {
            out.push(p);
        }
    }
}

fn load(p: &Path, tmp: &Path) -> TrainConfig {
    let o = vec![
        format!("data={:?}", tmp.display().to_string()),
        format!("out={:?}", tmp.join("run").display().to_string()),
    ];
    let c = TrainConfig::load(p, &o).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    // One validation covers every key, the model section's included.
    c.validate()
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    c
}

#[test]
fn every_config_parses_and_validates() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("vocab.json"), "{}").unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let mut all = Vec::new();
    files(&root, &mut all);
    assert!(all.len() >= 20, "{} configs", all.len());
    for p in &all {
        let c = load(p, tmp.path());
        let name = p.file_stem().unwrap().to_string_lossy().into_owned();
        let regime = match name.split('_').next().unwrap() {
            "baseline" => Regime::Baseline,
            "oss" => Regime::Oss,
            "mss" => Regime::Mss,
            "oas" => Regime::Oas,
            other => panic!("{}: unexpected name {other}", p.display()),
        };
        assert_eq!(c.regime, regime, "{}", p.display());
        let rel = p
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let (epochs, decay) = if rel.starts_with("f30k") {
            (40, 30)
        } else if rel.starts_with("coco") {
            (20, 10)
        } else {
            continue;
        };
        assert_eq!((c.epochs, c.lr_update), (epochs, decay), "{rel}");
        assert_eq!(
            (c.lr, c.batch_size, c.loss.margin),
            (2e-4, 128, 0.2),
            "{rel}"
        );
        match regime {
            Regime::Oss => assert_eq!(c.branches, 2, "{rel}"),
            Regime::Mss => assert_eq!(c.mss.m0, 0.99995, "{rel}"),
            Regime::Oas => {
                let want = if rel.starts_with("f30k") {
                    (30, 0)
                } else {
                    (20, 10)
                };
                assert_eq!((c.oas.epochs, c.oas.lr_update), want, "{rel}");
                assert!(c.oas.augment);
            }
            Regime::Baseline => {}
        }
    }
    for ds in ["f30k", "coco"] {
        for r in [
            "baseline", "oss_abs", "oss_rel", "mss_abs", "mss_rel", "oas_abs", "oas_rel",
        ] {
            assert!(
                root.join(ds).join(format!("{r}.toml")).is_file(),
                "{ds}/{r}"
            );
        }
    }
}
