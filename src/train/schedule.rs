//! Schedules (docs/method.md §4, §7): the step-decay learning rate in the
//! two forms of the authors' `adjust_learning_rate` ([`LrSchedule`]: ×decay
//! once at epoch `lr_update`, as their OSS code, or at every multiple of it,
//! as their OAS and MSS code; `lr_update = 0` means "never decay" instead of
//! their division by zero), and the sum-over-negatives warm-up (VSE∞'s cure for the
//! hardest-negative plateau): for the first N epochs the base triplet's
//! hardest-negative reduction becomes a sum. The boosting loss keeps its
//! configured reduction: the plateau is a property of L_raw, and summing an
//! Absolute-Max boosting loss (turning it into AS) held the OSS target at chance
//! in 5 of 5 seeds of the synthetic study (EXPERIMENTS.md, "warm-up").

use serde::{Deserialize, Serialize};

use crate::loss::{BaseLoss, LossConfig, Reduction};
use crate::train::config::Regime;

/// When the step-decay learning rate drops (docs/method.md §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LrSchedule {
    /// lr0 until epoch `lr_update`, lr0·decay from then on (the authors' OSS
    /// `train.py`, and VSE∞'s).
    Once,
    /// lr0·decay^⌊epoch / lr_update⌋ (the authors' OAS and MSS code, and SGRAF's).
    Every,
}

impl LrSchedule {
    /// What the authors' code of `regime` does: OSS decays once, OAS, MSS and
    /// the baseline (OAS stage 1, SGRAF's own training) at every multiple.
    pub fn authors(regime: Regime) -> Self {
        match regime {
            Regime::Oss => LrSchedule::Once,
            Regime::Baseline | Regime::Oas | Regime::Mss => LrSchedule::Every,
        }
    }

    /// The config spelling.
    pub fn name(self) -> &'static str {
        match self {
            LrSchedule::Once => "once",
            LrSchedule::Every => "every",
        }
    }

    /// Learning rate of `epoch` (0-based); `lr_update = 0` never decays.
    pub fn lr_at(self, lr0: f64, decay: f64, lr_update: usize, epoch: usize) -> f64 {
        if lr_update == 0 {
            return lr0;
        }
        let drops = match self {
            LrSchedule::Once => usize::from(epoch >= lr_update),
            LrSchedule::Every => epoch / lr_update,
        };
        lr0 * decay.powi(drops as i32)
    }
}

/// The loss configuration in force during `epoch` (0-based) given `warmup` sum epochs.
pub fn loss_for_epoch(loss: &LossConfig, warmup: usize, epoch: usize) -> LossConfig {
    let mut l = loss.clone();
    if epoch < warmup
        && let BaseLoss::Triplet { reduction } = &mut l.base
    {
        *reduction = Reduction::Sum;
    }
    l
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_decay_at_every_multiple() {
        let lr_at = |u, e| LrSchedule::Every.lr_at(2e-4, 0.1, u, e);
        assert_eq!(lr_at(30, 0), 2e-4);
        assert_eq!(lr_at(30, 29), 2e-4);
        assert!((lr_at(30, 30) - 2e-5).abs() < 1e-18);
        assert!((lr_at(10, 25) - 2e-6).abs() < 1e-18);
        assert_eq!(lr_at(0, 100), 2e-4);
    }

    /// The authors' OSS `adjust_learning_rate` multiplies by 0.1 when
    /// `epoch in [lr_update]`: once, so epoch 25 of `lr_update = 10` runs at lr0/10.
    #[test]
    fn step_decay_once() {
        let lr_at = |u, e| LrSchedule::Once.lr_at(2e-4, 0.1, u, e);
        assert_eq!(lr_at(10, 9), 2e-4);
        assert!((lr_at(10, 10) - 2e-5).abs() < 1e-18);
        assert!((lr_at(10, 25) - 2e-5).abs() < 1e-18);
        assert!((lr_at(10, 1000) - 2e-5).abs() < 1e-18);
        assert_eq!(lr_at(0, 100), 2e-4);
    }

    #[test]
    fn authors_schedule_per_regime() {
        assert_eq!(LrSchedule::authors(Regime::Oss), LrSchedule::Once);
        for r in [Regime::Baseline, Regime::Oas, Regime::Mss] {
            assert_eq!(LrSchedule::authors(r), LrSchedule::Every, "{}", r.name());
        }
    }

    #[test]
    fn warmup_switches_the_base_reduction_only_then_restores() {
        let base = LossConfig::default();
        let w = loss_for_epoch(&base, 2, 1);
        assert_eq!(
            w.base,
            BaseLoss::Triplet {
                reduction: Reduction::Sum
            }
        );
        // The boosting loss keeps its configured (hardest) reduction.
        assert_eq!(w.peer, base.peer);
        assert!(
            matches!(base.peer, crate::loss::PeerLoss::Boost(b) if b.reduction == Reduction::Hardest)
        );
        assert_eq!(loss_for_epoch(&base, 2, 2), base);
        assert_eq!(loss_for_epoch(&base, 0, 0), base);
    }
}
