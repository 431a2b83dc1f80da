#!/usr/bin/env python3
"""An OSS cohort (K = 2: anchor on L_raw alone, target on L_raw + boosting
from the anchor's detached scores) trained with the project's PyTorch port
(`dbl_ref`, written from docs/method.md), for the independent replication of
issue #30 (EXPERIMENTS.md "Evidence with power"). Nothing of dbl's Rust code
runs here: data loading, tokenising, batching, training, scoring and the
metrics are this script's own.

    /work/venv/bin/python tools/reference/train_oss.py --data DATA --out RUN --seed 0

It follows the study's protocol: scan-ave at --embed, batch --batch over
captions (each caption with its image; the last partial batch kept), Adam at
a constant --lr with each branch's gradient norm clipped to 2.0, dev rSum of
both branches after every epoch, each branch's best-on-dev checkpoint kept,
patience shared by the cohort (stop once no branch improved for --patience
epochs), at most --epochs epochs; both branches scored on test at the end of
every epoch after --test-after-epoch (write-only records: selection and
stopping read dev alone), and each branch's best-on-dev checkpoint on test at
the end.

Resumable: RUN/state.pt is replaced atomically after every epoch, and a run
with RUN/result.json is finished (the script then only prints it).
Output RUN/result.json: per-epoch dev and test rSum of both branches, the
best-on-dev epochs and their test metrics, the late test records (the same
shape as dbl's `late` in a sweep seed's test.json) and the wall seconds.
"""

import argparse
import json
import os
import re
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dbl_ref import losses, models, optim  # noqa: E402

CAPS_PER_IMAGE = 5
DEV_CAPTION_LIMIT = 5000
EVAL_BATCH = 100
# Treebank-style split for the synthetic captions: words, and punctuation as tokens.
TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|n't|[^\sa-z0-9]")


def tokenize(caption, word2idx):
    """Lower-case, split, map to ids, wrapped in <start> … <end> (docs/method.md §6.3)."""
    unk = word2idx["<unk>"]
    ids = [word2idx.get(w, unk) for w in TOKEN.findall(caption.lower())]
    return [word2idx["<start>"]] + ids + [word2idx["<end>"]]


class Split:
    """One split: image features [N, R, D] (memory-mapped) and tokenised captions."""

    def __init__(self, data, name, word2idx):
        self.ims = np.load(os.path.join(data, f"{name}_ims.npy"), mmap_mode="r")
        with open(os.path.join(data, f"{name}_caps.txt"), encoding="utf-8") as f:
            caps = [line.rstrip("\n") for line in f]
        if name == "dev":
            caps = caps[:DEV_CAPTION_LIMIT]
        if len(caps) != CAPS_PER_IMAGE * self.ims.shape[0] and name != "dev":
            raise SystemExit(f"{data}/{name}_caps.txt: {len(caps)} captions for "
                             f"{self.ims.shape[0]} images (expected 5 per image)")
        self.caps = [tokenize(c, word2idx) for c in caps]
        self.n_images = len(self.caps) // CAPS_PER_IMAGE

    def batch(self, idx):
        """Captions `idx` with their images: (images [B, R, D], ids [B, L], lengths [B])."""
        ims = torch.from_numpy(np.stack([self.ims[i // CAPS_PER_IMAGE] for i in idx]))
        caps = [self.caps[i] for i in idx]
        lengths = [len(c) for c in caps]
        ids = torch.zeros(len(caps), max(lengths), dtype=torch.int64)
        for j, c in enumerate(caps):
            ids[j, : len(c)] = torch.tensor(c)
        return ims, ids, lengths


@torch.no_grad()
def score(model, split):
    """Similarities [N images, 5N captions] in eval mode (docs/method.md §8)."""
    model.eval()
    n = split.n_images
    img = torch.cat([
        model.img_enc(torch.from_numpy(np.array(split.ims[i : i + EVAL_BATCH])))
        for i in range(0, n, EVAL_BATCH)
    ])
    cols = []
    for i in range(0, n * CAPS_PER_IMAGE, EVAL_BATCH):
        idx = list(range(i, min(i + EVAL_BATCH, n * CAPS_PER_IMAGE)))
        _, ids, lengths = split.batch(idx)
        cap = model.txt_enc(ids, lengths)
        cols.append(model.sim_enc(img, cap, lengths))
    model.train()
    return torch.cat(cols, dim=1).numpy()


def metrics(sims):
    """R@1/5/10 both ways and rSum of a [N, 5N] matrix (docs/method.md §8)."""
    n = sims.shape[0]
    order = np.argsort(-sims, axis=1, kind="stable")
    i2t = np.empty(n, dtype=np.int64)
    for i in range(n):
        pos = np.where((order[i] // CAPS_PER_IMAGE) == i)[0]
        i2t[i] = pos.min()
    order_t = np.argsort(-sims.T, axis=1, kind="stable")
    t2i = np.array([np.where(order_t[k] == k // CAPS_PER_IMAGE)[0][0] for k in range(sims.shape[1])])
    rec = lambda r, k: 100.0 * float((r < k).mean())
    out = {"i2t": [rec(i2t, k) for k in (1, 5, 10)], "t2i": [rec(t2i, k) for k in (1, 5, 10)]}
    out["rsum"] = sum(out["i2t"]) + sum(out["t2i"])
    return out


def save_atomic(obj, path):
    tmp = path + ".tmp"
    torch.save(obj, tmp)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="dataset folder (SCAN precomp layout + vocab.json)")
    ap.add_argument("--out", required=True, help="run folder (state.pt, result.json)")
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--epochs", type=int, default=24, help="epoch cap (24)")
    ap.add_argument("--patience", type=int, default=2)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--embed", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--base", choices=["sum", "hardest"], default="sum", help="L_raw reduction")
    ap.add_argument("--warmup-sum-epochs", type=int, default=0,
                    help="sum over negatives in L_raw for the first N epochs")
    ap.add_argument("--peer", choices=["relative", "absolute"], default="relative",
                    help="boosting form (Max reduction: RM or AM)")
    ap.add_argument("--test-after-epoch", type=int, default=5,
                    help="score test after every epoch past this burn-in (5)")
    ap.add_argument("--max-steps-per-epoch", type=int, default=None,
                    help="cap on steps per epoch (smoke tests only)")
    ap.add_argument("--stop-after", type=int, default=None,
                    help="train at most N epochs in this invocation (resumable)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    result_path = os.path.join(args.out, "result.json")
    if os.path.exists(result_path):
        print(open(result_path).read())
        return
    with open(os.path.join(args.data, "vocab.json")) as f:
        word2idx = json.load(f)["word2idx"]
    vocab_size = len(word2idx)
    train = Split(args.data, "train", word2idx)
    dev = Split(args.data, "dev", word2idx)
    test = Split(args.data, "test", word2idx)
    img_dim = train.ims.shape[2]

    torch.manual_seed(args.seed)
    branches = [models.ScanAve(vocab_size, img_dim=img_dim, embed_size=args.embed) for _ in range(2)]
    opts = [optim.make_adam(m, lr=args.lr) for m in branches]
    st = {"epoch": 0, "best_rsum": [None, None], "best_epoch": [None, None],
          "best_state": [None, None], "epochs": [], "wall": 0.0}
    state_path = os.path.join(args.out, "state.pt")
    if os.path.exists(state_path):
        ck = torch.load(state_path, weights_only=False)
        for m, o, ms, os_ in zip(branches, opts, ck["models"], ck["opts"]):
            m.load_state_dict(ms)
            o.load_state_dict(os_)
        torch.set_rng_state(ck["rng"])
        st = ck["st"]
    boost = losses.boost_relative if args.peer == "relative" else losses.boost_absolute
    t_start = time.time()
    done_here = 0
    n_caps = len(train.caps)
    while st["epoch"] < args.epochs:
        e = st["epoch"]
        if e > 0 and all(b is not None and e - b >= args.patience for b in st["best_epoch"]):
            print(f"no dev rSum improvement for {args.patience} epochs, stopping at epoch {e}", flush=True)
            break
        if args.stop_after is not None and done_here >= args.stop_after:
            st["wall"] += time.time() - t_start
            save_atomic({"models": [m.state_dict() for m in branches],
                         "opts": [o.state_dict() for o in opts],
                         "rng": torch.get_rng_state(), "st": st}, state_path)
            print(f"stopped after {done_here} epochs (--stop-after); run again to continue")
            return
        t0 = time.time()
        hardest = args.base == "hardest" and e >= args.warmup_sum_epochs
        gen = torch.Generator().manual_seed(args.seed * 1_000_003 + e)
        order = torch.randperm(n_caps, generator=gen).tolist()
        for m in branches:
            m.train()
        starts = list(range(0, n_caps, args.batch))[: args.max_steps_per_epoch]
        for b in starts:
            ims, ids, lengths = train.batch(order[b : b + args.batch])
            s = [m(ims, ids, lengths) for m in branches]
            loss_a = losses.triplet(s[0], 0.2, hardest=hardest)
            loss_t = losses.triplet(s[1], 0.2, hardest=hardest) + boost(s[1], s[0].detach(), hardest=True)
            optim.step(branches[0], opts[0], loss_a)
            optim.step(branches[1], opts[1], loss_t)
        rec = {"epoch": e + 1, "train_seconds": time.time() - t0}
        dev_m = [metrics(score(m, dev)) for m in branches]
        rec["dev_rsum"] = [d["rsum"] for d in dev_m]
        for k, m in enumerate(branches):
            r = dev_m[k]["rsum"]
            if st["best_rsum"][k] is None or r > st["best_rsum"][k]:
                st["best_rsum"][k] = r
                st["best_epoch"][k] = e + 1
                st["best_state"][k] = {n: v.clone() for n, v in m.state_dict().items()}
        if e + 1 > args.test_after_epoch:
            rec["test_rsum"] = [metrics(score(m, test))["rsum"] for m in branches]
        rec["seconds"] = time.time() - t0
        st["epochs"].append(rec)
        st["epoch"] = e + 1
        done_here += 1
        print(json.dumps(rec), flush=True)
        st["wall"] += time.time() - t_start
        t_start = time.time()
        save_atomic({"models": [m.state_dict() for m in branches],
                     "opts": [o.state_dict() for o in opts],
                     "rng": torch.get_rng_state(), "st": st}, state_path)
    # A cohort stopped within the burn-in: its last checkpoints, scored once.
    late = [r for r in st["epochs"] if "test_rsum" in r]
    if not late:
        last = st["epochs"][-1]
        last["test_rsum"] = [metrics(score(m, test))["rsum"] for m in branches]
        late = [last]
    best = []
    for k, m in enumerate(branches):
        m.load_state_dict(st["best_state"][k])
        best.append(metrics(score(m, test)))
    st["wall"] += time.time() - t_start
    result = {
        "seed": args.seed,
        "args": vars(args),
        "epochs": st["epochs"],
        "best_dev_epoch": st["best_epoch"],
        "best_dev_rsum": st["best_rsum"],
        "best_on_dev_test": best,
        "late": {"after_epoch": args.test_after_epoch, "stage": 1,
                 "epochs": [r["epoch"] for r in late],
                 "rsum": [[r["test_rsum"][k] for r in late] for k in range(2)]},
        "wall_seconds": st["wall"],
    }
    with open(result_path + ".tmp", "w") as f:
        json.dump(result, f, indent=1)
    os.replace(result_path + ".tmp", result_path)
    print(json.dumps({"seed": args.seed, "best_on_dev_test_rsum": [b["rsum"] for b in best],
                      "late_epochs": result["late"]["epochs"]}))


if __name__ == "__main__":
    main()
