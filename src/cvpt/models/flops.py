"""Multiply-accumulate counts, fvcore convention: one multiply-add = one "FLOP" (what the
field's "GFLOPs" tables mean).

Linear and convolution MACs come from ``torch.utils.flop_counter.FlopCounterMode`` (which counts
2 FLOPs per MAC). Attention is counted here, explicitly: FlopCounterMode counts **zero** for
``F.scaled_dot_product_attention`` on CPU (torch 2.13), which would under-count VideoMAE-B by
~20%. Softmax, norms and activations are not counted (fvcore does not count them either).
Shapes only: models and inputs may live on the ``meta`` device, so counting costs nothing.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from cvpt.codec.sampling import ClipSpec
from cvpt.models.vit import Attention

# What FlopCounterMode may count for attention: the fused kernels where a build counts them,
# and the batched matmuls the math path decomposes into (e.g. on the meta device). Our models
# have no other batched matmul, so these are subtracted and attention is counted once, here.
_ATTENTION_OPS = ("bmm", "scaled_dot_product", "_flash_attention", "_efficient_attention")


def count_macs(model: nn.Module, *inputs: torch.Tensor) -> int:
    """MACs of one forward pass of ``model(*inputs)``."""
    attention = 0

    def hook(_module, args, _out):
        nonlocal attention
        b, n, c = args[0].shape
        attention += 2 * b * n * n * c  # q·kᵀ and attn·v, summed over heads

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, Attention)]
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(*inputs)
    finally:
        for h in handles:
            h.remove()
    counted = counter.get_total_flops()
    per_op = counter.get_flop_counts().get("Global", {})
    counted -= sum(v for op, v in per_op.items() if any(a in str(op) for a in _ATTENTION_OPS))
    return counted // 2 + attention


def compressed_inputs(
    batch: int = 1,
    num_iframes: int = ClipSpec.num_gops,
    size: int = 224,
    device: str | torch.device = "meta",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Zero inputs of the paper's shapes (:class:`ClipSpec`: 4 I-frames, 12 P-frames),
    ``size``²."""
    t_p = ClipSpec.p_per_gop * num_iframes
    return (
        torch.zeros(batch, 3, num_iframes, size, size, device=device),
        torch.zeros(batch, 2, t_p, size, size, device=device),
        torch.zeros(batch, 3, t_p, size, size, device=device),
    )
