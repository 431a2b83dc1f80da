#!/usr/bin/env python3
"""Measures the machine's f32 GEMM peak as PyTorch (MKL/oneDNN) reaches it.

C[M, N] = A[M, K] @ B[K, N] with M = 4608 (= 128 x 36 regions), K = 2048, N = 1024, i.e.
the image FC of one training batch (design.md decision 2 quotes this shape). FLOP =
2 M K N. For each thread count: torch.set_num_threads(T), 3 warm-up products, then
`--reps` timed products; prints one JSON line per thread count with the median
GFLOP/s, which BENCHMARKS.md quotes as "sgemm peak" and run_bench.py divides by.

Usage: python3 tools/bench/sgemm_peak.py [--threads 1 2] [--reps 20] [--m 4608 --k 2048 --n 1024]
"""

import argparse
import json
import os
import statistics
import sys
import time


def main(argv=None):
    p = argparse.ArgumentParser(description="Median torch sgemm GFLOP/s at the given thread counts.")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts (default 1 2)")
    p.add_argument("--reps", type=int, default=20, help="timed products per thread count (default 20)")
    p.add_argument("--m", type=int, default=4608, help="rows of A and C (default 4608)")
    p.add_argument("--k", type=int, default=2048, help="inner dimension (default 2048)")
    p.add_argument("--n", type=int, default=1024, help="columns of B and C (default 1024)")
    a = p.parse_args(argv)
    if min(a.threads) < 1 or a.reps < 1 or min(a.m, a.k, a.n) < 1:
        p.error("threads, reps and dimensions must be >= 1")
    # Pools size themselves from these at start-up; allow the largest count requested.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(max(a.threads)))
    import torch

    g = torch.Generator().manual_seed(0)
    x = torch.rand(a.m, a.k, generator=g)
    w = torch.rand(a.k, a.n, generator=g)
    out = torch.empty(a.m, a.n)
    flop = 2 * a.m * a.k * a.n
    for t in a.threads:
        torch.set_num_threads(t)
        for _ in range(3):
            torch.mm(x, w, out=out)
        secs = []
        for _ in range(a.reps):
            t0 = time.perf_counter()
            torch.mm(x, w, out=out)
            secs.append(time.perf_counter() - t0)
        med = statistics.median(secs)
        line = {
            "bench": "sgemm",
            "threads": t,
            "m": a.m,
            "k": a.k,
            "n": a.n,
            "reps": a.reps,
            "median_s": round(med, 6),
            "gflops": round(flop / med / 1e9, 1),
            "best_gflops": round(flop / min(secs) / 1e9, 1),
            "version": f"torch {torch.__version__}",
        }
        print(json.dumps(line), flush=True)
        print(f"sgemm {a.m}x{a.k}x{a.n}, {t} thread(s): median {line['gflops']} GFLOP/s", file=sys.stderr)


if __name__ == "__main__":
    main()
