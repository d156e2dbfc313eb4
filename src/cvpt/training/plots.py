"""Pictures of a run: learning curves and the confusion matrix.

matplotlib is optional (``pip install 'cvpt[plots]'``): without it a run skips its PNGs (said
once in the log), and commands whose output *is* a picture stop with a one-line error.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from cvpt.errors import require
from cvpt.io import atomic_output

log = logging.getLogger("cvpt.plots")
_said = False


def _plt():
    """``matplotlib.pyplot`` on the Agg backend, or :class:`cvpt.errors.MissingDependencyError`."""
    matplotlib = require("matplotlib", extra="plots", feature="drawing PNGs")
    matplotlib.use("Agg")
    return require("matplotlib.pyplot", extra="plots", feature="drawing PNGs")


def plots_available() -> bool:
    """Whether matplotlib is installed; the first ``False`` is logged once."""
    global _said
    try:
        ok = _plt() is not None
    except ImportError:
        ok = False
    if not ok and not _said:
        log.warning("matplotlib is not installed: run pictures skipped (pip install 'cvpt[plots]')")
        _said = True
    return ok


def plot_curves(rows: list[dict], out: Path) -> Path | None:
    """Train loss and lr per step; eval top-1 per epoch. ``None`` (nothing written) without
    matplotlib."""
    if not plots_available():
        return None
    plt = _plt()
    steps = [r for r in rows if r.get("kind") == "step"]
    evals = [r for r in rows if r.get("kind") == "eval"]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    if steps:
        axes[0].plot([r["step"] for r in steps], [r["loss"] for r in steps])
        axes[1].plot([r["step"] for r in steps], [r["lr"] for r in steps])
    if evals:
        axes[2].plot([r["epoch"] for r in evals], [100 * r["top1"] for r in evals], "o-")
    for ax, title in zip(axes, ("train loss", "learning rate", "eval top-1 (%)"), strict=True):
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].set_xlabel("optimiser step")
    axes[1].set_xlabel("optimiser step")
    axes[2].set_xlabel("epoch")
    fig.tight_layout()
    with atomic_output(out) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return out


def plot_confusion(confusion: list[list[int]], classes: list[str], out: Path) -> Path | None:
    """Row-normalised confusion matrix (rows: truth). ``None`` without matplotlib."""
    if not plots_available():
        return None
    plt = _plt()
    c = np.asarray(confusion, np.float64)
    c = c / np.maximum(c.sum(1, keepdims=True), 1)
    n = len(classes)
    side = min(24, 3 + 0.18 * n)
    fig, ax = plt.subplots(figsize=(side, side))
    im = ax.imshow(c, cmap="viridis", vmin=0, vmax=1)
    if n <= 60:
        ax.set_xticks(range(n), classes, rotation=90, fontsize=6)
        ax.set_yticks(range(n), classes, fontsize=6)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    with atomic_output(out) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return out
