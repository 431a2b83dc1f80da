#!/usr/bin/env python3
"""Writes tests/fixtures/engine/batchnorm_train.safetensors: PyTorch
nn.BatchNorm1d in training mode (batch statistics, running-statistics update),
the layer SGRAF's VisualSA / SAF and VSE∞'s MLP train with.

Run from the repository root:  python3 tools/reference/make_batchnorm_fixtures.py
Needs torch (CPU), safetensors. float32 on CPU, torch.manual_seed(20261207),
one thread. tests/batchnorm_parity.rs reads the file.

Also writes tests/fixtures/model/sgr_train.safetensors and saf_train.safetensors: one
training step of the port's `sgr` / `saf` backbone (dbl_ref.sgraf.Sgraf) in train mode
with every dropout at 0, from the weights and batch of sgr_small / saf_small
(tests/fixtures/model/*_small*.safetensors, made by make_model_fixtures.py): "sims",
"loss" (triplet, hardest, margin 0.2, float64), "grad.<param>" for every parameter,
"grad64.<param>" from the same step in float64 (a linear bias right before a batch norm
with batch statistics has gradient 0 in exact arithmetic, so its float32 value is
noise), and "<bn>.running_mean" / "<bn>.running_var" of every batch norm after the step
(VisualSA's two; for saf also SAF's BatchNorm1d(1), which takes one step per caption).
tests/model_parity.rs reads them.

Cases (prefix "<case>."): "ncl" x [6, 5, 7] (BatchNorm1d(5) over [n, C, L], as
VisualSA's local branch and SAF apply it), "nc" x [9, 4] (as VisualSA's global
branch and VSE∞'s MLP). Each stores the inputs x, weight, bias, running_mean,
running_var (random, as after some training), the upstream gradient dy; the
train-mode output y, the running statistics after the step (momentum 0.1,
unbiased variance), the gradients grad_x, grad_weight, grad_bias of sum(dy * y);
and y_eval, the eval-mode output with the updated running statistics.
"""

import copy
import os
import sys

import torch
from safetensors.torch import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from dbl_ref import losses, sgraf  # noqa: E402

OUT = os.path.join("tests", "fixtures", "engine")
MODEL = os.path.join("tests", "fixtures", "model")


def case(name, shape, out):
    c = shape[1]
    bn = torch.nn.BatchNorm1d(c)
    with torch.no_grad():
        bn.weight.copy_(torch.rand(c) + 0.5)
        bn.bias.copy_(torch.randn(c) * 0.3)
        bn.running_mean.copy_(torch.randn(c) * 0.2)
        bn.running_var.copy_(torch.rand(c) + 0.5)
    x = (torch.randn(*shape) * 1.7 + 0.4).requires_grad_(True)
    dy = torch.randn(*shape)
    out[f"{name}.x"] = x.detach().clone()
    out[f"{name}.weight"] = bn.weight.detach().clone()
    out[f"{name}.bias"] = bn.bias.detach().clone()
    out[f"{name}.running_mean"] = bn.running_mean.clone()
    out[f"{name}.running_var"] = bn.running_var.clone()
    out[f"{name}.dy"] = dy
    bn.train()
    y = bn(x)
    (y * dy).sum().backward()
    out[f"{name}.y"] = y.detach().clone()
    out[f"{name}.running_mean_after"] = bn.running_mean.clone()
    out[f"{name}.running_var_after"] = bn.running_var.clone()
    out[f"{name}.grad_x"] = x.grad.clone()
    out[f"{name}.grad_weight"] = bn.weight.grad.clone()
    out[f"{name}.grad_bias"] = bn.bias.grad.clone()
    bn.eval()
    with torch.no_grad():
        out[f"{name}.y_eval"] = bn(x.detach())


def sgraf_train_step(module):
    fx = load_file(os.path.join(MODEL, f"{module}_small.safetensors"))
    weights = load_file(os.path.join(MODEL, f"{module}_small.weights.safetensors"))
    model = sgraf.Sgraf(50, module, img_dim=64, word_dim=16, embed_size=32, sim_dim=16)
    missing, unexpected = model.load_state_dict(weights, strict=False)
    assert not unexpected and all("running" in k or "num_batches" in k for k in missing), missing
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    m64 = copy.deepcopy(model).double()

    def step(m, images):
        m.train()
        m.zero_grad()
        sims = m(images, fx["tokens"], fx["lengths"])
        loss = losses.triplet(sims.double(), 0.2, hardest=True)
        loss.backward()
        return sims, loss

    sims, loss = step(model, fx["images"])
    step(m64, fx["images"].double())
    t = {"sims": sims.detach(), "loss": loss.detach().reshape(1)}
    for k, p in model.named_parameters():
        t[f"grad.{k}"] = p.grad.clone()
    for k, p in m64.named_parameters():
        t[f"grad64.{k}"] = p.grad.clone()
    for k, b in model.named_buffers():
        if "running" in k:
            t[k] = b.clone()
    path = os.path.join(MODEL, f"{module}_train.safetensors")
    save_file({k: v.contiguous() for k, v in t.items()}, path,
              metadata={"script": "tools/reference/make_batchnorm_fixtures.py"})
    print(f"wrote {path}: {len(t)} tensors, loss {loss.item():.9f}")


def main():
    torch.manual_seed(20261207)
    torch.set_num_threads(1)
    out = {}
    case("ncl", (6, 5, 7), out)
    case("nc", (9, 4), out)
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, "batchnorm_train.safetensors")
    save_file({k: v.contiguous() for k, v in out.items()}, path,
              metadata={"script": "tools/reference/make_batchnorm_fixtures.py",
                        "torch": torch.__version__})
    print(f"wrote {path}: {len(out)} tensors")
    sgraf_train_step("sgr")
    sgraf_train_step("saf")


if __name__ == "__main__":
    main()
