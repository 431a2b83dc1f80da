//! The contents of one branch's checkpoint (safetensors named as the PyTorch
//! `state_dict`), written
//! into a generation folder by [`crate::store`] (which makes a whole
//! cohort's save atomic and checksums every file):
//! - `model.safetensors`: every [`Param`] by its `state_dict` name (f32),
//! - `optim.safetensors`: the Adam state ([`Adam::export_state`]), absent for
//!   branches without an optimiser (the MSS EMA anchor),
//! - `state.json`: [`BranchState`] (epochs done, global step, best dev rSum, RNG).

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};

use crate::engine::adam::Adam;
use crate::engine::param::{Module, NamedTensor};
use crate::engine::rng::EngineRng;
use crate::model::weights;
use crate::store::{CheckpointError, Store, Tag, format_err, load_weights};

/// A ChaCha8 stream position: seed, stream and word position (serialisable).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RngState {
    /// The 32-byte key, hex.
    pub seed: String,
    /// Stream id.
    pub stream: u64,
    /// Word position (u128, decimal string: JSON numbers are f64).
    pub word_pos: String,
}

impl RngState {
    /// Captures `rng`'s exact position.
    pub fn capture(rng: &EngineRng) -> Self {
        RngState {
            seed: rng.get_seed().iter().map(|b| format!("{b:02x}")).collect(),
            stream: rng.get_stream(),
            word_pos: rng.get_word_pos().to_string(),
        }
    }

    /// Rebuilds the generator at the captured position.
    pub fn restore(&self) -> Result<EngineRng, String> {
        use rand::SeedableRng;
        if self.seed.len() != 64 {
            return Err(format!(
                "rng.seed: expected 64 hex digits, got {}",
                self.seed.len()
            ));
        }
        let mut key = [0u8; 32];
        for (i, k) in key.iter_mut().enumerate() {
            *k = u8::from_str_radix(&self.seed[2 * i..2 * i + 2], 16)
                .map_err(|e| format!("rng.seed: {e}"))?;
        }
        let pos: u128 = self
            .word_pos
            .parse()
            .map_err(|e| format!("rng.word_pos: {e}"))?;
        let mut rng = EngineRng::from_seed(key);
        rng.set_stream(self.stream);
        rng.set_word_pos(pos);
        Ok(rng)
    }
}

/// Training state of one branch at a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BranchState {
    /// Stage this state belongs to (1, or 2 for the OAS target).
    pub stage: u32,
    /// Epochs completed in that stage.
    pub epoch: usize,
    /// Optimisation steps taken in that stage.
    pub step: u64,
    /// Best dev rSum so far (−∞ before the first evaluation is stored as null).
    pub best_rsum: Option<f64>,
    /// Epoch (1-based) of the best dev rSum.
    pub best_epoch: Option<usize>,
    /// The branch's dropout RNG.
    pub rng: RngState,
}

/// The parameters as safetensors bytes (f32, names = `Param::name`).
fn tensors_bytes(
    tensors: &[(String, Vec<usize>, &[f32])],
    path: &Path,
) -> Result<Vec<u8>, CheckpointError> {
    let mut views = Vec::with_capacity(tensors.len());
    for (name, shape, data) in tensors {
        let bytes: &[u8] = bytemuck::cast_slice(data);
        let v = TensorView::new(Dtype::F32, shape.clone(), bytes)
            .map_err(|e| format_err(path, format!("tensor {name}: {e}")))?;
        views.push((name.clone(), v));
    }
    safetensors::tensor::serialize(views, None::<HashMap<String, String>>)
        .map_err(|e| format_err(path, e.to_string()))
}

fn read_tensors(path: &Path, bytes: &[u8]) -> Result<Vec<NamedTensor>, CheckpointError> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| format_err(path, e.to_string()))?;
    let mut out = Vec::new();
    for (name, view) in st.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(format_err(
                path,
                format!("tensor {name}: expected F32, got {:?}", view.dtype()),
            ));
        }
        let data: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        out.push(NamedTensor {
            name,
            shape: view.shape().to_vec(),
            data,
        });
    }
    Ok(out)
}

/// The files of one branch's checkpoint: `model.safetensors`,
/// `optim.safetensors` (when `opt` is given) and `state.json`.
pub fn encode_branch<M: Module>(
    model: &M,
    opt: Option<&Adam>,
    state: &BranchState,
) -> Result<Vec<(&'static str, Vec<u8>)>, CheckpointError> {
    let name = Path::new("model.safetensors");
    let mut files = vec![(
        "model.safetensors",
        weights::to_bytes(model).map_err(|e| format_err(name, e.to_string()))?,
    )];
    if let Some(opt) = opt {
        let opath = Path::new("optim.safetensors");
        let st = opt
            .export_state()
            .map_err(|e| format_err(opath, e.to_string()))?;
        let t: Vec<(String, Vec<usize>, &[f32])> = st
            .iter()
            .map(|t| (t.name.clone(), t.shape.clone(), t.data.as_slice()))
            .collect();
        files.push(("optim.safetensors", tensors_bytes(&t, opath)?));
    }
    let spath = Path::new("state.json");
    let json = serde_json::to_string_pretty(state).map_err(|e| format_err(spath, e.to_string()))?;
    files.push(("state.json", json.into_bytes()));
    Ok(files)
}

/// Loads branch `k`'s `tag` checkpoint from `store` (every file verified
/// against its checksum) into `model`, and into `opt` when given: → its state.
pub fn load_branch<M: Module>(
    store: &Store,
    k: usize,
    tag: Tag,
    model: &mut M,
    opt: Option<&mut Adam>,
) -> Result<BranchState, CheckpointError> {
    let (spath, sbytes) = store.read(k, tag, "state.json")?;
    let state: BranchState =
        serde_json::from_slice(&sbytes).map_err(|e| format_err(&spath, e.to_string()))?;
    load_weights(store, k, tag, model)?;
    if let Some(o) = opt {
        let (opath, obytes) = store.read(k, tag, "optim.safetensors")?;
        o.import_state(&read_tensors(&opath, &obytes)?)
            .map_err(|e| format_err(&opath, e.to_string()))?;
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::adam::AdamConfig;
    use crate::engine::gemm::Par;
    use crate::engine::rng::{seeded, unit_f32};
    use crate::store::BranchSave;
    use crate::train::test_model::TinyModel;

    #[test]
    fn round_trip_weights_optim_state_and_rng() {
        let tmp = tempfile::tempdir().unwrap();
        let mut rng = seeded(4);
        let mut m = TinyModel::new(6, 9, 5, 4, 0.2, &mut rng).unwrap();
        let mut opt = Adam::new(AdamConfig::default(), &m.params()).unwrap();
        for p in m.params_mut() {
            p.grad
                .iter_mut()
                .enumerate()
                .for_each(|(i, g)| *g = i as f32 * 0.01);
        }
        opt.step(&mut m.params_mut(), Par::Seq).unwrap();
        let _ = unit_f32(&mut rng);
        let state = BranchState {
            stage: 1,
            epoch: 3,
            step: 17,
            best_rsum: Some(123.5),
            best_epoch: Some(2),
            rng: RngState::capture(&rng),
        };
        let files = encode_branch(&m, Some(&opt), &state).unwrap();
        let mut store = Store::open(tmp.path()).unwrap();
        store
            .commit(
                &[BranchSave {
                    k: 0,
                    files,
                    best: false,
                }],
                &[],
            )
            .unwrap();

        let mut m2 = TinyModel::new(6, 9, 5, 4, 0.2, &mut seeded(99)).unwrap();
        assert_ne!(m2.params()[0].value, m.params()[0].value);
        let mut opt2 = Adam::new(AdamConfig::default(), &m2.params()).unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let s2 = load_branch(&store, 0, Tag::Last, &mut m2, Some(&mut opt2)).unwrap();
        for (a, b) in m.params().iter().zip(m2.params()) {
            assert_eq!(a.value, b.value, "{}", a.name);
        }
        assert_eq!(opt2, opt);
        assert_eq!(s2, state);
        let mut r2 = s2.rng.restore().unwrap();
        let a: Vec<u32> = (0..10).map(|_| rand::Rng::next_u32(&mut rng)).collect();
        let b: Vec<u32> = (0..10).map(|_| rand::Rng::next_u32(&mut r2)).collect();
        assert_eq!(a, b);

        // A model with other shapes is refused, naming the parameter.
        let mut other = TinyModel::new(7, 9, 5, 4, 0.2, &mut seeded(1)).unwrap();
        let e = load_weights(&store, 0, Tag::Last, &mut other).unwrap_err();
        assert!(e.to_string().contains("img_enc.fc.weight"), "{e}");
        // No best checkpoint was committed.
        let e = load_weights(&store, 0, Tag::Best, &mut other).unwrap_err();
        assert!(e.to_string().contains("no `best` checkpoint"), "{e}");
    }
}
