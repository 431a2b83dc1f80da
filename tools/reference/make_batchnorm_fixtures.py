#!/usr/bin/env python3
"""Writes tests/fixtures/engine/batchnorm_train.safetensors: PyTorch
nn.BatchNorm1d in training mode (batch statistics, running-statistics update),
the layer SGRAF's VisualSA / SAF and VSE∞'s MLP train with.

Run from the repository root:  python3 tools/reference/make_batchnorm_fixtures.py
Needs torch (CPU), safetensors. float32 on CPU, torch.manual_seed(20261207),
one thread. tests/batchnorm_parity.rs reads the file.

Cases (prefix "<case>."): "ncl" x [6, 5, 7] (BatchNorm1d(5) over [n, C, L], as
VisualSA's local branch and SAF apply it), "nc" x [9, 4] (as VisualSA's global
branch and VSE∞'s MLP). Each stores the inputs x, weight, bias, running_mean,
running_var (random, as after some training), the upstream gradient dy; the
train-mode output y, the running statistics after the step (momentum 0.1,
unbiased variance), the gradients grad_x, grad_weight, grad_bias of sum(dy * y);
and y_eval, the eval-mode output with the updated running statistics.
"""

import os

import torch
from safetensors.torch import save_file

OUT = os.path.join("tests", "fixtures", "engine")


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


if __name__ == "__main__":
    main()
