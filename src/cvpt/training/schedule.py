"""AdamW with the paper's recipe: linear lr scaling, warm-up then cosine, no decay on norms,
biases and ω."""

from __future__ import annotations

import math

import torch
from torch import nn


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Tunable parameters in two groups: matrices/kernels decay; vectors and scalars (norm
    weights, biases, SCCP's ω, VPT prompts are 3-D and decay) do not."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def scaled_lr(base_lr: float, effective_batch: int, reference: int = 240) -> float:
    """The paper's lr 1e-3 is for batch 240; other batches scale it linearly."""
    return base_lr * effective_batch / reference


def warmup_cosine(total_steps: int, warmup_steps: int, min_ratio: float = 0.0):
    """``step → lr multiplier``: linear from ~0 to 1 over ``warmup_steps``, then cosine to
    ``min_ratio`` at ``total_steps``."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        span = max(1, total_steps - warmup_steps)
        progress = min(1.0, (step - warmup_steps) / span)
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def make_optimizer(
    model: nn.Module,
    lr: float,
    weight_decay: float,
    total_steps: int,
    warmup_steps: int,
    min_lr: float = 0.0,
):
    opt = torch.optim.AdamW(param_groups(model, weight_decay), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, warmup_cosine(total_steps, warmup_steps, min_lr / lr if lr else 0.0)
    )
    return opt, sched
