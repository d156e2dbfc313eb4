"""VPT*: VPT-deep prompts, ``vpt_tokens`` learnable tokens prepended before every block and
dropped after it (ViT only)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from cvpt.models.methods.base import TuningMethod, TuningOptions, option
from cvpt.models.prompts import DeepPrompts


@dataclass
class VPTOptions(TuningOptions):
    vpt_tokens: int = option(8, min=1)  # VPT*: 8 prompts per layer fits Table 1's +6.0 GFLOPs


class VPT(TuningMethod):
    name = "vpt"
    label = "VPT*"
    help = "VPT*: deep prompts (vpt_tokens per block) and the prompt embeddings train"
    options = VPTOptions
    families = ("vit",)
    unsupported = (
        "its deep prompts are a few global tokens, which a windowed backbone has no place for "
        "(every shifted window would need its own copy) and which cannot pass the 4C→2C patch "
        "merging between stages"
    )

    def build(self, model) -> None:
        tubelet, p, _ = model.backbone.patch_kernel
        fan_in = 3 * tubelet * p * p  # the patch embedding's (RGB input)
        depth = len(model.backbone.block_dims())
        d = model.backbone.embed_dim
        model.prompts = DeepPrompts(depth, model.options.vpt_tokens, d, fan_in)

    def tuned_modules(self, model) -> list[nn.Module]:
        return [model.prompts]

    def before_block(self, model, i, streams):
        """Drop block ``i - 1``'s deep prompts, prepend block ``i``'s."""
        if i > 0:
            streams = streams[1:]
        prompt = model.prompts.tokens[i].expand(streams[0].shape[0], -1, -1)
        return [prompt, *streams]

    def after_blocks(self, model, streams):
        return streams[1:]  # the last block's deep prompts

    def extra_tokens(self, model) -> int:
        return len(model.prompts)
