"""Pictures of a run: learning curves and the confusion matrix."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cvpt.io import atomic_output


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(rows: list[dict], out: Path) -> None:
    """Train loss and lr per step; eval top-1 per epoch."""
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


def plot_confusion(confusion: list[list[int]], classes: list[str], out: Path) -> None:
    """Row-normalised confusion matrix (rows: truth)."""
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
