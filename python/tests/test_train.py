"""dbl.train / dbl.resume against `dbl train`: same weights bit for bit,
progress reports, and Ctrl-C (KeyboardInterrupt) leaving a run that resumes
like a killed one."""

import os
import signal
import threading

import numpy as np
import pytest

import dbl
from conftest import RUN_SETTINGS, cli, train_cli


def same_weights(a, b):
    for k in (0, 1):
        wa = dbl.load(a, branch=k, tag="last", threads=1).state_dict()
        wb = dbl.load(b, branch=k, tag="last", threads=1).state_dict()
        assert wa.keys() == wb.keys()
        for name in wa:
            assert np.array_equal(wa[name].view(np.uint32), wb[name].view(np.uint32)), (k, name)


def overrides_dict(data, out):
    """RUN_SETTINGS as a nested dict, as a notebook would write them."""
    return {
        "data": data,
        "out": out,
        "model": {"backbone": "scan-ave", "embed": 16, "word_dim": 8, "sim_dim": 8},
        "regime": "oss",
        "branches": 2,
        "batch_size": 16,
        "epochs": 2,
        "max_steps_per_epoch": 3,
        "threads": 1,
        "seed": 5,
    }


def test_train_from_a_dict_is_dbl_train(run, data, tmp_path):
    events = []
    res = dbl.train(overrides=overrides_dict(data, tmp_path / "py"), progress=events.append)
    assert res["run"] == tmp_path / "py" and res["stopped"] is False
    assert len(res["best_dev"]) == 2 and res["best_dev"][1]["rsum"] > 0
    same_weights(run, tmp_path / "py")
    steps = [e for e in events if e["kind"] == "step"]
    evals = [e for e in events if e["kind"] == "eval"]
    assert len(steps) == 2 * 3 and len(evals) == 2
    assert steps[-1] | {"loss": 0} == {"kind": "step", "stage": 1, "epoch": 1, "epochs": 2,
                                       "step": 3, "steps": 3, "loss": 0}
    assert len(evals[-1]["rsum"]) == 2


def test_train_from_a_config_file_with_tqdm(run, data, tmp_path):
    pytest.importorskip("tqdm")
    cfg = tmp_path / "run.toml"
    cfg.write_text("\n".join(s for s in RUN_SETTINGS if not s.startswith("model.")) + "\n"
                   "[model]\nbackbone = \"scan-ave\"\nembed = 16\nword_dim = 8\nsim_dim = 8\n")
    out = tmp_path / "toml"
    dbl.train(cfg, [f'data="{data}"', f'out="{out}"'], progress=True)
    same_weights(run, out)


def test_train_errors(data, run, tmp_path):
    with pytest.raises(dbl.BadInputError, match="nosuchkey"):
        dbl.train(overrides={"nosuchkey": 1, "data": data, "out": tmp_path / "x"}, progress=None)
    with pytest.raises(dbl.RunFolderError, match="already holds checkpoints"):
        dbl.train(overrides=overrides_dict(data, run), progress=None)


def test_keyboard_interrupt_stops_training_and_resume_continues(sigint, tmp_path):
    """SIGINT arrives (from another thread, as a Ctrl-C would) early in a run
    of 2 x 25 steps; the run stops within a step or two of the poll, and
    resumes to the weights of the same run trained without interruption by
    the CLI. (Its own, larger data set: the shared run's 3 steps per epoch
    finish faster than the 50 ms poll on a fast machine.)"""
    data = tmp_path / "data"
    cli("synth", "--out", data, "--train", 400, "--dev", 12, "--test", 12)
    extra = ["model.embed=64", "max_steps_per_epoch=25"]
    full = train_cli(data, tmp_path / "full", extra)
    out = tmp_path / "interrupted"
    reached = threading.Event()
    seen = []

    def progress(ev):
        seen.append(ev)
        if ev["kind"] == "step" and (ev["epoch"], ev["step"]) == (0, 2):
            reached.set()

    killer = threading.Thread(
        target=lambda: reached.wait(60) and os.kill(os.getpid(), signal.SIGINT))
    killer.start()
    over = overrides_dict(data, out) | {"max_steps_per_epoch": 25}
    over["model"] = over["model"] | {"embed": 64}
    with pytest.raises(KeyboardInterrupt):
        dbl.train(overrides=over, progress=progress)
    killer.join()
    steps = [(e["epoch"], e["step"]) for e in seen if e["kind"] == "step"]
    assert steps[-1] < (1, 25), f"the run finished before stopping: {steps[-1]}"
    res = dbl.resume(out, progress=None)
    assert res["stopped"] is False
    same_weights(full, out)
