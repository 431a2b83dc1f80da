#!/usr/bin/env python3
"""Converts a PyTorch checkpoint of a dbl backbone to safetensors.

Usage: python3 tools/import_torch.py IN.pth[.tar] OUT.safetensors

Accepts the authors' layout ({'model': state_dict, ...}, as their train.py
saves it), a {'state_dict': ...} dict, or a bare state_dict. Strips the
`module.` prefix nn.DataParallel adds (and a leading `model.`), keeps the
float32 tensors (other entries, e.g. integer buffers, are reported and
dropped) and writes them with their state_dict names. BatchNorm layers
(`X.running_mean` / `X.running_var` next to `X.weight` / `X.bias`, as in the
SGRAF backbones) are folded into dbl's inference form with running statistics
0 / 1: weight' = weight*sqrt(1 + eps)/sqrt(var + eps), bias' = bias -
mean*weight/sqrt(var + eps), eps = 1e-5; the statistics are then dropped. `dbl import-torch`
runs this script and then validates the result by loading it into the Rust
model. Exit status 2 on a checkpoint it cannot interpret.

Safety: the checkpoint is read with torch.load(weights_only=True), which
unpickles only tensors and plain containers and never runs code stored in
the file. The one extra class allowed is argparse.Namespace, because the
authors' checkpoints store their command-line options as `opt`. A file that
needs anything else is refused (exit status 2) instead of being executed.
"""

import argparse
import os
import pickle
import sys
import tempfile

# Classes a checkpoint may contain besides tensors and plain containers.
ALLOWED_GLOBALS = [argparse.Namespace]


def extract_state_dict(obj):
    import torch

    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        obj = obj["model"]
    elif isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError("no state_dict found: expected {'model': state_dict}, "
                         "{'state_dict': ...} or a dict of tensors")
    return obj


def clean_name(name):
    for prefix in ("module.", "model."):
        while name.startswith(prefix):
            name = name[len(prefix):]
    return name.replace(".module.", ".")


BN_EPS = 1e-5


def fold_batchnorm(out):
    """Folds every BatchNorm's running statistics into its weight and bias, in place."""
    for name in [k for k in out if k.endswith(".running_mean")]:
        p = name[: -len(".running_mean")]
        need = [f"{p}.weight", f"{p}.bias", f"{p}.running_var"]
        if not all(k in out for k in need):
            raise ValueError(f"BatchNorm `{p}`: running_mean without {', '.join(need)}")
        mean = out.pop(name).double()
        var = out.pop(f"{p}.running_var").double()
        w, b = out[f"{p}.weight"].double(), out[f"{p}.bias"].double()
        inv = 1.0 / (var + BN_EPS).sqrt()
        out[f"{p}.weight"] = (w * inv * (1.0 + BN_EPS) ** 0.5).float().contiguous()
        out[f"{p}.bias"] = (b - mean * w * inv).float().contiguous()


def load_checkpoint(src):
    """torch.load with weights_only=True and the ALLOWED_GLOBALS allow-list."""
    import torch

    torch.serialization.add_safe_globals(ALLOWED_GLOBALS)
    try:
        return torch.load(src, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise ValueError(
            "refused to unpickle: the file needs more than tensors, plain containers and "
            f"argparse.Namespace (torch.load weights_only=True said: {e})"
        ) from None


def convert(src, dst):
    import torch
    from safetensors.torch import save_file

    obj = load_checkpoint(src)
    sd = extract_state_dict(obj)
    out, dropped = {}, []
    for k, v in sd.items():
        name = clean_name(k)
        if v.dtype != torch.float32:
            dropped.append(f"{k} ({v.dtype})")
            continue
        if name in out:
            raise ValueError(f"two tensors map to `{name}` after stripping prefixes")
        out[name] = v.detach().contiguous().clone()
    fold_batchnorm(out)
    for d in dropped:
        print(f"import_torch: dropped non-float32 tensor {d}", file=sys.stderr)
    if not out:
        raise ValueError("the checkpoint holds no float32 tensors")
    folder = os.path.dirname(os.path.abspath(dst))
    fd, tmp = tempfile.mkstemp(prefix=".import_torch.", dir=folder)
    os.close(fd)
    try:
        save_file(out, tmp)
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return sorted(out)


def main(argv):
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    try:
        names = convert(argv[1], argv[2])
    except (ValueError, OSError, RuntimeError) as e:
        print(f"import_torch: {argv[1]}: {e}", file=sys.stderr)
        return 2
    print(f"import_torch: wrote {len(names)} tensors to {argv[2]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
