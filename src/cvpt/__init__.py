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

__version__ = "0.1.0"

__all__ = [
    "CompressedClip",
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
    "probe",
    "read_clip",
    "reencode",
    "write_video",
]
