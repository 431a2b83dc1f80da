"""dbl from Python: Deep Boosting Learning for image-text matching (Diao et al.,
IEEE TIP 2024), the same library as the `dbl` command line, without copies or
subprocesses.

    import dbl, numpy as np
    model = dbl.load("runs/demo")                   # last branch, best checkpoint
    sims = model.score(features, ["a dog runs"])    # [N, R, D] float32 x captions -> [N, 1]
    sims = model.score_split("test")                # == dbl score --run runs/demo
    dbl.evaluate(sims, "f30k")                      # == dbl eval --json
    dbl.open_index("idx").search_text("a dog")      # == dbl search --index idx --text ...
    dbl.train("configs/f30k_oas.toml", {"epochs": 2, "out": "runs/x"})
    model.state_dict()                              # numpy weights, PyTorch port's names

Arrays: float32 C-contiguous arrays are read in place (no copy); other
floating dtypes and layouts are converted (one copy); anything else raises
BadInputError. Results are new float32 arrays that own the library's buffer.
Long calls release the GIL and stop on Ctrl-C (KeyboardInterrupt). Errors
are the classes of `dbl.errors`, with the CLI's messages.
"""

from __future__ import annotations

import json
import os
from typing import Any, Callable, Mapping, Optional, Sequence, Union

from . import _native, errors
from ._native import Index, Model, __version__
from .errors import (
    BadDataError,
    BadInputError,
    CorruptCheckpointError,
    CorruptFileError,
    CorruptIndexError,
    DblError,
    DblIOError,
    RunFolderError,
)

__all__ = [
    "load",
    "load_weights",
    "open_index",
    "evaluate",
    "train",
    "resume",
    "Model",
    "Index",
    *errors.__all__,
    "__version__",
]

PathLike = Union[str, "os.PathLike[str]"]
#: A progress report: {"kind": "step" | "eval" | "blocks", ...} (see `train`).
Progress = Callable[[dict], None]


def load(
    run: PathLike,
    branch: Optional[int] = None,
    tag: str = "best",
    threads: Optional[int] = None,
) -> Model:
    """Load one branch checkpoint of a run folder written by `dbl train`.

    Args:
        run: the run folder (its config.json, vocabulary and checkpoints).
        branch: which branch (0-based); default the last one, the DBL target.
        tag: "best" (by dev rSum) or "last".
        threads: worker threads of this model's calls; default the run's
            `threads`, 0 = every core. Scores are bit-identical to
            `dbl score --threads T` at the same T.

    Returns:
        a Model: `encode_images`, `encode_captions`, `score`, `score_split`,
        `state_dict`, and the backbone's sizes (`backbone`, `embed_dim`,
        `img_dim`, `vocab_size`).

    Raises:
        BadInputError: no such branch, tag not best/last, an unregistered backbone.
        CorruptCheckpointError: a checkpoint file fails its checksum or shapes.
        DblIOError: the folder or a file cannot be read.

    Same as `dbl score --run RUN [--branch K] [--tag best|last]` loads.
    """
    return _native.load(run, branch, tag, threads)


def load_weights(
    weights: PathLike,
    vocab: PathLike,
    model: Mapping[str, Any],
    threads: int = 0,
) -> Model:
    """Load a weights file outside a run, e.g. one `dbl import-torch` wrote.

    Args:
        weights: the `.safetensors` file (tensors named as the PyTorch port).
        vocab: the vocabulary JSON the weights were trained with.
        model: a run config's `model` table, e.g. {"backbone": "scan-ave"};
            the vocabulary size and feature width are read from the weights.
        threads: worker threads (0 = every core).
    """
    return _native.load_weights(weights, vocab, dict(model), threads)


def open_index(path: PathLike, threads: int = 0) -> Index:
    """Open an index folder written by `dbl index build` for `search_text` /
    `search_image` (same answers as `dbl search`)."""
    return _native.open_index(path, threads)


def evaluate(sims: Any, protocol: str = "f30k", threads: int = 0) -> dict:
    """R@1/5/10, medr, meanr and rSum of a similarity matrix, as `dbl eval --json`.

    Args:
        sims: [n_images, n_captions] array, rows = images; caption k belongs to
            image k // (n_captions // n_images).
        protocol: "f30k" or "coco5k" (the whole matrix), or "coco1k" (the
            5,000 x 25,000 COCO testall matrix, mean of five 1K folds).

    Returns:
        {"i2t": {"r1", "r5", "r10", "medr", "meanr"}, "t2i": {...}, "rsum",
         "folds": [per-fold dicts, coco1k only]}.
    """
    return _native.evaluate(sims, protocol, threads)


def _toml(value: Any, key: str) -> str:
    """A Python value as the TOML literal of a `--set KEY=VALUE`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (str, os.PathLike)):
        return json.dumps(os.fspath(value))
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v, key) for v in value) + "]"
    raise BadInputError(
        f"overrides: {key} = {value!r}: expected a bool, number, string, path or list"
    )


def _overrides(overrides: Union[None, Mapping[str, Any], Sequence[str]]) -> list:
    """Dotted `KEY=VALUE` strings from a (nested) dict, or a list of them."""
    if overrides is None:
        return []
    if isinstance(overrides, Mapping):
        out = []

        def walk(prefix: str, d: Mapping[str, Any]) -> None:
            for k, v in d.items():
                key = f"{prefix}{k}"
                if isinstance(v, Mapping):
                    walk(key + ".", v)
                else:
                    out.append(f"{key}={_toml(v, key)}")

        walk("", overrides)
        return out
    if isinstance(overrides, str):
        raise BadInputError("overrides: expected a dict or a list of 'KEY=VALUE' strings, got a string")
    return [str(s) for s in overrides]


class _Bar:
    """A tqdm bar per epoch (training) or per matrix (scoring)."""

    def __init__(self, tqdm: Any) -> None:
        self._tqdm = tqdm
        self._bar = None
        self._key = None

    def _open(self, key: Any, total: int, desc: str) -> None:
        if key != self._key:
            self.close()
            self._bar = self._tqdm(total=total, desc=desc)
            self._key = key

    def __call__(self, ev: dict) -> None:
        if ev["kind"] == "step":
            self._open(
                (ev["stage"], ev["epoch"]),
                ev["steps"],
                f"stage {ev['stage']} epoch {ev['epoch'] + 1}/{ev['epochs']}",
            )
            self._bar.n = ev["step"]
            self._bar.set_postfix(loss=f"{ev['loss']:.3f}", refresh=False)
            self._bar.refresh()
            if ev["step"] == ev["steps"]:
                # dbl prints the epoch's dev rSum line next, on stderr.
                self.close()
        elif ev["kind"] == "blocks":
            self._open("blocks", ev["total"], "scoring blocks")
            self._bar.n = ev["done"]
            self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar, self._key = None, None


def _progress(progress: Union[bool, None, Progress]) -> tuple:
    """(callback or None, bar to close or None) for a `progress` argument."""
    if progress is None or progress is False:
        return None, None
    if progress is True:
        try:
            from tqdm.auto import tqdm
        except ImportError:
            return None, None
        bar = _Bar(tqdm)
        return bar, bar
    if callable(progress):
        return progress, None
    raise BadInputError(f"progress: expected True, False, None or a callable, got {progress!r}")


def _watched(call: Callable[[Optional[Progress]], Any], progress: Any) -> Any:
    cb, bar = _progress(progress)
    try:
        return call(cb)
    finally:
        if bar is not None:
            bar.close()


def train(
    config: Optional[PathLike] = None,
    overrides: Union[None, Mapping[str, Any], Sequence[str]] = None,
    *,
    progress: Union[bool, None, Progress] = True,
) -> dict:
    """Train a run, as `dbl train --config CONFIG --set KEY=VALUE ...`.

    Args:
        config: a TOML run config (keys: the TrainConfig docs; `configs/` has
            one per regime). None: the defaults (the authors' F30K values).
        overrides: config keys to change, as a dict ({"epochs": 2, "loss":
            {"margin": 0.1}} or {"loss.margin": 0.1}) or as `--set` strings
            (["epochs=2"]). `data` and `out` are keys too.
        progress: True: a tqdm bar when tqdm is installed; a callable: called
            on the calling thread with each report, {"kind": "step", "stage",
            "epoch", "epochs", "step", "steps", "loss"} or {"kind": "eval",
            "stage", "epoch", "rsum": [per branch]}; None/False: silent.

    Returns:
        {"run": the run folder, "stopped": True when `stop_after` ended it
         early, "best_dev": [per branch: dev metrics dict or None]}.

    Ctrl-C raises KeyboardInterrupt between two steps; the run folder keeps
    its last committed epoch, exactly as if the process had been killed, and
    `dbl.resume(run)` (or `dbl train --resume`) continues it bit for bit.
    """
    sets = _overrides(overrides)
    return _watched(lambda cb: _native.train(config, sets, None, cb), progress)


def resume(
    run: PathLike,
    overrides: Union[None, Mapping[str, Any], Sequence[str]] = None,
    *,
    progress: Union[bool, None, Progress] = True,
) -> dict:
    """Continue the run in `run` from its last checkpoints, as
    `dbl train --resume RUN` (bit for bit the trajectory of an uninterrupted
    run). Arguments and result as `train`."""
    sets = _overrides(overrides)
    return _watched(lambda cb: _native.train(None, sets, run, cb), progress)
