"""cvpt: Compressed Video Prompt Tuning.

Compressed-domain action recognition (I-frames, motion vectors, residuals read with PyAV) and
parameter-efficient tuning of frozen raw-video transformers. The public Python API is what this
module exports (docs/api.md): reading (:func:`read_clip`), model inputs (:class:`ClipTransform`,
:class:`CompressedVideoDataset`, :func:`collate`), models (:func:`create_model`,
:func:`load_backbone`), training (:func:`train`), prediction (:class:`Predictor`) and
re-encoding (:func:`prepare`). Everything else is internal and may change.
"""

from cvpt.codec.encode import ReencodeResult, VideoWriter, reencode, write_video
from cvpt.codec.prepare import PrepareReport, prepare
from cvpt.codec.probe import VideoInfo, probe
from cvpt.codec.reader import CompressedClip, ShortVideoWarning, read_clip
from cvpt.data.dataset import CompressedVideoDataset, EpochSampler, collate, read_views
from cvpt.data.splits import Sample, open_splits
from cvpt.data.synth import synthesize
from cvpt.data.transforms import ClipTransform
from cvpt.errors import (
    ConfigError,
    CorruptVideoError,
    CvptError,
    DataError,
    EmptyVideoError,
    EncodeError,
    MissingDependencyError,
    MissingFileError,
    NotAVideoError,
    RunError,
    RunExistsError,
    UnpreparedVideoError,
    VideoError,
    VideoNotFoundError,
)
from cvpt.models import (
    BackboneMismatchError,
    CheckpointError,
    CompressedVideoModel,
    create_model,
    load_backbone,
    load_model,
    save_backbone,
)
from cvpt.predictor import Prediction, Predictor
from cvpt.training.api import train
from cvpt.training.config import TrainConfig, load_config

__version__ = "0.1.0"

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
    "load_backbone",
    "load_config",
    "load_model",
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
