#!/usr/bin/env python3
"""Converts a PyTorch checkpoint of a dbl backbone to safetensors.

Usage: python3 tools/import_torch.py IN.pth[.tar] OUT.safetensors [OUT_OPTIONS.json]

Accepts the DBL authors' layout ({'model': state_dict, 'opt': Namespace, ...},
as their OSS/MSS/OAS train.py save each branch), SGRAF's and VSE∞'s
train.py layout ({'model': [img_enc state_dict, txt_enc state_dict,
sim_enc state_dict (SGRAF only)], 'opt': ...}: each module's names get its
prefix), a {'state_dict': ...} dict, or a bare state_dict. VSE∞'s GRU
(`txt_enc.rnn.*`) is renamed to dbl's `txt_enc.cap_rnn.*`. Strips the
`module.` prefix nn.DataParallel adds (and a leading `model.`), keeps the
float32 tensors (other entries, e.g. integer buffers, are reported and
dropped) and writes them with their state_dict names. BatchNorm layers
(`X.running_mean` / `X.running_var` next to `X.weight` / `X.bias`, as in the
SGRAF and VSE∞ backbones) keep their running statistics as they are: dbl holds
them as buffers under the same names, uses them in eval mode, and trains with
batch statistics from the unchanged weight and bias, as PyTorch does (so a
fine-tuned import starts where the original's training would);
`num_batches_tracked` (int64) is dropped. `dbl import-torch`
runs this script and then validates the result by loading it into the Rust
model. Exit status 2 on a checkpoint it cannot interpret.

With OUT_OPTIONS.json, also writes what the checkpoint says about itself:
{"layout": "dbl" | "sgraf" | "vse_infty" | "state_dict", "opt": {the
checkpoint's `opt` options whose values are numbers, strings or booleans},
"epoch": ...}, which `dbl import` reads for the backbone, sizes and paths.

Safety: the checkpoint is read with torch.load(weights_only=True), which
unpickles only tensors and plain containers and never runs code stored in
the file. The one extra class allowed is argparse.Namespace, because the
authors' checkpoints store their command-line options as `opt`. A file that
needs anything else is refused (exit status 2) instead of being executed.
"""

import argparse
import json
import os
import pickle
import sys
import tempfile

# Classes a checkpoint may contain besides tensors and plain containers.
ALLOWED_GLOBALS = [argparse.Namespace]


# Module order of the list SGRAF's and VSE∞'s `model.state_dict()` return.
LIST_MODULES = ("img_enc", "txt_enc", "sim_enc")


def extract_state_dict(obj):
    """→ (state_dict, layout)."""
    import torch

    def tensors(d):
        return isinstance(d, dict) and all(isinstance(v, torch.Tensor) for v in d.values())

    layout = "state_dict"
    if isinstance(obj, dict) and isinstance(obj.get("model"), (list, tuple)):
        parts = obj["model"]
        if not 2 <= len(parts) <= 3 or not all(tensors(p) for p in parts):
            raise ValueError(
                f"'model' is a list of {len(parts)} entries; expected 2 (VSE∞: img_enc, txt_enc) "
                "or 3 (SGRAF: img_enc, txt_enc, sim_enc) state_dicts")
        layout = "sgraf" if len(parts) == 3 else "vse_infty"
        obj = {f"{m}.{k}": v for m, p in zip(LIST_MODULES, parts) for k, v in p.items()}
    elif isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        obj = obj["model"]
        layout = "dbl"
    elif isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not tensors(obj):
        raise ValueError("no state_dict found: expected {'model': state_dict}, {'model': [state_dicts]}, "
                         "{'state_dict': ...} or a dict of tensors")
    return obj, layout


def options(obj):
    """The checkpoint's `opt` (argparse.Namespace or dict) as plain JSON values."""
    opt = obj.get("opt") if isinstance(obj, dict) else None
    if opt is None:
        return {}
    items = vars(opt) if isinstance(opt, argparse.Namespace) else opt
    if not isinstance(items, dict):
        return {}
    return {k: v for k, v in items.items() if isinstance(v, (bool, int, float, str))}


def clean_name(name):
    for prefix in ("module.", "model."):
        while name.startswith(prefix):
            name = name[len(prefix):]
    name = name.replace(".module.", ".")
    if name.startswith("txt_enc.rnn."):
        name = "txt_enc.cap_rnn." + name[len("txt_enc.rnn."):]
    return name



def check_batchnorm(out):
    """Every BatchNorm's running statistics come with its other three tensors."""
    for name in [k for k in out if k.endswith((".running_mean", ".running_var"))]:
        p = name.rsplit(".", 1)[0]
        need = [f"{p}.weight", f"{p}.bias", f"{p}.running_mean", f"{p}.running_var"]
        missing = [k for k in need if k not in out]
        if missing:
            raise ValueError(f"BatchNorm `{p}`: {name.rsplit('.', 1)[1]} without {', '.join(missing)}")


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


def convert(src, dst, options_path=None):
    import torch
    from safetensors.torch import save_file

    obj = load_checkpoint(src)
    sd, layout = extract_state_dict(obj)
    out, dropped = {}, []
    for k, v in sd.items():
        name = clean_name(k)
        if name.endswith(".num_batches_tracked"):
            continue  # only matters with momentum=None, which no original uses
        if v.dtype != torch.float32:
            dropped.append(f"{k} ({v.dtype})")
            continue
        if name in out:
            raise ValueError(f"two tensors map to `{name}` after stripping prefixes")
        out[name] = v.detach().contiguous().clone()
    check_batchnorm(out)
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
    if options_path is not None:
        about = {"layout": layout, "opt": options(obj)}
        if isinstance(obj, dict) and isinstance(obj.get("epoch"), int):
            about["epoch"] = obj["epoch"]
        with open(options_path, "w") as f:
            json.dump(about, f, indent=1, sort_keys=True)
    return sorted(out)


def main(argv):
    if len(argv) not in (3, 4):
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    try:
        names = convert(argv[1], argv[2], argv[3] if len(argv) == 4 else None)
    except (ValueError, OSError, RuntimeError) as e:
        print(f"import_torch: {argv[1]}: {e}", file=sys.stderr)
        return 2
    print(f"import_torch: wrote {len(names)} tensors to {argv[2]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
