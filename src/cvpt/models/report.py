"""The paper-style efficiency row of a model: parameters and GMACs (``cvpt info``)."""

from __future__ import annotations

import torch

from cvpt.codec.sampling import ClipSpec
from cvpt.errors import ConfigError
from cvpt.models.factory import create_model
from cvpt.models.flops import INPUT_NAMES, count_macs, model_inputs
from cvpt.models.methods import get_method, methods_for


def model_row(
    method: str,
    *,
    backbone: str = "vit_base",
    num_classes: int,
    views: int = 6,
    size: int = 224,
    clip: ClipSpec | dict | None = None,
    **options,
) -> dict:
    """Tunable / total parameters and GMACs per view (and × ``views``) of one method, at the
    clip geometry ``clip`` (:class:`ClipSpec` or its dict; default the paper's: 4 GOPs × 3
    P-frames), measured on the model's own ``model.clip``.

    Built on the ``meta`` device: no weights are allocated, so ViT-L costs nothing to report.
    """
    with torch.device("meta"):
        model = create_model(
            method, backbone=backbone, num_classes=num_classes, clip=clip, **options
        )
    counts = model.param_counts()
    inputs = model_inputs(model, 1, size=size)
    gmacs = count_macs(model, *inputs) / 1e9
    t, ph, pw = model.backbone.patch_kernel
    t_i = model.clip.num_gops
    n = (t_i // t) * (size // ph) * (size // pw)  # tokens per stream at the first block
    return {
        "method": method,
        "about": model.tuning.help,  # the registry's one line: what trains
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
        "tokens_per_block": model.num_streams * n + model.tuning.extra_tokens(model),
        "inputs": {name: list(x.shape) for name, x in zip(INPUT_NAMES, inputs, strict=True)},
        "options": options,
        # what the method records with every run (CVPT: the reading of Eq. 7 it runs;
        # docs/design.md: how the default was chosen)
        **{k: getattr(model.options, k) for k in model.tuning.recorded_before},
    }


def raw_video_row(
    backbone: str = "vit_base",
    *,
    num_classes: int,
    frames: int | None = None,
    size: int = 224,
    views: int | None = None,
) -> dict:
    """The raw-RGB reference: the backbone on ``frames`` RGB frames (fully fine-tuned); frames
    and views default to the family's published setting (its
    :attr:`~cvpt.models.backbone.VideoBackbone.raw_video`)."""
    from cvpt.models.registry import create_backbone

    with torch.device("meta"):
        vit = create_backbone(backbone, num_classes=num_classes)
    recipe = vit.raw_video
    frames = frames or recipe.frames
    views = views or recipe.views
    gmacs = count_macs(vit, torch.zeros(1, 3, frames, size, size, device="meta")) / 1e9
    total = sum(p.numel() for p in vit.parameters())
    t, ph, pw = vit.patch_kernel
    return {
        "method": f"{recipe.name} RGB {frames}f",
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
        "tokens_per_block": (frames // t) * (size // ph) * (size // pw),
        "inputs": {"rgb": [1, 3, frames, size, size]},
        "options": {},
    }


def all_rows(
    backbone: str = "vit_base", *, num_classes: int, views: int = 6, size: int = 224, **options
) -> list[dict]:
    """Every registered method the backbone's family takes (VPT* only on the ViT), each at
    input ``size`` with those of ``options`` its options dataclass has (``lora_rank`` goes to
    LoRA only; a shared option such as ``pool`` to every method). :class:`ConfigError` for an
    option none of these methods takes (it would change no row)."""
    from cvpt.models.registry import backbone_config

    methods = methods_for(backbone_config(backbone).family)
    takes = {m: set(get_method(m).options.field_names()) for m in methods}
    unused = sorted(k for k in options if not any(k in t for t in takes.values()))
    if unused:
        raise ConfigError(
            f"options {unused} are taken by none of the methods listed for {backbone} "
            f"({', '.join(methods)}); each method's options: docs/models.md"
        )
    return [
        model_row(
            m,
            backbone=backbone,
            num_classes=num_classes,
            views=views,
            size=size,
            **{k: v for k, v in options.items() if k in takes[m]},
        )
        for m in methods
    ]


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
        "paper's GFLOPs); attention counted explicitly. tokens: at the first block, all streams."
    )
    lines += [f"{r['method']}: {r['about']}" for r in rows if "about" in r]
    for update in sorted({r["sccp_update"] for r in rows if "sccp_update" in r}):
        how = {"add": "keep the MV/residual streams and add", "replace": "replace the MV/residual "
               "streams by"}[update]  # fmt: skip
        lines.append(
            f"CVPT: sccp_update={update} (SCCP blocks {how} g5(m), g6(r); the other reading is "
            "an option: docs/design.md)"
        )
    return "\n".join(lines)
