//! Safetensors bytes loaded into a small model: loaded (every tensor present
//! with its shape, finite) or refused with the model unchanged.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Path;
use std::sync::OnceLock;

use dbl::model::{Backbone, Model, ModelConfig, weights};

fn model() -> &'static Model {
    static M: OnceLock<Model> = OnceLock::new();
    M.get_or_init(|| {
        let cfg = ModelConfig {
            embed: 4,
            word_dim: 3,
            sim_dim: 2,
            img_dim: 3,
            ..ModelConfig::new(Backbone::Vse, 6)
        };
        Model::new(&cfg, 1).expect("tiny model")
    })
}

fuzz_target!(|data: &[u8]| {
    let mut m = model().clone();
    match weights::load_bytes(&mut m, data, Path::new("fuzz.safetensors")) {
        Ok(()) => {}
        Err(_) => assert!(m == *model(), "a refused file must leave the model unchanged"),
    }
});
