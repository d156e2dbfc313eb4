"""Run checkpoints: the tuned model (a :func:`cvpt.load_model` folder: ``config.json`` and
``model.safetensors``, :mod:`cvpt.models.tuned`) plus ``state.pt`` with the optimiser,
scheduler, RNG and progress. ``state.pt`` and ``last.json`` are the format
``cvpt-run-checkpoint``; every rule for reading an older one is in :func:`upgrade`.

Each checkpoint is a folder written under a temporary name and renamed; ``last.json`` (also
replaced atomically) names the newest one. A checkpoint remembers the method, options and
backbone identity (architecture, source, fingerprint of the frozen weights) that made it, and is
refused by a run that differs.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import torch

from cvpt.errors import CheckpointError, RunError
from cvpt.formats import Format
from cvpt.io import write_json
from cvpt.models.identity import IDENTITY_KEYS, backbone_identity, check_backbone
from cvpt.models.methods import full_options
from cvpt.models.registry import backbone_config
from cvpt.models.tuned import CONFIG, FORMAT, WEIGHTS, load_weights, read_config
from cvpt.training.config import (
    input_spec,
    load_run_config,
    read_run_config,
    recorded_options,
)

KEEP = 2  # checkpoint folders kept per run
STATE = "state.pt"
POINTER = "last.json"  # in run/checkpoints/: names the newest checkpoint
RUN_CHECKPOINT = Format("cvpt-run-checkpoint", 1)  # state.pt and last.json
OLD_WEIGHTS = "tunable.safetensors"  # the tuned tensors' name before checkpoints were models


def model_identity(cfg, model, num_classes: int) -> dict:
    """What must match for a checkpoint to be loadable into a run: method, options (every
    one of the method's, defaults filled in: an option given at its default is the same
    model as one left out), classes and the backbone's identity (its real architecture, where
    it came from, the fingerprint of its frozen weights)."""
    return {
        "method": cfg.method,
        "backbone_options": cfg.backbone_options,
        "model_options": model.options.to_dict(),
        "num_classes": num_classes,
        **backbone_identity(model),
    }


def save_checkpoint(
    run: Path,
    model,
    opt,
    sched,
    progress: dict,
    identity: dict,
    *,
    class_names: list[str] | None = None,
    input_spec: dict | None = None,
) -> Path:
    """Write ``run/checkpoints/step-<n>/`` and point ``run/checkpoints/last.json`` at it."""
    folder = run / "checkpoints"
    name = f"step-{progress['global_step']:07d}"
    tmp = folder / f".{name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp, class_names=class_names, input_spec=input_spec)
    torch.save(
        RUN_CHECKPOINT.stamp(
            {
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
                "progress": progress,
                "identity": identity,
                "rng": {
                    "torch": torch.get_rng_state(),
                    "numpy": _numpy_state(),
                    "python": _python_state(),
                },
            }
        ),
        tmp / STATE,
    )
    final = folder / name
    if final.exists():  # the same step again (a resumed run re-reaching it): swap, then drop
        old = folder / f".{name}.old"
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(final)
    write_json(folder / POINTER, RUN_CHECKPOINT.stamp({"checkpoint": name, **progress}))
    for stale in sorted(folder.glob("step-*"))[:-KEEP]:
        shutil.rmtree(stale, ignore_errors=True)
    return final


def _numpy_state() -> list:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)]


def _python_state() -> list:
    version, internal, gauss = random.getstate()
    return [version, list(internal), gauss]


def last_checkpoint(run: Path) -> Path | None:
    """The newest checkpoint folder of the run folder ``run`` (``None``: it has none), as its
    ``checkpoints/last.json`` names it: the one reader of that file. Raises
    :class:`~cvpt.errors.FormatVersionError` for a ``last.json`` of a newer cvpt and
    :class:`~cvpt.errors.RunError` naming the file for one that is not JSON, not an object,
    without ``checkpoint``, or naming anything but an existing folder of ``checkpoints/``."""
    pointer = Path(run) / "checkpoints" / POINTER
    if not pointer.exists():
        return None
    try:
        data = json.loads(pointer.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RunError(f"{pointer}: not JSON ({e})") from e
    if not isinstance(data, dict):
        raise RunError(f"{pointer}: not a JSON object naming the last checkpoint")
    RUN_CHECKPOINT.version_of(data, pointer)  # its one field has not changed: nothing to upgrade
    name = data.get("checkpoint")
    # a plain name of a folder beside it: never a path out of the run's checkpoints
    if not isinstance(name, str) or name in ("", ".", "..") or Path(name).name != name:
        raise RunError(f"{pointer}: checkpoint {name!r} is not the name of a checkpoint folder")
    if not (pointer.parent / name).is_dir():
        raise RunError(f"{pointer}: checkpoint {name!r} is not in {pointer.parent}")
    return pointer.parent / name


def check_identity(path: Path, saved: dict, expected: dict, allow_other_backbone: bool = False):
    """Refuse a checkpoint made by another model: :class:`cvpt.errors.RunError` naming what
    differs, or :class:`cvpt.BackboneMismatchError` for another backbone (unless
    ``allow_other_backbone``). Model options are compared with the method's defaults filled
    in on both sides (checkpoints before that recorded only the options a run set)."""
    saved, expected = _full_options(saved), _full_options(expected)
    diff = {
        k: (saved.get(k), v)
        for k, v in expected.items()
        if k not in IDENTITY_KEYS and saved.get(k) != v
    }
    if diff:
        detail = "; ".join(f"{k}: checkpoint {a!r}, run {b!r}" for k, (a, b) in diff.items())
        raise RunError(f"{path}: checkpoint made by another model ({detail})")
    check_backbone(path, saved, expected, allow_other_backbone)


def _full_options(identity: dict) -> dict:
    """``identity`` with its ``model_options`` as its method's every option (defaults in)."""
    options = full_options(identity.get("method"), identity.get("model_options"))
    return {**identity, "model_options": options}


def upgrade(state: dict, folder: Path, run_config: dict, world: int) -> dict:
    """A checkpoint's ``state.pt`` (in ``folder``) in the current version's shape, plus
    ``"weights"``: the file of its tuned tensors. Every rule for reading a checkpoint an older
    cvpt wrote is here; ``run_config`` (the run's ``config.yaml``: keys and ``resolved``) and
    ``world`` (processes now) stand in for what such a checkpoint did not record. Raises
    :class:`~cvpt.errors.FormatVersionError` for a newer version.

    Version 0 (no ``format_version``), as written before each field was recorded:

    - the tuned tensors in ``tunable.safetensors`` (before checkpoints were model folders);
    - an identity without the options its method records with every run: the values of that
      time (:func:`~cvpt.training.config.recorded_options` ``before``: a ``cvpt`` run's
      ``sccp_update``, "replace");
    - RNG states in another shape than lists: not restored (``None``);
    - a progress without ``processes`` / ``effective_batch``: the run's resolved values (else
      this world, and the effective batch it gives); without ``samples_in_epoch`` (before the
      position was global): batches × the run's per-process batch × its processes.
    """
    state = dict(state)
    if RUN_CHECKPOINT.version_of(state, folder / STATE) == 0:
        old = not (folder / WEIGHTS).exists() and (folder / OLD_WEIGHTS).exists()
        state["weights"] = OLD_WEIGHTS if old else WEIGHTS
        identity = dict(state["identity"])
        before = recorded_options(identity.get("method", ""), before=True)
        identity["model_options"] = {**before, **(identity.get("model_options") or {})}
        state["identity"] = identity
        rng = dict(state["rng"])
        if not (isinstance(rng.get("numpy"), list) and isinstance(rng["numpy"][0], str)):
            rng["numpy"] = None
        if not (isinstance(rng.get("python"), list) and len(rng["python"]) == 3):
            rng["python"] = None
        state["rng"] = rng
        progress = dict(state["progress"])
        resolved = run_config.get("resolved") or {}
        progress["processes"] = int(progress.get("processes") or resolved.get("processes") or world)
        progress["effective_batch"] = (
            int(progress.get("effective_batch") or resolved.get("effective_batch") or 0) or None
        )
        if "samples_in_epoch" not in progress:  # written before the position was global
            per_rank = int(run_config.get("batch_size") or 1)
            progress["samples_in_epoch"] = (
                progress["batch_in_epoch"] * per_rank * progress["processes"]
            )
        state["progress"] = progress
    else:
        state["weights"] = WEIGHTS
    return RUN_CHECKPOINT.current(state)


def model_config(folder: Path) -> tuple[dict, str]:
    """``(config.json, tensors file)`` of the checkpoint ``folder`` written before checkpoints
    were model folders (version 0: ``state.pt`` and ``tunable.safetensors``, no
    ``config.json``), derived from what described it then: its run's ``config.yaml`` and
    ``classes.json`` (beside it, or in the run folder two levels up) and the identity in its
    ``state.pt``. Raises :class:`~cvpt.errors.RunError` when the run's files are not there."""
    run = folder if (folder / "config.yaml").exists() else folder.parent.parent
    if not (run / "config.yaml").exists() or not (run / "classes.json").exists():
        raise RunError(
            f"{folder}: a checkpoint written before checkpoints described themselves, and its "
            "run's config.yaml and classes.json are not beside it; copy them from the run "
            "folder into the checkpoint folder"
        )
    saved, cfg = read_run_config(run), load_run_config(run)
    classes = json.loads((run / "classes.json").read_text())
    state = torch.load(folder / STATE, map_location="cpu", weights_only=True)
    state = upgrade(state, folder, saved, 1)
    arch = (saved.get("resolved") or {}).get("backbone_config")
    if arch is None:  # a registered architecture, resized by the run's options
        arch = backbone_config(cfg.backbone, **cfg.backbone_options).to_dict()
    config = {
        "format": FORMAT,
        "method": cfg.method,
        "options": cfg.model_options,
        "clip": cfg.clip.to_dict(),
        "num_classes": len(classes),
        "class_names": classes,
        "input": input_spec(cfg),
        "backbone_family": backbone_config(cfg.backbone).family,
        "backbone_config": arch,
        "backbone_options": cfg.backbone_options,
        "backbone_checkpoint": cfg.backbone_checkpoint,
        "seed": cfg.seed,
        **{k: state["identity"].get(k) for k in IDENTITY_KEYS},
    }
    return config, state["weights"]


def load_checkpoint(
    path: Path,
    model,
    opt=None,
    sched=None,
    identity: dict | None = None,
    *,
    allow_other_backbone: bool = False,
    run_config: dict | None = None,
    world: int = 1,
) -> dict:
    """Restore tensors (and optimiser, scheduler, RNG when given); returns the progress dict.
    ``run_config`` / ``world``: what :func:`upgrade` reads an older checkpoint with. Raises
    :class:`~cvpt.errors.CheckpointError` for a checkpoint without its tuned tensors."""
    state = torch.load(path / STATE, map_location="cpu", weights_only=True)
    state = upgrade(state, path, run_config or {}, world)
    if identity is not None:
        check_identity(path, state["identity"], identity, allow_other_backbone)
    weights = path / state["weights"]
    if not weights.exists():
        raise CheckpointError(path, f"no {state['weights']}: the checkpoint is incomplete")
    config = read_config(path) if (path / CONFIG).exists() else None  # its weights' digest
    load_weights(model, path, config, state["weights"])
    if opt is not None:
        opt.load_state_dict(state["optimizer"])
    if sched is not None:
        sched.load_state_dict(state["scheduler"])
        rng = state["rng"]
        torch.set_rng_state(rng["torch"])
        if rng["numpy"] is not None:
            kind, keys, pos, has_gauss, cached = rng["numpy"]
            np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
        if rng["python"] is not None:
            version, internal, gauss = rng["python"]
            random.setstate((version, tuple(internal), gauss))
    return state["progress"]
