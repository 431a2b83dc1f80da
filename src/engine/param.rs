//! Trainable parameters: a named tensor with its gradient buffer (the
//! PyTorch `nn.Parameter` + `.grad` pair), the [`Module`] trait that lets a
//! model hand out its parameters in a fixed order, and the initialisers the
//! backbone uses (docs/method.md §5: Xavier-uniform for the linear layers, U(±a) for the
//! embedding and the GRU).

use rand::Rng;

use crate::engine::rng::symmetric_f32;

/// One trainable tensor and its accumulated gradient.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    /// The PyTorch `state_dict` name, e.g. `txt_enc.cap_rnn.weight_hh_l0`.
    pub name: String,
    /// Row-major shape, e.g. `[out, in]` for a linear weight.
    pub shape: Vec<usize>,
    /// The values, `shape.iter().product()` of them.
    pub value: Vec<f32>,
    /// The gradient, same length as `value`; layers add into it.
    pub grad: Vec<f32>,
}

impl Param {
    /// A zero-valued parameter with a zero gradient.
    pub fn zeros(name: impl Into<String>, shape: &[usize]) -> Self {
        let n = shape.iter().product();
        Param {
            name: name.into(),
            shape: shape.to_vec(),
            value: vec![0.0; n],
            grad: vec![0.0; n],
        }
    }

    /// A parameter holding `value` (panics if its length is not the shape's product).
    pub fn from_values(name: impl Into<String>, shape: &[usize], value: Vec<f32>) -> Self {
        let name = name.into();
        let n: usize = shape.iter().product();
        assert_eq!(
            value.len(),
            n,
            "parameter {name}: {} values for shape {shape:?}",
            value.len()
        );
        Param {
            name,
            shape: shape.to_vec(),
            grad: vec![0.0; n],
            value,
        }
    }

    /// Number of scalars.
    pub fn numel(&self) -> usize {
        self.value.len()
    }

    /// Sets the gradient to zero (PyTorch `zero_grad(set_to_none=False)`).
    pub fn zero_grad(&mut self) {
        self.grad.fill(0.0);
    }

    /// Fills the values with U(−a, a), drawn in row-major order.
    pub fn init_uniform<R: Rng + ?Sized>(&mut self, rng: &mut R, a: f32) {
        for v in &mut self.value {
            *v = symmetric_f32(rng, a);
        }
    }

    /// Xavier-uniform for a `[out, in]` weight: U(±√6/√(in+out)), the init the
    /// authors give every `nn.Linear` of the backbone (docs/method.md §5).
    pub fn init_xavier_uniform<R: Rng + ?Sized>(&mut self, rng: &mut R) {
        assert_eq!(
            self.shape.len(),
            2,
            "parameter {}: Xavier init needs a 2-d [out, in] weight, got shape {:?}",
            self.name,
            self.shape
        );
        let a = xavier_bound(self.shape[1], self.shape[0]);
        self.init_uniform(rng, a);
    }
}

/// A plain named tensor (no gradient): the unit of exported state, e.g. an
/// optimiser moment, ready to be written to a safetensors checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    /// Tensor name in the checkpoint.
    pub name: String,
    /// Row-major shape (`[]` for a scalar).
    pub shape: Vec<usize>,
    /// `shape.iter().product()` values (1 for a scalar).
    pub data: Vec<f32>,
}

/// The Xavier-uniform bound √6/√(fan_in + fan_out), computed in f64 and rounded once.
pub fn xavier_bound(fan_in: usize, fan_out: usize) -> f32 {
    (6.0f64.sqrt() / ((fan_in + fan_out) as f64).sqrt()) as f32
}

/// Anything with trainable parameters. Both methods list the parameters in
/// the same fixed order (the order of the PyTorch `state_dict`), which the
/// optimiser, clipping, EMA and checkpoints rely on.
pub trait Module {
    /// The parameters, in a fixed order.
    fn params(&self) -> Vec<&Param>;
    /// The parameters, mutably, in the same order as [`Module::params`].
    fn params_mut(&mut self) -> Vec<&mut Param>;

    /// Zeroes every parameter's gradient.
    fn zero_grad(&mut self) {
        for p in self.params_mut() {
            p.zero_grad();
        }
    }

    /// Total number of trainable scalars.
    fn num_params(&self) -> usize {
        self.params().iter().map(|p| p.numel()).sum()
    }

    /// State saved with the weights but never optimised, clipped or averaged
    /// (PyTorch's buffers: batch-norm running statistics), in a fixed order;
    /// their `grad` is unused. None by default.
    fn buffers(&self) -> Vec<&Param> {
        Vec::new()
    }

    /// The buffers, mutably, in the same order as [`Module::buffers`].
    fn buffers_mut(&mut self) -> Vec<&mut Param> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::rng::seeded;

    #[test]
    fn xavier_bounds_match_spec() {
        // docs/method.md §5: r = √6/√(2048+1024) ≈ 0.04419, W_t ≈ 0.06847, w_e ≈ 0.15279.
        assert!((xavier_bound(2048, 1024) - 0.04419).abs() < 5e-6);
        assert!((xavier_bound(1024, 256) - 0.06847).abs() < 5e-6);
        assert!((xavier_bound(256, 1) - 0.15279).abs() < 5e-6);
    }

    #[test]
    fn init_is_seeded_and_bounded() {
        let mut a = Param::zeros("w", &[30, 20]);
        let mut b = Param::zeros("w", &[30, 20]);
        a.init_xavier_uniform(&mut seeded(1));
        b.init_xavier_uniform(&mut seeded(1));
        assert_eq!(a.value, b.value);
        let r = xavier_bound(20, 30);
        assert!(a.value.iter().all(|v| v.abs() <= r));
        // Not degenerate: spread close to the U(±r) standard deviation r/√3.
        let sd = (a.value.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / 600.0).sqrt();
        assert!(
            (sd - r as f64 / 3f64.sqrt()).abs() < 0.1 * r as f64,
            "sd {sd}"
        );
        b.init_xavier_uniform(&mut seeded(2));
        assert_ne!(a.value, b.value);
    }

    #[test]
    fn module_zero_grad_and_count() {
        struct Two(Param, Param);
        impl Module for Two {
            fn params(&self) -> Vec<&Param> {
                vec![&self.0, &self.1]
            }
            fn params_mut(&mut self) -> Vec<&mut Param> {
                vec![&mut self.0, &mut self.1]
            }
        }
        let mut m = Two(Param::zeros("a", &[2, 3]), Param::zeros("b", &[4]));
        m.0.grad.fill(1.0);
        m.1.grad.fill(2.0);
        assert_eq!(m.num_params(), 10);
        m.zero_grad();
        assert!(m.params().iter().all(|p| p.grad.iter().all(|&g| g == 0.0)));
    }
}
