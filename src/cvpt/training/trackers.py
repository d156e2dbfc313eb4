"""Experiment trackers for ``cvpt train``: the ``logger`` config key.

``logger`` names none, one or several (comma-separated) of ``tensorboard``, ``wandb``,
``mlflow``. Each is an optional extra (``pip install 'cvpt[wandb]'``) and is imported only when
chosen. Every tracker receives the resolved config once (what ``config.yaml`` holds, derived
values included) and each metrics row of ``metrics.jsonl`` as it is logged, keyed
``train/loss``, ``train/lr``, ``eval/top1``... at the optimiser step. Only rank 0 logs.

Where they write: TensorBoard to ``RUN/tensorboard``; Weights & Biases to ``RUN/wandb`` (project
``$WANDB_PROJECT`` or ``cvpt``, run named after the folder; ``WANDB_MODE=offline`` works with no
account or network); MLflow to ``$MLFLOW_TRACKING_URI`` (experiment ``$MLFLOW_EXPERIMENT_NAME``
or ``cvpt``). A resumed run continues the same W&B and MLflow run (ids kept in
``RUN/trackers.json``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import yaml

from cvpt.errors import ConfigError, require
from cvpt.formats import Format

TRACKER_IDS = Format("cvpt-tracker-ids", 1)  # RUN/trackers.json: each tracker's run id

LOGGERS = ("tensorboard", "wandb", "mlflow")
# the module each tracker imports (its optional extra is named as the tracker)
MODULES = {"tensorboard": "torch.utils.tensorboard", "wandb": "wandb", "mlflow": "mlflow"}


def parse_loggers(value: str | list | None) -> list[str]:
    """``"tensorboard,wandb"`` / ``["wandb"]`` / ``None`` / ``"none"`` → names, validated."""
    if value is None:
        return []
    items = value if isinstance(value, list) else str(value).split(",")
    names = [str(n).strip().lower() for n in items if str(n).strip().lower() not in ("", "none")]
    unknown = sorted(set(names) - set(LOGGERS))
    if unknown:
        raise ConfigError(f"logger: unknown {unknown}; choose from none, {', '.join(LOGGERS)}")
    return list(dict.fromkeys(names))


def import_tracker(name: str):
    """The module of tracker ``name``, or :class:`cvpt.errors.MissingDependencyError` naming
    its extra (``pip install 'cvpt[wandb]'``)."""
    return require(MODULES[name], extra=name, feature=f"logger={name}")


def check_installed(value: str | list | None) -> list[str]:
    """:func:`parse_loggers`, and each chosen tracker imported: a missing one fails before a
    run does any work or writes anything."""
    names = parse_loggers(value)
    for name in names:
        import_tracker(name)
    return names


def metrics_of(row: dict) -> dict[str, float]:
    """A metrics row → ``{"train/<name>" or "eval/<name>": value}`` for its numeric fields."""
    kind = "train" if row["kind"] == "step" else row["kind"]
    return {
        f"{kind}/{k}": float(v)
        for k, v in row.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and k != "step"
    }


class Trackers:
    """The chosen trackers of one run, opened in ``out``: ``log(row)``, ``close()``."""

    def __init__(self, names: list[str], out: Path, config: dict):
        self.out, self.backends = Path(out), []
        ids_file = self.out / "trackers.json"
        ids = (
            TRACKER_IDS.upgrade(json.loads(ids_file.read_text()), ids_file)
            if ids_file.exists()
            else {}
        )
        try:
            for name in names:
                self.backends.append(_OPEN[name](self.out, config, ids.get(name)))
        except BaseException:
            self.close()  # those that started: their files are closed before any clean-up
            raise
        ids = {n: b.run_id for n, b in zip(names, self.backends, strict=True) if b.run_id}
        if ids:
            from cvpt.io import write_json

            write_json(ids_file, TRACKER_IDS.stamp(ids))

    def log(self, row: dict) -> None:
        values = metrics_of(row)
        for b in self.backends:
            b.log(values, int(row["step"]))

    def close(self) -> None:
        for b in self.backends:
            b.close()
        self.backends = []


class _TensorBoard:
    run_id = None

    def __init__(self, out: Path, config: dict, run_id: str | None):
        tb = import_tracker("tensorboard")
        self.writer = tb.SummaryWriter(str(out / "tensorboard"))
        text = yaml.safe_dump(config, sort_keys=False)
        self.writer.add_text("config", "```\n" + text + "\n```", 0)

    def log(self, values: dict, step: int) -> None:
        for k, v in values.items():
            self.writer.add_scalar(k, v, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class _WandB:
    def __init__(self, out: Path, config: dict, run_id: str | None):
        wandb = import_tracker("wandb")
        (out / "wandb").mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(
            project=os.environ.get("WANDB_PROJECT", "cvpt"),
            name=out.name,
            dir=str(out),
            config=config,
            id=run_id,
            resume="allow" if run_id else None,
        )
        self.run_id = self.run.id

    def log(self, values: dict, step: int) -> None:
        self.run.log(values, step=step)

    def close(self) -> None:
        self.run.finish()


class _MLflow:
    def __init__(self, out: Path, config: dict, run_id: str | None):
        mlflow = import_tracker("mlflow")
        self.mlflow = mlflow
        mlflow.set_experiment(os.environ.get("MLFLOW_EXPERIMENT_NAME", "cvpt"))
        self.run = mlflow.start_run(run_id=run_id, run_name=None if run_id else out.name)
        self.run_id = self.run.info.run_id
        if run_id is None:  # params are immutable in MLflow: logged once, when the run starts
            mlflow.log_params({k: str(v)[:500] for k, v in _flatten(config).items()})
            mlflow.log_text(yaml.safe_dump(config, sort_keys=False), "config.yaml")

    def log(self, values: dict, step: int) -> None:
        self.mlflow.log_metrics(values, step=step)

    def close(self) -> None:
        self.mlflow.end_run()


_OPEN = {"tensorboard": _TensorBoard, "wandb": _WandB, "mlflow": _MLflow}


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out
