#!/usr/bin/env python3
"""One finished seed of the power study (issue #30) as a small JSON record
for the repository (experiments/power-study/<row>/seed<s>.json): per-epoch dev
and test rSum of both branches, the best-on-dev epochs and their test rSum,
the late test records and the selection-robust value, the wall seconds.
Never a checkpoint.

    python3 tools/study/power_extract.py dbl SWEEP/seed3 --row hard-sum-oss_rm --commit C
    python3 tools/study/power_extract.py pytorch RUN/seed3 --row pytorch-hard-sum-oss_rm

dbl: reads SEED/test.json and SEED/branch{k}/metrics.jsonl; pytorch: RUN/result.json
(tools/reference/train_oss.py). Prints the record; exits 1 if the seed is unfinished.
"""

import argparse
import json
import os
import sys


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip()]


def from_dbl(seed_dir):
    res_path = os.path.join(seed_dir, "test.json")
    if not os.path.exists(res_path):
        return None
    with open(res_path) as f:
        res = json.load(f)
    n = len(res["branches"])
    epochs = {}
    for k in range(n):
        for r in read_jsonl(os.path.join(seed_dir, f"branch{k}", "metrics.jsonl")):
            if r.get("kind") not in ("eval", "test"):
                continue
            e = epochs.setdefault(r["epoch"] + 1, {"epoch": r["epoch"] + 1,
                                                   "dev_rsum": [None] * n, "test_rsum": None})
            if r["kind"] == "eval":
                e["dev_rsum"][k] = r["dev"]["rsum"]
                e.setdefault("seconds", r.get("seconds"))
            else:
                if e["test_rsum"] is None:
                    e["test_rsum"] = [None] * n
                e["test_rsum"][k] = r["test"]["rsum"]
    best_epoch = []
    for k in range(n):
        best = None
        for e in sorted(epochs):
            d = epochs[e]["dev_rsum"][k]
            if d is not None and (best is None or d > epochs[best]["dev_rsum"][k]):
                best = e
        best_epoch.append(best)
    return {
        "seed": res["seed"],
        "epochs": [epochs[e] for e in sorted(epochs)],
        "best_dev_epoch": best_epoch,
        "best_dev_rsum": [b["best_dev_rsum"] for b in res["branches"]],
        "best_on_dev_test_rsum": [b["test"]["rsum"] for b in res["branches"]],
        "late": res.get("late"),
        "wall_seconds": res["wall_seconds"],
    }


def from_pytorch(run_dir):
    path = os.path.join(run_dir, "result.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        res = json.load(f)
    return {
        "seed": res["seed"],
        "epochs": [{"epoch": r["epoch"], "dev_rsum": r["dev_rsum"],
                    "test_rsum": r.get("test_rsum"), "seconds": r.get("seconds")}
                   for r in res["epochs"]],
        "best_dev_epoch": res["best_dev_epoch"],
        "best_dev_rsum": res["best_dev_rsum"],
        "best_on_dev_test_rsum": [b["rsum"] for b in res["best_on_dev_test"]],
        "late": res["late"],
        "wall_seconds": res["wall_seconds"],
        "args": res["args"],
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("impl", choices=["dbl", "pytorch"])
    ap.add_argument("dir", help="the seed's run folder")
    ap.add_argument("--row", required=True, help="row name, e.g. hard-sum-oss_rm")
    ap.add_argument("--commit", default=None, help="commit of the binary / script that ran it")
    args = ap.parse_args()
    rec = from_dbl(args.dir) if args.impl == "dbl" else from_pytorch(args.dir)
    if rec is None:
        print(f"{args.dir}: not finished", file=sys.stderr)
        sys.exit(1)
    late = rec["late"]
    if late:
        d = [t - a for t, a in zip(late["rsum"][-1], late["rsum"][0])]
        rec["late_mean_diff"] = sum(d) / len(d)
    rec["best_on_dev_diff"] = rec["best_on_dev_test_rsum"][-1] - rec["best_on_dev_test_rsum"][0]
    out = {"impl": args.impl, "row": args.row, "commit": args.commit}
    out.update(rec)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
