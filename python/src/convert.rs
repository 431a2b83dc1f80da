//! Small conversions shared by the classes: choices named as on the command
//! line (`f32`/`bf16`, `dev`/`test`/`testall`, `f30k`/`coco1k`/`coco5k`),
//! JSON-serialisable results as Python objects, worker pools.

use clap::ValueEnum;
use pyo3::prelude::*;
use serde::Serialize;

use crate::errors::{Kind, raise};

/// `value` (argument `name`) as the command-line choice it names.
pub fn choice<T: ValueEnum>(py: Python<'_>, name: &str, value: &str) -> PyResult<T> {
    T::from_str(value, false).map_err(|_| {
        let names: Vec<String> = T::value_variants()
            .iter()
            .filter_map(|v| v.to_possible_value().map(|p| p.get_name().to_string()))
            .collect();
        raise(
            py,
            Kind::BadInput,
            format!(
                "{name}: expected one of {}, got {value:?}",
                names.join(", ")
            ),
        )
    })
}

/// `v` as the Python object its JSON is (dicts, lists, numbers, strings):
/// the same keys and values the CLI's `--json` prints.
pub fn to_py<'py>(py: Python<'py>, v: &impl Serialize) -> PyResult<Bound<'py, PyAny>> {
    let text = serde_json::to_string(v)
        .map_err(|e| pyo3::exceptions::PyRuntimeError::new_err(e.to_string()))?;
    py.import("json")?.call_method1("loads", (text,))
}

/// A worker pool of `threads` (0 = every core), at most the CLI's limit.
pub fn pool(py: Python<'_>, threads: usize) -> PyResult<rayon::ThreadPool> {
    let max = dbl::train::resources::max_threads();
    if threads > max {
        return Err(raise(
            py,
            Kind::BadInput,
            format!("threads {threads}: at most {max} (4 x the cores here)"),
        ));
    }
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| raise(py, Kind::Other, format!("starting the worker threads: {e}")))
}
