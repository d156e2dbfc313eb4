"""``cvpt.probe``: frame count, rate, size, codec and the GOP pattern of a video."""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field
from pathlib import Path

import av

from cvpt.codec.container import ffmpeg_errors, open_video, stream_fps
from cvpt.errors import EmptyVideoError

# What cvpt.read_clip accepts: CVPT's MPEG-4 Part 2, and the H.264 option of `cvpt prepare`.
READABLE_CODECS = ("mpeg4", "h264")

_TYPE_LETTER = {
    av.video.frame.PictureType.I: "I",
    av.video.frame.PictureType.P: "P",
    av.video.frame.PictureType.B: "B",
}


@dataclass
class VideoInfo:
    """What :func:`probe` found. ``pict_types`` holds one letter (I/P/B/?) per frame."""

    path: str
    codec: str
    width: int
    height: int
    fps: float
    frames: int
    duration_s: float
    pict_types: str = field(repr=False)
    gop_lengths: list[int] = field(repr=False)

    @property
    def num_gops(self) -> int:
        return len(self.gop_lengths)

    @property
    def has_b_frames(self) -> bool:
        return "B" in self.pict_types

    @property
    def gop_pattern(self) -> str:
        """Run-length summary, e.g. ``'14 × IPPPPPPPPPPP + IPPPPP'``."""
        parts = []
        starts = [0, *itertools.accumulate(self.gop_lengths)]
        gops = [self.pict_types[a:b] for a, b in itertools.pairwise(starts)]
        for pattern, run in itertools.groupby(gops):
            n = len(list(run))
            shown = pattern if len(pattern) <= 24 else f"{pattern[:12]}…({len(pattern)} frames)"
            parts.append(shown if n == 1 else f"{n} × {shown}")
        return " + ".join(parts) if parts else "(no frames)"

    def layout_problems(self, gop: int = 12) -> list[str]:
        """Why this video is not in the layout read_clip needs (empty list: it is)."""
        problems = []
        if self.codec not in READABLE_CODECS:
            problems.append(f"codec is {self.codec}, not MPEG-4 Part 2")
        if self.has_b_frames:
            problems.append(f"it has {self.pict_types.count('B')} B-frames")
        if not self.pict_types.startswith("I"):
            problems.append("it does not start with an I-frame")
        expected = ("I" + "P" * (gop - 1)) * (self.frames // gop + 1)
        if not problems and self.pict_types != expected[: self.frames]:
            bad = next(
                i for i, (a, b) in enumerate(zip(self.pict_types, expected, strict=False)) if a != b
            )
            problems.append(
                f"GOP pattern is {self.gop_pattern}, not I+{gop - 1}P (frame {bad} is "
                f"{self.pict_types[bad]}, expected {expected[bad]})"
            )
        return problems

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("pict_types")
        d.update(
            num_gops=self.num_gops, gop_pattern=self.gop_pattern, has_b_frames=self.has_b_frames
        )
        return d


def probe(path: str | Path) -> VideoInfo:
    """Decode ``path`` once and describe it: codec, size, fps, frames and GOP pattern.

    Picture types come from the decoder (``frame.pict_type``), not from packet key flags: an
    x264 scene-cut I-frame is not a key frame, and P and B are only told apart after decoding.
    Raises :class:`cvpt.VideoError` subclasses naming the file.
    """
    container, stream = open_video(path, thread_type="AUTO")
    try:
        types = []
        width = height = 0
        with ffmpeg_errors(path):
            for frame in container.decode(stream):
                types.append(_TYPE_LETTER.get(frame.pict_type, "?"))
                width, height = frame.width, frame.height
        if not types:
            raise EmptyVideoError(path, "the video stream holds no decodable frame")
        fps = stream_fps(stream)
        pict = "".join(types)
        starts = [i for i, t in enumerate(pict) if t == "I"]
        if not starts or starts[0] != 0:
            starts = [0, *starts]
        lengths = [b - a for a, b in itertools.pairwise([*starts, len(pict)])]
        return VideoInfo(
            path=str(path),
            codec=stream.codec_context.name,
            width=width,
            height=height,
            fps=float(fps),
            frames=len(pict),
            duration_s=len(pict) / float(fps),
            pict_types=pict,
            gop_lengths=lengths,
        )
    finally:
        container.close()
