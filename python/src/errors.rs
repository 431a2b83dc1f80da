//! The library's errors as Python exceptions (classes in `dbl/errors.py`):
//! each error is sorted into a [`Kind`] by its variant and raised with the
//! exact text the CLI prints after `error: ` ([`dbl::os_error::describe`]).

use dbl::eval::error::EvalError;
use dbl::infer::InferError;
use dbl::serve::ServeError;
use dbl::train::TrainError;
use pyo3::prelude::*;

/// Which exception class an error raises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An argument is wrong (shape, dtype, NaN, unknown option, bad config key).
    BadInput,
    /// A dataset, vocabulary or `.npy` file is wrong.
    BadData,
    /// A checkpoint or weights file is damaged or does not fit.
    CorruptCheckpoint,
    /// An index folder is damaged or stale.
    CorruptIndex,
    /// A run folder cannot be used (exists, locked, holds foreign files).
    RunFolder,
    /// The file system failed.
    Io,
    /// The call was stopped (Ctrl-C): `KeyboardInterrupt`.
    Interrupted,
    /// Anything else: `DblError`.
    Other,
}

impl Kind {
    fn class_name(self) -> &'static str {
        match self {
            Kind::BadInput => "BadInputError",
            Kind::BadData => "BadDataError",
            Kind::CorruptCheckpoint => "CorruptCheckpointError",
            Kind::CorruptIndex => "CorruptIndexError",
            Kind::RunFolder => "RunFolderError",
            Kind::Io => "DblIOError",
            Kind::Interrupted | Kind::Other => "DblError",
        }
    }
}

/// An error of the library, sorted and described (made off the GIL).
#[derive(Debug)]
pub struct Failure {
    kind: Kind,
    message: String,
}

impl Failure {
    /// An error of `kind` described as the CLI does.
    pub fn new(kind: Kind, e: &(dyn std::error::Error + 'static)) -> Self {
        Failure {
            kind,
            message: dbl::os_error::describe(e),
        }
    }

    /// As a Python exception.
    pub fn into_pyerr(self, py: Python<'_>) -> PyErr {
        raise(py, self.kind, self.message)
    }
}

/// The exception of `kind` carrying `message`.
pub fn raise(py: Python<'_>, kind: Kind, message: String) -> PyErr {
    if kind == Kind::Interrupted {
        return pyo3::exceptions::PyKeyboardInterrupt::new_err(message);
    }
    let class = py
        .import("dbl.errors")
        .and_then(|m| m.getattr(kind.class_name()));
    match class {
        Ok(c) => match c.call1((message.clone(),)) {
            Ok(e) => PyErr::from_value(e),
            Err(err) => err,
        },
        // The package is always imported first; this is a broken install.
        Err(_) => pyo3::exceptions::PyRuntimeError::new_err(message),
    }
}

fn eval_kind(e: &EvalError) -> Kind {
    match e {
        EvalError::Interrupted { .. } => Kind::Interrupted,
        _ => Kind::BadInput,
    }
}

fn infer_kind(e: &InferError) -> Kind {
    match e {
        InferError::Io { .. } => Kind::Io,
        InferError::Format { .. } | InferError::Weights(_) | InferError::Checkpoint(_) => {
            Kind::CorruptCheckpoint
        }
        InferError::Vocab(_) => Kind::BadData,
        InferError::Interrupted(_) => Kind::Interrupted,
        InferError::Eval(e) => eval_kind(e),
        _ => Kind::BadInput,
    }
}

fn train_kind(e: &TrainError) -> Kind {
    match e {
        TrainError::Config(_) | TrainError::Precision(_) | TrainError::Device(_) => Kind::BadInput,
        TrainError::Io { .. } => Kind::Io,
        TrainError::Checkpoint(_) => Kind::CorruptCheckpoint,
        TrainError::Vocab(_) | TrainError::Data(_) | TrainError::Eval(_) => Kind::BadData,
        TrainError::RunExists(_) | TrainError::Lock(_) | TrainError::ForeignFiles { .. } => {
            Kind::RunFolder
        }
        TrainError::Interrupted(_) => Kind::Interrupted,
        _ => Kind::Other,
    }
}

fn serve_kind(e: &ServeError) -> Kind {
    match e {
        ServeError::Io { .. } => Kind::Io,
        ServeError::Corrupt { .. }
        | ServeError::OtherModel { .. }
        | ServeError::Ann { .. }
        | ServeError::Changed { .. } => Kind::CorruptIndex,
        ServeError::Infer(e) => infer_kind(e),
        ServeError::Npy(_) | ServeError::Precomp(_) => Kind::BadData,
        ServeError::BadRequest(_) | ServeError::Usage(_) | ServeError::NotFinite(_) => {
            Kind::BadInput
        }
    }
}

impl From<InferError> for Failure {
    fn from(e: InferError) -> Self {
        Failure::new(infer_kind(&e), &e)
    }
}

impl From<dbl::model::matcher::ScoreError> for Failure {
    fn from(e: dbl::model::matcher::ScoreError) -> Self {
        InferError::from(e).into()
    }
}

impl From<EvalError> for Failure {
    fn from(e: EvalError) -> Self {
        Failure::new(eval_kind(&e), &e)
    }
}

impl From<TrainError> for Failure {
    fn from(e: TrainError) -> Self {
        Failure::new(train_kind(&e), &e)
    }
}

impl From<ServeError> for Failure {
    fn from(e: ServeError) -> Self {
        Failure::new(serve_kind(&e), &e)
    }
}

impl From<dbl::data::precomp::PrecompError> for Failure {
    fn from(e: dbl::data::precomp::PrecompError) -> Self {
        Failure::new(Kind::BadData, &e)
    }
}

impl From<anyhow::Error> for Failure {
    /// The CLI's own functions (e.g. building a training config): sorted by
    /// the library error inside, else a bad argument.
    fn from(e: anyhow::Error) -> Self {
        let kind = if let Some(t) = e.downcast_ref::<TrainError>() {
            train_kind(t)
        } else if let Some(i) = e.downcast_ref::<InferError>() {
            infer_kind(i)
        } else if e.downcast_ref::<std::io::Error>().is_some() {
            Kind::Io
        } else {
            Kind::BadInput
        };
        Failure::new(kind, e.as_ref())
    }
}
