"""Run checkpoints: the tuned model (a :func:`cvpt.load_model` folder: ``config.json`` and
``model.safetensors``) plus ``state.pt`` with the optimiser, scheduler, RNG and progress.

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
from safetensors.torch import load_file

from cvpt.errors import RunError
from cvpt.io import write_json
from cvpt.models.pretrained import WEIGHTS, backbone_identity, check_backbone

KEEP = 2  # checkpoint folders kept per run
STATE = "state.pt"


def model_identity(cfg, model, num_classes: int) -> dict:
    """What must match for a checkpoint to be loadable into a run: method, options, classes
    and the backbone's identity (its real architecture, where it came from, the fingerprint of
    its frozen weights)."""
    return {
        "method": cfg.method,
        "backbone_options": cfg.backbone_options,
        "model_options": cfg.model_options,
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
        },
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
    write_json(folder / "last.json", {"checkpoint": name, **progress})
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
    pointer = run / "checkpoints" / "last.json"
    if not pointer.exists():
        return None
    return run / "checkpoints" / json.loads(pointer.read_text())["checkpoint"]


def check_identity(path: Path, saved: dict, expected: dict, allow_other_backbone: bool = False):
    """Refuse a checkpoint made by another model: :class:`cvpt.errors.RunError` naming what
    differs, or :class:`cvpt.BackboneMismatchError` for another backbone (unless
    ``allow_other_backbone``)."""
    from cvpt.training.config import recorded_options

    before = recorded_options(saved.get("method", ""), before=True)
    if set(before) - set(saved.get("model_options") or {}):
        # saved before the method recorded them: the values of that time
        saved = {**saved, "model_options": {**before, **(saved.get("model_options") or {})}}
    backbone_keys = ("backbone", "backbone_source", "backbone_fingerprint")
    diff = {
        k: (saved.get(k), v)
        for k, v in expected.items()
        if k not in backbone_keys and saved.get(k) != v
    }
    if diff:
        detail = "; ".join(f"{k}: checkpoint {a!r}, run {b!r}" for k, (a, b) in diff.items())
        raise RunError(f"{path}: checkpoint made by another model ({detail})")
    check_backbone(path, saved, expected, allow_other_backbone)


def load_checkpoint(
    path: Path,
    model,
    opt=None,
    sched=None,
    identity: dict | None = None,
    *,
    allow_other_backbone: bool = False,
) -> dict:
    """Restore tensors (and optimiser, scheduler, RNG when given); returns the progress dict."""
    state = torch.load(path / STATE, map_location="cpu", weights_only=True)
    if identity is not None:
        check_identity(path, state["identity"], identity, allow_other_backbone)
    weights = path / WEIGHTS
    if not weights.exists() and (path / "tunable.safetensors").exists():
        weights = path / "tunable.safetensors"  # checkpoints written before cvpt.load_model
    model.load_tunable_state_dict(load_file(str(weights)))
    if opt is not None:
        opt.load_state_dict(state["optimizer"])
    if sched is not None:
        sched.load_state_dict(state["scheduler"])
        rng = state["rng"]
        torch.set_rng_state(rng["torch"])
        if isinstance(rng.get("numpy"), list) and isinstance(rng["numpy"][0], str):
            kind, keys, pos, has_gauss, cached = rng["numpy"]
            np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
        if isinstance(rng.get("python"), list) and len(rng["python"]) == 3:
            version, internal, gauss = rng["python"]
            random.setstate((version, tuple(internal), gauss))
    return state["progress"]
