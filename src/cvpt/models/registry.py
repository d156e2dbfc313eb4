"""Named backbones, timm-style: one line per variant (registered in its family's module), any
field overridable. Families: ``vit`` (VideoMAE's ViT, :mod:`cvpt.models.vit`) and ``swin``
(Video Swin, :mod:`cvpt.models.swin`); the import below is each family's registration line."""

from __future__ import annotations

# importing a family registers its class and variants
from cvpt.errors import ConfigError
from cvpt.models import swin, vit  # noqa: F401
from cvpt.models.backbone import _BACKBONES, _FAMILIES, VideoBackbone, family_of


def list_families() -> list[str]:
    """The registered family names (as saved in files: ``vit``, ``swin``), sorted."""
    return sorted(_FAMILIES)


def get_family(name: str) -> type[VideoBackbone]:
    """The :class:`VideoBackbone` subclass registered as ``name``; :class:`ConfigError`
    naming the registered families for any other name."""
    if name not in _FAMILIES:
        raise ConfigError(
            f"unknown backbone family {name!r}; registered: {', '.join(list_families())}"
        )
    return _FAMILIES[name]


def list_backbones(family: str | None = None) -> list[str]:
    """Registered variant names (of one ``family``: ``vit`` or ``swin``), sorted; raises
    :class:`ConfigError` naming the known families for any other ``family``."""
    families = {n: fn().family for n, fn in _BACKBONES.items()}
    if family is not None and family not in families.values():
        known = ", ".join(sorted(set(families.values())))
        raise ConfigError(f"unknown backbone family {family!r}; known: {known}")
    return sorted(n for n, f in families.items() if family in (None, f))


def backbone_config(name: str, **overrides):
    """The registered config ``name`` with ``overrides`` (any field of its config class:
    :class:`~cvpt.models.vit.ViTConfig` or :class:`~cvpt.models.swin.SwinConfig`)."""
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


def create_backbone(name: str = "vit_base", **overrides) -> VideoBackbone:
    """A randomly initialised backbone, e.g. ``create_backbone("vit_base", depth=4)`` or
    ``create_backbone("swin_base", depths=(1, 1, 1, 1))``."""
    cfg = backbone_config(name, **overrides)
    return family_of(cfg)(cfg)
