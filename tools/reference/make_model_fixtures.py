#!/usr/bin/env python3
"""Writes the backbones' PyTorch parity fixtures to tests/fixtures/model/.

Run from the repository root:  python3 tools/reference/make_model_fixtures.py
Needs torch (CPU), numpy, safetensors. float32, one thread, eval mode (dropout
off: its mask cannot match torch's generator). tests/model_parity.rs reads
every file.

Each `<name>.safetensors` holds the batch, the outputs and the gradients:
- `images` [B, R, img_dim], `tokens` [B, L] (int64, padded with 0, captions
  sorted by length descending as dbl's batches are), `lengths` [B] (int64);
- `sims` [B, B] = model(images, tokens, lengths) (rows = images);
- `loss` [] = dbl_ref.losses.triplet(sims.double(), 0.2, hardest=True);
- `grad.<param>` = d loss / d param for every parameter (state_dict names);
  for the real-dims file, tensors with more than 300,000 values store
  `grad_rows.<param>` (rows listed in `rows`), `grad_sq.<param>` (float64
  squared Frobenius norm) and `grad_probe.<param>` (float64 sum(G * P), P =
  hash_uniform(100 + tag)) instead; `grad64.sim_enc.sim_tran_w.bias` is that
  gradient computed by the same model in float64.
Weights:
- scan_small / vse_small (B=8, R=36, img_dim 64, embed 32, word_dim 16,
  sim_dim 16, V=50, lengths 12..2): `<name>.weights.safetensors`, the
  state_dict (biases perturbed away from their zero init so their gradients
  are exercised).
- scan_real (B=4, R=36, img_dim 2048, embed 1024, word_dim 300, sim_dim 256,
  V=100, lengths 9,7,5,3): weights are not stored (~42 MB); both sides generate
  them with hash_uniform(tag) (splitmix64, U[-1/32, 1/32), exact in f32) times a
  power of two per tensor (real_scale; tag = 1 + index in state_dict order).
- vse_real (B=8, R=36, img_dim 2048, embed 1024, word_dim 300, mean pooling,
  V=100, lengths 12..2 as the small files): same hash weights and real_scale,
  same big-gradient summaries; no float64 gradient.
- sgr_small / saf_small (the SGRAF backbones, dbl_ref/sgraf.py; B=8, R=36, img_dim 64,
  embed 32, word_dim 16, sim_dim 16, V=50, lengths 12..2): `<name>.weights.safetensors`
  holds the parameters only (no BatchNorm buffers: running statistics stay 0 / 1);
  biases and BatchNorm weights perturbed; `grad64.<param>` holds every gradient
  computed by the same model in float64 (some are cancelling sums, and the
  attention biases `embedding_common.0.bias` have gradient 0 in exact arithmetic). `python3 tools/reference/make_model_fixtures.py
  sgraf` writes only these, sgr_ckpt.* and vse_gpo_small.
- vse_gpo_small: vse with VSE-infinity's GPO pooling of regions and words
  (dbl_ref/gpo.py), otherwise as vse_small.
- sgr_ckpt.pth.tar / sgr_ckpt.safetensors / sgr_ckpt.sims.safetensors: sgr_small's
  model with random BatchNorm running statistics, saved in the authors' layout,
  converted by tools/import_torch.py (which keeps the statistics as buffers), and
  its eval-mode `sims` on the sgr_small batch.
- vse_infty_small (VSE-infinity's precomp model "vse-infty": vse with the region MLP of
  `precomp_enc_type basic` and GPO; B=8, R=36, img_dim 64, embed 32 (MLP hidden 16),
  word_dim 16, V=50, lengths 12..2), eval mode: the batch norms use random running
  statistics; `vse_infty_small.weights.safetensors` holds the parameters and the
  running statistics (`num_batches_tracked` left out); biases and batch-norm weights
  perturbed; the never-applied `img_enc.mlp.bns.1` has gradient 0.
  vse_infty_train: one training step of the same model and batch in training mode with
  the word dropout at 0: "sims", "loss", "grad.<param>", "grad64.<param>" (the same step
  in float64: `layers.0.bias`, right before a batch norm with batch statistics, has
  gradient 0 in exact arithmetic), and the running statistics after the step under
  their state_dict names. `python3 tools/reference/make_model_fixtures.py vse_infty`
  writes only these two.
Checkpoint import (`dbl import-torch`):
- tiny_ckpt.pth.tar: {'model': scan_small's state_dict with the `module.`
  prefix nn.DataParallel adds, 'epoch': 1, 'opt': None}, the authors' layout;
- tiny_ckpt.safetensors: the same converted by tools/import_torch.py; the Rust
  test checks that both score the scan_small batch exactly like `sims`.
"""

import copy
import os
import sys

import numpy as np
import torch
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, ".."))
from dbl_ref import losses, models, sgraf  # noqa: E402
import import_torch  # noqa: E402

OUT = os.path.join("tests", "fixtures", "model")
BIG = 300_000
ROWS = [0, 1, 100, 511, 1023]


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


# Power-of-two scale per real-dims tensor, close to the docs/method.md §5 init ranges.
def real_scale(name):
    if name == "txt_enc.embed.weight":
        return 4.0
    if name.startswith("sim_enc.sim_tran_w"):
        return 2.0
    if name.startswith("sim_enc.sim_eval_w"):
        return 4.0
    return 1.0


def save(name, tensors):
    path = os.path.join(OUT, name)
    save_file({k: v.detach().contiguous() for k, v in tensors.items()}, path)
    print(f"{path}: {os.path.getsize(path)} bytes, {len(tensors)} tensors")


def make_batch(gen, b, r, img_dim, vocab, lengths):
    images = torch.rand(b, r, img_dim, generator=gen)
    L = max(lengths)
    tokens = torch.zeros(b, L, dtype=torch.int64)
    for i, n in enumerate(lengths):
        tokens[i, 0] = 1
        tokens[i, n - 1] = 2
        if n > 2:
            tokens[i, 1:n - 1] = torch.randint(3, vocab, (n - 2,), generator=gen)
    return images, tokens, torch.tensor(lengths, dtype=torch.int64)


def run(model, images, tokens, lengths, train=False):
    """Forward in eval mode (`train`: training mode), triplet loss, backward."""
    model.train(train)
    model.zero_grad()
    sims = model(images, tokens, lengths)
    loss = losses.triplet(sims.double(), 0.2, hardest=True)
    loss.backward()
    return sims, loss


def small(name, build, seed):
    torch.manual_seed(seed)
    model = build()
    with torch.no_grad():
        for k, p in model.named_parameters():
            if k.endswith("bias"):
                p.add_(torch.empty_like(p).uniform_(-0.05, 0.05))
    gen = torch.Generator().manual_seed(seed + 1)
    lengths = [12, 11, 9, 7, 6, 4, 3, 2]
    images, tokens, lens = make_batch(gen, 8, 36, 64, 50, lengths)
    sims, loss = run(model, images, tokens, lens)
    t = {"images": images, "tokens": tokens, "lengths": lens, "sims": sims, "loss": loss}
    for k, p in model.named_parameters():
        t[f"grad.{k}"] = p.grad
    save(f"{name}.safetensors", t)
    save(f"{name}.weights.safetensors", dict(model.state_dict()))
    return model


def real(name, build, seed, lengths, grad64=()):
    """Real-dims fixture: hash weights (tag = 1 + index in state_dict order),
    batch of len(lengths) captions, big gradients as rows / norm / probe.
    grad64 lists parameters whose gradient is also stored computed in float64."""
    torch.manual_seed(seed)
    model = build()
    with torch.no_grad():
        for tag, (k, p) in enumerate(model.named_parameters(), start=1):
            w = hash_uniform(tag, p.numel()) * np.float32(real_scale(k))
            p.copy_(torch.from_numpy(w).reshape(p.shape))
    gen = torch.Generator().manual_seed(seed + 1)
    images, tokens, lens = make_batch(gen, len(lengths), 36, 2048, 100, lengths)
    sims, loss = run(model, images, tokens, lens)
    t = {"images": images, "tokens": tokens, "lengths": lens, "sims": sims, "loss": loss,
         "rows": torch.tensor(ROWS, dtype=torch.int64)}
    for tag, (k, p) in enumerate(model.named_parameters(), start=1):
        g = p.grad
        if g.numel() <= BIG:
            t[f"grad.{k}"] = g
        else:
            t[f"grad_rows.{k}"] = g[ROWS]
            g64 = g.double()
            probe = torch.from_numpy(hash_uniform(100 + tag, g.numel())).double().reshape(g.shape)
            t[f"grad_sq.{k}"] = (g64 * g64).sum()
            t[f"grad_probe.{k}"] = (g64 * probe).sum()
    if grad64:
        t = {k: v.detach().clone() for k, v in t.items()}  # .double() converts grads in place
        model.double()
        run(model, images.double(), tokens, lens)
        params = dict(model.named_parameters())
        for k in grad64:
            t[f"grad64.{k}"] = params[k].grad
    save(f"{name}.safetensors", t)


def scan_real():
    # float64 reference of the one gradient that is a cancelling sum of
    # B * N_w rows (the W_t bias), to judge the float32 results against.
    real("scan_real",
         lambda: models.ScanAve(100, img_dim=2048, word_dim=300, embed_size=1024, sim_dim=256),
         7, [9, 7, 5, 3], grad64=["sim_enc.sim_tran_w.bias"])


def vse_real():
    real("vse_real", lambda: models.Vse(100, img_dim=2048, word_dim=300, embed_size=1024),
         9, [12, 11, 9, 7, 6, 4, 3, 2])


def checkpoint(model):
    sd = {f"module.{k}": v.clone() for k, v in model.state_dict().items()}
    path = os.path.join(OUT, "tiny_ckpt.pth.tar")
    torch.save({"model": sd, "epoch": 1, "opt": None}, path)
    print(f"{path}: {os.path.getsize(path)} bytes")
    out = os.path.join(OUT, "tiny_ckpt.safetensors")
    import_torch.convert(path, out)
    print(f"{out}: {os.path.getsize(out)} bytes")


def sgraf_small(name, module, seed):
    """Like `small`, for an SGRAF backbone: parameters only, BatchNorm weights perturbed too."""
    torch.manual_seed(seed)
    model = sgraf.Sgraf(50, module, img_dim=64, word_dim=16, embed_size=32, sim_dim=16)
    with torch.no_grad():
        for k, p in model.named_parameters():
            if k.endswith("bias") or (p.dim() == 1 and k.endswith("weight")):
                p.add_(torch.empty_like(p).uniform_(-0.05, 0.05))
    gen = torch.Generator().manual_seed(seed + 1)
    lengths = [12, 11, 9, 7, 6, 4, 3, 2]
    images, tokens, lens = make_batch(gen, 8, 36, 64, 50, lengths)
    sims, loss = run(model, images, tokens, lens)
    t = {"images": images, "tokens": tokens, "lengths": lens, "sims": sims, "loss": loss}
    for k, p in model.named_parameters():
        t[f"grad.{k}"] = p.grad.clone()
    m64 = copy.deepcopy(model).double()
    run(m64, images.double(), tokens, lens)
    for k, p in m64.named_parameters():
        t[f"grad64.{k}"] = p.grad
    save(f"{name}.safetensors", t)
    save(f"{name}.weights.safetensors", dict(model.named_parameters()))
    return model, (images, tokens, lens)


def sgraf_checkpoint(model, batch):
    """Random BatchNorm running statistics, the authors' checkpoint layout, converted."""
    gen = torch.Generator().manual_seed(77)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.copy_(torch.rand(m.num_features, generator=gen) * 2.0 - 1.0)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) * 2.8 + 0.2)
                m.num_batches_tracked.fill_(17)
    model.eval()
    with torch.no_grad():
        sims = model(*batch)
    sd = {f"module.{k}": v.clone() for k, v in model.state_dict().items()}
    path = os.path.join(OUT, "sgr_ckpt.pth.tar")
    torch.save({"model": sd, "epoch": 1, "opt": None}, path)
    print(f"{path}: {os.path.getsize(path)} bytes")
    out = os.path.join(OUT, "sgr_ckpt.safetensors")
    import_torch.convert(path, out)
    print(f"{out}: {os.path.getsize(out)} bytes")
    save("sgr_ckpt.sims.safetensors", {"sims": sims})


def main_sgraf():
    small("vse_gpo_small", lambda: models.Vse(50, img_dim=64, word_dim=16, embed_size=32,
                                              img_pool="gpo"), 15)
    sgr, batch = sgraf_small("sgr_small", "sgr", 11)
    sgraf_small("saf_small", "saf", 13)
    sgraf_checkpoint(sgr, batch)


def vse_infty(seed=17):
    """vse_infty_small (eval mode, random running statistics) and vse_infty_train."""
    torch.manual_seed(seed)
    model = models.Vse(50, img_dim=64, word_dim=16, embed_size=32, precomp_enc_type="basic")
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for k, p in model.named_parameters():
            if k.endswith("bias") or (p.dim() == 1 and k.endswith("weight")):
                p.add_(torch.empty_like(p).uniform_(-0.05, 0.05))
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.copy_(torch.rand(m.num_features, generator=gen) * 0.4 - 0.2)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) * 1.5 + 0.25)
    lengths = [12, 11, 9, 7, 6, 4, 3, 2]
    images, tokens, lens = make_batch(gen, 8, 36, 64, 50, lengths)
    weights = {k: v.clone() for k, v in model.state_dict().items()
               if not k.endswith("num_batches_tracked")}

    def grads(m):
        return {f"grad.{k}": (p.grad if p.grad is not None else torch.zeros_like(p)).clone()
                for k, p in m.named_parameters()}

    sims, loss = run(model, images, tokens, lens)
    t = {"images": images, "tokens": tokens, "lengths": lens, "sims": sims, "loss": loss}
    t.update(grads(model))
    save("vse_infty_small.safetensors", t)
    save("vse_infty_small.weights.safetensors", weights)

    model.load_state_dict(weights, strict=False)
    model.txt_enc.dropout.p = 0.0
    m64 = copy.deepcopy(model).double()

    sims, loss = run(model, images, tokens, lens, train=True)
    run(m64, images.double(), tokens, lens, train=True)
    t = {"sims": sims.detach(), "loss": loss.detach().reshape(1)}
    t.update(grads(model))
    t.update({"grad64" + k[len("grad"):]: v for k, v in grads(m64).items()})
    for k, b in model.named_buffers():
        if "running" in k:
            t[k] = b.clone()
    save("vse_infty_train.safetensors", t)


def main():
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    if sys.argv[1:] == ["sgraf"]:
        main_sgraf()
        return
    if sys.argv[1:] == ["vse_infty"]:
        vse_infty()
        return
    scan = small("scan_small", lambda: models.ScanAve(50, img_dim=64, word_dim=16,
                                                       embed_size=32, sim_dim=16), 1)
    small("vse_small", lambda: models.Vse(50, img_dim=64, word_dim=16, embed_size=32), 3)
    small("vse_max_small", lambda: models.Vse(50, img_dim=64, word_dim=16, embed_size=32,
                                              img_pool="max"), 5)
    scan_real()
    vse_real()
    checkpoint(scan)
    main_sgraf()
    vse_infty()


if __name__ == "__main__":
    main()
