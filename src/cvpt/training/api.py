"""``cvpt.train``: ``cvpt train`` as a Python function, with the same options."""

from __future__ import annotations

from pathlib import Path

import yaml

from cvpt.errors import ConfigError
from cvpt.training.config import load_config, load_run_config
from cvpt.training.trainer import Run


def train(
    config: str | Path | None = None,
    out: str | Path | None = None,
    *,
    resume: bool = False,
    stop_after: int | None = None,
    overrides: list[str] | None = None,
    allow_other_backbone: bool = False,
    **options,
) -> dict:
    """Train (or resume) a run into the folder ``out``, as ``cvpt train`` does.

    ``config``: a YAML file (keys: ``cvpt train --list-keys``); ``overrides``: ``"key=value"``
    strings as given to ``--set``; ``options``: the same keys as Python values, e.g.
    ``train(out="runs/x", dataset="list", root="data", annotations="data", epochs=2)``.
    ``resume=True`` continues the run in ``out`` (with its saved config unless ``config`` is
    given); ``stop_after`` stops (checkpointed) after that optimiser step;
    ``allow_other_backbone`` resumes on a backbone other than the one the run was tuned on.

    Returns the run's summary (``steps``, ``epochs``, ``effective_batch``, ``last_eval`` with
    top-1/top-5, ``skipped`` videos), also written to ``out/summary.json``. Raises
    :class:`cvpt.errors.ConfigError` for unknown keys or values and
    :class:`cvpt.errors.RunExistsError` when ``out`` holds a run and ``resume`` is False, and
    :class:`cvpt.errors.RunError` when a resume would make another run (a key that changes the
    tuned weights differs from the run's ``config.yaml``, or the number of processes changes
    the effective batch). A resume never rewrites ``config.yaml``: its own values go to
    ``config.resume-step-<n>.yaml``.

    On a CPU the calling thread computes with subnormal floats flushed to zero from then on
    (key ``flush_denormal``, docs/training.md); ``torch.set_flush_denormal(False)`` undoes it.
    """
    if out is None:
        raise ConfigError("out is required: the run folder")
    flow = [yaml.safe_dump(v, default_flow_style=True, width=1 << 20) for v in options.values()]
    values = [text.strip().removesuffix("...").strip() for text in flow]
    sets = list(overrides or []) + [f"{k}={v}" for k, v in zip(options, values, strict=True)]
    if resume and config is None and (Path(out) / "config.yaml").exists():
        cfg = load_run_config(Path(out), sets)
    else:
        cfg = load_config(config, sets)
    run = Run(cfg, out, resume=resume, allow_other_backbone=allow_other_backbone)
    return run.train(stop_at=stop_after)
