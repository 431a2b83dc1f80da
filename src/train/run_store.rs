//! A run's checkpoint I/O (docs/method.md §4): [`BranchRun`], one branch
//! being trained with its optimiser, dropout RNG and progress, loaded from and
//! prepared for the run's checkpoint store; the checks a run folder passes
//! before training starts or resumes; loading a branch's `best`/`tag`
//! checkpoint for evaluation; writing a run from given weights
//! ([`write_imported_run`], `dbl import`). The epoch loop is
//! `crate::train::runner`.

use std::path::{Path, PathBuf};

use crate::data::precomp::Precomp;
use crate::engine::adam::Adam;
use crate::engine::rng::EngineRng;
use crate::eval::metrics::Metrics;
use crate::model::Trainable;
use crate::store::CheckpointError;
use crate::store::{BranchSave, Store, Tag};
use crate::train::TrainError;
use crate::train::checkpoint::{self, BranchState, RngState};
use crate::train::config::TrainConfig;
use crate::train::metrics_log::MetricsLog;
use crate::train::run_lock::RunLock;
use crate::train::runner::{dropout_rng, evaluate, init_rng};

/// One branch being trained (or held as an anchor).
pub struct BranchRun<M> {
    /// The model.
    pub model: M,
    /// Its optimiser (none for anchors).
    pub opt: Option<Adam>,
    /// Its dropout RNG.
    pub rng: EngineRng,
    /// Progress and best score.
    pub state: BranchState,
    /// Branch index k.
    pub k: usize,
    /// `RUN/branch{k}`.
    pub dir: PathBuf,
    /// `RUN/branch{k}/metrics.jsonl` (rank 0 only).
    pub(crate) log: Option<MetricsLog>,
    /// Whether this phase writes its checkpoints.
    pub(crate) save: bool,
}

pub(crate) fn branch_dir(out: &Path, k: usize) -> PathBuf {
    out.join(format!("branch{k}"))
}

pub(crate) fn fresh_state(stage: u32, rng: &EngineRng) -> BranchState {
    BranchState {
        stage,
        epoch: 0,
        step: 0,
        best_rsum: None,
        best_epoch: None,
        rng: RngState::capture(rng),
    }
}

impl<M: Trainable> BranchRun<M> {
    pub(crate) fn new(
        model: M,
        opt: Option<Adam>,
        rng: EngineRng,
        state: BranchState,
        (k, dir, writer): Slot,
        save: bool,
    ) -> Result<Self, TrainError> {
        let log = if writer {
            Some(
                MetricsLog::open(&dir.join("metrics.jsonl")).map_err(|e| TrainError::Io {
                    path: dir.join("metrics.jsonl"),
                    source: e,
                })?,
            )
        } else {
            None
        };
        Ok(BranchRun {
            model,
            opt,
            rng,
            state,
            k,
            dir,
            log,
            save,
        })
    }

    /// Loads branch k's `tag` checkpoint from `store`: weights (into
    /// `model`), optimiser (if `opt`), state, RNG.
    pub(crate) fn load(
        mut model: M,
        mut opt: Option<Adam>,
        store: &Store,
        (k, dir, writer): Slot,
        tag: Tag,
        save: bool,
    ) -> Result<Self, TrainError> {
        let state = checkpoint::load_branch(store, k, tag, &mut model, opt.as_mut())?;
        let rng = state.rng.restore().map_err(|message| {
            TrainError::Checkpoint(CheckpointError::Format {
                path: store.dir(k, tag).unwrap_or_default().join("state.json"),
                message,
            })
        })?;
        Self::new(model, opt, rng, state, (k, dir, writer), save)
    }

    pub(crate) fn log(&mut self, rec: serde_json::Value) -> Result<(), TrainError> {
        let Some(log) = self.log.as_mut() else {
            return Ok(());
        };
        log.write(&rec).map_err(|e| TrainError::Io {
            path: log.path().to_path_buf(),
            source: e,
        })
    }

    /// This branch's files for a commit (captures the RNG position first).
    pub(crate) fn prepare_save(&mut self, best: bool) -> Result<BranchSave, TrainError> {
        self.state.rng = RngState::capture(&self.rng);
        let files = checkpoint::encode_branch(&self.model, self.opt.as_ref(), &self.state)?;
        Ok(BranchSave {
            k: self.k,
            files,
            best,
        })
    }
}

/// Where branch k lives: (k, `RUN/branch{k}`, whether this process writes
/// its metrics log — rank 0 only).
pub(crate) type Slot = (usize, PathBuf, bool);

/// Names dbl itself writes in a run folder; anything else is the user's.
fn is_run_entry(name: &str) -> bool {
    matches!(
        name,
        "config.json"
            | "checkpoints"
            | "report"
            | crate::train::run_lock::LOCK_FILE
            | crate::train::run_config::VOCAB_FILE
    ) || name
        .strip_prefix("branch")
        .is_some_and(|k| !k.is_empty() && k.bytes().all(|c| c.is_ascii_digit()))
        || name.starts_with(".config.json.tmp-")
        || name.starts_with(".vocab.json.tmp-")
}

/// Refuses to start a run in a folder holding files dbl did not write
/// (so a user's own file is never overwritten).
pub(crate) fn check_foreign_files(out: &Path) -> Result<(), TrainError> {
    let Ok(entries) = std::fs::read_dir(out) else {
        return Ok(());
    };
    // dbl takes the lock before writing anything else: without it, every entry is the user's.
    let is_run = out.join(crate::train::run_lock::LOCK_FILE).is_file();
    for e in entries {
        let e = e.map_err(|e| TrainError::Io {
            path: out.to_path_buf(),
            source: e,
        })?;
        let name = e.file_name().to_string_lossy().into_owned();
        if !is_run || !is_run_entry(&name) {
            return Err(TrainError::ForeignFiles {
                out: out.to_path_buf(),
                name,
            });
        }
    }
    Ok(())
}

/// Checks that every branch resumed for one phase stopped at the same
/// (stage, epoch): a cohort is only ever committed whole, so anything else
/// means a damaged run folder, refused rather than trained on silently.
pub(crate) fn check_cohort<M>(branches: &[BranchRun<M>], store: &Store) -> Result<(), TrainError> {
    let saved: Vec<&BranchRun<M>> = branches.iter().filter(|b| b.save).collect();
    if let Some(first) = saved.first() {
        for b in &saved[1..] {
            if (b.state.stage, b.state.epoch) != (first.state.stage, first.state.epoch) {
                return Err(TrainError::Checkpoint(CheckpointError::Format {
                    path: store.dir(b.k, Tag::Last).unwrap_or_default(),
                    message: format!(
                        "torn cohort: branch {} is at stage {} epoch {} but branch {} at stage {} \
                         epoch {}; the run folder was altered outside dbl",
                        b.k,
                        b.state.stage,
                        b.state.epoch,
                        first.k,
                        first.state.stage,
                        first.state.epoch
                    ),
                }));
            }
        }
    }
    Ok(())
}

/// Metrics on `dev` of branch `b`'s `best` checkpoint (`None` when it
/// cannot be read or scored).
pub(crate) fn best_metrics<M: Trainable>(
    b: &BranchRun<M>,
    store: &Store,
    dev: &Precomp,
) -> Option<Metrics> {
    let mut m = b.model.clone();
    crate::store::load_weights(store, b.k, Tag::Best, &mut m).ok()?;
    evaluate(&m, dev).ok()
}

/// Metrics on `ds` of branch k's `best` checkpoint of the run `cfg`.
pub(crate) fn load_best_metrics<M: Trainable>(
    cfg: &TrainConfig,
    k: usize,
    build: &dyn Fn(&mut EngineRng) -> Result<M, TrainError>,
    ds: &Precomp,
) -> Result<Metrics, TrainError> {
    let m = load_branch(cfg, k, "best", build)?;
    evaluate(&m, ds)
}

/// Builds a model and loads branch k's `tag` (`best` | `last`) weights into
/// it (checksums verified; see [`crate::store`]).
pub fn load_branch<M: Trainable>(
    cfg: &TrainConfig,
    k: usize,
    tag: &str,
    build: &dyn Fn(&mut EngineRng) -> Result<M, TrainError>,
) -> Result<M, TrainError> {
    let mut m = build(&mut init_rng(cfg.seed, 0))?;
    let store = Store::open(&cfg.out)?;
    crate::store::load_weights(&store, k, Tag::parse(tag)?, &mut m)?;
    Ok(m)
}

/// The weights `spec` (`RUN` or `RUN:BRANCH`, [`crate::train::config::run_source`])
/// names: that run's `best` checkpoint, checksums verified, read once; errors
/// name the config key `key` (`init`, `oas.anchor`): → (file, safetensors bytes).
pub(crate) fn given_weights(
    key: &'static str,
    spec: &str,
) -> Result<(PathBuf, Vec<u8>), TrainError> {
    let (run, branch) = crate::train::config::run_source(spec);
    let bad = |e: crate::infer::InferError| {
        TrainError::Config(crate::train::config::ConfigError::Invalid {
            key,
            message: e.to_string(),
        })
    };
    let dir = crate::infer::run::RunDir::open(&run).map_err(bad)?;
    let k = dir.branch(branch).map_err(bad)?;
    dir.weights(k, "best").map_err(bad)
}

/// The frozen OAS anchor `spec` (`cfg.oas.anchor`) names, loaded into the
/// run's network (`build`), which must have its tensors and shapes; errors
/// name `oas.anchor`.
pub(crate) fn given_anchor<M: Trainable>(
    cfg: &TrainConfig,
    spec: &str,
    build: &dyn Fn(&mut EngineRng) -> Result<M, TrainError>,
) -> Result<M, TrainError> {
    let (path, bytes) = given_weights("oas.anchor", spec)?;
    let mut m = build(&mut init_rng(cfg.seed, 0))?;
    crate::model::weights::load_bytes(&mut m, &bytes, &path).map_err(|e| {
        let hint = if cfg.oas.augment {
            " (OAS caption augmentation adds a `<mask>` row to the word embedding that a run \
             trained without it lacks: set oas.augment = false to use it as the anchor)"
        } else {
            ""
        };
        TrainError::Config(crate::train::config::ConfigError::Invalid {
            key: "oas.anchor",
            message: format!(
                "{e}; the run's [model] section must describe the anchor's network{hint}"
            ),
        })
    })?;
    Ok(m)
}

/// Commits `anchor` ([`given_anchor`]) as branch 0's `best` and `last`
/// (stage 1, epoch 0, no optimiser state), in place of a trained stage 1
/// (docs/method.md §4.1).
pub(crate) fn commit_given_anchor<M: Trainable>(
    cfg: &TrainConfig,
    anchor: &M,
    store: &mut Store,
) -> Result<(), TrainError> {
    let dir = branch_dir(&cfg.out, 0);
    std::fs::create_dir_all(&dir).map_err(|source| TrainError::Io {
        path: dir.clone(),
        source,
    })?;
    let state = fresh_state(1, &dropout_rng(cfg.seed, 0));
    let save = BranchSave {
        k: 0,
        files: checkpoint::encode_branch(anchor, None, &state)?,
        best: true,
    };
    store.commit(&[save], &[])?;
    Ok(())
}

/// Writes `cfg` as the run's `config.json` with the run's copy of its
/// vocabulary ([`crate::train::run_config::write`]: paths recorded relative
/// to the run folder, so the run can be moved).
pub(crate) fn write_config(cfg: &TrainConfig) -> Result<(), TrainError> {
    crate::train::run_config::write(cfg)
}

/// Writes a complete run folder `cfg.out` from given weights (`dbl import`):
/// `config.json` (`cfg`) and one checksummed generation in which branch k
/// holds `branches[k]`'s weights as both `best` and `last`, at epoch
/// `epochs[k]`, without optimiser state (a run that continues from it starts
/// a fresh optimiser). `cfg.out` must not exist or be empty.
pub fn write_imported_run<M: Trainable>(
    cfg: &TrainConfig,
    branches: &[(M, usize)],
) -> Result<(), TrainError> {
    if cfg.n_branches() != branches.len() {
        return Err(TrainError::Config(
            crate::train::config::ConfigError::Invalid {
                key: "branches",
                message: format!(
                    "{} weights given for a run of {} branches",
                    branches.len(),
                    cfg.n_branches()
                ),
            },
        ));
    }
    let non_empty = std::fs::read_dir(&cfg.out).is_ok_and(|mut d| d.next().is_some());
    if non_empty {
        return Err(TrainError::Io {
            path: cfg.out.clone(),
            source: std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "the folder is not empty; a run is written into a new or empty folder",
            ),
        });
    }
    std::fs::create_dir_all(&cfg.out).map_err(|source| TrainError::Io {
        path: cfg.out.clone(),
        source,
    })?;
    let _lock = RunLock::acquire(&cfg.out)?;
    write_config(cfg)?;
    let mut saves = Vec::with_capacity(branches.len());
    for (k, (model, epoch)) in branches.iter().enumerate() {
        let dir = branch_dir(&cfg.out, k);
        std::fs::create_dir_all(&dir).map_err(|source| TrainError::Io {
            path: dir.clone(),
            source,
        })?;
        let state = BranchState {
            epoch: *epoch,
            ..fresh_state(1, &dropout_rng(cfg.seed, k))
        };
        saves.push(BranchSave {
            k,
            files: checkpoint::encode_branch(model, None, &state)?,
            best: true,
        });
    }
    Store::open(&cfg.out)?.commit(&saves, &[])?;
    Ok(())
}
