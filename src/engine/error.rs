//! The engine's error type: everything that can be wrong with data handed to
//! the engine from outside (optimiser state read from a checkpoint, optimiser
//! and schedule settings). Shape mismatches between layers are programming
//! errors and panic instead.

/// Errors from engine configuration and state import.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A configuration field is out of its valid range.
    #[error("invalid {field} = {value}: expected {expected}")]
    Config {
        field: &'static str,
        value: String,
        expected: &'static str,
    },
    /// Optimiser state does not contain a tensor it needs.
    #[error("optimiser state has no tensor {name:?} (expected one per parameter)")]
    StateMissing { name: String },
    /// Optimiser state holds a tensor no parameter corresponds to.
    #[error("optimiser state holds an unexpected tensor {name:?} (no such parameter)")]
    StateUnexpected { name: String },
    /// A state tensor's shape differs from its parameter's.
    #[error(
        "optimiser state tensor {name:?} has shape {got:?}; the parameter has shape {expected:?}"
    )]
    StateShape {
        name: String,
        expected: Vec<usize>,
        got: Vec<usize>,
    },
    /// A state tensor's length does not match the product of its shape.
    #[error("tensor {name:?} declares shape {shape:?} ({expected} values) but holds {got} values")]
    TensorLen {
        name: String,
        shape: Vec<usize>,
        expected: usize,
        got: usize,
    },
    /// The step counter is not a non-negative integer PyTorch could have stored.
    #[error(
        "optimiser state {name:?} = {value}: expected a non-negative whole number \
         no larger than 2^24 (PyTorch stores the Adam step as a float32 tensor)"
    )]
    BadStep { name: String, value: f64 },
    /// The parameter list handed to the optimiser differs from the one it was built for.
    #[error(
        "parameter #{index} is {got:?} {got_shape:?}; the optimiser was built for {expected:?} {expected_shape:?}"
    )]
    ParamMismatch {
        index: usize,
        expected: String,
        expected_shape: Vec<usize>,
        got: String,
        got_shape: Vec<usize>,
    },
    /// The parameter list handed to the optimiser has the wrong length.
    #[error("got {got} parameters; the optimiser was built for {expected}")]
    ParamCount { expected: usize, got: usize },
}
