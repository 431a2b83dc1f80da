#!/usr/bin/env python3
"""Plots `dbl index recall` outputs: R@1/5/10 of two-stage search against the
shortlist size K, one line per (shortlist source, R@k), exact full ranking as
dashed horizontal lines; text→image and image→text side by side.

    python3 plot_recall.py --out recall.png LABEL=recall.json [LABEL=recall.json ...]
"""
import argparse
import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("runs", nargs="+")
    a = ap.parse_args()
    fig, axes = plt.subplots(1, 2, figsize=(15, 4.8), sharey=True)
    colors = {"r1": "tab:blue", "r5": "tab:orange", "r10": "tab:green"}
    styles = ["-o", "-s", "-^", "-v"]
    first = None
    for i, spec in enumerate(a.runs):
        label, path = spec.split("=", 1)
        d = json.load(open(path))
        first = first or d
        exact = next(r for r in d["rows"] if r["k"] is None)
        rows = [r for r in d["rows"] if r["k"] is not None]
        ks = [r["k"] for r in rows]
        for ax, side in zip(axes, ["t2i", "i2t"]):
            for m in ["r1", "r5", "r10"]:
                ax.plot(ks, [r[side][m] for r in rows], styles[i % 4], color=colors[m],
                        label=f"{label}: {m.upper().replace('R', 'R@')}")
                if i == 0:
                    ax.axhline(exact[side][m], color=colors[m], ls="--", lw=1,
                               label=f"exact full ranking: {m.upper().replace('R', 'R@')}")
    for ax, title in zip(axes, ["text → image", "image → text"]):
        ax.set_xscale("log")
        ax.minorticks_off()
        ax.set_xticks([20, 50, 100, 200])
        ax.set_xticklabels(["20", "50", "100", "200"])
        ax.set_xlabel("shortlist size K (candidates re-ranked)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("recall (%)")
    axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.suptitle(f"Two-stage search vs exact ranking — {first['backbone']} run, "
                 f"{first['n_images']} images / {first['n_captions']} captions")
    fig.tight_layout()
    fig.savefig(a.out, dpi=120)
    print(a.out)


if __name__ == "__main__":
    main()
