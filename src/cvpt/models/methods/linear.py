"""Linear probe: only the head (and the ViT's fc_norm) trains; the prompt embeddings stay as
initialised."""

from __future__ import annotations

from cvpt.models.methods.base import TuningMethod


class Linear(TuningMethod):
    name = "linear"
    label = "Linear probe"
    help = "linear probe: only the head (and the ViT's fc_norm) trains"
    tunes_prompt_embeddings = False
