#!/usr/bin/env python3
"""Tables of the power study (issue #30) from the per-seed records in
experiments/power-study/<row>/seed<s>.json (tools/study/power.sh writes them):
per row, best-on-dev and the selection-robust estimate (the mean over every
epoch after the burn-in of target − anchor test rSum), each with its mean,
95 % Student-t interval and the seeds it favours the target in; the epoch
checkpoints where the target scored higher; per seed, both differences.

    python3 tools/study/power_report.py [--dest experiments/power-study]

Writes DEST/report.md, DEST/report.json and DEST/report.svg (per row, every
seed's paired difference under each estimator as dots, with the mean and its
95 % interval; a zero line) and prints the Markdown. Rows with fewer seeds
than the protocol's are marked partial.

The verdicts follow the protocol fixed in EXPERIMENTS.md §4 before any run: per
dbl row, "established" when the primary (late-epoch mean) two-sided 95 %
interval excludes 0, else "not established"; the same verdicts with Holm's
correction over the four dbl rows (from the paired t-tests' p-values, only
once all four rows are complete); where the best-on-dev interval reads
otherwise, that is said; the PyTorch row replicates dbl's hard/sum OSS-RM row
when their primary intervals overlap and their means have the same sign. A
partial row gets no verdict.
"""

import argparse
import glob
import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from power import t_cdf, t_quantile  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLANNED = {"pytorch-hard-sum-oss_rm": 5}
PLANNED_DEFAULT = 10
ORDER = ["hard-sum-oss_rm", "pytorch-hard-sum-oss_rm", "hard-main-oss_rm", "hard-sum-oss_am",
         "hard-main-oss_am"]
# The rows Holm's correction runs over, and the replication pair (EXPERIMENTS.md §4).
DBL_ROWS = [n for n in ORDER if not n.startswith("pytorch-")]
REPLICATION = ("pytorch-hard-sum-oss_rm", "hard-sum-oss_rm")
ALPHA = 0.05


def paired(d):
    n = len(d)
    m = sum(d) / n
    out = {"n": n, "mean": m, "wins": sum(1 for x in d if x > 1e-6),
           "ties": sum(1 for x in d if abs(x) <= 1e-6), "diffs": d}
    if n >= 2:
        sd = math.sqrt(sum((x - m) ** 2 for x in d) / (n - 1))
        h = t_quantile(0.975, n - 1) * sd / math.sqrt(n)
        out.update(sd=sd, ci95=[m - h, m + h])
        if sd > 0:
            t = m / (sd / math.sqrt(n))
            out["p"] = min(1.0, 2.0 * (1.0 - t_cdf(abs(t), n - 1)))
        else:
            out["p"] = 1.0 if abs(m) <= 1e-12 else 0.0
    return out


def excludes_zero(p):
    return "ci95" in p and (p["ci95"][0] > 0 or p["ci95"][1] < 0)


def holm(pvalues, alpha=ALPHA):
    """Holm's step-down procedure: {name: rejected} for {name: p}."""
    ranked = sorted(pvalues.items(), key=lambda kv: kv[1])
    out, going = {}, True
    for i, (name, p) in enumerate(ranked):
        going = going and p <= alpha / (len(ranked) - i)
        out[name] = going
    return out


def verdicts(report):
    """The protocol's verdicts (module doc) as Markdown lines."""
    complete = lambda n: n in report and len(report[n]["seeds"]) >= report[n]["planned"]
    word = lambda yes: "established" if yes else "not established"
    lines = []
    for name in [n for n in DBL_ROWS if n in report]:
        r = report[name]
        if not complete(name):
            lines.append(f"- {name}: no verdict (partial: {len(r['seeds'])} of {r['planned']} seeds)")
            continue
        late, bod = r["late"], r["best_on_dev"]
        line = (f"- {name}: **{word(excludes_zero(late))}** (primary {text(late)}, "
                f"p = {late['p']:.4f})")
        if excludes_zero(late) != excludes_zero(bod):
            line += (f"; best-on-dev reads otherwise: {text(bod)}, p = {bod['p']:.4f}, "
                     f"{word(excludes_zero(bod))}")
        lines.append(line)
    if all(complete(n) for n in DBL_ROWS):
        rejected = holm({n: report[n]["late"]["p"] for n in DBL_ROWS})
        lines.append("- With Holm's correction over the four dbl rows (α = 0.05): " + "; ".join(
            f"{n} {word(rejected[n])}" for n in DBL_ROWS))
    else:
        lines.append("- Holm's correction over the four dbl rows: once all four are complete")
    py, ref = REPLICATION
    if complete(py) and complete(ref):
        a, b = report[py]["late"], report[ref]["late"]
        overlap = a["ci95"][0] <= b["ci95"][1] and b["ci95"][0] <= a["ci95"][1]
        same = (a["mean"] > 0) == (b["mean"] > 0)
        lines.append(f"- Replication ({py} against {ref}, primary): intervals "
                     f"{'overlap' if overlap else 'do not overlap'}, means "
                     f"{'of the same sign' if same else 'of opposite signs'}: "
                     f"**{'replicates' if overlap and same else 'does not replicate'}**")
    else:
        lines.append(f"- Replication ({py} against {ref}): once both rows are complete")
    return lines


def text(p):
    ci = f"[{p['ci95'][0]:+.1f}, {p['ci95'][1]:+.1f}]" if "ci95" in p else "[CI needs 2 seeds]"
    return f"{p['mean']:+.1f} {ci}, {p['wins']}/{p['n']}"


def svg(report, names):
    """Dot plot: per row, both estimators' per-seed differences, mean and 95 % CI."""
    w, h, left, top, bottom = 900, 460, 80, 50, 110
    vals = [x for n in names for k in ("best_on_dev", "late") for x in report[n][k]["diffs"]]
    vals += [v for n in names for k in ("best_on_dev", "late")
             for v in report[n][k].get("ci95", [])]
    lo, hi = min(vals + [0.0]) - 2, max(vals + [0.0]) + 2
    y = lambda v: top + (hi - v) / (hi - lo) * (h - top - bottom)
    step = (w - left - 20) / max(len(names), 1)
    colours = {"best_on_dev": "#d95f02", "late": "#1b9e77"}
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
           f'<rect width="{w}" height="{h}" fill="white"/>',
           f'<text x="{w / 2}" y="22" text-anchor="middle" font-size="15">Power study (issue #30): '
           'target − anchor test rSum per seed, mean and 95 % CI</text>',
           f'<line x1="{left}" x2="{w - 20}" y1="{y(0)}" y2="{y(0)}" stroke="#888" stroke-dasharray="4"/>',
           f'<line x1="{left}" x2="{left}" y1="{top}" y2="{h - bottom}" stroke="black"/>',
           f'<text x="18" y="{(top + h - bottom) / 2}" transform="rotate(-90 18 {(top + h - bottom) / 2})" '
           'text-anchor="middle">Δ test rSum (target − anchor), of 600</text>']
    for t in range(int(math.ceil(lo / 5)) * 5, int(hi) + 1, 5):
        out.append(f'<text x="{left - 6}" y="{y(t) + 4}" text-anchor="end">{t}</text>')
        out.append(f'<line x1="{left - 3}" x2="{left}" y1="{y(t)}" y2="{y(t)}" stroke="black"/>')
    for i, n in enumerate(names):
        cx = left + step * (i + 0.5)
        out.append(f'<text x="{cx}" y="{h - bottom + 18}" text-anchor="middle">{n}</text>')
        out.append(f'<text x="{cx}" y="{h - bottom + 34}" text-anchor="middle">'
                   f'{len(report[n]["seeds"])} of {report[n]["planned"]} seeds</text>')
        for j, k in enumerate(("best_on_dev", "late")):
            x = cx + (j - 0.5) * step * 0.35
            p = report[n][k]
            for v in p["diffs"]:
                out.append(f'<circle cx="{x}" cy="{y(v)}" r="3" fill="{colours[k]}" fill-opacity="0.5"/>')
            if "ci95" in p:
                out.append(f'<line x1="{x + 8}" x2="{x + 8}" y1="{y(p["ci95"][0])}" y2="{y(p["ci95"][1])}" '
                           f'stroke="{colours[k]}" stroke-width="2"/>')
            out.append(f'<rect x="{x + 4}" y="{y(p["mean"]) - 1.5}" width="8" height="3" fill="{colours[k]}"/>')
    for j, (k, label) in enumerate((("best_on_dev", "best-on-dev checkpoints"),
                                    ("late", "mean over the epochs after the burn-in (primary)"))):
        lx, ly = left, h - 48 + 20 * j
        out.append(f'<circle cx="{lx}" cy="{ly}" r="4" fill="{colours[k]}"/>')
        out.append(f'<text x="{lx + 10}" y="{ly + 4}">{label}: seeds (dots), mean (bar), 95 % CI (line)</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dest", default=os.path.join(REPO, "experiments/power-study"))
    args = ap.parse_args()
    rows = {}
    for path in sorted(glob.glob(os.path.join(args.dest, "*", "seed*.json"))):
        with open(path) as f:
            r = json.load(f)
        missing = [k for k in ("row", "seed", "best_on_dev_diff", "late_mean_diff", "late",
                               "best_on_dev_test_rsum", "wall_seconds") if k not in r]
        if missing:
            sys.exit(f"{path}: not a seed record of the power study (no {', '.join(missing)}); "
                     "tools/study/power_extract.py writes them")
        rows.setdefault(r["row"], []).append(r)
    if not rows:
        sys.exit(f"{args.dest}: no seed records (<row>/seed<s>.json) to report on")
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
    md.append("Verdicts (the protocol of EXPERIMENTS.md §4):")
    md.append("")
    md.extend(verdicts(report))
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
    with open(os.path.join(args.dest, "report.svg"), "w") as f:
        f.write(svg(report, names))
    with open(os.path.join(args.dest, "report.json"), "w") as f:
        json.dump(report, f, indent=1)
    print(text_md, end="")


if __name__ == "__main__":
    main()
