"""Fixtures: the `dbl` CLI binary, a synthetic dataset (`dbl synth`) and a
small run trained by the CLI (`dbl train`), shared by every test. Every
capability of the package is checked against the CLI's output on these."""

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

#: `dbl train --set` settings of the shared run: scan-ave (the released
#: backbone, cross-attention head), 2 OSS branches, tiny sizes, 2 epochs of
#: 3 steps, 1 thread (bitwise reproducible).
RUN_SETTINGS = [
    'model.backbone="scan-ave"',
    "model.embed=16",
    "model.word_dim=8",
    "model.sim_dim=8",
    'regime="oss"',
    "branches=2",
    "batch_size=16",
    "epochs=2",
    "max_steps_per_epoch=3",
    "threads=1",
    "seed=5",
]


def dbl_bin() -> Path:
    """The CLI built from this checkout (DBL_BIN, or target/release/dbl)."""
    if os.environ.get("DBL_BIN"):
        return Path(os.environ["DBL_BIN"])
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    return target / "release" / "dbl"


def cli(*args, check=True):
    """Runs `dbl ARGS`: → CompletedProcess (text)."""
    r = subprocess.run([str(dbl_bin()), *map(str, args)], capture_output=True, text=True)
    if check and r.returncode != 0:
        raise AssertionError(f"dbl {' '.join(map(str, args))} failed:\n{r.stderr}")
    return r


def cli_error(*args) -> str:
    """The text after `error: ` of a failing CLI call."""
    r = cli(*args, check=False)
    assert r.returncode != 0, f"expected dbl {args} to fail"
    line = [l for l in r.stderr.splitlines() if l.startswith("error: ")][-1]
    return line[len("error: "):]


@pytest.fixture(scope="session")
def data(tmp_path_factory) -> Path:
    if not dbl_bin().exists():
        pytest.fail(f"{dbl_bin()} not found: build it with `cargo build --release` or set DBL_BIN")
    d = tmp_path_factory.mktemp("synth") / "data"
    cli("synth", "--out", d, "--train", 40, "--dev", 12, "--test", 12)
    return d


def train_cli(data: Path, out: Path, extra=()) -> Path:
    args = ["train", "--data", data, "--out", out]
    for s in [*RUN_SETTINGS, *extra]:
        args += ["--set", s]
    cli(*args)
    return out


@pytest.fixture(scope="session")
def run(data, tmp_path_factory) -> Path:
    """The run `dbl train` writes with RUN_SETTINGS."""
    return train_cli(data, tmp_path_factory.mktemp("runs") / "cli")


@pytest.fixture(scope="session")
def index(run, data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("idx") / "idx"
    cli("index", "build", "--threads", 1, "--run", run, "--images", data / "test_ims.npy",
        "--captions", data / "test_caps.txt", "--out", out)
    return out


def cli_json(*args):
    return json.loads(cli(*args).stdout)


@pytest.fixture
def sigint():
    """Ctrl-C raises KeyboardInterrupt during the test, also when the test
    process was started with SIGINT ignored (a background job of a shell
    without job control, as CI scripts may run it)."""
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, old)
