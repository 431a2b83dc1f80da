#!/usr/bin/env python3
"""The study's per-seed tables, as EXPERIMENTS.md §3 prints them, from the
`dbl sweep compare` outputs that tools/study/report.sh writes:

    python3 tools/study/tables.py [--compare experiments/synthetic-study/compare]

One table per data set and setting (compare/<data>-<setting>/compare.json):
per sweep, the anchor's and the target's test rSum per seed, the paired
target − own anchor (mean [95 % CI], wins) and, where report.sh gave a
baseline, the target − baseline pairing (`vs_baseline`); and the wall time
in the seeds' test records, summed (training, dev and test scoring). The
study's frozen binary (580a46e) records only the last invocation's time in an
extended seed, so for phase 2 that sum is the extension's cost; binaries from
this commit on carry the earlier time over. Trains nothing.
"""
import argparse
import glob
import json
import os


def fmt_paired(p):
    if not p:
        return "no common seed"
    lo, hi = p["ci95"]
    n = len(p["diffs"])
    ci = "" if lo is None or hi is None or lo != lo else f" [{lo:+.1f}, {hi:+.1f}]"
    ties = f" ({p['ties']} tied)" if p.get("ties") else ""
    return f"{p['mean']:+.1f}{ci}, {p['wins']}/{n}{ties}"


def per_seed(branch):
    return ", ".join(f"{x:.1f}" for x in branch["rsum_per_seed"])


def table(rows):
    with_base = any("vs_baseline" in r for r in rows)
    head = "| sweep | anchor test rSum per seed | target test rSum per seed | target − own anchor: mean [95 % CI], wins |"
    rule = "|---|---|---|---|"
    if with_base:
        base = next(r["vs_baseline"]["baseline"] for r in rows if "vs_baseline" in r)
        head += f" target − baseline ({base} anchor): mean [95 % CI], wins |"
        rule += "---|"
    out = [head, rule]
    for r in rows:
        b = r["branches"]
        line = f"| {r['name']} | {per_seed(b[0])} | {per_seed(b[-1])} | {fmt_paired(r.get('paired_rsum'))} |"
        if with_base:
            vb = r.get("vs_baseline")
            line += f" {fmt_paired(vb['paired']) if vb else ''} |"
        out.append(line)
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--compare", default="experiments/synthetic-study/compare")
    a = ap.parse_args()
    files = sorted(glob.glob(os.path.join(a.compare, "*", "compare.json")))
    if not files:
        raise SystemExit(f"no */compare.json under {a.compare}")
    for f in files:
        rows = json.load(open(f))
        if not isinstance(rows, list):
            raise SystemExit(f"{f}: not a dbl sweep compare list")
        print(f"**{os.path.basename(os.path.dirname(f))}**\n")
        print(table(rows))
        wall = sum(r["wall_seconds"]["mean"] * r["wall_seconds"]["n"] for r in rows if r.get("wall_seconds"))
        print(f"\nWall time in these seeds' test records, summed: {wall / 3600:.2f} h.\n")


if __name__ == "__main__":
    main()
