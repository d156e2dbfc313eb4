"""cvpt: Compressed Video Prompt Tuning.

Compressed-domain action recognition (I-frames, motion vectors, residuals read with PyAV) and
parameter-efficient tuning of frozen raw-video transformers. The public Python API is what this
module exports (docs/api.md): reading (:func:`read_clip`), model inputs (:class:`ClipTransform`,
:class:`CompressedVideoDataset`, :func:`collate`), models (:func:`list_models`,
:func:`list_backbones`, :func:`create_model`, :func:`load_backbone`, :func:`load_model`),
training (:func:`train`), prediction (:class:`Predictor`) and re-encoding (:func:`prepare`).
Everything else is internal and may change.

The names are imported on first use (PEP 562), so ``import cvpt`` and the commands that do not
need them (``cvpt prepare``, ``cvpt probe``) do not load torch: ``cvpt.read_clip`` loads the
reader, ``cvpt.create_model`` loads torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from cvpt.version import __version__

# public name -> the module that defines it
_EXPORTS = {
    "ReencodeResult": "cvpt.codec.encode",
    "VideoWriter": "cvpt.codec.encode",
    "reencode": "cvpt.codec.encode",
    "write_video": "cvpt.codec.encode",
    "PrepareReport": "cvpt.codec.prepare",
    "prepare": "cvpt.codec.prepare",
    "VideoInfo": "cvpt.codec.probe",
    "probe": "cvpt.codec.probe",
    "CompressedClip": "cvpt.codec.reader",
    "ShortVideoWarning": "cvpt.codec.reader",
    "read_clip": "cvpt.codec.reader",
    "CompressedVideoDataset": "cvpt.data.dataset",
    "EpochSampler": "cvpt.data.dataset",
    "collate": "cvpt.data.dataset",
    "read_views": "cvpt.data.dataset",
    "Sample": "cvpt.data.splits",
    "open_splits": "cvpt.data.splits",
    "synthesize": "cvpt.data.synth",
    "ClipTransform": "cvpt.data.transforms",
    "normalize_inputs": "cvpt.data.transforms",
    "ConfigError": "cvpt.errors",
    "CorruptVideoError": "cvpt.errors",
    "CvptError": "cvpt.errors",
    "DataError": "cvpt.errors",
    "EmptyVideoError": "cvpt.errors",
    "EncodeError": "cvpt.errors",
    "FormatVersionError": "cvpt.errors",
    "MissingDependencyError": "cvpt.errors",
    "MissingFileError": "cvpt.errors",
    "NotAVideoError": "cvpt.errors",
    "RunError": "cvpt.errors",
    "RunExistsError": "cvpt.errors",
    "UnpreparedVideoError": "cvpt.errors",
    "VideoError": "cvpt.errors",
    "VideoNotFoundError": "cvpt.errors",
    "BackboneMismatchError": "cvpt.models",
    "CheckpointError": "cvpt.models",
    "CompressedVideoModel": "cvpt.models",
    "create_model": "cvpt.models",
    "list_backbones": "cvpt.models",
    "list_models": "cvpt.models",
    "load_backbone": "cvpt.models",
    "load_model": "cvpt.loading",
    "save_backbone": "cvpt.models",
    "Prediction": "cvpt.predictor",
    "Predictor": "cvpt.predictor",
    "train": "cvpt.training.api",
    "TrainConfig": "cvpt.training.config",
    "load_config": "cvpt.training.config",
}

# Sub-packages and modules reachable as attributes (``cvpt.models``), imported on first use.
_SUBMODULES = frozenset(
    {
        "bench",
        "cli",
        "codec",
        "data",
        "demo",
        "doctor",
        "errors",
        "export",
        "io",
        "models",
        "predictor",
        "progress",
        "training",
        "viz",
    }
)

if TYPE_CHECKING:  # what static type checkers and IDEs see: the names themselves
    from cvpt.codec.encode import ReencodeResult, VideoWriter, reencode, write_video
    from cvpt.codec.prepare import PrepareReport, prepare
    from cvpt.codec.probe import VideoInfo, probe
    from cvpt.codec.reader import CompressedClip, ShortVideoWarning, read_clip
    from cvpt.data.dataset import CompressedVideoDataset, EpochSampler, collate, read_views
    from cvpt.data.splits import Sample, open_splits
    from cvpt.data.synth import synthesize
    from cvpt.data.transforms import ClipTransform, normalize_inputs
    from cvpt.errors import (
        ConfigError,
        CorruptVideoError,
        CvptError,
        DataError,
        EmptyVideoError,
        EncodeError,
        FormatVersionError,
        MissingDependencyError,
        MissingFileError,
        NotAVideoError,
        RunError,
        RunExistsError,
        UnpreparedVideoError,
        VideoError,
        VideoNotFoundError,
    )
    from cvpt.loading import load_model
    from cvpt.models import (
        BackboneMismatchError,
        CheckpointError,
        CompressedVideoModel,
        create_model,
        list_backbones,
        list_models,
        load_backbone,
        save_backbone,
    )
    from cvpt.predictor import Prediction, Predictor
    from cvpt.training.api import train
    from cvpt.training.config import TrainConfig, load_config


def __getattr__(name: str):
    """Import a public name (or a sub-module) on first use and keep it in the module."""
    module = _EXPORTS.get(name)
    if module is not None:
        value = getattr(importlib.import_module(module), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"{__name__}.{name}")
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__) | _SUBMODULES)


__all__ = [
    "BackboneMismatchError",
    "CheckpointError",
    "ClipTransform",
    "CompressedClip",
    "CompressedVideoDataset",
    "CompressedVideoModel",
    "ConfigError",
    "CorruptVideoError",
    "CvptError",
    "DataError",
    "EmptyVideoError",
    "EncodeError",
    "EpochSampler",
    "FormatVersionError",
    "MissingDependencyError",
    "MissingFileError",
    "NotAVideoError",
    "Prediction",
    "Predictor",
    "PrepareReport",
    "ReencodeResult",
    "RunError",
    "RunExistsError",
    "Sample",
    "ShortVideoWarning",
    "TrainConfig",
    "UnpreparedVideoError",
    "VideoError",
    "VideoInfo",
    "VideoNotFoundError",
    "VideoWriter",
    "__version__",
    "collate",
    "create_model",
    "list_backbones",
    "list_models",
    "load_backbone",
    "load_config",
    "load_model",
    "normalize_inputs",
    "open_splits",
    "prepare",
    "probe",
    "read_clip",
    "read_views",
    "reencode",
    "save_backbone",
    "synthesize",
    "train",
    "write_video",
]
