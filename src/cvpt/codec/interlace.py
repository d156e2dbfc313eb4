"""Interlaced frames: deinterlaced with FFmpeg's ``bwdif`` before they are re-encoded.

An interlaced frame holds two fields, the even and the odd rows, taken half a frame apart;
shown as one picture, anything that moves is combed (two images woven together). ``cvpt
prepare`` hands every frame the decoder flags interlaced to ``bwdif`` (FFmpeg's motion-adaptive
"Bob Weaver" deinterlacer, what the ffmpeg CLI's ``-vf bwdif`` runs) in its one-frame-per-frame
mode: the frame rate is kept, each output frame is its frame's first field with the other
field's rows rebuilt from both fields and the frames around it; progressive frames pass
through untouched (``deint=interlaced``). The field order is the frame's own.
"""

from __future__ import annotations

from collections import deque
from fractions import Fraction

import av

# bwdif: one frame out per frame in (send_frame), the field order the frame says (parity auto),
# only the frames flagged interlaced (deint=interlaced)
BWDIF = "mode=send_frame:parity=auto:deint=interlaced"


class Deinterlacer:
    """Decoded frames in, ``(frame, picture)`` pairs out in the same order, one frame late:
    ``frame`` the decoded frame (its times, side data and flags, for the caller's clock),
    ``picture`` its deinterlaced pixels (the frame itself where it is progressive). Built on
    the first frame fed; a change of frame size or pixel format drains the filter and starts
    a new one, as the ffmpeg CLI re-configures its filters."""

    def __init__(self) -> None:
        self._graph: av.filter.Graph | None = None
        self._shape: tuple | None = None
        self._waiting: deque[av.VideoFrame] = deque()  # fed, their pictures not out yet

    def feed(self, frame: av.VideoFrame) -> list[tuple[av.VideoFrame, av.VideoFrame]]:
        shape = (frame.width, frame.height, frame.format.name)
        out = []
        if self._graph is not None and shape != self._shape:
            out = self.flush()
        if self._graph is None:
            self._graph, self._shape = _graph(frame), shape
        self._waiting.append(frame)
        self._graph.push(frame)
        return out + self._pull()

    def flush(self) -> list[tuple[av.VideoFrame, av.VideoFrame]]:
        """The frames still inside the filter; the next frame fed starts a new one."""
        if self._graph is None:
            return []
        self._graph.push(None)
        out = self._pull()
        self._graph = None
        if self._waiting:  # bwdif gives one frame per frame: anything else is a bug here
            raise RuntimeError(f"bwdif held back {len(self._waiting)} frame(s)")
        return out

    def _pull(self) -> list[tuple[av.VideoFrame, av.VideoFrame]]:
        out = []
        while True:
            try:
                picture = self._graph.pull()
            except (av.BlockingIOError, av.EOFError):
                return out
            out.append((self._waiting.popleft(), picture))


def _graph(frame: av.VideoFrame) -> av.filter.Graph:
    graph = av.filter.Graph()
    graph.threads = 1  # the same pixels on every machine, and no threads to start per video
    time_base = frame.time_base or Fraction(1, 1000)  # (the filter does not use times)
    src = graph.add_buffer(
        width=frame.width, height=frame.height, format=frame.format, time_base=time_base
    )
    graph.link_nodes(src, graph.add("bwdif", BWDIF), graph.add("buffersink"))
    graph.configure()
    return graph
