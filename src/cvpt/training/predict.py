"""Loading a trained run for prediction (:class:`cvpt.Predictor`, ``cvpt visualize``,
``cvpt export``)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from cvpt.codec.sampling import ClipSpec
from cvpt.data.dataset import read_views
from cvpt.data.transforms import ClipTransform
from cvpt.errors import MissingFileError, RunError
from cvpt.models.hub import parse_hub_id, resolve_checkpoint
from cvpt.models.pretrained import CONFIG, WEIGHTS, load_model, read_config, recorded_backbone
from cvpt.predictor import prepared  # noqa: F401  (cvpt visualize re-encodes through it)
from cvpt.training.checkpoint import STATE, last_checkpoint, load_checkpoint, model_identity
from cvpt.training.config import TrainConfig, load_run_config
from cvpt.training.trainer import build_model, pick_device


def find_run(checkpoint: str | Path) -> tuple[Path | None, Path]:
    """``(folder holding config.yaml and classes.json, checkpoint folder)`` from a run folder or
    one of its checkpoints. A checkpoint shared on its own carries copies of the run's
    ``config.yaml`` and ``classes.json`` beside its tensors; without them, a folder written by
    ``model.save_pretrained`` (a checkpoint folder is one) describes itself in its
    ``config.json``: the run folder is then ``None``."""
    p = Path(checkpoint)
    if not p.exists() and parse_hub_id(checkpoint) is not None:
        p = Path(resolve_checkpoint(checkpoint))  # a tuned model on the hub: its snapshot
    if not p.exists():
        raise MissingFileError(f"{p}: no such run or checkpoint folder")
    if (p / STATE).exists() or (p / CONFIG).exists():
        run, ckpt = p.parent.parent, p
        if (p / "config.yaml").exists() and (p / "classes.json").exists():
            run = p
    else:
        run, ckpt = p, last_checkpoint(p)
        if ckpt is None:
            raise RunError(
                f"{p}: neither a run folder with checkpoints, a checkpoint nor a folder "
                f"written by save_pretrained ({CONFIG} + {WEIGHTS})"
            )
    missing = [n for n in ("config.yaml", "classes.json") if not (run / n).exists()]
    if missing and (ckpt / CONFIG).exists():
        return None, ckpt  # self-describing: config.json says everything
    if missing:
        raise RunError(
            f"{ckpt}: the run's {' and '.join(missing)} are not beside it; copy them from the "
            "run folder into the checkpoint folder to share a checkpoint on its own"
        )
    return run, ckpt


def load_trained(
    checkpoint: str | Path,
    device: str | torch.device | None = None,
    *,
    backbone_checkpoint: str | Path | None = None,
    allow_other_backbone: bool = False,
):
    """``(model in eval mode, run config, class names, checkpoint folder)`` of a trained run
    (its folder or one of its checkpoints) or of a folder written by ``model.save_pretrained``,
    on ``device`` (``None``: the run's setting). The one function that reads a trained model
    from disk (:class:`cvpt.Predictor`, ``cvpt visualize``, ``cvpt export``). The backbone is
    the run's (or ``backbone_checkpoint``) and must be the one the run was tuned on
    (:class:`cvpt.BackboneMismatchError` otherwise, unless ``allow_other_backbone``)."""
    run, ckpt = find_run(checkpoint)
    if run is None:
        return _load_pretrained(ckpt, device, backbone_checkpoint, allow_other_backbone)
    if backbone_checkpoint is None and (ckpt / CONFIG).exists():
        # where the checkpoint says its backbone came from (a hub id at its commit, a path
        # made absolute), rather than config.yaml's setting as typed (relative to its cwd)
        backbone_checkpoint = recorded_backbone(ckpt, read_config(ckpt).get("backbone_checkpoint"))
    overrides = (
        [] if backbone_checkpoint is None else [f"backbone_checkpoint={backbone_checkpoint}"]
    )
    cfg = load_run_config(run, overrides)
    classes = json.loads((run / "classes.json").read_text())
    model = build_model(cfg, len(classes), pick_device(str(device) if device else cfg.device))
    load_checkpoint(
        ckpt,
        model,
        identity=model_identity(cfg, model, len(classes)),
        allow_other_backbone=allow_other_backbone,
    )
    return model.eval(), cfg, classes, ckpt


def _load_pretrained(folder: Path, device, backbone_checkpoint, allow_other_backbone: bool):
    """:func:`load_trained` for a self-describing folder: the run config is rebuilt from its
    ``config.json`` (method, options, class names, input spec); the backbone comes from
    ``backbone_checkpoint`` or where the saved identity says it came from."""
    config = read_config(folder)
    spec, classes = config.get("input"), config.get("class_names")
    if not spec or not classes:
        raise RunError(
            f"{folder / CONFIG}: records no {'input spec' if not spec else 'class names'}; "
            "it cannot be used for prediction (save it with class_names= and input_spec=)"
        )
    cfg = TrainConfig(
        method=config["method"],
        size=spec["size"],
        short_side=spec["short_side"],
        mv_clip=spec["mv_clip"],
        clip=ClipSpec(**spec["clip"]),
        backbone_checkpoint=str(backbone_checkpoint or config.get("backbone_checkpoint") or "")
        or None,
        backbone_options=config.get("backbone_options") or {},
        model_options=config["options"],
    )
    model = load_model(
        folder,
        backbone_checkpoint=backbone_checkpoint,
        allow_other_backbone=allow_other_backbone,
        device=pick_device(str(device) if device else cfg.device),
    )
    return model.eval(), cfg, list(classes), folder


def load_views(video: Path, cfg, clips: int = 1, crops: int = 1) -> dict:
    """A batch of one video as ``cvpt eval`` reads it: tensors ``[1, V, C, T, H, W]``,
    V = clips × crops views."""
    transform = ClipTransform(
        size=cfg.size, short_side=cfg.short_side, crops=crops, mv_clip=cfg.mv_clip
    )
    return {k: v[None] for k, v in read_views(video, transform, clips, cfg.clip).items()}
