#!/usr/bin/env python3
"""Writes the engine's PyTorch parity fixtures to tests/fixtures/engine/.

Run from the repository root:  python3 tools/reference/make_engine_fixtures.py
Needs torch (CPU), numpy, safetensors. Everything is float32 on CPU with
torch.manual_seed, one thread. tests/engine_parity.rs reads these files; the
tensor names and the loss used are documented next to each writer below.

Files
- gru_small.safetensors: packed bidirectional GRU, B=5, lengths [7,5,5,3,1],
  L=7, I=6, H=8, PyTorch default init; x (padding positions random too), c,
  y = direction-averaged output, and the gradients of sum(c * y) w.r.t. x and
  all eight weights ("grad.<param name>").
- gru_real.safetensors: same at the real dims I=300, H=1024, B=4, lengths
  [4,3,3,1], L=5. The weights are NOT stored (they would be ~12 MB): they are
  generated bit-exactly on both sides by `hash_uniform` below (splitmix64 of
  (tag << 32 | index), top 24 bits k, w = (k - 2^23) * 2^-28, i.e. U(-1/32, 1/32)
  like the GRU's default init at H=1024). Gradients of the 3072-row weights are
  stored as selected rows ("grad_rows.<name>", rows listed in "rows") plus two
  whole-tensor summaries in float64: the squared Frobenius norm ("grad_sq.<name>")
  and the probe sum(G * P) with P = hash_uniform(tag + 100) ("grad_probe.<name>").
  Bias gradients, y and grad_x are stored whole.
- chain.safetensors: Embedding(11,10) on ids with repeats -> Linear(10,12) ->
  LeakyReLU(0.1) -> L2norm (x / (||x|| + 1e-8)) -> *9 -> softmax(-1) ->
  Linear(12,4) -> tanh -> sigmoid; loss sum(c * y). Stores the intermediate
  outputs a1..a8, and the gradients of every parameter.
- adam.safetensors: torch.optim.Adam(foreach=False), two params, two steps
  (lr 1e-2, then lr set to 3e-3): params/grads before, and params, exp_avg,
  exp_avg_sq after each step.
- clip.safetensors: clip_grad_norm_(max_norm=2.0) on three gradients, once with
  total norm above 2 ("hi.*") and once below ("lo.*"); the returned norms and
  the gradients after.
"""

import os

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

OUT = os.path.join("tests", "fixtures", "engine")
M64 = (1 << 64) - 1


def hash_uniform(tag, n):
    """n float32 values U[-1/32, 1/32) from splitmix64(tag << 32 | i); exact in f32."""
    z = (np.uint64(tag) << np.uint64(32)) | np.arange(n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    k = (z >> np.uint64(40)).astype(np.int64) - (1 << 23)
    return (k.astype(np.float64) * 2.0**-28).astype(np.float32)


def save(name, tensors):
    path = os.path.join(OUT, name)
    tensors = {k: v.detach().contiguous() for k, v in tensors.items()}
    save_file(tensors, path)
    print(f"{path}: {os.path.getsize(path)} bytes, {len(tensors)} tensors")


def bigru_avg(gru, x, lengths, seq_len):
    """The authors' text-encoder recurrence: packed Bi-GRU, directions averaged."""
    packed = pack_padded_sequence(x, lengths, batch_first=True)
    out, _ = gru(packed)
    out, _ = pad_packed_sequence(out, batch_first=True, total_length=seq_len)
    h = out.shape[-1] // 2
    return (out[..., :h] + out[..., h:]) / 2


def gru_small():
    torch.manual_seed(1)
    lengths, L, I, H = [7, 5, 5, 3, 1], 7, 6, 8
    gru = nn.GRU(I, H, 1, batch_first=True, bidirectional=True)
    x = torch.randn(len(lengths), L, I, requires_grad=True)
    c = torch.randn(len(lengths), L, H)
    y = bigru_avg(gru, x, lengths, L)
    (y * c).sum().backward()
    t = {"x": x, "c": c, "y": y, "grad_x": x.grad,
         "lengths": torch.tensor(lengths, dtype=torch.int64)}
    for k, p in gru.named_parameters():
        t[f"rnn.{k}"] = p
        t[f"grad.rnn.{k}"] = p.grad
    save("gru_small.safetensors", t)


GRU_REAL_TAGS = ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0",
                 "weight_ih_l0_reverse", "weight_hh_l0_reverse",
                 "bias_ih_l0_reverse", "bias_hh_l0_reverse"]
GRU_REAL_ROWS = [0, 1, 511, 1023, 1024, 1500, 2047, 2048, 2600, 3071]


def gru_real():
    torch.manual_seed(2)
    lengths, L, I, H = [4, 3, 3, 1], 5, 300, 1024
    gru = nn.GRU(I, H, 1, batch_first=True, bidirectional=True)
    with torch.no_grad():
        for tag, name in enumerate(GRU_REAL_TAGS, start=1):
            p = getattr(gru, name)
            p.copy_(torch.from_numpy(hash_uniform(tag, p.numel())).reshape(p.shape))
    x = torch.randn(len(lengths), L, I, requires_grad=True)
    c = torch.randn(len(lengths), L, H)
    y = bigru_avg(gru, x, lengths, L)
    (y * c).sum().backward()
    t = {"x": x, "c": c, "y": y, "grad_x": x.grad,
         "lengths": torch.tensor(lengths, dtype=torch.int64),
         "rows": torch.tensor(GRU_REAL_ROWS, dtype=torch.int64)}
    for tag, name in enumerate(GRU_REAL_TAGS, start=1):
        g = getattr(gru, name).grad
        key = f"rnn.{name}"
        if g.dim() == 1:
            t[f"grad.{key}"] = g
        else:
            t[f"grad_rows.{key}"] = g[GRU_REAL_ROWS]
        g64 = g.double()
        probe = torch.from_numpy(hash_uniform(tag + 100, g.numel())).double().reshape(g.shape)
        t[f"grad_sq.{key}"] = (g64 * g64).sum().reshape(())
        t[f"grad_probe.{key}"] = (g64 * probe).sum().reshape(())
    save("gru_real.safetensors", t)


def l2norm(x, eps=1e-8):
    return x / (x.pow(2).sum(dim=-1, keepdim=True).sqrt() + eps)


def chain():
    torch.manual_seed(3)
    emb = nn.Embedding(11, 10)
    fc1 = nn.Linear(10, 12)
    fc2 = nn.Linear(12, 4)
    ids = torch.tensor([3, 7, 3, 0, 10, 7, 3, 5], dtype=torch.int64)
    c = torch.randn(len(ids), 4)
    a1 = emb(ids)
    a2 = fc1(a1)
    a3 = torch.nn.functional.leaky_relu(a2, 0.1)
    a4 = l2norm(a3)
    a5 = torch.softmax(a4 * 9.0, dim=-1)
    a6 = fc2(a5)
    a7 = torch.tanh(a6)
    a8 = torch.sigmoid(a7)
    (a8 * c).sum().backward()
    t = {"ids": ids, "c": c}
    for i, a in enumerate([a1, a2, a3, a4, a5, a6, a7, a8], start=1):
        t[f"a{i}"] = a
    for prefix, mod in [("embed", emb), ("fc1", fc1), ("fc2", fc2)]:
        for k, p in mod.named_parameters():
            t[f"{prefix}.{k}"] = p
            t[f"grad.{prefix}.{k}"] = p.grad
    save("chain.safetensors", t)


def adam():
    torch.manual_seed(4)
    p0 = nn.Parameter(torch.randn(4, 5))
    p1 = nn.Parameter(torch.randn(7))
    t = {"p0": p0.clone(), "p1": p1.clone()}
    opt = torch.optim.Adam([p0, p1], lr=1e-2, betas=(0.9, 0.999), eps=1e-8,
                           weight_decay=0, foreach=False)
    for step, lr in [(1, 1e-2), (2, 3e-3)]:
        for g in opt.param_groups:
            g["lr"] = lr
        g0 = torch.randn(4, 5) * (0.5 if step == 1 else 2.0)
        g1 = torch.randn(7) * 1e-3
        g0[0, 0] = 0.0
        p0.grad, p1.grad = g0, g1
        t[f"s{step}.grad.p0"], t[f"s{step}.grad.p1"] = g0.clone(), g1.clone()
        opt.step()
        for name, p in [("p0", p0), ("p1", p1)]:
            st = opt.state[p]
            t[f"s{step}.{name}"] = p.detach().clone()
            t[f"s{step}.{name}.exp_avg"] = st["exp_avg"].clone()
            t[f"s{step}.{name}.exp_avg_sq"] = st["exp_avg_sq"].clone()
    save("adam.safetensors", t)


def clip():
    torch.manual_seed(5)
    t = {}
    for case, scale in [("hi", 1.5), ("lo", 0.2)]:
        ps = [nn.Parameter(torch.zeros(s)) for s in [(3, 4), (5,), (2, 2, 2)]]
        for i, p in enumerate(ps):
            p.grad = torch.randn(p.shape) * scale
            t[f"{case}.g{i}"] = p.grad.clone()
        total = torch.nn.utils.clip_grad_norm_(ps, max_norm=2.0)
        t[f"{case}.total"] = total.reshape(())
        for i, p in enumerate(ps):
            t[f"{case}.clipped.g{i}"] = p.grad.clone()
    save("clip.safetensors", t)


def main():
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    gru_small()
    gru_real()
    chain()
    adam()
    clip()


if __name__ == "__main__":
    main()
