"""Inside a tuned model: the paper's Fig. 6 (last-layer feature maps over the I-frames) and the
SCCP attention A (which tokens the residual prompts select), for one clip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from cvpt.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from cvpt.io import atomic_output
from cvpt.models.compressed import CompressedVideoModel


@torch.no_grad()
def explain(model: CompressedVideoModel, iframes, mvs, residuals) -> dict:
    """One clip (``[1, C, T, H, W]`` tensors) through ``model``. Returns numpy maps on the
    last layer's token grid (ViT: ``[T/t, H/p, W/p]``; Swin: its last stage's): ``token_norm``
    (L2 norm of the last layer's I-frame tokens, Fig. 6), ``cam`` (the predicted class's head
    weights · each normalised I-frame token: how much each token votes for it), ``attention``
    ({layer: A averaged over its channels}, SCCP layers only, each on its block's grid), and
    ``probs`` ``[K]``."""
    grid = model.backbone.token_grid(tuple(iframes.shape))  # of the last layer's tokens
    sccp = getattr(model, "sccp", ())  # the cvpt method's blocks; other methods have none
    for blk in sccp:
        blk.keep_attention = True
    try:
        tokens = model.forward_features(iframes, mvs, residuals)
        probs = model.forward_head(tokens).softmax(-1)[0]
        attention = {  # ViT: [N] on the grid; Swin: already [T', H', W'] of the block's stage
            i: _on_grid(blk.last_attention[0].mean(-1), grid).cpu().numpy()
            for i, blk in enumerate(sccp)
            if blk.last_attention is not None
        }
    finally:
        for blk in sccp:
            blk.keep_attention, blk.last_attention = False, None
    n = int(np.prod(grid))
    e = tokens[0, -n:]  # the I-frame stream, last in [P_MV, P_R, E_I]
    head = model.backbone.head
    feats = model.backbone.token_features(e)  # normalised as the head's input is
    cls = int(probs.argmax())
    cam = feats @ head.weight[cls] if isinstance(head, torch.nn.Linear) else feats.norm(dim=-1)
    return {
        "token_norm": e.norm(dim=-1).reshape(grid).cpu().numpy(),
        "cam": cam.reshape(grid).cpu().numpy(),
        "attention": attention,
        "probs": probs.cpu().numpy(),
        "predicted": cls,
    }


def _on_grid(a: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
    return a.reshape(grid) if a.ndim == 1 else a


def to_uint8(iframes: torch.Tensor) -> np.ndarray:
    """Normalised I-frames ``[3, T, H, W]`` back to ``uint8 [T, H, W, 3]`` for drawing."""
    x = iframes.permute(1, 2, 3, 0).cpu().numpy() * IMAGENET_STD + IMAGENET_MEAN
    return np.clip(x * 255, 0, 255).astype(np.uint8)


def plot_maps(frames: np.ndarray, maps: dict[str, np.ndarray], out: Path, title: str) -> None:
    """One row per map, one column per I-frame: the frame with the map (token grid, upsampled
    without smoothing so every token stays visible) laid over it. Tubelet ``t`` covers I-frames
    ``t·k … t·k + k − 1``."""
    from cvpt.training.plots import _plt

    plt = _plt()
    t = frames.shape[0]
    fig, axes = plt.subplots(len(maps), t, figsize=(2.2 * t, 2.3 * len(maps) + 0.4), squeeze=False)
    h, w = frames.shape[1:3]
    for r, (name, m) in enumerate(maps.items()):
        k = t // m.shape[0]
        lo, hi = float(m.min()), float(m.max())
        for c in range(t):
            ax = axes[r, c]
            ax.imshow(frames[c])
            ax.imshow(m[c // k], cmap="jet", alpha=0.45, vmin=lo, vmax=hi,
                      extent=(0, w, h, 0), interpolation="nearest")  # fmt: skip
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(name, fontsize=8)
            if r == 0:
                ax.set_title(f"I-frame {c}", fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    with atomic_output(out) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
