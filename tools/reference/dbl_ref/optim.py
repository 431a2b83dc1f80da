"""Optimiser step as the DBL train loops use it (docs/method.md §4 and 7): one Adam per branch
(lr 2e-4, betas (0.9, 0.999), eps 1e-8, no weight decay), the branch's gradients
clipped to total L2 norm 2.0 (torch.nn.utils.clip_grad_norm_) before the step, and
the step-wise learning-rate decay lr0 * 0.1 ** (epoch // lr_update)."""

import torch
from torch.nn.utils import clip_grad_norm_

LR = 2e-4
BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8
GRAD_CLIP = 2.0


def make_adam(model, lr=LR):
    return torch.optim.Adam(model.parameters(), lr=lr, betas=BETAS, eps=ADAM_EPS, weight_decay=0.0)


def lr_at(epoch, lr0=LR, lr_update=30):
    """Learning rate of `epoch` (0-based) under the step schedule."""
    return lr0 * (0.1 ** (epoch // lr_update))


def set_lr(optimizer, lr):
    for group in optimizer.param_groups:
        group["lr"] = lr


def step(model, optimizer, loss, grad_clip=GRAD_CLIP):
    """zero_grad, backward, clip the model's total grad norm, Adam step.

    Returns the total gradient norm before clipping (what clip_grad_norm_ reports)."""
    optimizer.zero_grad()
    loss.backward()
    norm = clip_grad_norm_(model.parameters(), grad_clip) if grad_clip > 0 else None
    optimizer.step()
    return norm
