"""Exceptions raised by dbl. Their messages are the CLI's `error:` lines.

    DblError                      anything dbl raises
    ├── BadInputError (ValueError)    an argument: shape, dtype, NaN, empty list, config key
    ├── BadDataError (ValueError)     a dataset, vocabulary or .npy file
    ├── CorruptFileError
    │   ├── CorruptCheckpointError    a checkpoint or weights file damaged or not fitting
    │   └── CorruptIndexError         an index folder damaged or built by other weights
    ├── RunFolderError                a run folder that exists, is locked or holds other files
    └── DblIOError (OSError)          the file system failed

Ctrl-C during a long call raises the usual KeyboardInterrupt.
"""

__all__ = [
    "DblError",
    "BadInputError",
    "BadDataError",
    "CorruptFileError",
    "CorruptCheckpointError",
    "CorruptIndexError",
    "RunFolderError",
    "DblIOError",
]


class DblError(Exception):
    """Base class of every exception dbl raises."""


class BadInputError(DblError, ValueError):
    """An argument is wrong: array shape, dtype or values, empty list, unknown option or config key."""


class BadDataError(DblError, ValueError):
    """A dataset, vocabulary or .npy file is not what dbl expects."""


class CorruptFileError(DblError):
    """A file dbl wrote earlier is damaged."""


class CorruptCheckpointError(CorruptFileError):
    """A checkpoint or weights file is damaged, or does not fit the model."""


class CorruptIndexError(CorruptFileError):
    """An index folder is damaged, or was built by other weights than those now in the run."""


class RunFolderError(DblError):
    """A run folder cannot be used: it already holds checkpoints, is locked, or holds foreign files."""


class DblIOError(DblError, OSError):
    """The file system failed (the message says which file and why)."""
