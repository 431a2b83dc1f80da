//! Adam, exactly as `torch.optim.Adam` (single-tensor path, `amsgrad=False`,
//! `weight_decay=0`; docs/method.md §7: lr 2e-4, betas (0.9, 0.999), eps 1e-8). Per
//! element, in PyTorch's order (scalars in f64 like Python floats, rounded to
//! f32 where they meet a tensor):
//! ```text
//! step += 1
//! m  = lerp(m, g, 1 − β1)              = fma(1 − β1, g − m, m)
//! v  = v·β2 + ((1 − β2)·g)·g
//! bc1 = 1 − β1^step,  bc2 = 1 − β2^step          (f64)
//! denom = sqrt(v) / sqrt(bc2) + eps
//! p  = p + (−lr/bc1)·m / denom
//! ```
//! The learning rate is settable between steps (step decay). The state (step
//! count and both moments, named after their parameters) exports to and
//! imports from named tensors for checkpoints.

use std::collections::HashMap;

use rayon::prelude::*;

use crate::engine::error::EngineError;
use crate::engine::gemm::Par;
use crate::engine::param::{NamedTensor, Param};

/// Elements per rayon task in the update loop.
const CHUNK: usize = 1 << 15;
/// The largest step count a float32 holds exactly (PyTorch keeps `step` as f32).
const MAX_STEP: u64 = 1 << 24;
/// Name of the exported step counter.
pub const STEP_NAME: &str = "step";

/// Adam hyper-parameters. Defaults are the authors' (docs/method.md §7).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamConfig {
    /// Learning rate (default 2e-4).
    pub lr: f64,
    /// First-moment decay β1 (default 0.9).
    pub beta1: f64,
    /// Second-moment decay β2 (default 0.999).
    pub beta2: f64,
    /// Denominator epsilon (default 1e-8).
    pub eps: f64,
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig {
            lr: 2e-4,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

impl AdamConfig {
    /// Checks every field is in PyTorch's accepted range.
    pub fn validate(&self) -> Result<(), EngineError> {
        let bad = |field, value: f64, expected| {
            Err(EngineError::Config {
                field,
                value: value.to_string(),
                expected,
            })
        };
        if !(self.lr.is_finite() && self.lr >= 0.0) {
            return bad("adam lr", self.lr, "a finite value >= 0");
        }
        if !(0.0..1.0).contains(&self.beta1) {
            return bad("adam beta1", self.beta1, "a value in [0, 1)");
        }
        if !(0.0..1.0).contains(&self.beta2) {
            return bad("adam beta2", self.beta2, "a value in [0, 1)");
        }
        if !(self.eps.is_finite() && self.eps >= 0.0) {
            return bad("adam eps", self.eps, "a finite value >= 0");
        }
        Ok(())
    }
}

/// One Adam optimiser over a fixed, ordered list of parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Adam {
    cfg: AdamConfig,
    step: u64,
    names: Vec<String>,
    shapes: Vec<Vec<usize>>,
    /// First moments, one per parameter.
    m: Vec<Vec<f32>>,
    /// Second moments, one per parameter.
    v: Vec<Vec<f32>>,
}

impl Adam {
    /// A fresh optimiser (step 0, zero moments) for `params`, in that order.
    pub fn new(cfg: AdamConfig, params: &[&Param]) -> Result<Self, EngineError> {
        cfg.validate()?;
        Ok(Adam {
            cfg,
            step: 0,
            names: params.iter().map(|p| p.name.clone()).collect(),
            shapes: params.iter().map(|p| p.shape.clone()).collect(),
            m: params.iter().map(|p| vec![0.0; p.numel()]).collect(),
            v: params.iter().map(|p| vec![0.0; p.numel()]).collect(),
        })
    }

    /// The current learning rate.
    pub fn lr(&self) -> f64 {
        self.cfg.lr
    }

    /// Sets the learning rate for the following steps (e.g. ×0.1 at the decay epoch).
    pub fn set_lr(&mut self, lr: f64) -> Result<(), EngineError> {
        AdamConfig { lr, ..self.cfg }.validate()?;
        self.cfg.lr = lr;
        Ok(())
    }

    /// The hyper-parameters.
    pub fn config(&self) -> AdamConfig {
        self.cfg
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.step
    }

    fn check_params(&self, names: &[&str], shapes: &[&[usize]]) -> Result<(), EngineError> {
        if names.len() != self.names.len() {
            return Err(EngineError::ParamCount {
                expected: self.names.len(),
                got: names.len(),
            });
        }
        for (index, ((n, s), (en, es))) in names
            .iter()
            .zip(shapes)
            .zip(self.names.iter().zip(&self.shapes))
            .enumerate()
        {
            if n != en || s != es {
                return Err(EngineError::ParamMismatch {
                    index,
                    expected: en.clone(),
                    expected_shape: es.clone(),
                    got: n.to_string(),
                    got_shape: s.to_vec(),
                });
            }
        }
        Ok(())
    }

    /// One optimisation step on `params` (same names, shapes and order as at
    /// construction) using their current `grad`. Gradients are left as they are.
    pub fn step(&mut self, params: &mut [&mut Param], par: Par) -> Result<(), EngineError> {
        let names: Vec<&str> = params.iter().map(|p| p.name.as_str()).collect();
        let shapes: Vec<&[usize]> = params.iter().map(|p| p.shape.as_slice()).collect();
        self.check_params(&names, &shapes)?;
        self.step += 1;
        let c = self.cfg;
        let stepf = self.step as f64;
        let bc1 = 1.0 - c.beta1.powf(stepf);
        let bc2 = 1.0 - c.beta2.powf(stepf);
        let step_size = c.lr / bc1;
        let k = Coeffs {
            w1: (1.0 - c.beta1) as f32,
            b2: c.beta2 as f32,
            w2: (1.0 - c.beta2) as f32,
            bc2_sqrt: bc2.sqrt() as f32,
            eps: c.eps as f32,
            neg_step: (-step_size) as f32,
        };
        for ((p, m), v) in params.iter_mut().zip(&mut self.m).zip(&mut self.v) {
            let Param { value, grad, .. } = &mut **p;
            if par.is_parallel() && value.len() > CHUNK {
                value
                    .par_chunks_mut(CHUNK)
                    .zip(grad.par_chunks(CHUNK))
                    .zip(m.par_chunks_mut(CHUNK))
                    .zip(v.par_chunks_mut(CHUNK))
                    .for_each(|(((p, g), m), v)| k.update(p, g, m, v));
            } else {
                k.update(value, grad, m, v);
            }
        }
        Ok(())
    }

    /// The state as named tensors: `step` (a float32 scalar, as PyTorch keeps it)
    /// and `{param}.exp_avg`, `{param}.exp_avg_sq` for each parameter, in order.
    pub fn export_state(&self) -> Result<Vec<NamedTensor>, EngineError> {
        if self.step > MAX_STEP {
            return Err(EngineError::BadStep {
                name: STEP_NAME.into(),
                value: self.step as f64,
            });
        }
        let mut out = vec![NamedTensor {
            name: STEP_NAME.into(),
            shape: vec![],
            data: vec![self.step as f32],
        }];
        for ((n, s), (m, v)) in self
            .names
            .iter()
            .zip(&self.shapes)
            .zip(self.m.iter().zip(&self.v))
        {
            out.push(NamedTensor {
                name: format!("{n}.exp_avg"),
                shape: s.clone(),
                data: m.clone(),
            });
            out.push(NamedTensor {
                name: format!("{n}.exp_avg_sq"),
                shape: s.clone(),
                data: v.clone(),
            });
        }
        Ok(out)
    }

    /// Replaces the state with `tensors` (as written by [`Adam::export_state`]).
    /// Every expected tensor must be present with its parameter's shape, and
    /// nothing else; on error the optimiser is unchanged.
    pub fn import_state(&mut self, tensors: &[NamedTensor]) -> Result<(), EngineError> {
        let mut by_name: HashMap<&str, &NamedTensor> = HashMap::new();
        for t in tensors {
            // Shapes come from a file: an overflowing product never equals the length.
            let expected = t
                .shape
                .iter()
                .try_fold(1usize, |a, &d| a.checked_mul(d))
                .unwrap_or(usize::MAX);
            if t.data.len() != expected {
                return Err(EngineError::TensorLen {
                    name: t.name.clone(),
                    shape: t.shape.clone(),
                    expected,
                    got: t.data.len(),
                });
            }
            by_name.insert(t.name.as_str(), t);
        }
        let take = |name: &str, shape: &[usize]| -> Result<Vec<f32>, EngineError> {
            let t = by_name
                .get(name)
                .ok_or_else(|| EngineError::StateMissing { name: name.into() })?;
            if t.shape != shape {
                return Err(EngineError::StateShape {
                    name: name.into(),
                    expected: shape.to_vec(),
                    got: t.shape.clone(),
                });
            }
            Ok(t.data.clone())
        };
        let step_f = take(STEP_NAME, &[])?[0] as f64;
        if !(step_f >= 0.0 && step_f.fract() == 0.0 && step_f <= MAX_STEP as f64) {
            return Err(EngineError::BadStep {
                name: STEP_NAME.into(),
                value: step_f,
            });
        }
        let mut m = Vec::with_capacity(self.names.len());
        let mut v = Vec::with_capacity(self.names.len());
        for (n, s) in self.names.iter().zip(&self.shapes) {
            m.push(take(&format!("{n}.exp_avg"), s)?);
            v.push(take(&format!("{n}.exp_avg_sq"), s)?);
        }
        if by_name.len() != 1 + 2 * self.names.len() {
            let known: std::collections::HashSet<String> = std::iter::once(STEP_NAME.to_string())
                .chain(
                    self.names
                        .iter()
                        .flat_map(|n| [format!("{n}.exp_avg"), format!("{n}.exp_avg_sq")]),
                )
                .collect();
            let extra = by_name
                .keys()
                .find(|k| !known.contains(**k))
                .copied()
                .unwrap_or("?");
            return Err(EngineError::StateUnexpected { name: extra.into() });
        }
        self.step = step_f as u64;
        self.m = m;
        self.v = v;
        Ok(())
    }
}

/// Per-step scalars, already rounded to f32 the way PyTorch rounds them.
#[derive(Clone, Copy)]
struct Coeffs {
    w1: f32,
    b2: f32,
    w2: f32,
    bc2_sqrt: f32,
    eps: f32,
    neg_step: f32,
}

impl Coeffs {
    #[inline]
    fn update(&self, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
        for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
            // torch lerp with weight < 0.5: fmadd(weight, end − start, start).
            *m = self.w1.mul_add(g - *m, *m);
            *v = *v * self.b2 + self.w2 * g * g;
            let denom = v.sqrt() / self.bc2_sqrt + self.eps;
            *p += self.neg_step * *m / denom;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::testutil::rand_vec;

    fn params() -> Vec<Param> {
        vec![
            Param::from_values("a.weight", &[3, 4], rand_vec(12, 1, 1.0)),
            Param::from_values("a.bias", &[3], rand_vec(3, 2, 1.0)),
        ]
    }

    /// Independent f64 transcription of Adam's textbook form for comparison.
    #[test]
    fn matches_textbook_adam_in_f64() {
        let mut ps = params();
        let cfg = AdamConfig {
            lr: 1e-2,
            ..Default::default()
        };
        let mut opt = Adam::new(cfg, &ps.iter().collect::<Vec<_>>()).unwrap();
        let mut p64: Vec<Vec<f64>> = ps
            .iter()
            .map(|p| p.value.iter().map(|&v| v as f64).collect())
            .collect();
        let mut m64: Vec<Vec<f64>> = ps.iter().map(|p| vec![0.0; p.numel()]).collect();
        let mut v64 = m64.clone();
        for step in 1..=3u64 {
            for (k, p) in ps.iter_mut().enumerate() {
                p.grad = rand_vec(p.numel(), 100 + 10 * step + k as u64, 1.0);
            }
            opt.step(&mut ps.iter_mut().collect::<Vec<_>>(), Par::Seq)
                .unwrap();
            for (k, p) in ps.iter().enumerate() {
                for i in 0..p.numel() {
                    let g = p.grad[i] as f64;
                    m64[k][i] = 0.9 * m64[k][i] + 0.1 * g;
                    v64[k][i] = 0.999 * v64[k][i] + 0.001 * g * g;
                    let mh = m64[k][i] / (1.0 - 0.9f64.powi(step as i32));
                    let vh = v64[k][i] / (1.0 - 0.999f64.powi(step as i32));
                    p64[k][i] -= 1e-2 * mh / (vh.sqrt() + 1e-8);
                    // f32 state vs f64 reference: a few ulps of the O(1) parameters.
                    assert!(
                        (p.value[i] as f64 - p64[k][i]).abs() < 1e-6,
                        "step {step} {}[{i}]",
                        p.name
                    );
                }
            }
        }
        assert_eq!(opt.steps(), 3);
    }

    #[test]
    fn state_round_trip_and_validation() {
        let mut ps = params();
        let refs: Vec<&Param> = ps.iter().collect();
        let mut opt = Adam::new(AdamConfig::default(), &refs).unwrap();
        ps[0].grad.fill(0.5);
        ps[1].grad.fill(-0.25);
        opt.step(&mut ps.iter_mut().collect::<Vec<_>>(), Par::Seq)
            .unwrap();
        let st = opt.export_state().unwrap();
        let names: Vec<&str> = st.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "step",
                "a.weight.exp_avg",
                "a.weight.exp_avg_sq",
                "a.bias.exp_avg",
                "a.bias.exp_avg_sq"
            ]
        );
        let mut fresh = Adam::new(AdamConfig::default(), &ps.iter().collect::<Vec<_>>()).unwrap();
        fresh.import_state(&st).unwrap();
        assert_eq!(fresh, opt);

        let mut missing = st.clone();
        missing.remove(2);
        assert!(matches!(
            fresh.import_state(&missing),
            Err(EngineError::StateMissing { .. })
        ));
        let mut extra = st.clone();
        extra.push(NamedTensor {
            name: "zzz".into(),
            shape: vec![1],
            data: vec![0.0],
        });
        let e = fresh.import_state(&extra).unwrap_err();
        assert!(e.to_string().contains("zzz"), "{e}");
        let mut badshape = st.clone();
        badshape[3].shape = vec![1, 3];
        assert!(matches!(
            fresh.import_state(&badshape),
            Err(EngineError::StateShape { .. })
        ));
        let mut badstep = st.clone();
        badstep[0].data[0] = 1.5;
        assert!(matches!(
            fresh.import_state(&badstep),
            Err(EngineError::BadStep { .. })
        ));
        assert_eq!(fresh, opt, "failed imports must leave the state unchanged");

        // The parameter list must match the one the optimiser was built for.
        let mut wrong = [ps[1].clone(), ps[0].clone()];
        let e = opt
            .step(&mut wrong.iter_mut().collect::<Vec<_>>(), Par::Seq)
            .unwrap_err();
        assert!(matches!(e, EngineError::ParamMismatch { index: 0, .. }));
        assert!(opt.set_lr(-1.0).is_err());
        opt.set_lr(2e-5).unwrap();
        assert_eq!(opt.lr(), 2e-5);
    }
}
