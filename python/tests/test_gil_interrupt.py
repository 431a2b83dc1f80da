"""Long scoring calls release the GIL and stop on Ctrl-C."""

import os
import signal
import threading
import time

import numpy as np
import pytest

import dbl


def big_inputs(m, data, n_img):
    feats = np.load(data / "test_ims.npy")
    feats = np.tile(feats, (n_img // feats.shape[0] + 1, 1, 1))[:n_img].copy()
    caps = (data / "test_caps.txt").read_text().splitlines()
    return feats, (caps * 20)[:1000]


def test_other_threads_run_during_a_long_score(run, data):
    m = dbl.load(run, threads=1)
    feats, caps = big_inputs(m, data, 100)
    ticks = []
    done = threading.Event()

    def ticker():
        while not done.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)

    t = threading.Thread(target=ticker)
    t0 = time.perf_counter()
    t.start()
    sims = m.score(feats, caps)
    t1 = time.perf_counter()
    done.set()
    t.join()
    assert sims.shape == (100, 1000)
    during = [x for x in ticks if t0 < x < t1]
    # The GIL held for the whole call would allow a handful of ticks at most.
    assert t1 - t0 > 0.2, "the score is too short to tell"
    assert len(during) > 0.2 * (t1 - t0) / 0.001, (len(during), t1 - t0)


def test_keyboard_interrupt_stops_scoring(sigint, run, data):
    m = dbl.load(run, threads=1)
    feats, caps = big_inputs(m, data, 1000)
    started = threading.Event()

    def progress(ev):
        started.set()

    def interrupt():
        started.wait(60)
        os.kill(os.getpid(), signal.SIGINT)

    k = threading.Thread(target=interrupt)
    k.start()
    t0 = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        m.score(feats, caps, progress=progress)
    stopped_after = time.perf_counter() - t0
    k.join()
    # Scoring the whole matrix takes much longer than stopping did.
    t1 = time.perf_counter()
    m.score(feats, caps)
    full = time.perf_counter() - t1
    assert stopped_after < 0.5 * full, (stopped_after, full)
