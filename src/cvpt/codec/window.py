"""Reading a video as its re-encode would read, re-encoding only the GOPs the views read.

``cvpt.Predictor`` reads ``clips`` clips of ``num_gops`` GOPs from each video. A video not in
cvpt's layout used to be probed by decoding all of it, re-encoded whole (``reencode``),
verified by decoding again, and then read. Now one demux pass (:mod:`cvpt.codec.packets`:
``survey``, ``layout_problems``, ``reencoded_frames``) says whether a file is ready (read as
it is, decoded once) and, when the packets prove that source frame ``k`` becomes output frame
``k``, how many frames the re-encode would write; then:

- :func:`encode_windows`: output frames ``[a, b)`` on the GOP grid, encoded alone
  (:class:`cvpt.codec.encode.WindowEncoder`): byte for byte the packets the whole re-encode
  writes there, so every clip read from them is bit-identical (tests/test_window.py). The
  source is decoded from the key frame before each window; frames no window shows and no
  frame refers to are not decoded. A frame the plan did not expect raises
  :class:`WindowMismatch`, and the caller re-encodes the whole file.

What only decoding every frame can find is not looked for: a packet that fails to decode in
a part no window reads (it does not change the windows; ``reencode`` would have warned).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import av

from cvpt.codec.container import (
    ffmpeg_errors,
    open_video,
)
from cvpt.codec.encode import WindowEncoder
from cvpt.codec.packets import Survey

if TYPE_CHECKING:
    import numpy as np  # imported where windows are planned: verifying a file never needs it

# The GOP of the copy ``cvpt.predictor.prepared`` re-encodes (``reencode``'s default).
PREPARED_GOP = 12
# Decoders whose skip_frame="NONREF" drops only frames no other frame refers to, checked
# bit-exact by the tests; others decode every frame (what a skipped frame leaves behind in
# their state is not known here: HEVC's sub-layer non-references, VP9's entropy contexts).
_SKIPS_NONREF = {"h264", "mpeg4"}


class WindowMismatch(Exception):
    """A decoded frame was not what the survey promised: re-encode the whole file instead."""


def gop_windows(starts: list[int], clip_gops: int, num_gops: int) -> list[tuple[int, int]]:
    """GOP ranges ``[first, end)`` that hold the clips starting at GOPs ``starts`` (each
    ``clip_gops`` long, cut at the video's ``num_gops``), overlapping or touching ones merged:
    each range is encoded once, and read from at several starts."""
    out: list[list[int]] = []
    for a in sorted(set(starts)):
        b = min(a + clip_gops, num_gops)
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def encode_windows(
    s: Survey,
    frames: int,
    windows: list[tuple[int, int]],
    folder: Path,
    *,
    short_side: int | None,
    gop: int = 12,
) -> list[Path]:
    """Encode output GOPs ``[first, end)`` of each window (sorted, disjoint) of what
    ``reencode(s.path, short_side=short_side, gop=gop)`` writes (``frames`` frames,
    :func:`reencoded_frames`), each into its own file under ``folder``, named as the source
    with ``.mp4``; return their paths. The source is decoded once, in order, seeking only
    forward to the key frame before a window when that skips packets. Raises
    :class:`WindowMismatch` when a decoded frame is not what the survey promised."""
    import numpy as np

    n = s.frames
    ranges = [(a * gop, min(b * gop, frames)) for a, b in windows]
    needed = np.zeros(n, bool)
    for a, b in ranges:
        needed[min(a, n - 1) : min(b, n)] = True
    source = _Source(s, needed)
    paths: list[Path] = []
    try:
        stream: Iterator[tuple[int, av.VideoFrame]] | None = None
        for k, (a, b) in enumerate(ranges):
            key = source.key_before(min(a, n - 1), min(b, n))
            if stream is None or key > source.pos + 1:  # seeking skips packets
                stream = source.frames_from(key)
            path = folder / str(k) / (s.path.stem + ".mp4")
            path.parent.mkdir(parents=True)
            _encode_window(s, stream, a, b, path, short_side=short_side, gop=gop)
            paths.append(path)
    finally:
        source.close()
    return paths


def _encode_window(s: Survey, stream, a: int, b: int, path: Path, **options) -> None:
    """Output frames ``[a, b)`` into ``path``: output frame ``k`` shows source frame ``k``,
    the last source frame held to the end of the output."""
    n = s.frames
    first, stop = min(a, n - 1), min(b, n)
    enc = WindowEncoder(path, s.path, s.first, s.rate, a, sar=s.sample_aspect, **options)
    try:
        want = first
        for rank, frame in stream:
            if frame.is_corrupt:  # reencode reports the damage the decoder concealed
                raise WindowMismatch(f"frame {rank} is damaged (concealed by the decoder)")
            if rank < want:  # a frame before the window, decoded as a reference
                if rank >= first:
                    raise WindowMismatch(f"frame {rank} came out twice")
                continue
            if rank > want:
                raise WindowMismatch(f"frame {want} did not come out of the decoder")
            if frame.interlaced_frame:  # reencode deinterlaces it, from the frames around it
                raise WindowMismatch(f"frame {rank} is interlaced")
            converted = enc.convert(frame)
            if rank < n - 1:
                enc.write(converted)
            else:  # the last frame: held as long as reencode holds it
                if frame.duration != s._last().duration:
                    raise WindowMismatch("the last frame's duration is not its packet's")
                for _ in range(max(a, rank), b):
                    enc.write(converted)
            want += 1
            if want == stop:
                return
        raise WindowMismatch(f"the source ends before frame {want}")
    finally:
        enc.close()


class _Source:
    """The source's frames, decoded in one pass: ``(display rank, frame)`` in display order
    from a key frame on. Frames no window needs and no frame refers to are skipped by the
    decoder where that is exact (``_SKIPS_NONREF``)."""

    def __init__(self, s: Survey, needed: np.ndarray):
        import numpy as np

        self.s, self.needed = s, needed
        self.container, self.stream = open_video(s.path)
        self.rank_of = {int(p): r for r, p in enumerate(np.sort(np.asarray(s.pts)))}
        self.index_of = {p: i for i, p in enumerate(s.pts)}  # decode order
        self.skips = s.codec in _SKIPS_NONREF
        self.pos = -1  # the last packet fed to the decoder (decode order)

    def key_before(self, first: int, stop: int) -> int:
        """The last key packet at or before every packet of display ranks ``[first, stop)``
        in decode order, and shown no later than ``first``: decoding from it gives them all,
        none of them a leading picture of an open GOP."""
        import numpy as np

        by_rank = np.argsort(np.asarray(self.s.pts), kind="stable")
        earliest = int(by_rank[first:stop].min())
        start = self.s.pts[int(by_rank[first])]
        for i in range(earliest, -1, -1):
            if self.s.keys[i] and self.s.pts[i] <= start:
                return i
        raise WindowMismatch(f"no key frame before frame {first}")

    def frames_from(self, key: int) -> Iterator[tuple[int, av.VideoFrame]]:
        self.container.seek(self.s.pts[key], stream=self.stream, backward=True)
        cc, landed = self.stream.codec_context, False
        with ffmpeg_errors(self.s.path, "reading its packets failed"):
            for packet in self.container.demux(self.stream):
                if packet.size and not packet.is_discard:
                    i = self.index_of.get(packet.pts)
                    if i is None or (not landed and i > key):
                        raise WindowMismatch(f"seeking to packet {key} landed elsewhere")
                    landed, self.pos = True, i
                    skip = self.skips and not self.needed[self.rank_of[packet.pts]]
                    cc.skip_frame = "NONREF" if skip else "DEFAULT"
                try:
                    decoded = packet.decode()
                except av.FFmpegError as e:  # reencode would skip it, and warn
                    raise WindowMismatch(f"packet {self.pos} does not decode ({e})") from e
                for frame in decoded:
                    rank = self.rank_of.get(frame.pts)
                    if rank is None:
                        raise WindowMismatch(f"a frame at pts {frame.pts} the packets lack")
                    yield rank, frame

    def close(self) -> None:
        self.container.close()
