"""What a tuning method is (PEFT-style: one options dataclass and one object per method) and the
registry the rest of cvpt reads instead of testing method names.

A method is a :class:`TuningMethod` subclass in its own module of :mod:`cvpt.models.methods`,
registered with one line in that package's ``__init__``. The model
(:class:`~cvpt.models.compressed.CompressedVideoModel`) owns what every method shares: the
frozen backbone, the MV/residual prompt embeddings, pooling and the head. The method says:

- ``options``: its dataclass (:class:`TuningOptions`'s shared fields plus its own), the keys of
  ``create_model(method, **options)``, ``model_options`` in a run's config and ``options`` in a
  saved ``config.json``;
- ``build(model)``: the modules it adds, attached to ``model`` (or to the backbone's blocks)
  under the names its saved tensors carry;
- ``tuned_modules(model)``: the modules it adds that train, all their parameters, besides
  the head (and the prompt embeddings, unless ``tunes_prompt_embeddings`` is False), or
  ``tuned_parameters(model)`` to train some of the frozen backbone's own weights;
  ``trains_backbone``: everything trains;
- ``before_block(model, i, streams)`` (optional): the hook before backbone block ``i``;
  ``after_blocks(model, streams)``: undo what the hook added after the last block;
- ``families``: the backbone families it supports (``None``: all), ``unsupported`` why not.
"""

from __future__ import annotations

import math
import types
import typing
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

import torch
from torch import nn

from cvpt.errors import ConfigError
from cvpt.models.backbone import VideoBackbone

# the model a method builds into and tunes: a cvpt.models.compressed.CompressedVideoModel,
# which imports this module (so it is named, not imported, here)
CompressedVideoModel = nn.Module


def option(
    default: Any,
    *,
    min: float | None = None,
    above: float | None = None,
    choices: tuple[str, ...] | None = None,
) -> Any:
    """A field of an options dataclass with its allowed values, which
    :meth:`TuningOptions.__post_init__` checks: ``min`` (inclusive) or ``above`` (exclusive)
    for a number, ``choices`` for a string. The type comes from the field's annotation."""
    meta = {"min": min, "above": above, "choices": choices}
    return field(default=default, metadata={k: v for k, v in meta.items() if v is not None})


def _allowed(tp: type, meta: dict) -> str:
    """What a field of type ``tp`` (bool, int, float or str) with ``meta`` takes, in words."""
    if tp is str:
        return (
            f"one of {', '.join(map(repr, meta.get('choices', ())))}"
            if "choices" in meta
            else "a string"
        )
    kind = {bool: "true or false", int: "an integer", float: "a finite number"}[tp]
    if "min" in meta:
        kind += f" >= {meta['min']}"
    if "above" in meta:
        kind += f" > {meta['above']}"
    return kind


def check_value(name: str, value: Any, tp: type, meta: dict, optional: bool = False) -> Any:
    """``value`` of the option ``name`` (annotated ``tp``: bool, int, float or str) as the
    field stores it (an int given for a float becomes a float); :class:`ConfigError` naming
    the option, the value and what is allowed otherwise. bool is strictly a bool (a YAML
    ``"no"`` string is not False), an int is not a bool, a float is finite. ``optional``: the
    field also takes None (said in the message; the caller lets None through)."""
    if tp is bool:
        ok = isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif tp is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        ok = ok and math.isfinite(value)
    else:
        ok = isinstance(value, str) and value in meta.get("choices", (value,))
    if ok and tp in (int, float):
        ok = value >= meta.get("min", -math.inf) and value > meta.get("above", -math.inf)
    if not ok:
        allowed = _allowed(tp, meta) + (" or null (None)" if optional else "")
        raise ConfigError(f"option {name}={value!r} is not allowed: it takes {allowed}")
    return float(value) if tp is float else value


def field_type(hint: Any) -> tuple[type, bool]:
    """``(base type, None allowed)`` of an annotation such as ``int | None``."""
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        rest = [a for a in args if a is not type(None)]
        return rest[0], len(rest) < len(args)
    return hint, False


@dataclass
class TuningOptions:
    """The options every method takes (the model's input streams, pooling and attention);
    each method's options dataclass adds its own fields, declared with :func:`option` where
    only some values are allowed. Every field is checked against its type and range when the
    dataclass is made (:class:`ConfigError` naming the option, the value and what it takes):
    one check for every method's options."""

    residual_prompt: bool = True  # False: no residual prompts (Fig. 5a, Table 4)
    # low-rank Emb_MV/Emb_R (smaller per-task checkpoints); None: full rank
    prompt_embed_rank: int | None = option(None, min=1)
    # mean over all 3N output tokens (Eq. 2), or "iframe" tokens only
    pool: str = option("all", choices=("all", "iframe"))
    # "iframe": the blocks see only I-frame tokens (a no-motion control)
    inputs: str = option("all", choices=("all", "iframe"))
    # Swin: streams share each window; "separate": no cross-talk
    stream_attention: str = option("joint", choices=("joint", "separate"))

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in fields(self):
            tp, optional = field_type(hints[f.name])
            value = getattr(self, f.name)
            if value is None and optional:
                continue
            setattr(self, f.name, check_value(f.name, value, tp, dict(f.metadata), optional))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


class TuningMethod:
    """One way of adapting the frozen backbone; see the module docstring. Stateless: the
    modules it builds live on the model, so one instance serves every model."""

    name: ClassVar[str]
    label: ClassVar[str]  # its row in tables and the demo ("VPT*": the paper's reimplementation)
    help: ClassVar[str]  # one line: what trains (cvpt info --all, docs)
    options: ClassVar[type[TuningOptions]] = TuningOptions
    families: ClassVar[tuple[str, ...] | None] = None  # backbone families it runs on; None: all
    unsupported: ClassVar[str] = ""  # why it does not run on the other families
    tunes_prompt_embeddings: ClassVar[bool] = True  # False: Emb_MV/Emb_R stay as initialised
    trains_backbone: ClassVar[bool] = False  # every weight trains (a higher learning rate)
    proposed: ClassVar[bool] = False  # the paper's own method (highlighted in figures)
    in_paper: ClassVar[bool] = True  # in the paper's Table 1; False: an added baseline (the
    # demo runs those among the ablations, not in its main table)
    # options recorded with every run (their default now; runs that did not record them were
    # trained with the value given here)
    recorded_before: ClassVar[dict[str, object]] = {}

    def check(self, backbone: VideoBackbone, options: TuningOptions) -> None:
        """Raise :class:`ConfigError` for a backbone family or option values this method cannot
        build on ``backbone`` (each value's own type and range are checked already, by the
        options dataclass); the default checks :attr:`families`."""
        if self.families is not None and backbone.family not in self.families:
            raise ConfigError(
                f"method {self.name!r} does not support the backbone family "
                f"{backbone.family!r} (it supports {', '.join(self.families)}): "
                f"{self.unsupported}; methods for {backbone.family}: "
                f"{', '.join(methods_for(backbone.family))}"
            )

    def build(self, model: CompressedVideoModel) -> None:
        """Attach this method's modules to ``model`` (nothing by default)."""

    def tuned_modules(self, model: CompressedVideoModel) -> list[nn.Module]:
        """The modules this method adds that train (every parameter of each does: return a
        block and the whole block trains)."""
        return []

    def tuned_parameters(self, model: CompressedVideoModel) -> list[nn.Parameter]:
        """Every parameter this method trains besides the head and the prompt embeddings: by
        default all of :meth:`tuned_modules`'. A method that trains some of the backbone's own
        weights (BitFit: the biases) overrides this instead."""
        return [p for m in self.tuned_modules(model) for p in m.parameters()]

    # the per-block hook: ``before_block(model, i, streams) -> streams``; None: no hook
    before_block = None

    def after_blocks(self, model: CompressedVideoModel, streams: list[torch.Tensor]):
        """The streams after the last block, without what the hook added."""
        return streams

    def extra_tokens(self, model: CompressedVideoModel) -> int:
        """Tokens the method adds to every block's input (reports)."""
        return 0


_METHODS: dict[str, TuningMethod] = {}


def register_method(cls: type[TuningMethod]) -> type[TuningMethod]:
    """Register ``cls`` (a :class:`TuningMethod` subclass) under its ``name``; tables list
    methods in registration order."""
    if cls.name in _METHODS:
        raise ValueError(f"a tuning method named {cls.name!r} is already registered")
    _METHODS[cls.name] = cls()
    return cls


def list_methods() -> list[str]:
    """Registered method names, in registration order (the paper's, then the others)."""
    return list(_METHODS)


def get_method(name: str) -> TuningMethod:
    """The registered method ``name``; :class:`ConfigError` listing them otherwise."""
    if name not in _METHODS:
        raise ConfigError(f"method must be one of {', '.join(_METHODS)}; got {name!r}")
    return _METHODS[name]


def methods_for(family: str) -> list[str]:
    """The registered methods that run on the backbone ``family``."""
    return [n for n, m in _METHODS.items() if m.families is None or family in m.families]


def owner_of(option: str) -> list[str]:
    """The registered methods whose options include ``option``."""
    return [n for n, m in _METHODS.items() if option in m.options.field_names()]


def make_options(name: str, options: dict) -> TuningOptions:
    """``name``'s options dataclass from ``options``; :class:`ConfigError` naming an option of
    no method, or of other methods only (it would be ignored without a word)."""
    method = get_method(name)
    valid = method.options.field_names()
    unknown = sorted(set(options) - set(valid))
    if unknown:
        elsewhere = {k: owner_of(k) for k in unknown if owner_of(k)}
        if elsewhere:
            where = "; ".join(f"{k} is an option of {', '.join(v)}" for k, v in elsewhere.items())
            raise ConfigError(
                f"options {unknown} do not apply to method {name!r} ({where}); its options: "
                f"{', '.join(valid)}"
            )
        raise ConfigError(f"unknown options {unknown}; valid for {name!r}: {', '.join(valid)}")
    return method.options(**options)


def full_options(name: str, options: dict) -> dict:
    """Every option of method ``name``, ``options`` over the defaults (an int given for a
    float option a float): what to compare, since an option given at its default makes the
    same model as one left out. ``options`` as given when they are not options of a
    registered method ``name`` (a comparison then names them as they are)."""
    if name not in _METHODS or not isinstance(options, dict):
        return options
    try:
        return make_options(name, options).to_dict()
    except ConfigError:
        return options


def saved_options(name: str, options: dict) -> dict:
    """The options of a saved model of method ``name`` that apply to it. Files written before
    the registry (main at 976b7c6 and older) carry every method's options in one flat dict;
    the other methods' had no effect on this model, so they are dropped. Unknown keys stay
    (and :func:`make_options` refuses them)."""
    own = set(get_method(name).options.field_names())
    foreign = {k for k in options if k not in own and owner_of(k)}
    return {k: v for k, v in options.items() if k not in foreign}
