"""Full fine-tuning: every weight trains, the backbone's included."""

from __future__ import annotations

from cvpt.models.methods.base import TuningMethod


class Full(TuningMethod):
    name = "full"
    label = "Full fine-tuning"
    help = "full fine-tuning: every weight trains, the backbone's included"
    trains_backbone = True
