#!/usr/bin/env python3
"""Checkpoints in the original codebases' layouts for `dbl import` tests.

Writes tests/fixtures/import/, from the port's small fixtures in
tests/fixtures/model/ (tiny dims: V = 50, d = 32, word dim 16, sim dim 16,
region features 64), one checkpoint per layout, each also converted by
tools/import_torch.py (NAME.safetensors + NAME.json), so that the Rust tests
need no Python:

- dbl_oss.pth.tar: the DBL authors' OSS/MSS/OAS layout, one branch per file:
  {'model': scan_small's state_dict with nn.DataParallel's `module.`
  prefix, 'opt': argparse.Namespace(their opts.py keys), 'epoch': 3}.
  Port scores: model/scan_small.safetensors `sims`.
- sgraf_sgr.pth.tar: SGRAF's train.py layout, {'model': [img_enc, txt_enc,
  sim_enc state_dicts], 'opt': Namespace(module_name='SGR', ...)}, from
  model/sgr_ckpt.pth.tar (BatchNorm with random running statistics).
  Port scores: model/sgr_ckpt.sims.safetensors `sims`.
- sgraf_saf.pth.tar: the same layout for SAF from saf_small's weights.
  Port scores: model/saf_small.safetensors `sims`.
- vse_infty.pth.tar: VSE∞'s precomp layout, {'model': [img_enc, txt_enc],
  'opt': Namespace(...)}, the GRU named `txt_enc.rnn.*`, from
  vse_gpo_small's weights (GPO pooling, the linear region encoder only; no
  `precomp_enc_type` in its options).
  Port scores: model/vse_gpo_small.safetensors `sims`.
- vse_infty_basic.pth.tar: the same layout with `precomp_enc_type basic`
  ('opt' says so), from vse_infty_small's weights: the region MLP with random
  BatchNorm running statistics (and `num_batches_tracked`, as PyTorch saves
  them). Port scores (eval mode): model/vse_infty_small.safetensors `sims`.
- bad_precomp.pth.tar: that checkpoint with `precomp_enc_type backbone`.
- bad_*.pth.tar: malformed checkpoints (a missing tensor, a wrong shape, an
  unknown layout) converted the same way where conversion succeeds.

Usage: /work/venv/bin/python tools/reference/make_import_fixtures.py
"""

import argparse
import os
import subprocess
import sys

import torch
from safetensors.torch import load_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL = os.path.join(ROOT, "tests", "fixtures", "model")
OUT = os.path.join(ROOT, "tests", "fixtures", "import")
SIZES = dict(vocab_size=50, embed_size=32, word_dim=16, sim_dim=16, img_dim=64)


def opt(**extra):
    return argparse.Namespace(data_path="./data", data_name="f30k_precomp", vocab_path="./vocab/",
                              num_layers=1, **SIZES, **extra)


def weights(name):
    return load_file(os.path.join(MODEL, f"{name}.weights.safetensors"))


def split(sd, modules):
    return [{k[len(m) + 1:]: v for k, v in sd.items() if k.startswith(m + ".")} for m in modules]


def save(obj, name):
    path = os.path.join(OUT, f"{name}.pth.tar")
    torch.save(obj, path)
    return path


def convert(path, name):
    script = os.path.join(ROOT, "tools", "import_torch.py")
    r = subprocess.run([sys.executable, script, path, os.path.join(OUT, f"{name}.safetensors"),
                        os.path.join(OUT, f"{name}.json")], capture_output=True, text=True)
    print(name, r.returncode, r.stdout.strip(), r.stderr.strip())


def main():
    os.makedirs(OUT, exist_ok=True)
    scan = {f"module.{k}": v for k, v in weights("scan_small").items()}
    convert(save({"model": scan, "epoch": 3, "best_rsum": 1.0, "opt": opt(num_branch=2)},
                 "dbl_oss"), "dbl_oss")

    ckpt = torch.load(os.path.join(MODEL, "sgr_ckpt.pth.tar"), map_location="cpu",
                      weights_only=True)["model"]
    sgr = {k[len("module."):]: v for k, v in ckpt.items()}
    convert(save({"model": split(sgr, ["img_enc", "txt_enc", "sim_enc"]), "epoch": 1,
                  "opt": opt(module_name="SGR", sgr_step=3)}, "sgraf_sgr"), "sgraf_sgr")

    saf = weights("saf_small")
    convert(save({"model": split(saf, ["img_enc", "txt_enc", "sim_enc"]), "epoch": 1,
                  "opt": opt(module_name="SAF", sgr_step=3)}, "sgraf_saf"), "sgraf_saf")

    vse = weights("vse_gpo_small")
    img, txt = split(vse, ["img_enc", "txt_enc"])
    txt = {("rnn." + k[len("cap_rnn."):] if k.startswith("cap_rnn.") else k): v
           for k, v in txt.items()}
    convert(save({"model": [img, txt], "epoch": 1, "opt": opt()}, "vse_infty"), "vse_infty")

    basic = weights("vse_infty_small")
    for k in [k for k in basic if k.endswith(".running_mean")]:
        basic[k[:-len("running_mean")] + "num_batches_tracked"] = torch.tensor(40, dtype=torch.int64)
    img, txt = split(basic, ["img_enc", "txt_enc"])
    txt = {("rnn." + k[len("cap_rnn."):] if k.startswith("cap_rnn.") else k): v
           for k, v in txt.items()}
    convert(save({"model": [img, txt], "epoch": 2, "opt": opt(precomp_enc_type="basic")},
                 "vse_infty_basic"), "vse_infty_basic")
    convert(save({"model": [img, txt], "epoch": 2, "opt": opt(precomp_enc_type="backbone")},
                 "bad_precomp"), "bad_precomp")

    missing = dict(scan)
    del missing["module.sim_enc.sim_eval_w.weight"]
    convert(save({"model": missing, "opt": opt()}, "bad_missing"), "bad_missing")
    wrong = dict(scan)
    wrong["module.sim_enc.sim_eval_w.weight"] = torch.zeros(1, 7)
    convert(save({"model": wrong, "opt": opt()}, "bad_shape"), "bad_shape")
    convert(save({"weights": [1, 2, 3]}, "bad_layout"), "bad_layout")


if __name__ == "__main__":
    main()
