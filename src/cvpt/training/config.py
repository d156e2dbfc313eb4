"""One run = one :class:`TrainConfig`, from a YAML file plus ``--set key=value`` overrides."""

from __future__ import annotations

import ast
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import yaml

from cvpt.errors import ConfigError


@dataclass
class TrainConfig:
    # data
    dataset: str = "ucf101"  # ucf101 | hmdb51 | ssv2 | list | folder
    root: str = ""  # folder of prepared videos (cvpt prepare)
    annotations: str = ""  # official split files (folder) or a list file
    split: int = 1  # official split 1..3 (UCF-101, HMDB-51)
    train_subset: str = "train"
    eval_subset: str = "test"  # SSv2: validation
    size: int = 224  # crop side fed to the model
    short_side: int = 256  # clips are resized to this short side before cropping (paper: 256)
    flip: bool | None = None  # None: the dataset's rule (SSv2 never flips: left/right labels)
    mv_clip: float = 20.0  # MVs clipped to ±mv_clip px then /mv_clip (CoViAR: 20 at 256 px)
    # model
    method: str = "cvpt"  # cvpt | linear | vpt | adaptformer | full
    backbone: str = "vit_base"
    backbone_checkpoint: str | None = None  # official .pth, HF folder or cvpt safetensors
    backbone_options: dict = field(default_factory=dict)  # e.g. {depth: 4} for smoke runs
    model_options: dict = field(default_factory=dict)  # TuningOptions, e.g. {sccp_layers: 1}
    # optimisation (paper §4.2)
    epochs: int = 30
    batch_size: int = 8  # per process; gradient accumulation makes up the effective batch
    effective_batch: int = 240  # the paper's
    base_lr: float = 1e-3  # at effective batch 240, scaled linearly with the real one
    weight_decay: float = 1e-4  # not on norms, biases or ω
    warmup_epochs: float = 5
    min_lr: float = 0.0
    grad_clip: float | None = None  # off, as the paper
    label_smoothing: float = 0.0  # off, as the paper
    max_steps: int | None = None  # stop after this many optimiser steps (smoke tests)
    # evaluation
    eval_every: int = 1  # epochs
    eval_views: int = 1  # clips per video at evaluation (paper: 2)
    eval_crops: int = 1  # crops per clip (paper: 3)
    # runtime
    workers: int = 2  # DataLoader processes per training process
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    amp: bool = True  # bf16 autocast on CUDA (never on CPU)
    frozen_bf16: bool = True  # with amp: frozen matmul weights in bf16 (same results, less memory)
    grad_checkpointing: bool | int = False  # all (True) or the first k blocks recompute in backward
    logger: str = "none"  # none | tensorboard | wandb | mlflow, comma-separated for several

    def to_dict(self) -> dict:
        return asdict(self)


def valid_keys() -> list[str]:
    return [f.name for f in fields(TrainConfig)]


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """Read ``path`` (YAML) and apply ``key=value`` overrides (values parsed as YAML, so
    ``epochs=3``, ``flip=false``, ``model_options={sccp_layers: 1}`` work). Unknown keys are an
    error that lists the valid ones."""
    data: dict = {}
    if path is not None:
        loaded = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: a config must be a mapping of key: value")
        data.update(loaded)
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        data[key.strip()] = _parse_value(value)
    unknown = sorted(set(data) - set(valid_keys()))
    if unknown:
        raise ConfigError(
            f"unknown config key(s) {unknown}{f' in {path}' if path else ''}; "
            f"valid keys: {', '.join(valid_keys())}"
        )
    return TrainConfig(**data)


def _parse_value(text: str):
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return text


def save_config(cfg: TrainConfig, path: str | Path, **extra) -> None:
    """The resolved config (plus derived values such as the real effective batch), atomically."""
    from cvpt.io import atomic_output

    with atomic_output(path) as tmp:
        tmp.write_text(yaml.safe_dump({**cfg.to_dict(), **extra}, sort_keys=False))


def load_run_config(run: str | Path, overrides: list[str] | None = None) -> TrainConfig:
    """The config a run was made with (its ``config.yaml`` minus the derived values), with
    ``key=value`` overrides."""
    data = yaml.safe_load((Path(run) / "config.yaml").read_text())
    data.pop("resolved", None)
    cfg = TrainConfig(**data)
    return load_config(
        None, [f"{k}={_dump(v)}" for k, v in cfg.to_dict().items()] + list(overrides or [])
    )


def _dump(value) -> str:
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
