"""One run = one :class:`TrainConfig`: defaults ← a YAML file ← ``--set`` overrides.

The layers are merged by OmegaConf against the dataclass schema, so a mapping merges key by
key (``--set model_options={sccp_update: replace}`` keeps a config's ``sccp_layers: 4``), a dotted
key sets one field (``model_options.sccp_layers=4``, ``clip.num_gops=8``), values are checked
against the field types, and an unknown key is an error naming the valid ones. Path fields
expand ``~`` and ``$VARS``. A config is a file or the name of one shipped with the package
(``cvpt train --list-configs``).
"""

from __future__ import annotations

import io
import os
import tokenize
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from functools import cache
from importlib import resources
from inspect import getsource
from pathlib import Path

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from cvpt.codec.sampling import ClipSpec
from cvpt.errors import ConfigError, MissingFileError
from cvpt.formats import FORMAT_KEYS, Format
from cvpt.io import atomic_output

PATH_KEYS = ("root", "annotations", "backbone_checkpoint")  # expanded: ~ and $VARS


@dataclass
class TrainConfig:
    # data
    dataset: str = "ucf101"  # ucf101 | hmdb51 | ssv2 | list | folder
    root: str = ""  # folder of prepared videos (cvpt prepare)
    annotations: str = ""  # official split files (folder) or a list file
    split: int = 1  # official split 1..3 (UCF-101, HMDB-51)
    train_subset: str = "train"  # subset of the split to train on
    eval_subset: str = "test"  # subset evaluated (SSv2: validation)
    size: int = 224  # crop side fed to the model
    short_side: int = 256  # clips are resized to this short side before cropping (paper: 256)
    flip: bool | None = None  # None: the dataset's rule (SSv2 never flips: left/right labels)
    mv_clip: float = 20.0  # MVs clipped to ±mv_clip px then /mv_clip (CoViAR: 20 at 256 px)
    clip: ClipSpec = field(default_factory=ClipSpec)  # what one clip is (read_clip's options)
    # model
    method: str = "cvpt"  # a registered tuning method (cvpt info --all lists them)
    backbone: str = "vit_base"  # registered architecture (ignored when a checkpoint is loaded)
    backbone_checkpoint: str | None = None  # official .pth, HF folder or cvpt safetensors
    backbone_options: dict = field(default_factory=dict)  # backbone config fields: {depth: 4}
    model_options: dict = field(default_factory=dict)  # the method's, e.g. {sccp_layers: 1}
    # optimisation (paper §4.2)
    epochs: int = 30  # passes over the training subset
    batch_size: int = 8  # per process; gradient accumulation makes up the effective batch
    effective_batch: int = 240  # the paper's
    base_lr: float = 1e-3  # at effective batch 240, scaled linearly with the real one
    weight_decay: float = 1e-4  # not on norms, biases or ω
    warmup_epochs: float = 5  # linear lr warm-up, then cosine decay
    min_lr: float = 0.0  # lr at the end of the cosine
    grad_clip: float | None = None  # off, as the paper
    label_smoothing: float = 0.0  # off, as the paper
    max_steps: int | None = None  # stop after this many optimiser steps (smoke tests)
    # evaluation
    eval_every: int = 1  # evaluate every this many epochs (and after the last)
    eval_views: int = 1  # clips per video at evaluation (paper: 2)
    eval_crops: int = 1  # crops per clip (paper: 3)
    # checkpoints (also at every epoch end, and at the next step after SIGTERM / SIGINT)
    checkpoint_every_steps: int = 0  # also every N optimiser steps (0: off)
    checkpoint_every_minutes: float = 30.0  # also after M minutes without one (0: off)
    # runtime
    workers: int = 2  # DataLoader processes per training process
    # uint8 I-frames, int16 residuals and the MVs' cells from the workers (under a third of the
    # bytes), made the same float32 inputs on the device (cvpt.data.transforms.normalize_inputs)
    compact_inputs: bool = True  # workers send compact inputs, normalised on the device
    seed: int = 0  # new weights, a random backbone, clip sampling, data order
    device: str = "auto"  # auto | cpu | cuda
    amp: bool = True  # bf16 autocast on CUDA (never on CPU)
    frozen_bf16: bool = True  # with amp: frozen matmul weights in bf16 (same results, less memory)
    flush_denormal: bool = True  # on CPU, subnormal floats as zero (x86: 1.4-1.5x slower on them)
    grad_checkpointing: bool | int = False  # all (True) or the first k blocks recompute in backward
    logger: str = "none"  # trackers: none | tensorboard | wandb | mlflow (comma-separated)

    def __post_init__(self):
        # what the method records with every run (CVPT: the reading of SCCP's update)
        self.model_options = {**recorded_options(self.method), **self.model_options}

    def to_dict(self) -> dict:
        return asdict(self)


def recorded_options(method: str, *, before: bool = False) -> dict:
    """The options ``method`` records with every run, at today's defaults, or (``before``)
    at the values runs made before they were recorded were trained with (CVPT's
    ``sccp_update``: SCCP replaced the MV/residual streams then, docs/design.md). Empty for
    an unknown method (the model refuses it)."""
    from cvpt.models.methods import get_method, list_methods

    if method not in list_methods():
        return {}
    tuning = get_method(method)
    if before:
        return dict(tuning.recorded_before)
    return {k: getattr(tuning.options(), k) for k in tuning.recorded_before}


def valid_keys() -> list[str]:
    return [f.name for f in fields(TrainConfig)]


# ---------------------------------------------------------------- shipped configs


def _packaged():
    return resources.files("cvpt") / "configs"


def list_configs() -> list[str]:
    """Names of the configs shipped with the package (``cvpt train --config NAME``)."""
    return sorted(
        p.name.removesuffix(".yaml") for p in _packaged().iterdir() if p.name.endswith(".yaml")
    )


def resolve_config(name: str | Path) -> Path:
    """A config file from a path, or the name of a shipped config (with or without .yaml).
    ``MissingFileError`` (a ``FileNotFoundError``) lists the shipped names."""
    path = Path(os.path.expandvars(os.path.expanduser(str(name))))
    if path.is_file():
        return path
    stem = path.name.removesuffix(".yaml")
    if path.parent == Path(".") and stem in list_configs():
        return Path(str(_packaged() / f"{stem}.yaml"))
    raise MissingFileError(
        f"{name}: no such config file, nor a shipped config; shipped: {', '.join(list_configs())}"
    )


# ---------------------------------------------------------------- loading


def load_config(
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    *,
    base: dict | None = None,
) -> TrainConfig:
    """The defaults, merged with ``base`` (a saved run's values), the YAML file ``path`` (a path
    or a shipped config's name), then ``key=value`` overrides (values parsed as YAML:
    ``epochs=3``, ``flip=false``, ``model_options={sccp_layers: 1}``,
    ``model_options.sccp_layers=1``). ``ConfigError`` (a ``ValueError``) names an unknown key or
    a wrong type."""
    layers = []
    if base:
        layers.append(("a saved run's config.yaml", base))
    if path is not None:
        file = resolve_config(path)
        loaded = yaml.safe_load(file.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{file}: a config must be a mapping of key: value")
        if any(k in loaded for k in (*FORMAT_KEYS, *DERIVED)):  # a run's own config.yaml
            loaded = run_config_keys(upgrade(loaded, file))
        layers.append((str(file), loaded))
    if overrides:
        for item in overrides:
            if "=" not in item:
                raise ConfigError(f"--set expects key=value, got {item!r}")
        layers.append(("--set", list(overrides)))
    merged, where = OmegaConf.structured(TrainConfig), ""
    try:
        for where, layer in layers:
            layer = OmegaConf.from_dotlist(layer) if where == "--set" else OmegaConf.create(layer)
            merged = OmegaConf.merge(_for_method(merged, layer.get("method")), layer)
        where = ""
        cfg: TrainConfig = OmegaConf.to_object(merged)
    except OmegaConfBaseException as e:
        raise ConfigError(_explain(e, f" in {where}" if where else "")) from None
    for key in PATH_KEYS:
        value = getattr(cfg, key)
        if value:
            setattr(cfg, key, os.path.expandvars(os.path.expanduser(value)))
    return cfg


def _for_method(merged, method: str | None):
    """``merged`` before a layer that sets ``method``: when that is another method, the model
    options earlier layers set for the old one and the new one does not take are dropped (a
    cvpt config's ``sccp_update`` under ``--set method=lora``); those the layer itself sets
    are the new method's, and checked by it."""
    from cvpt.models.methods import get_method, list_methods

    if method is None or method == merged.method or method not in list_methods():
        return merged
    takes = set(get_method(method).options.field_names())
    old = OmegaConf.to_container(merged.model_options)
    merged.model_options = {k: v for k, v in old.items() if k in takes}
    return merged


def _explain(e: OmegaConfBaseException, where: str) -> str:
    key = getattr(e, "full_key", None) or getattr(e, "key", None)
    msg = str(e).splitlines()[0]
    if "not in struct" in msg or ("Key '" in msg and "not in" in msg):
        valid = valid_keys()
        if str(key).startswith("clip."):
            valid = [f"clip.{f.name}" for f in fields(ClipSpec)]
        return f"unknown config key(s) [{key!r}]{where}; valid keys: {', '.join(valid)}"
    return f"config key {key!r}{where}: {msg}"


def parse_overrides(pairs: list[str]) -> dict:
    """``['a=1', 'b.c=true']`` → ``{'a': 1, 'b': {'c': True}}`` (values parsed as YAML), for
    commands whose ``--set`` sets options other than a run's."""
    for item in pairs:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got {item!r}")
    return OmegaConf.to_container(OmegaConf.from_dotlist(list(pairs)))


def input_spec(cfg: TrainConfig) -> dict:
    """What a model trained with ``cfg`` expects to read (saved with it: cvpt.load_model)."""
    return {
        "clip": cfg.clip.to_dict(),
        "size": cfg.size,
        "short_side": cfg.short_side,
        "mv_clip": cfg.mv_clip,
        "normalisation": "I-frames: ImageNet mean/std; MVs: clipped to ±mv_clip px, /mv_clip",
    }


# a run's config.yaml: its keys, the derived values (DERIVED) and the format's version
RUN_CONFIG = Format("cvpt-run-config", 1)


def save_config(cfg: TrainConfig, path: str | Path, **extra) -> None:
    """The config that runs, every key written (plus derived values under their own keys such
    as ``resolved``, and the format's version), atomically."""
    data = RUN_CONFIG.stamp({**cfg.to_dict(), **extra})
    with atomic_output(path) as tmp:
        tmp.write_text(yaml.safe_dump(data, sort_keys=False))


DERIVED = ("resolved", "identity")  # what save_config adds beside the config's own keys


def read_run_config(run: str | Path) -> dict:
    """A run's ``config.yaml`` (its keys and the derived values), upgraded (:func:`upgrade`).
    Raises :class:`MissingFileError` for a folder without one."""
    file = Path(run) / "config.yaml"
    if not file.exists():
        raise MissingFileError(f"{run}: no config.yaml (not a run folder made by cvpt train)")
    data = yaml.safe_load(file.read_text()) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{file}: a run's config must be a mapping of key: value")
    return upgrade(data, file)


def upgrade(data: dict, where) -> dict:
    """A run's ``config.yaml`` (read from ``where``) in the current version's shape: every
    rule for reading one an older cvpt wrote. Version 0 (no ``format_version``): keys recorded
    later than the run was made take the behaviour of its time, not today's default:
    ``flush_denormal`` false, and the options its method records with every run the values of
    that time (:func:`recorded_options` ``before``: a ``cvpt`` run's ``sccp_update``,
    "replace"). Raises :class:`~cvpt.errors.FormatVersionError` for a newer version."""
    if RUN_CONFIG.version_of(data, where) == 0:
        data = dict(data)
        data.setdefault("flush_denormal", False)
        before = recorded_options(data.get("method", TrainConfig.method), before=True)
        data["model_options"] = {**before, **(data.get("model_options") or {})}
    return RUN_CONFIG.current(data)


def load_run_config(run: str | Path, overrides: list[str] | None = None) -> TrainConfig:
    """The config a run was made with (its ``config.yaml`` minus the derived values and the
    version), with ``key=value`` overrides."""
    return load_config(None, overrides, base=run_config_keys(read_run_config(run)))


def run_config_keys(data: dict) -> dict:
    """The config keys of a run's ``config.yaml`` (``data``, upgraded: :func:`upgrade` drops
    the version's keys) without the derived values (:data:`DERIVED`): a run's config.yaml is
    a ``--config`` that trains the same config."""
    return {k: v for k, v in data.items() if k not in DERIVED}


# ---------------------------------------------------------------- --list-keys


def describe_keys(cfg: TrainConfig | None = None) -> list[tuple[str, object, str]]:
    """``(key, value, one-line description)`` of every key, nested ones dotted: the clip
    spec's fields, every model option of ``cfg.method`` (its options dataclass: the shared
    :class:`~cvpt.models.methods.TuningOptions` and its own) and backbone option (the
    family's config, at ``cfg.backbone``'s values unless overridden)."""
    # imported when needed: the models load torch, which reading a config does not need
    from cvpt.models.methods import TuningOptions, get_method, list_methods
    from cvpt.models.registry import backbone_config

    cfg = cfg or TrainConfig()
    rows = []
    docs = field_docs(TrainConfig)
    for f in fields(TrainConfig):
        value = getattr(cfg, f.name)
        if f.name == "clip":
            sub = field_docs(ClipSpec)
            rows += [(f"clip.{k}", v, sub.get(k, "")) for k, v in asdict(value).items()]
        elif f.name == "model_options":
            kind = get_method(cfg.method).options if cfg.method in list_methods() else TuningOptions
            sub = field_docs(kind)
            merged = {**kind().to_dict(), **value}
            rows += [(f"model_options.{k}", v, sub.get(k, "")) for k, v in merged.items()]
        elif f.name == "backbone_options":
            try:
                arch = backbone_config(cfg.backbone)
            except ValueError:
                arch = backbone_config(TrainConfig.backbone)  # the default's fields, documented
            sub = field_docs(type(arch))  # the family's config class
            merged = {**arch.to_dict(), **value}
            rows += [(f"backbone_options.{k}", v, sub.get(k, "")) for k, v in merged.items()]
        else:
            rows.append((f.name, value, docs.get(f.name, "")))
    return rows


@cache
def field_docs(cls) -> dict[str, str]:
    """``{field: its comment}`` of a dataclass, read from its source and its dataclass bases'
    (the comments are the fields' documentation; one place, no second copy): the comment
    that ends the field's line, or, for a field whose line has none (a long declaration such
    as ``option(...)``), the comment lines right above it."""
    assert is_dataclass(cls)
    docs: dict[str, str] = {}
    for base in reversed(cls.__mro__[1:]):  # inherited fields: a method's shared options
        if is_dataclass(base):
            docs.update(field_docs(base))
    names = {f.name for f in fields(cls)}
    line_name: dict[int, str] = {}
    above: dict[int, str] = {}  # comment lines of the class body, by line
    own: dict[str, str] = {}
    tokens = list(tokenize.generate_tokens(io.StringIO(getsource(cls)).readline))
    for i, tok in enumerate(tokens):
        # a field: NAME ':' at the class body's indentation
        if tok.type == tokenize.NAME and tok.string in names and tok.start[1] == 4:
            if i + 1 < len(tokens) and tokens[i + 1].string == ":":
                line_name[tok.start[0]] = tok.string
        elif tok.type == tokenize.COMMENT and tok.start[0] in line_name:
            own[line_name[tok.start[0]]] = tok.string.lstrip("#").strip()
        elif tok.type == tokenize.COMMENT and tok.start[1] == 4:
            above[tok.start[0]] = tok.string.lstrip("#").strip()
    for line, name in line_name.items():
        first = line
        while first - 1 in above:
            first -= 1
        if name not in own and first < line:
            own[name] = " ".join(above[n] for n in range(first, line))
    return {**docs, **own}
