"""``cvpt show``: one compressed clip as a picture."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cvpt.codec.reader import CompressedClip
from cvpt.io import atomic_output
from cvpt.viz.flow import colour_wheel, flow_to_rgb, residual_magnitude


def plot_clip(clip: CompressedClip, out: str | Path, *, dpi: int = 110) -> Path:
    """Save a grid with one row per GOP: the I-frame, then each sampled P-frame's motion field
    (colour = direction, brightness = magnitude, one scale for the whole clip) and residual
    magnitude (one scale for the whole clip). Written atomically; returns ``out``."""
    from cvpt.training.plots import _plt

    plt = _plt()
    t_i, p = clip.positions.shape
    mags = np.hypot(clip.mvs[..., 0], clip.mvs[..., 1])
    mv_max = max(float(np.percentile(mags, 99.5)), 0.5)
    res = residual_magnitude(clip.residuals)
    res_max = max(float(np.percentile(res, 99.5)), 1.0)
    h, w = clip.iframes.shape[1:3]
    cols = 1 + 2 * p
    fig, axes = plt.subplots(
        t_i,
        cols,
        figsize=(cols * 2.0 * w / max(h, w) + 0.6, t_i * 2.0 * h / max(h, w) + 0.9),
        squeeze=False,
    )
    kind = "accumulated" if clip.accumulated else "per-frame"
    fig.suptitle(
        f"{Path(clip.path).name}: {kind} MVs (max {mv_max:.1f} px) and |residual| "
        f"(max {res_max:.0f}/255)",
        fontsize=9,
    )
    for r in range(t_i):
        g = int(clip.gop_indices[r])
        axes[r, 0].imshow(clip.iframes[r])
        axes[r, 0].set_title(f"I  GOP {g} (frame {g * clip.gop_size})", fontsize=7)
        for k in range(p):
            j = r * p + k
            pos = int(clip.positions[r, k])
            axes[r, 1 + k].imshow(flow_to_rgb(clip.mvs[j], mv_max))
            axes[r, 1 + k].set_title(f"MV  P{pos}", fontsize=7)
            im = axes[r, 1 + p + k].imshow(res[j], cmap="magma", vmin=0, vmax=res_max)
            axes[r, 1 + p + k].set_title(f"residual  P{pos}", fontsize=7)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    wheel_ax = fig.add_axes((0.005, 0.005, 0.06, 0.06 * w / h))
    wheel_ax.imshow(colour_wheel())
    wheel_ax.axis("off")
    fig.colorbar(im, ax=axes[:, 1 + p :].ravel().tolist(), shrink=0.6, label="|residual|")
    out = Path(out)
    with atomic_output(out) as tmp:
        fig.savefig(tmp, dpi=dpi, format=out.suffix.lstrip(".") or "png")
    plt.close(fig)
    return out
