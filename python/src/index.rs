//! `dbl.Index`: an index folder written by `dbl index build`, searched as
//! `dbl search` does (shortlist, then the run's head re-ranks exactly).

use std::path::PathBuf;

use dbl::serve::index::SearchResult;
use dbl::serve::{Index as ServeIndex, Models};
use pyo3::prelude::*;

use crate::arrays::f32_in;
use crate::convert::{pool, to_py};
use crate::errors::{Failure, Kind, raise};
use crate::watch::run_watched;

/// An opened index.
#[pyclass(module = "dbl._native", name = "Index", frozen)]
pub struct Index {
    inner: ServeIndex,
    pool: rayon::ThreadPool,
}

/// Opens the index folder `path` (its model loaded and checked against the
/// weights the index was built with), searching with `threads` workers.
#[pyfunction]
#[pyo3(signature = (path, threads=0))]
pub fn open_index(py: Python<'_>, path: PathBuf, threads: usize) -> PyResult<Index> {
    let pool = pool(py, threads)?;
    let models = Models::new();
    let inner = py
        .detach(|| ServeIndex::open(&path, &models))
        .map_err(|e| Failure::from(e).into_pyerr(py))?;
    Ok(Index { inner, pool })
}

impl Index {
    fn answer<'py>(
        &self,
        py: Python<'py>,
        search: impl FnOnce(&ServeIndex) -> Result<SearchResult, dbl::serve::ServeError> + Send,
    ) -> PyResult<Bound<'py, PyAny>> {
        let res = run_watched(py, &self.pool, None, |_| Ok(search(&self.inner)?))?;
        to_py(py, &res)
    }
}

#[pymethods]
impl Index {
    /// The index's manifest (model, sizes, gallery counts) as a dict.
    #[getter]
    fn manifest<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_py(py, self.inner.manifest())
    }

    /// The index folder.
    #[getter]
    fn path(&self) -> PathBuf {
        self.inner.dir().to_path_buf()
    }

    fn __repr__(&self) -> String {
        let m = self.inner.manifest();
        format!(
            "dbl.Index({:?}, images={}, captions={})",
            self.inner.dir(),
            m.n_images,
            m.n_captions
        )
    }

    /// Text → images: the `k` best images for `text`.
    #[pyo3(signature = (text, k=10, shortlist=100))]
    fn search_text<'py>(
        &self,
        py: Python<'py>,
        text: &str,
        k: usize,
        shortlist: usize,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.answer(py, |i| i.search_images(text, k, shortlist))
    }

    /// Image → captions: by region features `[R, D]` (or `[1, R, D]`), or
    /// by the gallery row `row` of an indexed image.
    #[pyo3(signature = (features=None, *, row=None, k=10, shortlist=100))]
    fn search_image<'py>(
        &self,
        py: Python<'py>,
        features: Option<&Bound<'py, PyAny>>,
        row: Option<usize>,
        k: usize,
        shortlist: usize,
    ) -> PyResult<Bound<'py, PyAny>> {
        match (features, row) {
            (Some(f), None) => {
                let x = f32_in(f, "features", &[2, 3], "[R, D] or [1, R, D]")?;
                let values = x.values();
                self.answer(py, |i| i.search_captions(values, k, shortlist))
            }
            (None, Some(r)) => self.answer(py, |i| i.search_captions_by_row(r, k, shortlist)),
            _ => Err(raise(
                py,
                Kind::BadInput,
                "search_image: pass either features or row=, not both".into(),
            )),
        }
    }
}
