"""``cvpt predict``: the top classes of any video with a trained run."""

from __future__ import annotations

import contextlib
import json
import tempfile
import warnings
from pathlib import Path

import torch

from cvpt.codec.encode import reencode
from cvpt.codec.probe import probe
from cvpt.data.dataset import CompressedVideoDataset, collate
from cvpt.data.splits import Sample
from cvpt.training.checkpoint import STATE, last_checkpoint, load_checkpoint, model_identity
from cvpt.training.config import load_run_config
from cvpt.training.evaluate import predict_batch
from cvpt.training.trainer import build_model, pick_device


def find_run(checkpoint: str | Path) -> tuple[Path, Path]:
    """``(run folder, checkpoint folder)`` from either of them."""
    p = Path(checkpoint)
    if (p / STATE).exists():
        return p.parent.parent, p
    ckpt = last_checkpoint(p)
    if ckpt is None:
        raise FileNotFoundError(f"{p}: neither a run folder with checkpoints nor a checkpoint")
    return p, ckpt


def load_trained(
    checkpoint: str | Path,
    *,
    backbone_checkpoint: str | Path | None = None,
    allow_other_backbone: bool = False,
):
    """``(model in eval mode, run config, class names, checkpoint folder)`` of a trained run
    (its folder or one of its checkpoints). The backbone is the run's (or
    ``backbone_checkpoint``) and must be the one the run was tuned on
    (:class:`cvpt.BackboneMismatchError` otherwise, unless ``allow_other_backbone``)."""
    run, ckpt = find_run(checkpoint)
    overrides = (
        [] if backbone_checkpoint is None else [f"backbone_checkpoint={backbone_checkpoint}"]
    )
    cfg = load_run_config(run, overrides)
    classes = json.loads((run / "classes.json").read_text())
    model = build_model(cfg, len(classes), pick_device(cfg.device))
    load_checkpoint(
        ckpt,
        model,
        identity=model_identity(cfg, model, len(classes)),
        allow_other_backbone=allow_other_backbone,
    )
    return model.eval(), cfg, classes, ckpt


@contextlib.contextmanager
def prepared(video: str | Path, short_side: int):
    """``video`` itself if it is already MPEG-4 GOP 12, else a re-encoded copy in a temporary
    folder (removed on exit)."""
    video = Path(video)
    if not probe(video).layout_problems():
        yield video
        return
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / (video.stem + ".mp4")
        result = reencode(video, out, short_side=short_side)
        if result.damage:  # predicted from what decodes; the caller must know
            warnings.warn(f"{video}: {result.damage}", stacklevel=3)
        yield out


def load_views(video: Path, cfg, views: int = 1, crops: int = 1) -> dict:
    """A batch of one video as ``cvpt eval`` reads it: tensors ``[1, V, C, T, H, W]``."""
    ds = CompressedVideoDataset(
        video.parent,
        [Sample(video.name, 0)],
        train=False,
        size=cfg.size,
        short_side=cfg.short_side,
        views=views,
        crops=crops,
        clip=cfg.clip,
        mv_clip=cfg.mv_clip,
        twins=False,  # this file, even beside an .mp4 of the same name
    )
    batch = collate([ds[0]])
    if batch["failed"]:
        path, reason = batch["failed"][0]
        raise ValueError(f"{path}: {reason}")
    return batch


def predict_video(
    video: str | Path,
    checkpoint: str | Path,
    *,
    views: int = 2,
    crops: int = 3,
    top: int = 5,
    backbone_checkpoint: str | Path | None = None,
    allow_other_backbone: bool = False,
) -> dict:
    """Class probabilities for one video (re-encoded in a temporary folder unless it is already
    MPEG-4 GOP 12), averaged over ``views`` clips × ``crops`` crops. The backbone must be the
    one the run was tuned on (see :func:`load_trained`)."""
    model, cfg, classes, ckpt = load_trained(
        checkpoint,
        backbone_checkpoint=backbone_checkpoint,
        allow_other_backbone=allow_other_backbone,
    )
    device = next(model.parameters()).device
    with prepared(video, cfg.short_side) as path:
        batch = load_views(path, cfg, views, crops)
        probs = predict_batch(model, batch, device, cfg.amp)[0]
    k = min(top, len(classes))
    values, idx = torch.topk(probs, k)
    return {
        "video": str(video),
        "checkpoint": str(ckpt),
        "views": views,
        "crops": crops,
        "top": [
            {"class": classes[i], "index": int(i), "probability": float(v)}
            for v, i in zip(values.tolist(), idx.tolist(), strict=True)
        ],
    }
