//! The explicit training engine (no general DL framework): parameters with
//! gradient buffers, a GEMM wrapper over `faer`, layers with hand-written
//! `forward`/`backward` (no autograd), and the optimiser-side pieces (Adam,
//! gradient clipping, EMA).
//!
//! Conventions shared by every layer:
//! - f32 everywhere, row-major contiguous slices; shapes are given in the doc
//!   comments (`/// x: [n, in]`).
//! - `forward` returns (or writes) the output plus whatever `backward` needs
//!   that the caller does not already hold; `backward` takes the upstream
//!   gradient, returns (or writes) the input gradient and **accumulates**
//!   parameter gradients into [`param::Param::grad`] (PyTorch's `.grad +=`).
//! - Shape contracts between layers are programming errors and panic with a
//!   message naming the layer and the shapes; errors from user-supplied data
//!   (optimiser state from a checkpoint, configs) are [`error::EngineError`].
//! - Deterministic: given the same inputs, seed and [`gemm::Par`], every
//!   forward and backward is bitwise reproducible.

pub mod activation;
pub mod adam;
pub mod amx;
pub mod batchnorm;
pub mod batchnorm_train;
pub mod bf16;
pub mod clip;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod device;
pub mod dropout;
pub mod ema;
pub mod embedding;
pub mod error;
pub mod fastmath;
pub mod gemm;
pub mod gru;
pub mod l2norm;
pub mod linear;
pub mod param;
pub mod reduce;
pub mod rng;
pub mod simd;

#[cfg(test)]
pub(crate) mod testutil;

#[cfg(test)]
mod tests {
    //! Determinism (a project convention): the same seed and thread count give
    //! bitwise-identical forward and backward passes and optimiser steps.

    use super::adam::{Adam, AdamConfig};
    use super::dropout::Dropout;
    use super::embedding::Embedding;
    use super::gemm::Par;
    use super::gru::BiGru;
    use super::l2norm;
    use super::linear::Linear;
    use super::param::Module;
    use super::rng::seeded;
    use super::testutil::rand_vec;

    /// Embedding → dropout → Bi-GRU → L2norm → Linear, forward + backward + Adam,
    /// all from `seed`; returns every output, gradient and updated value, flattened.
    fn run(seed: u64, par: Par) -> Vec<f32> {
        let (v, e, h, b, l) = (50, 24, 600, 8, 7);
        let mut rng = seeded(seed);
        let mut emb = Embedding::uniform("embed", v, e, 0.1, &mut rng);
        let mut gru = BiGru::uniform("rnn", e, h, &mut rng);
        let mut fc = Linear::xavier("fc", h, 5, true, &mut rng);
        let lengths = [7usize, 7, 6, 4, 4, 3, 2, 1];
        let ids: Vec<u32> = (0..b * l).map(|i| ((i * 7 + 3) % v) as u32).collect();
        let mut x = emb.forward(&ids);
        let mask = Dropout::new(0.4).unwrap().forward(&mut x, true, &mut rng);
        let (mut y, cache) = gru.forward(&x, &lengths, l, par);
        let norms = l2norm::forward(&mut y, h);
        let z = fc.forward(&y, par);
        let c = rand_vec(z.len(), seed + 1, 1.0);
        let mut dy = vec![0.0; y.len()];
        fc.backward(&y, &c, Some(&mut dy), par);
        l2norm::backward(&y, &norms, &mut dy, h);
        for (bb, &len) in lengths.iter().enumerate() {
            dy[(bb * l + len) * h..(bb + 1) * l * h].fill(0.0);
        }
        let mut dx = gru.backward(&cache, &dy, par);
        mask.backward(&mut dx);
        emb.backward(&ids, &dx);
        let mut out = z.clone();
        out.extend_from_slice(&dx);
        for m in [&mut emb as &mut dyn Module, &mut gru, &mut fc] {
            let ps: Vec<_> = m.params().into_iter().cloned().collect();
            let mut opt = Adam::new(AdamConfig::default(), &ps.iter().collect::<Vec<_>>()).unwrap();
            opt.step(&mut m.params_mut(), par).unwrap();
            for p in m.params() {
                out.extend_from_slice(&p.grad);
                out.extend_from_slice(&p.value);
            }
        }
        out
    }

    #[test]
    fn same_seed_and_threads_is_bitwise_identical() {
        for par in [Par::Seq, Par::Rayon(2)] {
            let a = run(11, par);
            let b = run(11, par);
            assert_eq!(a.len(), b.len());
            assert!(
                a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()),
                "{par:?}: two runs with the same seed differ"
            );
            assert!(a.iter().all(|v| v.is_finite()));
        }
        let c = run(12, Par::Seq);
        assert_ne!(run(11, Par::Seq), c, "a different seed must change the run");
    }
}
