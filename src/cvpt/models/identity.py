"""What tuned tensors depend on: the frozen backbone's identity (its real architecture, where
it came from, a fingerprint of its frozen weights) and the check that refuses tuned tensors on
another backbone.

The fingerprint (SHA-256 over the frozen backbone tensors, computed once per model, before any
bf16 cast) ties the tuned tensors to the exact weights they were tuned on: loading them onto
another backbone gives other predictions without a word, so it is refused unless asked for.
"""

from __future__ import annotations

import hashlib

import torch

from cvpt.errors import CvptError
from cvpt.models.backbone import family_of
from cvpt.models.registry import backbone_config, list_backbones

IDENTITY_KEYS = ("backbone", "backbone_source", "backbone_fingerprint")


class BackboneMismatchError(CvptError, ValueError):
    """Tuned tensors met a backbone other than the one they were tuned on."""

    def __init__(self, where, saved: dict, found: dict):
        self.saved, self.found = saved, found
        super().__init__(
            f"{where}: tuned on backbone {describe(saved)}, but the backbone here is "
            f"{describe(found)}; its predictions would differ. Use the backbone it was tuned "
            "on, or pass --allow-other-backbone (allow_other_backbone=True) to use this one"
        )


def describe(identity: dict) -> str:
    """``'vit_tiny(depth=4) from /x/y.safetensors, fingerprint 1a2b3c4d5e6f'``."""
    fp = identity.get("backbone_fingerprint") or "?"
    return (
        f"{identity.get('backbone')} from {identity.get('backbone_source')}, fingerprint {fp[:12]}"
    )


def frozen_fingerprint(model) -> str:
    """SHA-256 (hex) over the frozen tensors of ``model.backbone`` (name, shape, float32 bytes;
    buffers included), computed once and cached on the model. ``cast_frozen_weights`` computes
    it before narrowing the weights, so a bf16 run keeps the float32 fingerprint."""
    cached = getattr(model, "_frozen_fingerprint", None)
    if cached is not None:
        return cached
    h = hashlib.sha256()
    backbone = model.backbone
    tensors = [(n, p) for n, p in backbone.named_parameters() if not p.requires_grad]
    tensors += list(backbone.named_buffers())
    for name, t in sorted(tensors, key=lambda x: x[0]):
        if t.device.type == "meta":
            return "meta"  # nothing to hash (reports build models without weights); not cached
        h.update(f"{name}:{list(t.shape)};".encode())
        h.update(t.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    model._frozen_fingerprint = h.hexdigest()
    return model._frozen_fingerprint


def architecture_name(cfg) -> str:
    """The registered backbone ``cfg`` (a family's config) is, e.g. ``vit_tiny``,
    ``vit_tiny(depth=4)`` or ``swin_base``: the variant whose family's ``shape_fields`` match,
    and its depth if it differs; the family's ``unregistered_name`` (``vit(d=..., depth=...,
    heads=...)``, ``swin(C=..., ...)``) when none does."""
    family = family_of(cfg)
    shape, depth = family.shape_fields, family.depth_field
    refs = {name: backbone_config(name) for name in list_backbones(cfg.family)}
    alike = [n for n, ref in refs.items() if all(getattr(ref, k) == getattr(cfg, k) for k in shape)]
    for name in alike:  # the exact variant first (swin_tiny and swin_small differ only in depth)
        if getattr(refs[name], depth) == getattr(cfg, depth):
            return name
    if alike:
        d = getattr(cfg, depth)
        return f"{alike[0]}({depth}={list(d) if isinstance(d, tuple) else d})"
    return family.unregistered_name(cfg)


def backbone_identity(model) -> dict:
    """What the tuned tensors of ``model`` depend on: the backbone's real architecture, where
    it came from and the fingerprint of its frozen weights."""
    origin = getattr(model, "origin", {}) or {}
    ckpt = origin.get("backbone_checkpoint")
    source = ckpt if ckpt else f"random initialisation (seed {origin.get('seed')})"
    return {
        "backbone": architecture_name(model.backbone.cfg),
        "backbone_source": source,
        "backbone_fingerprint": frozen_fingerprint(model),
    }


def check_backbone(where, saved: dict, found: dict, allow_other: bool = False) -> None:
    """Refuse (:class:`BackboneMismatchError`) tuned tensors saved with the backbone identity
    ``saved`` on a model whose backbone is ``found``, unless ``allow_other``. A ``saved``
    without a fingerprint (older checkpoints) is not checked."""
    want = saved.get("backbone_fingerprint")
    if allow_other or not want or want == found.get("backbone_fingerprint"):
        return
    raise BackboneMismatchError(where, saved, found)
