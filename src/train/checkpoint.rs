//! Checkpoints (design.md decision 5): one folder per branch and tag,
//! `RUN/branch{k}/{best,last}/` holding
//! - `model.safetensors`: every [`Param`] by its `state_dict` name (f32),
//! - `optim.safetensors`: the Adam state ([`Adam::export_state`]), absent for
//!   branches without an optimiser (the MSS EMA anchor),
//! - `state.json`: [`BranchState`] (epochs done, global step, best dev rSum, RNG).
//!
//! Crash safety: a checkpoint is written into a fresh temp folder beside the
//! target, every file and the folder are fsynced, then the old folder is
//! renamed to `{tag}.old`, the temp folder to `{tag}`, and `{tag}.old` removed.
//! At every instant either `{tag}` or `{tag}.old` is a complete checkpoint;
//! [`resolve`] picks the one that exists. The env var `DBL_TEST_ABORT_SAVE`
//! (`mid-write` | `between-renames`) aborts the process at that point, for
//! the crash tests.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};

use crate::engine::adam::Adam;
use crate::engine::param::{Module, NamedTensor};
use crate::engine::rng::EngineRng;
use crate::model::weights;

/// Everything that can go wrong reading or writing a checkpoint.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Format { path: PathBuf, message: String },
    #[error(transparent)]
    Weights(#[from] weights::WeightsError),
    #[error("no checkpoint at {path} (neither it nor {path}.old exists)")]
    Missing { path: PathBuf },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn format_err(path: &Path, message: impl Into<String>) -> CheckpointError {
    CheckpointError::Format {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

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

fn read_tensors(path: &Path) -> Result<Vec<NamedTensor>, CheckpointError> {
    let bytes = fs::read(path).map_err(io(path))?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| format_err(path, e.to_string()))?;
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

/// Loads `model.safetensors` into `model` (see [`crate::model::weights::load`]:
/// every parameter present with its shape, no extra tensors).
pub fn load_weights<M: Module>(model: &mut M, path: &Path) -> Result<(), CheckpointError> {
    Ok(weights::load(model, path)?)
}

/// Reads `optim.safetensors` into `opt`.
pub fn load_optim(opt: &mut Adam, path: &Path) -> Result<(), CheckpointError> {
    let tensors = read_tensors(path)?;
    opt.import_state(&tensors)
        .map_err(|e| format_err(path, e.to_string()))
}

/// Reads `state.json`.
pub fn load_state(path: &Path) -> Result<BranchState, CheckpointError> {
    let text = fs::read_to_string(path).map_err(io(path))?;
    serde_json::from_str(&text).map_err(|e| format_err(path, e.to_string()))
}

/// The complete checkpoint folder for `dir` (= `branch{k}/{tag}`): `dir`
/// itself, or `dir.old` if a save was interrupted between its renames.
pub fn resolve(dir: &Path) -> Result<PathBuf, CheckpointError> {
    if dir.join("state.json").is_file() {
        return Ok(dir.to_path_buf());
    }
    let old = old_path(dir);
    if old.join("state.json").is_file() {
        return Ok(old);
    }
    Err(CheckpointError::Missing {
        path: dir.to_path_buf(),
    })
}

fn old_path(dir: &Path) -> PathBuf {
    let mut s = dir.as_os_str().to_owned();
    s.push(".old");
    PathBuf::from(s)
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    let mut f = File::create(path).map_err(io(path))?;
    f.write_all(bytes).map_err(io(path))?;
    f.sync_all().map_err(io(path))
}

fn sync_dir(path: &Path) -> Result<(), CheckpointError> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(io(path))
}

fn abort_point(point: &str) {
    if std::env::var("DBL_TEST_ABORT_SAVE").is_ok_and(|v| v == point) {
        eprintln!("DBL_TEST_ABORT_SAVE={point}: aborting");
        std::process::abort();
    }
}

/// Writes a complete checkpoint of one branch into `dir` atomically (see the module doc).
pub fn save<M: Module>(
    dir: &Path,
    model: &M,
    opt: Option<&Adam>,
    state: &BranchState,
) -> Result<(), CheckpointError> {
    let parent = dir
        .parent()
        .ok_or_else(|| format_err(dir, "checkpoint folder has no parent"))?;
    fs::create_dir_all(parent).map_err(io(parent))?;
    let name = dir
        .file_name()
        .ok_or_else(|| format_err(dir, "checkpoint folder has no name"))?
        .to_string_lossy()
        .into_owned();
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
    }
    fs::create_dir(&tmp).map_err(io(&tmp))?;

    let mpath = tmp.join("model.safetensors");
    let bytes = weights::to_bytes(model).map_err(|e| format_err(&mpath, e.to_string()))?;
    write_synced(&mpath, &bytes)?;
    abort_point("mid-write");
    if let Some(opt) = opt {
        let st = opt
            .export_state()
            .map_err(|e| format_err(dir, e.to_string()))?;
        let t: Vec<(String, Vec<usize>, &[f32])> = st
            .iter()
            .map(|t| (t.name.clone(), t.shape.clone(), t.data.as_slice()))
            .collect();
        let opath = tmp.join("optim.safetensors");
        write_synced(&opath, &tensors_bytes(&t, &opath)?)?;
    }
    let spath = tmp.join("state.json");
    let json =
        serde_json::to_string_pretty(state).map_err(|e| format_err(&spath, e.to_string()))?;
    write_synced(&spath, json.as_bytes())?;
    sync_dir(&tmp)?;

    let old = old_path(dir);
    if old.exists() {
        fs::remove_dir_all(&old).map_err(io(&old))?;
    }
    if dir.exists() {
        fs::rename(dir, &old).map_err(io(dir))?;
        sync_dir(parent)?;
    }
    abort_point("between-renames");
    fs::rename(&tmp, dir).map_err(io(&tmp))?;
    sync_dir(parent)?;
    if old.exists() {
        fs::remove_dir_all(&old).map_err(io(&old))?;
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically (temp file, fsync, rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    let parent = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(io(parent))?;
    let tmp = parent.join(format!(
        ".{}.tmp-{}",
        path.file_name()
            .map(|s| s.to_string_lossy())
            .unwrap_or_default(),
        std::process::id()
    ));
    write_synced(&tmp, bytes)?;
    fs::rename(&tmp, path).map_err(io(path))?;
    sync_dir(parent)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::adam::AdamConfig;
    use crate::engine::gemm::Par;
    use crate::engine::rng::{seeded, unit_f32};
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
        let dir = tmp.path().join("branch0/last");
        save(&dir, &m, Some(&opt), &state).unwrap();
        // A second save replaces the first and leaves no temp folders behind.
        save(&dir, &m, Some(&opt), &state).unwrap();
        let names: Vec<_> = fs::read_dir(tmp.path().join("branch0"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("last")]);

        let mut m2 = TinyModel::new(6, 9, 5, 4, 0.2, &mut seeded(99)).unwrap();
        assert_ne!(m2.params()[0].value, m.params()[0].value);
        load_weights(&mut m2, &dir.join("model.safetensors")).unwrap();
        for (a, b) in m.params().iter().zip(m2.params()) {
            assert_eq!(a.value, b.value, "{}", a.name);
        }
        let mut opt2 = Adam::new(AdamConfig::default(), &m2.params()).unwrap();
        load_optim(&mut opt2, &dir.join("optim.safetensors")).unwrap();
        assert_eq!(opt2, opt);
        let s2 = load_state(&dir.join("state.json")).unwrap();
        assert_eq!(s2, state);
        let mut r2 = s2.rng.restore().unwrap();
        let a: Vec<u32> = (0..10).map(|_| rand::Rng::next_u32(&mut rng)).collect();
        let b: Vec<u32> = (0..10).map(|_| rand::Rng::next_u32(&mut r2)).collect();
        assert_eq!(a, b);

        // A model with other shapes is refused, naming the parameter.
        let mut other = TinyModel::new(7, 9, 5, 4, 0.2, &mut seeded(1)).unwrap();
        let e = load_weights(&mut other, &dir.join("model.safetensors")).unwrap_err();
        assert!(e.to_string().contains("img_enc.fc.weight"), "{e}");
    }

    #[test]
    fn resolve_falls_back_to_old() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("best");
        assert!(matches!(
            resolve(&dir),
            Err(CheckpointError::Missing { .. })
        ));
        let old = old_path(&dir);
        fs::create_dir_all(&old).unwrap();
        fs::write(old.join("state.json"), "{}").unwrap();
        assert_eq!(resolve(&dir).unwrap(), old);
    }
}
