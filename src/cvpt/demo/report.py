"""The demo's table (like the paper's Table 1 / 3 / 4) and pictures."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cvpt.demo.claims import _pts, rho_text
from cvpt.io import atomic_output
from cvpt.models.methods import get_method
from cvpt.training.plots import _plt


def format_table(result: dict) -> str:
    """Method, tunable params and % (with and without prompt embeddings), GMACs per view,
    top-1 mean ± std over seeds, seconds per run."""
    seeds = len(result["config"]["seeds"])
    head = (
        f"{'method':<30} {'tunable':>9} {'%':>7} {'w/o emb':>9} {'GMACs':>6} "
        f"{'top-1 (%)':>13} {'s/run':>6}"
    )
    lines = [head, "-" * len(head)]
    for name, m in result["methods"].items():
        n = len(m["runs"])
        top1 = f"{100 * m['top1']:.1f} ± {100 * m['top1_std']:.1f}" + ("" if n == seeds else "*")
        lines.append(
            f"{name:<30} {_k(m['tunable_params']):>9} {m['tunable_percent']:>6.2f}% "
            f"{_k(m['tunable_params_without_embeddings']):>9} {m['gmacs_per_view']:>6.3f} "
            f"{top1:>13} {m['seconds']:>6.0f}"
        )
    lines += [
        f"chance {100 * result['chance']:.0f}%; a linear classifier on the mean MV per P-frame "
        f"{100 * result['mean_mv_baseline_top1']:.1f}%; {result['train_videos']} train / "
        f"{result['test_videos']} test videos; mean ± std over {seeds} seed(s)"
        + ("; * = not every seed finished" if any(
            len(m["runs"]) != seeds for m in result["methods"].values()) else ""),
        "GMACs per view: multiply-accumulates (1 MAC = 1 FLOP, the paper's convention).",
    ]  # fmt: skip
    lines += format_pairs(result)
    return "\n".join(lines)


def format_pairs(result: dict) -> list[str]:
    """The comparison's pairs, paired by seed: mean difference of top-1 (points), its 95%
    Student-t interval over the seeds, and whether the seeds tell the two apart."""
    pairs = result.get("paired", [])
    if not pairs:
        return []
    n = len(result["config"]["seeds"])
    lines = [f"paired by seed (top-1 difference in points, 95% t-interval over {n} seeds):"]
    width = max(len(f"{p['better']} − {p['worse']}") for p in pairs)
    for p in pairs:
        say = {
            "holds": f"{p['better']} better",
            "contradicted": f"{p['worse']} better",
            "unresolved": "not told apart",
        }[p["verdict"]]
        lines.append(
            f"  {p['better'] + ' − ' + p['worse']:<{width}} {_pts(p['mean']):>6} "
            f"[{_pts(p['low'])}, {_pts(p['high'])}]  {say}"
        )
    return lines


def _k(n: int) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.1f}K"


def plot_bars(result: dict, out: Path) -> None:
    """Top-1 (mean ± std over seeds) per method, with chance and the mean-MV baseline."""
    plt = _plt()
    names = list(result["methods"])
    ms = [result["methods"][n] for n in names]
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(names)), 4))
    colors = ["tab:orange" if get_method(m["method"]).proposed else "tab:blue" for m in ms]
    ax.bar(range(len(names)), [100 * m["top1"] for m in ms],
           yerr=[100 * m["top1_std"] for m in ms], color=colors, capsize=4)  # fmt: skip
    ax.axhline(100 * result["chance"], color="k", ls="--", lw=1, label="chance")
    ax.axhline(100 * result["mean_mv_baseline_top1"], color="tab:red", ls=":", lw=1,
               label="mean-MV linear classifier")  # fmt: skip
    ax.set_xticks(range(len(names)), [n.replace(", ", ",\n") for n in names], fontsize=8,
                  rotation=20, ha="right")  # fmt: skip
    ax.set_ylabel("test top-1 (%)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title("Synthetic target task: compressed inputs, frozen raw-video backbone")
    _save(fig, plt, out)


def plot_curves(result: dict, out: Path) -> None:
    """Train loss per epoch and test top-1 at the epochs it was measured (after the last one
    only, unless ``eval_every``), for every method: the mean over seeds as a line, each seed
    faint (loss) or as a dot (top-1)."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    last = 1
    for i, (name, m) in enumerate(result["methods"].items()):
        color = f"C{i % 10}"
        n = min(len(r["loss"]) for r in m["runs"])
        losses = np.array([r["loss"][:n] for r in m["runs"]])  # [seeds, epochs]
        epochs = np.arange(1, n + 1)
        axes[0].plot(epochs, losses.mean(0), color=color, label=name)
        for seed_loss in losses:
            axes[0].plot(epochs, seed_loss, color=color, lw=0.6, alpha=0.3)
        tested = m["runs"][0].get("curve_epochs", list(range(1, len(m["runs"][0]["curve"]) + 1)))
        top1 = 100 * np.array([r["curve"][: len(tested)] for r in m["runs"]])  # [seeds, tested]
        axes[1].plot(tested, top1.mean(0), color=color, marker="o", label=name)
        for seed_top1 in top1:
            axes[1].scatter(tested, seed_top1, color=color, s=12, alpha=0.4)
        last = max(last, n)
    axes[1].axhline(100 * result["chance"], color="k", ls="--", lw=1, label="chance")
    seeds = len(result["config"]["seeds"])
    axes[0].set_ylabel(f"train loss (line: mean of {seeds} seed(s))")
    axes[1].set_ylabel(f"test top-1 (%) (dots: {seeds} seed(s))")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.set_xlim(0.5, last + 0.5)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7)
    _save(fig, plt, out)


def plot_sccp_blocks(result: dict, out: Path) -> None:
    """Fig. 4 for each reading of SCCP's update: top-1 against the number of SCCP blocks (mean
    over seeds, every seed as a dot), with Spearman's ρ and its interval when claims were
    tested."""
    plt = _plt()
    ms = result["methods"]
    depth = max(m["options"].get("sccp_layers", 0) for m in ms.values())
    claims = result.get("claims", {})
    trends = {r: next(c for c in rows if "rho" in c) for r, rows in claims.items()}
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, r in enumerate(result.get("readings", [])):
        names = ["SCCP blocks = 0"] + [f"SCCP blocks = {k} ({r})" for k in range(1, depth + 1)]
        pts = [(k, ms[n]) for k, n in enumerate(names) if n in ms]
        x = [k + (i - 0.5) * 0.08 for k, _ in pts]  # side by side, so the dots stay apart
        label = f"sccp_update = {r}"
        if r in trends:
            label += f": {rho_text(trends[r])}"
        line = ax.plot(x, [100 * m["top1"] for _, m in pts], marker="o", label=label)[0]
        for xk, (_, m) in zip(x, pts, strict=True):
            ys = [100 * run["top1"] for run in m["runs"]]
            ax.scatter([xk] * len(ys), ys, s=10, alpha=0.4, color=line.get_color())
    ax.axhline(100 * result["chance"], color="k", ls="--", lw=1, label="chance")
    ax.set_xticks(range(depth + 1))
    ax.set_xlabel("SCCP blocks (first k layers; k = depth is CVPT)")
    ax.set_ylabel("test top-1 (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    ax.set_title("Fig. 4 on the synthetic task: mean over seeds, dots = seeds", fontsize=9)
    _save(fig, plt, out)


def _save(fig, plt, out: Path) -> None:
    fig.tight_layout()
    with atomic_output(out) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
