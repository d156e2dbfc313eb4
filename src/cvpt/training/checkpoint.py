"""Run checkpoints: the tuned tensors (safetensors) plus optimiser, scheduler, RNG and progress.

Each checkpoint is a folder written under a temporary name and renamed; ``last.json`` (also
replaced atomically) names the newest one. A checkpoint remembers the method, backbone and
options that made it, and is refused by a run that differs.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from cvpt.errors import RunError
from cvpt.io import write_json

KEEP = 2  # checkpoint folders kept per run


def model_identity(cfg, num_classes: int) -> dict:
    """What must match for a checkpoint to be loadable into a run."""
    return {
        "method": cfg.method,
        "backbone": cfg.backbone,
        "backbone_options": cfg.backbone_options,
        "model_options": cfg.model_options,
        "num_classes": num_classes,
    }


def save_checkpoint(run: Path, model, opt, sched, progress: dict, identity: dict) -> Path:
    """Write ``run/checkpoints/step-<n>/`` and point ``run/checkpoints/last.json`` at it."""
    folder = run / "checkpoints"
    name = f"step-{progress['global_step']:07d}"
    tmp = folder / f".{name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    save_file(
        model.tunable_state_dict(),
        str(tmp / "tunable.safetensors"),
        metadata={"identity": json.dumps(identity)},
    )
    torch.save(
        {
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "progress": progress,
            "identity": identity,
            "rng": {
                "torch": torch.get_rng_state(),
                "numpy": np.random.get_state()[1].tolist(),
                "python": list(random.getstate()[1]),
            },
        },
        tmp / "state.pt",
    )
    final = folder / name
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    write_json(folder / "last.json", {"checkpoint": name, **progress})
    for old in sorted(folder.glob("step-*"))[:-KEEP]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def last_checkpoint(run: Path) -> Path | None:
    pointer = run / "checkpoints" / "last.json"
    if not pointer.exists():
        return None
    return run / "checkpoints" / json.loads(pointer.read_text())["checkpoint"]


def check_identity(path: Path, saved: dict, expected: dict) -> None:
    diff = {k: (saved.get(k), v) for k, v in expected.items() if saved.get(k) != v}
    if diff:
        detail = "; ".join(f"{k}: checkpoint {a!r}, run {b!r}" for k, (a, b) in diff.items())
        raise RunError(f"{path}: checkpoint made by another model ({detail})")


def load_checkpoint(path: Path, model, opt=None, sched=None, identity: dict | None = None) -> dict:
    """Restore tensors (and optimiser, scheduler, RNG when given); returns the progress dict."""
    state = torch.load(path / "state.pt", map_location="cpu", weights_only=True)
    if identity is not None:
        check_identity(path, state["identity"], identity)
    model.load_tunable_state_dict(load_file(str(path / "tunable.safetensors")))
    if opt is not None:
        opt.load_state_dict(state["optimizer"])
    if sched is not None:
        sched.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"]["torch"])
    return state["progress"]


def read_identity(path: Path) -> dict:
    return torch.load(path / "state.pt", map_location="cpu", weights_only=True)["identity"]
