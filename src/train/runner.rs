//! The training loop shared by every regime (docs/method.md §4), generic over any
//! [`Trainable`] backbone. A run is one or two *phases* (OAS has two stages);
//! a phase trains a list of branches for some epochs with one step kind:
//!
//! - [`StepKind::Cohort`] (baseline = K 1, OSS = K ≥ 1): every branch forwards the
//!   same batch in train mode; branch k minimises
//!   L_raw(S_k) + α·(1/k)·Σ_{n<k} L_peer(S_k, sg(S_n)) (`LossConfig::branch_loss`),
//!   with its own backward, grad-norm clip and Adam step.
//! - [`StepKind::Anchored`] (OAS stage 2, MSS): branch 0 is the anchor (eval
//!   mode, no gradient), branch 1 the target (train mode),
//!   L = L_raw(S^t) + α·L_peer(S^t, sg(S^a)); for MSS the anchor then takes an
//!   EMA step toward the target with the cosine momentum at global step t.
//!
//! Each epoch: lr = lr0·decay^⌊epoch/lr_update⌋, a (seed, epoch)-shuffled plan,
//! optional step cap, dev evaluation (`score_split` + whole-matrix metrics),
//! then `last` (and, on a new best dev rSum, `best`) checkpoints per branch.
//! Everything random comes from `seed`: branch k is initialised from ChaCha8
//! stream 1 + k and draws dropout from stream 101 + k, so a run is
//! bitwise-reproducible for a fixed thread count, and a resumed run continues
//! the same trajectory (the dropout RNG position is checkpointed).
//!
//! Data-parallel (docs/method.md §14): every step goes through
//! [`crate::train::sharded`] over the run's [`Comm`]; every rank keeps every
//! branch and takes the same steps; dev evaluation shards the images across
//! the ranks (every rank gets the same metrics); only rank 0 writes
//! (checkpoints, metrics, config, progress). One process is the N = 1 case of
//! the same code.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rand::SeedableRng;
use serde_json::json;

use crate::data::augment::{CaptionAugment, augment_rng};
use crate::data::batch::{BatchPlan, Loader};
use crate::data::precomp::{Precomp, Split};
use crate::data::vocab::Vocab;
use crate::dist::Comm;
use crate::engine::adam::{Adam, AdamConfig};
use crate::engine::clip::{clip_grad_norm, grad_norm};
use crate::engine::ema::{CosineMomentum, ema_update};
use crate::engine::gemm::Par;
use crate::engine::param::Module;
use crate::engine::rng::EngineRng;
use crate::eval::matrix::SimMatrix;
use crate::eval::metrics::Metrics;
use crate::eval::protocol::whole_metrics;
use crate::loss::ScoreMatrix;
use crate::model::Trainable;
use crate::model::precision::HeadPrecision;
use crate::store::CheckpointError;
use crate::store::{BranchSave, Store, Tag};
use crate::train::TrainError;
use crate::train::checkpoint::{self, BranchState, RngState};
use crate::train::config::{Regime, TrainConfig};
use crate::train::metrics_log::MetricsLog;
use crate::train::run_lock::RunLock;
use crate::train::schedule::{loss_for_epoch, lr_at};
use crate::train::sharded::{self, StepCache};
use crate::watch::{Event, Watch};

/// How the branches of a phase are stepped.
#[derive(Debug, Clone, Copy)]
pub enum StepKind {
    /// Every branch trains; peers are the earlier branches (or the others, for mutual learning).
    Cohort,
    /// Branch 0 is a frozen eval-mode anchor, branch 1 the target; `ema` = MSS initial momentum.
    Anchored { ema: Option<f64> },
}

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
    log: Option<MetricsLog>,
    /// Whether this phase writes its checkpoints.
    save: bool,
}

/// What a finished (or stopped) run reports.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// Best dev metrics of each branch (`None` if never evaluated).
    pub best_dev: Vec<Option<Metrics>>,
    /// True when `stop_after` ended the run before its last epoch.
    pub stopped: bool,
}

/// The dropout RNG of branch k (ChaCha8 stream 101 + k of `seed`).
pub fn dropout_rng(seed: u64, k: usize) -> EngineRng {
    let mut r = EngineRng::seed_from_u64(seed);
    r.set_stream(101 + k as u64);
    r
}

/// The initialisation RNG of branch k (stream 1 + k of `seed`).
pub fn init_rng(seed: u64, k: usize) -> EngineRng {
    let mut r = EngineRng::seed_from_u64(seed);
    r.set_stream(1 + k as u64);
    r
}

fn branch_dir(out: &Path, k: usize) -> PathBuf {
    out.join(format!("branch{k}"))
}

fn fresh_state(stage: u32, rng: &EngineRng) -> BranchState {
    BranchState {
        stage,
        epoch: 0,
        step: 0,
        best_rsum: None,
        best_epoch: None,
        rng: RngState::capture(rng),
    }
}

fn adam(cfg: &TrainConfig, m: &impl Module) -> Result<Adam, TrainError> {
    Ok(Adam::new(
        AdamConfig {
            lr: cfg.lr,
            ..AdamConfig::default()
        },
        &m.params(),
    )?)
}

impl<M: Trainable> BranchRun<M> {
    fn new(
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
    fn load(
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

    fn log(&mut self, rec: serde_json::Value) -> Result<(), TrainError> {
        let Some(log) = self.log.as_mut() else {
            return Ok(());
        };
        log.write(&rec).map_err(|e| TrainError::Io {
            path: log.path().to_path_buf(),
            source: e,
        })
    }

    /// This branch's files for a commit (captures the RNG position first).
    fn prepare_save(&mut self, best: bool) -> Result<BranchSave, TrainError> {
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
type Slot = (usize, PathBuf, bool);

/// One phase of a run.
struct Phase {
    stage: u32,
    epochs: usize,
    lr_update: usize,
    kind: StepKind,
    /// Branch whose dev rSum decides `best` for every saved branch (MSS: the
    /// student); `None` = each branch by its own rSum.
    select_by: Option<usize>,
}

/// Shared read-only context of a run.
struct Ctx<'a> {
    cfg: &'a TrainConfig,
    train: &'a Precomp,
    dev: &'a Precomp,
    par: Par,
    /// OAS caption augmentation of the training batches (docs/method.md §6.4).
    augment: Option<CaptionAugment>,
    /// The job's ranks (one process: [`crate::dist::Solo`]).
    comm: &'a dyn Comm,
    /// Progress reports and stop requests (checked before every step).
    watch: &'a dyn Watch,
}

impl Ctx<'_> {
    /// Rank 0 writes, draws progress and prints.
    fn lead(&self) -> bool {
        self.comm.rank() == 0
    }

    /// Dev metrics of every branch, the images sharded across the ranks:
    /// every rank gets the same matrix, hence the same metrics and the same
    /// best/patience decisions.
    fn dev_metrics<M: Trainable>(
        &self,
        branches: &[BranchRun<M>],
    ) -> Result<Vec<Metrics>, TrainError> {
        branches
            .iter()
            .map(|b| evaluate_ranks(&b.model, self.dev, self.comm))
            .collect()
    }
}

/// Dev metrics of one model (whole-matrix, f30k style).
pub fn evaluate<M: Trainable>(model: &M, ds: &Precomp) -> Result<Metrics, TrainError> {
    evaluate_ranks(model, ds, &crate::dist::Solo)
}

/// [`evaluate`] with the images sharded across the ranks of `comm` (same bits).
pub fn evaluate_ranks<M: Trainable>(
    model: &M,
    ds: &Precomp,
    comm: &dyn Comm,
) -> Result<Metrics, TrainError> {
    let sims = model.score_split_ranks(ds, comm);
    let m = SimMatrix::new(&sims, ds.n_images(), ds.len())?;
    Ok(whole_metrics(&m))
}

fn progress(len: u64, epoch: usize, epochs: usize, stage: u32, lead: bool) -> ProgressBar {
    let pb = ProgressBar::new(len);
    if !lead || !std::io::stderr().is_terminal() {
        pb.set_draw_target(ProgressDrawTarget::hidden());
    }
    pb.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {per_sec} eta {eta} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb.set_prefix(format!("stage {stage} epoch {}/{epochs}", epoch + 1));
    pb
}

/// Runs `phase` on `branches` from their stored epoch; returns false when
/// `budget` (epochs left in this invocation) ran out first.
fn run_phase<M: Trainable>(
    ctx: &Ctx<'_>,
    phase: &Phase,
    branches: &mut [BranchRun<M>],
    store: &mut Store,
    budget: &mut Option<usize>,
) -> Result<bool, TrainError> {
    let cfg = ctx.cfg;
    let trained: Vec<usize> = (0..branches.len())
        .filter(|&k| branches[k].opt.is_some())
        .collect();
    let lead = trained[0];
    let start = branches[lead].state.epoch;
    let plan_len = BatchPlan::eval(ctx.train.len(), cfg.batch_size).len();
    let iters = cfg
        .max_steps_per_epoch
        .map_or(plan_len, |m| m.min(plan_len));
    let ema = match phase.kind {
        StepKind::Anchored { ema: Some(m0) } => {
            Some(CosineMomentum::new(m0, (phase.epochs * iters) as u64)?)
        }
        _ => None,
    };
    for epoch in start..phase.epochs {
        if let Some(p) = cfg.patience
            && stalled(branches, p)
        {
            ctx.lead().then(|| {
                eprintln!(
                    "stage {}: no dev rSum improvement for {p} epochs, stopping at epoch {epoch}",
                    phase.stage
                )
            });
            break;
        }
        if let Some(b) = budget {
            if *b == 0 {
                return Ok(false);
            }
            *b -= 1;
        }
        let lr = lr_at(cfg.lr, cfg.lr_decay, phase.lr_update, epoch);
        for &k in &trained {
            if let Some(o) = branches[k].opt.as_mut() {
                o.set_lr(lr)?;
            }
        }
        let loss = loss_for_epoch(&cfg.loss, cfg.warmup_sum_epochs, epoch);
        let shuffle_epoch = epoch as u64 + 1_000_000 * u64::from(phase.stage - 1);
        let plan = BatchPlan::train(ctx.train.len(), cfg.batch_size, cfg.seed, shuffle_epoch);
        let mut loader = Loader::new(ctx.train, plan);
        let own_bar = ctx.lead() && !ctx.watch.shows_progress();
        let pb = progress(iters as u64, epoch, phase.epochs, phase.stage, own_bar);
        let t0 = Instant::now();
        let mut aug_rng = augment_rng(cfg.seed, phase.stage, epoch);
        let mut augmented = crate::data::batch::Batch::default();
        for i in 0..iters {
            if ctx.watch.stop_requested() {
                return Err(TrainError::Interrupted(cfg.out.clone()));
            }
            let Some(batch) = loader.next_batch() else {
                break;
            };
            let batch = match ctx.augment {
                Some(a) => {
                    augmented.clone_from(batch);
                    a.batch(&mut augmented, &mut aug_rng);
                    &augmented
                }
                None => batch,
            };
            let n = batch.size();
            let step = branches[lead].state.step;
            let (t_step, sent) = (Instant::now(), ctx.comm.bytes_sent());
            let records = match phase.kind {
                StepKind::Cohort => {
                    cohort_step(branches, batch, &loss, (cfg.grad_clip, ctx.par), ctx.comm)?
                }
                StepKind::Anchored { .. } => {
                    let m = ema.as_ref().map(|sched| sched.at(step));
                    let opt = (cfg.grad_clip, ctx.par);
                    anchored_step(branches, batch, &loss, opt, m, ctx.comm)?
                }
            };
            let (step_secs, step_bytes) =
                (t_step.elapsed().as_secs_f64(), ctx.comm.bytes_sent() - sent);
            for &k in &trained {
                branches[k].state.step += 1;
            }
            let step = step + 1;
            let loss = records
                .last()
                .map_or(f64::NAN, |(_, r)| r["loss"].as_f64().unwrap_or(f64::NAN));
            pb.set_message(format!("loss {loss:.3}"));
            ctx.watch.report(&Event::Step {
                stage: phase.stage,
                epoch,
                epochs: phase.epochs,
                step: i + 1,
                steps: iters,
                loss,
            });
            if step.is_multiple_of(cfg.log_every as u64) || step == 1 {
                for (k, mut r) in records {
                    r["kind"] = json!("step");
                    r["stage"] = json!(phase.stage);
                    r["epoch"] = json!(epoch);
                    r["step"] = json!(step);
                    r["lr"] = json!(lr);
                    r["batch"] = json!(n);
                    r["ranks"] = json!(ctx.comm.size());
                    r["step_seconds"] = json!(step_secs);
                    r["bytes_sent"] = json!(step_bytes);
                    branches[k].log(r)?;
                }
            }
            pb.inc(1);
        }
        pb.finish_and_clear();
        let secs = t0.elapsed().as_secs_f64();
        for b in branches.iter_mut() {
            b.state.epoch = epoch + 1;
        }
        let evaluate_now = (epoch + 1).is_multiple_of(cfg.eval_every) || epoch + 1 == phase.epochs;
        let mut improved = vec![false; branches.len()];
        if evaluate_now {
            let dev = ctx.dev_metrics(branches)?;
            ctx.watch.report(&Event::Eval {
                stage: phase.stage,
                epoch,
                rsum: dev.iter().map(|m| m.rsum).collect(),
            });
            for (k, b) in branches.iter_mut().enumerate() {
                let sel = phase.select_by.unwrap_or(k);
                let r = dev[sel].rsum;
                if b.save && b.state.best_rsum.is_none_or(|best| r > best) {
                    b.state.best_rsum = Some(r);
                    b.state.best_epoch = Some(epoch + 1);
                    improved[k] = true;
                }
                let step = b.state.step;
                b.log(
                    json!({"kind": "eval", "stage": phase.stage, "epoch": epoch, "step": step,
                    "lr": lr, "seconds": secs, "dev": dev[k]}),
                )?;
            }
            ctx.lead().then(|| {
                eprintln!(
                    "stage {} epoch {}/{}: dev rSum {} ({secs:.1}s)",
                    phase.stage,
                    epoch + 1,
                    phase.epochs,
                    dev.iter()
                        .enumerate()
                        .map(|(k, m)| format!("b{k} {:.2}", m.rsum))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            });
        }
        // One atomic commit for the whole cohort (docs in src/store/mod.rs), by rank 0.
        if ctx.lead() {
            let mut saves = Vec::new();
            let mut logs = Vec::new();
            for (i, b) in branches.iter_mut().enumerate() {
                if b.save {
                    saves.push(b.prepare_save(improved[i])?);
                }
                if let Some(log) = &b.log {
                    let len = log.len().map_err(|e| TrainError::Io {
                        path: log.path().to_path_buf(),
                        source: e,
                    })?;
                    logs.push((b.k, len));
                }
            }
            store.commit(&saves, &logs)?;
        }
    }
    Ok(true)
}

/// True when every checkpointed branch's best dev rSum is at least
/// `patience` epochs old (from the checkpointed state, so a resumed run
/// decides the same way).
fn stalled<M>(branches: &[BranchRun<M>], patience: usize) -> bool {
    let mut saved = branches.iter().filter(|b| b.save).peekable();
    saved.peek().is_some()
        && saved.all(|b| {
            b.state
                .epoch
                .saturating_sub(b.state.best_epoch.unwrap_or(0))
                >= patience
        })
}

/// Score matrices [n, n] per branch and each branch's cache for the backward.
pub type BranchForward<M> = (
    Vec<ScoreMatrix>,
    Vec<Option<StepCache<<M as Trainable>::Cache>>>,
);

/// Every branch forwards `batch` in train mode (each with its own dropout
/// stream), split across the ranks of `comm` ([`sharded::forward`]):
/// → (score matrices [n, n] per branch, caches for the backward).
pub fn forward_branches<'a, M: Trainable + 'a>(
    branches: impl Iterator<Item = (&'a M, &'a mut EngineRng)>,
    batch: &crate::data::batch::Batch,
    comm: &dyn Comm,
) -> Result<BranchForward<M>, crate::loss::LossError> {
    let n = batch.size();
    let mut mats = Vec::new();
    let mut caches = Vec::new();
    for (k, (model, rng)) in branches.enumerate() {
        let (s, c) = sharded::forward(model, batch, true, rng, comm);
        mats.push(ScoreMatrix::from_f32(&format!("branch {k} scores"), &s, n)?);
        caches.push(Some(c));
    }
    Ok((mats, caches))
}

/// One OSS/baseline step: every branch forwards `batch` in train mode, then
/// branch k (in order) back-propagates `LossConfig::branch_loss` (peers detached:
/// their scores enter as constants), clips (`clip`, 0 = off) and steps (Adam
/// threads `par`). Returns (branch, record) pairs.
pub fn cohort_step<M: Trainable>(
    branches: &mut [BranchRun<M>],
    batch: &crate::data::batch::Batch,
    loss: &crate::loss::LossConfig,
    (clip, par): (f64, Par),
    comm: &dyn Comm,
) -> Result<Vec<(usize, serde_json::Value)>, TrainError> {
    let (mats, mut caches) = forward_branches(
        branches.iter_mut().map(|b| (&b.model, &mut b.rng)),
        batch,
        comm,
    )?;
    let mut records = Vec::with_capacity(branches.len());
    for (k, b) in branches.iter_mut().enumerate() {
        let out = loss.branch_loss(&mats, k)?;
        let base = loss.base_loss(&mats[k])?.value;
        let cache = caches[k].take().expect("each cache is used once");
        b.model.zero_grad();
        sharded::backward(&mut b.model, cache, &out.grad_f32(), comm);
        let gn = clip_and_step(b, clip, par)?;
        records.push((
            k,
            json!({"loss": out.value, "base": base, "peer": out.value - base, "grad_norm": gn}),
        ));
    }
    Ok(records)
}

/// One OAS-stage-2 / MSS step: anchor = branches[0] in eval mode (no
/// gradient), target = branches[1] in train mode; L = base(S^t) + α·peer(S^t, sg(S^a));
/// clip, Adam step; then, if `ema_momentum` is given, one EMA update of the
/// anchor toward the updated target. Returns the target's record.
pub fn anchored_step<M: Trainable>(
    branches: &mut [BranchRun<M>],
    batch: &crate::data::batch::Batch,
    loss: &crate::loss::LossConfig,
    (clip, par): (f64, Par),
    ema_momentum: Option<f64>,
    comm: &dyn Comm,
) -> Result<Vec<(usize, serde_json::Value)>, TrainError> {
    let n = batch.size();
    let (a, t) = branches.split_at_mut(1);
    let (anchor, target) = (&mut a[0], &mut t[0]);
    let (sa, _) = sharded::forward(&anchor.model, batch, false, &mut anchor.rng, comm);
    let (st, cache) = sharded::forward(&target.model, batch, true, &mut target.rng, comm);
    let ma = ScoreMatrix::from_f32("anchor scores", &sa, n)?;
    let mt = ScoreMatrix::from_f32("target scores", &st, n)?;
    let out = loss.target_loss(&mt, &ma)?;
    let base = loss.base_loss(&mt)?.value;
    target.model.zero_grad();
    sharded::backward(&mut target.model, cache, &out.grad_f32(), comm);
    let gn = clip_and_step(target, clip, par)?;
    let mut rec = json!({"loss": out.value, "base": base, "peer": out.value - base, "grad_norm": gn,
        "anchor_base": loss.base_loss(&ma)?.value});
    if let Some(m) = ema_momentum {
        let tp = target.model.params();
        ema_update(&mut anchor.model.params_mut(), &tp, m);
        rec["ema_momentum"] = json!(m);
        anchor.state.step += 1;
    }
    Ok(vec![(1, rec)])
}

fn clip_and_step<M: Trainable>(
    b: &mut BranchRun<M>,
    clip: f64,
    par: Par,
) -> Result<f32, TrainError> {
    let gn = if clip > 0.0 {
        clip_grad_norm(&mut b.model.params_mut(), clip as f32)
    } else {
        grad_norm(&b.model.params())
    };
    if let Some(o) = b.opt.as_mut() {
        o.step(&mut b.model.params_mut(), par)?;
    }
    Ok(gn)
}

/// Names dbl itself writes in a run folder; anything else is the user's.
fn is_run_entry(name: &str) -> bool {
    matches!(
        name,
        "config.json" | "checkpoints" | "report" | crate::train::run_lock::LOCK_FILE
    ) || name
        .strip_prefix("branch")
        .is_some_and(|k| !k.is_empty() && k.bytes().all(|c| c.is_ascii_digit()))
        || (name.starts_with(".config.json.tmp-"))
}

/// Refuses to start a run in a folder holding files dbl did not write
/// (so a user's own file is never overwritten).
fn check_foreign_files(out: &Path) -> Result<(), TrainError> {
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
fn check_cohort<M>(branches: &[BranchRun<M>], store: &Store) -> Result<(), TrainError> {
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

/// Trains a run described by a validated `cfg`. `build(rng)` constructs a freshly
/// initialised model drawing from `rng` (the backbone choice lives in
/// `backbone_select`). With `resume`, continues from `cfg.out`'s `last`
/// checkpoints bit for bit; without, `cfg.out` must hold no checkpoints.
///
/// The run folder is locked ([`RunLock`]) for the whole call. Every state a
/// crash can leave has a way forward: before the first checkpoint, both a
/// fresh start and `--resume` start from epoch 1 (the metrics logs are
/// reset); after it, `--resume` continues from the last committed cohort
/// (metrics logs trimmed back to it) and a fresh start is refused.
///
/// Under several ranks (`comm`), rank 0 alone locks and writes the run
/// folder; the others read the checkpoints rank 0 committed (on resume, and
/// between the OAS stages), so the run folder must be on a file system
/// every rank sees. The result does not depend on the number of ranks
/// beyond f32 rounding (docs/method.md §14); only rank 0's summary is filled.
///
/// `watch` receives every step and dev evaluation and is asked before every
/// step whether to stop: then [`TrainError::Interrupted`] is returned with
/// nothing written since the last committed epoch, the state a killed
/// process leaves (`resume` continues from there). Under several ranks a
/// stop must be requested on every rank.
pub fn train<M: Trainable>(
    cfg: &TrainConfig,
    build: &dyn Fn(&mut EngineRng) -> Result<M, TrainError>,
    resume: bool,
    comm: &dyn Comm,
    watch: &dyn Watch,
) -> Result<RunSummary, TrainError> {
    let lead = comm.rank() == 0;
    let vocab = Vocab::load(cfg.vocab_path())?;
    let train = Precomp::open(&cfg.data, Split::Train, &vocab)?;
    let dev = Precomp::open(&cfg.data, Split::Dev, &vocab)?;
    // Everything the run depends on, before any work (docs: README "Bad input").
    dev.check_features_like(train.images())?;
    for w in [&train, &dev].iter().filter_map(|d| d.truncation_warning()) {
        eprintln!("{w}");
    }
    train.check_finite()?;
    dev.check_finite()?;
    let probe = build(&mut init_rng(cfg.seed, 0))?;
    let params: usize = probe.params().iter().map(|p| p.value.len()).sum();
    drop(probe);
    let need = crate::train::resources::train_bytes(
        params,
        cfg.n_branches(),
        cfg.batch_size.min(train.len()),
        train.n_regions(),
        train.dim(),
    );
    crate::train::resources::check_fits(
        need,
        crate::train::resources::mem_available(),
        &format!("{} branch(es) of {params} parameters", cfg.n_branches()),
    )
    .map_err(TrainError::Resources)?;
    let mut _lock = None;
    if lead {
        if !resume {
            check_foreign_files(&cfg.out)?;
        }
        _lock = Some(RunLock::acquire(&cfg.out)?);
        let store = Store::open(&cfg.out)?;
        if !resume && store.has_checkpoint() {
            return Err(TrainError::RunExists(cfg.out.clone()));
        }
        store.trim_metrics(&cfg.out)?;
        let json = serde_json::to_string_pretty(cfg).map_err(|e| TrainError::Io {
            path: cfg.out.join("config.json"),
            source: std::io::Error::other(e),
        })?;
        crate::store::write_atomic(&cfg.out.join("config.json"), json.as_bytes())?;
    }
    // The other ranks read the store once rank 0 has checked and trimmed it.
    comm.barrier();
    let mut store = Store::open(&cfg.out)?;
    let resume = resume && store.has_checkpoint();
    let ctx = Ctx {
        cfg,
        train: &train,
        dev: &dev,
        par: Par::threads(cfg.threads.max(1)),
        augment: cfg.caption_augment(vocab.len()),
        comm,
        watch,
    };
    let mut budget = cfg.stop_after;
    let out = &cfg.out;
    let at = |k: usize| (k, branch_dir(out, k), lead);
    let stage1 = Phase {
        stage: 1,
        epochs: cfg.epochs,
        lr_update: cfg.lr_update,
        kind: StepKind::Cohort,
        select_by: None,
    };
    let mut best_dev = Vec::new();
    let finished = match cfg.regime {
        Regime::Baseline | Regime::Oss => {
            let k_n = cfg.n_branches();
            let mut branches = Vec::with_capacity(k_n);
            for k in 0..k_n {
                let m = build(&mut init_rng(cfg.seed, k))?;
                let opt = adam(cfg, &m)?;
                let b = if resume {
                    BranchRun::load(m, Some(opt), &store, at(k), Tag::Last, true)?
                } else {
                    let rng = dropout_rng(cfg.seed, k);
                    let st = fresh_state(1, &rng);
                    BranchRun::new(m, Some(opt), rng, st, at(k), true)?
                };
                branches.push(b);
            }
            check_cohort(&branches, &store)?;
            let done = run_phase(&ctx, &stage1, &mut branches, &mut store, &mut budget)?;
            if lead {
                best_dev.extend(branches.iter().map(|b| best_metrics(b, &store, &dev)));
            }
            done
        }
        Regime::Mss => {
            let student = build(&mut init_rng(cfg.seed, 0))?;
            let teacher = student.clone();
            let opt = adam(cfg, &student)?;
            let mut branches = if resume {
                vec![
                    BranchRun::load(teacher, None, &store, at(0), Tag::Last, true)?,
                    BranchRun::load(student, Some(opt), &store, at(1), Tag::Last, true)?,
                ]
            } else {
                let (r0, r1) = (dropout_rng(cfg.seed, 0), dropout_rng(cfg.seed, 1));
                let (s0, s1) = (fresh_state(1, &r0), fresh_state(1, &r1));
                vec![
                    BranchRun::new(teacher, None, r0, s0, at(0), true)?,
                    BranchRun::new(student, Some(opt), r1, s1, at(1), true)?,
                ]
            };
            check_cohort(&branches, &store)?;
            let phase = Phase {
                kind: StepKind::Anchored {
                    ema: Some(cfg.mss.m0),
                },
                select_by: Some(1),
                ..stage1
            };
            let done = run_phase(&ctx, &phase, &mut branches, &mut store, &mut budget)?;
            if lead {
                best_dev.extend(branches.iter().map(|b| best_metrics(b, &store, &dev)));
            }
            done
        }
        Regime::Oas => {
            let in_stage2 = resume && store.has(1, Tag::Last);
            let mut done = true;
            if !in_stage2 {
                let m = build(&mut init_rng(cfg.seed, 0))?;
                let opt = adam(cfg, &m)?;
                let mut b = if resume {
                    BranchRun::load(m, Some(opt), &store, at(0), Tag::Last, true)?
                } else {
                    let rng = dropout_rng(cfg.seed, 0);
                    let st = fresh_state(1, &rng);
                    BranchRun::new(m, Some(opt), rng, st, at(0), true)?
                };
                done = run_phase(
                    &ctx,
                    &stage1,
                    std::slice::from_mut(&mut b),
                    &mut store,
                    &mut budget,
                )?;
            }
            if done {
                // Stage 2 starts from stage 1's best, which rank 0 has just committed.
                comm.barrier();
                store = Store::open(&cfg.out)?;
                let seed_model = build(&mut init_rng(cfg.seed, 0))?;
                let anchor = BranchRun::load(seed_model, None, &store, at(0), Tag::Best, false)?;
                let target_model = anchor.model.clone();
                let opt = adam(cfg, &target_model)?;
                let target = if in_stage2 {
                    BranchRun::load(target_model, Some(opt), &store, at(1), Tag::Last, true)?
                } else {
                    let rng = dropout_rng(cfg.seed, 1);
                    let st = fresh_state(2, &rng);
                    BranchRun::new(target_model, Some(opt), rng, st, at(1), true)?
                };
                let mut branches = vec![anchor, target];
                let phase = Phase {
                    stage: 2,
                    epochs: cfg.oas.epochs,
                    lr_update: cfg.oas.lr_update,
                    kind: StepKind::Anchored { ema: None },
                    select_by: None,
                };
                done = run_phase(&ctx, &phase, &mut branches, &mut store, &mut budget)?;
            }
            for k in (0..2).filter(|_| lead) {
                best_dev.push(load_best_metrics(cfg, k, build, &dev).ok());
            }
            done
        }
    };
    Ok(RunSummary {
        best_dev,
        stopped: !finished,
    })
}

fn best_metrics<M: Trainable>(b: &BranchRun<M>, store: &Store, dev: &Precomp) -> Option<Metrics> {
    let mut m = b.model.clone();
    crate::store::load_weights(store, b.k, Tag::Best, &mut m).ok()?;
    evaluate(&m, dev).ok()
}

fn load_best_metrics<M: Trainable>(
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

/// Opens `split` of a run's dataset for scoring, checked before any work:
/// its features have the training split's shape (the model was built for it)
/// and every value is finite.
fn open_checked(cfg: &TrainConfig, split: Split, vocab: &Vocab) -> Result<Precomp, TrainError> {
    let ds = Precomp::open(&cfg.data, split, vocab)?;
    let train_ims = cfg.data.join(Split::Train.ims_file());
    let reference = crate::data::npy::NpyF32::open_ndim(&train_ims, 3)
        .map_err(crate::data::precomp::PrecompError::from)?;
    ds.check_features_like(&reference)?;
    ds.check_finite()?;
    Ok(ds)
}

/// Test metrics of every branch's `best` checkpoint of a finished run, on `split`.
pub fn test_branches<M: Trainable>(
    cfg: &TrainConfig,
    split: Split,
    build: &dyn Fn(&mut EngineRng) -> Result<M, TrainError>,
) -> Result<Vec<Metrics>, TrainError> {
    let vocab = Vocab::load(cfg.vocab_path())?;
    let ds = open_checked(cfg, split, &vocab)?;
    (0..cfg.n_branches())
        .map(|k| load_best_metrics(cfg, k, build, &ds))
        .collect()
}

/// Scores `split` with branch `k`'s `tag` checkpoint of a finished run, the
/// similarity head in `precision`: → (sims [n_images, n_captions], n_images).
pub fn score_branch<M: Trainable>(
    cfg: &TrainConfig,
    k: usize,
    tag: &str,
    split: Split,
    precision: HeadPrecision,
    build: &dyn Fn(&mut EngineRng) -> Result<M, TrainError>,
) -> Result<(Vec<f32>, usize), TrainError> {
    let vocab = Vocab::load(cfg.vocab_path())?;
    let ds = open_checked(cfg, split, &vocab)?;
    let m = load_branch(cfg, k, tag, build)?;
    let sims = m.score_split_with(&ds, precision)?;
    Ok((sims, ds.n_images()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::batch::Batch;
    use crate::dist::Solo;
    use crate::engine::rng::seeded;
    use crate::engine::testutil::rand_vec;
    use crate::loss::{BoostConfig, BoostForm, LossConfig, PeerLoss};
    use crate::train::test_model::TinyModel;

    fn toy_batch() -> Batch {
        let (b, r, d, l) = (5, 3, 6, 4);
        Batch {
            images: rand_vec(b * r * d, 3, 1.0),
            n_regions: r,
            dim: d,
            tokens: vec![1, 4, 5, 2, 1, 7, 3, 2, 1, 8, 2, 0, 1, 9, 2, 0, 1, 6, 2, 0],
            max_len: l,
            lengths: vec![4, 4, 3, 3, 3],
            caption_ids: (0..b).collect(),
            image_ids: (0..b).collect(),
            img_ids: (0..b).collect(),
        }
    }

    fn model(seed: u64) -> TinyModel {
        TinyModel::new(6, 10, 5, 4, 0.3, &mut seeded(seed)).unwrap()
    }

    fn branch(m: TinyModel, opt: bool, k: usize, dir: &Path) -> BranchRun<TinyModel> {
        let o = opt.then(|| Adam::new(AdamConfig::default(), &m.params()).unwrap());
        let rng = dropout_rng(7, k);
        let st = fresh_state(1, &rng);
        BranchRun::new(m, o, rng, st, (k, dir.join(format!("b{k}")), true), true).unwrap()
    }

    fn rm_loss(alpha: f64) -> LossConfig {
        LossConfig {
            alpha,
            peer: PeerLoss::Boost(BoostConfig {
                form: BoostForm::Relative,
                ..BoostConfig::default()
            }),
            ..LossConfig::default()
        }
    }

    fn grads(m: &TinyModel) -> Vec<Vec<f32>> {
        m.params().iter().map(|p| p.grad.clone()).collect()
    }

    /// OSS cascade on a toy: branch 0 gets exactly dL_raw(S_0), branch 1 gets
    /// d[L_raw(S_1) + α·L_RM(S_1, sg(S_0))]; the anchor's gradient does not
    /// depend on α (it receives nothing from the target's boosting term).
    #[test]
    fn cohort_step_composes_the_cascade() {
        let tmp = tempfile::tempdir().unwrap();
        let batch = toy_batch();
        let loss = rm_loss(1.0);
        let mut br = vec![
            branch(model(1), false, 0, tmp.path()),
            branch(model(2), false, 1, tmp.path()),
        ];
        let recs = cohort_step(&mut br, &batch, &loss, (0.0, Par::Seq), &Solo).unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].1["peer"].as_f64().unwrap(), 0.0);

        // Manual: the same forwards (same dropout streams), then the two losses.
        let (m0, m1) = (model(1), model(2));
        let (mut r0, mut r1) = (dropout_rng(7, 0), dropout_rng(7, 1));
        let (s0, c0) = m0.forward(&batch, true, &mut r0);
        let (s1, c1) = m1.forward(&batch, true, &mut r1);
        let a = ScoreMatrix::from_f32("s0", &s0, 5).unwrap();
        let t = ScoreMatrix::from_f32("s1", &s1, 5).unwrap();
        let mut e0 = m0.clone();
        e0.backward(c0, &loss.base_loss(&a).unwrap().grad_f32());
        let mut e1 = m1.clone();
        e1.backward(c1, &loss.target_loss(&t, &a).unwrap().grad_f32());
        assert_eq!(grads(&br[0].model), grads(&e0));
        assert_eq!(grads(&br[1].model), grads(&e1));
        // The boosting term is not vacuous here: it changes the target's gradient.
        let mut b1 = m1.clone();
        let (_, c1b) = m1.forward(&batch, true, &mut dropout_rng(7, 1));
        b1.backward(c1b, &loss.base_loss(&t).unwrap().grad_f32());
        assert_ne!(grads(&b1), grads(&e1));

        // α = 0 vs α = 5: the anchor's gradient is identical (detached).
        let mut hi = vec![
            branch(model(1), false, 0, tmp.path()),
            branch(model(2), false, 1, tmp.path()),
        ];
        cohort_step(&mut hi, &batch, &rm_loss(5.0), (0.0, Par::Seq), &Solo).unwrap();
        assert_eq!(grads(&hi[0].model), grads(&br[0].model));
        assert_ne!(grads(&hi[1].model), grads(&br[1].model));
    }

    /// MSS: after the target's Adam step, exactly one EMA update
    /// θ_a ← m·θ_a + (1 − m)·θ_t with the updated target; the anchor runs in eval mode
    /// (its RNG is untouched) and has no gradient.
    #[test]
    fn anchored_step_applies_ema_once() {
        let tmp = tempfile::tempdir().unwrap();
        let batch = toy_batch();
        let loss = rm_loss(1.0);
        let student = model(3);
        let teacher = student.clone();
        let mut br = vec![
            branch(teacher.clone(), false, 0, tmp.path()),
            branch(student.clone(), true, 1, tmp.path()),
        ];
        let rng_before = br[0].rng.get_word_pos();
        let m = 0.9;
        anchored_step(&mut br, &batch, &loss, (2.0, Par::Seq), Some(m), &Solo).unwrap();
        assert_eq!(br[0].rng.get_word_pos(), rng_before);
        assert!(
            br[0]
                .model
                .params()
                .iter()
                .all(|p| p.grad.iter().all(|&g| g == 0.0))
        );
        let mut expect = teacher.clone();
        ema_update(&mut expect.params_mut(), &br[1].model.params(), m);
        for (a, b) in br[0].model.params().iter().zip(expect.params()) {
            assert_eq!(a.value, b.value, "{}", a.name);
        }
        assert_ne!(br[1].model.params()[0].value, student.params()[0].value);
        assert_eq!(br[0].state.step, 1);
        // Without a momentum (OAS stage 2) the anchor stays frozen.
        let mut oas = vec![
            branch(teacher.clone(), false, 0, tmp.path()),
            branch(student, true, 1, tmp.path()),
        ];
        anchored_step(&mut oas, &batch, &loss, (2.0, Par::Seq), None, &Solo).unwrap();
        for (a, b) in oas[0].model.params().iter().zip(teacher.params()) {
            assert_eq!(a.value, b.value);
        }
    }
}
