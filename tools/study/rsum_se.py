#!/usr/bin/env python3
"""Standard error of one checkpoint's test rSum from its similarity matrix
(issue #30; EXPERIMENTS.md "Evidence with power"), two ways:

1. cluster bootstrap over test images: the ranks are computed once on the
   whole matrix; each replicate draws N images with replacement and takes
   the i2t query of each drawn image and the t2i queries of its 5 captions
   (captions stay with their image). SE = sd of the replicates' rSum;
2. disjoint halves: the images are split at random into two halves, each
   half scored on its own N/2 × 5N/2 sub-matrix (its own distractors); the
   sd of rSum(half 1) − rSum(half 2) over partitions is √2 · SE(N/2), and
   SE(N) ≈ SE(N/2) / √2 = sd / 2.

With --paired OTHER.npy (a second checkpoint scored on the same split) it
also reports the SE of rSum(SIMS) − rSum(OTHER) by the same bootstrap (both
matrices resampled with the same images): the noise of a paired difference,
which is what the sweep's estimators average.

With --prefix P it also reports both for the first P images alone (the
synthetic generator gives every image its own stream, so the first 200 test
images of a larger split are the 200-image split of the earlier study).

    /work/venv/bin/python tools/study/rsum_se.py SIMS.npy [--paired OTHER.npy] [--prefix 200] [--json OUT]

SIMS.npy: [N images, 5N captions] float32, as `dbl score --split test --out` writes.
"""

import argparse
import json

import numpy as np

K = (1, 5, 10)
CAPS = 5


def ranks(s):
    """0-based i2t rank of each image, t2i rank of each caption (docs/method.md §8)."""
    n = s.shape[0]
    order = np.argsort(-s, axis=1, kind="stable")
    owner = order // CAPS
    i2t = np.argmax(owner == np.arange(n)[:, None], axis=1)
    col = s.T  # [5N, N]
    own = col[np.arange(col.shape[0]), np.arange(col.shape[0]) // CAPS]
    # rank of the caption's image: images scoring strictly higher, plus earlier ties.
    higher = (col > own[:, None]).sum(axis=1)
    ties_before = np.array([(col[k, : k // CAPS] == own[k]).sum() for k in range(col.shape[0])])
    t2i = higher + ties_before
    return i2t, t2i


def rsum_of(i2t, t2i):
    return sum(100.0 * (i2t < k).mean() for k in K) + sum(100.0 * (t2i < k).mean() for k in K)


def estimate(s, reps, partitions, rng):
    n = s.shape[0]
    i2t, t2i = ranks(s)
    full = rsum_of(i2t, t2i)
    t2i_by_image = t2i.reshape(n, CAPS)
    boot = []
    for _ in range(reps):
        pick = rng.integers(0, n, n)
        boot.append(rsum_of(i2t[pick], t2i_by_image[pick].ravel()))
    halves = []
    for _ in range(partitions):
        perm = rng.permutation(n)
        h = []
        for part in (np.sort(perm[: n // 2]), np.sort(perm[n // 2 : 2 * (n // 2)])):
            cap_idx = (part[:, None] * CAPS + np.arange(CAPS)).ravel()
            a, b = ranks(s[np.ix_(part, cap_idx)])
            h.append(rsum_of(a, b))
        halves.append(h[0] - h[1])
    return {
        "images": n,
        "rsum": full,
        "se_bootstrap": float(np.std(boot, ddof=1)),
        "se_halves": float(np.std(halves, ddof=1) / 2.0),
        "bootstrap_reps": reps,
        "partitions": partitions,
    }


def paired_se(s, o, reps, rng):
    """Bootstrap SE of rSum(s) − rSum(o) over images (the same draw for both)."""
    n = s.shape[0]
    a_i2t, a_t2i = ranks(s)
    b_i2t, b_t2i = ranks(o)
    a_t, b_t = a_t2i.reshape(n, CAPS), b_t2i.reshape(n, CAPS)
    diff = rsum_of(a_i2t, a_t2i) - rsum_of(b_i2t, b_t2i)
    boot = []
    for _ in range(reps):
        pick = rng.integers(0, n, n)
        boot.append(rsum_of(a_i2t[pick], a_t[pick].ravel()) - rsum_of(b_i2t[pick], b_t[pick].ravel()))
    return {"images": n, "diff": diff, "se_bootstrap": float(np.std(boot, ddof=1)), "bootstrap_reps": reps}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("sims", help="[N, 5N] similarity matrix (.npy)")
    ap.add_argument("--paired", help="a second [N, 5N] matrix: SE of the rSum difference")
    ap.add_argument("--prefix", type=int, nargs="*", default=[], help="also for the first P images")
    ap.add_argument("--reps", type=int, default=2000, help="bootstrap replicates (2000)")
    ap.add_argument("--partitions", type=int, default=200, help="random half-splits (200)")
    ap.add_argument("--seed", type=int, default=0, help="RNG seed of the resampling (0)")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    s = np.load(args.sims).astype(np.float64)
    if s.shape[1] != CAPS * s.shape[0]:
        raise SystemExit(f"{args.sims}: shape {s.shape}, expected [N, 5N]")
    out = []
    for p in [s.shape[0]] + args.prefix:
        sub = s[:p, : CAPS * p]
        r = estimate(sub, args.reps, args.partitions, np.random.default_rng(args.seed))
        out.append(r)
        print(f"{p} images: rSum {r['rsum']:.1f}, SE {r['se_bootstrap']:.2f} (bootstrap over "
              f"images, {args.reps} reps), {r['se_halves']:.2f} (disjoint halves, "
              f"{args.partitions} partitions)")
    if args.paired:
        o = np.load(args.paired).astype(np.float64)
        if o.shape != s.shape:
            raise SystemExit(f"{args.paired}: shape {o.shape}, expected {s.shape}")
        for p in [s.shape[0]] + args.prefix:
            r = paired_se(s[:p, : CAPS * p], o[:p, : CAPS * p], args.reps,
                          np.random.default_rng(args.seed))
            out.append(r)
            print(f"{p} images: rSum difference {r['diff']:+.1f}, SE {r['se_bootstrap']:.2f} "
                  f"(bootstrap over images, {args.reps} reps)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
