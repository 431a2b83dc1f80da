//! numpy in and out. In: a float32 C-contiguous array is borrowed in place
//! (no copy, the fast path); another floating dtype (float16, float64) or
//! layout (Fortran order, strided views) is converted by numpy to a float32
//! C-contiguous copy; any other dtype, a non-array or a wrong rank is
//! refused with [`BadInputError`](crate::errors). Out: the library's owned
//! `Vec<f32>` becomes the array's buffer (no copy).

use numpy::ndarray::{ArrayD, IxDyn};
use numpy::{
    IntoPyArray, PyArrayDescrMethods, PyArrayDyn, PyArrayMethods, PyReadonlyArrayDyn,
    PyUntypedArray, PyUntypedArrayMethods,
};
use pyo3::prelude::*;

use crate::errors::{Kind, raise};

/// A float32 C-contiguous array borrowed for reading (or numpy's converted copy).
pub struct F32In<'py> {
    array: PyReadonlyArrayDyn<'py, f32>,
}

impl F32In<'_> {
    /// The values, row-major.
    pub fn values(&self) -> &[f32] {
        self.array
            .as_slice()
            .expect("checked C-contiguous when borrowed")
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        self.array.shape()
    }
}

/// Borrows `x` (argument `name`) as float32 of one of the ranks `ranks`
/// (`what` says the expected shape in words, e.g. `[N, R, D]`).
pub fn f32_in<'py>(
    x: &Bound<'py, PyAny>,
    name: &str,
    ranks: &[usize],
    what: &str,
) -> PyResult<F32In<'py>> {
    let py = x.py();
    let Ok(arr) = x.cast::<PyUntypedArray>() else {
        let ty = x.get_type().name()?;
        return Err(raise(
            py,
            Kind::BadInput,
            format!("{name}: expected a numpy array {what} of float32, got {ty}"),
        ));
    };
    if !ranks.contains(&arr.ndim()) {
        return Err(raise(
            py,
            Kind::BadInput,
            format!(
                "{name}: expected a {}-D array {what}, got shape {:?}",
                ranks
                    .iter()
                    .map(usize::to_string)
                    .collect::<Vec<_>>()
                    .join(" or "),
                arr.shape()
            ),
        ));
    }
    let dtype = arr.dtype();
    let f32_dtype = numpy::dtype::<f32>(py);
    let array: Bound<'py, PyArrayDyn<f32>> =
        if dtype.is_equiv_to(&f32_dtype) && arr.is_c_contiguous() {
            arr.cast::<PyArrayDyn<f32>>()?.clone()
        } else if dtype.kind() == b'f' {
            let np = py.import("numpy")?;
            np.call_method1("ascontiguousarray", (arr, f32_dtype))?
                .cast_into::<PyArrayDyn<f32>>()?
        } else {
            return Err(raise(
                py,
                Kind::BadInput,
                format!(
                    "{name}: dtype {} is not floating point; pass float32 (float16 and float64 \
                 are converted)",
                    dtype.str()?
                ),
            ));
        };
    let array = array
        .try_readonly()
        .map_err(|e| raise(py, Kind::BadInput, format!("{name}: cannot be read ({e})")))?;
    Ok(F32In { array })
}

/// `values` as a numpy array of `shape` (the vector becomes its buffer).
pub fn f32_out<'py>(
    py: Python<'py>,
    values: Vec<f32>,
    shape: &[usize],
) -> Bound<'py, PyArrayDyn<f32>> {
    ArrayD::from_shape_vec(IxDyn(shape), values)
        .expect("the library returns shape.product() values")
        .into_pyarray(py)
}

/// `values` as a 1-D int64 numpy array.
pub fn i64_out<'py>(py: Python<'py>, values: Vec<i64>) -> Bound<'py, numpy::PyArray1<i64>> {
    values.into_pyarray(py)
}
