"""Named backbones, timm-style: one line per variant, any field overridable."""

from __future__ import annotations

from collections.abc import Callable

from cvpt.errors import ConfigError
from cvpt.models.vit import VisionTransformer, ViTConfig

_BACKBONES: dict[str, Callable[[], ViTConfig]] = {}


def register_backbone(fn: Callable[[], ViTConfig]) -> Callable[[], ViTConfig]:
    _BACKBONES[fn.__name__] = fn
    return fn


@register_backbone
def vit_tiny() -> ViTConfig:
    return ViTConfig(embed_dim=192, depth=12, num_heads=3)


@register_backbone
def vit_small() -> ViTConfig:
    return ViTConfig(embed_dim=384, depth=12, num_heads=6)


@register_backbone
def vit_base() -> ViTConfig:
    return ViTConfig(embed_dim=768, depth=12, num_heads=12)


@register_backbone
def vit_large() -> ViTConfig:
    return ViTConfig(embed_dim=1024, depth=24, num_heads=16)


def list_backbones() -> list[str]:
    return sorted(_BACKBONES)


def backbone_config(name: str, **overrides) -> ViTConfig:
    """The registered config ``name`` with ``overrides`` (any :class:`ViTConfig` field)."""
    if name not in _BACKBONES:
        raise ConfigError(f"unknown backbone {name!r}; registered: {', '.join(list_backbones())}")
    cfg = _BACKBONES[name]()
    unknown = set(overrides) - set(cfg.to_dict())
    if unknown:
        valid = sorted(cfg.to_dict())
        raise ConfigError(f"unknown backbone options {sorted(unknown)}; valid: {valid}")
    for k, v in overrides.items():
        setattr(cfg, k, v)
    return cfg


def create_backbone(name: str = "vit_base", **overrides) -> VisionTransformer:
    """A randomly initialised backbone, e.g. ``create_backbone("vit_base", depth=4)``."""
    return VisionTransformer(backbone_config(name, **overrides))
