#!/usr/bin/env python3
"""Power of the paired target − anchor comparison (issue #30; EXPERIMENTS.md
"Evidence with power"): how many seeds a two-sided one-sample t-test on the
per-seed differences (alpha 0.05) needs to detect a true mean of +5 rSum with
80 % power, for each estimator's measured per-seed standard deviation.

    python3 tools/study/power.py            # the table (Markdown) and the inputs
    python3 tools/study/power.py --json     # the same as JSON

Inputs (all measured, none invented here):
- dbl, best-on-dev: the per-seed differences of the hard-data OSS rows of the
  synthetic study (experiments/synthetic-study/sweeps/hard-*-oss_{rm,am}/
  summary.json, final caps), their pooled standard deviation;
- the outside PyTorch run of the original code quoted in issue #30 (3 seeds):
  best-on-dev −0.8 [−15.6, +14.1]; mean over epochs 6–20 +7.2 [+3.6, +10.7];
  the standard deviation is recovered from the 95 % half-width as
  sd = half · √n / t_{0.975, n−1};
- the spread of one epoch's difference quoted there (6–12 rSum), as the sd of
  an estimator that rests on one checkpoint per branch.
Each sd also gets its one-sided 80 % upper confidence bound,
sd · √(df / χ²_{0.20, df}), because an sd from 3–14 seeds is itself uncertain.

Power is exact for normal differences: the noncentral t probability, as one
integral over the χ² distribution of the sample variance (Simpson's rule on
a fine grid; stdlib only).
"""

import argparse
import json
import math
import os

ALPHA = 0.05
POWER = 0.80
DELTA = 5.0
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def phi(x):
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def chi2_grid(df, points=2001):
    """[(v, w)]: nodes v and weights w with sum(w·g(v)) ≈ E[g(V)], V ~ χ²_df.

    Simpson's rule in u = √v (v = u², dv = 2u du), where the integrands of
    this script are smooth also at v = 0."""
    upper = math.sqrt(df + 60.0 * math.sqrt(2.0 * df) + 60.0)
    h = upper / (points - 1)
    out = []
    for i in range(points):
        u = i * h
        v = u * u
        if u == 0.0:
            dens = 0.0 if df > 1 else 2.0 / math.sqrt(2.0 * math.pi)
        else:
            log_f = (df / 2 - 1) * math.log(v) - v / 2 - (df / 2) * math.log(2) - math.lgamma(df / 2)
            dens = math.exp(log_f) * 2 * u
        coef = 1 if i in (0, points - 1) else (4 if i % 2 else 2)
        out.append((v, dens * coef * h / 3))
    return out


def t_cdf(x, df, grid=None):
    """P(T ≤ x), T Student t with df degrees of freedom: E_V[Φ(x·√(V/df))]."""
    g = grid or chi2_grid(df)
    return sum(w * phi(x * math.sqrt(v / df)) for v, w in g)


def t_quantile(p, df):
    g = chi2_grid(df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df, g) < p:
        hi *= 2
    for _ in range(80):
        mid = (lo + hi) / 2
        if t_cdf(mid, df, g) < p:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def chi2_cdf(x, df):
    """Regularised lower incomplete gamma P(df/2, x/2) (series)."""
    a, z = df / 2.0, x / 2.0
    if z <= 0:
        return 0.0
    term = 1.0 / a
    total = term
    for n in range(1, 10000):
        term *= z / (a + n)
        total += term
        if term < total * 1e-15:
            break
    return total * math.exp(-z + a * math.log(z) - math.lgamma(a))


def chi2_quantile(p, df):
    lo, hi = 0.0, max(1.0, df * 4.0)
    while chi2_cdf(hi, df) < p:
        hi *= 2
    for _ in range(100):
        mid = (lo + hi) / 2
        if chi2_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def power(n, sd, delta=DELTA, alpha=ALPHA):
    """Power of the two-sided one-sample t-test with n values of sd `sd`."""
    df = n - 1
    c = t_quantile(1 - alpha / 2, df)
    lam = delta * math.sqrt(n) / sd
    return sum(w * (phi(-c * math.sqrt(v / df) + lam) + phi(-c * math.sqrt(v / df) - lam))
               for v, w in chi2_grid(df))


def seeds_needed(sd, target=POWER, cap=400):
    for n in range(2, cap + 1):
        if power(n, sd) >= target:
            return n
    return None


def sd_from_ci(lo, hi, n):
    half = (hi - lo) / 2
    return half * math.sqrt(n) / t_quantile(0.975, n - 1)


def upper_sd(sd, df, conf=0.80):
    return sd * math.sqrt(df / chi2_quantile(1 - conf, df))


def dbl_best_on_dev():
    """Per-seed target − anchor (best-on-dev) of the hard-data OSS rows."""
    rows = {}
    for name in ("hard-main-oss_rm", "hard-main-oss_am", "hard-sum-oss_rm", "hard-sum-oss_am"):
        p = os.path.join(REPO, "experiments/synthetic-study/sweeps", name, "summary.json")
        with open(p) as f:
            rows[name] = json.load(f)["paired_rsum"]["diffs"]
    ss = sum(sum((x - sum(d) / len(d)) ** 2 for x in d) for d in rows.values())
    df = sum(len(d) - 1 for d in rows.values())
    return rows, math.sqrt(ss / df), df


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    args = ap.parse_args()
    rows, pooled, pooled_df = dbl_best_on_dev()
    inputs = []
    for name, d in rows.items():
        m = sum(d) / len(d)
        sd = math.sqrt(sum((x - m) ** 2 for x in d) / (len(d) - 1))
        inputs.append((f"dbl best-on-dev, {name} ({len(d)} seeds)", "best-on-dev", sd, len(d) - 1))
    inputs.append((f"dbl best-on-dev, the 4 hard rows pooled ({pooled_df} df)", "best-on-dev", pooled, pooled_df))
    inputs.append(("outside PyTorch run, best-on-dev (3 seeds)", "best-on-dev", sd_from_ci(-15.6, 14.1, 3), 2))
    inputs.append(("one checkpoint per branch, per-epoch sd 6 (issue)", "one checkpoint", 6.0, None))
    inputs.append(("one checkpoint per branch, per-epoch sd 12 (issue)", "one checkpoint", 12.0, None))
    inputs.append(("outside PyTorch run, mean over epochs 6–20 (3 seeds)", "epoch mean", sd_from_ci(3.6, 10.7, 3), 2))
    table = []
    for label, est, sd, df in inputs:
        up = upper_sd(sd, df) if df else None
        table.append({
            "input": label,
            "estimator": est,
            "sd": sd,
            "df": df,
            "seeds_needed": seeds_needed(sd),
            "power_at_10": power(10, sd),
            "sd_upper80": up,
            "seeds_needed_upper80": seeds_needed(up) if up else None,
            "power_at_10_upper80": power(10, up) if up else None,
        })
    if args.json:
        print(json.dumps({"delta": DELTA, "alpha": ALPHA, "power": POWER, "rows": table,
                          "dbl_best_on_dev_diffs": rows}, indent=1))
        return
    print(f"Seeds for a two-sided paired t-test (alpha {ALPHA}) to detect +{DELTA:g} rSum "
          f"with {POWER:.0%} power.\n")
    print("| input | estimator | sd | seeds needed | power at 10 seeds | sd, 80 % upper bound | seeds needed | power at 10 |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    f = lambda x, d=1: "—" if x is None else f"{x:.{d}f}"
    for r in table:
        print(f"| {r['input']} | {r['estimator']} | {f(r['sd'], 2)} | {r['seeds_needed']} | "
              f"{f(r['power_at_10'], 2)} | {f(r['sd_upper80'], 2)} | "
              f"{r['seeds_needed_upper80'] or '—'} | {f(r['power_at_10_upper80'], 2)} |")
    print("\ndbl best-on-dev differences used:")
    for k, d in rows.items():
        print(f"- {k}: {', '.join(f'{x:+.1f}' for x in d)}")


if __name__ == "__main__":
    main()
