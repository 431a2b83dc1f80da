#!/usr/bin/env python3
"""Dev rSum per epoch of every branch of every seed in the study's sweeps, and
how many branch runs had their best dev rSum in their last epoch at the cap,
and how many seeds (cohorts) the cap ended before patience did: every branch
trained all --cap epochs and at least one had its best dev rSum within the
last --patience of them (dbl stops a cohort when every branch's best is at
least `patience` epochs old), and the hours the finished epochs took
(training and dev scoring; test scoring is not counted). EXPERIMENTS.md §3
quotes these.

    python3 tools/study/curves.py [--study /work/study] [--cap 4] [--patience 2] [--curves]

Reads only each seed's branch*/metrics.jsonl (the "eval" records of the last
stage) of seeds that have been tested (test.json, or test.epochs*.json while
an extension runs). The cap count looks at the first --cap epochs only.
"""
import argparse
import glob
import json
import os

from seeds import seed_dirs, seed_no


def evals(path):
    """Dev rSum per epoch of the last stage in one branch's metrics.jsonl."""
    recs = []
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            if r.get("kind") == "eval":
                recs.append(r)
    if not recs:
        return []
    last = max(r.get("stage", 1) for r in recs)
    return [r["dev"]["rsum"] for r in recs if r.get("stage", 1) == last]


def epoch_seconds(seed_dir):
    """Seconds of every finished epoch of one seed (training and dev scoring;
    each (stage, epoch) once, though every branch records it). Kept in
    metrics.jsonl as each epoch ends, so a killed and resumed run counts only
    the epochs that made it into the result."""
    seen = {}
    for b in glob.glob(seed_dir + "branch*/metrics.jsonl"):
        with open(b) as f:
            for line in f:
                r = json.loads(line)
                if r.get("kind") == "eval" and "seconds" in r:
                    key = (r.get("stage", 1), r["epoch"])
                    seen[key] = max(seen.get(key, 0.0), r["seconds"])
    return sum(seen.values())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--study", default="/work/study")
    ap.add_argument("--cap", type=int, default=4, help="the epoch cap the sweeps ran with")
    ap.add_argument("--patience", type=int, default=2, help="the sweeps' patience")
    ap.add_argument("--curves", action="store_true", help="also print every dev curve")
    ap.add_argument("--only", help="one sweep (its folder name under sweeps/)")
    ap.add_argument(
        "--cut-count",
        action="store_true",
        help="print only the number of seeds the cap ended before patience (with --only)",
    )
    a = ap.parse_args()
    groups = {}
    total_secs = 0.0
    pattern = a.only if a.only else "*"
    for sw in sorted(glob.glob(os.path.join(a.study, "sweeps", pattern + "/"))):
        name = os.path.basename(sw.rstrip("/"))
        runs = capped = seeds = cut = 0
        secs = 0.0
        for sd in seed_dirs(sw):
            line = []
            bests = []
            secs += epoch_seconds(sd)
            for b in sorted(glob.glob(sd + "branch*/metrics.jsonl")):
                r = evals(b)
                if not r:
                    continue
                runs += 1
                # Judged on the first `cap` epochs, so a sweep extended
                # later (dbl sweep --extend-epochs) still gives its phase-1 count.
                head = r[: a.cap]
                bests.append(max(range(len(head)), key=lambda i: head[i]) + 1 if len(head) == a.cap else None)
                if len(head) == a.cap and max(range(a.cap), key=lambda i: head[i]) == a.cap - 1:
                    capped += 1
                k = os.path.basename(os.path.dirname(b))
                line.append(f"{k}[{' '.join(f'{x:.0f}' for x in r)}]")
            if bests:
                seeds += 1
                if all(e is not None for e in bests) and any(a.cap - e < a.patience for e in bests):
                    cut += 1
            if a.curves:
                print(f"{name} seed{seed_no(sd)}: {' '.join(line)}")
        if a.cut_count:
            print(cut)
            continue
        print(
            f"{name}: {runs} branch runs, {capped} with their best dev rSum in epoch {a.cap} (the cap); "
            f"{cut} of {seeds} seeds ended by the cap before patience; "
            f"epochs took {secs / 3600:.2f} h"
        )
        total_secs += secs
        g = "-".join(name.split("-")[:2])
        t = groups.setdefault(g, [0, 0])
        t[0] += runs
        t[1] += capped
    if a.cut_count:
        return
    for g, (runs, capped) in groups.items():
        print(f"{g}: {capped} of {runs} branch runs at the cap")
    print(f"all sweeps: the finished epochs took {total_secs / 3600:.2f} h (training and dev scoring)")


if __name__ == "__main__":
    main()
