//! The step math of every regime (docs/method.md §4): one training step of a
//! cohort ([`cohort_step`]: baseline, OSS) or of an anchor and its target
//! ([`anchored_step`]: OAS stage 2, MSS), each branch's forward split across
//! the ranks ([`crate::train::sharded`]), its loss, backward, clipping and
//! Adam step. The epoch loop that calls them is `crate::train::runner`.

use serde_json::json;

use crate::dist::Comm;
use crate::engine::clip::{clip_grad_norm, grad_norm};
use crate::engine::ema::ema_update;
use crate::engine::gemm::Par;
use crate::engine::rng::EngineRng;
use crate::loss::ScoreMatrix;
use crate::model::Trainable;
use crate::train::TrainError;
use crate::train::run_store::BranchRun;
use crate::train::sharded::{self, StepCache};

/// How the branches of a phase are stepped.
#[derive(Debug, Clone, Copy)]
pub enum StepKind {
    /// Every branch trains; peers are the earlier branches (or the others, for mutual learning).
    Cohort,
    /// Branch 0 is a frozen eval-mode anchor, branch 1 the target; `ema` = MSS initial momentum.
    Anchored { ema: Option<f64> },
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
        let peer_raw = loss.peer_mean(&mats, k)?;
        let cache = caches[k].take().expect("each cache is used once");
        b.model.zero_grad();
        sharded::backward(&mut b.model, cache, &out.grad_f32(), comm);
        let gn = clip_and_step(b, clip, par)?;
        records.push((
            k,
            json!({"loss": out.value, "base": base, "peer": out.value - base,
                "peer_unweighted": peer_raw, "grad_norm": gn}),
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
    let peer_raw = loss.peer_loss(&mt, &ma)?.value;
    let mut rec = json!({"loss": out.value, "base": base, "peer": out.value - base,
        "peer_unweighted": peer_raw, "grad_norm": gn,
        "anchor_base": loss.base_loss(&ma)?.value});
    if let Some(m) = ema_momentum {
        let tp = target.model.params();
        ema_update(&mut anchor.model.params_mut(), &tp, m);
        rec["ema_momentum"] = json!(m);
        anchor.state.step += 1;
    }
    Ok(vec![(1, rec)])
}

pub(crate) fn clip_and_step<M: Trainable>(
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::data::batch::Batch;
    use crate::dist::Solo;
    use crate::engine::adam::{Adam, AdamConfig};
    use crate::engine::param::Module;
    use crate::engine::rng::seeded;
    use crate::engine::testutil::rand_vec;
    use crate::loss::{BoostConfig, BoostForm, LossConfig, PeerLoss};
    use crate::train::run_store::fresh_state;
    use crate::train::runner::dropout_rng;
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
