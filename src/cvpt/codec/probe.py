"""``cvpt.probe``: what a video holds and whether cvpt can trust it as it is.

Frame count, rate, size, codec and GOP pattern, and what real-world files get wrong: display
rotation, colour range, a variable frame rate, several video streams, truncation and damage.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path

import av

from cvpt.codec.container import decode_tolerant, describe_streams, frame_timing, open_video
from cvpt.codec.orient import frame_orientation
from cvpt.errors import EmptyVideoError

# What cvpt.read_clip accepts: CVPT's MPEG-4 Part 2, and the H.264 option of `cvpt prepare`.
READABLE_CODECS = ("mpeg4", "h264")

_TYPE_LETTER = {
    av.video.frame.PictureType.I: "I",
    av.video.frame.PictureType.P: "P",
    av.video.frame.PictureType.B: "B",
}
# AVColorRange names as ffprobe prints them.
_RANGES = {0: "unknown", 1: "tv", 2: "pc"}
# AVColorSpace (the YUV matrix) names as ffprobe prints them.
_MATRICES = {
    0: "gbr",
    1: "bt709",
    2: "unknown",
    4: "fcc",
    5: "bt470bg",
    6: "smpte170m",
    7: "smpte240m",
    9: "bt2020nc",
    10: "bt2020c",
}


@dataclass
class VideoInfo:
    """What :func:`probe` found. ``pict_types`` holds one letter (I/P/B/?) per decoded frame.

    ``frames`` decoded against ``header_frames`` claimed (0: the header does not say);
    ``rotation`` is the display matrix's counter-clockwise angle in degrees (ffprobe's);
    ``color_range`` ``"tv"`` (limited), ``"pc"`` (full) or ``"unknown"``; ``constant_rate``
    whether every frame sits on the ``fps`` grid; ``streams`` every video stream
    (index, codec, size, frames, picture dispositions) and ``stream_index`` the one
    read; ``damage`` why the file looks truncated or damaged ("" when it does not).
    """

    path: str
    codec: str
    width: int
    height: int
    fps: float
    frames: int
    duration_s: float
    pict_types: str = field(repr=False)
    gop_lengths: list[int] = field(repr=False)
    header_frames: int = 0
    decode_errors: int = 0
    rotation: int = 0
    mirrored: bool = False
    color_range: str = "unknown"
    colorspace: str = "unknown"
    constant_rate: bool = True
    stream_index: int = 0
    streams: list[dict] = field(default_factory=list)
    damage: str = ""

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
        """Why this video is not ready for read_clip as it is (empty list: it is). Besides the
        layout (codec, GOP, B-frames): a display rotation, a variable frame rate and damage,
        which read_clip would not see and ``cvpt prepare`` fixes or reports."""
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
        if self.rotation or self.mirrored:
            turn = f"rotated {self.rotation}°" + (" and mirrored" if self.mirrored else "")
            problems.append(f"it is displayed {turn} (a display matrix)")
        if not self.constant_rate:
            problems.append("its frame rate is variable")
        if self.damage:
            problems.append(self.damage)
        return problems

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("pict_types")
        d.update(
            num_gops=self.num_gops, gop_pattern=self.gop_pattern, has_b_frames=self.has_b_frames
        )
        return d


def probe(path: str | Path) -> VideoInfo:
    """Decode ``path`` once and describe it: codec, size, fps, frames and GOP pattern, display
    rotation, colour range, constant or variable frame rate, the video streams and which one is
    read, and frames that decode against the header's count (damage).

    Picture types come from the decoder (``frame.pict_type``), not from packet key flags: an
    x264 scene-cut I-frame is not a key frame, and P and B are only told apart after decoding.
    Damaged packets are skipped and counted (up to 50) as ``cvpt prepare`` does. Raises
    :class:`cvpt.VideoError` subclasses naming the file.
    """
    container, stream = open_video(path, thread_type="AUTO")
    try:
        types, pts = [], []
        errors, first, end = 0, None, None
        for frame in decode_tolerant(container, stream, path):
            if isinstance(frame, Exception):
                errors += 1
                continue
            if first is None:
                first = frame
            types.append(_TYPE_LETTER.get(frame.pict_type, "?"))
            pts.append(frame.pts)
            end = frame
        if first is None:
            raise EmptyVideoError(path, "the video stream holds no decodable frame")
        rate, constant = frame_timing(stream, pts)
        duration = _decoded_duration(pts, end, rate)
        try:
            orient = frame_orientation(first)
            rotation, mirrored = orient.rotation, orient.mirrored
        except ValueError:  # not a right angle: reported as it is, prepare refuses it
            rotation, mirrored = round(first.rotation), False
        header = max(stream.frames, 0)
        pict = "".join(types)
        starts = [i for i, t in enumerate(pict) if t == "I"]
        if not starts or starts[0] != 0:
            starts = [0, *starts]
        lengths = [b - a for a, b in itertools.pairwise([*starts, len(pict)])]
        return VideoInfo(
            path=str(path),
            codec=stream.codec_context.name,
            width=end.width,
            height=end.height,
            fps=float(rate),
            frames=len(pict),
            duration_s=duration,
            pict_types=pict,
            gop_lengths=lengths,
            header_frames=header,
            decode_errors=errors,
            rotation=rotation,
            mirrored=mirrored,
            color_range=_RANGES.get(int(first.color_range), str(first.color_range)),
            colorspace=_MATRICES.get(int(first.colorspace), str(first.colorspace)),
            constant_rate=constant,
            stream_index=stream.index,
            streams=describe_streams(container, path),
            damage=source_damage(
                decoded=len(pict),
                errors=errors,
                packets=len(pict) + errors,
                header_frames=header,
                expected_s=header_duration(container, stream),
                decoded_s=duration,
                rate=rate,
            ),
        )
    finally:
        container.close()


def _decoded_duration(pts: list, last: av.VideoFrame, rate: Fraction) -> float:
    """Seconds from the first frame's start to the last one's end (by count without times)."""
    known = [p for p in pts if p is not None]
    if len(known) < 2 or last.time_base is None:
        return len(pts) / float(rate)
    known.sort()
    span = (known[-1] - known[0]) * last.time_base
    # the last frame lasts as long as the interval before it, or its own duration if longer
    tail = max((known[-1] - known[-2]) * last.time_base, (last.duration or 0) * last.time_base)
    return float(span + tail)


def source_damage(
    *,
    decoded: int,
    errors: int,
    packets: int,
    header_frames: int,
    expected_s: float | None,
    decoded_s: float | None,
    rate: Fraction,
) -> str:
    """Why a source looks truncated or damaged, from what decoded against what its header and
    packets claim ("" when nothing does). Shared by :func:`reencode` and :func:`cvpt.probe`."""
    why = []
    if header_frames and decoded < header_frames:
        why.append(f"truncated: its header lists {header_frames} frames, {decoded} decode")
    elif not header_frames and expected_s and decoded_s is not None:
        # no frame count (mkv, webm): the header's duration against the last decoded frame's
        # end; a tolerance of two frames and 2% leaves audio that outlasts the video alone
        missing = expected_s - decoded_s
        if missing > 2 / float(rate) + 0.02 * expected_s:
            why.append(
                f"truncated: its header says {expected_s:.2f} s, frames decode to {decoded_s:.2f} s"
            )
    if decoded < packets and not why:
        why.append(f"{packets - decoded} of its {packets} frames do not decode")
    if errors:
        why.append(f"{errors} damaged packet(s) skipped")
    return "; ".join(why)


def header_duration(container, stream) -> float | None:
    """Seconds the header says the video stream (else the file) lasts; None if it does not."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / av.time_base
    return None
