"""``cvpt.create_model``: one call for every method of the paper, on any backbone."""

from __future__ import annotations

from pathlib import Path

from cvpt.codec.sampling import ClipSpec
from cvpt.errors import ConfigError
from cvpt.models.backbone_weights import load_backbone
from cvpt.models.compressed import CompressedVideoModel
from cvpt.models.hub import locate_checkpoint
from cvpt.models.methods import get_method, list_methods, make_options
from cvpt.models.registry import create_backbone


def list_models(pattern: str = "*") -> list[str]:
    """The methods :func:`create_model` builds (its first argument; timm's ``list_models``
    names what its ``create_model`` takes), in registration order (the paper's, then the
    others), those matching the shell-style ``pattern``: ``cvpt``, ``linear``, ``vpt``,
    ``adaptformer``, ``full``, ``lora`` (:mod:`cvpt.models.methods`). The backbones they tune
    are :func:`cvpt.models.list_backbones`."""
    import fnmatch

    return [m for m in list_methods() if fnmatch.fnmatchcase(m, pattern)]


def create_model(
    method: str,
    *,
    backbone: str = "vit_base",
    num_classes: int,
    backbone_checkpoint: str | Path | None = None,
    backbone_options: dict | None = None,
    clip: ClipSpec | dict | None = None,
    **options,
) -> CompressedVideoModel:
    """Build a compressed-domain model tuned by ``method`` (a registered method:
    :func:`list_models`).

    ``backbone`` names a registered backbone (``vit_tiny``, ``vit_small``, ``vit_base``,
    ``vit_large``, ``swin_tiny``, ``swin_small``, ``swin_base``; sizes changed with
    ``backbone_options``); ``backbone_checkpoint`` loads real weights instead (VideoMAE: official
    ``.pth`` or a Hugging Face folder; Video Swin: official/mmaction2 ``.pth`` or a torchvision
    state dict; or cvpt safetensors; or a Hugging Face hub id), whose head is replaced by one
    for ``num_classes``. The model records where its backbone came from (``model.origin``): a
    hub id as ``hf-hub:org/name@<commit>``, a path absolute.
    ``clip``: the clip geometry the model reads (a :class:`ClipSpec` or its ``to_dict()``;
    default the paper's, 4 GOPs × 3 P-frames), carried as ``model.clip`` and saved with it.
    ``options`` are fields of the method's options dataclass (``get_method(method).options``:
    the shared :class:`~cvpt.models.methods.TuningOptions` and the method's own). Raises
    :class:`ConfigError` for an unknown method or option, or an option of another method;
    ``ValueError`` for a clip whose GOPs the backbone's tubelet does not divide, or a backbone
    family the method does not support.
    """
    get_method(method)  # an unknown method is refused before any weight is built
    if "sccp_skip" in options:  # renamed: a silent fallback would train the other reading
        was = options["sccp_skip"]
        raise ConfigError(
            f"the option sccp_skip was renamed to sccp_update: use sccp_update="
            f"{'add' if was else 'replace'!r} (sccp_skip={was!r}); docs/models.md"
        )
    tuning = make_options(method, options)
    source = None
    if backbone_checkpoint is not None:
        # a hub id is recorded with its revision resolved, a path absolute (cvpt.load_model)
        where, source = locate_checkpoint(backbone_checkpoint)
        vit = load_backbone(where, **(backbone_options or {}))
        if vit.cfg.num_classes != num_classes or not vit.pools:
            if not vit.pools:
                raise ConfigError(
                    f"{backbone_checkpoint}: a pre-training encoder without mean pooling; pass "
                    "backbone_options={'use_mean_pooling': True} to tune it with a fresh fc_norm"
                )
            vit.reset_classifier(num_classes)
    else:
        vit = create_backbone(backbone, num_classes=num_classes, **(backbone_options or {}))
    if isinstance(clip, dict):
        clip = ClipSpec(**clip)
    model = CompressedVideoModel(vit, method, tuning, clip)
    model.origin = {
        "backbone_checkpoint": source,
        "backbone_options": dict(backbone_options or {}),
        "seed": None,  # set by whoever seeded the random initialisation (cvpt train does)
    }
    return model
