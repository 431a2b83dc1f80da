#!/usr/bin/env python3
"""Prints the timing table of tools/gpu/check.sh from its JSON lines (one per `dbl bench`
or `bench_peer.py` run) and the peaks line: per run the split, median seconds, phases,
GFLOP/s, the share of the measured f32 GEMM peak, peak device memory, and for each
(config, split) measured on both sides the ratio peer / dbl.

Usage: python3 tools/gpu/summary.py RESULTS.jsonl PEAKS.json
"""

import json
import sys


def main():
    rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip().startswith("{")]
    peak = None
    try:
        peak = json.load(open(sys.argv[2]))["sgemm_gflops"]
    except (OSError, ValueError, KeyError):
        pass
    print(f"f32 GEMM peak (torch, TF32 off): {peak} GFLOP/s")
    hdr = f"{'config':<11} {'impl':<8} {'split':>12} {'median s':>9} {'img/cap/score s':>22} {'GFLOP/s':>9} {'%peak':>6} {'dev MiB':>8}"
    print(hdr)
    print("-" * len(hdr))
    by = {}
    for r in rows:
        split = f"{r.get('images')}x{r.get('captions')}"
        ph = r.get("phases") or {}
        phs = "/".join(f"{ph.get(k, float('nan')):.2f}" for k in ("encode_images", "encode_captions", "score"))
        gf = r["flops"] / r["median"] / 1e9
        pct = f"{100 * gf / peak:.0f}" if peak else "-"
        mem = r.get("peak_device_mem_bytes") or (r.get("gpu") or {}).get("peak_device_mem_bytes")
        mem = f"{mem / 2**20:.0f}" if isinstance(mem, (int, float)) else "-"
        print(f"{r['config']:<11} {r['impl']:<8} {split:>12} {r['median']:>9.3f} {phs:>22} {gf:>9.0f} {pct:>6} {mem:>8}")
        by.setdefault((r["config"], split), {})[r["impl"]] = r["median"]
    for (cfg, split), m in by.items():
        if "rust" in m and "pytorch" in m:
            print(f"ratio {cfg} {split}: pytorch / dbl = {m['pytorch'] / m['rust']:.2f}x")


if __name__ == "__main__":
    main()
