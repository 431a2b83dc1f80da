//! Model weights as safetensors (weights move between dbl and PyTorch): one
//! f32 tensor per parameter
//! and per buffer (batch-norm running statistics), named by its PyTorch
//! `state_dict` name. Loading checks that the file holds exactly the model's
//! tensors, each with the model's shape (a buffer may be absent: files written
//! before the model kept it; it then keeps its initial value); saving writes a
//! temporary file next to the target and renames it (atomic).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use thiserror::Error;

use crate::engine::param::Module;
use crate::model::config::{Backbone, ModelConfig};

/// Failure to read or write a weights file.
#[derive(Debug, Error)]
pub enum WeightsError {
    /// File system error.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Not a safetensors file.
    #[error("{path}: not a valid safetensors file: {source}")]
    Format {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: safetensors::SafeTensorError,
    },
    /// A tensor the model needs is absent.
    #[error("{path}: tensor `{name}` (shape {shape:?}) is missing")]
    Missing {
        /// The file.
        path: PathBuf,
        /// Parameter name.
        name: String,
        /// Expected shape.
        shape: Vec<usize>,
    },
    /// A tensor the model does not have.
    #[error("{path}: unexpected tensor `{name}` (the model has no such parameter)")]
    Unknown {
        /// The file.
        path: PathBuf,
        /// Tensor name.
        name: String,
    },
    /// Shape differs.
    #[error("{path}: tensor `{name}` has shape {got:?}, the model expects {expected:?}")]
    Shape {
        /// The file.
        path: PathBuf,
        /// Tensor name.
        name: String,
        /// In the file.
        got: Vec<usize>,
        /// In the model.
        expected: Vec<usize>,
    },
    /// Not float32.
    #[error("{path}: tensor `{name}` is {dtype:?}, expected F32")]
    Dtype {
        /// The file.
        path: PathBuf,
        /// Tensor name.
        name: String,
        /// In the file.
        dtype: Dtype,
    },
    /// A loaded value is NaN or infinite.
    #[error("{path}: tensor `{name}` holds a non-finite value at flat index {index}")]
    NonFinite {
        /// The file.
        path: PathBuf,
        /// Tensor name.
        name: String,
        /// Flat index of the first bad value.
        index: usize,
    },
}

/// Serialises every parameter's and buffer's value (state_dict names, f32, little-endian).
pub fn to_bytes<M: Module + ?Sized>(model: &M) -> Result<Vec<u8>, safetensors::SafeTensorError> {
    let mut params = model.params();
    params.extend(model.buffers());
    let bytes: Vec<Vec<u8>> = params
        .iter()
        .map(|p| p.value.iter().flat_map(|v| v.to_le_bytes()).collect())
        .collect();
    let views = params
        .iter()
        .zip(&bytes)
        .map(|(p, b)| {
            Ok((
                p.name.clone(),
                TensorView::new(Dtype::F32, p.shape.clone(), b)?,
            ))
        })
        .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()?;
    safetensors::serialize(views, None)
}

/// Writes the model's weights to `path` atomically.
pub fn save<M: Module + ?Sized>(model: &M, path: &Path) -> Result<(), WeightsError> {
    let bytes = to_bytes(model).map_err(|source| WeightsError::Format {
        path: path.to_path_buf(),
        source,
    })?;
    let io = |source| WeightsError::Io {
        path: path.to_path_buf(),
        source,
    };
    let name = path
        .file_name()
        .map_or_else(|| "weights".into(), |n| n.to_string_lossy().into_owned());
    let tmp = path.with_file_name(format!(".{name}.tmp{}", std::process::id()));
    std::fs::write(&tmp, &bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io(e)
    })
}

/// Loads `path` into the model's parameters (gradients untouched). The file
/// must hold exactly the model's tensors with the model's shapes; on error
/// the model is left unchanged.
pub fn load<M: Module + ?Sized>(model: &mut M, path: &Path) -> Result<(), WeightsError> {
    let bytes = std::fs::read(path).map_err(|source| WeightsError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    load_bytes(model, &bytes, path)
}

/// [`load`] from bytes already in memory; `path` only names the source in errors.
pub fn load_bytes<M: Module + ?Sized>(
    model: &mut M,
    bytes: &[u8],
    path: &Path,
) -> Result<(), WeightsError> {
    let p = || path.to_path_buf();
    let st = SafeTensors::deserialize(bytes)
        .map_err(|source| WeightsError::Format { path: p(), source })?;
    let wanted: HashSet<String> = model
        .params()
        .iter()
        .chain(&model.buffers())
        .map(|p| p.name.clone())
        .collect();
    let mut names = st.names();
    names.sort();
    if let Some(n) = names.iter().find(|n| !wanted.contains(**n)) {
        return Err(WeightsError::Unknown {
            path: p(),
            name: n.to_string(),
        });
    }
    let mut values = Vec::new();
    let n_params = model.params().len();
    for (i, param) in model
        .params()
        .into_iter()
        .chain(model.buffers())
        .enumerate()
    {
        let Ok(t) = st.tensor(&param.name) else {
            if i >= n_params {
                // A buffer the file lacks (written before the model kept it)
                // keeps its initial value.
                values.push(None);
                continue;
            }
            return Err(WeightsError::Missing {
                path: p(),
                name: param.name.clone(),
                shape: param.shape.clone(),
            });
        };
        if t.dtype() != Dtype::F32 {
            return Err(WeightsError::Dtype {
                path: p(),
                name: param.name.clone(),
                dtype: t.dtype(),
            });
        }
        if t.shape() != param.shape.as_slice() {
            return Err(WeightsError::Shape {
                path: p(),
                name: param.name.clone(),
                got: t.shape().to_vec(),
                expected: param.shape.clone(),
            });
        }
        let v: Vec<f32> = t
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        if let Some(index) = v.iter().position(|x| !x.is_finite()) {
            return Err(WeightsError::NonFinite {
                path: p(),
                name: param.name.clone(),
                index,
            });
        }
        values.push(Some(v));
    }
    let mut values = values.into_iter();
    for (param, v) in model.params_mut().into_iter().zip(values.by_ref()) {
        param.value = v.expect("every parameter was read");
    }
    for (buffer, v) in model.buffers_mut().into_iter().zip(values) {
        if let Some(v) = v {
            buffer.value = v;
        }
    }
    Ok(())
}

/// The names and shapes of a weights file's tensors: what a backbone's
/// `from_tensors` reads to recognise its own weights and their sizes
/// (`crate::model::registry::detect`).
#[derive(Debug, Clone, Default)]
pub struct TensorShapes {
    shapes: std::collections::BTreeMap<String, Vec<usize>>,
}

impl TensorShapes {
    /// The shapes of every tensor in a safetensors file.
    pub fn of(st: &SafeTensors<'_>) -> Self {
        let shapes = st
            .names()
            .into_iter()
            .filter_map(|n| Some((n.to_owned(), st.tensor(n).ok()?.shape().to_vec())))
            .collect();
        TensorShapes { shapes }
    }

    /// Whether tensor `name` is present.
    pub fn has(&self, name: &str) -> bool {
        self.shapes.contains_key(name)
    }

    /// Whether some tensor's name starts with `prefix`.
    pub fn has_prefix(&self, prefix: &str) -> bool {
        self.shapes.keys().any(|n| n.starts_with(prefix))
    }

    /// Dimension `axis` of tensor `name`, or what is missing.
    pub fn dim(&self, name: &str, axis: usize) -> Result<usize, String> {
        let s = self
            .shapes
            .get(name)
            .ok_or_else(|| format!("no tensor `{name}`"))?;
        s.get(axis).copied().ok_or_else(|| {
            format!(
                "tensor `{name}` has shape {s:?}, expected ≥ {} dims",
                axis + 1
            )
        })
    }

    /// The sizes every backbone shares, from `img_enc.fc.weight` [d, D] and
    /// `txt_enc.embed.weight` [V, word dim], for `backbone`.
    pub fn encoder_config(&self, backbone: Backbone) -> Result<ModelConfig, String> {
        Ok(ModelConfig {
            embed: self.dim("img_enc.fc.weight", 0)?,
            img_dim: self.dim("img_enc.fc.weight", 1)?,
            word_dim: self.dim("txt_enc.embed.weight", 1)?,
            ..ModelConfig::new(backbone, self.dim("txt_enc.embed.weight", 0)?)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Backbone, Model, ModelConfig};

    fn tiny(backbone: Backbone, seed: u64) -> Model {
        let cfg = ModelConfig {
            embed: 6,
            word_dim: 4,
            sim_dim: 3,
            img_dim: 5,
            ..ModelConfig::new(backbone, 9)
        };
        Model::new(&cfg, seed).unwrap()
    }

    /// Hostile headers (a shape whose size overflows, offsets past the end,
    /// a header length past the file) are refused, never allocated or wrapped.
    #[test]
    fn hostile_safetensors_are_refused() {
        let header = |json: &str, extra: usize| {
            let mut b = (json.len() as u64).to_le_bytes().to_vec();
            b.extend_from_slice(json.as_bytes());
            b.extend(std::iter::repeat_n(0u8, extra));
            b
        };
        let mut m = tiny(Backbone::Vse, 1);
        let before = m.clone();
        for bytes in [
            header(
                r#"{"img_enc.fc.weight":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,0]}}"#,
                0,
            ),
            header(
                r#"{"img_enc.fc.weight":{"dtype":"F32","shape":[6,5],"data_offsets":[0,18446744073709551615]}}"#,
                0,
            ),
            {
                let mut b = u64::MAX.to_le_bytes().to_vec();
                b.extend_from_slice(b"{}");
                b
            },
        ] {
            let e = load_bytes(&mut m, &bytes, Path::new("h.safetensors")).unwrap_err();
            assert!(matches!(e, WeightsError::Format { .. }), "{e}");
            assert!(e.to_string().contains("h.safetensors"), "{e}");
        }
        assert_eq!(m, before);
    }

    /// Batch-norm running statistics (sgr's VisualSA) travel with the
    /// weights; a file without them (written before they were kept) loads
    /// with the initial statistics; a model without them refuses them.
    #[test]
    fn buffers_round_trip_and_may_be_absent() {
        let mut a = tiny(Backbone::Sgr, 1);
        assert_eq!(a.buffers().len(), 4);
        for b in a.buffers_mut() {
            b.value.iter_mut().for_each(|v| *v += 0.5);
        }
        let bytes = to_bytes(&a).unwrap();
        let mut c = tiny(Backbone::Sgr, 2);
        load_bytes(&mut c, &bytes, Path::new("w.safetensors")).unwrap();
        assert_eq!(a, c);
        // Parameters only: the buffers keep their initial values.
        let params = a.params();
        let data: Vec<Vec<u8>> = params
            .iter()
            .map(|p| p.value.iter().flat_map(|v| v.to_le_bytes()).collect())
            .collect();
        let views: Vec<(String, TensorView<'_>)> = params
            .iter()
            .zip(&data)
            .map(|(p, d)| {
                (
                    p.name.clone(),
                    TensorView::new(Dtype::F32, p.shape.clone(), d).unwrap(),
                )
            })
            .collect();
        let old = safetensors::serialize(views, None).unwrap();
        let mut d = tiny(Backbone::Sgr, 2);
        load_bytes(&mut d, &old, Path::new("old.safetensors")).unwrap();
        assert_eq!(d.params(), a.params());
        assert_eq!(d.buffers(), tiny(Backbone::Sgr, 3).buffers());
        // A model without those buffers refuses them, naming the tensor.
        let mut e = tiny(Backbone::Vse, 1);
        let err = load_bytes(&mut e, &bytes, Path::new("x.safetensors")).unwrap_err();
        assert!(err.to_string().contains("unexpected tensor"), "{err}");
    }

    #[test]
    fn round_trip_is_exact() {
        let dir = tempfile::tempdir().unwrap();
        for b in [Backbone::ScanAve, Backbone::Vse] {
            let a = tiny(b, 1);
            let path = dir.path().join("w.safetensors");
            save(&a, &path).unwrap();
            let mut c = tiny(b, 2);
            assert_ne!(a, c);
            load(&mut c, &path).unwrap();
            assert_eq!(a, c);
        }
    }

    #[test]
    fn mismatches_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.safetensors");
        save(&tiny(Backbone::ScanAve, 1), &path).unwrap();
        // scan-ave has sim_enc.* which vse lacks.
        let err = load(&mut tiny(Backbone::Vse, 1), &path)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unexpected tensor `sim_enc."), "{err}");
        // vse lacks sim_enc.*, which scan-ave needs.
        save(&tiny(Backbone::Vse, 1), &path).unwrap();
        let err = load(&mut tiny(Backbone::ScanAve, 1), &path)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`sim_enc.sim_tran_w.weight`") && err.contains("missing"),
            "{err}"
        );
        // Different embed size.
        let cfg = ModelConfig {
            embed: 7,
            word_dim: 4,
            sim_dim: 3,
            img_dim: 5,
            ..ModelConfig::new(Backbone::Vse, 9)
        };
        let err = load(&mut Model::new(&cfg, 0).unwrap(), &path)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`img_enc.fc.weight` has shape [6, 5], the model expects [7, 5]"),
            "{err}"
        );
    }
}
