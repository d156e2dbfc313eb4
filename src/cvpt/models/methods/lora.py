"""LoRA (Hu et al., 2022), a common PEFT baseline the paper does not have: a rank-r update
``(alpha/r)·B·A`` beside the frozen qkv and output projections of every attention block; B
starts at zero, so the model starts as the frozen one. The prompt embeddings train too, as in
every method but the linear probe.

Each wrapped projection keeps its frozen tensors under their own keys (``attn.qkv.weight``…)
and adds ``lora_a.weight [r, in]`` and ``lora_b.weight [out, r]`` beside them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from cvpt.errors import ConfigError
from cvpt.models.methods.base import TuningMethod, TuningOptions, option

TARGETS = ("qkv", "proj")  # the attention's input and output projections


@dataclass
class LoRAOptions(TuningOptions):
    lora_rank: int = option(8, min=1)  # r: 0.52% of ViT-B trains (w/o the prompt embeddings)
    # the update is scaled by alpha / r; 0 would zero it and every LoRA gradient
    lora_alpha: float = option(8.0, above=0)


class LoRALinear(nn.Linear):
    """``base`` (an ``nn.Linear``, frozen) plus ``(alpha/rank)·lora_b(lora_a(x))``. It holds
    ``base``'s own weight and bias (same keys in a state dict) and takes the same call,
    ``forward(x, bias=None)`` with a bias passed by the caller as the ViT's qkv is
    (:class:`cvpt.models.vit.QKVLinear`)."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float):
        nn.Module.__init__(self)  # not nn.Linear's: the weights are base's, not new ones
        self.in_features, self.out_features = base.in_features, base.out_features
        self.weight, self.bias = base.weight, base.bias
        self.lora_a = nn.Linear(base.in_features, rank, bias=False)  # Kaiming-uniform, as nn's
        self.lora_b = nn.Linear(rank, base.out_features, bias=False)
        nn.init.zeros_(self.lora_b.weight)  # the update starts at zero
        self.scale = alpha / rank

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        y = F.linear(x, self.weight, self.bias if bias is None else bias)
        return y + self.scale * self.lora_b(self.lora_a(x))


class LoRA(TuningMethod):
    name = "lora"
    label = "LoRA"
    in_paper = False
    help = "LoRA: rank-r updates of every attention's qkv and proj, and the prompt embeddings"
    options = LoRAOptions

    def check(self, backbone, options: LoRAOptions) -> None:
        super().check(backbone, options)
        for blk in backbone.blocks:
            attn = getattr(blk, "attn", None)
            if not all(isinstance(getattr(attn, t, None), nn.Linear) for t in TARGETS):
                raise ConfigError(
                    f"method 'lora' is not supported on the {backbone.family!r} backbone "
                    f"family: its blocks have no attn.{' and attn.'.join(TARGETS)} Linear modules"
                )
        # a rank above min(in, out) adds parameters but no expressiveness (B·A has rank
        # min(in, out) at most): a typo, not a setting
        most = min(
            min(layer.in_features, layer.out_features)
            for blk in backbone.blocks
            for layer in (getattr(blk.attn, t) for t in TARGETS)
        )
        if options.lora_rank > most:
            raise ConfigError(
                f"option lora_rank={options.lora_rank} is not allowed on this {backbone.family} "
                f"backbone: the layers LoRA wraps (attn.{' and attn.'.join(TARGETS)}) have "
                f"min(in, out) = {most} features, and the rank must be 1..{most}"
            )

    def build(self, model) -> None:
        o: LoRAOptions = model.options
        for blk in model.backbone.blocks:
            for t in TARGETS:
                setattr(blk.attn, t, LoRALinear(getattr(blk.attn, t), o.lora_rank, o.lora_alpha))

    def tuned_modules(self, model) -> list[nn.Module]:
        return [
            m
            for blk in model.backbone.blocks
            for t in TARGETS
            for m in (getattr(blk.attn, t).lora_a, getattr(blk.attn, t).lora_b)
        ]
