"""A tuned model that describes itself: ``model.save_pretrained(dir)`` / ``cvpt.load_model(dir)``.

The folder is laid out as a Hugging Face model folder:

- ``config.json``: the method, its options, the clip geometry it is built for (``clip``: a
  :class:`~cvpt.codec.sampling.ClipSpec`), the class names, the input it expects (clip
  specification, crop size, MV scaling) and the backbone's identity: its architecture, where it
  came from (a checkpoint path, or a seeded random initialisation) and a fingerprint of its
  frozen weights;
- ``model.safetensors``: the tuned tensors only (a per-task checkpoint is kilobytes to a few
  MB; the frozen backbone is shared and loaded from where it came from).

The fingerprint (SHA-256 over the frozen backbone tensors, computed once per model, before any
bf16 cast) ties the tuned tensors to the exact weights they were tuned on: loading them onto
another backbone gives other predictions without a word, so it is refused unless asked for.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from cvpt.codec.sampling import ClipSpec
from cvpt.errors import CvptError
from cvpt.models.checkpoint import CheckpointError
from cvpt.models.methods import saved_options

FORMAT = "cvpt-tuned-model/1"
WEIGHTS = "model.safetensors"
CONFIG = "config.json"


class BackboneMismatchError(CvptError, ValueError):
    """Tuned tensors met a backbone other than the one they were tuned on."""

    def __init__(self, where, saved: dict, found: dict):
        self.saved, self.found = saved, found
        super().__init__(
            f"{where}: tuned on backbone {describe(saved)}, but the backbone here is "
            f"{describe(found)}; its predictions would differ. Use the backbone it was tuned "
            "on, or pass --allow-other-backbone (allow_other_backbone=True) to use this one"
        )


def describe(identity: dict) -> str:
    """``'vit_tiny(depth=4) from /x/y.safetensors, fingerprint 1a2b3c4d5e6f'``."""
    fp = identity.get("backbone_fingerprint") or "?"
    return (
        f"{identity.get('backbone')} from {identity.get('backbone_source')}, fingerprint {fp[:12]}"
    )


def frozen_fingerprint(model) -> str:
    """SHA-256 (hex) over the frozen tensors of ``model.backbone`` (name, shape, float32 bytes;
    buffers included), computed once and cached on the model. ``cast_frozen_weights`` computes
    it before narrowing the weights, so a bf16 run keeps the float32 fingerprint."""
    cached = getattr(model, "_frozen_fingerprint", None)
    if cached is not None:
        return cached
    h = hashlib.sha256()
    backbone = model.backbone
    tensors = [(n, p) for n, p in backbone.named_parameters() if not p.requires_grad]
    tensors += list(backbone.named_buffers())
    for name, t in sorted(tensors, key=lambda x: x[0]):
        if t.device.type == "meta":
            return "meta"  # nothing to hash (reports build models without weights); not cached
        h.update(f"{name}:{list(t.shape)};".encode())
        h.update(t.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    model._frozen_fingerprint = h.hexdigest()
    return model._frozen_fingerprint


def architecture_name(cfg) -> str:
    """The registered backbone ``cfg`` (a :class:`ViTConfig` or
    :class:`~cvpt.models.swin.SwinConfig`) is, e.g. ``vit_tiny``, ``vit_tiny(depth=4)`` or
    ``swin_base``; ``vit(d=..., depth=..., heads=...)`` / ``swin(C=..., ...)`` when none is."""
    from cvpt.models.registry import backbone_config, list_backbones

    if cfg.family == "swin":
        shape = ("embed_dim", "num_heads", "mlp_ratio", "patch_size", "window_size")
        depth = "depths"
        fallback = (
            f"swin(C={cfg.embed_dim}, depths={list(cfg.depths)}, heads={list(cfg.num_heads)}, "
            f"window={list(cfg.window_size)})"
        )
    else:
        shape = ("embed_dim", "num_heads", "mlp_ratio", "patch_size", "tubelet_size")
        depth = "depth"
        fallback = f"vit(d={cfg.embed_dim}, depth={cfg.depth}, heads={cfg.num_heads})"
    refs = {name: backbone_config(name) for name in list_backbones(cfg.family)}
    alike = [n for n, ref in refs.items() if all(getattr(ref, k) == getattr(cfg, k) for k in shape)]
    for name in alike:  # the exact variant first (swin_tiny and swin_small differ only in depth)
        if getattr(refs[name], depth) == getattr(cfg, depth):
            return name
    if alike:
        d = getattr(cfg, depth)
        return f"{alike[0]}({depth}={list(d) if isinstance(d, tuple) else d})"
    return fallback


def backbone_identity(model) -> dict:
    """What the tuned tensors of ``model`` depend on: the backbone's real architecture, where
    it came from and the fingerprint of its frozen weights."""
    origin = getattr(model, "origin", {}) or {}
    ckpt = origin.get("backbone_checkpoint")
    source = ckpt if ckpt else f"random initialisation (seed {origin.get('seed')})"
    return {
        "backbone": architecture_name(model.backbone.cfg),
        "backbone_source": source,
        "backbone_fingerprint": frozen_fingerprint(model),
    }


def check_backbone(where, saved: dict, found: dict, allow_other: bool = False) -> None:
    """Refuse (:class:`BackboneMismatchError`) tuned tensors saved with the backbone identity
    ``saved`` on a model whose backbone is ``found``, unless ``allow_other``. A ``saved``
    without a fingerprint (older checkpoints) is not checked."""
    want = saved.get("backbone_fingerprint")
    if allow_other or not want or want == found.get("backbone_fingerprint"):
        return
    raise BackboneMismatchError(where, saved, found)


def save_pretrained(
    model,
    folder: str | Path,
    *,
    class_names: list[str] | None = None,
    input_spec: dict | None = None,
    extra_metadata: dict | None = None,
) -> Path:
    """Write ``config.json`` and ``model.safetensors`` into ``folder`` (created; each file
    written atomically). ``class_names`` and ``input_spec`` default to what the model carries
    (set by :func:`load_model` or a training run)."""
    from cvpt.io import atomic_output

    folder = Path(folder)
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
    config = {
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
    tensors = model.tunable_state_dict()
    with atomic_output(folder / WEIGHTS) as tmp:
        save_file(
            {k: v.contiguous() for k, v in tensors.items()},
            str(tmp),
            metadata={"format": "pt", **(extra_metadata or {})},
        )
    with atomic_output(folder / CONFIG) as tmp:
        tmp.write_text(json.dumps(config, indent=2))
    return folder


def recorded_backbone(where, recorded: str | None) -> str | None:
    """``recorded`` (where a tuned model's backbone came from: a hub id, a path or ``None``
    for a seeded random one) when this machine can load it; :class:`CheckpointError` naming
    the fix for a file that is not here (a model tuned on another machine's file)."""
    from cvpt.models.hub import parse_hub_id

    if recorded is None or parse_hub_id(recorded) is not None or Path(recorded).exists():
        return recorded
    raise CheckpointError(
        where,
        f"tuned on the backbone {recorded}, which is not on this machine: pass "
        "backbone_checkpoint= (cvpt predict --backbone-checkpoint) with a copy of it (its "
        "fingerprint is checked), or tune on a hub id (org/name) to share the model whole",
    )


def saved_clip(config: dict) -> ClipSpec:
    """The clip geometry a saved model was built for (its ``config.json`` as a dict)."""
    if config.get("clip") is not None:
        return ClipSpec(**config["clip"])
    # saved before the model carried its clip: every model then was built for 3 P-frames per
    # GOP (the class default), and read clips of its run's input spec, when one was recorded;
    # with none, the paper's default (4 GOPs × 3 P-frames), the only geometry of that time
    recorded = (config.get("input") or {}).get("clip")
    return ClipSpec(**recorded) if recorded is not None else ClipSpec()


def read_config(folder: str | Path) -> dict:
    folder = Path(folder)
    file = folder / CONFIG
    if not file.exists():
        raise CheckpointError(folder, f"no {CONFIG}: not a folder written by save_pretrained")
    config = json.loads(file.read_text())
    if config.get("format") != FORMAT:
        raise CheckpointError(folder, f"{CONFIG} is not a cvpt tuned model ({FORMAT})")
    return config


def load_model(
    folder: str | Path,
    *,
    backbone_checkpoint: str | Path | None = None,
    allow_other_backbone: bool = False,
    device: str | torch.device = "cpu",
):
    """A tuned model from a :func:`save_pretrained` folder (a run's checkpoint folder is one;
    a run folder means its last checkpoint) or a Hugging Face hub id (``org/name``,
    ``hf-hub:org/name@revision``: a repository :meth:`CompressedVideoModel.push_to_hub`
    wrote), in eval mode, with ``class_names``, ``input_spec`` and ``identity`` attributes.

    The frozen backbone is rebuilt from where it came from: a hub id at the revision it was
    tuned on, a seeded random initialisation, or a file (``backbone_checkpoint`` points
    elsewhere, e.g. on another machine: :class:`CheckpointError` names this fix when the file
    is not here). Its fingerprint must equal the saved one: :class:`BackboneMismatchError`
    otherwise, unless ``allow_other_backbone``.
    """
    from cvpt.models.factory import create_model
    from cvpt.models.hub import resolve_checkpoint

    folder = Path(resolve_checkpoint(folder))  # a hub id (org/name): its cached snapshot
    if not (folder / CONFIG).exists() and (folder / "checkpoints" / "last.json").exists():
        pointer = json.loads((folder / "checkpoints" / "last.json").read_text())
        folder = folder / "checkpoints" / pointer["checkpoint"]
    config = read_config(folder)
    ckpt = backbone_checkpoint or recorded_backbone(folder, config.get("backbone_checkpoint"))
    if config.get("seed") is not None:
        torch.manual_seed(config["seed"])  # a random backbone is rebuilt from its seed
    options = dict(config.get("backbone_options") or {})
    if ckpt is None:
        # a registered architecture, sized exactly as saved
        options = {**config["backbone_config"], **options}
        options.pop("num_classes", None)
    # the saved config sizes everything; the variant only names the family (older folders: ViT)
    family = config.get("backbone_family", "vit")
    tuning = dict(config["options"])
    if "sccp_skip" in tuning:  # saved before the option's rename: its value says the reading
        tuning["sccp_update"] = "add" if tuning.pop("sccp_skip") else "replace"
    tuning = saved_options(config["method"], tuning)  # older files: every method's options
    model = create_model(
        config["method"],
        backbone={"vit": "vit_base", "swin": "swin_base"}[family],
        num_classes=config["num_classes"],
        backbone_checkpoint=ckpt,
        backbone_options=options,
        clip=saved_clip(config),
        **tuning,
    )
    model.origin = {
        "backbone_checkpoint": str(ckpt) if ckpt else None,
        "backbone_options": config.get("backbone_options") or {},
        "seed": config.get("seed"),
    }
    check_backbone(folder, config, backbone_identity(model), allow_other_backbone)
    model.load_tunable_state_dict(load_file(str(folder / WEIGHTS)))
    model.class_names = config.get("class_names")
    model.input_spec = config.get("input")
    model.identity = {k: config[k] for k in ("backbone", "backbone_source", "backbone_fingerprint")}
    return model.to(device).eval()
