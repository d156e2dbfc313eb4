"""cvpt: Compressed Video Prompt Tuning.

Compressed-domain action recognition (I-frames, motion vectors, residuals read with PyAV) and
parameter-efficient tuning of frozen raw-video transformers.
"""

from cvpt.codec.encode import ReencodeResult, VideoWriter, reencode, write_video
from cvpt.codec.probe import VideoInfo, probe
from cvpt.codec.reader import CompressedClip, ShortVideoWarning, read_clip
from cvpt.errors import (
    CorruptVideoError,
    EmptyVideoError,
    EncodeError,
    NotAVideoError,
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

__version__ = "0.1.0"

__all__ = [
    "BackboneMismatchError",
    "CheckpointError",
    "CompressedClip",
    "CompressedVideoModel",
    "CorruptVideoError",
    "EmptyVideoError",
    "EncodeError",
    "NotAVideoError",
    "ReencodeResult",
    "ShortVideoWarning",
    "UnpreparedVideoError",
    "VideoError",
    "VideoInfo",
    "VideoNotFoundError",
    "VideoWriter",
    "__version__",
    "create_model",
    "load_backbone",
    "load_model",
    "probe",
    "read_clip",
    "reencode",
    "save_backbone",
    "write_video",
]
