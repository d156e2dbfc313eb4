"""AdaptFormer*: a bottleneck adapter parallel to every block's MLP (the backbone contract's
``adapter`` slot), the same ``adapter_dim`` in every stage."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from cvpt.models.methods.base import TuningMethod, TuningOptions, option
from cvpt.models.prompts import Adapter


@dataclass
class AdaptFormerOptions(TuningOptions):
    # AdaptFormer*: bottleneck 64 fits Table 1's 1.3M parameters
    adapter_dim: int = option(64, min=1)
    # AdaptFormer's video setting; 0 would zero the adapters' output and their gradients
    adapter_scale: float = option(0.1, above=0)


class AdaptFormer(TuningMethod):
    name = "adaptformer"
    label = "AdaptFormer*"
    help = "AdaptFormer*: adapters parallel to every MLP and the prompt embeddings train"
    options = AdaptFormerOptions

    def build(self, model) -> None:
        o: AdaptFormerOptions = model.options
        for blk, dim in zip(model.backbone.blocks, model.backbone.block_dims(), strict=True):
            blk.adapter = Adapter(dim, o.adapter_dim, o.adapter_scale)

    def tuned_modules(self, model) -> list[nn.Module]:
        return [blk.adapter for blk in model.backbone.blocks]
