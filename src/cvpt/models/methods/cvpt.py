"""CVPT (the paper's method): SCCP blocks before the first ``sccp_layers`` backbone blocks refine
the I-frame tokens with the MV and residual prompts (docs/design.md, *Model*)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import nn

from cvpt.errors import ConfigError
from cvpt.models.methods.base import TuningMethod, TuningOptions, option
from cvpt.models.prompts import SCCP, SCCP_UPDATES


@dataclass
class CVPTOptions(TuningOptions):
    # SCCP blocks before blocks 1..k; None = depth (full CVPT); at most the depth
    sccp_layers: int | None = option(None, min=0)
    sccp_attention: bool = True  # False: m = m + r instead of residual-guided selection (Fig. 5b)
    hidden_dim: int = option(8, min=1)  # d' = d/α, α = 96 for ViT-B; kept at 8 for other widths
    # SCCP adds g5(m), g6(r) to the MV/residual streams, or "replace" (same weights either
    # way; the default is the reading under which more of the paper's own claims hold on the
    # synthetic task: docs/design.md)
    sccp_update: str = option("add", choices=SCCP_UPDATES)


class CVPT(TuningMethod):
    name = "cvpt"
    label = "CVPT"
    help = "CVPT: SCCP blocks (and the prompt embeddings) train; the backbone stays frozen"
    options = CVPTOptions
    proposed = True
    # runs that did not record the reading were trained when SCCP replaced the streams
    recorded_before: ClassVar[dict[str, object]] = {"sccp_update": "replace"}

    def check(self, backbone, options: CVPTOptions) -> None:
        super().check(backbone, options)
        if options.inputs == "iframe":
            raise ConfigError("inputs='iframe' leaves CVPT no prompts to build: use another method")
        depth = len(backbone.block_dims())
        k = depth if options.sccp_layers is None else options.sccp_layers
        if not 0 <= k <= depth:
            raise ConfigError(
                f"option sccp_layers={k} is not allowed: this backbone has {depth} blocks, so it "
                f"takes 0..{depth} (or None: all)"
            )

    def build(self, model) -> None:
        o: CVPTOptions = model.options
        dims = model.backbone.block_dims()
        model.sccp_layers = len(dims) if o.sccp_layers is None else o.sccp_layers
        model.sccp = nn.ModuleList(
            SCCP(
                dims[i],
                o.hidden_dim,
                attention=o.sccp_attention,
                residual_prompt=o.residual_prompt,
                update=o.sccp_update,
            )
            for i in range(model.sccp_layers)
        )

    def tuned_modules(self, model) -> list[nn.Module]:
        return [model.sccp]

    def before_block(self, model, i, streams):
        """SCCP ``i`` on ``[P_MV, P_R, E_I]`` before the first ``sccp_layers`` blocks."""
        if i >= model.sccp_layers:
            return streams
        p_mv, p_r, e = model.unpack_streams(streams)
        return model.pack_streams(*model.sccp[i](e, p_mv, p_r))
