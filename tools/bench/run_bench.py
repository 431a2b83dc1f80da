#!/usr/bin/env python3
"""Benchmark driver: the Rust engine against the PyTorch peer, same machine, same invocation.

For every configuration and thread count it starts one process per side and repetition
set, alternating the sides (round r runs Rust then PyTorch when r is even, PyTorch then
Rust when odd), each process doing `--warmup` (default 1) untimed plus `--reps` timed repetitions and
printing one JSON line (keys documented in tools/reference/bench_peer.py). Per side it
pools the repetitions of all rounds and takes the median; peak RSS is the largest any
of its processes reported. GFLOP/s use tools/bench/flops.py's count (the same for both
sides; a side reporting a different count is flagged). It prints (and with
--markdown writes) a markdown report: machine details, the sgemm peak, the table and
the scoring extrapolation to the full F30K test split.

The Rust side is `target/release/dbl bench ... --json`. When its binary is missing,
or a run fails, its cells read "n/a" (the reason is printed), so the driver works today
with the PyTorch side alone.

Command templates take the placeholders {config} {threads} {reps} {subset}; {subset}
expands to `--images N --captions M` for scoring configurations and to nothing for
training configurations; `--warmup N` is appended to both. OMP_NUM_THREADS / MKL_NUM_THREADS / RAYON_NUM_THREADS are set
to the thread count for both sides.

Examples (from the repository root):
  python3 tools/bench/run_bench.py --images 100 --captions 500 --jsonl out/bench.jsonl --markdown out/bench.md
  python3 tools/bench/run_bench.py --configs vse-train --threads 1 --reps 3
  python3 tools/bench/run_bench.py --from-jsonl tools/bench/results.jsonl \
      --peak-json out/sgemm_peak.jsonl --markdown BENCHMARKS.table.md
"""

import argparse
import datetime
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))

import configs  # noqa: E402
import flops  # noqa: E402

RUST_CMD = "target/release/dbl bench --config {config} --threads {threads} --reps {reps} {subset} --json"
PEER_CMD = (
    f"{shlex.quote(sys.executable)} tools/reference/bench_peer.py "
    "--config {config} --threads {threads} --reps {reps} {subset} --json"
)
SIDES = ("rust", "pytorch")


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="Alternate Rust (dbl bench) and PyTorch (bench_peer.py) runs per configuration and "
        "thread count; print a markdown table of medians, ratios, GFLOP/s and peak RSS.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--configs",
        nargs="+",
        default=list(configs.CONFIGS),
        choices=list(configs.CONFIGS),
        help="configurations to run (default: all)",
    )
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts (default 1 2)")
    p.add_argument("--reps", type=int, default=5, help="timed repetitions per process (default 5)")
    p.add_argument(
        "--warmup",
        type=int,
        default=1,
        help="untimed warm-up repetitions per process, passed to both sides as --warmup (default 1; "
        "0 for the full scoring split)",
    )
    p.add_argument(
        "--head-precision",
        choices=["f32", "bf16"],
        default="f32",
        help="scan-score only: bf16 = Rust's AMX bf16 head projection against PyTorch under bf16 autocast",
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="processes per side per (config, threads), alternating sides (default 1)",
    )
    p.add_argument(
        "--images",
        type=int,
        default=configs.FULL_IMAGES,
        help=f"images of the scoring configs (default {configs.FULL_IMAGES})",
    )
    p.add_argument(
        "--captions",
        type=int,
        default=configs.FULL_CAPTIONS,
        help=f"captions of the scoring configs (default {configs.FULL_CAPTIONS})",
    )
    p.add_argument("--rust-cmd", default=RUST_CMD, help=f"Rust command template (default: {RUST_CMD!r})")
    p.add_argument("--peer-cmd", default=PEER_CMD, help="PyTorch command template (default: bench_peer.py)")
    p.add_argument("--no-rust", action="store_true", help="do not run the Rust side (cells read n/a)")
    p.add_argument("--timeout", type=float, default=1800, help="seconds before a process is killed (default 1800)")
    p.add_argument(
        "--peak-json",
        nargs="+",
        default=None,
        help="JSON-lines file(s) from sgemm_peak.py; default: run sgemm_peak.py for the thread counts",
    )
    p.add_argument("--no-peak", action="store_true", help="skip the sgemm peak (the %% column reads n/a)")
    p.add_argument("--jsonl", default=None, help="append every raw result line (plus round, load average) here")
    p.add_argument("--markdown", default=None, help="also write the markdown report to this file")
    p.add_argument(
        "--from-jsonl",
        nargs="+",
        default=None,
        help="do not run anything: build the report from these result files (Rust and/or PyTorch lines)",
    )
    a = p.parse_args(argv)
    if a.head_precision != "f32" and any(c != "scan-score" for c in a.configs):
        p.error("--head-precision bf16 applies to --configs scan-score only")
    if min(a.threads) < 1 or a.reps < 1 or a.warmup < 0 or a.rounds < 1 or a.images < 1 or a.captions < 1:
        p.error("threads, reps, rounds, images and captions must be >= 1")
    return a


# ---------------------------------------------------------------- machine details
def _run_text(cmd):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT)
        return out.stdout.strip() if out.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired):
        return None


def loadavg():
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def machine_details():
    d = {}
    lscpu = _run_text(["lscpu"]) or ""
    fields = {}
    for line in lscpu.splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            fields[k.strip()] = v.strip()
    d["cpu"] = fields.get("Model name", platform.processor() or "n/a")
    d["cpus"] = fields.get("CPU(s)", str(os.cpu_count()))
    d["threads_per_core"] = fields.get("Thread(s) per core", "n/a")
    flags = fields.get("Flags", "").split()
    d["isa"] = " ".join(f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile") if f in flags) or "n/a"
    d["l2_l3"] = f"L2 {fields.get('L2 cache', 'n/a')}, L3 {fields.get('L3 cache', 'n/a')}"
    try:
        mem = [x for x in Path("/proc/meminfo").read_text().splitlines() if x.startswith("MemTotal")]
        d["memory"] = f"{int(mem[0].split()[1]) / 1024**2:.1f} GiB" if mem else "n/a"
    except OSError:
        d["memory"] = "n/a"
    d["kernel"] = platform.release()
    torch_info = _run_text(
        [
            sys.executable,
            "-c",
            "import torch; print(torch.__version__); print(torch.__config__.parallel_info())",
        ]
    )
    if torch_info:
        lines = torch_info.splitlines()
        d["torch"] = lines[0]
        keep = ("ATen parallel backend", "MKL_NUM_THREADS", "OMP_NUM_THREADS", "Intel(R) MKL", "MKL-DNN", "oneDNN")
        d["torch_parallel"] = "; ".join(x.strip() for x in lines[1:] if x.strip().startswith(keep))
    else:
        d["torch"] = "n/a"
    d["python"] = platform.python_version()
    d["rustc"] = _run_text(["rustc", "--version"]) or "n/a"
    d["date"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return d


# ---------------------------------------------------------------- running
def expand(template, cfg, threads, reps, images, captions, warmup, precision="f32"):
    subset = f"--images {images} --captions {captions}" if cfg.kind == "score" else ""
    extra = ["--warmup", str(warmup)]
    if precision != "f32":
        extra += ["--head-precision", precision]
    return shlex.split(
        template.format(config=cfg.name, threads=threads, reps=reps, subset=subset),
    ) + extra


def rust_missing_reason(template):
    exe = shlex.split(template.format(config="x", threads=1, reps=1, subset=""))[0]
    path = ROOT / exe if not os.path.isabs(exe) and "/" in exe else Path(exe)
    if "/" in exe:
        return None if path.is_file() and os.access(path, os.X_OK) else f"{exe} not found (cargo build --release)"
    return None if shutil.which(exe) else f"{exe} not on PATH"


def run_one(side, argv, threads, timeout):
    """Runs one benchmark process; returns (result dict | None, error string | None)."""
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS"):
        env[var] = str(threads)
    before = loadavg()
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout:.0f} s"
    except OSError as e:
        return None, f"could not start {argv[0]}: {e}"
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
        return None, f"exit {proc.returncode}: {tail}"
    lines = [x for x in proc.stdout.splitlines() if x.strip().startswith("{")]
    if not lines:
        return None, "printed no JSON line"
    try:
        result = json.loads(lines[-1])
    except json.JSONDecodeError as e:
        return None, f"bad JSON line ({e}): {lines[-1][:200]}"
    missing = [k for k in ("config", "threads", "seconds", "median", "peak_rss_kb", "flops") if k not in result]
    if missing:
        return None, f"JSON line lacks {', '.join(missing)}"
    result.setdefault("impl", side)
    result["side"] = side
    result["loadavg_before"] = before
    result["loadavg_after"] = loadavg()
    result["process_wall_s"] = round(wall, 3)
    return result, None


def run_all(a):
    results, errors = [], []
    rust_reason = "not run (--no-rust)" if a.no_rust else rust_missing_reason(a.rust_cmd)
    if rust_reason:
        print(f"Rust side: {rust_reason}; its cells will read n/a", file=sys.stderr)
    sink = open(a.jsonl, "a") if a.jsonl else None
    try:
        for name in a.configs:
            cfg = configs.get(name)
            for t in a.threads:
                for r in range(a.rounds):
                    order = SIDES if r % 2 == 0 else SIDES[::-1]
                    for side in order:
                        if side == "rust" and rust_reason:
                            continue
                        template = a.rust_cmd if side == "rust" else a.peer_cmd
                        argv = expand(template, cfg, t, a.reps, a.images, a.captions, a.warmup, a.head_precision)
                        print(f"[{name} T={t} round {r} {side}] {' '.join(argv)}", file=sys.stderr, flush=True)
                        res, err = run_one(side, argv, t, a.timeout)
                        if err:
                            errors.append((name, t, side, err))
                            print(f"  failed: {err}", file=sys.stderr)
                            continue
                        res["round"] = r
                        print(
                            f"  median {res['median']:.3f} s, peak RSS {res['peak_rss_kb'] / 1024:.0f} MiB, "
                            f"load {res['loadavg_before']} -> {res['loadavg_after']}",
                            file=sys.stderr,
                            flush=True,
                        )
                        results.append(res)
                        if sink:
                            sink.write(json.dumps(res) + "\n")
                            sink.flush()
    finally:
        if sink:
            sink.close()
    return results, errors, rust_reason


def sgemm_peak(a):
    """{threads: GFLOP/s} from --peak-json files or a fresh sgemm_peak.py run."""
    lines = []
    if a.peak_json:
        for f in a.peak_json:
            lines += Path(f).read_text().splitlines()
    elif not a.no_peak and not a.from_jsonl:
        out = _run_text([sys.executable, str(HERE / "sgemm_peak.py"), "--threads", *map(str, a.threads)])
        lines = (out or "").splitlines()
    peak = {}
    for line in lines:
        if line.strip().startswith("{"):
            d = json.loads(line)
            if d.get("bench") == "sgemm":
                peak[int(d["threads"])] = float(d["gflops"])
    return peak


# ---------------------------------------------------------------- report
def aggregate(results):
    """{(config, threads, side): {...}} pooling the repetitions of every round."""
    groups = {}
    for r in results:
        if "error" in r:
            continue
        side = r.get("side") or ("rust" if str(r.get("impl", "")).startswith("rust") else "pytorch")
        groups.setdefault((r["config"], int(r["threads"]), side), []).append(r)
    agg = {}
    for key, rs in groups.items():
        secs = [s for r in rs for s in r["seconds"]]
        cpu = [s for r in rs for s in r.get("cpu_seconds", [])]
        agg[key] = {
            "median": statistics.median(secs),
            "cpu_median": statistics.median(cpu) if cpu else None,
            "n": len(secs),
            "peak_rss_kb": max(int(r["peak_rss_kb"]) for r in rs),
            "flops": rs[0]["flops"],
            "images": rs[0].get("images"),
            "captions": rs[0].get("captions"),
            "phases": {
                k: statistics.median(r["phases"][k] for r in rs if k in r.get("phases", {}))
                for k in (rs[0].get("phases") or {})
            }
            or None,
            "load": sorted({r.get("loadavg_before", "n/a") for r in rs} | {r.get("loadavg_after", "n/a") for r in rs}),
            "version": rs[0].get("version", ""),
        }
    return agg


def expected_flops(cfg, entry):
    if cfg.kind == "train":
        return flops.count(cfg.name)["total"]
    return flops.count(cfg.name, entry.get("images"), entry.get("captions"))["total"]


def fmt(x, spec):
    return "n/a" if x is None else format(x, spec)


def report(agg, peak, details, notes):
    out = []
    out.append("### Machine")
    out.append("")
    for k in ("cpu", "cpus", "threads_per_core", "isa", "l2_l3", "memory", "kernel", "torch", "torch_parallel"):
        out.append(f"- {k}: {details.get(k, 'n/a')}")
    for k in ("python", "rustc", "date"):
        out.append(f"- {k}: {details.get(k, 'n/a')}")
    if peak:
        out.append(
            "- sgemm peak (torch, 4608x2048x1024 f32, median): "
            + ", ".join(f"{peak[t]:.1f} GFLOP/s at {t} thread{'s' if t > 1 else ''}" for t in sorted(peak))
        )
    out.append("")
    out.append(
        "| config | threads | Rust median s | PyTorch median s | ratio PyTorch/Rust | Rust GFLOP/s | "
        "Rust % of sgemm peak | PyTorch GFLOP/s | Rust peak RSS MiB | PyTorch peak RSS MiB | RSS ratio PyTorch/Rust | "
        "Rust CPU s | PyTorch CPU s |"
    )
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    keys = sorted({(c, t) for (c, t, _) in agg}, key=lambda k: (list(configs.CONFIGS).index(k[0]), k[1]))
    loads = []
    for c, t in keys:
        cfg = configs.get(c)
        rust, torch_ = agg.get((c, t, "rust")), agg.get((c, t, "pytorch"))
        for side, e in (("rust", rust), ("pytorch", torch_)):
            if e is None:
                continue
            loads += e["load"]
            want = expected_flops(cfg, e)
            if int(e["flops"]) != want:
                notes.append(f"{c} T={t}: {side} reported {e['flops']} FLOP, flops.py counts {want}")
        label = c
        e_any = torch_ or rust
        if cfg.kind == "score" and e_any and e_any.get("images"):
            label = f"{c} ({e_any['images']}x{e_any['captions']})"
        rm = rust["median"] if rust else None
        pm = torch_["median"] if torch_ else None
        ratio = pm / rm if rm and pm else None
        f = expected_flops(cfg, e_any) if e_any else None
        rg = f / rm / 1e9 if rm and f else None
        pg = f / pm / 1e9 if pm and f else None
        pct = 100 * rg / peak[t] if rg and t in peak else None
        rr = rust["peak_rss_kb"] / 1024 if rust else None
        pr = torch_["peak_rss_kb"] / 1024 if torch_ else None
        rss_ratio = pr / rr if rr and pr else None
        out.append(
            f"| {label} | {t} | {fmt(rm, '.3f')} | {fmt(pm, '.3f')} | {fmt(ratio, '.2f')} | {fmt(rg, '.1f')} | "
            f"{fmt(pct, '.0f')} | {fmt(pg, '.1f')} | {fmt(rr, '.0f')} | {fmt(pr, '.0f')} | {fmt(rss_ratio, '.2f')} | "
            f"{fmt(rust and rust['cpu_median'], '.3f')} | {fmt(torch_ and torch_['cpu_median'], '.3f')} |"
        )
    out.append("")
    out.append(
        "Medians pool every timed repetition of every round. ratio = PyTorch median / Rust median (> 1: Rust "
        "faster). GFLOP/s = tools/bench/flops.py count / median wall time. CPU s = median process CPU time "
        "per repetition (all threads; at 1 thread, wall >> CPU means the process was waiting for a core)."
    )
    out.append("")
    # scoring extrapolation to the full split
    extra = []
    for c, t in keys:
        cfg = configs.get(c)
        if cfg.kind != "score":
            continue
        cells = []
        for side in SIDES:
            e = agg.get((c, t, side))
            if e is None or not e.get("images"):
                cells.append(None)
                continue
            fi = configs.FULL_IMAGES / e["images"]
            fc = configs.FULL_CAPTIONS / e["captions"]
            ph = e.get("phases")
            if ph and {"encode_images", "encode_captions", "score"} <= set(ph):
                cells.append(ph["encode_images"] * fi + ph["encode_captions"] * fc + ph["score"] * fi * fc)
            else:
                cells.append(e["median"] * fi * fc)
        if any(x is not None for x in cells):
            e_any = agg.get((c, t, "pytorch")) or agg.get((c, t, "rust"))
            extra.append(
                f"| {c} | {t} | {e_any['images']}x{e_any['captions']} | "
                f"{(configs.FULL_IMAGES * configs.FULL_CAPTIONS) / (e_any['images'] * e_any['captions']):.0f} | "
                f"{fmt(cells[0], '.0f')} | {fmt(cells[1], '.0f')} |"
            )
    if extra:
        out.append("Scoring extrapolated to the F30K test split (1,000 x 5,000): image encoding x (1000 / images),")
        out.append("caption encoding x (5000 / captions), pair scoring x pair factor (phase medians of the runs).")
        out.append("")
        out.append("| config | threads | measured | pair factor | Rust s (extrapolated) | PyTorch s (extrapolated) |")
        out.append("|---|---:|---|---:|---:|---:|")
        out += extra
        out.append("")
    real = sorted({x for x in loads if x != "n/a"})
    if real:
        ones = [float(x.split()[0]) for x in real]
        out.append(f"Load average (1 min) seen before/after the runs: {min(ones):.2f} to {max(ones):.2f}.")
        out.append("")
    for n in notes:
        out.append(f"- {n}")
    return "\n".join(out).rstrip() + "\n"


def main(argv=None):
    a = parse_args(argv)
    notes = []
    if a.from_jsonl:
        results = []
        for f in a.from_jsonl:
            for line in Path(f).read_text().splitlines():
                if line.strip().startswith("{"):
                    results.append(json.loads(line))
        failed = [r for r in results if "error" in r]
        for r in failed:
            notes.append(f"{r.get('config')} T={r.get('threads')}: {r.get('impl', 'pytorch')} run failed ({r['error']})")
        if not any(r.get("side") == "rust" or str(r.get("impl", "")).startswith("rust") for r in results):
            notes.append("Rust side: no results in the input files (pending).")
    else:
        results, errors, rust_reason = run_all(a)
        if rust_reason:
            notes.append(f"Rust side: {rust_reason}.")
        for name, t, side, err in errors:
            notes.append(f"{name} T={t}: {side} failed ({err})")
    precisions = {r.get("precision", "f32") for r in results if "error" not in r}
    if "bf16" in precisions:
        notes.append(
            "scan-score similarity-head GEMMs in bf16: Rust on AMX (dbl bench --head-precision bf16), PyTorch under "
            "torch.autocast('cpu', torch.bfloat16)"
            + ("; WARNING: f32 and bf16 results are pooled here, keep them in separate files" if len(precisions) > 1 else "")
        )
    details = machine_details()
    peak = sgemm_peak(a)
    text = report(aggregate(results), peak, details, notes)
    print(text)
    if a.markdown:
        Path(a.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(a.markdown).write_text(text)


if __name__ == "__main__":
    main()
