//! The typed loss configuration: which base loss every branch gets, which
//! cooperative ("peer") term a branch gets from its anchors, and their options,
//! with the authors' defaults (docs/method.md §7) and one `validate`. Dispatches to the
//! loss functions of this module and to the cohort combination (docs/method.md §3.5).
//!
//! Defaults: γ = 0.2, α = 1.0, base = triplet with hardest negatives, peer =
//! absolute boosting AM with β = 1, g = 0.5, no margin adaptation (the
//! authors' `--boost_name` default `boostabs`). In TOML:
//!
//! ```toml
//! margin = 0.2
//! alpha = 1.0
//! [base]
//! kind = "triplet"        # | "info_nce" | "decoupled_info_nce" (+ temperature)
//! reduction = "hardest"   # | "sum"
//! [peer]
//! kind = "boost"          # | "none" | "distillation" | "mutual" (+ scale)
//! form = "absolute"       # | "relative"
//! reduction = "hardest"   # AM / RM; "sum" gives AS / RS
//! beta = 1.0
//! split = 0.5
//! adaptation = "none"     # | "hard" | "soft"
//! ```

use serde::{Deserialize, Serialize};

use super::boost_absolute::boost_absolute;
use super::boost_relative::boost_relative;
use super::cohort::{PeerSet, cohort_loss};
use super::decoupled_info_nce::decoupled_info_nce;
use super::distillation::distillation;
use super::info_nce::info_nce;
use super::margin::MarginAdaptation;
use super::reduction::Reduction;
use super::triplet::triplet;
use super::{LossError, LossOutput, ScoreMatrix, check_non_negative, check_positive};

/// Loss configuration of a training run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LossConfig {
    /// γ: margin of the triplet loss and base margin of the boosting losses (0.2).
    pub margin: f64,
    /// α: weight of the peer term (1.0).
    pub alpha: f64,
    /// Base loss of every branch (triplet, hardest negatives).
    pub base: BaseLoss,
    /// Cooperative term a branch gets from its anchors (absolute boosting AM).
    pub peer: PeerLoss,
}

impl Default for LossConfig {
    fn default() -> Self {
        Self {
            margin: 0.2,
            alpha: 1.0,
            base: BaseLoss::default(),
            peer: PeerLoss::default(),
        }
    }
}

fn default_temperature() -> f64 {
    0.1
}

fn default_scale() -> f64 {
    10.0
}

/// The loss every branch gets on its own scores.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum BaseLoss {
    /// L_raw, the hinge triplet loss (docs/method.md §3.1) with margin γ.
    Triplet {
        /// Hardest negative (default) or sum over negatives.
        #[serde(default)]
        reduction: Reduction,
    },
    /// Bidirectional InfoNCE.
    InfoNce {
        /// Temperature T (logits S / T; default 0.1).
        #[serde(default = "default_temperature")]
        temperature: f64,
    },
    /// Decoupled InfoNCE (positive removed from the denominator).
    DecoupledInfoNce {
        /// Temperature T (logits S / T; default 0.1).
        #[serde(default = "default_temperature")]
        temperature: f64,
    },
}

impl Default for BaseLoss {
    fn default() -> Self {
        Self::Triplet {
            reduction: Reduction::Hardest,
        }
    }
}

/// Relative (gap) or absolute (per-score) boosting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum BoostForm {
    /// ℓ'_RM / ℓ'_RS (docs/method.md §3.2).
    Relative,
    /// ℓ'_AM / ℓ'_AS (docs/method.md §3.3; the authors' default).
    #[default]
    Absolute,
}

/// Options of the DBL boosting loss.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BoostConfig {
    /// Relative or absolute (absolute).
    pub form: BoostForm,
    /// Hardest (RM/AM, default) or sum (RS/AS) over negatives.
    pub reduction: Reduction,
    /// β: boosting margin scale, γ' = γ·β (1.0).
    pub beta: f64,
    /// g: absolute split, γ1 = γ·β·g, γ2 = γ·β·(1 − g) (0.5).
    pub split: f64,
    /// Margin adaptation from the anchor scores (none).
    pub adaptation: MarginAdaptation,
}

impl Default for BoostConfig {
    fn default() -> Self {
        Self {
            form: BoostForm::Absolute,
            reduction: Reduction::Hardest,
            beta: 1.0,
            split: 0.5,
            adaptation: MarginAdaptation::None,
        }
    }
}

impl BoostConfig {
    /// The paper's name of the selected loss: "RM", "RS", "AM" or "AS".
    pub fn paper_name(&self) -> &'static str {
        match (self.form, self.reduction) {
            (BoostForm::Relative, Reduction::Hardest) => "RM",
            (BoostForm::Relative, Reduction::Sum) => "RS",
            (BoostForm::Absolute, Reduction::Hardest) => "AM",
            (BoostForm::Absolute, Reduction::Sum) => "AS",
        }
    }

    /// (γ', γ1, γ2) = (γ·β, γ·β·g, γ·β·(1 − g)) for base margin γ.
    pub fn margins(&self, gamma: f64) -> (f64, f64, f64) {
        (
            gamma * self.beta,
            gamma * self.beta * self.split,
            gamma * self.beta * (1.0 - self.split),
        )
    }

    fn validate(&self) -> Result<(), LossError> {
        check_non_negative("peer.beta", self.beta)?;
        if !(0.0..=1.0).contains(&self.split) {
            return Err(LossError::BadOption {
                field: "peer.split",
                value: self.split,
                expected: "a number in [0, 1]",
            });
        }
        Ok(())
    }
}

/// The cooperative term a branch gets from its (stop-gradient) anchors.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum PeerLoss {
    /// No peer term: every branch trains on its base loss alone.
    None,
    /// DBL boosting from the earlier branches (docs/method.md §3.2–3.5).
    Boost(BoostConfig),
    /// Conventional distillation from the earlier branches (KL to their softmax).
    Distillation {
        /// τ multiplying the scores before the softmax (default 10).
        #[serde(default = "default_scale")]
        scale: f64,
    },
    /// Mutual learning: KL to every other branch's softmax, all branches learn.
    Mutual {
        /// τ multiplying the scores before the softmax (default 10).
        #[serde(default = "default_scale")]
        scale: f64,
    },
}

impl Default for PeerLoss {
    fn default() -> Self {
        Self::Boost(BoostConfig::default())
    }
}

impl LossConfig {
    /// Checks every option once: margins, α, β >= 0 and finite, g in [0, 1],
    /// temperatures and scales > 0.
    pub fn validate(&self) -> Result<(), LossError> {
        check_non_negative("margin", self.margin)?;
        check_non_negative("alpha", self.alpha)?;
        match self.base {
            BaseLoss::Triplet { .. } => {}
            BaseLoss::InfoNce { temperature } | BaseLoss::DecoupledInfoNce { temperature } => {
                check_positive("base.temperature", temperature)?
            }
        }
        match self.peer {
            PeerLoss::None => {}
            PeerLoss::Boost(b) => b.validate()?,
            PeerLoss::Distillation { scale } | PeerLoss::Mutual { scale } => {
                check_positive("peer.scale", scale)?
            }
        }
        Ok(())
    }

    /// The base loss of one branch. s: `[n, n]`.
    pub fn base_loss(&self, s: &ScoreMatrix) -> Result<LossOutput, LossError> {
        match self.base {
            BaseLoss::Triplet { reduction } => triplet(s, self.margin, reduction),
            BaseLoss::InfoNce { temperature } => info_nce(s, temperature),
            BaseLoss::DecoupledInfoNce { temperature } => decoupled_info_nce(s, temperature),
        }
    }

    /// The peer term of `st` against one stop-gradient anchor `sa` (zero for
    /// `PeerLoss::None`); the result's gradient is w.r.t. `st` only.
    pub fn peer_loss(&self, st: &ScoreMatrix, sa: &ScoreMatrix) -> Result<LossOutput, LossError> {
        match self.peer {
            PeerLoss::None => {
                st.check_same_size("the anchor S^a", sa)?;
                Ok(LossOutput::zeros(st.n()))
            }
            PeerLoss::Boost(b) => {
                let (g, g1, g2) = b.margins(self.margin);
                match b.form {
                    BoostForm::Relative => boost_relative(st, sa, g, b.reduction, b.adaptation),
                    BoostForm::Absolute => {
                        boost_absolute(st, sa, g1, g2, b.reduction, b.adaptation)
                    }
                }
            }
            PeerLoss::Distillation { scale } | PeerLoss::Mutual { scale } => {
                distillation(st, sa, scale)
            }
        }
    }

    /// The peers of branch k: the earlier branches, or every other branch for
    /// mutual learning.
    pub fn peer_set(&self) -> PeerSet {
        match self.peer {
            PeerLoss::Mutual { .. } => PeerSet::Others,
            _ => PeerSet::Earlier,
        }
    }

    /// The unweighted peer term of branch `k` in a cohort: the mean over its
    /// peers of peer(S_k, S_n), 0 without peers — the authors' logged
    /// `Loss_boo` (what [`LossConfig::branch_loss`] adds is α times this).
    pub fn peer_mean(&self, branches: &[ScoreMatrix], k: usize) -> Result<f64, LossError> {
        let sk = branches.get(k).ok_or(LossError::BranchIndex {
            k,
            branches: branches.len(),
        })?;
        let idx = self.peer_set().of(k, branches.len());
        if idx.is_empty() || matches!(self.peer, PeerLoss::None) {
            return Ok(0.0);
        }
        let mut total = 0.0;
        for &m in &idx {
            total += self.peer_loss(sk, &branches[m])?.value;
        }
        Ok(total / idx.len() as f64)
    }

    /// Loss of branch `k` in a cohort (docs/method.md §3.5): base(S_k) + α · mean over
    /// its peers of peer(S_k, sg(S_n)); dL_k/dS_k. branches: each `[n, n]`.
    pub fn branch_loss(&self, branches: &[ScoreMatrix], k: usize) -> Result<LossOutput, LossError> {
        if matches!(self.peer, PeerLoss::None) {
            let sk = branches.get(k).ok_or(LossError::BranchIndex {
                k,
                branches: branches.len(),
            })?;
            return self.base_loss(sk);
        }
        cohort_loss(
            branches,
            k,
            self.alpha,
            self.peer_set(),
            |s| self.base_loss(s),
            |s, a| self.peer_loss(s, a),
        )
    }

    /// The target objective of a two-branch regime (OAS, OSS, MSS):
    /// L_base(S^t) + α·L_peer(S^t, sg(S^a)); dL/dS^t.
    pub fn target_loss(&self, st: &ScoreMatrix, sa: &ScoreMatrix) -> Result<LossOutput, LossError> {
        check_non_negative("alpha", self.alpha)?;
        let mut out = self.base_loss(st)?;
        let peer = self.peer_loss(st, sa)?;
        out.value += self.alpha * peer.value;
        for (o, p) in out.grad.iter_mut().zip(&peer.grad) {
            *o += self.alpha * p;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loss::test_support::{spec_sa, spec_st};

    #[test]
    fn defaults_are_the_authors() {
        let c = LossConfig::default();
        c.validate().unwrap();
        assert_eq!(c.margin, 0.2);
        assert_eq!(c.alpha, 1.0);
        let PeerLoss::Boost(b) = c.peer else {
            panic!("default peer is boosting")
        };
        assert_eq!(b.paper_name(), "AM");
        assert_eq!(b.margins(0.2), (0.2, 0.1, 0.1));
        // docs/method.md §11: L_raw + AM = 0.49 + 1.89.
        let t = c.target_loss(&spec_st(), &spec_sa()).unwrap();
        assert!((t.value - 2.38).abs() < 1e-6, "{}", t.value);
    }

    #[test]
    fn parses_toml_and_rejects_unknown_keys() {
        let c: LossConfig = toml::from_str(
            "margin = 0.25\n[base]\nkind = \"triplet\"\nreduction = \"sum\"\n\
             [peer]\nkind = \"boost\"\nform = \"relative\"\nadaptation = \"soft\"\n",
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.margin, 0.25);
        assert_eq!(
            c.base,
            BaseLoss::Triplet {
                reduction: Reduction::Sum
            }
        );
        let PeerLoss::Boost(b) = c.peer else {
            panic!("{c:?}")
        };
        assert_eq!(
            (b.paper_name(), b.adaptation),
            ("RM", MarginAdaptation::Soft)
        );
        let back: LossConfig = toml::from_str(&toml::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);

        for bad in [
            "margn = 0.2\n",
            "[peer]\nkind = \"boost\"\nbeat = 1.0\n",
            "[peer]\nkind = \"mutual\"\ntau = 10.0\n",
            "[base]\nkind = \"triplet\"\nreduction = \"mean\"\n",
        ] {
            assert!(
                toml::from_str::<LossConfig>(bad).is_err(),
                "accepted {bad:?}"
            );
        }
        let m: LossConfig = toml::from_str("[peer]\nkind = \"mutual\"\n").unwrap();
        assert_eq!(m.peer, PeerLoss::Mutual { scale: 10.0 });
        assert_eq!(m.peer_set(), PeerSet::Others);
    }

    #[test]
    fn validate_rejects_bad_options() {
        let mut c = LossConfig {
            margin: -0.2,
            ..LossConfig::default()
        };
        let e = c.validate().unwrap_err();
        assert!(e.to_string().contains("margin"), "{e}");
        c.margin = 0.2;
        c.peer = PeerLoss::Boost(BoostConfig {
            split: 1.5,
            ..BoostConfig::default()
        });
        assert!(matches!(
            c.validate(),
            Err(LossError::BadOption {
                field: "peer.split",
                ..
            })
        ));
        c.peer = PeerLoss::Distillation { scale: 0.0 };
        assert!(c.validate().is_err());
        c.peer = PeerLoss::None;
        c.base = BaseLoss::InfoNce { temperature: -1.0 };
        assert!(c.validate().is_err());
        c.base = BaseLoss::default();
        c.alpha = f64::NAN;
        assert!(c.validate().is_err());
    }

    #[test]
    fn no_peer_means_base_only() {
        let c = LossConfig {
            peer: PeerLoss::None,
            ..LossConfig::default()
        };
        let b = [spec_sa(), spec_st()];
        assert_eq!(c.branch_loss(&b, 1).unwrap(), c.base_loss(&b[1]).unwrap());
        assert!((c.target_loss(&b[1], &b[0]).unwrap().value - 0.49).abs() < 1e-6);
    }

    /// docs/method.md §11 with α = 0.5: the logged unweighted term is AM = 1.89
    /// (the authors' `Loss_boo`); the objective adds α times it.
    #[test]
    fn peer_mean_is_the_unweighted_peer_term() {
        let c = LossConfig {
            alpha: 0.5,
            ..LossConfig::default()
        };
        let b = [spec_sa(), spec_st()];
        let p = c.peer_mean(&b, 1).unwrap();
        assert!((p - 1.89).abs() < 1e-6, "{p}");
        let total = c.branch_loss(&b, 1).unwrap().value;
        let base = c.base_loss(&b[1]).unwrap().value;
        assert!((total - base - 0.5 * p).abs() < 1e-12);
        assert_eq!(c.peer_mean(&b, 0).unwrap(), 0.0);
        assert!(c.peer_mean(&b, 2).is_err());
    }
}
