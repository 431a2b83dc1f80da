//! The `dbl._native` extension module of the `dbl` Python package: a thin
//! layer over the `dbl` library calling the same entry points as the CLI
//! (the loaded matcher of `dbl::infer`, the protocols of `dbl::eval`, the
//! index of `dbl::serve`, the trainer of `dbl::train`). The Python-facing
//! docs and signatures are in `dbl/__init__.py` and `dbl/_native.pyi`.
//!
//! - [`arrays`]: numpy in (zero-copy float32) and out (owned buffers).
//! - [`watch`]: long calls off the GIL, Ctrl-C and progress.
//! - [`errors`]: library errors → the exception classes of `dbl/errors.py`.
//! - [`model`], [`index`], [`eval`], [`train`]: the capabilities.

mod arrays;
mod convert;
mod errors;
mod eval;
mod index;
mod model;
mod train;
mod watch;

use pyo3::prelude::*;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<model::Model>()?;
    m.add_class::<index::Index>()?;
    m.add_function(wrap_pyfunction!(model::load, m)?)?;
    m.add_function(wrap_pyfunction!(model::load_weights, m)?)?;
    m.add_function(wrap_pyfunction!(index::open_index, m)?)?;
    m.add_function(wrap_pyfunction!(eval::evaluate, m)?)?;
    m.add_function(wrap_pyfunction!(train::train, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
