"""The paper-style efficiency row of a model: parameters and GMACs (``cvpt info``)."""

from __future__ import annotations

import torch

from cvpt.codec.sampling import ClipSpec
from cvpt.models.compressed import METHODS
from cvpt.models.factory import create_model
from cvpt.models.flops import compressed_inputs, count_macs


def model_row(
    method: str,
    *,
    backbone: str = "vit_base",
    num_classes: int,
    views: int = 6,
    size: int = 224,
    num_iframes: int = ClipSpec.num_gops,
    **options,
) -> dict:
    """Tunable / total parameters and GMACs per view (and × ``views``) of one method.

    Built on the ``meta`` device: no weights are allocated, so ViT-L costs nothing to report.
    """
    with torch.device("meta"):
        model = create_model(method, backbone=backbone, num_classes=num_classes, **options)
    counts = model.param_counts()
    inputs = compressed_inputs(1, num_iframes, size)
    gmacs = count_macs(model, *inputs) / 1e9
    cfg = model.backbone.cfg
    n = (num_iframes // cfg.tubelet_size) * (size // cfg.patch_size) ** 2
    return {
        "method": method,
        "backbone": backbone,
        "num_classes": num_classes,
        "tunable_params": counts["tunable"],
        "tunable_percent": 100 * counts["tunable"] / counts["total"],
        "tunable_params_without_embeddings": counts["tunable_without_embeddings"],
        "tunable_percent_without_embeddings": 100
        * counts["tunable_without_embeddings"]
        / counts["total"],
        "total_params": counts["total"],
        "gmacs_per_view": gmacs,
        "views": views,
        "gmacs_total": gmacs * views,
        "tokens_per_block": model.num_streams * n
        + (len(model.prompts) if model.prompts is not None else 0),
        "inputs": {
            "iframes": [1, 3, num_iframes, size, size],
            "mvs": [1, 2, ClipSpec.p_per_gop * num_iframes, size, size],
            "residuals": [1, 3, ClipSpec.p_per_gop * num_iframes, size, size],
        },
        "options": options,
    }


def raw_video_row(
    backbone: str = "vit_base",
    *,
    num_classes: int,
    frames: int = 16,
    size: int = 224,
    views: int = 15,
) -> dict:
    """The raw-RGB reference: VideoMAE on ``frames`` frames (fully fine-tuned)."""
    from cvpt.models.registry import create_backbone

    with torch.device("meta"):
        vit = create_backbone(backbone, num_classes=num_classes)
    gmacs = count_macs(vit, torch.zeros(1, 3, frames, size, size, device="meta")) / 1e9
    total = sum(p.numel() for p in vit.parameters())
    return {
        "method": f"VideoMAE RGB {frames}f",
        "backbone": backbone,
        "num_classes": num_classes,
        "tunable_params": total,
        "tunable_percent": 100.0,
        "total_params": total,
        "tunable_params_without_embeddings": total,
        "tunable_percent_without_embeddings": 100.0,
        "gmacs_per_view": gmacs,
        "views": views,
        "gmacs_total": gmacs * views,
        "tokens_per_block": (frames // vit.cfg.tubelet_size) * (size // vit.cfg.patch_size) ** 2,
        "inputs": {"rgb": [1, 3, frames, size, size]},
        "options": {},
    }


def all_rows(backbone: str = "vit_base", *, num_classes: int, views: int = 6) -> list[dict]:
    return [model_row(m, backbone=backbone, num_classes=num_classes, views=views) for m in METHODS]


def format_table(rows: list[dict]) -> str:
    """A paper-style table; GMACs are multiply-accumulates (fvcore's "FLOPs")."""
    head = (
        f"{'method':<18} {'tunable':>11} {'%':>7} {'w/o embed':>11} {'%':>7} "
        f"{'GMACs/view':>11} {'views':>5} {'GMACs':>9} {'tokens':>7}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['method']:<18} {r['tunable_params'] / 1e6:>10.3f}M {r['tunable_percent']:>6.2f}% "
            f"{r['tunable_params_without_embeddings'] / 1e6:>10.3f}M "
            f"{r['tunable_percent_without_embeddings']:>6.2f}% {r['gmacs_per_view']:>11.1f} "
            f"{r['views']:>5} {r['gmacs_total']:>9.1f} {r['tokens_per_block']:>7}"
        )
    lines.append(
        "GMACs: multiply-accumulates (1 MAC = 1 FLOP, the fvcore convention of the "
        "paper's GFLOPs); attention counted explicitly."
    )
    return "\n".join(lines)
