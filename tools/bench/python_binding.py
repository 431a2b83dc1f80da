#!/usr/bin/env python3
"""Scoring one split three ways, in alternating rounds (issue #26, BENCHMARKS.md
"Scoring from Python"):

- `cli`: `dbl score --run RUN --split S --threads T --out X.npy` as a subprocess
  (process start, loading, scoring, writing the matrix, printing the metrics);
- `python`: `dbl.load(RUN, threads=T).score_split(S)` in this process (loading +
  scoring: what the binding adds is the difference to `cli`);
- `python-arrays`: `Model.score(features, captions)` on the split read into numpy
  beforehand (the notebook path: raw features and caption strings);
- `pytorch` (with --torch): the project's PyTorch port (tools/reference/dbl_ref)
  given `Model.state_dict()`, scoring the same arrays in this process as
  bench_peer.py's scoring configs do (eval mode, no_grad, batches / shards of 100,
  torch.set_num_threads(T)).

Wall seconds and CPU seconds (all threads; the subprocess's from getrusage) per
repetition, one JSON line each on stdout, then the medians on stderr. Checks that
`python` and `python-arrays` give `dbl score`'s bits and reports the port's largest
relative difference.

Usage: python3 tools/bench/python_binding.py --run RUN --threads 2 --rounds 3 [--torch]
(the CLI is ${CARGO_TARGET_DIR:-target}/release/dbl, or --dbl PATH; the package
`dbl` must be installed: pip install ./python).
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import dbl

REPO = Path(__file__).resolve().parents[2]


def child_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timed(fn):
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w0, time.process_time() - c0


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", required=True, type=Path)
    p.add_argument("--split", default="test")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--torch", action="store_true", help="also time the PyTorch port")
    p.add_argument("--dbl", type=Path,
                   default=Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target")) / "release" / "dbl")
    a = p.parse_args()

    m = dbl.load(a.run, threads=a.threads)
    # A run records its data path relative to the run folder (absolute also works).
    data = a.run / json.loads((a.run / "config.json").read_text())["data"]
    feats = np.load(data / f"{a.split}_ims.npy")
    caps = (data / f"{a.split}_caps.txt").read_text().splitlines()
    net = None
    if a.torch:
        import torch

        sys.path.insert(0, str(REPO / "tools" / "reference"))
        import bench_peer
        from dbl_ref import models

        torch.set_num_threads(max(a.threads, 1))
        cfg = m.config
        if m.backbone == "scan-ave":
            net = models.ScanAve(m.vocab_size, img_dim=m.img_dim, word_dim=cfg["word_dim"],
                                 embed_size=m.embed_dim, sim_dim=cfg["sim_dim"])
        else:
            net = models.Vse(m.vocab_size, img_dim=m.img_dim, word_dim=cfg["word_dim"],
                             embed_size=m.embed_dim)
        net.load_state_dict({k: torch.from_numpy(v) for k, v in m.state_dict().items()})
        net.eval()
        ids = [m.tokenize(c)[0] for c in caps]
        lengths = torch.tensor([len(i) for i in ids])
        padded = torch.zeros(len(ids), int(lengths.max()), dtype=torch.int64)
        for r, i in enumerate(ids):
            padded[r, : len(i)] = torch.tensor(i)
        images = torch.from_numpy(feats)

    rows = []
    want = None
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "s.npy"
        for rnd in range(a.rounds):
            c0 = child_cpu()
            _, wall, _ = timed(lambda: subprocess.run(
                [str(a.dbl), "score", "--run", str(a.run), "--split", a.split,
                 "--threads", str(a.threads), "--out", str(out)],
                check=True, capture_output=True))
            rows.append({"impl": "cli", "round": rnd, "wall": wall, "cpu": child_cpu() - c0})
            want = np.load(out)
            s, wall, cpu = timed(lambda: dbl.load(a.run, threads=a.threads).score_split(a.split))
            assert np.array_equal(s.view(np.uint32), want.view(np.uint32)), "python != dbl score"
            rows.append({"impl": "python", "round": rnd, "wall": wall, "cpu": cpu})
            s, wall, cpu = timed(lambda: m.score(feats, caps))
            assert np.array_equal(s.view(np.uint32), want.view(np.uint32)), "arrays != dbl score"
            rows.append({"impl": "python-arrays", "round": rnd, "wall": wall, "cpu": cpu})
            if net is not None:
                (phases, sims), wall, cpu = timed(lambda: bench_peer.score_split(
                    net, m.backbone, m.embed_dim, images, padded, lengths, 100))
                rel = float(np.abs(sims.numpy() - want).max() / np.abs(want).max())
                rows.append({"impl": "pytorch", "round": rnd, "wall": wall, "cpu": cpu,
                             "phases": phases, "max_rel_diff": rel})
            for r in rows[-(4 if net is not None else 3):]:
                r.update(threads=a.threads, split=a.split, shape=list(want.shape),
                         backbone=m.backbone, embed=m.embed_dim)
                print(json.dumps(r), flush=True)
    cli_wall = statistics.median(r["wall"] for r in rows if r["impl"] == "cli")
    cli_by_round = {r["round"]: r for r in rows if r["impl"] == "cli"}
    for impl in ["cli", "python", "python-arrays", "pytorch"]:
        rs = [r for r in rows if r["impl"] == impl]
        if rs:
            w = statistics.median(r["wall"] for r in rs)
            c = statistics.median(r["cpu"] for r in rs)
            # Paired: each round's ratio to that round's `cli` (neighbours' load moves both).
            pw = statistics.median(r["wall"] / cli_by_round[r["round"]]["wall"] for r in rs)
            print(f"{impl:14} wall {w:8.3f} s (x{w / cli_wall:.3f} of cli; paired x{pw:.3f})"
                  f"  cpu {c:8.3f} s", file=sys.stderr)
    # The binding's fixed cost per call (argument checks, the worker thread, the
    # Ctrl-C / progress poll, wrapping the result): bounded above by a whole
    # 1 x 1 call, which also encodes one caption and scores one pair.
    x1, c1 = np.ascontiguousarray(feats[:1]), caps[:1]
    tiny = []
    for _ in range(200):
        t0 = time.perf_counter()
        m.score(x1, c1)
        tiny.append(time.perf_counter() - t0)
    py_wall = statistics.median(r["wall"] for r in rows if r["impl"] == "python")
    t = statistics.median(tiny)
    print(f"fixed cost per call <= {t * 1e3:.3f} ms (median of 200 calls on 1 x 1) ="
          f" {100 * t / py_wall:.3f} % of one `python` call on this split", file=sys.stderr)


if __name__ == "__main__":
    main()
