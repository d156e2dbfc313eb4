"""``cvpt.load_backbone``: real pre-trained weights (VideoMAE ViT or Video Swin), loaded exactly
and strictly.

Formats, told apart by what the path holds (the family by the keys of the state dict):
- an official VideoMAE ``.pth`` / ``.pt`` (pre-training: ``encoder.*`` plus decoder keys;
  fine-tuned: the state dict under ``model`` or ``module``);
- a Hugging Face VideoMAE folder (``config.json`` + ``model.safetensors`` or
  ``pytorch_model.bin``), in transformers 4.x key layout (``attention.attention.q_bias``, what the
  published checkpoints hold) or 5.x (``query.bias`` / ``value.bias``);
- a Video Swin ``.pth``: official Video-Swin-Transformer / mmaction2 0.x or mmaction2 1.x
  (under ``state_dict``, ``backbone.layers.*`` and ``cls_head.fc_cls``), or a torchvision
  ``swin3d_*`` state dict (``features.*``);
- cvpt's own ``.safetensors`` (our key names, family and config in the metadata); a
  ``.safetensors`` without that metadata is a bare state dict, read by its keys as above;
- a sharded Hugging Face folder (``model.safetensors.index.json`` and the shards it lists);
- a training checkpoint that also pickles other objects (mmengine's ``message_hub``): its
  weights are read, the other objects replaced by inert placeholders (:func:`_load_pickle`).
An image model (a 2-D patch embedding) is refused, naming the video checkpoints to use.

Each family recognises, filters and sizes its own layouts in its own file
(:mod:`cvpt.models.vit`, :mod:`cvpt.models.swin`: ``checkpoint_format``,
``checkpoint_filter_fn`` as in timm, ``config_from_state_dict``, ``config_from_hf``); this
module reads the files and dispatches over the registered families, naming none. Loading
is strict: leftover keys are logged as a table, and any that is not on an allow-list of keys
known to be unused (decoder, mask token, pre-training ``norm``; a head or fc_norm the checkpoint
lacks or that is re-sized) is an error. Pickles are read only with ``weights_only=True``.
"""

from __future__ import annotations

import json
import logging
import pickle
import zipfile
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from cvpt.errors import CheckpointError
from cvpt.formats import Format
from cvpt.models.backbone import VideoBackbone, family_of
from cvpt.models.hub import SHARD_INDEXES, hub_id_hint, resolve_checkpoint
from cvpt.models.registry import get_family, list_families

# the key table of every load, at INFO: silent unless the application shows cvpt's INFO
# records (the `cvpt` command does; `logging.getLogger("cvpt").setLevel(logging.WARNING)`
# silences it there too)
log = logging.getLogger("cvpt.models")

# the header of the .safetensors save_backbone writes (its keys: cvpt_backbone_*)
BACKBONE_FILE = Format("cvpt-backbone", 1)


def supported() -> str:
    """What load_backbone reads, for the message on a checkpoint of no supported family: every
    registered family's :attr:`~cvpt.models.backbone.VideoBackbone.checkpoint_help`."""
    helps = [get_family(name).checkpoint_help for name in list_families()]
    return f"{', '.join(helps)}, or cvpt safetensors"


# where a checkpoint keeps its weights (the top level, or under one of these keys)
STATE_KEYS = ("model", "module", "state_dict")
REFUSED_PICKLE = (
    "holds pickled objects other than tensors; cvpt reads pickles with torch.load("
    "weights_only=True) and never runs their code"
)
SAVE_STATE_DICT = (
    "if you trust the file, save the model's weights alone: torch.save(torch.load(FILE, "
    "weights_only=False)['state_dict'], 'weights.pth') (the key that holds them), and load that"
)
# prefixes that wrap a whole state dict (DataParallel/DDP, torch.compile, a Lightning module's
# attribute, EMA's AveragedModel), stripped while every key has one, in any order and nesting
WRAPPERS = ("module.", "_orig_mod.", "model.")
NOT_FLOAT = (
    "where the backbone holds float weights: a quantised (or otherwise non-float) checkpoint, "
    "which cvpt does not cast (the values would be wrong); load its float weights instead "
    "(dequantise it, or save the float model's state_dict)"
)


# ---------------------------------------------------------------- reading


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], object, str]:
    """``(state dict in our names, config, format name)`` for any supported path; the config's
    class (its ``family``) says the family."""
    if not Path(path).exists():
        raise CheckpointError(path, f"no such file or folder{hub_id_hint(path)}")
    path = Path(path)
    try:
        if path.is_dir():
            return _read_hf_folder(path)
        if path.suffix == ".safetensors" or _is_safetensors(path):
            return _read_cvpt_safetensors(path)
        return _read_official(path)
    except CheckpointError:
        raise
    except pickle.UnpicklingError as e:
        raise CheckpointError(path, f"{REFUSED_PICKLE} ({e})") from e
    except (KeyError, ValueError, RuntimeError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise CheckpointError(path, f"cannot read it as a VideoMAE checkpoint ({e})") from e


def _is_safetensors(path: Path) -> bool:
    """Whether ``path`` starts as a safetensors file does (whatever its name): an 8-byte
    little-endian header length, then the header's JSON object."""
    with open(path, "rb") as f:
        head = f.read(9)
    size = path.stat().st_size
    return len(head) == 9 and head[8:] == b"{" and int.from_bytes(head[:8], "little") < size


def _read_official(path: Path):
    obj, unread = _load_pickle(path)
    key = next(
        (k for k in STATE_KEYS if isinstance(obj, dict) and isinstance(obj.get(k), dict)), None
    )
    sd = obj if key is None else obj[key]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        if unread:
            raise CheckpointError(
                path,
                f"{REFUSED_PICKLE}: {', '.join(unread)} where the weights should be (looked at "
                f"the top level, {', '.join(STATE_KEYS)}); {SAVE_STATE_DICT}",
            )
        raise CheckpointError(
            path, f"holds no state dict (looked at the top level, {', '.join(STATE_KEYS)})"
        )
    if unread:  # e.g. an mmengine training checkpoint: its weights are all cvpt needs
        others = sorted(k for k in obj if k != key)
        log.info(
            "%s: read its %r only; left unread: %s (pickled %s)",
            path,
            key,
            ", ".join(map(str, others)),
            ", ".join(unread),
        )
    return _from_state_dict(path, sd)


def _from_state_dict(path: Path, obj: dict[str, torch.Tensor]):
    """``(state dict in our names, config, format name)`` of a bare state dict: the family
    and layout told apart by its keys (after :func:`unwrap`)."""
    obj, wrappers = unwrap(path, obj)
    sd, cfg, kind = _from_bare_state_dict(path, obj)
    return sd, cfg, kind + (f", unwrapped {' + '.join(wrappers)}" if wrappers else "")


def unwrap(path: Path, obj: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """``(obj without its wrappers, what was stripped)``: an mmengine EMA model's state dict
    (``steps`` + ``module.*``: its averaged weights) loses ``steps``; then any of
    :data:`WRAPPERS` that every key starts with (also behind ``backbone.``) is stripped, again
    until none is. mmcv's EMA copies (``ema_*`` keys beside the weights) are refused, naming
    them: which of the two sets is meant, the file does not say."""
    stripped = []
    if (
        "steps" in obj
        and len(obj) > 1
        and all(k.startswith("module.") for k in obj if k != "steps")
    ):
        obj = {k: v for k, v in obj.items() if k != "steps"}
        stripped.append("mmengine EMA (steps)")
    while obj:
        prefix = next((w for w in WRAPPERS if all(k.startswith(w) for k in obj)), None)
        if prefix is None and all(k.startswith("backbone.") for k in obj):
            inner = next((w for w in WRAPPERS if all(k[9:].startswith(w) for k in obj)), None)
            prefix = None if inner is None else "backbone." + inner
        if prefix is None:
            break
        obj = {k[len(prefix) :]: v for k, v in obj.items()}
        stripped.append(prefix)
    ema = sorted(k for k in obj if k.startswith("ema_"))
    if ema and len(ema) < len(obj):
        raise CheckpointError(
            path,
            f"holds mmcv EMA copies ({len(ema)} ema_* keys, e.g. {ema[0]}) beside the weights, "
            "and does not say which set the model used; save the set you want alone, e.g. "
            "{k: v for k, v in sd.items() if not k.startswith('ema_')}, and load that",
        )
    return obj, stripped


def _from_bare_state_dict(path: Path, obj: dict[str, torch.Tensor]):
    """The registered family whose :meth:`~cvpt.models.backbone.VideoBackbone.checkpoint_format`
    recognises ``obj`` filters it and reads its config; :class:`CheckpointError` when none
    does, or more than one (the layouts would be ambiguous)."""
    found = [
        (f, kind) for f in map(get_family, list_families()) if (kind := f.checkpoint_format(obj))
    ]
    if len(found) > 1:
        claims = ", ".join(f"{f.family} ({kind})" for f, kind in found)
        raise CheckpointError(path, f"its keys fit more than one backbone family: {claims}")
    if not found:
        shown = ", ".join(sorted(obj)[:6]) + (", ..." if len(obj) > 6 else "")
        raise CheckpointError(
            path,
            f"not a checkpoint of a supported backbone family: {len(obj)} tensors, keys {shown}"
            f"{_prefix_seen(obj)}; cvpt reads {supported()}",
        )
    family, kind = found[0]
    # before the filter, which may combine tensors (VideoMAE's q/k/v) and so cast them
    refuse_non_float(path, {k: v for k, v in obj.items() if k.endswith((".weight", ".bias"))})
    sd = family.checkpoint_filter_fn(obj)
    return sd, _config_of(path, family, kind, sd), kind


def _config_of(path: Path, family: type[VideoBackbone], kind: str, sd: dict[str, torch.Tensor]):
    """``family``'s config read off the filtered weights ``sd`` of a ``kind`` checkpoint; a
    layout the family refuses (its ValueError: an image model...) or cannot size (a missing
    tensor) is a :class:`CheckpointError` naming the file."""
    try:
        return family.config_from_state_dict(sd)
    except ValueError as e:
        raise CheckpointError(path, str(e)) from e
    except (KeyError, IndexError) as e:
        raise CheckpointError(
            path, f"a {kind} checkpoint whose sizes cannot be read ({e!r})"
        ) from e


def _prefix_seen(sd: dict) -> str:
    """``'; every key starts with 'net.' ...'`` when the keys share a first name (a wrapper
    cvpt does not know, e.g. a Lightning module's attribute), else ``''``."""
    firsts = {k.split(".", 1)[0] for k in sd if "." in k}
    if len(firsts) != 1 or len(sd) < 2 or not all("." in k for k in sd):
        return ""
    prefix = f"{firsts.pop()}."
    return (
        f"; every key starts with {prefix!r}, a wrapper cvpt does not strip (it strips "
        f"{', '.join(WRAPPERS)}): if the backbone is inside it, save "
        f"{{k.removeprefix({prefix!r}): v for k, v in sd.items()}} and load that"
    )


def refuse_non_float(where, tensors: dict[str, torch.Tensor]) -> None:
    """:class:`CheckpointError` naming ``where``, the first tensor of ``tensors`` that is not
    floating point (integer, bool, complex) and its dtype; float16/bfloat16/float64 pass (they
    widen or narrow to the model's float32 as any float does)."""
    for key, t in tensors.items():
        if not t.is_floating_point():
            raise CheckpointError(where, f"{key} is {t.dtype} {NOT_FLOAT}")


def _read_hf_folder(path: Path):
    cfg_file = path / "config.json"
    if not cfg_file.exists():
        raise CheckpointError(path, "a folder without config.json is not a Hugging Face model")
    hf = json.loads(cfg_file.read_text())
    families = [get_family(name) for name in list_families()]
    readers = {t: f for f in families for t in f.hf_model_types}
    names = [n for f in families for n in f.hf_model_types.values()]
    # a config.json without model_type: the family that reads Hugging Face folders, if one does
    model_type = hf.get("model_type", next(iter(readers)) if len(readers) == 1 else None)
    if model_type not in readers:
        raise CheckpointError(
            path,
            f"a Hugging Face {hf.get('model_type')!r} model, not {' or '.join(names)}; cvpt "
            f"reads {supported()}",
        )
    family = readers[model_type]
    cfg = family.config_from_hf(hf)
    raw = _read_hf_weights(path)
    refuse_non_float(path, raw)  # before the filter, which may combine (cast) tensors
    kind = f"{family.checkpoint_format(raw) or 'unrecognised keys'} (folder)"
    return family.checkpoint_filter_fn(raw), cfg, kind


def _read_hf_weights(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a Hugging Face folder: one file, or the shards its index lists
    (``model.safetensors.index.json``: ``weight_map`` from tensor name to shard file)."""
    if (path / "model.safetensors").exists():
        return load_file(path / "model.safetensors")
    if (path / "pytorch_model.bin").exists():
        return torch.load(path / "pytorch_model.bin", map_location="cpu", weights_only=True)
    for index in SHARD_INDEXES:
        if (path / index).exists():
            return _read_shards(path, index)
    raise CheckpointError(
        path,
        "holds neither model.safetensors, pytorch_model.bin nor a sharded model "
        f"({' / '.join(SHARD_INDEXES)})",
    )


def _read_shards(path: Path, index: str) -> dict[str, torch.Tensor]:
    """Every shard named by ``path / index``, each tensor from the shard that lists it; a
    missing shard or tensor is an error naming it."""
    weight_map = json.loads((path / index).read_text()).get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise CheckpointError(path / index, "has no weight_map: not a sharded model's index")
    out: dict[str, torch.Tensor] = {}
    for shard in sorted(set(weight_map.values())):
        file = path / shard
        if Path(shard).is_absolute() or ".." in Path(shard).parts:
            # an index is data: it may name files in its own folder only
            raise CheckpointError(
                path / index, f"lists the shard {shard}, which is outside its folder {path}"
            )
        if not file.exists():
            raise CheckpointError(file, f"no such file: a shard {index} lists")
        if shard.endswith(".safetensors"):
            tensors = load_file(file)
        else:
            tensors = torch.load(file, map_location="cpu", weights_only=True)
        mine = {k: v for k, v in tensors.items() if weight_map.get(k) == shard}
        refuse_non_float(file, mine)
        out.update(mine)
    missing = sorted(set(weight_map) - set(out))
    if missing:
        raise CheckpointError(path / index, f"tensors missing from their shards: {missing[:5]}")
    return out


def upgrade(meta: dict[str, str], path: Path) -> dict[str, str]:
    """The safetensors header of a cvpt backbone file (``path``) in the current version's
    shape: every rule for reading one an older cvpt wrote. Version 0 (no
    ``format_version``): no ``cvpt_backbone_family`` is a ViT (files from before Swin). Raises
    :class:`~cvpt.errors.FormatVersionError` for a newer version."""
    if BACKBONE_FILE.version_of(meta, path) == 0:
        meta = {"cvpt_backbone_family": "vit", **meta}
    return BACKBONE_FILE.current(meta)


def _read_cvpt_safetensors(path: Path):
    with safe_open(str(path), "pt") as f:
        meta = f.metadata() or {}
    if "cvpt_backbone_config" not in meta:
        # a bare state dict (torchvision's, timm's, a converted .pth): read by its keys
        return _from_state_dict(path, load_file(path))
    meta = upgrade(meta, path)
    family = meta["cvpt_backbone_family"]
    if family not in list_families():
        raise CheckpointError(
            path,
            f"backbone family {family!r} is not one cvpt knows ({', '.join(list_families())})",
        )
    config_class = get_family(family).config_class
    cfg = _metadata_config(path, config_class, meta["cvpt_backbone_config"])
    return load_file(path), cfg, "cvpt safetensors"


def _metadata_config(path: Path, config_class, text: str):
    """The ``config_class`` the metadata field ``cvpt_backbone_config`` (JSON) describes;
    :class:`CheckpointError` naming the file and the field when it is not JSON, not an object,
    or has fields that class lacks (e.g. a Swin family tag on a ViT's config)."""
    where = (
        f"its metadata cvpt_backbone_config (of a {config_class.family!r} backbone, as "
        "cvpt_backbone_family says)"
    )
    try:
        fields = json.loads(text)
    except json.JSONDecodeError as e:
        raise CheckpointError(path, f"{where} is not JSON ({e})") from e
    if not isinstance(fields, dict):
        raise CheckpointError(path, f"{where} is a JSON {type(fields).__name__}, not an object")
    unknown = sorted(set(fields) - set(config_class().to_dict()))
    if unknown:
        raise CheckpointError(
            path,
            f"{where} has fields {unknown} that a {config_class.__name__} has not: a file "
            "edited or mislabelled; save the backbone again with cvpt.save_backbone",
        )
    try:
        return config_class(**fields)
    except (TypeError, ValueError) as e:
        raise CheckpointError(path, f"{where}: {e}") from e


class _Unread:
    """Stands in for an object of a class a checkpoint pickled that cvpt does not load
    (mmengine's ``HistoryBuffer``, numpy arrays...): made from nothing, its state dropped, so
    no code of that class runs. Each name gets a subclass (``name``: the pickled one)."""

    name = "?"

    def __new__(cls, *args, **kwargs):
        return object.__new__(cls)

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state) -> None:
        pass

    def __repr__(self) -> str:
        return f"<unread {self.name}>"


def _load_pickle(path: Path) -> tuple[object, list[str]]:
    """``torch.load(weights_only=True)`` of ``path``, and the names of the pickled classes
    and functions it refused and that were replaced by inert :class:`_Unread` objects (none
    when the plain load works). Another object of such a checkpoint (an optimiser's state, a
    training log) then does not stop its weights from loading; the weights themselves must
    still be plain tensors, which the caller checks."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True), []
    except pickle.UnpicklingError:
        try:
            names = sorted(set(torch.serialization.get_unsafe_globals_in_checkpoint(path)))
        except Exception:  # not a zip checkpoint (legacy format): nothing to list, refuse
            names = []
        if not names:
            raise
    stubs = [(type("_Unread", (_Unread,), {"name": n}), n) for n in names]
    with torch.serialization.safe_globals(stubs):
        obj = torch.load(path, map_location="cpu", weights_only=True)
    return obj, names


def save_backbone(model: VideoBackbone, path: str | Path) -> Path:
    """Write a backbone as cvpt safetensors (weights + family + config), atomically."""
    from cvpt.io import atomic_output

    sd = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    meta = BACKBONE_FILE.stamp_metadata(
        {
            "cvpt_backbone_config": json.dumps(model.cfg.to_dict()),
            "cvpt_backbone_family": model.family,
            "format": "pt",
        }
    )
    with atomic_output(path) as tmp:
        save_file(sd, str(tmp), metadata=meta)
    return Path(path)


# ---------------------------------------------------------------- loading


def load_backbone(path: str | Path, *, verbose: bool = True, **overrides) -> VideoBackbone:
    """Load a backbone (VideoMAE ViT or Video Swin) from any supported checkpoint (see the
    module doc).

    ``overrides`` set fields of the family's config (its ``config_class``:
    :class:`~cvpt.models.vit.ViTConfig`, :class:`~cvpt.models.swin.SwinConfig`), e.g.
    ``num_classes=101`` (a head of another size is re-initialised, and said so) or
    ``num_heads`` for a non-standard ViT. Logs the key table (``verbose``; logger
    ``cvpt.models``, level INFO: shown by the ``cvpt`` command, silent in Python unless logging
    shows INFO) and raises :class:`CheckpointError` on any key not on the family's allow-lists
    (its ``unused_keys`` and ``fresh_keys``).
    ``path`` may also be a Hugging Face hub id, ``org/name`` or ``hf-hub:org/name@revision``
    (:mod:`cvpt.models.hub`: the local cache, ``HF_HUB_OFFLINE``, the ``cvpt[hub]`` extra).
    """
    path = resolve_checkpoint(path)  # a Hugging Face hub id → its cached snapshot folder
    sd, cfg, kind = read_checkpoint(path)
    unknown = set(overrides) - set(cfg.to_dict())
    if unknown:
        raise CheckpointError(path, f"unknown options {sorted(unknown)}")
    for k, v in overrides.items():
        setattr(cfg, k, v)
    family = family_of(cfg)
    problem = family.config_problem(cfg)  # e.g. a ViT width whose head count is unknown
    if problem:
        raise CheckpointError(path, problem)
    model = family(cfg)
    unused_rules, fresh_rules = family.unused_keys, family.fresh_keys
    own = model.state_dict()
    notes: list[tuple[str, str, str]] = []  # (key, status, why)
    for k in [k for k in sd if k.startswith("head.")]:
        if k not in own or own[k].shape != sd[k].shape:
            notes.append((k, "dropped", f"head re-sized to {cfg.num_classes} classes"))
            del sd[k]
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    bad = []
    for k in missing:
        why = _match(fresh_rules, k)
        notes.append((k, "missing", why or "NOT ALLOWED"))
        bad += [] if why else [f"missing {k}"]
    for k in unexpected:
        why = _match(unused_rules, k)
        notes.append((k, "unused", why or "NOT ALLOWED"))
        bad += [] if why else [f"unexpected {k}"]
    shared = sorted(set(own) & set(sd))
    refuse_non_float(path, {k: sd[k] for k in shared if own[k].is_floating_point()})
    for k in shared:
        if own[k].shape != sd[k].shape:
            bad.append(f"{k}: checkpoint {list(sd[k].shape)} vs model {list(own[k].shape)}")
    if verbose:
        log.info("%s", _table(path, kind, cfg, len(set(own) & set(sd)), notes))
    if bad:
        raise CheckpointError(path, "keys do not fit the backbone: " + "; ".join(bad[:10]))
    model.load_state_dict({k: v for k, v in sd.items() if k in own}, strict=False)
    return model


def _match(rules, key: str) -> str:
    return next((why for pattern, why in rules if pattern.search(key)), "")


def _table(path, kind, cfg, loaded: int, notes) -> str:
    lines = [f"loaded {path} ({kind}): {cfg.summary()}, {loaded} tensors"]
    if notes:
        width = max(len(k) for k, _, _ in notes)
        lines += [f"  {k:<{width}}  {status:<8} {why}" for k, status, why in sorted(notes)]
    return "\n".join(lines)
