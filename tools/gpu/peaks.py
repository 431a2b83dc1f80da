#!/usr/bin/env python3
"""Measures the GPU's two ceilings with PyTorch (docs: the device tool's METHOD.md):
f32 GEMM with TF32 off (8192^3 on random data: FLOP = 2 M N K) and a device-to-device
copy (bytes read + written). 3 warm-ups, then the median of 10 timed runs with CUDA
events. Prints one JSON line: {"gpu", "sgemm_gflops", "copy_gbs"}.

Usage (on the GPU machine): python3 tools/gpu/peaks.py
"""

import json
import statistics

import torch


def timed(fn, reps=10, warm=3):
    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    out = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        out.append(a.elapsed_time(b) / 1e3)
    return statistics.median(out)


def main():
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    n = 8192
    x = torch.randn(n, n, device="cuda")
    y = torch.randn(n, n, device="cuda")
    t = timed(lambda: x @ y)
    src = torch.randn(1 << 30, device="cuda")  # 4 GiB
    dst = torch.empty_like(src)
    c = timed(lambda: dst.copy_(src))
    print(
        json.dumps(
            {
                "gpu": torch.cuda.get_device_name(0),
                "sgemm_gflops": round(2 * n**3 / t / 1e9, 1),
                "copy_gbs": round(2 * src.numel() * 4 / c / 1e9, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
