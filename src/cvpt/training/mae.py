"""VideoMAE-style masked pre-training of a backbone (``cvpt pretrain --masked``).

Tube masking (one random set of spatial patches, hidden in every tubelet; ratio 0.9 as
VideoMAE), the encoder sees only the visible tokens, a light decoder (its own blocks on all
positions, mask tokens where tokens were hidden) regresses the pixels of the hidden tubelets,
normalised per patch; the loss is the MSE on hidden tubelets only. Nothing here is kept but the
encoder: the backbone ``cvpt pretrain`` saves.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cvpt.models.vit import Block, VisionTransformer, _init_weights, sinusoid_table


class MaskedAutoencoder(nn.Module):
    """``loss = model(clips [B, 3, T, H, W])`` for the encoder ``backbone``."""

    def __init__(
        self,
        backbone: VisionTransformer,
        *,
        decoder_dim: int = 96,
        decoder_depth: int = 2,
        decoder_heads: int = 3,
        mask_ratio: float = 0.9,
    ):
        super().__init__()  # fmt: skip
        cfg = backbone.cfg
        self.backbone, self.mask_ratio = backbone, mask_ratio
        self.encoder_norm = nn.LayerNorm(cfg.embed_dim, eps=cfg.norm_eps)
        self.to_decoder = nn.Linear(cfg.embed_dim, decoder_dim, bias=False)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        self.decoder = nn.ModuleList(
            Block(decoder_dim, decoder_heads, 4.0, True, cfg.norm_eps) for _ in range(decoder_depth)
        )
        self.decoder_norm = nn.LayerNorm(decoder_dim, eps=cfg.norm_eps)
        patch = cfg.tubelet_size * cfg.patch_size**2 * cfg.in_chans
        self.to_pixels = nn.Linear(decoder_dim, patch)
        for m in (self.encoder_norm, self.to_decoder, self.decoder, self.decoder_norm,
                  self.to_pixels):  # fmt: skip
            m.apply(_init_weights)
        nn.init.trunc_normal_(self.mask_token, std=0.02)

    def tube_mask(self, b: int, t: int, hw: int, generator=None) -> torch.Tensor:
        """``bool [B, t·hw]``, True = hidden: the same spatial patches in every tubelet."""
        hidden = round(self.mask_ratio * hw)
        order = torch.rand(b, hw, generator=generator).argsort(dim=1)
        spatial = torch.zeros(b, hw, dtype=torch.bool)
        spatial.scatter_(1, order[:, :hidden], True)
        return spatial.repeat(1, t)

    def targets(self, x: torch.Tensor) -> torch.Tensor:
        """Pixels of every tubelet, normalised per patch: ``[B, N, t·p·p·3]``."""
        cfg = self.backbone.cfg
        t, p = cfg.tubelet_size, cfg.patch_size
        b, c, T, H, W = x.shape
        x = x.reshape(b, c, T // t, t, H // p, p, W // p, p)
        x = x.permute(0, 2, 4, 6, 3, 5, 7, 1).reshape(b, (T // t) * (H // p) * (W // p), -1)
        mean, var = x.mean(-1, keepdim=True), x.var(-1, keepdim=True, unbiased=True)
        return (x - mean) / (var.sqrt() + 1e-6)

    def forward(self, x: torch.Tensor, generator=None) -> torch.Tensor:
        cfg = self.backbone.cfg
        b = x.shape[0]
        t = x.shape[2] // cfg.tubelet_size
        hw = (x.shape[3] // cfg.patch_size) * (x.shape[4] // cfg.patch_size)
        mask = self.tube_mask(b, t, hw, generator).to(x.device)
        tokens = self.backbone.embed(x)  # [B, N, D] with positions
        d = tokens.shape[-1]
        visible = tokens[~mask].reshape(b, -1, d)
        for blk in self.backbone.blocks:
            visible = blk(visible)
        y = self.to_decoder(self.encoder_norm(visible))
        full = self.mask_token.expand(b, t * hw, -1).clone()
        full[~mask] = y.reshape(-1, y.shape[-1])
        full = full + sinusoid_table(t * hw, full.shape[-1]).to(full)
        for blk in self.decoder:
            full = blk(full)
        pred = self.to_pixels(self.decoder_norm(full))
        return F.mse_loss(pred[mask], self.targets(x)[mask])
