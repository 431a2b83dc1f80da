//! `dbl.Model`: one branch checkpoint of a run (or a weights file) loaded
//! for inference ([`LoadedMatcher`]): encode region features and caption
//! texts, score blocks, score a split of the run's dataset as `dbl score`
//! does, export the weights by their PyTorch names.

use std::path::PathBuf;

use dbl::cli::score::ScoreSplit;
use dbl::data::precomp::{Precomp, Split};
use dbl::dist::Solo;
use dbl::engine::param::Param;
use dbl::eval::sharded::BlockSize;
use dbl::infer::LoadedMatcher;
use dbl::infer::run::RunDir;
use dbl::model::precision::HeadPrecision;
use dbl::model::split::{score_encoded, score_split_watched};
use numpy::PyArrayDyn;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::arrays::{F32In, f32_in, f32_out, i64_out};
use crate::convert::{choice, pool, to_py};
use crate::errors::{Failure, Kind, raise};
use crate::watch::run_watched;

/// `encode_captions`' answer: (rows `[n_rows, d]`, offsets `[n + 1]`, unknown words).
type EncodedCaptions<'py> = (
    Bound<'py, PyArrayDyn<f32>>,
    Bound<'py, numpy::PyArray1<i64>>,
    Bound<'py, PyList>,
);

/// Where a model came from.
#[derive(Debug)]
enum Source {
    /// Branch `branch`'s `tag` checkpoint of a run folder.
    Run {
        run: RunDir,
        branch: usize,
        tag: String,
    },
    /// A weights file with a vocabulary.
    Weights,
}

/// A trained matcher loaded for inference.
#[pyclass(module = "dbl._native", name = "Model", frozen)]
pub struct Model {
    inner: LoadedMatcher,
    source: Source,
    pool: rayon::ThreadPool,
    threads: usize,
}

fn check_tag(py: Python<'_>, tag: &str) -> PyResult<()> {
    if tag == "best" || tag == "last" {
        return Ok(());
    }
    Err(raise(
        py,
        Kind::BadInput,
        format!("tag: expected \"best\" or \"last\", got {tag:?}"),
    ))
}

/// Loads branch `branch` (default: the last, the DBL target) of the run in
/// `run`, checkpoint `tag`, with `threads` workers (default: the run's).
#[pyfunction]
#[pyo3(signature = (run, branch=None, tag="best", threads=None))]
pub fn load(
    py: Python<'_>,
    run: PathBuf,
    branch: Option<usize>,
    tag: &str,
    threads: Option<usize>,
) -> PyResult<Model> {
    check_tag(py, tag)?;
    let dir = RunDir::open(&run).map_err(|e| Failure::from(e).into_pyerr(py))?;
    let k = dir
        .branch(branch)
        .map_err(|e| Failure::from(e).into_pyerr(py))?;
    let threads = threads.unwrap_or(dir.threads);
    let pool = pool(py, threads)?;
    let inner = py
        .detach(|| LoadedMatcher::from_run(&run, Some(k), tag))
        .map_err(|e| Failure::from(e).into_pyerr(py))?;
    Ok(Model {
        inner,
        source: Source::Run {
            run: dir,
            branch: k,
            tag: tag.to_string(),
        },
        pool,
        threads,
    })
}

/// Loads a weights file (`.safetensors`, e.g. from `dbl import-torch`) with
/// its vocabulary; `model` is a run config's `model` table as a dict (at
/// least `{"backbone": ...}`).
#[pyfunction]
#[pyo3(signature = (weights, vocab, model, threads=0))]
pub fn load_weights(
    py: Python<'_>,
    weights: PathBuf,
    vocab: PathBuf,
    model: &Bound<'_, PyDict>,
    threads: usize,
) -> PyResult<Model> {
    let text: String = py
        .import("json")?
        .call_method1("dumps", (model,))?
        .extract()?;
    let section: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text)
        .map_err(|e| raise(py, Kind::BadInput, format!("model: {e}")))?;
    let pool = pool(py, threads)?;
    let inner = py
        .detach(|| LoadedMatcher::from_weights(&section, &weights, &vocab))
        .map_err(|e| Failure::from(e).into_pyerr(py))?;
    Ok(Model {
        inner,
        source: Source::Weights,
        pool,
        threads,
    })
}

/// Region features `[N, R, D]` (argument `features`): → (array, N, R).
fn regions_in<'py>(features: &Bound<'py, PyAny>) -> PyResult<(F32In<'py>, usize, usize)> {
    let x = f32_in(features, "features", &[3], "[N, R, D]")?;
    let (n, r) = (x.shape()[0], x.shape()[1]);
    Ok((x, n, r))
}

impl Model {
    fn precision(py: Python<'_>, head_precision: &str) -> PyResult<HeadPrecision> {
        choice(py, "head_precision", head_precision)
    }

    fn check_captions(py: Python<'_>, captions: &[String]) -> PyResult<()> {
        if captions.is_empty() {
            return Err(raise(
                py,
                Kind::BadInput,
                "captions: empty list; pass at least one caption".into(),
            ));
        }
        Ok(())
    }
}

#[pymethods]
impl Model {
    /// Backbone name (`scan-ave`, `vse`, `vse-infty`, `sgr`, `saf`).
    #[getter]
    fn backbone(&self) -> String {
        self.inner.config().backbone.name().to_string()
    }

    /// Joint embedding width d.
    #[getter]
    fn embed_dim(&self) -> usize {
        self.inner.matcher().embed_dim()
    }

    /// Region feature width D the image encoder takes.
    #[getter]
    fn img_dim(&self) -> usize {
        self.inner.matcher().img_dim()
    }

    /// Rows of the word embedding (vocabulary size, with appended tokens).
    #[getter]
    fn vocab_size(&self) -> usize {
        self.inner.matcher().vocab_size()
    }

    /// Words of the vocabulary (ids 0..len).
    #[getter]
    fn vocab_len(&self) -> usize {
        self.inner.vocab().len()
    }

    /// The run folder (None for a weights file).
    #[getter]
    fn run(&self) -> Option<PathBuf> {
        match &self.source {
            Source::Run { run, .. } => Some(run.dir.clone()),
            Source::Weights => None,
        }
    }

    /// The branch loaded (None for a weights file).
    #[getter]
    fn branch(&self) -> Option<usize> {
        match &self.source {
            Source::Run { branch, .. } => Some(*branch),
            Source::Weights => None,
        }
    }

    /// The checkpoint loaded, `best` or `last` (None for a weights file).
    #[getter]
    fn tag(&self) -> Option<String> {
        match &self.source {
            Source::Run { tag, .. } => Some(tag.clone()),
            Source::Weights => None,
        }
    }

    /// The weights file loaded.
    #[getter]
    fn weights(&self) -> PathBuf {
        self.inner.weights_path().to_path_buf()
    }

    /// FNV-1a 64 hash of the weights file (as index manifests record it).
    #[getter]
    fn weight_hash(&self) -> String {
        self.inner.weight_hash().to_string()
    }

    /// Worker threads (0 = every core).
    #[getter]
    fn threads(&self) -> usize {
        self.threads
    }

    /// The backbone configuration as a dict (sizes included).
    #[getter]
    fn config<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, self.inner.config())
    }

    fn __repr__(&self) -> String {
        let from = match &self.source {
            Source::Run { run, branch, tag } => {
                format!("run={:?}, branch={branch}, tag={tag:?}", run.dir)
            }
            Source::Weights => format!("weights={:?}", self.inner.weights_path()),
        };
        format!(
            "dbl.Model({from}, backbone={:?}, embed_dim={}, img_dim={}, vocab_size={})",
            self.backbone(),
            self.embed_dim(),
            self.img_dim(),
            self.vocab_size()
        )
    }

    /// Token ids of `text` as the CLI tokenises it, and the words mapped to
    /// `<unk>`: → (ids, unknown).
    fn tokenize(&self, py: Python<'_>, text: &str) -> PyResult<(Vec<u32>, Vec<String>)> {
        let q = self
            .inner
            .tokens(text)
            .map_err(|e| Failure::from(e).into_pyerr(py))?;
        Ok((q.ids, q.unknown))
    }

    /// Encodes region features `[N, R, D]` → `[N, rows, d]`.
    #[pyo3(signature = (features, progress=None))]
    fn encode_images<'py>(
        &self,
        py: Python<'py>,
        features: &Bound<'py, PyAny>,
        progress: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
        let (x, n, r) = regions_in(features)?;
        let values = x.values();
        let out = run_watched(py, &self.pool, progress, |w| {
            Ok(self.inner.encode_features(values, r, w)?)
        })?;
        let rows = self.inner.matcher().image_rows(r);
        Ok(f32_out(py, out, &[n, rows, self.embed_dim()]))
    }

    /// Encodes caption texts → (rows `[n_rows, d]`, offsets `[n + 1]`,
    /// unknown words per caption); caption k is `rows[offsets[k]:offsets[k+1]]`.
    fn encode_captions<'py>(
        &self,
        py: Python<'py>,
        captions: Vec<String>,
    ) -> PyResult<EncodedCaptions<'py>> {
        Self::check_captions(py, &captions)?;
        let (enc, unknown) = run_watched(py, &self.pool, None, |_| {
            let refs: Vec<&str> = captions.iter().map(String::as_str).collect();
            Ok(self.inner.encode_texts(&refs)?)
        })?;
        let d = self.embed_dim();
        let n_rows = enc.rows.len() / d;
        let offsets = enc.offsets.iter().map(|&o| o as i64).collect();
        Ok((
            f32_out(py, enc.rows, &[n_rows, d]),
            i64_out(py, offsets),
            PyList::new(py, unknown)?,
        ))
    }

    /// Scores images (region features `[N, R, D]`) × caption texts → `[N, C]`.
    #[pyo3(signature = (features, captions, head_precision="f32", progress=None))]
    fn score<'py>(
        &self,
        py: Python<'py>,
        features: &Bound<'py, PyAny>,
        captions: Vec<String>,
        head_precision: &str,
        progress: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
        let precision = Self::precision(py, head_precision)?;
        Self::check_captions(py, &captions)?;
        let (x, n, r) = regions_in(features)?;
        let values = x.values();
        let sims = run_watched(py, &self.pool, progress, |w| {
            let img = self.inner.encode_features(values, r, w)?;
            let refs: Vec<&str> = captions.iter().map(String::as_str).collect();
            let (cap, _) = self.inner.encode_texts(&refs)?;
            let m = self.inner.matcher();
            Ok(score_encoded(
                m,
                &img,
                r,
                &cap,
                precision,
                BlockSize::default(),
                w,
            )?)
        })?;
        Ok(f32_out(py, sims, &[n, captions.len()]))
    }

    /// Scores split `split` (`dev`, `test`, `testall`) of the run's dataset
    /// exactly as `dbl score` does → `[n_images, n_captions]`.
    #[pyo3(signature = (split="test", head_precision="f32", progress=None))]
    fn score_split<'py>(
        &self,
        py: Python<'py>,
        split: &str,
        head_precision: &str,
        progress: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
        let precision = Self::precision(py, head_precision)?;
        let split = Split::from(choice::<ScoreSplit>(py, "split", split)?);
        let Source::Run { run, .. } = &self.source else {
            return Err(raise(
                py,
                Kind::BadInput,
                "score_split needs a model loaded from a run (dbl.load); this one is a \
                 weights file: use score(features, captions)"
                    .into(),
            ));
        };
        let (sims, n_img) = run_watched(py, &self.pool, progress, |w| {
            let ds = Precomp::open(&run.data, split, self.inner.vocab())?;
            let sims = score_split_watched(self.inner.matcher(), &ds, precision, &Solo, w)?;
            Ok((sims, ds.n_images()))
        })?;
        let n_cap = sims.len() / n_img.max(1);
        Ok(f32_out(py, sims, &[n_img, n_cap]))
    }

    /// The weights as `{name: float32 array}`, named as the PyTorch port's
    /// `state_dict()` (tools/reference/dbl_ref): `model.load_state_dict({k:
    /// torch.from_numpy(v) for k, v in m.state_dict().items()})`.
    fn state_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for p in self.inner.params() {
            let Param {
                name, shape, value, ..
            } = p;
            d.set_item(name, f32_out(py, value.clone(), shape))?;
        }
        Ok(d)
    }
}
