"""Analytic FLOP counts of the benchmark configurations (tools/bench/configs.py).

Counted: the dominant GEMM-like terms only (image FC, BiGRU gate projections, the
similarity head's two attention bmm's and two projections, the VSE score GEMM). A
multiply-add is 2 FLOP. Not counted: element-wise work (norms, LeakyReLU, softmax,
squared difference, GRU gate non-linearities), embedding gathers, losses, gradient
clipping and Adam. So GFLOP/s computed from these counts is "useful GEMM work per
second", comparable between the Rust engine and the PyTorch peer (same count for both).

Notation: n_img images of R regions x D_img features, captions of lengths L_c
(incl. <start>/<end>), T = sum_c L_c tokens, embedding E, word dim W, sim dim S.

Forward terms (spec section 5):
- image_fc   = 2 * n_img * R * D_img * E                      Linear(D_img -> E) on every region
               (vse pools after the FC, so the same count)
- gru        = 12 * T * E * (W + E)                           per token, per direction, 3 gates:
               input projection 2*W*3E + hidden projection 2*E*3E; two directions
- head_attn  = 2 * n_img * T * R * E                          a = regions . words^T, per pair 2*R*L_c*E
- head_ctx   = 2 * n_img * T * R * E                          context = alpha @ regions, per pair 2*L_c*R*E
- head_tran  = 2 * n_img * T * E * S                          Linear(E -> S) on every (pair, word)
- head_eval  = 2 * n_img * n_cap * S                          Linear(S -> 1) per pair
- vse_score  = 2 * n_img * n_cap * E                          img [n_img, E] @ cap [n_cap, E]^T
sgr / saf (docs/method.md §13): head_attn, head_ctx, head_tran as scan-ave, plus
- head_glo   = 2 * n_img * n_cap * E * S                      Linear(E -> S) of the global pair vector
- global_sa  = 2 * (n_img * R + T + n_img + n_cap) * E * E    the self-attentions' local and global Linear(E -> E)
- sgr        = 18 * n_img * (T + n_cap) * S * S               3 steps x (query, key, graph) Linear(S -> S) on every node

The scan-ave head scores every (image, caption) pair, so its terms scale with
n_img * T (training: B images x B captions, i.e. B * sum of the batch's lengths).

Backward multiplier (a GEMM C = A B costs one GEMM for dA and one for dB):
- image_fc: x 1 extra (only the weight gradient: region features are data, no input grad);
- every other term: x 2 extra (both operands need a gradient: weights and activations,
  and the GRU's input is the trainable word embedding).
So one training step of one branch = 2 * image_fc + 3 * (gru + head_* | vse_score), and
the OSS cohort (K branches, each its own forward and backward) = K times that.
Scoring is forward only, in eval mode. (Exact for the forward; the backward rule counts
a gradient into the GRU's zero initial state that PyTorch skips, ~0.3 % of a real-dims
step. tools/bench/check_flops.py checks both against torch's FlopCounterMode.)
"""

from configs import FULL_CAPTIONS, FULL_IMAGES, caption_lengths, get

BACKWARD_EXTRA = {"image_fc": 1}  # all other terms: 2


def forward_terms(cfg, n_img, lengths):
    """Forward FLOP per term for n_img images and captions of the given lengths."""
    tokens = int(sum(int(x) for x in lengths))
    n_cap = len(lengths)
    e, r, s = cfg.embed, cfg.regions, cfg.sim_dim
    terms = {
        "image_fc": 2 * n_img * r * cfg.img_dim * e,
        "gru": 12 * tokens * e * (cfg.word_dim + e),
    }
    if cfg.backbone == "scan-ave":
        terms["head_attn"] = 2 * n_img * tokens * r * e
        terms["head_ctx"] = 2 * n_img * tokens * r * e
        terms["head_tran"] = 2 * n_img * tokens * e * s
        terms["head_eval"] = 2 * n_img * n_cap * s
    elif cfg.backbone == "vse":
        terms["vse_score"] = 2 * n_img * n_cap * e
    elif cfg.backbone in ("sgr", "saf"):
        terms["head_attn"] = 2 * n_img * tokens * r * e
        terms["head_ctx"] = 2 * n_img * tokens * r * e
        terms["head_tran"] = 2 * n_img * tokens * e * s
        terms["head_glo"] = 2 * n_img * n_cap * e * s
        terms["global_sa"] = 2 * (n_img * r + tokens + n_img + n_cap) * e * e
        if cfg.backbone == "sgr":
            terms["sgr"] = 9 * 2 * n_img * (tokens + n_cap) * s * s
    else:
        raise ValueError(f"unknown backbone {cfg.backbone!r}")
    return terms


def count(name, n_img=None, n_cap=None):
    """FLOP count of one timed repetition of config `name`.

    Training configs ignore n_img / n_cap (batch = cfg.batch pairs). Scoring configs
    default to the F30K test shape 1,000 x 5,000. Returns {"terms": {term: flop},
    "total": flop} where the terms already include the backward and branch factors.
    """
    cfg = get(name)
    if cfg.kind == "train":
        fwd = forward_terms(cfg, cfg.batch, caption_lengths(0, cfg.batch))
        terms = {k: cfg.branches * v * (1 + BACKWARD_EXTRA.get(k, 2)) for k, v in fwd.items()}
    elif cfg.kind == "score":
        n_img = FULL_IMAGES if n_img is None else n_img
        n_cap = FULL_CAPTIONS if n_cap is None else n_cap
        terms = forward_terms(cfg, n_img, caption_lengths(0, n_cap))
    else:
        raise ValueError(f"unknown kind {cfg.kind!r}")
    return {"terms": terms, "total": int(sum(terms.values()))}


def _main():
    import argparse

    from configs import CONFIGS

    p = argparse.ArgumentParser(description="Print the analytic FLOP count of each benchmark config.")
    p.add_argument("--images", type=int, default=None, help="images of the scoring configs (default 1000)")
    p.add_argument("--captions", type=int, default=None, help="captions of the scoring configs (default 5000)")
    a = p.parse_args()
    for name in CONFIGS:
        c = count(name, a.images, a.captions)
        terms = ", ".join(f"{k} {v / 1e9:.2f}" for k, v in c["terms"].items())
        print(f"{name:26s} {c['total'] / 1e9:10.2f} GFLOP  ({terms})")


if __name__ == "__main__":
    _main()
