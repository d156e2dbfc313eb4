"""``cvpt.load_model``: the one way to get a trained model back, whatever holds it.

It reads, in this order of what ``path`` is:

- a Hugging Face hub id (``org/name``, ``hf-hub:org/name@revision``): a repository
  :meth:`~cvpt.models.compressed.CompressedVideoModel.push_to_hub` wrote, from its cached
  snapshot;
- a ``cvpt train`` run folder: its last checkpoint (``checkpoints/last.json``);
- a checkpoint folder of a run, or any folder ``model.save_pretrained`` wrote (a checkpoint is
  one: ``config.json`` + ``model.safetensors``, :mod:`cvpt.models.tuned`; one written before
  checkpoints were model folders is described by its run:
  :func:`cvpt.training.checkpoint.model_config`).

``cvpt eval``, ``cvpt predict`` (:class:`cvpt.Predictor`), ``cvpt visualize`` and ``cvpt export``
all load through it: the model's ``config.json`` (upgraded from older versions by
:func:`cvpt.models.tuned.upgrade`) says everything, the run's ``config.yaml`` is not read.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from cvpt.errors import CheckpointError, ConfigError, CvptError, MissingFileError, RunError
from cvpt.models.compressed import CompressedVideoModel
from cvpt.models.factory import create_model
from cvpt.models.hub import hub_id_hint, parse_hub_id, resolve_checkpoint
from cvpt.models.identity import IDENTITY_KEYS, backbone_identity, check_backbone
from cvpt.models.registry import get_family
from cvpt.models.tuned import CONFIG, WEIGHTS, load_weights, read_config, recorded_backbone
from cvpt.training.checkpoint import STATE, last_checkpoint, model_config
from cvpt.training.config import TrainConfig


def model_folder(path: str | Path) -> Path:
    """The folder holding the model ``path`` names (see the module doc). Raises
    :class:`~cvpt.errors.MissingFileError` for a path that does not exist and
    :class:`~cvpt.errors.RunError` for a folder that holds no trained model."""
    p = Path(path)
    if not p.exists() and parse_hub_id(path) is not None:
        p = Path(resolve_checkpoint(path))  # a tuned model on the hub: its snapshot
    if not p.exists():
        raise MissingFileError(f"{path}: no such run or checkpoint folder{hub_id_hint(path)}")
    if (p / CONFIG).exists() or (p / STATE).exists():
        return p
    ckpt = last_checkpoint(p)
    if ckpt is None:
        raise RunError(
            f"{p}: neither a run folder with checkpoints, a checkpoint nor a folder written by "
            f"save_pretrained ({CONFIG} + {WEIGHTS})"
        )
    return ckpt


def load_model(
    path: str | Path,
    *,
    backbone_checkpoint: str | Path | None = None,
    allow_other_backbone: bool = False,
    device: str | torch.device = "cpu",
) -> CompressedVideoModel:
    """The trained model ``path`` names (a hub id, a run folder, one of its checkpoints, or a
    ``save_pretrained`` folder: the module doc), in eval mode on ``device``, with attributes
    ``class_names``, ``input_spec`` (the clips, crop size and MV scaling it was trained on;
    ``None`` when not recorded), ``identity`` (its backbone's, :mod:`cvpt.models.identity`)
    and ``loaded_from`` (the folder read).

    The frozen backbone is rebuilt from where it came from: a hub id at the revision it was
    tuned on, a seeded random initialisation, or a file (``backbone_checkpoint`` points
    elsewhere, e.g. on another machine: :class:`~cvpt.errors.CheckpointError` names this fix
    when the file is not here). Its fingerprint must equal the saved one:
    :class:`~cvpt.models.identity.BackboneMismatchError` otherwise, unless
    ``allow_other_backbone``. A file saved by a newer cvpt:
    :class:`~cvpt.errors.FormatVersionError`.
    """
    folder = model_folder(path)
    described = folder / CONFIG
    if described.exists():
        config, weights = read_config(folder), WEIGHTS
    else:  # a checkpoint from before checkpoints were model folders: its run describes it
        config, weights = model_config(folder)
        run = folder if (folder / "config.yaml").exists() else folder.parent.parent
        described = run / "config.yaml"
    ckpt = backbone_checkpoint or recorded_backbone(folder, config["backbone_checkpoint"])
    try:
        model = _build(config, ckpt)
    except ConfigError as e:  # the file's method, options or sizes describe no model
        raise CheckpointError(described, f"describes no model cvpt can build: {e}") from e
    except CvptError:  # a backbone file's own error (it names that file)
        raise
    except (TypeError, ValueError) as e:
        raise CheckpointError(described, f"describes no model cvpt can build: {e}") from e
    check_backbone(folder, config, backbone_identity(model), allow_other_backbone)
    load_weights(model, folder, config, weights)
    model.class_names = config["class_names"]
    model.input_spec = config["input"]
    model.identity = {k: config[k] for k in IDENTITY_KEYS}
    model.loaded_from = folder
    return model.to(device).eval()


def _build(config: dict, ckpt: str | Path | None) -> CompressedVideoModel:
    """The untrained model a (current-version) ``config.json`` describes, its frozen backbone
    read from ``ckpt`` (``None``: rebuilt from the saved seed, sized exactly as saved)."""
    options = dict(config["backbone_options"] or {})
    if ckpt is None:  # a registered architecture, sized exactly as saved
        options = {**config["backbone_config"], **options}
        options.pop("num_classes", None)
    # the caller's global RNG state is left as it was (fork_rng restores it on exit)
    with torch.random.fork_rng(devices=[]):
        if config["seed"] is not None:
            torch.manual_seed(config["seed"])  # a random backbone is rebuilt from its seed
        model = create_model(
            config["method"],
            # the family's default variant: the saved config sizes everything
            backbone=get_family(config["backbone_family"]).default_variant,
            num_classes=config["num_classes"],
            backbone_checkpoint=ckpt,
            backbone_options=options,
            clip=config["clip"],
            **config["options"],
        )
    model.origin = {
        "backbone_checkpoint": str(ckpt) if ckpt else None,
        "backbone_options": config["backbone_options"] or {},
        "seed": config["seed"],
    }
    return model


def input_settings(model: CompressedVideoModel) -> dict:
    """``{"size", "short_side", "mv_clip"}``: how to read videos for ``model`` (its saved input
    spec). A model saved without one (built with :func:`cvpt.create_model` and trained in a
    loop of the user's) is read at ``cvpt train``'s defaults for its backbone's size — the
    short side in the paper's 256:224 ratio to the crop, MVs clipped at ±20 px — with a
    warning naming the file. Raises :class:`~cvpt.errors.RunError` for a model saved without
    class names: it cannot be used for prediction."""
    spec, classes = getattr(model, "input_spec", None), getattr(model, "class_names", None)
    where = Path(getattr(model, "loaded_from", "the model")) / CONFIG
    if not classes:
        raise RunError(
            f"{where}: records no class names; it cannot be used for prediction (save it with "
            "class_names=)"
        )
    if spec:
        return {k: spec[k] for k in ("size", "short_side", "mv_clip")}
    size = model.backbone.cfg.img_size
    ratio = TrainConfig.short_side / TrainConfig.size
    settings = {
        "size": size,
        "short_side": 2 * round(size * ratio / 2),
        "mv_clip": TrainConfig.mv_clip,
    }
    warnings.warn(
        f"{where}: records no input spec; videos are read at cvpt train's defaults for its "
        f"{size} px backbone (short side {settings['short_side']}, MVs clipped at "
        f"±{settings['mv_clip']:g} px): save it with input_spec= (the keys of "
        "cvpt.training.config.input_spec) to record how it was trained",
        stacklevel=3,
    )
    return settings
