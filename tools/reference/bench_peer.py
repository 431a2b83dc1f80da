#!/usr/bin/env python3
"""PyTorch side of the dbl benchmark: runs ONE configuration in this process and prints
one JSON line (issue #5; configurations in tools/bench/configs.py).

The peer computes what the authors' code computes, in f32 on the CPU, with
`torch.set_num_threads(T)`:
- training configs: `model.train()`, forward of every branch on the same batch, then per
  branch: zero_grad, loss (L_raw hardest triplet, plus RM boosting from the detached
  earlier branch for OSS, docs/method.md §3.5), backward, clip_grad_norm_(2.0), Adam step
  (OSS/train.py's loop order); the scan-ave head is the authors' per-caption loop
  (tools/reference/dbl_ref/models.py; sgr / saf: dbl_ref/sgraf.py, the same loop);
- scoring configs: eval mode, no_grad; images and captions encoded in batches of 100
  (the eval loader), then scan-ave scores 100 x 100 shards with the per-caption loop
  (evaluation.shard_attn_scores), vse scores with one GEMM. Each image is encoded once
  (the authors' loader encodes it once per caption, 5x; the Rust side encodes once too).
  With --head-precision bf16 (scan-score only) the pair scoring runs under
  torch.autocast("cpu", dtype=torch.bfloat16), the peer of `dbl bench --head-precision bf16`.
- --device cuda (scoring configs, issue #16): the same loop on the GPU, f32 with TF32 off
  (torch.backends.cuda.matmul.allow_tf32 = cudnn.allow_tf32 = False), the peer of
  `dbl bench --device cuda`; features and ids are copied to the GPU before timing, one
  shard pair is scored first to warm CUDA up (cuBLAS/cuDNN handles), each phase ends
  with torch.cuda.synchronize(), and the record adds "peak_device_mem_bytes"
  (torch.cuda.max_memory_allocated: tensors, not the caching allocator's reserve).
Inputs are generated before timing (the authors hold features in RAM). One warm-up
repetition is run first and excluded; then `--reps` timed repetitions (wall clock).

Output (stdout, one line; the Rust side's `dbl bench --json` prints the same keys):
  {"config", "impl": "pytorch", "threads", "reps", "seconds": [per repetition],
   "median", "cpu_seconds" (process CPU time per repetition, all threads; optional),
   "peak_rss_kb" (getrusage(RUSAGE_SELF).ru_maxrss at the end, whole process),
   "flops" (tools/bench/flops.py count of one repetition),
   "images", "captions" (scoring configs only), "phases" ({phase: median seconds}),
   "version" (torch version)}

Usage (from the repository root):
  python3 tools/reference/bench_peer.py --config scan-train-baseline --threads 1 --reps 5 --json
  python3 tools/reference/bench_peer.py --config scan-score --threads 2 --images 100 --captions 500
"""

import argparse
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "bench"))

import configs  # noqa: E402
import flops  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="Time one dbl benchmark configuration with the PyTorch reference port "
        "(one configuration per process so that peak RSS is per configuration)."
    )
    p.add_argument("--config", required=True, choices=list(configs.CONFIGS), help="configuration to run")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads (torch.set_num_threads); default 1")
    p.add_argument("--reps", type=int, default=5, help="timed repetitions after the warm-up; default 5")
    p.add_argument("--warmup", type=int, default=1, help="untimed warm-up repetitions first; default 1")
    p.add_argument(
        "--images",
        type=int,
        default=configs.FULL_IMAGES,
        help=f"scoring configs: images in the split (default {configs.FULL_IMAGES})",
    )
    p.add_argument(
        "--captions",
        type=int,
        default=configs.FULL_CAPTIONS,
        help=f"scoring configs: captions in the split (default {configs.FULL_CAPTIONS})",
    )
    p.add_argument(
        "--head-precision",
        choices=["f32", "bf16"],
        default="f32",
        help="scan-score only: bf16 scores the pairs under torch.autocast('cpu', torch.bfloat16); default f32",
    )
    p.add_argument(
        "--device",
        choices=["cpu", "cuda"],
        default="cpu",
        help="scoring configs: cpu, or cuda (f32, TF32 off; the authors' per-caption loop); default cpu",
    )
    p.add_argument("--seed", type=int, default=0, help="torch.manual_seed for weights and dropout; default 0")
    p.add_argument("--json", action="store_true", help="print only the JSON line (no summary on stderr)")
    a = p.parse_args(argv)
    if a.threads < 1:
        p.error("--threads must be >= 1")
    if a.warmup < 0:
        p.error("--warmup must be >= 0")
    if a.reps < 1:
        p.error("--reps must be >= 1")
    if a.images < 1 or a.captions < 1:
        p.error("--images and --captions must be >= 1")
    return a


PER_WORD = ("scan-ave", "sgr", "saf")  # backbones scoring with a per-caption-loop head


def build_model(cfg):
    from dbl_ref import models, sgraf

    if cfg.backbone in ("sgr", "saf"):
        return sgraf.Sgraf(
            cfg.vocab, cfg.backbone, img_dim=cfg.img_dim, word_dim=cfg.word_dim, embed_size=cfg.embed,
            sim_dim=cfg.sim_dim, regions=cfg.regions,
        )
    if cfg.backbone == "scan-ave":
        return models.ScanAve(
            cfg.vocab, img_dim=cfg.img_dim, word_dim=cfg.word_dim, embed_size=cfg.embed, sim_dim=cfg.sim_dim
        )
    return models.Vse(cfg.vocab, img_dim=cfg.img_dim, word_dim=cfg.word_dim, embed_size=cfg.embed)


def make_train(cfg):
    """Returns step() -> {} doing one optimiser step of every branch on a fixed batch."""
    import torch
    from dbl_ref import losses, optim

    order = configs.train_batch_order(cfg.batch)
    images = torch.from_numpy(configs.image_features(0, cfg.batch)[order].copy())
    ids, lengths = configs.caption_ids(0, cfg.batch, cfg.vocab)
    ids = torch.from_numpy(ids[order].copy())
    lengths = torch.from_numpy(lengths[order].copy())

    models = [build_model(cfg) for _ in range(cfg.branches)]
    opts = [optim.make_adam(m) for m in models]

    def base(s):
        return losses.triplet(s, margin=0.2, hardest=True)

    def peer(st, sa):
        return losses.boost_relative(st, sa, margin=0.2, beta=1.0, hardest=True)

    def step():
        scores = []
        for m in models:
            m.train()
            scores.append(m(images, ids, lengths))
        for k, (m, opt) in enumerate(zip(models, opts)):
            loss = losses.cohort_loss(scores, k, base, peer, alpha=1.0, peers="earlier")
            optim.step(m, opt, loss, grad_clip=optim.GRAD_CLIP)
        return {}

    return step


def score_split(model, backbone, embed, images, ids, lengths, shard, sync=lambda: None,
                pair_context=None):
    """Encodes images [n_img, R, D] and captions (ids [n_cap, L], lengths [n_cap], on the CPU)
    in batches of `shard` and scores every pair in `shard` x `shard` blocks, eval mode, no_grad:
    -> {phase: seconds} and the scores [n_img, n_cap] (under `pair_context()` if given).
    Also used by tools/bench/python_binding.py (the port called from one Python process)."""
    import contextlib

    import torch

    pair_context = pair_context or contextlib.nullcontext
    n_img, n_cap = images.size(0), ids.size(0)
    dev = images.device
    max_len = int(lengths.max())
    with torch.no_grad():
        t0 = time.perf_counter()
        img = torch.cat([model.img_enc(images[i : i + shard]) for i in range(0, n_img, shard)])
        sync()
        t1 = time.perf_counter()
        if backbone in PER_WORD:
            cap = torch.zeros(n_cap, max_len, embed, device=dev)
        else:
            cap = torch.zeros(n_cap, embed, device=dev)
        for j in range(0, n_cap, shard):
            lens = lengths[j : j + shard]
            out = model.txt_enc(ids[j : j + shard, : int(lens.max())], lens)
            if backbone in PER_WORD:
                cap[j : j + shard, : out.size(1)] = out
            else:
                cap[j : j + shard] = out
        sync()
        t2 = time.perf_counter()
        if backbone in PER_WORD:
            sims = torch.zeros(n_img, n_cap, device=dev)
            with pair_context():
                for i in range(0, n_img, shard):
                    for j in range(0, n_cap, shard):
                        sims[i : i + shard, j : j + shard] = model.sim_enc(
                            img[i : i + shard], cap[j : j + shard], lengths[j : j + shard]
                        )
        else:
            sims = img @ cap.t()
        sync()
        t3 = time.perf_counter()
    return {"encode_images": t1 - t0, "encode_captions": t2 - t1, "score": t3 - t2}, sims


def make_score(cfg, n_img, n_cap, precision="f32", device="cpu"):
    """Returns score() -> {phase: seconds}: encode the split and score every pair
    (under bf16 autocast when precision is "bf16"), on `device`."""
    import contextlib

    import torch

    dev = torch.device(device)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    def pair_context():
        if precision == "bf16":
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    shard = configs.SHARD
    images = torch.from_numpy(configs.image_features(0, n_img)).to(dev)
    ids_np, len_np = configs.caption_ids(0, n_cap, cfg.vocab)
    ids = torch.from_numpy(ids_np).to(dev)
    lengths = torch.from_numpy(len_np)  # stays on the CPU, as pack_padded_sequence wants
    model = build_model(cfg).to(dev)
    model.eval()
    if dev.type == "cuda":
        with torch.no_grad():  # warm-up: one shard pair, untimed
            lens = lengths[:shard]
            cap = model.txt_enc(ids[:shard, : int(lens.max())], lens)
            img = model.img_enc(images[:shard])
            if cfg.backbone in PER_WORD:
                model.sim_enc(img, cap, lens)
        sync()

    def score():
        phases, sims = score_split(model, cfg.backbone, cfg.embed, images, ids, lengths, shard,
                                   sync, pair_context)
        if not torch.isfinite(sims).all():
            raise SystemExit(f"{cfg.name}: non-finite scores")
        return phases

    return score


def main(argv=None):
    a = parse_args(argv)
    # Thread pools read these at start-up; set them before torch is imported.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(a.threads)
    import torch

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    cfg = configs.get(a.config)
    if a.device == "cuda":
        if cfg.kind != "score":
            raise SystemExit(f"--device cuda applies to scoring configs only, not {cfg.name}")
        if a.head_precision != "f32":
            raise SystemExit("--device cuda runs f32 only (TF32 off)")
        if not torch.cuda.is_available():
            raise SystemExit("--device cuda: torch sees no CUDA device")
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.set_float32_matmul_precision("highest")
    if a.head_precision == "bf16" and cfg.name != "scan-score":
        raise SystemExit(f"--head-precision bf16 applies to scan-score only, not {cfg.name}")

    if cfg.kind == "train":
        run = make_train(cfg)
        count = flops.count(cfg.name)
    else:
        run = make_score(cfg, a.images, a.captions, a.head_precision, a.device)
        count = flops.count(cfg.name, a.images, a.captions)

    for _ in range(a.warmup):
        run()  # warm-up, excluded
    seconds, cpu_seconds, phases = [], [], {}
    for _ in range(a.reps):
        c0 = time.process_time()
        t0 = time.perf_counter()
        detail = run()
        seconds.append(time.perf_counter() - t0)
        cpu_seconds.append(time.process_time() - c0)
        for k, v in detail.items():
            phases.setdefault(k, []).append(v)

    result = {
        "config": cfg.name,
        "impl": "pytorch",
        "threads": a.threads,
        "reps": a.reps,
        "seconds": [round(s, 6) for s in seconds],
        "median": round(statistics.median(seconds), 6),
        "cpu_seconds": [round(s, 6) for s in cpu_seconds],
        "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "flops": count["total"],
        "version": f"torch {torch.__version__}",
    }
    if cfg.kind == "score":
        result["images"] = a.images
        result["precision"] = a.head_precision
        result["captions"] = a.captions
    if a.device == "cuda":
        result["device"] = "cuda"
        result["gpu"] = torch.cuda.get_device_name(0)
        result["peak_device_mem_bytes"] = torch.cuda.max_memory_allocated()
    if phases:
        result["phases"] = {k: round(statistics.median(v), 6) for k, v in phases.items()}
    if not a.json:
        gflops = count["total"] / result["median"] / 1e9
        print(
            f"{cfg.name} threads={a.threads}: median {result['median']:.3f} s over {a.reps} "
            f"({gflops:.1f} GFLOP/s), peak RSS {result['peak_rss_kb'] / 1024:.0f} MiB",
            file=sys.stderr,
        )
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
