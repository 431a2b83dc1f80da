//! VSE∞'s region MLP (`precomp_enc_type basic`, docs/method.md §13.7):
//! `img_enc.mlp`, added to the image FC's output before pooling. On every
//! region x (img_dim): `Linear(img_dim → h)` (`layers.0`), `BatchNorm1d(h)`
//! (`bns.0`), ReLU, `Linear(h → d)` (`layers.1`), with h = d/2. VSE∞'s MLP
//! also builds `bns.1` = `BatchNorm1d(d)` for its last layer but never
//! applies it; it is kept here (its parameters and running statistics are in
//! the released checkpoints and in the parameter count) and receives no
//! gradient. The batch norm is PyTorch's in training mode (batch statistics
//! over every region of the batch, running statistics updated) and uses its
//! running statistics in eval mode ([`crate::engine::batchnorm_train`]).
//!
//! Parameters at img_dim 2048, d 1024: 2048·512 + 512 + 512·1024 + 1024 +
//! 2·512 + 2·1024 = 1,577,472. PyTorch: `RegionMlp` in
//! `tools/reference/dbl_ref/models.py`.

use rand::Rng;

use crate::engine::activation::{leaky_relu_backward, leaky_relu_forward};
use crate::engine::batchnorm::BatchNorm;
use crate::engine::batchnorm_train::{self, BatchStats, RunningStats};
use crate::engine::gemm::Par;
use crate::engine::linear::Linear;
use crate::engine::param::{Module, Param};

/// `img_enc.mlp`: `MLP(img_dim, d/2, d, 2)` of VSE∞.
#[derive(Debug, Clone, PartialEq)]
pub struct RegionMlp {
    /// `layers.0` [h, img_dim] and `layers.1` [d, h].
    pub layers: [Linear; 2],
    /// `bns.0` (applied, [h]) and `bns.1` (never applied, [d]).
    pub bns: [BatchNorm; 2],
    /// Their running statistics.
    pub running: [RunningStats; 2],
}

/// What [`RegionMlp::backward`] needs.
#[derive(Debug, Clone)]
pub struct RegionMlpCache {
    /// `layers.0`'s output, the batch norm's input. [N, h]
    pre_bn: Vec<f32>,
    /// The batch statistics (training mode only).
    stats: Option<BatchStats>,
    /// After batch norm and ReLU: `layers.1`'s input. [N, h]
    hidden: Vec<f32>,
}

impl RegionMlp {
    /// PyTorch's default inits, as VSE∞ leaves them: each linear's weight and
    /// bias U(±1/√in); batch norms γ = 1, β = 0, running mean 0, variance 1.
    pub fn new<R: Rng + ?Sized>(img_dim: usize, embed: usize, rng: &mut R) -> Self {
        let hidden = embed / 2;
        let layer = |i: usize, n_in: usize, n_out: usize, rng: &mut R| {
            let mut l = Linear::new(&format!("img_enc.mlp.layers.{i}"), n_in, n_out, true);
            let a = 1.0 / (n_in as f32).sqrt();
            l.weight.init_uniform(rng, a);
            if let Some(b) = &mut l.bias {
                b.init_uniform(rng, a);
            }
            l
        };
        let l0 = layer(0, img_dim, hidden, rng);
        let l1 = layer(1, hidden, embed, rng);
        let (p0, p1) = ("img_enc.mlp.bns.0", "img_enc.mlp.bns.1");
        RegionMlp {
            layers: [l0, l1],
            bns: [BatchNorm::new(p0, hidden), BatchNorm::new(p1, embed)],
            running: [RunningStats::new(p0, hidden), RunningStats::new(p1, embed)],
        }
    }

    /// x: [N, img_dim] (every region of the batch) → ([N, d], cache).
    /// `train`: the batch norm normalises with the batch's statistics.
    pub fn forward(&self, x: &[f32], train: bool, par: Par) -> (Vec<f32>, RegionMlpCache) {
        let pre_bn = self.layers[0].forward(x, par);
        let mut hidden = pre_bn.clone();
        let stats = batchnorm_train::forward(&self.bns[0], &self.running[0], &mut hidden, 1, train);
        leaky_relu_forward(&mut hidden, 0.0);
        let y = self.layers[1].forward(&hidden, par);
        (
            y,
            RegionMlpCache {
                pre_bn,
                stats,
                hidden,
            },
        )
    }

    /// Accumulates the gradients of `dy`: [N, d] (the input x: [N,
    /// img_dim] is data: no input gradient); a training-mode pass also takes
    /// the running statistics' step toward its batch statistics.
    pub fn backward(&mut self, x: &[f32], cache: RegionMlpCache, dy: &[f32], par: Par) {
        let mut dh = vec![0.0f32; cache.hidden.len()];
        self.layers[1].backward(&cache.hidden, dy, Some(&mut dh), par);
        leaky_relu_backward(&cache.hidden, &mut dh, 0.0);
        let [bn, _] = &mut self.bns;
        let [running, _] = &mut self.running;
        batchnorm_train::backward(bn, running, &cache.pre_bn, cache.stats.as_ref(), &mut dh, 1);
        self.layers[0].backward(x, &dh, None, par);
    }
}

impl Module for RegionMlp {
    fn params(&self) -> Vec<&Param> {
        let mut v = self.layers[0].params();
        v.extend(self.layers[1].params());
        v.extend(self.bns.iter().flat_map(|b| b.params()));
        v
    }
    fn params_mut(&mut self) -> Vec<&mut Param> {
        let [l0, l1] = &mut self.layers;
        let mut v = l0.params_mut();
        v.extend(l1.params_mut());
        v.extend(self.bns.iter_mut().flat_map(|b| b.params_mut()));
        v
    }
    fn buffers(&self) -> Vec<&Param> {
        self.running
            .iter()
            .flat_map(|r| [&r.mean, &r.var])
            .collect()
    }
    fn buffers_mut(&mut self) -> Vec<&mut Param> {
        self.running
            .iter_mut()
            .flat_map(|r| [&mut r.mean, &mut r.var])
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::rng::seeded;

    /// docs/method.md §13.7: 1,577,472 parameters at img_dim 2048, d 1024,
    /// named as VSE∞'s state_dict.
    #[test]
    fn parameter_count_and_names_are_vse_infty_s() {
        let m = RegionMlp::new(2048, 1024, &mut seeded(0));
        assert_eq!(m.num_params(), 1_577_472);
        let names: Vec<&str> = m.params().iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "img_enc.mlp.layers.0.weight",
                "img_enc.mlp.layers.0.bias",
                "img_enc.mlp.layers.1.weight",
                "img_enc.mlp.layers.1.bias",
                "img_enc.mlp.bns.0.weight",
                "img_enc.mlp.bns.0.bias",
                "img_enc.mlp.bns.1.weight",
                "img_enc.mlp.bns.1.bias",
            ]
        );
        let buffers: Vec<&str> = m.buffers().iter().map(|p| p.name.as_str()).collect();
        assert_eq!(buffers[0], "img_enc.mlp.bns.0.running_mean");
        assert_eq!(buffers.len(), 4);
    }
}
