//! Parity of every loss in `dbl::loss` with the project's PyTorch port.
//!
//! Fixtures: `tests/fixtures/loss/{spec3,rand8,ties8}.safetensors`, written by
//! `python3 tools/reference/make_loss_fixtures.py` (dbl_ref.losses, float64
//! autograd on f32 inputs; see tools/reference/README.md). Each file holds the
//! inputs `st`, `sa`, `sb` and, per entry, `<name>.value`, `<name>.grad_t` and,
//! for mutual learning, `<name>.grad_a`; the metadata key "fixture" lists the
//! entries and their options.
//!
//! Tolerance: relative error |rust − torch| / max(|torch|, 1e-6) <= 1e-5 for
//! every value and every gradient entry (both sides compute in f64, so the
//! observed error is ~1e-15; exact ties and hinge kinks in `ties8` make a
//! wrong tie-breaking or kink convention fail by O(1)). The worst error per
//! loss is printed (`cargo test --release --test loss_parity -- --nocapture`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use dbl::loss::boost_relative::boost_relative;
use dbl::loss::decoupled_info_nce::decoupled_info_nce;
use dbl::loss::distillation::distillation;
use dbl::loss::info_nce::info_nce;
use dbl::loss::mutual::mutual_learning;
use dbl::loss::triplet::triplet;
use dbl::loss::{
    BaseLoss, BoostConfig, BoostForm, LossConfig, LossOutput, MarginAdaptation, PeerLoss,
    Reduction, ScoreMatrix,
};
use safetensors::{Dtype, SafeTensors};
use serde_json::Value;

const TOL: f64 = 1e-5;
const FLOOR: f64 = 1e-6;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/loss")
}

/// Reads an f32 or f64 tensor as f64 values with its shape.
fn tensor(st: &SafeTensors, name: &str) -> (Vec<usize>, Vec<f64>) {
    let t = st
        .tensor(name)
        .unwrap_or_else(|e| panic!("fixture tensor {name}: {e}"));
    let data = match t.dtype() {
        Dtype::F32 => t
            .data()
            .chunks_exact(4)
            .map(|b| f64::from(f32::from_le_bytes(b.try_into().unwrap())))
            .collect(),
        Dtype::F64 => t
            .data()
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
            .collect(),
        d => panic!("fixture tensor {name}: unexpected dtype {d:?}"),
    };
    (t.shape().to_vec(), data)
}

fn scores(st: &SafeTensors, name: &str) -> ScoreMatrix {
    let t = st.tensor(name).unwrap();
    assert_eq!(t.dtype(), Dtype::F32, "{name} must be f32");
    let data: Vec<f32> = t
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    ScoreMatrix::from_f32(name, &data, t.shape()[0]).unwrap()
}

fn f(e: &Value, key: &str) -> f64 {
    e[key]
        .as_f64()
        .unwrap_or_else(|| panic!("entry {e}: missing number {key}"))
}

fn reduction(e: &Value) -> Reduction {
    if e["hardest"].as_bool().expect("hardest") {
        Reduction::Hardest
    } else {
        Reduction::Sum
    }
}

fn adaptation(e: &Value) -> MarginAdaptation {
    match e["adapt"].as_str().expect("adapt") {
        "none" => MarginAdaptation::None,
        "hard" => MarginAdaptation::Hard,
        "soft" => MarginAdaptation::Soft,
        other => panic!("unknown adaptation {other}"),
    }
}

/// The peer term of a fixture entry as a `PeerLoss` (boosting via the typed
/// config, so the config's margin arithmetic γ·β, γ·β·g, γ·β·(1−g) is tested).
fn peer_of(e: &Value, peers: &str) -> PeerLoss {
    match e["loss"].as_str().unwrap() {
        "boost_relative" | "boost_absolute" => PeerLoss::Boost(BoostConfig {
            form: if e["loss"] == "boost_relative" {
                BoostForm::Relative
            } else {
                BoostForm::Absolute
            },
            reduction: reduction(e),
            beta: f(e, "beta"),
            split: e["split"].as_f64().unwrap_or(0.5),
            adaptation: adaptation(e),
        }),
        "distillation" if peers == "others" => PeerLoss::Mutual {
            scale: f(e, "scale"),
        },
        "distillation" => PeerLoss::Distillation {
            scale: f(e, "scale"),
        },
        other => panic!("no peer loss {other}"),
    }
}

/// Runs the Rust loss an entry describes.
fn run(e: &Value, st: &ScoreMatrix, sa: &ScoreMatrix, sb: &ScoreMatrix) -> LossOutput {
    let kind = e["loss"].as_str().unwrap();
    match kind {
        "triplet" => triplet(st, f(e, "margin"), reduction(e)).unwrap(),
        "boost_relative" if e["beta"] == 0.5 => {
            // also call the function directly (the config path is used below)
            boost_relative(st, sa, f(e, "margin") * 0.5, reduction(e), adaptation(e)).unwrap()
        }
        "boost_relative" | "boost_absolute" => {
            let cfg = LossConfig {
                margin: f(e, "margin"),
                peer: peer_of(e, "earlier"),
                ..LossConfig::default()
            };
            cfg.validate().unwrap();
            cfg.peer_loss(st, sa).unwrap()
        }
        "distillation" => distillation(st, sa, f(e, "scale")).unwrap(),
        "mutual_learning" => mutual_learning(st, sa, f(e, "scale")).unwrap(),
        "info_nce" => info_nce(st, f(e, "temperature")).unwrap(),
        "decoupled_info_nce" => decoupled_info_nce(st, f(e, "temperature")).unwrap(),
        "cohort" => {
            let base = &e["base"];
            assert_eq!(base["loss"], "triplet");
            let margin = f(base, "margin");
            if let Some(m) = e["peer"]["margin"].as_f64() {
                assert_eq!(m, margin, "one γ for base and peer");
            }
            let cfg = LossConfig {
                margin,
                alpha: f(e, "alpha"),
                base: BaseLoss::Triplet {
                    reduction: reduction(base),
                },
                peer: peer_of(&e["peer"], e["peers"].as_str().unwrap()),
            };
            cfg.validate().unwrap();
            let branches = [sa.clone(), sb.clone(), st.clone()];
            cfg.branch_loss(&branches, e["k"].as_u64().unwrap() as usize)
                .unwrap()
        }
        other => panic!("fixture names an unknown loss {other:?}"),
    }
}

fn rel_err(got: f64, want: f64) -> f64 {
    (got - want).abs() / want.abs().max(FLOOR)
}

fn worst(got: &[f64], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len());
    got.iter()
        .zip(want)
        .map(|(&g, &w)| rel_err(g, w))
        .fold(0.0, f64::max)
}

#[derive(Default)]
struct Stats {
    entries: usize,
    value: f64,
    grad: f64,
}

#[test]
fn every_loss_matches_pytorch() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixture_dir())
        .expect("tests/fixtures/loss exists")
        .map(|d| d.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    files.sort();
    let names: Vec<_> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "rand8.safetensors",
            "spec3.safetensors",
            "ties8.safetensors"
        ]
    );

    let mut stats: BTreeMap<String, Stats> = BTreeMap::new();
    let mut failures = Vec::new();
    for path in &files {
        let bytes = std::fs::read(path).unwrap();
        let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
        let fixture: Value = serde_json::from_str(
            meta.metadata()
                .as_ref()
                .and_then(|m| m.get("fixture"))
                .expect("metadata key 'fixture'"),
        )
        .unwrap();
        let st_file = SafeTensors::deserialize(&bytes).unwrap();
        let (st, sa, sb) = (
            scores(&st_file, "st"),
            scores(&st_file, "sa"),
            scores(&st_file, "sb"),
        );
        let entries = fixture["entries"].as_array().unwrap();
        assert!(!entries.is_empty());
        for e in entries {
            let name = e["name"].as_str().unwrap();
            let out = run(e, &st, &sa, &sb);
            let (_, value) = tensor(&st_file, &format!("{name}.value"));
            let (shape, grad_t) = tensor(&st_file, &format!("{name}.grad_t"));
            assert_eq!(shape, [st.n(), st.n()]);
            let ev = rel_err(out.value, value[0]);
            let mut eg = worst(&out.grad, &grad_t);
            if e["loss"] == "mutual_learning" {
                let (_, grad_a) = tensor(&st_file, &format!("{name}.grad_a"));
                eg = eg.max(worst(out.grad_anchor.as_deref().unwrap(), &grad_a));
            } else {
                assert!(
                    out.grad_anchor.is_none(),
                    "{name}: unexpected anchor gradient"
                );
            }
            let s = stats
                .entry(e["loss"].as_str().unwrap().to_string())
                .or_default();
            s.entries += 1;
            s.value = s.value.max(ev);
            s.grad = s.grad.max(eg);
            if ev > TOL || eg > TOL {
                failures.push(format!(
                    "{}: {name}: value {} vs torch {} (rel {ev:.2e}), worst grad rel {eg:.2e}",
                    path.display(),
                    out.value,
                    value[0]
                ));
            }
        }
    }
    println!("loss parity vs PyTorch (rel err vs max(|torch|, {FLOOR:e}); tolerance {TOL:e}):");
    for (loss, s) in &stats {
        println!(
            "  {loss:20} {:3} entries  worst value {:.2e}  worst grad {:.2e}",
            s.entries, s.value, s.grad
        );
    }
    let kinds: Vec<&str> = stats.keys().map(String::as_str).collect();
    assert_eq!(
        kinds,
        [
            "boost_absolute",
            "boost_relative",
            "cohort",
            "decoupled_info_nce",
            "distillation",
            "info_nce",
            "mutual_learning",
            "triplet"
        ]
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
