#!/usr/bin/env python3
"""Cross-checks tools/bench/flops.py against torch.utils.flop_counter.FlopCounterMode.

Runs the PyTorch peer's backbones (tools/reference/dbl_ref) at reduced dimensions (B = 6,
embed 64, sim 32, word 20, image 48, the configs' caption lengths and regions) through
one forward and one backward of the triplet loss, and compares:
- forward: torch's count of every matmul-like op (addmm, mm, bmm, including the GRU's
  gate projections) must equal flops.forward_terms exactly;
- backward: torch's count must be within 2 % of sum(term * BACKWARD_EXTRA). The analytic
  rule ignores that PyTorch computes no gradient into the GRU's zero initial state: one
  hidden matmul row (2 * 3E * E) less per caption in the forward direction and per
  longest caption in the packed reverse direction (7 rows here: 1.8 % of this tiny vse,
  ~0.3 % at the real dims of scan-train-baseline).
Exit status 1 if a check fails. Usage: python3 tools/bench/check_flops.py
"""

import dataclasses
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "reference"))
sys.path.insert(0, str(HERE))

import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

import configs  # noqa: E402
import flops  # noqa: E402
from dbl_ref import losses, models  # noqa: E402

SMALL = dict(batch=6, embed=64, sim_dim=32, word_dim=20, img_dim=48, vocab=50)


def check(name):
    cfg = dataclasses.replace(configs.CONFIGS[name], **SMALL)
    order = configs.train_batch_order(cfg.batch)
    ids, lens = configs.caption_ids(0, cfg.batch, cfg.vocab)
    img = torch.from_numpy(configs.image_features(0, cfg.batch, cfg.regions, cfg.img_dim)[order].copy())
    ids = torch.from_numpy(ids[order].copy())
    lens = torch.from_numpy(lens[order].copy())
    kw = dict(img_dim=cfg.img_dim, word_dim=cfg.word_dim, embed_size=cfg.embed)
    if cfg.backbone == "scan-ave":
        model = models.ScanAve(cfg.vocab, sim_dim=cfg.sim_dim, **kw)
    else:
        model = models.Vse(cfg.vocab, **kw)
    model.train()
    with FlopCounterMode(display=False) as fwd_counter:
        scores = model(img, ids, lens)
    loss = losses.triplet(scores)
    with FlopCounterMode(display=False) as bwd_counter:
        loss.backward()
    terms = flops.forward_terms(cfg, cfg.batch, lens.numpy())
    ours_fwd = sum(terms.values())
    ours_bwd = sum(v * flops.BACKWARD_EXTRA.get(k, 2) for k, v in terms.items())
    torch_fwd, torch_bwd = fwd_counter.get_total_flops(), bwd_counter.get_total_flops()
    rel = abs(torch_bwd - ours_bwd) / torch_bwd
    ok = torch_fwd == ours_fwd and rel < 0.02
    print(
        f"{name}: forward torch {torch_fwd} vs flops.py {ours_fwd}; backward torch {torch_bwd} vs "
        f"flops.py {ours_bwd} ({100 * rel:.2f} % apart) -> {'ok' if ok else 'MISMATCH'}"
    )
    return ok


def main():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    results = [check(n) for n in ("scan-train-baseline", "vse-train")]
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
