"""Every loss of the dbl project, in PyTorch, written from `docs/method.md`.

Score matrices are B x B, rows = images, columns = captions, positives on the
diagonal (spec section 2). Hinge losses are *summed* over the batch, KL / cross-
entropy losses are batch means (spec section 7). Anchor scores are always
detached inside the boosting and distillation losses (stop-gradient).

The Rust port in `src/loss/` mirrors each function here operation by operation
(same association order), so that exact ties and exact hinge kinks resolve the
same way on both sides. Conventions that decide gradients at non-smooth points,
as PyTorch 2.x implements them:
- `clamp(min=0)` passes the gradient only where its input is strictly > 0;
- `max(dim)` routes the gradient to the first maximal index;
- the diagonal of every cost matrix is filled with 0 *before* the max, so a row
  whose off-diagonal costs are all 0 selects an index with cost 0 and passes no
  gradient.
"""

import torch
import torch.nn.functional as F

ADAPTATIONS = ("none", "hard", "soft")


def _eye(n, device):
    return torch.eye(n, dtype=torch.bool, device=device)


def _reduce_rows(cost, hardest):
    """Per-row (i2t query = image i) reduction of a cost matrix, summed over rows."""
    return cost.max(1)[0].sum() if hardest else cost.sum()


def _reduce_cols(cost, hardest):
    """Per-column (t2i query = caption j) reduction, summed over columns."""
    return cost.max(0)[0].sum() if hardest else cost.sum()


# ---------------------------------------------------------------- docs/method.md §3.1
def triplet(s, margin=0.2, hardest=True):
    """L_raw: bidirectional hinge triplet loss (VSE++), summed over the batch.

    c1[i][j] = [(m + S_ij) - S_ii]_+ (i2t), c2[i][j] = [(m + S_ij) - S_jj]_+ (t2i),
    diagonal zeroed; hardest: sum_i max_j c1 + sum_j max_i c2, else sum of all.
    """
    n = s.size(0)
    d = s.diagonal().view(n, 1)
    eye = _eye(n, s.device)
    c1 = (margin + s - d).clamp(min=0).masked_fill(eye, 0)
    c2 = (margin + s - d.t()).clamp(min=0).masked_fill(eye, 0)
    return _reduce_rows(c1, hardest) + _reduce_cols(c2, hardest)


# ---------------------------------------------------------------- docs/method.md §3.4
def upper_margin(adapt, gamma, bound, r):
    """Margin for a quantity r that must not exceed `bound` (computed from anchor scores).

    none: gamma; hard: min(gamma, bound - r); soft: gamma * tanh((bound - r) / gamma).
    """
    r = r.detach()
    if adapt == "none":
        return torch.full_like(r, gamma)
    if adapt == "hard":
        return torch.clamp(bound - r, max=gamma)
    if adapt == "soft":
        if gamma == 0:
            return torch.zeros_like(r)
        return gamma * torch.tanh((bound - r) / gamma)
    raise ValueError(f"unknown margin adaptation {adapt!r}; expected one of {ADAPTATIONS}")


def lower_margin(adapt, gamma, bound, r):
    """Margin for a quantity r that must not go below `-bound` (from anchor scores).

    none: gamma; hard: min(gamma, bound + r); soft: gamma * tanh((r + bound) / gamma).
    """
    r = r.detach()
    if adapt == "none":
        return torch.full_like(r, gamma)
    if adapt == "hard":
        return torch.clamp(bound + r, max=gamma)
    if adapt == "soft":
        if gamma == 0:
            return torch.zeros_like(r)
        return gamma * torch.tanh((r + bound) / gamma)
    raise ValueError(f"unknown margin adaptation {adapt!r}; expected one of {ADAPTATIONS}")


# ---------------------------------------------------------------- docs/method.md §3.2
def boost_relative(st, sa, margin=0.2, beta=1.0, hardest=True, adapt="none"):
    """Relative boosting: RM (hardest=True) or RS (hardest=False).

    r1[i][j] = [(m1_ij + (a_ii - a_ij)) - (t_ii - t_ij)]_+ (i2t, row i),
    r2[i][j] = [(m2_ij + (a_jj - a_ij)) - (t_jj - t_ij)]_+ (t2i, column j),
    diagonal zeroed; m = gamma*beta, adapted from the anchor gap with bound 2.
    """
    sa = sa.detach()
    n = st.size(0)
    g = margin * beta
    dt = st.diagonal().view(n, 1)
    da = sa.diagonal().view(n, 1)
    eye = _eye(n, st.device)
    gap_a1 = da - sa
    gap_a2 = da.t() - sa
    m1 = upper_margin(adapt, g, 2.0, gap_a1)
    m2 = upper_margin(adapt, g, 2.0, gap_a2)
    r1 = (m1 + gap_a1 - (dt - st)).clamp(min=0).masked_fill(eye, 0)
    r2 = (m2 + gap_a2 - (dt.t() - st)).clamp(min=0).masked_fill(eye, 0)
    return _reduce_rows(r1, hardest) + _reduce_cols(r2, hardest)


# ---------------------------------------------------------------- docs/method.md §3.3
def boost_absolute(st, sa, margin=0.2, beta=1.0, split=0.5, hardest=True, adapt="none"):
    """Absolute boosting: AM (hardest=True) or AS (hardest=False).

    pos_i = [(g1_i + a_ii) - t_ii]_+, n[i][j] = [(g2_ij + t_ij) - a_ij]_+ (diagonal 0),
    g1 = gamma*beta*split (upper bound 1 on a_ii), g2 = gamma*beta*(1-split) (lower bound -1
    on a_ij). L = 2*sum pos + (row maxima + column maxima of n | 2*sum n).
    """
    sa = sa.detach()
    n = st.size(0)
    g1 = margin * beta * split
    g2 = margin * beta * (1.0 - split)
    dt = st.diagonal().view(n, 1)
    da = sa.diagonal().view(n, 1)
    eye = _eye(n, st.device)
    m_pos = upper_margin(adapt, g1, 1.0, da)
    m_neg = lower_margin(adapt, g2, 1.0, sa)
    pos = (m_pos + da - dt).clamp(min=0).sum()
    neg = (m_neg + st - sa).clamp(min=0).masked_fill(eye, 0)
    return pos * 2 + _reduce_rows(neg, hardest) + _reduce_cols(neg, hardest)


# ---------------------------------------------------------------- docs/method.md §3.5
def cohort_loss(branches, k, base_fn, peer_fn, alpha=1.0, peers="earlier"):
    """Loss of branch k in a cohort: base(S_k) + alpha * mean over peers of peer(S_k, sg(S_n)).

    peers="earlier": n < k, mean = (1/k) sum (DBL cascade, docs/method.md §3.5; branch 0 gets base only).
    peers="others": n != k, mean over K-1 peers (mutual learning in a cohort).
    """
    loss = base_fn(branches[k])
    if peers == "earlier":
        idx = list(range(k))
    elif peers == "others":
        idx = [n for n in range(len(branches)) if n != k]
    else:
        raise ValueError(f"unknown peer set {peers!r}")
    if not idx:
        return loss
    total = None
    for n in idx:
        term = peer_fn(branches[k], branches[n].detach())
        total = term if total is None else total + term
    return loss + alpha * (total / len(idx))


# ---------------------------------------------------------------- cooperative baselines
def _kl_batchmean(student_logits, teacher_logits):
    """(1/B) sum_rows KL(softmax(teacher) || softmax(student)), rows of [B, B] logits."""
    return F.kl_div(
        F.log_softmax(student_logits, dim=-1),
        F.log_softmax(teacher_logits, dim=-1),
        reduction="batchmean",
        log_target=True,
    )


def distillation(st, s_teacher, scale=10.0):
    """Conventional distillation: KL(p_teacher || p_student) of softmax(scale*S) rows + columns,
    batch mean per direction; the teacher is detached."""
    t = s_teacher.detach()
    return _kl_batchmean(scale * st, scale * t) + _kl_batchmean(scale * st.t(), scale * t.t())


def mutual_learning(s1, s2, scale=10.0):
    """Two-way mutual learning (Zhang et al. 2018): distillation(s1 <- sg s2) + distillation(s2 <- sg s1).

    The value is the symmetric KL (rows + columns, batch mean); each branch receives the gradient
    of the term in which it is the student.
    """
    return distillation(s1, s2, scale) + distillation(s2, s1, scale)


def info_nce(s, temperature=0.1):
    """Bidirectional InfoNCE: CE(rows of S/T, diagonal) + CE(columns of S/T, diagonal), batch means."""
    n = s.size(0)
    logits = s / temperature
    labels = torch.arange(n, device=s.device)
    return F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)


def decoupled_info_nce(s, temperature=0.1):
    """Decoupled InfoNCE (Yeh et al. 2022): the positive is removed from the denominator.

    (1/B) sum_i [logsumexp_{j != i} z_ij - z_ii] + (1/B) sum_j [logsumexp_{i != j} z_ij - z_jj],
    z = S/T. Needs B >= 2.
    """
    n = s.size(0)
    if n < 2:
        raise ValueError("decoupled InfoNCE needs at least 2 pairs")
    logits = s / temperature
    pos = logits.diagonal()
    neg = logits.masked_fill(_eye(n, s.device), float("-inf"))
    return (torch.logsumexp(neg, 1) - pos).mean() + (torch.logsumexp(neg, 0) - pos).mean()
