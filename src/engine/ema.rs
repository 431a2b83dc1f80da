//! Exponential moving average of parameters for the MSS regime (docs/method.md §4.3):
//! after each optimiser step, θ_a ← m·θ_a + (1 − m)·θ_t over every parameter,
//! with the DINO cosine momentum schedule (no warm-up) over T = epochs ×
//! iterations per epoch global steps:
//! `m_t = 1 − (1 − m0)·(1 + cos(π t / T))/2`, so m_0 = m0 and m_t → 1.
//! The update mirrors the authors' `param_k.mul_(m).add_((1 − m) * param_q)`:
//! m and 1 − m are formed in f64 and rounded to f32 separately.

use crate::engine::error::EngineError;
use crate::engine::param::Param;

/// θ_a ← m·θ_a + (1 − m)·θ_t for each pair of parameters (same order, names and shapes).
pub fn ema_update(anchor: &mut [&mut Param], target: &[&Param], m: f64) {
    assert_eq!(
        anchor.len(),
        target.len(),
        "ema: anchor has {} parameters, target {}",
        anchor.len(),
        target.len()
    );
    let keep = m as f32;
    let take = (1.0 - m) as f32;
    for (a, t) in anchor.iter_mut().zip(target) {
        assert!(
            a.name == t.name && a.shape == t.shape,
            "ema: anchor parameter {} {:?} paired with target {} {:?}",
            a.name,
            a.shape,
            t.name,
            t.shape
        );
        a.value
            .iter_mut()
            .zip(&t.value)
            .for_each(|(x, &y)| *x = *x * keep + take * y);
    }
}

/// The cosine momentum schedule `m_t = 1 − (1 − m0)(1 + cos(π t / T))/2`, t in 0..T.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CosineMomentum {
    m0: f64,
    total_steps: u64,
}

impl CosineMomentum {
    /// Schedule from `m0` (the authors' scripts: 0.99995) over `total_steps` steps.
    pub fn new(m0: f64, total_steps: u64) -> Result<Self, EngineError> {
        if !(0.0..=1.0).contains(&m0) {
            return Err(EngineError::Config {
                field: "ema momentum m0",
                value: m0.to_string(),
                expected: "a value in [0, 1]",
            });
        }
        if total_steps == 0 {
            return Err(EngineError::Config {
                field: "ema total steps",
                value: "0".into(),
                expected: "at least 1 (epochs × iterations per epoch)",
            });
        }
        Ok(CosineMomentum { m0, total_steps })
    }

    /// Total steps T.
    pub fn total_steps(&self) -> u64 {
        self.total_steps
    }

    /// m_t for global step t (0-based). Computed in the order of the authors'
    /// NumPy `final + 0.5·(base − final)·(1 + cos(π·t/T))` with final = 1.
    /// Steps beyond T − 1 (not reached by the authors' schedule) keep following the formula.
    pub fn at(&self, t: u64) -> f64 {
        let c = (std::f64::consts::PI * t as f64 / self.total_steps as f64).cos();
        1.0 + 0.5 * (self.m0 - 1.0) * (1.0 + c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_values_f30k() {
        // docs/method.md §11: T = 45,320 (F30K, 1133 it × 40 epochs), m0 = 0.99995.
        let s = CosineMomentum::new(0.99995, 45_320).unwrap();
        assert!((s.at(0) - 0.99995).abs() < 1e-15);
        assert!((s.at(22_660) - 0.999975).abs() < 1e-15);
        // 1 − m_{T−1} = (1 − m0)/2 · (1 − cos(π/T)) ≈ 2.5e-5 · (π/T)²/2 ≈ 6.0e-14.
        let gap = 1.0 - s.at(45_319);
        let approx = 2.5e-5 * (std::f64::consts::PI / 45_320.0).powi(2) / 2.0;
        assert!(
            (gap - approx).abs() < 0.01 * approx,
            "gap {gap} vs {approx}"
        );
        assert!((gap - 6e-14).abs() < 0.1e-14, "gap {gap}");
        // Monotone non-decreasing.
        assert!((1..45_320).step_by(97).all(|t| s.at(t) >= s.at(t - 1)));
        // docs/method.md §4.3: Σ(1 − m_t) ≈ (1 − m0)·T/2 = 1.133.
        let total: f64 = (0..45_320).map(|t| 1.0 - s.at(t)).sum();
        assert!((total - 1.133).abs() < 1e-3, "{total}");
        assert!(CosineMomentum::new(1.5, 10).is_err());
        assert!(CosineMomentum::new(0.9, 0).is_err());
    }

    #[test]
    fn update_mixes_toward_target() {
        let mut a = Param::from_values("w", &[3], vec![1.0, 2.0, 3.0]);
        let t = Param::from_values("w", &[3], vec![3.0, 2.0, -1.0]);
        ema_update(&mut [&mut a], &[&t], 0.75);
        assert_eq!(a.value, vec![1.5, 2.0, 2.0]);
        ema_update(&mut [&mut a], &[&t], 1.0);
        assert_eq!(a.value, vec![1.5, 2.0, 2.0]);
        ema_update(&mut [&mut a], &[&t], 0.0);
        assert_eq!(a.value, t.value);
    }
}
