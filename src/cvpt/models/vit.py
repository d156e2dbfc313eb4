"""VideoMAE's Vision Transformer, exactly (MCG-NJU/VideoMAE ``modeling_finetune.py``).

Tubelet Conv3d patch embedding (2×16×16), a fixed sinusoid position table built for the input's
token count (not a parameter, not in state dicts), pre-LN blocks whose qkv projection has q and v
biases but no k bias, LayerNorm eps 1e-6, mean pooling → fc_norm → head. Input ``[B, 3, T, H, W]``.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from cvpt.models.backbone import (
    Hook,
    Mlp,
    RawVideoRecipe,
    VideoBackbone,
    check_video,
    register_backbone,
    register_family,
    run_block,
)


@dataclass
class ViTConfig:
    """Backbone hyper-parameters; the defaults are VideoMAE ViT-B/16."""

    family: ClassVar[str] = "vit"

    embed_dim: int = 768  # token width d
    depth: int = 12  # transformer blocks
    num_heads: int = 12  # attention heads (VideoMAE: 64 channels each)
    mlp_ratio: float = 4.0  # MLP hidden width / d
    patch_size: int = 16  # spatial patch side p, in pixels
    tubelet_size: int = 2  # frames per token t (I-frames per token here)
    in_chans: int = 3  # input channels (RGB)
    num_classes: int = 0  # 0: no head (forward_head returns pooled features)
    qkv_bias: bool = True  # VideoMAE: q and v biases, never a k bias
    norm_eps: float = 1e-6  # VideoMAE's; Hugging Face folders carry their own (default 1e-12)
    fc_norm_eps: float = 1e-6  # HF's classifier fc_norm is nn.LayerNorm's default 1e-5
    use_mean_pooling: bool = True  # False: pre-training layout with a final `norm`
    img_size: int = 224  # nominal: used for reports, any multiple of patch_size works
    num_frames: int = 16  # nominal, idem

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        return (
            f"ViT d={self.embed_dim} depth={self.depth} heads={self.num_heads} "
            f"classes={self.num_classes}"
        )


def sinusoid_table(n_position: int, dim: int) -> torch.Tensor:
    """VideoMAE's fixed position table ``float32 [1, n_position, dim]``: sin on even channels,
    cos on odd, angle ``pos / 10000^(2⌊j/2⌋/dim)``, computed in float64 as the original."""
    pos = torch.arange(n_position, dtype=torch.float64)[:, None]
    j = torch.arange(dim, dtype=torch.float64)[None, :]
    angle = pos / torch.pow(10000.0, 2 * torch.div(j, 2, rounding_mode="floor") / dim)
    table = torch.empty(n_position, dim, dtype=torch.float64)
    table[:, 0::2] = torch.sin(angle[:, 0::2])
    table[:, 1::2] = torch.cos(angle[:, 1::2])
    return table.float()[None]


class PatchEmbed(nn.Module):
    """``[B, C, T, H, W]`` → ``[B, (T/t)(H/p)(W/p), D]`` tokens, t-major then h then w."""

    def __init__(self, in_chans: int, embed_dim: int, patch_size: int, tubelet_size: int):
        super().__init__()
        self.patch_size, self.tubelet_size = patch_size, tubelet_size
        kernel = (tubelet_size, patch_size, patch_size)
        self.proj = nn.Conv3d(in_chans, embed_dim, kernel_size=kernel, stride=kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class QKVLinear(nn.Linear):
    """An ``nn.Linear`` whose caller may pass the bias: VideoMAE keeps the q and v biases on
    the attention (``attn.q_bias``, ``attn.v_bias`` in every checkpoint) and has no k bias.
    ``forward(x, bias=None)``: ``x @ weight.T + (bias if given, else self.bias)``. A module, so
    a weight-level method (LoRA) can replace it by a subclass taking the same call."""

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias if bias is None else bias)


class Attention(nn.Module):
    """Multi-head self-attention with VideoMAE's q/v-only biases."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = QKVLinear(dim, dim * 3, bias=False)
        if qkv_bias:
            self.q_bias = nn.Parameter(torch.zeros(dim))
            self.v_bias = nn.Parameter(torch.zeros(dim))
        else:
            self.q_bias = self.v_bias = None
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        bias = None
        if self.q_bias is not None:
            bias = torch.cat([self.q_bias, torch.zeros_like(self.v_bias), self.v_bias])
        qkv = self.qkv(x, bias).reshape(b, n, 3, self.num_heads, -1)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each [B, heads, N, head_dim]
        x = F.scaled_dot_product_attention(q, k, v)  # scale head_dim**-0.5, as VideoMAE
        return self.proj(x.transpose(1, 2).reshape(b, n, c))


class Block(nn.Module):
    """Pre-LN transformer block. ``adapter`` (None by default) runs in parallel with the MLP on
    the post-attention hidden state, as AdaptFormer's video variant does."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, qkv_bias: bool, eps: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, num_heads, qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.adapter: nn.Module | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        out = x + self.mlp(self.norm2(x))
        if self.adapter is not None:
            out = out + self.adapter(x)
        return out


# ---------------------------------------------------------------- checkpoints


# Unexpected keys that carry nothing a classifier backbone uses.
UNUSED_KEYS = [
    (re.compile(r"^decoder\."), "pre-training decoder"),
    (re.compile(r"^encoder_to_decoder\."), "pre-training decoder projection"),
    (re.compile(r"^mask_token$"), "pre-training mask token"),
    (re.compile(r"^pos_embed$"), "fixed sinusoid table (rebuilt, not loaded)"),
    (re.compile(r"^norm\.(weight|bias)$"), "pre-training final norm (mean pooling uses fc_norm)"),
]
# Missing keys that are freshly initialised by design.
FRESH_KEYS = [
    (re.compile(r"^fc_norm\.(weight|bias)$"), "new fc_norm (pre-training checkpoints have none)"),
    (re.compile(r"^head\.(weight|bias)$"), "new classifier head"),
]

IMAGE_MODEL = (
    "an image model (a 2-D patch embedding, as timm's and torchvision's image ViTs have), not a "
    "video model; cvpt tunes video backbones: use a VideoMAE checkpoint (official .pth, or a "
    "Hugging Face folder or hub id such as MCG-NJU/videomae-base) or a Video Swin one "
    "(torchvision swin3d_b, mmaction2)"
)

# attention heads of the published ViT sizes, by embedding width (the weights do not say):
# cvpt's vit_tiny (DeiT-Ti) 192/3; VideoMAE S 384/6, B 768/12, L 1024/16, H 1280/16 (80-wide
# heads); VideoMAE V2 g 1408/16 (88-wide). A width not here needs ``num_heads=``.
PUBLISHED_HEADS = {192: 3, 384: 6, 768: 12, 1024: 16, 1280: 16, 1408: 16}


def filter_official(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official VideoMAE: unwrap nothing here, strip ``encoder.`` / ``backbone.`` / ``module.``."""
    out = {}
    for k, v in sd.items():
        for prefix in ("module.", "backbone.", "encoder."):
            if k.startswith(prefix):
                k = k[len(prefix) :]
        out[k] = v
    return out


def filter_hf(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Hugging Face VideoMAE (4.x or 5.x layout) → our names; q/k/v weights are concatenated."""
    out: dict[str, torch.Tensor] = {}
    qkv: dict[int, dict[str, torch.Tensor]] = {}
    rules = [
        (r"^videomae\.embeddings\.patch_embeddings\.projection\.", "patch_embed.proj."),
        (r"^videomae\.encoder\.layer\.(\d+)\.attention\.output\.dense\.", r"blocks.\1.attn.proj."),
        (r"^videomae\.encoder\.layer\.(\d+)\.layernorm_before\.", r"blocks.\1.norm1."),
        (r"^videomae\.encoder\.layer\.(\d+)\.layernorm_after\.", r"blocks.\1.norm2."),
        (r"^videomae\.encoder\.layer\.(\d+)\.intermediate\.dense\.", r"blocks.\1.mlp.fc1."),
        (r"^videomae\.encoder\.layer\.(\d+)\.output\.dense\.", r"blocks.\1.mlp.fc2."),
        (r"^videomae\.layernorm\.", "norm."),
        (r"^classifier\.", "head."),
        (r"^fc_norm\.", "fc_norm."),
    ]
    att = re.compile(r"^videomae\.encoder\.layer\.(\d+)\.attention\.attention\.(\w+)(?:\.(\w+))?$")
    for k, v in sd.items():
        m = att.match(k)
        if m:
            i, name, kind = int(m.group(1)), m.group(2), m.group(3)
            if kind == "weight":  # query / key / value
                qkv.setdefault(i, {})[name] = v
            elif (name, kind) in (("q_bias", None), ("query", "bias")):  # 4.x, 5.x
                out[f"blocks.{i}.attn.q_bias"] = v
            elif (name, kind) in (("v_bias", None), ("value", "bias")):
                out[f"blocks.{i}.attn.v_bias"] = v
            else:
                out[k] = v  # left for the strict check to report
            continue
        for pattern, repl in rules:
            new, n = re.subn(pattern, repl, k)
            if n:
                out[new] = v
                break
        else:
            out[k] = v
    for i, parts in qkv.items():
        if set(parts) != {"query", "key", "value"}:
            raise KeyError(f"layer {i}: attention weights {sorted(parts)}, need query/key/value")
        out[f"blocks.{i}.attn.qkv.weight"] = torch.cat(
            [parts["query"], parts["key"], parts["value"]], dim=0
        )
    return out


def _is_hf(sd: dict[str, torch.Tensor]) -> bool:
    return any(k.startswith("videomae.") for k in sd)


def checkpoint_format(sd: dict[str, torch.Tensor]) -> str | None:
    """Which VideoMAE layout a state dict has (Hugging Face's, in transformers 4.x or 5.x key
    names; an official pre-training or fine-tuned one), or None when it is not a VideoMAE
    ViT's."""
    if _is_hf(sd):
        version = "4.x" if any(k.endswith(".q_bias") for k in sd) else "5.x"
        return f"Hugging Face VideoMAE, transformers {version} keys"
    sd = filter_official(sd)
    if "patch_embed.proj.weight" not in sd or not any(k.startswith("blocks.") for k in sd):
        return None
    if "norm.weight" in sd and "fc_norm.weight" not in sd:
        return "official VideoMAE pre-training"
    return "official VideoMAE fine-tuned"


def checkpoint_filter_fn(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Any VideoMAE layout (:func:`checkpoint_format`) → cvpt's names: :func:`filter_hf` for
    Hugging Face keys, else :func:`filter_official`."""
    return filter_hf(sd) if _is_hf(sd) else filter_official(sd)


def config_from_state_dict(sd: dict[str, torch.Tensor]) -> ViTConfig:
    """Sizes read off the weights of an official checkpoint (after :func:`checkpoint_filter_fn`).
    Heads are not in the weights: :data:`PUBLISHED_HEADS` by width, ``num_heads=0`` (unknown:
    :meth:`VisionTransformer.config_problem` then asks for ``num_heads=``) for any other width.
    ``ValueError`` for an image ViT (a 4-D patch embedding)."""
    try:
        w = sd["patch_embed.proj.weight"]  # [D, C, t, p, p]
    except KeyError:
        raise KeyError("no patch_embed.proj.weight: not a VideoMAE ViT checkpoint") from None
    if w.dim() == 4:
        raise ValueError(f"{IMAGE_MODEL} (patch_embed.proj.weight is {list(w.shape)})")
    if w.dim() != 5:
        raise ValueError(
            f"patch_embed.proj.weight is {list(w.shape)}, not a video ViT's [D, C, t, p, p]"
        )
    d, c, t, p, _ = w.shape
    depth = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("blocks."))
    hidden = sd["blocks.0.mlp.fc1.weight"].shape[0]
    head = sd.get("head.weight")
    return ViTConfig(
        embed_dim=d,
        depth=depth,
        num_heads=PUBLISHED_HEADS.get(d, 0),
        mlp_ratio=hidden / d,
        patch_size=p,
        tubelet_size=t,
        in_chans=c,
        num_classes=0 if head is None else head.shape[0],
        qkv_bias="blocks.0.attn.q_bias" in sd,
    )


def config_from_hf(cfg: dict) -> ViTConfig:
    """A Hugging Face ``config.json`` → ViTConfig, with HF's defaults where a key is absent
    (notably ``layer_norm_eps`` 1e-12, and fc_norm at nn.LayerNorm's 1e-5)."""
    d = cfg.get("hidden_size", 768)
    labels = cfg.get("id2label") or {}
    num_labels = cfg.get("num_labels", len(labels) or 0)
    is_classifier = any("Classification" in a for a in cfg.get("architectures") or [])
    return ViTConfig(
        embed_dim=d,
        depth=cfg.get("num_hidden_layers", 12),
        num_heads=cfg.get("num_attention_heads", 12),
        mlp_ratio=cfg.get("intermediate_size", 3072) / d,
        patch_size=cfg.get("patch_size", 16),
        tubelet_size=cfg.get("tubelet_size", 2),
        in_chans=cfg.get("num_channels", 3),
        num_classes=num_labels if is_classifier else 0,
        qkv_bias=cfg.get("qv_bias", cfg.get("qkv_bias", True)),
        norm_eps=cfg.get("layer_norm_eps", 1e-12),
        fc_norm_eps=1e-5,
        use_mean_pooling=cfg.get("use_mean_pooling", True),
        img_size=cfg.get("image_size", 224),
        num_frames=cfg.get("num_frames", 16),
    )


# ---------------------------------------------------------------- the model


@register_family
class VisionTransformer(VideoBackbone):
    """VideoMAE ViT. ``forward_features`` → tokens ``[B, N, D]``; ``forward_head`` → mean
    pooling, fc_norm and head (logits ``[B, num_classes]``, or pooled features without a head).

    Streams (the backbone contract, :mod:`cvpt.models.backbone`) are ``[B, N, D]`` token
    sequences; every block runs on their concatenation, so all tokens attend to all (Eq. 1)."""

    family = "vit"
    config_class = ViTConfig
    default_variant = "vit_base"
    # VideoMAE fine-tunes on 16 frames and tests 5 clips × 3 crops
    raw_video = RawVideoRecipe("VideoMAE", 16, 15, legacy_ratio="cvpt_forward_over_videomae16")
    autocast_modules = (Attention,)  # its q/v biases are cast at every use
    shape_fields = ("embed_dim", "num_heads", "mlp_ratio", "patch_size", "tubelet_size")
    depth_field = "depth"
    checkpoint_help = (
        "VideoMAE ViT (official .pth with patch_embed.* and blocks.*, a Hugging Face folder or "
        "its pytorch_model.bin with videomae.*)"
    )
    unused_keys = UNUSED_KEYS
    fresh_keys = FRESH_KEYS
    hf_model_types: ClassVar[dict[str, str]] = {"videomae": "VideoMAE"}
    checkpoint_format = staticmethod(checkpoint_format)
    checkpoint_filter_fn = staticmethod(checkpoint_filter_fn)
    config_from_state_dict = staticmethod(config_from_state_dict)
    config_from_hf = staticmethod(config_from_hf)

    @classmethod
    def config_problem(cls, cfg: ViTConfig) -> str:
        if cfg.num_heads:
            return ""
        return (  # a width PUBLISHED_HEADS does not know
            f"a ViT of width {cfg.embed_dim}, which no published VideoMAE size has "
            f"({', '.join(f'{d}: {h} heads' for d, h in PUBLISHED_HEADS.items())}), and its "
            "head count is not in the weights: pass num_heads= (load_backbone(..., "
            "num_heads=N), backbone_options={'num_heads': N})"
        )

    @classmethod
    def unregistered_name(cls, cfg: ViTConfig) -> str:
        return f"vit(d={cfg.embed_dim}, depth={cfg.depth}, heads={cfg.num_heads})"

    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.embed_dim
        self.embed_dim = self.num_features = d
        self.patch_kernel = (cfg.tubelet_size, cfg.patch_size, cfg.patch_size)
        self.patch_embed = PatchEmbed(cfg.in_chans, d, cfg.patch_size, cfg.tubelet_size)
        self.blocks = nn.ModuleList(
            Block(d, cfg.num_heads, cfg.mlp_ratio, cfg.qkv_bias, cfg.norm_eps)
            for _ in range(cfg.depth)
        )
        self.norm = nn.Identity() if cfg.use_mean_pooling else nn.LayerNorm(d, eps=cfg.norm_eps)
        self.fc_norm = nn.LayerNorm(d, eps=cfg.fc_norm_eps) if cfg.use_mean_pooling else None
        self.head = nn.Linear(d, cfg.num_classes) if cfg.num_classes > 0 else nn.Identity()
        self._pos_cache: dict[int, torch.Tensor] = {}
        self.checkpoint_blocks = 0  # the first k blocks recompute their activations
        self.apply(_init_weights)

    def block_dims(self) -> list[int]:
        return [self.embed_dim] * len(self.blocks)

    def token_grid(self, video_shape: tuple[int, ...]) -> tuple[int, int, int]:
        t, p, q = self.patch_kernel
        return video_shape[2] // t, video_shape[3] // p, video_shape[4] // q

    def head_modules(self) -> list[nn.Module]:
        return [self.head] + ([self.fc_norm] if self.fc_norm is not None else [])

    def token_features(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.fc_norm(tokens) if self.fc_norm is not None else tokens

    @property
    def pools(self) -> bool:
        return self.fc_norm is not None

    def check_video(self, x: torch.Tensor, name: str, channels: int | None = None) -> None:
        check_video(x, self.patch_kernel, channels or self.cfg.in_chans, name)

    def pos_embed(self, num_tokens: int, like: torch.Tensor) -> torch.Tensor:
        """The fixed sinusoid table for ``num_tokens`` positions, ``[1, N, D]`` like ``like``."""
        if num_tokens not in self._pos_cache:
            self._pos_cache[num_tokens] = sinusoid_table(num_tokens, self.embed_dim)
        return self._pos_cache[num_tokens].to(device=like.device, dtype=like.dtype)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Patch-embed ``[B, 3, T, H, W]`` and add positions: ``[B, N, D]``."""
        self.check_video(x, "x")
        tokens = self.patch_embed(x)
        return tokens + self.pos_embed(tokens.shape[1], tokens)

    def embed_prompt(self, tokens: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """Prompt tokens ``[B, N, D]`` on the I-frame grid: the same positions added."""
        return tokens + self.pos_embed(tokens.shape[1], tokens)

    def forward_streams(
        self, streams: list[torch.Tensor], hook: Hook | None = None
    ) -> list[torch.Tensor]:
        """Every block on the concatenation of the streams (any lengths), split back after it."""
        for i, blk in enumerate(self.blocks):
            if hook is not None:
                streams = hook(i, streams)
            sizes = [s.shape[1] for s in streams]
            x = streams[0] if len(streams) == 1 else torch.cat(streams, dim=1)
            x = run_block(blk, x, i < self.checkpoint_blocks)
            streams = list(x.split(sizes, dim=1))
        return streams

    def forward_tokens(self, streams: list[torch.Tensor]) -> torch.Tensor:
        x = streams[0] if len(streams) == 1 else torch.cat(streams, dim=1)
        return self.norm(x)

    def forward_head(self, tokens: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.fc_norm(tokens.mean(1)) if self.fc_norm is not None else tokens[:, 0]
        return x if pre_logits else self.head(x)

    def reset_classifier(self, num_classes: int) -> None:
        """A new, freshly initialised head (``num_classes=0``: none)."""
        self.cfg.num_classes = num_classes
        self.head = nn.Linear(self.embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        self.head.apply(_init_weights)


def _init_weights(m: nn.Module) -> None:
    """VideoMAE's: truncated normal (std .02) for Linear weights, zero biases, unit LayerNorms."""
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
    elif isinstance(m, nn.Conv3d):  # PyTorch's default, as VideoMAE leaves it
        nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5))


# ---------------------------------------------------------------- registered variants


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
