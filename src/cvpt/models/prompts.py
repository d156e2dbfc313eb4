"""The tunable pieces: conditional-prompt embeddings, SCCP blocks (CVPT), adapters, deep prompts.

Shapes: tokens are ``[B, N, D]``; N = (T_I/2)·(H/16)·(W/16) = 392 for 4 I-frames at 224².
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class PromptEmbed(nn.Module):
    """Emb_MV / Emb_R: ``[B, C, 12, H, W]`` → ``[B, N, D]`` with a Conv3d of kernel = stride =
    ``(frames_per_token, p, p)``: 12 P-frames → 2 temporal slots, each aligned with one I-frame
    tubelet (2 GOPs), so the prompts share the I-frame tokens' grid and positions.

    ``rank`` (optional) factorises it: Conv3d to ``rank`` channels, then Linear ``rank → D``.
    """

    def __init__(self, in_chans: int, dim: int, patch: int, frames_per_token: int, rank=None):
        super().__init__()
        kernel = (frames_per_token, patch, patch)
        self.rank = rank
        if rank:
            self.proj = nn.Conv3d(in_chans, rank, kernel_size=kernel, stride=kernel)
            self.up = nn.Linear(rank, dim)
        else:
            self.proj = nn.Conv3d(in_chans, dim, kernel_size=kernel, stride=kernel)
            self.up = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x).flatten(2).transpose(1, 2)
        return self.up(x) if self.up is not None else x


SCCP_UPDATES = ("replace", "add")  # what an SCCP block does to the MV and residual streams


class SCCP(nn.Module):
    """Selective Cross-modal Complementary Prompter (paper Eq. 3–7; docs/design.md, *Model*).

    ``ê = g1(E), m = g2(P_MV), r = g3(P_R)`` (Linear D → d'), ``A = softmax(ω·r)`` over the N
    tokens for every channel, ``m = A ⊙ m`` (residual-guided selection of MV cues), ``ê = ê + m``;
    the block input is ``[g5(m), g6(r), E + g4(ê)]``.

    ``update`` says what the block does to the MV and residual streams: ``"replace"`` (the
    literal reading of Eq. 7) passes on ``[g5(m), g6(r), …]``, which squeezes the streams
    through d′ channels (and, with attention, scales MV cues by A ≈ 1/N) at every SCCP layer;
    ``"add"`` keeps them and adds the block's outputs, ``[P_MV + g5(m), P_R + g6(r), …]``, as E
    is updated. Same weights. Which one the paper's own ablations favour: docs/design.md.

    Ablations: ``attention=False`` replaces the selection by ``m = m + r`` (Fig. 5b, same
    39,192 weights). ``residual_prompt=False`` drops P_R, g3 and g6, selects with
    ``softmax(ω·m)`` on the MV stream itself, and passes the MV tokens on unchanged (no g5):
    g1 + g2 + g4 = 19,216 weights for ViT-B, the paper's Table 4 "19.2K" (with g5 it would be
    26,128, which no table shows).
    """

    def __init__(
        self,
        dim: int,
        hidden: int = 8,
        *,
        attention: bool = True,
        residual_prompt: bool = True,
        update: str = "replace",
    ):
        super().__init__()
        if update not in SCCP_UPDATES:
            raise ValueError(f"update must be one of {SCCP_UPDATES}, got {update!r}")
        self.attention, self.residual_prompt, self.update = attention, residual_prompt, update
        self.g1, self.g2 = nn.Linear(dim, hidden), nn.Linear(dim, hidden)
        self.g4 = nn.Linear(hidden, dim)
        if residual_prompt:
            self.g3 = nn.Linear(dim, hidden)
            self.g5, self.g6 = nn.Linear(hidden, dim), nn.Linear(hidden, dim)
        self.omega = nn.Parameter(torch.tensor(10.0)) if attention else None  # ViPT's init
        self.keep_attention = False  # set True to keep the last A for visualisation
        self.last_attention: torch.Tensor | None = None
        for m in self.modules():  # ViPT initialises its 1×1 convs with Xavier
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, e, p_mv, p_r):
        """``e, p_mv, p_r``: ``[B, N, D]`` (or ``[B, T, H, W, D]``: every dim between the first
        and the last is a token axis; ``p_r`` None without residual prompts) → the three (or two)
        token streams of the next block's input."""
        e_hat, m = self.g1(e), self.g2(p_mv)
        r = self.g3(p_r) if self.residual_prompt else None
        if self.attention:
            gate = r if self.residual_prompt else m
            # over a stream's tokens, per channel (Swin streams [B, T, H, W, d'] flattened)
            a = torch.softmax(self.omega * gate.flatten(1, -2), dim=1).view_as(gate)
            if self.keep_attention:
                self.last_attention = a.detach()
            m = a * m
        elif self.residual_prompt:
            m = m + r
        e_out = e + self.g4(e_hat + m)
        if not self.residual_prompt:
            return p_mv, None, e_out
        if self.update == "add":  # keep the streams, add the block's output (like E's update)
            return p_mv + self.g5(m), p_r + self.g6(r), e_out
        return self.g5(m), self.g6(r), e_out


class Adapter(nn.Module):
    """AdaptFormer's AdaptMLP: Linear D→k, ReLU, Linear k→D (zero-initialised, so the frozen
    model is unchanged at the start), times ``scale``; parallel to each block's MLP."""

    def __init__(self, dim: int, bottleneck: int = 64, scale: float = 0.1):
        super().__init__()
        self.down = nn.Linear(dim, bottleneck)
        self.up = nn.Linear(bottleneck, dim)
        self.scale = scale
        nn.init.kaiming_uniform_(self.down.weight, a=math.sqrt(5))
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(F.relu(self.down(x))) * self.scale


class DeepPrompts(nn.Module):
    """VPT-deep: ``n`` learnable tokens per layer, prepended before each block and dropped after
    it; uniform init ``±sqrt(6 / (fan_in + D))`` with the patch embedding's fan-in (VPT)."""

    def __init__(self, depth: int, n: int, dim: int, fan_in: int):
        super().__init__()
        val = math.sqrt(6.0 / (fan_in + dim))
        self.tokens = nn.Parameter(torch.empty(depth, n, dim).uniform_(-val, val))

    def __len__(self) -> int:
        return self.tokens.shape[1]
