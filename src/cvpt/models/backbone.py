"""The backbone contract: what the compressed-domain model needs from a video transformer family,
and the registry of named variants (timm-style: one file per family, one line per variant).

A family (``vit.py``: VideoMAE's ViT; ``swin.py``: Video Swin) is one file: a
:class:`VideoBackbone` subclass decorated ``@register_family``, its config dataclass and its
``@register_backbone`` variants; its import in ``registry.py`` is the one registration line.
:class:`~cvpt.models.compressed.CompressedVideoModel` then builds on it through this contract only:

1. **embed** — ``embed(x)`` puts the I-frames on the family's token grid as one *stream* (a
   tensor in the family's own layout: ``[B, N, D]`` for the ViT, ``[B, T, H, W, C]`` for Swin);
   ``embed_prompt(tokens, like)`` puts prompt tokens ``[B, N, D]`` (from a Conv3d with the
   family's :attr:`~VideoBackbone.patch_kernel`, 3× longer in time) on the same grid, with the
   same positions as ``like``;
2. **blocks** — ``forward_streams(streams, hook)`` runs every block on a list of streams,
   calling ``hook(i, streams) -> streams`` before block ``i`` (where SCCP, deep prompts… act),
   lets the streams interact the family's way (the ViT concatenates them; Swin shares windows),
   and carries every stream through the family's downsampling with the same frozen weights
   (windowed families also take ``joint=False``: each stream attends within itself only).
   :attr:`~VideoBackbone.blocks` lists the blocks in that order, each with an ``adapter`` slot
   (``None``, or a module run parallel to its MLP), and :meth:`~VideoBackbone.block_dims` their
   widths;
3. **pool and head** — ``forward_tokens(streams)`` → final norm, all streams' tokens
   ``[B, S·N, C]`` (stream order kept); ``forward_head(tokens)`` → the family's pooling and head;
   :meth:`~VideoBackbone.head_modules` is what a linear probe trains.

``forward_features(x) = forward_tokens(forward_streams([embed(x)]))``: with one stream the
contract *is* the plain backbone, which is how each family is tested against its reference.

Everything else cvpt knows about a family is a class attribute or static/class method of its
subclass, never a test of its name elsewhere (the hooks under "family facts" below): its config
class, default variant, raw-RGB reference, capabilities, naming, and its checkpoints (which
layouts it recognises, the filter to cvpt's names, the config read off the weights, the keys a
load may leave unused or fresh), which :mod:`cvpt.models.backbone_weights` dispatches over.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from cvpt.errors import ConfigError

Hook = Callable[[int, list[torch.Tensor]], list[torch.Tensor]]
# (key pattern, why) rules: the keys a load may leave unused or fresh, with the reason logged
KeyRules = list[tuple[re.Pattern, str]]


@dataclass(frozen=True)
class RawVideoRecipe:
    """A family's published raw-RGB reference (the row cvpt's cost is compared with):
    ``name`` (e.g. ``"VideoMAE"``), ``frames`` RGB frames per view and ``views`` per video at
    test time (clips × crops); ``legacy_ratio``: the name earlier bench result files gave
    cvpt's forward-time ratio to it (``""``: none; kept so those files stay comparable)."""

    name: str
    frames: int
    views: int
    legacy_ratio: str = ""


# name -> a function returning the variant's config; filled by @register_backbone in each family
_BACKBONES: dict[str, Callable[[], object]] = {}
# family name -> the VideoBackbone subclass built from that family's config
_FAMILIES: dict[str, type[VideoBackbone]] = {}


def register_backbone(fn: Callable[[], object]) -> Callable[[], object]:
    """Register a named variant: ``fn`` (named as the variant) returns its config."""
    _BACKBONES[fn.__name__] = fn
    return fn


def register_family(cls: type[VideoBackbone]) -> type[VideoBackbone]:
    """Register a :class:`VideoBackbone` subclass under its ``family`` name."""
    _FAMILIES[cls.family] = cls
    return cls


def family_of(cfg) -> type[VideoBackbone]:
    """The backbone class a config belongs to (configs carry a ``family`` class variable)."""
    return _FAMILIES[cfg.family]


class VideoBackbone(nn.Module):
    """Base class of the backbone families; see the module docstring for the contract."""

    # ---- family facts (class-level: read without building a model)
    family: ClassVar[str]  # the name saved in files ("vit", "swin"): never change it
    config_class: ClassVar[type]  # the config dataclass (carries the same ``family``)
    default_variant: ClassVar[str]  # the registered variant that names the family ("vit_base")
    raw_video: ClassVar[RawVideoRecipe]  # its raw-RGB reference (reports, bench)
    # stream_attention="separate" (each stream attends within itself): windowed families only
    supports_separate_stream_attention: ClassVar[bool] = False
    # modules whose own parameters autocast casts at every use, beyond Linear and Conv3d
    # (CompressedVideoModel.cast_frozen rounds those when frozen)
    autocast_modules: ClassVar[tuple[type[nn.Module], ...]] = ()
    # naming (cvpt.models.identity.architecture_name): the config fields that make a variant
    # besides its depth, and the depth field (an int, or blocks per stage as a tuple)
    shape_fields: ClassVar[tuple[str, ...]]
    depth_field: ClassVar[str]
    # checkpoints: the layouts the family reads (for the message on an unknown checkpoint),
    # the unexpected keys known to be unused and missing keys made fresh by design, and the
    # Hugging Face folders it reads, ``model_type`` → its name in messages (none: no HF folder)
    checkpoint_help: ClassVar[str]
    unused_keys: ClassVar[KeyRules] = []
    fresh_keys: ClassVar[KeyRules] = []
    hf_model_types: ClassVar[dict[str, str]] = {}

    @staticmethod
    def checkpoint_format(sd: dict[str, torch.Tensor]) -> str | None:
        """The name of the family's layout a (bare, unwrapped) state dict has, or None when it
        is not one of the family's."""
        raise NotImplementedError

    @staticmethod
    def checkpoint_filter_fn(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Any layout :meth:`checkpoint_format` recognises → cvpt's key names (timm's
        ``checkpoint_filter_fn``); keys no rule knows pass on for the strict check to report."""
        raise NotImplementedError

    @staticmethod
    def config_from_state_dict(sd: dict[str, torch.Tensor]):
        """The config read off filtered weights; ``ValueError`` with a full sentence for a
        layout the family refuses (e.g. an image model), ``KeyError`` for missing tensors."""
        raise NotImplementedError

    @staticmethod
    def config_from_hf(hf: dict):
        """The config a Hugging Face ``config.json`` (of a ``model_type`` in
        :attr:`hf_model_types`) describes."""
        raise NotImplementedError

    @classmethod
    def config_problem(cls, cfg) -> str:
        """Why ``cfg`` (read from a checkpoint, overrides applied) cannot be built, as the
        sentence a load error gives; ``""`` when it can."""
        return ""

    @classmethod
    def depth_option(cls, cfg, depth: int) -> dict:
        """The config override that gives ``cfg`` ``depth`` blocks (per stage, where the depth
        field is a tuple): ``cvpt bench --depth``."""
        now = getattr(cfg, cls.depth_field)
        return {cls.depth_field: (depth,) * len(now) if isinstance(now, tuple) else depth}

    @classmethod
    def unregistered_name(cls, cfg) -> str:
        """The name of a ``cfg`` no registered variant has, e.g. ``vit(d=64, depth=2, ...)``."""
        raise NotImplementedError

    # ---- the model
    cfg: object
    head: nn.Module  # the classifier (``nn.Identity`` without one)
    embed_dim: int  # width of the input token grid (streams entering block 0)
    num_features: int  # width of the tokens forward_tokens returns (the head's input)
    patch_kernel: tuple[int, int, int]  # (t, h, w) input frames/pixels per input-grid token
    checkpoint_blocks: int = 0  # the first k blocks recompute their activations
    blocks: Sequence[nn.Module]  # every block, in running order (an attribute or a property)

    def block_dims(self) -> list[int]:
        """Token width at the input of each block, in :attr:`blocks` order."""
        raise NotImplementedError

    def check_video(self, x: torch.Tensor, name: str, channels: int | None = None) -> None:
        """Raise a ValueError naming the expected layout unless ``x`` is a video ``[B, C, T, H,
        W]`` this family takes (:func:`check_video` with the family's tiling)."""
        raise NotImplementedError

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def embed_prompt(self, tokens: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_streams(
        self, streams: list[torch.Tensor], hook: Hook | None = None
    ) -> list[torch.Tensor]:
        raise NotImplementedError

    def forward_tokens(self, streams: list[torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def forward_head(self, tokens: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        raise NotImplementedError

    def token_grid(self, video_shape: tuple[int, ...]) -> tuple[int, int, int]:
        """``(t, h, w)`` of the tokens ``forward_tokens`` returns per stream, for an input video
        ``[B, C, T, H, W]`` (the ViT's patch grid; Swin's last stage)."""
        raise NotImplementedError

    def head_modules(self) -> list[nn.Module]:
        """The modules a linear probe trains (the head, and a pooling norm where there is one)."""
        raise NotImplementedError

    def reset_classifier(self, num_classes: int) -> None:
        raise NotImplementedError

    def token_features(self, tokens: torch.Tensor) -> torch.Tensor:
        """Each token ``[..., N, C]`` as :meth:`forward_head` normalises features before its
        head, applied per token (the ViT's fc_norm; identity where pooling has no norm): what
        a class activation map multiplies with the head's weights."""
        return tokens

    @property
    def pools(self) -> bool:
        """Whether ``forward_head`` pools into a classifier (False: a pre-training layout)."""
        return True

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Tokens ``[B, N, C]`` after the final norm."""
        return self.forward_tokens(self.forward_streams([self.embed(x)]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def set_grad_checkpointing(self, enable: bool | int = True) -> None:
        """Recompute blocks' activations in the backward pass instead of keeping them (timm's
        switch): those blocks keep only their inputs, and a train step pays up to one more
        forward pass. ``True`` checkpoints every block but the last: the backward pass starts by
        recomputing the last block, so checkpointing it never lowers the peak (measured:
        docs/benchmarks.md). An int k checkpoints the first k blocks: memory and time move
        between the two ends in proportion."""
        depth = len(self.blocks)
        k = depth - 1 if enable is True else enable
        if not isinstance(k, int) or not 0 <= k <= depth:
            raise ConfigError(
                f"grad checkpointing takes a bool or a block count 0..{depth}; got {enable!r}"
            )
        self.checkpoint_blocks = k

    @property
    def grad_checkpointing(self) -> bool:
        return self.checkpoint_blocks > 0


class Mlp(nn.Module):
    """The transformer MLP both families use: Linear D→hidden, exact GELU, Linear hidden→D."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


def run_block(blk: Callable, x, checkpointing: bool):
    """``blk(x)``; with ``checkpointing`` (and autograd recording) its activations are
    recomputed in the backward pass rather than kept."""
    if checkpointing and torch.is_grad_enabled():
        return checkpoint(blk, x, use_reentrant=False)
    return blk(x)


def check_video(x: torch.Tensor, kernel: tuple[int, int, int], channels: int, name: str) -> None:
    """Raise a ValueError naming the expected layout unless ``x`` is ``[B, C, T, H, W]`` with
    ``C = channels``, T a multiple of ``kernel[0]`` and H, W multiples of ``kernel[1:]``."""
    t, p, q = kernel
    if (
        x.ndim != 5
        or x.shape[1] != channels
        or x.shape[2] % t
        or x.shape[3] % p
        or x.shape[4] % q
        or 0 in x.shape
    ):
        hw = f"{p}" if p == q else f"{p} and {q}"
        raise ValueError(
            f"{name} must be [B, {channels}, T, H, W] (batch, channels, frames, height, width) "
            f"with T a multiple of {t} and H, W multiples of {hw}; got {list(x.shape)}"
        )
