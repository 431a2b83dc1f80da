//! `dbl.train`: trains (or resumes) a run as `dbl train` does, from a TOML
//! config file and dotted `KEY=VALUE` overrides (the CLI's `--set`), with
//! progress reported to Python and Ctrl-C stopping it between steps (the run
//! then resumes like a killed one).

use std::path::PathBuf;

use dbl::cli::train::{Args, config};
use dbl::dist::Solo;
use dbl::train::backbone_select;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::convert::{pool, to_py};
use crate::errors::Failure;
use crate::watch::run_watched;

/// Trains the run `config` (a TOML file; None: the defaults) with
/// `overrides` applied, or with `resume` continues the run in that folder
/// (its config.json, then `overrides`): → `{"run", "stopped", "best_dev"}`.
#[pyfunction]
#[pyo3(signature = (config=None, overrides=Vec::new(), resume=None, progress=None))]
pub fn train<'py>(
    py: Python<'py>,
    config: Option<PathBuf>,
    overrides: Vec<String>,
    resume: Option<PathBuf>,
    progress: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let args = Args {
        config,
        resume,
        set: overrides,
        data: None,
        out: None,
        regime: None,
        epochs: None,
        seed: None,
        init: None,
    };
    let cfg = py
        .detach(|| self::config(&args))
        .map_err(|e| Failure::from(e).into_pyerr(py))?;
    let workers = pool(py, cfg.threads)?;
    let resume = args.resume.is_some();
    let summary = run_watched(py, &workers, progress, |w| {
        Ok(backbone_select::train_watched(&cfg, resume, &Solo, w)?)
    })?;
    let d = PyDict::new(py);
    d.set_item("run", cfg.out.clone())?;
    d.set_item("stopped", summary.stopped)?;
    d.set_item("best_dev", to_py(py, &summary.best_dev)?)?;
    Ok(d)
}
