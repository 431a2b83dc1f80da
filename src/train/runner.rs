//! The training loop shared by every regime (docs/method.md §4), generic over any
//! [`Trainable`] backbone. A run is one or two *phases* (OAS has two stages);
//! a phase trains a list of branches for some epochs with one step kind:
//!
//! - [`StepKind::Cohort`] (baseline = K 1, OSS = K ≥ 1): every branch forwards the
//!   same batch in train mode; branch k minimises
//!   L_raw(S_k) + α·(1/k)·Σ_{n<k} L_peer(S_k, sg(S_n)) (`LossConfig::branch_loss`),
//!   with its own backward, grad-norm clip and Adam step.
//! - [`StepKind::Anchored`] (OAS stage 2, MSS): branch 0 is the anchor (eval
//!   mode, no gradient; for OAS stage 1's best, or the weights `oas.anchor`
//!   gives, committed in place of stage 1), branch 1 the target (train mode),
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
//! The step math lives in [`crate::train::step`], the checkpoint I/O in
//! [`crate::train::run_store`]; this file is the epoch loop.
//!
//! Data-parallel (docs/method.md §14): every step goes through
//! [`crate::train::sharded`] over the run's [`Comm`]; every rank keeps every
//! branch and takes the same steps; dev evaluation shards the images across
//! the ranks (every rank gets the same metrics); only rank 0 writes
//! (checkpoints, metrics, config, progress). One process is the N = 1 case of
//! the same code.

use std::io::IsTerminal;
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
use crate::engine::ema::CosineMomentum;
use crate::engine::gemm::Par;
use crate::engine::param::Module;
use crate::engine::rng::EngineRng;
use crate::eval::matrix::SimMatrix;
use crate::eval::metrics::Metrics;
use crate::eval::protocol::whole_metrics;
use crate::model::Trainable;
use crate::model::precision::HeadPrecision;
use crate::store::{Store, Tag};
use crate::train::TrainError;
use crate::train::config::{Regime, TrainConfig};
use crate::train::run_lock::RunLock;
use crate::train::run_store::{
    BranchRun, best_metrics, branch_dir, check_cohort, check_foreign_files, commit_given_anchor,
    fresh_state, given_anchor, load_best_metrics, load_branch, write_config,
};
use crate::train::schedule::loss_for_epoch;
use crate::train::step::{StepKind, anchored_step, cohort_step};
use crate::watch::{Event, Watch};

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

fn adam(cfg: &TrainConfig, m: &impl Module) -> Result<Adam, TrainError> {
    Ok(Adam::new(
        AdamConfig {
            lr: cfg.lr,
            ..AdamConfig::default()
        },
        &m.params(),
    )?)
}

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
    /// The test split, when `test_after_epoch` is set (write-only records).
    test: Option<&'a Precomp>,
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
        let lr = cfg
            .schedule()
            .lr_at(cfg.lr, cfg.lr_decay, phase.lr_update, epoch);
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
            let phase_name = format!("stage {} epoch {} dev evaluation", phase.stage, epoch + 1);
            let shown = crate::progress::begin(&phase_name, "pairs", ctx.lead());
            let dev = ctx.dev_metrics(branches)?;
            drop(shown);
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
        // Test records after the burn-in (docs/method.md §8): logged before the
        // commit, so a crash before it trims them with the epoch; nothing in
        // training, selection or patience reads them.
        if let (Some(test), Some(after)) = (ctx.test, cfg.test_after_epoch)
            && epoch + 1 > after
        {
            for b in branches.iter_mut() {
                let m = evaluate_ranks(&b.model, test, ctx.comm)?;
                let step = b.state.step;
                b.log(json!({"kind": "test", "stage": phase.stage, "epoch": epoch,
                    "step": step, "test": m}))?;
            }
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
    dev.check_features_like(train.images(), Split::Train)?;
    for w in [&train, &dev].iter().filter_map(|d| d.truncation_warning()) {
        eprintln!("{w}");
    }
    train.check_finite()?;
    dev.check_finite()?;
    // The test split only when `test_after_epoch` asks for test records.
    let test = match cfg.test_after_epoch {
        Some(_) => {
            let t = Precomp::open(&cfg.data, Split::Test, &vocab)?;
            t.check_features_like(train.images(), Split::Train)?;
            t.check_finite()?;
            Some(t)
        }
        None => None,
    };
    // A given OAS anchor is read and checked before anything is written.
    let mut anchor = match (&cfg.oas.anchor, cfg.regime, resume) {
        (Some(spec), Regime::Oas, false) => Some(given_anchor(cfg, spec, build)?),
        _ => None,
    };
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
        if !store.has_checkpoint() {
            crate::train::stale_branches::remove_stale_branches(&cfg.out, cfg.n_branches())
                .map_err(|source| TrainError::Io {
                    path: cfg.out.clone(),
                    source,
                })?;
        }
        store.trim_metrics(&cfg.out)?;
        write_config(cfg)?;
    }
    // The other ranks read the store once rank 0 has checked and trimmed it.
    comm.barrier();
    let mut store = Store::open(&cfg.out)?;
    let resume = resume && store.has_checkpoint();
    let ctx = Ctx {
        cfg,
        train: &train,
        dev: &dev,
        test: test.as_ref(),
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
            if let Some(spec) = &cfg.oas.anchor {
                // A given anchor replaces stage 1 (committed once, by rank 0;
                // a resumed run keeps its committed copy).
                if lead && !store.has(0, Tag::Best) {
                    let m = match anchor.take() {
                        Some(m) => m,
                        None => given_anchor(cfg, spec, build)?,
                    };
                    commit_given_anchor(cfg, &m, &mut store)?;
                }
            } else if !in_stage2 {
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

/// Opens `split` of a run's dataset for scoring, checked before any work:
/// its features have the training split's shape (the model was built for it)
/// and every value is finite.
fn open_checked(cfg: &TrainConfig, split: Split, vocab: &Vocab) -> Result<Precomp, TrainError> {
    let ds = Precomp::open(&cfg.data, split, vocab)?;
    let train_ims = cfg.data.join(Split::Train.ims_file());
    let reference = crate::data::npy::NpyF32::open_ndim(&train_ims, 3)
        .map_err(crate::data::precomp::PrecompError::from)?;
    ds.check_features_like(&reference, Split::Train)?;
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
