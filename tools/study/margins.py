#!/usr/bin/env python3
"""Where the margins sit on the score scale: test-split score statistics of
the anchor (branch 0) and the target (last branch) of finished study seeds,
from their best-on-dev checkpoints (EXPERIMENTS.md §3 asks "the margin
against the score scale"). For each sweep given:

    python3 tools/study/margins.py [--study /work/study] [--dbl target/release/dbl] SWEEP...

scores the test split once per branch and seed with `dbl score --out`
(about 6 s each at embed 256) and prints, averaged over seeds:

- the score range (1st and 99th percentile of all image-caption scores);
- per positive pair (a caption and its image): the positive score, the
  hardest negative in both directions (t2i: the best other image for the
  caption; i2t: the best other caption for the image) and the gap
  positive − hardest negative; the share of gaps at or above the base
  margin gamma (0.2) and below 0 (a ranking error);
- target against anchor: the mean gap difference, and the share of positive
  pairs where the target's t2i gap beats the anchor's by gamma (what Relative
  Max asks of the pair's hardest violation), where the target's positive
  lies gamma/2 above the anchor's, and where its hardest t2i negative lies
  gamma/2 below the anchor's for that negative (what Absolute Max asks).

Captions are assumed to come in blocks of 5 per image (the synthetic data's
layout, as in Flickr30K/MSCOCO). Trains nothing; writes only temporary files.
"""
import argparse
import json
import os
import subprocess
import tempfile

import numpy as np
from seeds import seed_dirs, seed_no

GAMMA = 0.2


def score(dbl, seed_dir, branch, tmp):
    out = os.path.join(tmp, f"b{branch}.npy")
    subprocess.run(
        [dbl, "score", "--run", seed_dir, "--branch", str(branch), "--split", "test",
         "--out", out, "--threads", "1"],
        check=True, stdout=subprocess.DEVNULL,
    )
    return np.load(out).astype(np.float64)


def gaps(s):
    """Per caption j (owner i = j // 5): positive, hardest negatives, gaps."""
    n_img, n_cap = s.shape
    per = n_cap // n_img
    owner = np.arange(n_cap) // per
    pos = s[owner, np.arange(n_cap)]
    # t2i: the best other image for caption j.
    masked = s.copy()
    masked[owner, np.arange(n_cap)] = -np.inf
    t2i_neg_idx = masked.argmax(axis=0)
    t2i_neg = masked[t2i_neg_idx, np.arange(n_cap)]
    # i2t: the best caption of another image, for caption j's image.
    own = np.zeros_like(s, dtype=bool)
    own[owner, np.arange(n_cap)] = True
    i2t_neg = np.where(own, -np.inf, s).max(axis=1)[owner]
    return {
        "pos": pos,
        "t2i_neg": t2i_neg,
        "t2i_neg_idx": t2i_neg_idx,
        "i2t_neg": i2t_neg,
        "t2i_gap": pos - t2i_neg,
        "i2t_gap": pos - i2t_neg,
    }


def seed_stats(a, t):
    ga, gt = gaps(a), gaps(t)
    cols = np.arange(a.shape[1])
    out = {}
    for name, s, g in (("anchor", a, ga), ("target", t, gt)):
        out[name] = {
            "p01": np.percentile(s, 1),
            "p99": np.percentile(s, 99),
            "pos": g["pos"].mean(),
            "t2i_neg": g["t2i_neg"].mean(),
            "i2t_neg": g["i2t_neg"].mean(),
            "t2i_gap": g["t2i_gap"].mean(),
            "i2t_gap": g["i2t_gap"].mean(),
            "gap_ge_margin": np.mean(np.concatenate([g["t2i_gap"], g["i2t_gap"]]) >= GAMMA),
            "gap_lt_0": np.mean(np.concatenate([g["t2i_gap"], g["i2t_gap"]]) < 0),
        }
    # The target's hardest t2i negative, scored by the anchor too.
    a_at_t_neg = a[gt["t2i_neg_idx"], cols]
    out["pair"] = {
        "gap_diff": (gt["t2i_gap"] - ga["t2i_gap"]).mean(),
        "rm_met": np.mean(gt["t2i_gap"] >= ga["t2i_gap"] + GAMMA),
        "am_pos_met": np.mean(gt["pos"] >= ga["pos"] + GAMMA / 2),
        "am_neg_met": np.mean(gt["t2i_neg"] <= a_at_t_neg - GAMMA / 2),
    }
    return out


def averager(stats):
    """(branch or "pair", key) → the mean over seeds of stats[seed][branch][key]."""
    return lambda who, key: float(np.mean([s[who][key] for s in stats]))


def last_branch(seed_dir):
    cfg = json.load(open(os.path.join(seed_dir, "config.json")))
    return cfg.get("branches", 2) - 1 if cfg.get("regime") == "oss" else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--study", default="/work/study")
    ap.add_argument("--dbl", default="target/release/dbl")
    ap.add_argument("--per-seed", action="store_true", help="also one row per seed")
    ap.add_argument("sweeps", nargs="+", help="sweep folder names under STUDY/sweeps")
    a = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in a.sweeps:
            seeds = [sd.rstrip("/") for sd in seed_dirs(os.path.join(a.study, "sweeps", name), "test.json")]
            if not seeds:
                raise SystemExit(f"{name}: no finished seed (test.json) under {a.study}/sweeps")
            stats = [seed_stats(score(a.dbl, sd, 0, tmp), score(a.dbl, sd, last_branch(sd), tmp)) for sd in seeds]
            rows.append((name, len(seeds), averager(stats)))
            if a.per_seed:
                rows.extend((f"{name} seed{seed_no(sd)}", 1, averager([st])) for sd, st in zip(seeds, stats))
    print("| sweep | seeds | branch | scores p1–p99 | positive | hardest neg t2i / i2t | gap t2i / i2t | gaps ≥ γ | gaps < 0 |")
    print("|---|---:|---|---|---:|---|---|---:|---:|")
    for name, n, mean in rows:
        for who in ("anchor", "target"):
            print(
                f"| {name} | {n} | {who} | {mean(who, 'p01'):+.2f} … {mean(who, 'p99'):+.2f} | "
                f"{mean(who, 'pos'):+.3f} | {mean(who, 't2i_neg'):+.3f} / {mean(who, 'i2t_neg'):+.3f} | "
                f"{mean(who, 't2i_gap'):+.3f} / {mean(who, 'i2t_gap'):+.3f} | "
                f"{100 * mean(who, 'gap_ge_margin'):.1f} % | {100 * mean(who, 'gap_lt_0'):.1f} % |"
            )
    print()
    print("| sweep | target − anchor t2i gap | RM met (gap ≥ anchor's + γ) | AM positive met (+γ/2) | AM hardest negative met (−γ/2) |")
    print("|---|---:|---:|---:|---:|")
    for name, n, mean in rows:
        print(
            f"| {name} | {mean('pair', 'gap_diff'):+.3f} | {100 * mean('pair', 'rm_met'):.1f} % | "
            f"{100 * mean('pair', 'am_pos_met'):.1f} % | {100 * mean('pair', 'am_neg_met'):.1f} % |"
        )


if __name__ == "__main__":
    main()
