//! Trains and tests the seeds of a sweep one after another into
//! `OUT/seed{s}/` (a normal run folder), then writes `OUT/seed{s}/test.json`
//! (every branch's best-on-dev checkpoint scored on test). Resumable: a seed
//! with `test.json` is skipped; one with `last` checkpoints continues through
//! `--resume` (bit for bit); one interrupted before its first checkpoint
//! starts over. `OUT/sweep.json` records the configuration text and the
//! `--set` overrides, and a later invocation with different ones is refused.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::estimator::LateTest;
use super::{SweepError, write_json};
use crate::data::precomp::Split;
use crate::eval::matrix::SimMatrix;
use crate::eval::metrics::Metrics;
use crate::eval::protocol::whole_metrics;
use crate::model::precision::HeadPrecision;
use crate::store::Store;
use crate::store::write_atomic;
use crate::train::backbone_select;
use crate::train::branch_label::{branch_label, branch_role};
use crate::train::config::{Regime, TrainConfig};

/// File in OUT naming what the sweep trains.
pub const MANIFEST: &str = "sweep.json";
/// File in a seed's folder once it is trained and tested.
pub const RESULT: &str = "test.json";
/// File in a seed's folder with its wall seconds so far, while it is unfinished.
const WALL: &str = "wall_seconds.txt";

/// What a sweep trains (must not change between invocations).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The TOML text of `--config`.
    pub config: String,
    /// The `--set` overrides, in order.
    pub overrides: Vec<String>,
    /// `epochs` raised by `--extend-epochs` (applied after the overrides).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epochs: Option<usize>,
}

/// One branch of one seed, tested.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BranchResult {
    /// Branch index.
    pub k: usize,
    /// Role: `anchor`, `target`, `baseline` or `branch{k}`.
    pub role: String,
    /// Legend label, e.g. "target (branch 1)".
    pub label: String,
    /// Best dev rSum (the checkpoint tested).
    pub best_dev_rsum: Option<f64>,
    /// Test metrics of the best-on-dev checkpoint.
    pub test: Metrics,
}

/// One finished seed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeedResult {
    /// The seed.
    pub seed: u64,
    /// Regime trained.
    pub regime: Regime,
    /// Every branch, by index.
    pub branches: Vec<BranchResult>,
    /// Wall seconds spent training and testing this seed (all invocations).
    pub wall_seconds: f64,
    /// Every branch's test rSum at each epoch after the burn-in, when the run
    /// set `test_after_epoch` ([`super::estimator`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub late: Option<LateTest>,
}

/// `OUT/seed{s}`.
pub fn seed_dir(out: &Path, seed: u64) -> PathBuf {
    out.join(format!("seed{seed}"))
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SweepError + '_ {
    move |source| SweepError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads `--config`, writes or checks `OUT/sweep.json`; returns the manifest.
/// `extend`: raise the sweep's `epochs` to this ([`Manifest::epochs`]; never lowered).
pub fn open_sweep(
    config: &Path,
    overrides: &[String],
    out: &Path,
    extend: Option<usize>,
) -> Result<Manifest, SweepError> {
    let text = std::fs::read_to_string(config).map_err(io(config))?;
    let mut m = Manifest {
        config: text,
        overrides: overrides.to_vec(),
        epochs: extend,
    };
    let path = out.join(MANIFEST);
    if path.is_file() {
        let old_text = std::fs::read_to_string(&path).map_err(io(&path))?;
        let old: Manifest = serde_json::from_str(&old_text).map_err(|e| SweepError::Record {
            path: path.clone(),
            message: e.to_string(),
        })?;
        if old.config != m.config {
            return Err(SweepError::Mismatch {
                path,
                what: format!("the text of {} differs", config.display()),
            });
        }
        if old.overrides != m.overrides {
            return Err(SweepError::Mismatch {
                path,
                what: format!("--set was {:?}, now {:?}", old.overrides, m.overrides),
            });
        }
        match (old.epochs, extend) {
            (Some(a), Some(b)) if b < a => {
                return Err(SweepError::Mismatch {
                    path,
                    what: format!("--extend-epochs {b} is below the {a} epochs already set"),
                });
            }
            (Some(_), Some(_)) | (None, Some(_)) => write_json(&path, &m)?,
            (prev, None) => m.epochs = prev,
        }
    } else {
        std::fs::create_dir_all(out).map_err(io(out))?;
        write_json(&path, &m)?;
    }
    Ok(m)
}

/// The validated training configuration of `seed`: the manifest's TOML, its
/// overrides, then `seed` and `out = OUT/seed{s}` (and `extra`, e.g. `stop_after`).
pub fn seed_config(
    m: &Manifest,
    what: &str,
    out: &Path,
    seed: u64,
    extra: &[String],
) -> Result<TrainConfig, SweepError> {
    let dir = seed_dir(out, seed);
    let mut o = m.overrides.clone();
    if let Some(e) = m.epochs {
        o.push(format!("epochs={e}"));
    }
    o.push(format!("seed={seed}"));
    o.push(format!(
        "out={}",
        toml::Value::String(dir.to_string_lossy().into_owned())
    ));
    o.extend(extra.iter().cloned());
    let mut cfg = TrainConfig::from_toml_str(&m.config, what, &o)?;
    if cfg.vocab.is_none() {
        cfg.vocab = Some(cfg.vocab_path());
    }
    cfg.validate()?;
    Ok(cfg)
}

/// The `epochs` a seed's run was configured with (its `config.json`).
fn trained_epochs(dir: &Path) -> Result<Option<usize>, SweepError> {
    let path = dir.join("config.json");
    if !path.is_file() {
        return Ok(None);
    }
    let cfg = TrainConfig::load_json(&path, &[]).map_err(|e| SweepError::Record {
        path: path.clone(),
        message: e.to_string(),
    })?;
    Ok(Some(cfg.epochs))
}

/// Reads a seed's `test.json`, if it is finished.
pub fn read_result(dir: &Path) -> Result<Option<SeedResult>, SweepError> {
    let path = dir.join(RESULT);
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).map_err(io(&path))?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| SweepError::Record {
            path,
            message: e.to_string(),
        })
}

/// Every finished seed under `out`, by seed.
pub fn read_results(out: &Path) -> Result<Vec<SeedResult>, SweepError> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(out).map_err(io(out))? {
        let p = e.map_err(io(out))?.path();
        let is_seed = p
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("seed"))
            .is_some_and(|s| s.parse::<u64>().is_ok());
        if is_seed && let Some(r) = read_result(&p)? {
            v.push(r);
        }
    }
    v.sort_by_key(|r| r.seed);
    Ok(v)
}

/// Test metrics of every branch's best-on-dev checkpoint: THE scoring call of
/// the sweep (the run's own evaluation path; nothing is scored twice here).
fn score_test(cfg: &TrainConfig) -> Result<Vec<Metrics>, SweepError> {
    Ok(backbone_select::test(cfg, Split::Test)?)
}

/// The seed's late test records ([`LateTest::read`]); a cohort that
/// patience stopped within the burn-in has none and is scored once here with
/// every branch's last checkpoint, so that it still counts (at its last epoch).
fn late_test(cfg: &TrainConfig) -> Result<Option<LateTest>, SweepError> {
    let (Some(after), n) = (cfg.test_after_epoch, cfg.n_branches()) else {
        return Ok(None);
    };
    if let Some(l) = LateTest::read(&cfg.out, n, after)? {
        return Ok(Some(l));
    }
    let Some((stage, epoch)) = LateTest::last_epoch(&cfg.out, n - 1)? else {
        return Ok(None);
    };
    let rsum = (0..n)
        .map(|k| {
            let (sims, n_img) =
                backbone_select::score(cfg, k, "last", Split::Test, HeadPrecision::F32)?;
            let m = SimMatrix::new(&sims, n_img, sims.len() / n_img.max(1))
                .map_err(crate::train::TrainError::from)?;
            Ok(vec![whole_metrics(&m).rsum])
        })
        .collect::<Result<_, SweepError>>()?;
    Ok(Some(LateTest {
        after_epoch: after,
        stage,
        epochs: vec![epoch],
        rsum,
    }))
}

/// Trains (or resumes) and tests one seed; `None` when `cfg.stop_after` ended
/// it before its last epoch. Must run inside the caller's thread pool.
pub fn run_seed(cfg: &TrainConfig) -> Result<Option<SeedResult>, SweepError> {
    let dir = &cfg.out;
    if let Some(r) = read_result(dir)? {
        match trained_epochs(dir)? {
            Some(e) if e < cfg.epochs => {
                // Extended: resume. A seed that patience had stopped stops
                // again at once (the same decision, from its checkpointed
                // state) and is tested again, to the same numbers.
                // The seed's wall time so far carries over, so that the
                // extended record's `wall_seconds` covers the whole seed.
                let wall_path = dir.join(WALL);
                write_atomic(&wall_path, format!("{}\n", r.wall_seconds).as_bytes())?;
                let old = dir.join(format!("test.epochs{e}.json"));
                std::fs::rename(dir.join(RESULT), &old).map_err(io(&old))?;
            }
            _ => return Ok(Some(r)),
        }
    }
    // A store that cannot be read is an error to report, never a reason to delete.
    let resume = Store::open(dir)?.has_checkpoint();
    if !resume && dir.exists() {
        // Interrupted before its first checkpoint: nothing worth keeping.
        std::fs::remove_dir_all(dir).map_err(io(dir))?;
    }
    let wall_path = dir.join(WALL);
    let before: f64 = std::fs::read_to_string(&wall_path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0.0);
    let t0 = Instant::now();
    let summary = backbone_select::train(cfg, resume, &crate::dist::Solo)?;
    let mut wall = before + t0.elapsed().as_secs_f64();
    if summary.stopped {
        write_atomic(&wall_path, format!("{wall}\n").as_bytes())?;
        return Ok(None);
    }
    let t1 = Instant::now();
    let test = score_test(cfg)?;
    let late = late_test(cfg)?;
    wall += t1.elapsed().as_secs_f64();
    let n = cfg.n_branches();
    let branches = test
        .into_iter()
        .enumerate()
        .map(|(k, m)| BranchResult {
            k,
            role: branch_role(cfg.regime, k, n),
            label: branch_label(cfg.regime, k, n),
            best_dev_rsum: summary.best_dev.get(k).copied().flatten().map(|d| d.rsum),
            test: m,
        })
        .collect();
    let r = SeedResult {
        seed: cfg.seed,
        regime: cfg.regime,
        branches,
        wall_seconds: wall,
        late,
    };
    write_json(&dir.join(RESULT), &r)?;
    Ok(Some(r))
}
