"""Tests of the power study's report (tools/study/power_report.py): the paired
t-test's p-value, Holm's step-down procedure and the protocol's verdicts
(EXPERIMENTS.md §4), on made-up seed records in a scratch folder.

    python3 -m pytest -q tools/study
"""

import json
import math
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import power_report  # noqa: E402

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "power_report.py")
T_975_9 = 2.2621571627  # Student t, 0.975 quantile, 9 degrees of freedom
UP = [4.0 + (-1.0) ** s for s in range(10)]  # 10 seeds clearly above 0
FLAT = [6.0 * (-1.0) ** s for s in range(10)]  # 10 seeds of mean 0


def test_p_value_at_the_critical_t_is_alpha_and_the_interval_touches_zero():
    base = [(-1.0) ** i for i in range(10)]  # mean 0
    sd = math.sqrt(sum(x * x for x in base) / 9)
    shift = T_975_9 * sd / math.sqrt(10)
    p = power_report.paired([x + shift for x in base])
    assert abs(p["p"] - 0.05) < 1e-4
    assert abs(p["ci95"][0]) < 1e-4
    assert not power_report.excludes_zero(power_report.paired([x + 0.9 * shift for x in base]))
    assert power_report.excludes_zero(power_report.paired([x + 1.1 * shift for x in base]))
    assert power_report.excludes_zero(power_report.paired([x - 1.1 * shift for x in base]))


def test_holm_steps_down_and_stops_at_the_first_failure():
    assert power_report.holm({"a": 0.01, "b": 0.02, "c": 0.03, "d": 0.04}) == {
        "a": True, "b": False, "c": False, "d": False}
    assert power_report.holm({"a": 0.001, "b": 0.01, "c": 0.02, "d": 0.5}) == {
        "a": True, "b": True, "c": True, "d": False}
    # A small p after a failure stays unrejected (step-down, not step-up).
    assert power_report.holm({"a": 0.03, "b": 0.031, "c": 0.032, "d": 0.033}) == {
        "a": False, "b": False, "c": False, "d": False}


def record(row, seed, late, best):
    return {"impl": "dbl", "row": row, "seed": seed, "commit": "x", "best_on_dev_diff": best,
            "late_mean_diff": late, "late": {"epochs": [6], "rsum": [[300.0], [300.0 + late]]},
            "best_on_dev_test_rsum": [300.0, 300.0 + best], "wall_seconds": 1.0}


def write_row(dest, row, lates, bests):
    os.makedirs(os.path.join(dest, row), exist_ok=True)
    for s, (late, best) in enumerate(zip(lates, bests)):
        with open(os.path.join(dest, row, f"seed{s}.json"), "w") as f:
            json.dump(record(row, s, late, best), f)


def report(dest):
    """The verdict lines the report prints for the records in `dest`."""
    out = subprocess.run([sys.executable, SCRIPT, "--dest", str(dest)], capture_output=True,
                         text=True, check=True).stdout
    section = out.split("Verdicts (")[1].split("Per seed (")[0]
    return [line for line in section.splitlines() if line.startswith("- ")]


def test_verdicts_of_complete_and_partial_rows(tmp_path):
    up, flat = UP, FLAT
    write_row(tmp_path, "hard-sum-oss_rm", up, flat)
    write_row(tmp_path, "hard-main-oss_rm", flat, flat)
    write_row(tmp_path, "hard-sum-oss_am", up[:4], up[:4])
    write_row(tmp_path, "pytorch-hard-sum-oss_rm", up[:5], up[:5])
    lines = report(tmp_path)
    by = {line.split(":")[0][2:]: line for line in lines}
    assert "**established**" in by["hard-sum-oss_rm"]
    assert "best-on-dev reads otherwise" in by["hard-sum-oss_rm"]
    assert "**not established**" in by["hard-main-oss_rm"]
    assert "otherwise" not in by["hard-main-oss_rm"]
    assert "no verdict (partial: 4 of 10 seeds)" in by["hard-sum-oss_am"]
    assert any(line.startswith("- Holm's correction over the four dbl rows: once") for line in lines)
    assert any("**replicates**" in line for line in lines)


def test_holm_and_a_failed_replication_once_every_row_is_complete(tmp_path):
    up, flat = UP, FLAT
    for row in power_report.DBL_ROWS:
        write_row(tmp_path, row, up if row.startswith("hard-sum") else flat, up)
    write_row(tmp_path, "pytorch-hard-sum-oss_rm", [-x for x in up[:5]], up[:5])
    lines = report(tmp_path)
    holm = [line for line in lines if "Holm" in line]
    assert holm == ["- With Holm's correction over the four dbl rows (α = 0.05): "
                    "hard-sum-oss_rm established; hard-main-oss_rm not established; "
                    "hard-sum-oss_am established; hard-main-oss_am not established"]
    assert any("do not overlap" in line and "**does not replicate**" in line for line in lines)


def test_overlapping_intervals_of_opposite_signs_do_not_replicate(tmp_path):
    wide = [0.5 + 6.0 * (-1.0) ** s for s in range(10)]
    write_row(tmp_path, "hard-sum-oss_rm", wide, wide)
    write_row(tmp_path, "pytorch-hard-sum-oss_rm", [-x for x in wide[:5]], wide[:5])
    lines = report(tmp_path)
    assert any("intervals overlap, means of opposite signs: **does not replicate**" in line
               for line in lines)
