"""A tuned model that describes itself: the folder ``model.save_pretrained(dir)`` writes and
:func:`cvpt.load_model` reads (its format, ``cvpt-tuned-model``, and every rule for reading its
older versions: :func:`upgrade`).

The folder is laid out as a Hugging Face model folder:

- ``config.json``: the format's version, the method, its options, the clip geometry it is
  built for (``clip``: a :class:`~cvpt.codec.sampling.ClipSpec`), the class names, the input it
  expects (clip specification, crop size, MV scaling) and the backbone's identity
  (:mod:`cvpt.models.identity`): its architecture, where it came from (a checkpoint path, or a
  seeded random initialisation) and a fingerprint of its frozen weights;
- ``model.safetensors``: the tuned tensors only (a per-task checkpoint is kilobytes to a few
  MB; the frozen backbone is shared and loaded from where it came from).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from cvpt.codec.sampling import ClipSpec
from cvpt.errors import CheckpointError, ConfigError
from cvpt.formats import Format
from cvpt.io import atomic_output
from cvpt.models.hub import parse_hub_id
from cvpt.models.identity import IDENTITY_KEYS, backbone_identity
from cvpt.models.methods import get_method, list_methods, saved_options

TUNED_MODEL = Format("cvpt-tuned-model", 1)
FORMAT = "cvpt-tuned-model/1"  # the "format" key: what says a config.json is one of ours
WEIGHTS = "model.safetensors"
CONFIG = "config.json"
# every field of the current version's config.json (what readers may index)
FIELDS = (
    "method", "options", "clip", "num_classes", "class_names", "input", "backbone_family",
    "backbone_config", "backbone_options", "backbone_checkpoint", "seed", *IDENTITY_KEYS,
)  # fmt: skip
# sha256 of model.safetensors' bytes, in config.json (written last): a reader that meets the
# config of one save beside the weights of another (a save in progress) refuses the pair.
# Optional: files written before it load as they did.
DIGEST = "weights_sha256"


def save_pretrained(
    model,
    folder: str | Path,
    *,
    class_names: list[str] | None = None,
    input_spec: dict | None = None,
    extra_metadata: dict | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``config.json`` and ``model.safetensors`` into ``folder`` (created; each file
    written atomically). ``class_names`` and ``input_spec`` default to what the model carries
    (set by :func:`cvpt.load_model` or a training run). A folder holding an earlier save is
    replaced; one whose ``config.json`` / ``model.safetensors`` are not a cvpt tuned model's
    raises :class:`CheckpointError` naming the file, unless ``overwrite``."""
    folder = Path(folder)
    if not overwrite:
        refuse_foreign_files(folder)
    folder.mkdir(parents=True, exist_ok=True)
    origin = getattr(model, "origin", {}) or {}
    spec = input_spec if input_spec is not None else model.input_spec
    clip = model.clip.to_dict()
    if spec and spec.get("clip") is not None and spec["clip"] != clip:
        raise ValueError(
            f"{folder}: input_spec['clip'] {spec['clip']} is not the model's clip {clip} "
            "(model.clip, set by create_model(clip=...)): the model would be read with clips "
            "of another geometry than it was built for"
        )
    config = TUNED_MODEL.stamp(
        {
            "format": FORMAT,
            "method": model.method,
            "options": model.options.to_dict(),
            "clip": clip,
            "num_classes": model.backbone.cfg.num_classes,
            "class_names": class_names if class_names is not None else model.class_names,
            "input": spec,
            "backbone_family": model.backbone.family,
            "backbone_config": model.backbone.cfg.to_dict(),
            "backbone_options": origin.get("backbone_options") or {},
            "backbone_checkpoint": origin.get("backbone_checkpoint"),
            "seed": origin.get("seed"),
            **backbone_identity(model),
        }
    )
    tensors = model.tunable_state_dict()
    data = save_safetensors(
        {k: v.contiguous() for k, v in tensors.items()},
        metadata={"format": "pt", **(extra_metadata or {})},
    )
    config[DIGEST] = hashlib.sha256(data).hexdigest()
    with atomic_output(folder / WEIGHTS) as tmp:
        tmp.write_bytes(data)
    with atomic_output(folder / CONFIG) as tmp:  # last: its digest names these weights
        tmp.write_text(json.dumps(config, indent=2))
    return folder


def refuse_foreign_files(folder: Path) -> None:
    """:class:`CheckpointError` naming the file when ``folder`` holds a ``config.json`` that
    is not a cvpt tuned model's (no ``format`` ``cvpt-tuned-model/...``), or a
    ``model.safetensors`` beside none: someone's own files, which a save would replace."""
    config, weights = folder / CONFIG, folder / WEIGHTS
    if config.exists():
        try:
            ours = str(json.loads(config.read_text()).get("format", "")).startswith(
                FORMAT.split("/")[0] + "/"
            )
        except (ValueError, AttributeError, OSError):  # not JSON, not an object, unreadable
            ours = False
        if ours:
            return
        found, what = config, f"not a cvpt tuned model's config (no format {FORMAT})"
    elif weights.exists():
        found, what = weights, f"weights with no cvpt {CONFIG} beside them"
    else:
        return
    raise CheckpointError(
        found,
        f"{what}; save_pretrained would replace it: save into another folder, or pass "
        "overwrite=True",
    )


def recorded_backbone(where, recorded: str | None) -> str | None:
    """``recorded`` (where a tuned model's backbone came from: a hub id, a path or ``None``
    for a seeded random one) when this machine can load it; :class:`CheckpointError` naming
    the fix for a file that is not here (a model tuned on another machine's file)."""
    if recorded is None or parse_hub_id(recorded) is not None or Path(recorded).exists():
        return recorded
    raise CheckpointError(
        where,
        f"tuned on the backbone {recorded}, which is not on this machine: pass "
        "backbone_checkpoint= (cvpt predict --backbone-checkpoint) with a copy of it (its "
        "fingerprint is checked), or tune on a hub id (org/name) to share the model whole",
    )


def upgrade(config: dict, where) -> dict:
    """``config`` (a ``config.json`` read from ``where``) in the current version's shape: every
    rule for reading a ``config.json`` an older cvpt wrote is here, and only here. Raises
    :class:`~cvpt.errors.FormatVersionError` for a newer version and
    :class:`~cvpt.errors.CheckpointError` naming ``where`` and the field for a file that is no
    cvpt tuned model, a current-version file without one of its method's options, an option
    of no such method, or a field of the wrong shape (:func:`check_fields`).

    Version 0 (no ``format_version``), as written before each field was recorded:

    - no ``clip``: every model then was built for 3 P-frames per GOP (the class default) and
      read clips of its run's input spec (``input.clip``) when one was recorded; with none, the
      paper's default (4 GOPs × 3 P-frames), the only geometry of that time;
    - a ``clip`` without a key of today's :class:`ClipSpec`: its default (how it was read);
    - an option not recorded yet: the method's ``recorded_before`` value (what models were
      trained with then: CVPT's ``sccp_update``, "replace"), else today's default;
    - the option ``sccp_skip`` (before its rename): ``true`` is ``sccp_update="add"``, ``false``
      ``"replace"``;
    - every method's options in one flat ``options`` (before the method registry): the other
      methods' are dropped (they had no effect on this model: :func:`~cvpt.models.methods.
      saved_options`);
    - no ``backbone_family``: a ViT (the only family then);
    - a field not recorded yet (class names, input spec, backbone options, source, seed,
      identity): ``None``, which readers take as not known (no fingerprint: not checked).
    """
    version = TUNED_MODEL.version_of(config, where)  # a newer file: refused as newer
    if config.get("format") != FORMAT:  # a fixed marker: format_version holds the version
        found = config.get("format")
        raise CheckpointError(
            where, f"not a cvpt tuned model: its format is {found!r}, not {FORMAT!r}"
        )
    method = config.get("method")
    if method not in list_methods():
        raise CheckpointError(where, f"method {method!r} is not one of {list_methods()}")
    if "options" not in config:
        raise CheckpointError(where, f"{TUNED_MODEL.name} version {version} without ['options']")
    if not isinstance(config["options"], dict):
        raise CheckpointError(where, f"options {config['options']!r} is not a mapping")
    own = get_method(method).options.field_names()
    if version == 0:
        config = dict(config)
        if config.get("clip") is None:
            recorded = (config.get("input") or {}).get("clip")
            config["clip"] = recorded if recorded is not None else ClipSpec().to_dict()
        if isinstance(config["clip"], dict):  # a key added later: its default, as then read
            config["clip"] = {**ClipSpec().to_dict(), **config["clip"]}
        options = dict(config["options"])
        if "sccp_skip" in options:  # its value says the reading
            options["sccp_update"] = "add" if options.pop("sccp_skip") else "replace"
        # an option recorded later than the file: the value models were trained with then
        before = get_method(method).recorded_before
        options = {**{k: v for k, v in before.items() if k in own}, **options}
        config["options"] = saved_options(method, options)
        config.setdefault("backbone_family", "vit")
        for key in ("class_names", "input", "backbone_options", "backbone_checkpoint", "seed"):
            config.setdefault(key, None)
        for key in IDENTITY_KEYS:
            config.setdefault(key, None)
    missing = [k for k in FIELDS if k not in config]
    if missing:
        raise CheckpointError(where, f"{TUNED_MODEL.name} version {version} without {missing}")
    unknown = sorted(set(config["options"]) - set(own))
    if unknown:
        raise CheckpointError(where, f"options {unknown} are not options of method {method!r}")
    absent = [k for k in own if k not in config["options"]]
    if version > 0 and absent:  # not today's default: the model may differ from the saved one
        raise CheckpointError(where, f"options without {absent} (method {method!r} has them)")
    check_fields(config, where)
    return TUNED_MODEL.current(config)


# the type of each field a reader uses, checked before a model is built from it
_TYPES = {
    "num_classes": int, "class_names": (list, type(None)), "input": (dict, type(None)),
    "backbone_family": str, "backbone_config": dict, "backbone_options": (dict, type(None)),
    "backbone_checkpoint": (str, type(None)), "seed": (int, type(None)), "clip": dict,
}  # fmt: skip


def check_fields(config: dict, where) -> None:
    """:class:`CheckpointError` naming ``where`` and the field when a (current-shape)
    ``config`` holds a field of the wrong type, a clip key of no :class:`ClipSpec`, a clip
    that is no valid one, an unknown backbone family, a ``num_classes`` not the backbone's
    head (``backbone_config.num_classes``) or class names of another count."""
    from cvpt.models.registry import list_backbones  # imported here: it imports the families

    for key, kind in _TYPES.items():
        value = config[key]
        if not isinstance(value, kind) or type(value) is bool:
            raise CheckpointError(where, f"{key} {value!r} is not of the type it must be")
    clip, fields = config["clip"], set(ClipSpec().to_dict())
    if set(clip) != fields:
        odd = sorted(set(clip) ^ fields)
        raise CheckpointError(where, f"clip {clip}: keys {odd} are not those of a clip spec")
    ints = [k for k in ("num_gops", "p_per_gop", "gop_size") if type(clip[k]) is not int]
    try:
        if ints:
            raise ValueError(f"{ints[0]} {clip[ints[0]]!r} is not a whole number")
        ClipSpec(**clip)
    except (TypeError, ValueError) as e:
        raise CheckpointError(where, f"clip {clip}: {e}") from e
    try:
        list_backbones(config["backbone_family"])
    except ConfigError as e:
        raise CheckpointError(where, f"backbone_family: {e}") from e
    head = config["backbone_config"].get("num_classes", config["num_classes"])
    if config["num_classes"] != head or config["num_classes"] < 1:
        raise CheckpointError(
            where,
            f"num_classes {config['num_classes']} is not its backbone_config's head "
            f"({head} classes)",
        )
    names = config["class_names"]
    if names is not None and not all(isinstance(n, str) for n in names):
        raise CheckpointError(where, f"class_names {names!r} are not all strings")
    if names is not None and len(names) != config["num_classes"]:
        raise CheckpointError(
            where, f"class_names holds {len(names)} names for num_classes {config['num_classes']}"
        )


def read_weights(folder: Path, config: dict | None, name: str = WEIGHTS) -> dict:
    """The tensors of ``folder/name`` (``{name: tensor}``), read once: hashed, and checked
    against the sha256 ``config`` (the folder's ``config.json``) records, then parsed. Raises
    :class:`CheckpointError` naming the file when it is missing or not safetensors, and
    naming both files when they were written by different saves (a save in progress)."""
    file = Path(folder) / name
    try:
        data = file.read_bytes()
    except FileNotFoundError as e:
        raise CheckpointError(file, "missing: the model's tuned tensors are not there") from e
    try:
        tensors = load_safetensors(data)
    except SafetensorError as e:
        raise CheckpointError(file, f"not a safetensors file ({e})") from e
    expected = (config or {}).get(DIGEST)
    if expected is not None and hashlib.sha256(data).hexdigest() != expected:
        raise CheckpointError(
            file,
            f"and {Path(folder) / CONFIG} were written by different saves (its sha256 is not "
            f"the {DIGEST} {CONFIG} records): another save in progress? load again (or one "
            "was replaced by hand: save both again)",
        )
    return tensors


def load_weights(model, folder: Path, config: dict | None, name: str = WEIGHTS) -> None:
    """Load ``folder/name`` (:func:`read_weights`) into ``model``: :class:`CheckpointError`
    naming both files when the tensors are not those of the model the config describes."""
    tensors = read_weights(folder, config, name)
    try:
        model.load_tunable_state_dict(tensors)
    except ValueError as e:  # the names/shapes of the tensors: fixed by the config's fields
        raise CheckpointError(
            Path(folder) / name,
            f"does not fit the model {CONFIG} describes ({e}): were its options, clip or "
            "num_classes edited?",
        ) from e


def read_config(folder: str | Path) -> dict:
    """The ``config.json`` of a :func:`save_pretrained` folder, upgraded (:func:`upgrade`).
    Raises :class:`~cvpt.errors.CheckpointError` for a folder without one or a file that is no
    cvpt tuned model, :class:`~cvpt.errors.FormatVersionError` for one of a newer cvpt."""
    folder = Path(folder)
    file = folder / CONFIG
    if not file.exists():
        raise CheckpointError(folder, f"no {CONFIG}: not a folder written by save_pretrained")
    try:
        config = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(file, f"not JSON ({e})") from e
    if not isinstance(config, dict):
        raise CheckpointError(file, "not a cvpt tuned model (not a JSON object)")
    return upgrade(config, file)
