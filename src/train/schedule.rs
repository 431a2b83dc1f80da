//! Schedules (docs/method.md §4, §7): the step-decay learning rate
//! lr = lr0·decay^⌊epoch / lr_update⌋ (the authors' `adjust_learning_rate`,
//! with `lr_update = 0` meaning "never decay" instead of their division by
//! zero), and the sum-over-negatives warm-up (VSE∞'s cure for the
//! hardest-negative plateau): for the first N epochs the base triplet's
//! hardest-negative reduction becomes a sum. The boosting loss keeps its
//! configured reduction: the plateau is a property of L_raw, and summing an
//! Absolute-Max boosting loss (turning it into AS) held the OSS target at chance
//! in 5 of 5 seeds of the synthetic study (EXPERIMENTS.md, "warm-up").

use crate::loss::{BaseLoss, LossConfig, Reduction};

/// Learning rate of `epoch` (0-based).
pub fn lr_at(lr0: f64, decay: f64, lr_update: usize, epoch: usize) -> f64 {
    if lr_update == 0 {
        return lr0;
    }
    lr0 * decay.powi((epoch / lr_update) as i32)
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
    fn step_decay() {
        assert_eq!(lr_at(2e-4, 0.1, 30, 0), 2e-4);
        assert_eq!(lr_at(2e-4, 0.1, 30, 29), 2e-4);
        assert!((lr_at(2e-4, 0.1, 30, 30) - 2e-5).abs() < 1e-18);
        assert!((lr_at(2e-4, 0.1, 10, 25) - 2e-6).abs() < 1e-18);
        assert_eq!(lr_at(2e-4, 0.1, 0, 100), 2e-4);
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
