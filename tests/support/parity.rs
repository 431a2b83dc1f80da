//! Shared by the parity suites (tests/model_parity.rs, tests/cuda_parity.rs):
//! the error measure and the model sizes of the committed `*_small` fixtures.

use dbl::model::{Backbone, ModelConfig};

/// `max_i |a_i − b_i| / max_i |b_i|` in f64 (the absolute error when `b` is all zero).
pub fn rel(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0.0f64, |m, &x| m.max((x as f64).abs()));
    let err = a
        .iter()
        .zip(b)
        .fold(0.0f64, |m, (&x, &y)| m.max((x as f64 - y as f64).abs()));
    if scale == 0.0 { err } else { err / scale }
}

/// The sizes of the `*_small` fixtures (tools/reference/make_model_fixtures.py):
/// 64-d regions, d = 32, word dim 16, sim dim 16, V = 50.
pub fn small_cfg(backbone: Backbone) -> ModelConfig {
    ModelConfig {
        img_dim: 64,
        embed: 32,
        word_dim: 16,
        sim_dim: 16,
        ..ModelConfig::new(backbone, 50)
    }
}
