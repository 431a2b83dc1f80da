#!/usr/bin/env python3
"""Tables of the power study (issue #30) from the per-seed records in
experiments/power-study/<row>/seed<s>.json (tools/study/power.sh writes them):
per row, best-on-dev and the selection-robust estimate (the mean over every
epoch after the burn-in of target − anchor test rSum), each with its mean,
95 % Student-t interval and the seeds it favours the target in; the epoch
checkpoints where the target scored higher; per seed, both differences.

    python3 tools/study/power_report.py [--dest experiments/power-study]

Writes DEST/report.md and DEST/report.json and prints the Markdown. Rows with
fewer seeds than the protocol's are marked partial.
"""

import argparse
import glob
import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from power import t_quantile  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLANNED = {"pytorch-hard-sum-oss_rm": 5}
PLANNED_DEFAULT = 10
ORDER = ["hard-sum-oss_rm", "pytorch-hard-sum-oss_rm", "hard-main-oss_rm", "hard-sum-oss_am",
         "hard-main-oss_am"]


def paired(d):
    n = len(d)
    m = sum(d) / n
    out = {"n": n, "mean": m, "wins": sum(1 for x in d if x > 1e-6),
           "ties": sum(1 for x in d if abs(x) <= 1e-6), "diffs": d}
    if n >= 2:
        sd = math.sqrt(sum((x - m) ** 2 for x in d) / (n - 1))
        h = t_quantile(0.975, n - 1) * sd / math.sqrt(n)
        out.update(sd=sd, ci95=[m - h, m + h])
    return out


def text(p):
    ci = f"[{p['ci95'][0]:+.1f}, {p['ci95'][1]:+.1f}]" if "ci95" in p else "[CI needs 2 seeds]"
    return f"{p['mean']:+.1f} {ci}, {p['wins']}/{p['n']}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dest", default=os.path.join(REPO, "experiments/power-study"))
    args = ap.parse_args()
    rows = {}
    for path in sorted(glob.glob(os.path.join(args.dest, "*", "seed*.json"))):
        with open(path) as f:
            r = json.load(f)
        rows.setdefault(r["row"], []).append(r)
    names = [n for n in ORDER if n in rows] + sorted(n for n in rows if n not in ORDER)
    report = {}
    md = ["| row | seeds (planned) | best-on-dev: target − anchor, mean [95 % CI], wins | "
          "mean over epochs after the burn-in: target − anchor, mean [95 % CI], wins | "
          "epoch checkpoints with the target ahead | anchor / target test rSum, best-on-dev |",
          "|---|---|---|---|---|---|"]
    for name in names:
        recs = sorted(rows[name], key=lambda r: r["seed"])
        planned = PLANNED.get(name, PLANNED_DEFAULT)
        bod = paired([r["best_on_dev_diff"] for r in recs])
        late = paired([r["late_mean_diff"] for r in recs])
        ep = [t - a for r in recs for t, a in zip(r["late"]["rsum"][-1], r["late"]["rsum"][0])]
        anchor = sum(r["best_on_dev_test_rsum"][0] for r in recs) / len(recs)
        target = sum(r["best_on_dev_test_rsum"][-1] for r in recs) / len(recs)
        partial = "" if len(recs) >= planned else " **partial**"
        report[name] = {"seeds": [r["seed"] for r in recs], "planned": planned,
                        "best_on_dev": bod, "late": late,
                        "epoch_wins": sum(1 for d in ep if d > 1e-6), "epoch_total": len(ep),
                        "wall_seconds": sum(r["wall_seconds"] for r in recs)}
        md.append(f"| {name} | {len(recs)} ({planned}){partial} | {text(bod)} | {text(late)} | "
                  f"{report[name]['epoch_wins']} of {len(ep)} | {anchor:.1f} / {target:.1f} |")
    md.append("")
    md.append("Per seed (best-on-dev difference; late-epoch mean difference over the epochs averaged):")
    md.append("")
    for name in names:
        recs = sorted(rows[name], key=lambda r: r["seed"])
        cells = ", ".join(f"seed {r['seed']}: {r['best_on_dev_diff']:+.1f}; "
                          f"{r['late_mean_diff']:+.1f} over {len(r['late']['epochs'])}"
                          for r in recs)
        md.append(f"- {name}: {cells}")
    total = sum(v["wall_seconds"] for v in report.values())
    md.append("")
    md.append(f"Wall time of the recorded seeds: {total / 3600:.2f} h.")
    text_md = "\n".join(md) + "\n"
    with open(os.path.join(args.dest, "report.md"), "w") as f:
        f.write(text_md)
    with open(os.path.join(args.dest, "report.json"), "w") as f:
        json.dump(report, f, indent=1)
    print(text_md, end="")


if __name__ == "__main__":
    main()
