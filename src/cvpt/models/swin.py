"""Video Swin Transformer (Liu et al., CVPR 2022), numerically as the official
SwinTransformer/Video-Swin-Transformer code, mmaction2 and torchvision's ``swin3d_*``.

Patch embedding: Conv3d (2,4,4) (the input zero-padded at the end of each axis to a multiple),
then LayerNorm. Four stages of pre-norm blocks with (shifted) 3D window attention: windows of
(8,7,7) tokens, every other block shifted by half a window (a cyclic roll, with −100 between
tokens from different regions), a learnable relative position bias per block; MLP C→4C→C with
exact GELU; LayerNorm eps 1e-5. Between stages, spatial-only patch merging (2×2 neighbours →
LayerNorm(4C) → Linear 4C→2C without bias). Final LayerNorm, mean over tokens, head.
Layout inside: ``[B, T, H, W, C]``; input ``[B, 3, T, H, W]``.

Two behaviours of all three reference implementations are reproduced on purpose (docs/models.md):
- an axis whose feature size is ≤ the window is *clamped*: the window shrinks to the feature size
  and that axis is not shifted;
- a clamped window takes the top-left ``N×N`` block of the full window's relative position index,
  which is the right bias only when time is the clamped axis (at 224² and 4–32 frames it always
  is; at 64² or 112² the last stages get other offsets' biases). Matching the checkpoints'
  behaviour beats "fixing" it.

Streams (the backbone contract, :mod:`cvpt.models.backbone`) are ``[B, T, H, W, C]`` maps on the
same grid. ``joint`` attention partitions every stream with the same (shifted) windows and lets
a window's tokens of all streams attend to each other: the single-stream relative bias and shift
mask are tiled over the streams, so a token of one stream sits "at the same place" as the
co-located tokens of the others (CVPT's Eq. 1 in windows; docs/design.md). ``joint=False``
runs each stream on its own. MLPs, norms and patch merging act on each stream with the same
frozen weights.
"""

from __future__ import annotations

import functools
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

Size3 = tuple[int, int, int]


@dataclass
class SwinConfig:
    """Video Swin hyper-parameters; the defaults are Swin-B for Kinetics-400 (window 8×7×7)."""

    family: ClassVar[str] = "swin"

    embed_dim: int = 128  # stage-1 token width C (stage s: C·2^s)
    depths: tuple[int, ...] = (2, 2, 18, 2)  # blocks per stage
    num_heads: tuple[int, ...] = (4, 8, 16, 32)  # attention heads per stage
    patch_size: tuple[int, int, int] = (2, 4, 4)  # (frames, pixels, pixels) per input token
    window_size: tuple[int, int, int] = (8, 7, 7)  # attention window in tokens; SSv2: (16, 7, 7)
    mlp_ratio: float = 4.0  # MLP hidden width / C
    in_chans: int = 3  # input channels (RGB)
    num_classes: int = 0  # 0: no head (forward_head returns pooled features)
    qkv_bias: bool = True  # biases on q, k and v
    patch_norm: bool = True  # LayerNorm right after the patch Conv3d
    norm_eps: float = 1e-5  # LayerNorm eps everywhere
    # torchvision's builders and mmaction2 1.x: 0.1; the official K400 Swin-B configs trained
    # with 0.2 (IN-22K init) or 0.3 (IN-1K init)
    drop_path_rate: float = 0.1  # stochastic depth, rising linearly over the blocks from 0
    img_size: int = 224  # nominal: used for reports; any size works (the input is padded)
    num_frames: int = 32  # nominal, idem (K400 models: 32 frames, stride 2)

    def __post_init__(self):
        self.normalise()

    def normalise(self) -> None:
        """Tuples where lists came in (YAML, JSON); checks that the stage lists agree."""
        for k in ("depths", "num_heads", "patch_size", "window_size"):
            setattr(self, k, tuple(int(v) for v in getattr(self, k)))
        if len(self.depths) != len(self.num_heads):
            raise ValueError(
                f"depths {self.depths} and num_heads {self.num_heads} must have one entry per stage"
            )
        if len(self.patch_size) != 3 or len(self.window_size) != 3:
            raise ValueError("patch_size and window_size are (t, h, w) triples")
        for s, heads in enumerate(self.num_heads):
            if (self.embed_dim * 2**s) % heads:
                width = self.embed_dim * 2**s
                raise ValueError(f"stage {s + 1}: width {width} is not divisible by {heads} heads")

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        return (
            f"Video Swin C={self.embed_dim} depths={list(self.depths)} "
            f"heads={list(self.num_heads)} window={list(self.window_size)} "
            f"classes={self.num_classes}"
        )


# ---------------------------------------------------------------- window helpers


def window_and_shift(size: Size3, window: Size3, shift: Size3) -> tuple[Size3, Size3]:
    """Clamp: on an axis whose feature size is ≤ the window, the window becomes the feature size
    and there is no shift (all three reference implementations; note the ≤)."""
    w = tuple(s if s <= win else win for s, win in zip(size, window, strict=True))
    sh = tuple(0 if s <= win else h for s, win, h in zip(size, window, shift, strict=True))
    return w, sh


def relative_position_index(window: Size3) -> torch.Tensor:
    """``[N, N]`` (N = Wd·Wh·Ww, tokens in d-major order): for tokens i, j, the per-axis offset
    i − j shifted to ≥ 0 and flattened with radices (2Wh−1)(2Ww−1), (2Ww−1), 1."""
    grid = torch.stack(torch.meshgrid(*(torch.arange(w) for w in window), indexing="ij"))
    flat = grid.flatten(1)  # [3, N]
    rel = (flat[:, :, None] - flat[:, None, :]).permute(1, 2, 0)  # [N, N, 3]
    rel = rel + torch.tensor([w - 1 for w in window])
    radix = torch.tensor([(2 * window[1] - 1) * (2 * window[2] - 1), 2 * window[2] - 1, 1])
    return (rel * radix).sum(-1)


def shift_mask(padded: Size3, window: Size3, shift: Size3, like: torch.Tensor) -> torch.Tensor:
    """``[nW, N, N]``: 0 between tokens of a shifted window that came from the same region of
    the unshifted map, −100 otherwise (the reference value, not −inf). Regions: each axis cut at
    −window and −shift."""
    labels = like.new_zeros(padded)
    count = 0
    cuts = [((0, -w), (-w, -s), (-s, None)) for w, s in zip(window, shift, strict=True)]
    for d in cuts[0]:
        for h in cuts[1]:
            for w in cuts[2]:
                labels[d[0] : d[1], h[0] : h[1], w[0] : w[1]] = count
                count += 1
    labels = to_windows(labels[None, ..., None], window)[..., 0]  # [nW, N]
    diff = labels[:, None, :] - labels[:, :, None]
    return diff.masked_fill(diff != 0, -100.0).masked_fill(diff == 0, 0.0)


def to_windows(x: torch.Tensor, window: Size3) -> torch.Tensor:
    """``[B, T, H, W, C]`` (each a multiple of the window) → ``[B·nW, N, C]``, windows in
    (t, h, w)-major order, tokens in d-major order inside."""
    b, t, h, w, c = x.shape
    wd, wh, ww = window
    x = x.view(b, t // wd, wd, h // wh, wh, w // ww, ww, c)
    return x.permute(0, 1, 3, 5, 2, 4, 6, 7).reshape(-1, wd * wh * ww, c)


def from_windows(x: torch.Tensor, window: Size3, size: Size3) -> torch.Tensor:
    """The inverse of :func:`to_windows`: ``[B·nW, N, C]`` → ``[B, T, H, W, C]``."""
    t, h, w = size
    wd, wh, ww = window
    c = x.shape[-1]
    x = x.view(-1, t // wd, h // wh, w // ww, wd, wh, ww, c)
    return x.permute(0, 1, 4, 2, 5, 3, 6, 7).reshape(-1, t, h, w, c)


# ---------------------------------------------------------------- modules


class PatchEmbed3d(nn.Module):
    """``[B, C, T, H, W]`` → ``[B, T/t, H/p, W/p, D]``; the input is zero-padded at the end of
    each axis to a multiple of the patch first."""

    def __init__(self, in_chans: int, dim: int, patch: Size3, norm: bool, eps: float):
        super().__init__()
        self.patch = patch
        self.proj = nn.Conv3d(in_chans, dim, kernel_size=patch, stride=patch)
        self.norm = nn.LayerNorm(dim, eps=eps) if norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = [(-s) % p for s, p in zip(x.shape[2:], self.patch, strict=True)]
        if any(pad):
            x = F.pad(x, (0, pad[2], 0, pad[1], 0, pad[0]))
        return self.norm(self.proj(x).permute(0, 2, 3, 4, 1))


class WindowAttention3d(nn.Module):
    """(Shifted) window multi-head self-attention with a learnable relative position bias,
    on one or several streams (see the module doc)."""

    def __init__(self, dim: int, num_heads: int, window: Size3, shift: Size3, qkv_bias: bool):
        super().__init__()
        self.num_heads, self.window, self.shift = num_heads, window, shift
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        size = math.prod(2 * w - 1 for w in window)
        self.relative_position_bias_table = nn.Parameter(torch.zeros(size, num_heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        # persistent: the reference checkpoints hold it
        self.register_buffer("relative_position_index", relative_position_index(window))

    def position_bias(self, window: Size3) -> torch.Tensor:
        """``[heads, N, N]`` for a (possibly clamped) window: the top-left N×N block of the
        full window's index, as the references do (module doc)."""
        n = math.prod(window)
        index = self.relative_position_index[:n, :n].reshape(-1)
        return self.relative_position_bias_table[index].view(n, n, -1).permute(2, 0, 1)

    def forward(self, xs: list[torch.Tensor], joint: bool = True) -> list[torch.Tensor]:
        """``xs``: streams ``[B, T, H, W, C]`` of one shape (already normalised) → the
        attention outputs, same shapes."""
        t, h, w, c = xs[0].shape[1:]
        size = (t, h, w)
        window, shift = window_and_shift(size, self.window, self.shift)
        pad = [(-s) % win for s, win in zip(size, window, strict=True)]
        padded = tuple(s + p for s, p in zip(size, pad, strict=True))
        shifted = any(shift)

        def partition(x: torch.Tensor) -> torch.Tensor:
            if any(pad):
                x = F.pad(x, (0, 0, 0, pad[2], 0, pad[1], 0, pad[0]))
            if shifted:
                x = torch.roll(x, shifts=tuple(-s for s in shift), dims=(1, 2, 3))
            return to_windows(x, window)

        n, s = math.prod(window), len(xs)
        n_windows = math.prod(p // win for p, win in zip(padded, window, strict=True))
        bias = self.position_bias(window)  # [heads, N, N]
        mask = shift_mask(padded, window, shift, xs[0]) if shifted else None  # [nW, N, N]
        if joint and s > 1:  # a window's tokens of every stream, side by side
            x = torch.cat([partition(x) for x in xs], dim=1)  # [B·nW, S·N, C]
            bias = bias.repeat(1, s, s)
            mask = mask.repeat(1, s, s) if mask is not None else None
        else:  # each stream on its own: streams stacked on the batch axis
            x = torch.cat([partition(x) for x in xs], dim=0)  # [S·B·nW, N, C]
        length, heads, hd = x.shape[1], self.num_heads, c // self.num_heads
        qkv = self.qkv(x).reshape(-1, n_windows, length, 3, heads, hd).permute(3, 0, 1, 4, 2, 5)
        # 4-D inputs and a mask that broadcasts over the batch, which the fused kernels take
        if mask is None:  # one bias for every window: windows on the batch axis
            q, k, v = qkv.reshape(3, -1, heads, length, hd).unbind(0)
            attn_mask = bias[None]
        else:  # a mask per window: windows × heads on the head axis
            q, k, v = qkv.reshape(3, -1, n_windows * heads, length, hd).unbind(0)
            attn_mask = (bias + mask[:, None]).reshape(1, n_windows * heads, length, length)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask.to(q.dtype))
        y = y.reshape(-1, n_windows, heads, length, hd).permute(0, 1, 3, 2, 4)
        y = self.proj(y.reshape(-1, length, c))

        parts = y.split(n, dim=1) if joint and s > 1 else y.chunk(s, dim=0)
        out = []
        for part in parts:
            x = from_windows(part, window, padded)
            if shifted:
                x = torch.roll(x, shifts=shift, dims=(1, 2, 3))
            out.append(x[:, :t, :h, :w].contiguous() if any(pad) else x)
        return out


def drop_path(xs: list[torch.Tensor], p: float, training: bool) -> list[torch.Tensor]:
    """Stochastic depth: per sample, zero the branch with probability ``p`` (else scale by
    1/(1−p)); one draw per sample, shared by all its streams."""
    if p == 0.0 or not training:
        return xs
    keep = xs[0].new_empty((xs[0].shape[0],) + (1,) * (xs[0].ndim - 1)).bernoulli_(1 - p)
    keep = keep / (1 - p)
    return [x * keep for x in xs]


class SwinBlock(nn.Module):
    """Pre-norm block on a list of streams: ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))``.
    ``adapter`` (None by default) runs in parallel with the MLP on the post-attention state, as
    in the ViT (AdaptFormer)."""

    def __init__(self, dim, num_heads, window, shift, mlp_ratio, qkv_bias, eps, drop_path_rate):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = WindowAttention3d(dim, num_heads, window, shift, qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path_rate = drop_path_rate
        self.adapter: nn.Module | None = None

    def forward(self, xs: list[torch.Tensor], joint: bool = True) -> list[torch.Tensor]:
        p, training = self.drop_path_rate, self.training
        attn = drop_path(self.attn([self.norm1(x) for x in xs], joint), p, training)
        xs = [x + a for x, a in zip(xs, attn, strict=True)]
        mlp = drop_path([self.mlp(self.norm2(x)) for x in xs], p, training)
        out = [x + m for x, m in zip(xs, mlp, strict=True)]
        if self.adapter is not None:
            out = [o + self.adapter(x) for o, x in zip(out, xs, strict=True)]
        return out


class PatchMerging(nn.Module):
    """Spatial 2× downsampling: H, W padded to even, the 2×2 neighbours (even, even),
    (odd, even), (even, odd), (odd, odd) concatenated → LayerNorm(4C) → Linear 4C→2C, no bias."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim, eps=eps)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-3:-1]
        if h % 2 or w % 2:
            x = F.pad(x, (0, 0, 0, w % 2, 0, h % 2))
        x = torch.cat(
            [
                x[..., 0::2, 0::2, :],
                x[..., 1::2, 0::2, :],
                x[..., 0::2, 1::2, :],
                x[..., 1::2, 1::2, :],
            ],
            dim=-1,
        )
        return self.reduction(self.norm(x))


class SwinStage(nn.Module):
    def __init__(self, cfg: SwinConfig, stage: int, rates: list[float]):
        super().__init__()
        dim = cfg.embed_dim * 2**stage
        shift = tuple(w // 2 for w in cfg.window_size)
        self.blocks = nn.ModuleList(
            SwinBlock(
                dim,
                cfg.num_heads[stage],
                cfg.window_size,
                (0, 0, 0) if j % 2 == 0 else shift,
                cfg.mlp_ratio,
                cfg.qkv_bias,
                cfg.norm_eps,
                rate,
            )
            for j, rate in enumerate(rates)
        )
        last = stage == len(cfg.depths) - 1
        self.downsample = None if last else PatchMerging(dim, cfg.norm_eps)


# ---------------------------------------------------------------- checkpoints


# Unexpected keys that carry nothing the backbone uses, and missing keys made fresh by design.
UNUSED_KEYS = [
    (re.compile(r"^data_preprocessor\."), "mmaction2 input normalisation (cvpt's data does it)"),
]
FRESH_KEYS = [(re.compile(r"^head\.(weight|bias)$"), "new classifier head")]


def checkpoint_format(sd: dict[str, torch.Tensor]) -> str | None:
    """Which Video Swin layout a state dict has, or None when it is not one."""
    if any(k.startswith("backbone.layers.") for k in sd):
        if "backbone.norm3.weight" in sd:
            return "mmaction2 1.x Video Swin"
        return "official Video Swin / mmaction2 0.x"
    if any(re.match(r"^features\.\d+\.\d+\.attn\.qkv\.weight$", k) for k in sd):
        return "torchvision swin3d"
    if any(re.match(r"^layers\.\d+\.blocks\.\d+\.attn\.qkv\.weight$", k) for k in sd):
        return "Video Swin (cvpt / official names without prefix)"
    return None


def checkpoint_filter_fn(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Any Video Swin layout (:func:`checkpoint_format`) → cvpt's names, which are the official
    ones without ``backbone.``: ``cls_head.fc_cls`` → ``head``, mmaction2 1.x ``norm3`` →
    ``norm``; torchvision ``features.{2i}.{j}`` → ``layers.{i}.blocks.{j}``,
    ``features.{2i+1}`` → ``layers.{i}.downsample``, ``mlp.0/3`` → ``mlp.fc1/fc2``. Keys no rule
    knows are passed on for the strict check to report."""
    out = {}
    for k, v in sd.items():
        k = k.removeprefix("module.").removeprefix("backbone.")
        k = re.sub(r"^cls_head\.fc_cls\.", "head.", k)
        k = re.sub(r"^norm3\.", "norm.", k)
        m = re.match(r"^features\.(\d+)\.(.*)$", k)
        if m:
            index, rest = int(m.group(1)), m.group(2)
            if index % 2 == 0:
                k = re.sub(r"^(\d+)\.", rf"layers.{index // 2}.blocks.\1.", rest)
                k = re.sub(r"\.mlp\.0\.", ".mlp.fc1.", k)
                k = re.sub(r"\.mlp\.3\.", ".mlp.fc2.", k)
            else:
                k = f"layers.{index // 2}.downsample.{rest}"
        out[k] = v
    return out


def config_from_state_dict(sd: dict[str, torch.Tensor]) -> SwinConfig:
    """Sizes read off the weights (after :func:`checkpoint_filter_fn`): width and patch from the
    patch Conv3d, depths from the block keys, heads from the bias tables, the window from the
    index buffer and table sizes (square spatial windows), MLP ratio from fc1."""
    w = sd["patch_embed.proj.weight"]  # [C, in, t, h, w]
    if w.ndim != 5:
        raise ValueError(
            f"patch_embed.proj.weight is {list(w.shape)}, a 2D (image) Swin: cvpt reads video "
            "checkpoints and does not inflate image ones"
        )
    dim, in_chans = w.shape[:2]
    blocks: dict[int, int] = {}
    for k in sd:
        m = re.match(r"^layers\.(\d+)\.blocks\.(\d+)\.", k)
        if m:
            s, j = int(m.group(1)), int(m.group(2))
            blocks[s] = max(blocks.get(s, 0), j + 1)
    depths = tuple(blocks[s] for s in range(len(blocks)))
    table = "layers.{}.blocks.0.attn.relative_position_bias_table"
    heads = tuple(sd[table.format(s)].shape[1] for s in range(len(depths)))
    head = sd.get("head.weight")
    return SwinConfig(
        embed_dim=dim,
        depths=depths,
        num_heads=heads,
        patch_size=tuple(w.shape[2:]),
        window_size=_window_from(sd),
        mlp_ratio=sd["layers.0.blocks.0.mlp.fc1.weight"].shape[0] / dim,
        in_chans=in_chans,
        num_classes=0 if head is None else head.shape[0],
        qkv_bias="layers.0.blocks.0.attn.qkv.bias" in sd,
        patch_norm="patch_embed.norm.weight" in sd,
    )


def _window_from(sd: dict[str, torch.Tensor]) -> Size3:
    size = sd["layers.0.blocks.0.attn.relative_position_bias_table"].shape[0]
    index = sd.get("layers.0.blocks.0.attn.relative_position_index")
    for ww in range(1, 64):
        for wd in range(1, 64):
            volume_ok = index is None or index.shape[0] == wd * ww * ww
            if (2 * wd - 1) * (2 * ww - 1) ** 2 == size and volume_ok:
                return (wd, ww, ww)
    raise ValueError(
        f"no (d, h, h) window fits a relative position bias table of {size} rows: not a "
        "Video Swin checkpoint cvpt can size"
    )


# ---------------------------------------------------------------- the model


@register_family
class SwinTransformer3d(VideoBackbone):
    """Video Swin. ``forward_features`` → tokens ``[B, N, C]`` after the final norm (N over the
    last stage's grid, C = embed_dim·2³); ``forward_head`` → mean over tokens and head."""

    family = "swin"
    config_class = SwinConfig
    default_variant = "swin_base"
    # Video Swin fine-tunes on 32 frames (stride 2), tests 4 clips × 3 crops (Kinetics-400)
    raw_video = RawVideoRecipe("Video Swin", 32, 12)
    supports_separate_stream_attention = True  # windows can be shared or kept per stream
    shape_fields = ("embed_dim", "num_heads", "mlp_ratio", "patch_size", "window_size")
    depth_field = "depths"
    checkpoint_help = (
        "Video Swin (official/mmaction2 .pth with backbone.layers.*, or a torchvision swin3d "
        "state dict with features.*)"
    )
    unused_keys = UNUSED_KEYS
    fresh_keys = FRESH_KEYS
    checkpoint_format = staticmethod(checkpoint_format)
    checkpoint_filter_fn = staticmethod(checkpoint_filter_fn)
    config_from_state_dict = staticmethod(config_from_state_dict)

    @classmethod
    def unregistered_name(cls, cfg: SwinConfig) -> str:
        return (
            f"swin(C={cfg.embed_dim}, depths={list(cfg.depths)}, heads={list(cfg.num_heads)}, "
            f"window={list(cfg.window_size)})"
        )

    def __init__(self, cfg: SwinConfig):
        super().__init__()
        cfg.normalise()
        self.cfg = cfg
        self.embed_dim = cfg.embed_dim
        self.num_features = cfg.embed_dim * 2 ** (len(cfg.depths) - 1)
        self.patch_kernel = cfg.patch_size
        self.patch_embed = PatchEmbed3d(
            cfg.in_chans, cfg.embed_dim, cfg.patch_size, cfg.patch_norm, cfg.norm_eps
        )
        total = sum(cfg.depths)
        rates = [cfg.drop_path_rate * i / max(total - 1, 1) for i in range(total)]
        starts = [sum(cfg.depths[:s]) for s in range(len(cfg.depths))]
        self.layers = nn.ModuleList(
            SwinStage(cfg, s, rates[start : start + d])
            for s, (start, d) in enumerate(zip(starts, cfg.depths, strict=True))
        )
        self.norm = nn.LayerNorm(self.num_features, eps=cfg.norm_eps)
        d, k = self.num_features, cfg.num_classes
        self.head = nn.Linear(d, k) if k > 0 else nn.Identity()
        self.checkpoint_blocks = 0
        self.apply(_init_weights)

    @property
    def blocks(self) -> list[SwinBlock]:
        return [blk for stage in self.layers for blk in stage.blocks]

    def block_dims(self) -> list[int]:
        return [self.cfg.embed_dim * 2**s for s, d in enumerate(self.cfg.depths) for _ in range(d)]

    def token_grid(self, video_shape: tuple[int, ...]) -> tuple[int, int, int]:
        t, h, w = (-(-s // p) for s, p in zip(video_shape[2:], self.patch_kernel, strict=True))
        for _ in self.cfg.depths[1:]:  # each patch merging pads to even, then halves H and W
            h, w = -(-h // 2), -(-w // 2)
        return t, h, w

    def head_modules(self) -> list[nn.Module]:
        return [self.head]

    def check_video(self, x: torch.Tensor, name: str, channels: int | None = None) -> None:
        check_video(x, (1, 1, 1), channels or self.cfg.in_chans, name)  # any size: padded

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, 3, T, H, W]`` → ``[B, T', H', W', C]`` (patch embedding and its norm)."""
        self.check_video(x, "x")
        return self.patch_embed(x)

    def embed_prompt(self, tokens: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """Prompt tokens ``[B, N, C]`` (t-major, then h, w) onto ``like``'s grid. No positions
        to add: Swin's are relative, inside attention."""
        return tokens.reshape(like.shape)

    def forward_streams(
        self, streams: list[torch.Tensor], hook: Hook | None = None, joint: bool = True
    ) -> list[torch.Tensor]:
        """Every block on the streams (``joint``: sharing windows, else each on its own), every
        patch merging on each stream."""
        i = 0
        for stage in self.layers:
            for blk in stage.blocks:
                if hook is not None:
                    streams = hook(i, streams)
                fn = functools.partial(blk, joint=joint)
                streams = run_block(fn, streams, i < self.checkpoint_blocks)
                i += 1
            if stage.downsample is not None:
                streams = [stage.downsample(x) for x in streams]
        return streams

    def forward_tokens(self, streams: list[torch.Tensor]) -> torch.Tensor:
        """Final norm, every stream's tokens flattened: ``[B, S·N, C]``, stream order kept."""
        return torch.cat([self.norm(x).flatten(1, 3) for x in streams], dim=1)

    def forward_head(self, tokens: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = tokens.mean(1)
        return x if pre_logits else self.head(x)

    def reset_classifier(self, num_classes: int) -> None:
        """A new, freshly initialised head (``num_classes=0``: none)."""
        self.cfg.num_classes = num_classes
        d = self.num_features
        self.head = nn.Linear(d, num_classes) if num_classes > 0 else nn.Identity()
        self.head.apply(_init_weights)


def _init_weights(m: nn.Module) -> None:
    """torchvision's: truncated normal (std .02) for every Linear weight, zero biases; LayerNorm
    and Conv3d keep PyTorch's defaults; the bias tables are drawn where they are made."""
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


# ---------------------------------------------------------------- registered variants


@register_backbone
def swin_tiny() -> SwinConfig:
    return SwinConfig(embed_dim=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24))


@register_backbone
def swin_small() -> SwinConfig:
    return SwinConfig(embed_dim=96, depths=(2, 2, 18, 2), num_heads=(3, 6, 12, 24))


@register_backbone
def swin_base() -> SwinConfig:
    return SwinConfig(embed_dim=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32))
