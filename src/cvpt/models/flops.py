"""Multiply-accumulate counts, fvcore convention: one multiply-add = one "FLOP" (what the
field's "GFLOPs" tables mean).

Linear and convolution MACs come from ``torch.utils.flop_counter.FlopCounterMode`` (which counts
2 FLOPs per MAC). Attention is counted here, explicitly, from the shapes of every
``F.scaled_dot_product_attention`` call, whichever module makes it (so any backbone family is
counted, never assumed): FlopCounterMode counts **zero** for it on CPU (torch 2.13), which would
under-count VideoMAE-B by ~20%. Softmax, norms, activations and the additive attention biases are
not counted (fvcore does not count them either). Shapes only: models and inputs may live on the
``meta`` device, so counting costs nothing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils.flop_counter import FlopCounterMode

from cvpt.codec.sampling import ClipSpec

# What FlopCounterMode may count for attention: the fused kernels where a build counts them,
# and the batched matmuls the math path decomposes into (e.g. on the meta device). Our models
# have no other batched matmul, so these are subtracted and attention is counted once, here.
_ATTENTION_OPS = ("bmm", "scaled_dot_product", "_flash_attention", "_efficient_attention")
# the model's three inputs, in the order it takes them (compressed_inputs returns)
INPUT_NAMES = ("iframes", "mvs", "residuals")


class _AttentionMACs(TorchFunctionMode):
    """Adds up ``q·kᵀ`` and ``attn·v`` MACs of every scaled_dot_product_attention call:
    ``batch·heads·N_q·N_k·(d_qk + d_v)``."""

    def __init__(self):
        super().__init__()
        self.macs = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.scaled_dot_product_attention:
            q, k, v = (kwargs[n] if n in kwargs else args[i] for i, n in enumerate("qkv"))
            *lead, n_q, d_qk = q.shape
            n_k, d_v = k.shape[-2], v.shape[-1]
            batch = 1
            for s in lead:
                batch *= s
            self.macs += batch * n_q * n_k * (d_qk + d_v)
        return func(*args, **kwargs)


def count_macs(model: nn.Module, *inputs: torch.Tensor) -> int:
    """MACs of one forward pass of ``model(*inputs)``."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter, _AttentionMACs() as att:
        model(*inputs)
    counted = counter.get_total_flops()
    per_op = counter.get_flop_counts().get("Global", {})
    counted -= sum(v for op, v in per_op.items() if any(a in str(op) for a in _ATTENTION_OPS))
    return counted // 2 + att.macs


def compressed_inputs(
    batch: int = 1,
    *,
    clip: ClipSpec | None = None,
    size: int = 224,
    device: str | torch.device = "meta",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Zero inputs of one clip's shapes, ``size``²: ``iframes [batch, 3, T_I, S, S]``,
    ``mvs [batch, 2, T_P, S, S]``, ``residuals [batch, 3, T_P, S, S]`` with
    T_I = ``clip.num_gops`` and T_P = ``clip.num_pframes``. ``clip``: a model's own
    (``model.clip``; :func:`model_inputs`), default the paper's (4 I-frames, 12 P-frames)."""
    clip = clip if clip is not None else ClipSpec()
    t_i, t_p = clip.num_gops, clip.num_pframes
    return (
        torch.zeros(batch, 3, t_i, size, size, device=device),
        torch.zeros(batch, 2, t_p, size, size, device=device),
        torch.zeros(batch, 3, t_p, size, size, device=device),
    )


def model_inputs(
    model: nn.Module,
    batch: int = 1,
    *,
    size: int = 224,
    device: str | torch.device | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`compressed_inputs` at the clip geometry ``model`` was built for
    (``model.clip``): what its FLOPs, benchmarks and exports measure. ``device``: default
    the model's (``meta`` for a model built there)."""
    if device is None:
        device = next(model.parameters()).device
    return compressed_inputs(batch, clip=model.clip, size=size, device=device)
