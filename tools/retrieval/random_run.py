#!/usr/bin/env python3
"""Writes a run folder (as `dbl train` lays one out) holding a randomly
initialised backbone at the paper's sizes, for latency measurements of
`dbl index` / `dbl search` / `dbl serve` (speed does not depend on training).

    python3 random_run.py --dbl target/release/dbl --data DATA_DIR --out RUN [--backbone scan-ave]

Tensor names and shapes come from `dbl model`; values are uniform in
±sqrt(6 / (fan_in + fan_out)) (Xavier), seeded.
"""
import argparse
import hashlib
import json
import os
import re
import struct
import subprocess

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dbl", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--backbone", default="scan-ave")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    vocab = json.load(open(os.path.join(a.data, "vocab.json")))
    v = len(vocab["idx2word"]) if "idx2word" in vocab else len(vocab)
    out = subprocess.run([a.dbl, "model", "--backbone", a.backbone, "--vocab-size", str(v)],
                         check=True, capture_output=True, text=True).stdout
    rng = np.random.default_rng(a.seed)
    header, blobs, off = {}, [], 0
    for line in out.splitlines():
        m = re.match(r"^(\S+)\s+\[([\d, ]+)\]", line)
        if not m:
            continue
        name, shape = m.group(1), [int(x) for x in m.group(2).split(",")]
        fan = sum(shape) if len(shape) == 2 else shape[0] + 1
        x = rng.uniform(-1, 1, size=shape).astype("<f4") * np.float32(np.sqrt(6.0 / fan))
        b = x.tobytes()
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    # One committed checkpoint in dbl's store layout (src/train/store.rs):
    # checkpoints/g000001/branch0/model.safetensors, named as branch 0's
    # `last` and `best` by checkpoints/MANIFEST.json with its SHA-256.
    # RUN/branch0/ is the branch's own folder (metrics), as `dbl train` makes it.
    rel = "g000001/branch0"
    ck = os.path.join(a.out, "checkpoints", rel)
    os.makedirs(ck, exist_ok=True)
    os.makedirs(os.path.join(a.out, "branch0"), exist_ok=True)
    digest, size = hashlib.sha256(), 0
    with open(os.path.join(ck, "model.safetensors"), "wb") as f:
        for b in [struct.pack("<Q", len(h)) + h] + blobs:
            f.write(b)
            digest.update(b)
            size += len(b)
    manifest = {"format": 1, "generation": 1,
                "branches": {"0": {"last": rel, "best": rel}},
                "files": {rel + "/model.safetensors": {"bytes": size, "sha256": digest.hexdigest()}},
                "metrics_len": {}}
    json.dump(manifest, open(os.path.join(a.out, "checkpoints", "MANIFEST.json"), "w"), indent=1)
    cfg = {"data": os.path.abspath(a.data), "vocab": None, "threads": 2,
           "model": {"backbone": a.backbone, "embed": 1024, "word_dim": 300, "sim_dim": 256,
                     "dropout": 0.4, "smooth": 9.0, "vse_pool": "mean"}}
    json.dump(cfg, open(os.path.join(a.out, "config.json"), "w"), indent=1)
    print(f"{a.out}: {a.backbone}, V = {v}, {off / 4:.0f} parameters")


if __name__ == "__main__":
    main()
