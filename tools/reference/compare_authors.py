"""Optional cross-check of dbl_ref against the authors' released code (not needed by any test).

Usage (from the repository root, with a checkout of github.com/Paranioar/DBL):
    python3 tools/reference/compare_authors.py --oss /path/to/DBL/OSS

It imports the authors' OSS/model.py and OSS/loss.py *without copying them*, loads
dbl_ref's ScanAve weights into their SGRAF class (state_dict names must match 1:1),
compares the two score matrices in eval mode, and compares L_raw / RM / AM and the
one-directional DML value + gradient on random score matrices. Their losses build the
diagonal mask only for CUDA, so this script makes `torch.cuda.is_available()` report
True and `Tensor.cuda()` a no-op while their code runs on the CPU.
"""

import argparse
import importlib.util
import os
import sys
import types

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dbl_ref import losses, models  # noqa: E402


def load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def rel(a, b):
    return float((a - b).abs().max() / b.abs().max().clamp(min=1e-12))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--oss", required=True, help="path to the authors' OSS/ folder")
    args = ap.parse_args()
    torch.manual_seed(0)
    a_model = load(os.path.join(args.oss, "model.py"), "authors_model")
    a_loss = load(os.path.join(args.oss, "loss.py"), "authors_loss")

    # ---- backbone: same weights, same inputs, eval mode
    V = 50
    ours = models.ScanAve(V).eval()
    opt = types.SimpleNamespace(
        grad_clip=2.0, img_dim=2048, embed_size=1024, vocab_size=V, word_dim=300, num_layers=1,
        bi_gru=True, no_imgnorm=False, no_txtnorm=False, sim_dim=256, no_simnorm=False,
    )
    theirs = a_model.SGRAF(opt).eval()
    ours_keys = sorted(ours.state_dict().keys())
    their_keys = sorted(theirs.state_dict().keys())
    assert ours_keys == their_keys, (ours_keys, their_keys)
    theirs.load_state_dict(ours.state_dict())
    B, L = 6, 9
    images = torch.randn(B, 36, 2048).abs()
    lengths = torch.tensor([9, 7, 9, 4, 6, 5])
    caps = torch.zeros(B, L, dtype=torch.int64)
    for i, n in enumerate(lengths.tolist()):
        caps[i, :n] = torch.randint(4, V, (n,))
        caps[i, 0], caps[i, n - 1] = 1, 2
    with torch.no_grad():
        s_ours = ours(images, caps, lengths)
        # their forward returns caption x image
        s_theirs = theirs(images, caps, lengths).t()
    print(f"scan-ave scores: {len(ours_keys)} tensors named alike; max |ours - theirs| = "
          f"{(s_ours - s_theirs).abs().max().item():.3e}")
    assert torch.allclose(s_ours, s_theirs, atol=1e-5), "backbone scores differ"

    # ---- losses: value and gradient, f64
    torch.cuda.is_available = lambda: True
    torch.Tensor.cuda = lambda self, *a, **k: self
    for trial in range(20):
        n = 8
        st = torch.tanh(torch.randn(n, n, dtype=torch.float64))
        sa = torch.tanh(torch.randn(n, n, dtype=torch.float64))
        cases = [
            ("triplet hardest", lambda s: losses.triplet(s, 0.2, True),
             lambda s: a_loss.BirankLoss(margin=0.2, max_violation=True)(s)),
            ("triplet sum", lambda s: losses.triplet(s, 0.2, False),
             lambda s: a_loss.BirankLoss(margin=0.2, max_violation=False)(s)),
            ("RM", lambda s: losses.boost_relative(s, sa, 0.2, 1.0, True),
             lambda s: a_loss.BoostrelLoss(margin=0.2, beta=1.0)(s, sa)),
            ("AM", lambda s: losses.boost_absolute(s, sa, 0.2, 1.0, 0.5, True),
             lambda s: a_loss.BoostabsLoss(margin=0.2, beta=1.0)(s, sa)),
            ("distill (their DML, anchor detached)", lambda s: losses.distillation(s, sa, 10.0),
             lambda s: a_loss.DMLLoss(smooth=10.0)(s, sa.detach())),
        ]
        for name, f_ours, f_theirs in cases:
            x1 = st.clone().requires_grad_(True)
            x2 = st.clone().requires_grad_(True)
            v1 = f_ours(x1)
            v2 = f_theirs(x2)
            v1.backward()
            v2.backward()
            assert abs(v1.item() - v2.item()) <= 1e-12 * max(1.0, abs(v2.item())), (name, v1, v2)
            assert rel(x1.grad, x2.grad) <= 1e-12, (name, x1.grad, x2.grad)
            if trial == 0:
                print(f"{name:40s} ours {v1.item():.12f}  theirs {v2.item():.12f}")
    print("losses: 20 random trials, values and gradients equal to 1e-12")


if __name__ == "__main__":
    main()
