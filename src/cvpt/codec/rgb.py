"""Raw RGB frames of a video: the one reader of the raw-video pipelines cvpt is measured
against (VideoMAE-style views, :mod:`cvpt.bench.rgb` and :mod:`cvpt.bench.reader`) and of RGB
pre-training (:mod:`cvpt.training.pretrain`).

It reads what a player shows, by frame number: frames are numbered by their timestamps (so a
source with B-frames is read in display order), the reader seeks to the key frame at or before
the first frame asked for (from the container's index: any GOP layout), decodes with one
thread and converts only the frames asked for, so a caller pays the decode floor of its window
and the colour conversion of the frames it uses, nothing more.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from pathlib import Path

import av
import numpy as np

from cvpt.codec.container import count_packets, ffmpeg_errors, open_video, rational
from cvpt.errors import CorruptVideoError, EmptyVideoError


class RgbVideo:
    """One video opened for its RGB frames (a context manager; closes the file on exit).

    ``frames``: the frame count (the header's, else one pass over the packets, no decoding:
    :func:`cvpt.codec.container.count_packets`). Raises :class:`~cvpt.errors.VideoError`
    subclasses naming the file when it cannot be opened."""

    def __init__(self, path: str | Path):
        self.path = path
        self.container, self.stream = open_video(path)
        self._frames: int | None = self.stream.frames or None

    def __enter__(self) -> RgbVideo:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.container.close()

    @property
    def frames(self) -> int:
        if self._frames is None:  # counted once per file (and sought back to the start)
            counts = count_packets(self.container, self.path, [self.stream])
            self._frames = counts[self.stream.index]
        return self._frames

    def read(self, wanted: Collection[int] | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """``(index, uint8 [H, W, 3])`` of each frame of ``wanted`` (every frame when None),
        once each, in display order; frame ``index`` is the one shown ``index`` frame durations
        after the stream's start. Read once per opening (it seeks forward). Raises
        :class:`~cvpt.errors.VideoError` subclasses naming the file: a stream FFmpeg cannot
        decode, frames asked for that it does not hold (never a frame silently left out),
        untimed frames where frames are asked for by number."""
        path, container, stream = self.path, self.container, self.stream
        todo = None if wanted is None else set(wanted)
        if todo is not None and not todo:
            return
        if todo is not None:
            seek_to_frame(container, stream, min(todo))
        rate, tick = rational(stream.average_rate), rational(stream.time_base)
        per_frame = float(1 / (rate * tick)) if rate and tick else None  # pts ticks per frame
        start = stream.start_time or 0
        with ffmpeg_errors(path, "decoding failed"):
            for k, frame in enumerate(container.decode(stream)):
                if todo is None:
                    yield k, frame.to_ndarray(format="rgb24", threads=1)
                    continue
                if frame.pts is None or per_frame is None:
                    raise CorruptVideoError(path, "its frames are not timed: cannot number them")
                index = round((frame.pts - start) / per_frame)
                if index in todo:
                    todo.discard(index)
                    yield index, frame.to_ndarray(format="rgb24", threads=1)
                    if not todo:
                        return
        if todo:
            missing = sorted(todo)
            more = " …" if len(missing) > 5 else ""
            raise EmptyVideoError(path, f"frame(s) {missing[:5]}{more} are not in its stream")


def seek_to_frame(container: av.container.InputContainer, stream, index: int) -> None:
    """Seek to the key frame at or before frame ``index`` (from the container's index); without
    an index entry for it, stay where the container is (the start, when just opened)."""
    entries = stream.index_entries
    if len(entries) > index:
        key = next((k for k in range(index, -1, -1) if entries[k].is_keyframe), 0)
        if key:
            container.seek(entries[key].timestamp, stream=stream, backward=True)


def read_rgb(path: str | Path) -> np.ndarray:
    """Every frame of ``path`` as ``uint8 [T, H, W, 3]`` (display order)."""
    with RgbVideo(path) as video:
        frames = [f for _, f in video.read()]
    if not frames:
        raise EmptyVideoError(path, "no decodable video frame")
    return np.stack(frames)
