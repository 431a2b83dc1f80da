//! `dbl.evaluate`: R@K / medr / meanr / rSum of a similarity matrix under a
//! protocol, the numbers `dbl eval --json` prints.

use dbl::eval::{Protocol, SimMatrix};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::arrays::f32_in;
use crate::convert::{choice, pool, to_py};
use crate::watch::run_watched;

/// Evaluates `sims` (`[n_images, n_captions]`, rows = images, caption k of
/// image k // (n_captions / n_images)) under `protocol` (`f30k`, `coco1k`,
/// `coco5k`): → the metrics dict of `dbl eval --json`, plus `folds` (the
/// per-fold metrics of coco1k; empty otherwise).
#[pyfunction]
#[pyo3(signature = (sims, protocol="f30k", threads=0))]
pub fn evaluate<'py>(
    py: Python<'py>,
    sims: &Bound<'py, PyAny>,
    protocol: &str,
    threads: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let protocol: Protocol = choice(py, "protocol", protocol)?;
    let x = f32_in(sims, "sims", &[2], "[n_images, n_captions]")?;
    let (n_img, n_cap) = (x.shape()[0], x.shape()[1]);
    let values = x.values();
    let pool = pool(py, threads)?;
    let ev = run_watched(py, &pool, None, |_| {
        let m = SimMatrix::new(values, n_img, n_cap)?;
        Ok(protocol.evaluate(&m)?)
    })?;
    let out = to_py(py, &ev.metrics)?;
    out.cast::<PyDict>()?
        .set_item("folds", to_py(py, &ev.folds)?)?;
    Ok(out)
}
