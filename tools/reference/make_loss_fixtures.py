"""Writes tests/fixtures/loss/*.safetensors: every dbl loss value and gradient, from dbl_ref.

Usage (from the repository root): python3 tools/reference/make_loss_fixtures.py
Read by tests/loss_parity.rs. Deterministic (fixed seeds; CPU; float64 arithmetic).

Each file is one input case and holds:
- inputs `st`, `sa`, `sb`: f32 [B, B] score matrices (rows = images, columns = captions):
  the target, its anchor, and a third branch for the cohort entries;
- for each entry E: `E.value` (f64 [1]), `E.grad_t` (f64 [B, B], d value / d S^t, or
  d value / d S_k for cohort entries) and, for mutual learning, `E.grad_a` (d value / d S^a);
- metadata key "fixture": JSON {"case", "generator", "torch", "entries"}, where "entries" is
  a list of {"name", "loss", options...} saying what each entry is.
The losses are evaluated in float64 on the f32 inputs (exactly representable), so the Rust
port, which also works in f64, can be compared to ~1e-12; see tests/loss_parity.rs.
"""

import json
import os
import sys

import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dbl_ref import losses, models, optim  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "tests", "fixtures", "loss")

SPEC_ST = [[0.60, 0.45, 0.55], [0.20, 0.45, 0.10], [0.40, 0.52, 0.70]]
SPEC_SA = [[0.50, 0.35, 0.30], [0.25, 0.40, 0.20], [0.10, 0.50, 0.62]]


def check_backbone():
    """Spec 5.5: scan-ave has 13,052,077 parameters at V = 8,481. Also a smoke run of
    both backbones (forward, loss, one Adam step with clipping) on a tiny batch."""
    n = models.n_params(models.ScanAve(8481))
    assert n == models.SCAN_AVE_PARAMS_F30K == 13_052_077, n
    torch.manual_seed(0)
    images = torch.rand(4, 36, 2048)
    caps = torch.randint(4, 40, (4, 7))
    lengths = torch.tensor([7, 3, 5, 7])
    for name in ("scan-ave", "vse"):
        model = models.build(name, 40).train()
        before = model.img_enc.fc.weight.detach().clone()
        scores = model(images, caps, lengths)
        assert scores.shape == (4, 4) and bool(scores.abs().le(1.0 + 1e-6).all()), name
        opt = optim.make_adam(model)
        optim.step(model, opt, losses.triplet(scores, 0.2, False))
        assert not torch.equal(before, model.img_enc.fc.weight), f"{name}: Adam step did nothing"
    return n


def check_spec_vector():
    """Spec 11 test vector, reproduced by the reference port (tolerance 1e-6)."""
    st = torch.tensor(SPEC_ST, dtype=torch.float64)
    sa = torch.tensor(SPEC_SA, dtype=torch.float64)
    got = {
        "L_raw hardest": losses.triplet(st, 0.2, True).item(),
        "L_raw sum": losses.triplet(st, 0.2, False).item(),
        "RM": losses.boost_relative(st, sa, 0.2, 1.0, True).item(),
        "RS": losses.boost_relative(st, sa, 0.2, 1.0, False).item(),
        "AM": losses.boost_absolute(st, sa, 0.2, 1.0, 0.5, True).item(),
        "AS": losses.boost_absolute(st, sa, 0.2, 1.0, 0.5, False).item(),
    }
    want = {"L_raw hardest": 0.49, "L_raw sum": 0.74, "RM": 1.89, "RS": 2.52, "AM": 1.89, "AS": 2.38}
    for k, v in want.items():
        assert abs(got[k] - v) < 1e-6, (k, got[k], v)
    return got


def hinge_entries(margins):
    """Every option combination of the hinge losses (docs/method.md §3.1-3.4)."""
    out = []
    for m in margins:
        for hardest in (True, False):
            red = "hardest" if hardest else "sum"
            out.append(dict(name=f"triplet_{red}_m{m}", loss="triplet", margin=m, hardest=hardest))
            for beta in (1.0, 0.5):
                for adapt in losses.ADAPTATIONS:
                    out.append(dict(name=f"boost_relative_{red}_m{m}_b{beta}_{adapt}",
                                    loss="boost_relative", margin=m, beta=beta, hardest=hardest,
                                    adapt=adapt))
            for split in (0.5, 0.3):
                for adapt in losses.ADAPTATIONS:
                    out.append(dict(name=f"boost_absolute_{red}_m{m}_g{split}_{adapt}",
                                    loss="boost_absolute", margin=m, beta=1.0, split=split,
                                    hardest=hardest, adapt=adapt))
    return out


def soft_entries(n):
    out = []
    for scale in (10.0, 5.0):
        out.append(dict(name=f"distillation_s{scale}", loss="distillation", scale=scale))
        out.append(dict(name=f"mutual_learning_s{scale}", loss="mutual_learning", scale=scale))
    for t in (0.1, 0.05):
        out.append(dict(name=f"info_nce_t{t}", loss="info_nce", temperature=t))
        if n >= 2:
            out.append(dict(name=f"decoupled_info_nce_t{t}", loss="decoupled_info_nce",
                            temperature=t))
    return out


def cohort_entries():
    """Cohort of three branches [sa, sb, st] (docs/method.md §3.5); base = triplet hardest, margin 0.2."""
    peers = [
        dict(loss="boost_relative", margin=0.2, beta=1.0, hardest=True, adapt="none"),
        dict(loss="boost_absolute", margin=0.2, beta=1.0, split=0.5, hardest=True, adapt="none"),
        dict(loss="boost_absolute", margin=0.2, beta=1.0, split=0.5, hardest=False, adapt="soft"),
        dict(loss="distillation", scale=10.0),
    ]
    out = []
    for p, peer in enumerate(peers):
        for k in range(3):
            out.append(dict(name=f"cohort_p{p}_k{k}", loss="cohort", k=k, alpha=0.7, peers="earlier",
                            base=dict(loss="triplet", margin=0.2, hardest=True), peer=peer))
    for k in range(3):
        out.append(dict(name=f"cohort_mutual_k{k}", loss="cohort", k=k, alpha=1.0, peers="others",
                        base=dict(loss="triplet", margin=0.2, hardest=True),
                        peer=dict(loss="distillation", scale=10.0)))
    return out


def single(e, st, sa):
    """Value of a non-cohort entry; st (and sa) may require grad."""
    kind = e["loss"]
    if kind == "triplet":
        return losses.triplet(st, e["margin"], e["hardest"])
    if kind == "boost_relative":
        return losses.boost_relative(st, sa, e["margin"], e["beta"], e["hardest"], e["adapt"])
    if kind == "boost_absolute":
        return losses.boost_absolute(st, sa, e["margin"], e["beta"], e["split"], e["hardest"],
                                     e["adapt"])
    if kind == "distillation":
        return losses.distillation(st, sa, e["scale"])
    if kind == "mutual_learning":
        return losses.mutual_learning(st, sa, e["scale"])
    if kind == "info_nce":
        return losses.info_nce(st, e["temperature"])
    if kind == "decoupled_info_nce":
        return losses.decoupled_info_nce(st, e["temperature"])
    raise ValueError(kind)


def evaluate(e, inputs):
    """-> (value, grad_t, grad_a or None), all f64."""
    st64 = inputs["st"].double().requires_grad_(True)
    sa64 = inputs["sa"].double().requires_grad_(True)
    sb64 = inputs["sb"].double().requires_grad_(True)
    if e["loss"] == "cohort":
        branches = [sa64, sb64, st64]
        v = losses.cohort_loss(
            branches, e["k"],
            lambda s: single(e["base"], s, None),
            lambda s, a: single(e["peer"], s, a),
            alpha=e["alpha"], peers=e["peers"],
        )
        v.backward()
        g = branches[e["k"]].grad
        others = [b.grad for i, b in enumerate(branches) if i != e["k"]]
        assert all(o is None or not o.any() for o in others), "cohort leaked gradient to a peer"
        return v.detach(), g, None
    v = single(e, st64, sa64)
    v.backward()
    if e["loss"] == "mutual_learning":
        return v.detach(), st64.grad, sa64.grad
    assert sa64.grad is None or not sa64.grad.any(), f"{e['name']}: anchor got a gradient"
    return v.detach(), st64.grad, None


def write_case(fname, description, inputs, entries):
    tensors = {k: v.contiguous() for k, v in inputs.items()}
    for e in entries:
        v, gt, ga = evaluate(e, inputs)
        tensors[f"{e['name']}.value"] = v.reshape(1).clone()
        tensors[f"{e['name']}.grad_t"] = gt.clone()
        if ga is not None:
            tensors[f"{e['name']}.grad_a"] = ga.clone()
    # One metadata key (safetensors stores metadata in a hash map; one key keeps the
    # file byte-for-byte reproducible).
    meta = {"fixture": json.dumps({
        "case": description,
        "generator": "tools/reference/make_loss_fixtures.py",
        "torch": torch.__version__,
        "entries": entries,
    })}
    path = os.path.join(OUT, fname)
    save_file(tensors, path, metadata=meta)
    print(f"{path}: {len(entries)} entries, {os.path.getsize(path)} bytes")


def ties_matrix(gen, n, dup_rows, dup_cols):
    """Dyadic values (exact in f32/f64, so hinge arguments hit 0 exactly with margin 0.25)
    with duplicated rows and columns (exact ties for the hardest-negative max)."""
    grid = torch.tensor([-0.25, 0.0, 0.25, 0.5], dtype=torch.float32)
    s = grid[torch.randint(0, len(grid), (n, n), generator=gen)]
    for src, dst in dup_rows:
        s[dst] = s[src]
    for src, dst in dup_cols:
        s[:, dst] = s[:, src]
    return s


def tie_stats(s, margin=0.25):
    """(queries whose positive hardest triplet cost is tied, exact-zero hinge arguments)."""
    s = s.double()
    n = s.size(0)
    d = s.diagonal().view(n, 1)
    eye = torch.eye(n, dtype=torch.bool)
    a1, a2 = margin + s - d, margin + s - d.t()
    c1 = a1.clamp(min=0).masked_fill(eye, 0)
    c2 = a2.clamp(min=0).masked_fill(eye, 0)
    ties = 0
    for i in range(n):
        for v in (c1[i], c2[:, i]):
            ties += int(v.max() > 0 and int((v == v.max()).sum()) > 1)
    kinks = int(((a1 == 0) & ~eye).sum() + ((a2 == 0) & ~eye).sum())
    return ties, kinks


def main():
    os.makedirs(OUT, exist_ok=True)
    n_params = check_backbone()
    print(f"scan-ave parameters at V=8481: {n_params}")
    print("docs/method.md §11 vector:", {k: round(v, 6) for k, v in check_spec_vector().items()})

    # 1. the docs/method.md §11 test vector (B = 3)
    st = torch.tensor(SPEC_ST, dtype=torch.float32)
    sa = torch.tensor(SPEC_SA, dtype=torch.float32)
    sb = torch.tensor([[0.3, 0.1, 0.2], [0.0, 0.5, 0.4], [-0.2, 0.3, 0.1]], dtype=torch.float32)
    write_case("spec3.safetensors", "spec section 11 test vector; sb arbitrary",
               dict(st=st, sa=sa, sb=sb),
               hinge_entries([0.2]) + soft_entries(3) + cohort_entries())

    # 2. random scores in (-1, 1), B = 8
    gen = torch.Generator().manual_seed(20240428)
    rnd = {k: torch.tanh(torch.randn(8, 8, generator=gen)) for k in ("st", "sa", "sb")}
    write_case("rand8.safetensors", "tanh of standard normals, B = 8, seed 20240428", rnd,
               hinge_entries([0.2, 0.5]) + soft_entries(8) + cohort_entries())

    # 3. exact ties and exact hinge kinks, B = 8
    gen = torch.Generator().manual_seed(7)
    ties = {
        "st": ties_matrix(gen, 8, [(1, 4), (2, 6)], [(0, 3), (5, 7)]),
        "sa": ties_matrix(gen, 8, [(1, 4)], [(0, 3)]),
        "sb": ties_matrix(gen, 8, [], [(2, 5)]),
    }
    ties_n, kinks_n = tie_stats(ties["st"])
    print(f"ties8: {ties_n} tied hardest negatives, {kinks_n} exact hinge kinks (triplet, m 0.25)")
    assert ties_n >= 4 and kinks_n >= 4, (ties_n, kinks_n)
    write_case("ties8.safetensors",
               "dyadic grid scores with duplicated rows/columns (exact max ties, exact hinge "
               "kinks at margin 0.25), B = 8, seed 7", ties,
               hinge_entries([0.2, 0.25]) + soft_entries(8) + cohort_entries())


if __name__ == "__main__":
    main()
