//! Margin adaptation for the boosting losses (docs/method.md §3.4, "Soft Adaptation"
//! γ^SA), computed from the **anchor** scores and therefore stop-gradient.
//!
//! A boosting margin asks the target to go past the anchor by γ; near the end
//! of the score range that request cannot be met, so the margin shrinks. With
//! `r` the anchor quantity and `e` its bound:
//! - upper bound (r must stay <= e):  none γ; hard `min(γ, e − r)`;
//!   soft `γ · tanh((e − r) / γ)`;
//! - lower bound (r must stay >= −e): none γ; hard `min(γ, e + r)`;
//!   soft `γ · tanh((r + e) / γ)`.
//!
//! The soft form equals the authors' commented-out `2γ·σ((2/γ)(e − r)) − γ`
//! and is a smooth version of the clip (value γ far inside the bound, slope −1
//! at the bound). The hard form can go negative outside the bound, as the
//! commented code's `torch.where` does. Where the losses apply it: absolute
//! positive γ1 (upper, e = 1, r = S^a_ii), absolute negative γ2 (lower, e = 1,
//! r = S^a_ij), relative γ' (upper, e = 2, r = S^a_ii − S^a_ij for i2t and
//! S^a_jj − S^a_ij for t2i). PyTorch mirror: `upper_margin` / `lower_margin`
//! in `tools/reference/dbl_ref/losses.py`. Off by default (the released code).

use serde::{Deserialize, Serialize};

/// Which margin schedule the boosting losses use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MarginAdaptation {
    /// Constant margin γ (the released code).
    #[default]
    None,
    /// Clip at the bound: `min(γ, e − r)` / `min(γ, e + r)`.
    Hard,
    /// Smooth clip: `γ·tanh((e − r)/γ)` / `γ·tanh((r + e)/γ)`.
    Soft,
}

impl MarginAdaptation {
    /// Margin for an anchor quantity `r` bounded above by `bound`.
    #[inline]
    pub fn upper(self, gamma: f64, bound: f64, r: f64) -> f64 {
        match self {
            Self::None => gamma,
            Self::Hard => (bound - r).min(gamma),
            Self::Soft if gamma == 0.0 => 0.0,
            Self::Soft => gamma * ((bound - r) / gamma).tanh(),
        }
    }

    /// Margin for an anchor quantity `r` bounded below by `-bound`.
    #[inline]
    pub fn lower(self, gamma: f64, bound: f64, r: f64) -> f64 {
        match self {
            Self::None => gamma,
            Self::Hard => (bound + r).min(gamma),
            Self::Soft if gamma == 0.0 => 0.0,
            Self::Soft => gamma * ((r + bound) / gamma).tanh(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Spec §3.4 numbers: γ1 base 0.1, e = 1.
    #[test]
    fn soft_matches_spec_numbers() {
        let m = |r| MarginAdaptation::Soft.upper(0.1, 1.0, r);
        assert!((m(0.5) - 0.1 * (5.0f64).tanh()).abs() < 1e-15);
        assert!((m(0.5) - 0.09999).abs() < 1e-5, "{}", m(0.5));
        assert!((m(0.9) - 0.0762).abs() < 1e-4, "{}", m(0.9));
        assert!((m(0.95) - 0.0462).abs() < 1e-4, "{}", m(0.95));
        assert_eq!(m(1.0), 0.0);
    }

    /// The soft form equals the sigmoid form of the authors' commented code.
    #[test]
    fn soft_equals_sigmoid_form() {
        let sigmoid = |z: f64| 1.0 / (1.0 + (-z).exp());
        for &(g, e, r) in &[(0.2, 2.0, 0.3), (0.1, 1.0, 0.93), (0.1, 1.0, -0.97)] {
            let upper = 2.0 * g * sigmoid(-(2.0 / g) * (r - e)) - g;
            let lower = 2.0 * g * sigmoid((2.0 / g) * (r + e)) - g;
            assert!((MarginAdaptation::Soft.upper(g, e, r) - upper).abs() < 1e-12);
            assert!((MarginAdaptation::Soft.lower(g, e, r) - lower).abs() < 1e-12);
        }
    }

    #[test]
    fn hard_clips_and_none_is_constant() {
        assert_eq!(MarginAdaptation::Hard.upper(0.1, 1.0, 0.5), 0.1);
        assert!((MarginAdaptation::Hard.upper(0.1, 1.0, 0.95) - 0.05).abs() < 1e-15);
        assert!((MarginAdaptation::Hard.lower(0.1, 1.0, -0.97) - 0.03).abs() < 1e-15);
        assert_eq!(MarginAdaptation::None.lower(0.1, 1.0, -0.99), 0.1);
        assert_eq!(MarginAdaptation::Soft.upper(0.0, 1.0, 1.0), 0.0);
    }
}
