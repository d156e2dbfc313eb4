"""Encoding with PyAV: the compressed layout CVPT reads, and re-encoding any input into it.

The layout (DESIGN.md §1, CoViAR's convention): MPEG-4 Part 2 (``mpeg4``) in mp4, GOP 12, no
B-frames, so every GOP is ``IPPPPPPPPPPP``; fixed quantiser q=2; short side 256.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from cvpt.codec.container import ffmpeg_errors, open_video, stream_fps
from cvpt.codec.probe import probe
from cvpt.errors import EmptyVideoError, EncodeError, VideoError
from cvpt.io import atomic_output

# Codecs whose encoder takes a fixed quantiser (qscale) rather than a rate factor.
_QSCALE_CODECS = {"mpeg4", "mpeg2video", "msmpeg4", "msmpeg4v2"}


class VideoWriter:
    """Write RGB frames (or decoded ``av.VideoFrame``s) to a video file, one per call.

    ``gop`` frames per GOP, ``max_b_frames`` B-frames between references. For ``mpeg4`` the
    quantiser is fixed at ``q`` (``qscale`` with ``qmin = qmax = q``; ``global_quality`` has no
    effect through PyAV) and scene-cut I-frames are off. For ``libx264`` the GOP is fixed with
    ``keyint = min-keyint = gop``, ``scenecut=0`` and ``ref=1`` (with more references the exported
    MVs may point several frames back and nothing says which). Other encoders get their defaults.

    ``dia_size`` widens the MPEG-4 encoder's diamond motion search (FFmpeg's default, which CoViAR
    used, is ``None`` here). Measured on translating textures (docs/design.md): at 8 px/frame the
    share of exact MVs rises from 88–98% to 97–99.6% for +10% encode time, so 4 is the default.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        width: int,
        height: int,
        fps: float | Fraction = 30,
        codec: str = "mpeg4",
        gop: int = 12,
        max_b_frames: int = 0,
        q: int = 2,
        crf: int = 18,
        dia_size: int | None = 4,
        container_format: str | None = None,
        options: dict[str, str] | None = None,
    ):
        if width % 2 or height % 2:
            raise ValueError(f"yuv420p needs even frame sizes, got {width}x{height}")
        self.path = Path(path)
        self.width, self.height = width, height
        self._container = av.open(str(self.path), mode="w", format=container_format)
        try:
            rate = _encodable_rate(fps)
            stream = self._container.add_stream(codec, rate=rate)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            cc = stream.codec_context
            cc.gop_size = gop
            cc.max_b_frames = max_b_frames
            opts: dict[str, str] = {}
            if codec in _QSCALE_CODECS:
                cc.qscale = True
                cc.qmin = cc.qmax = q
                opts["sc_threshold"] = "1000000000"
                if dia_size is not None:
                    opts["dia_size"] = str(dia_size)
            elif codec == "libx264":
                opts["x264-params"] = (
                    f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes={max_b_frames}:ref=1"
                )
                opts["crf"] = str(crf)
            opts.update(options or {})
            stream.options = opts
            self._stream = stream
            self._time_base = Fraction(1) / rate
        except BaseException:
            self._container.close()
            raise
        self._count = 0

    @property
    def frames_written(self) -> int:
        return self._count

    def write(self, frame: np.ndarray | av.VideoFrame) -> None:
        """Encode one frame: ``uint8 [H, W, 3]`` RGB, or a decoded frame of the right size."""
        if isinstance(frame, np.ndarray):
            if frame.shape != (self.height, self.width, 3) or frame.dtype != np.uint8:
                raise ValueError(
                    f"expected uint8 [{self.height}, {self.width}, 3] RGB, "
                    f"got {frame.dtype} {list(frame.shape)}"
                )
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        # A decoded frame keeps its source picture type and the encoder obeys a forced I: reset
        # it, or the source's I-frames reappear off the GOP grid.
        frame.pict_type = av.video.frame.PictureType.NONE
        frame.pts = self._count
        frame.time_base = self._time_base
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self._count += 1

    def close(self) -> None:
        """Flush the encoder and close the file."""
        if self._container is None:
            return
        try:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
        finally:
            self._container.close()
            self._container = None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_video(path: str | Path, frames: np.ndarray, **writer_options) -> Path:
    """Encode ``uint8 [T, H, W, 3]`` RGB frames to ``path`` (see :class:`VideoWriter`)."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be [T, H, W, 3] RGB, got {list(frames.shape)}")
    with VideoWriter(path, width=frames.shape[2], height=frames.shape[1], **writer_options) as w:
        for f in frames:
            w.write(f)
    return Path(path)


def target_size(width: int, height: int, short_side: int | None) -> tuple[int, int]:
    """Output ``(width, height)``: short side scaled to ``short_side`` (aspect kept), both even.

    ``short_side=None`` (or 0) keeps the size, rounded down to even, as yuv420p requires.
    """
    if not short_side:
        return max(2, width - width % 2), max(2, height - height % 2)
    short = short_side - short_side % 2
    if width <= height:
        return short, max(2, round(height * short_side / width / 2) * 2)
    return max(2, round(width * short_side / height / 2) * 2), short


@dataclass
class ReencodeResult:
    """What :func:`reencode` wrote."""

    src: str
    dst: str
    frames: int
    width: int
    height: int
    fps: float
    decode_errors: int  # damaged source packets skipped (the frames around them are kept)
    seconds: float


def reencode(
    src: str | Path,
    dst: str | Path,
    *,
    gop: int = 12,
    short_side: int | None = 256,
    q: int = 2,
    codec: str = "mpeg4",
    dia_size: int | None = 4,
    overwrite: bool = False,
    verify: bool = True,
) -> ReencodeResult:
    """Re-encode any video ``src`` into the compressed layout CVPT reads, written to ``dst``.

    MPEG-4 Part 2 (``codec="mpeg4"``, default) or H.264 (``"libx264"``) in mp4, ``gop`` frames per
    GOP, no B-frames, fixed quantiser ``q``, short side resized to ``short_side`` (even sizes),
    MPEG-4 motion search ``dia_size`` (see :class:`VideoWriter`).
    Audio is dropped. ``dst`` is written through a temp file and renamed, so it is never half
    written; it is refused when it is ``src`` itself, and when it exists unless ``overwrite``.
    With ``verify`` the output is decoded and its ``IPP…P`` pattern checked before the rename.

    Raises :class:`cvpt.VideoError` subclasses naming ``src`` (unreadable input) or ``dst``
    (:class:`EncodeError`).
    """
    t0 = time.perf_counter()
    src, dst = Path(src), Path(dst)
    if dst.exists() and src.exists() and dst.resolve() == src.resolve():
        raise EncodeError(
            dst, "the output path is the source itself; cvpt never overwrites a source"
        )
    if dst.exists() and not overwrite:
        raise EncodeError(dst, "the output exists (pass overwrite=True to replace it)")
    if dst.suffix.lower() != ".mp4":
        raise EncodeError(dst, "the output must be an .mp4 file")
    if codec not in ("mpeg4", "libx264"):
        raise EncodeError(dst, f"codec must be 'mpeg4' or 'libx264', got {codec!r}")

    container, stream = open_video(src, thread_type="AUTO")
    decode_errors = 0
    try:
        fps = stream_fps(stream)
        writer = None
        with atomic_output(dst) as tmp:
            try:
                for frame in _decode_tolerant(container, stream, src):
                    if isinstance(frame, Exception):
                        decode_errors += 1
                        continue
                    if writer is None:
                        w, h = target_size(frame.width, frame.height, short_side)
                        writer = VideoWriter(
                            tmp,
                            width=w,
                            height=h,
                            fps=fps,
                            codec=codec,
                            gop=gop,
                            q=q,
                            dia_size=dia_size,
                            container_format="mp4",
                        )
                    writer.write(
                        frame.reformat(
                            width=writer.width,
                            height=writer.height,
                            format="yuv420p",
                            interpolation="BICUBIC",
                            threads=1,
                        )
                    )
            finally:
                if writer is not None:
                    writer.close()
            if writer is None or writer.frames_written == 0:
                raise EmptyVideoError(src, "no decodable video frame")
            if verify:
                info = probe(tmp)
                problems = info.layout_problems(gop=gop)
                if problems or info.frames != writer.frames_written:
                    problems.append(
                        f"{info.frames} frames read back, {writer.frames_written} written"
                    )
                    raise EncodeError(
                        dst, "the re-encoded output does not verify: " + "; ".join(problems)
                    )
    except VideoError:
        raise
    except (av.FFmpegError, OSError) as e:
        raise EncodeError(dst, f"encoding failed ({e})") from e
    finally:
        container.close()
    return ReencodeResult(
        src=str(src),
        dst=str(dst),
        frames=writer.frames_written,
        width=writer.width,
        height=writer.height,
        fps=float(fps),
        decode_errors=decode_errors,
        seconds=time.perf_counter() - t0,
    )


def _decode_tolerant(container, stream, path, max_errors: int = 50):
    """Yield decoded frames, and an Exception in place of each damaged packet.

    Like the ffmpeg CLI, a transcode goes on past a damaged packet; after ``max_errors`` of them
    the file is declared corrupt.
    """
    errors = 0
    with ffmpeg_errors(path, "demuxing failed"):
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.FFmpegError as e:
                errors += 1
                if errors > max_errors:
                    raise
                yield e
                continue
            yield from frames


def _encodable_rate(fps: float | Fraction) -> Fraction:
    """A frame rate whose time base MPEG-4 accepts (denominator of 1/rate at most 65535)."""
    rate = Fraction(fps).limit_denominator(1001)
    if rate <= 0:
        raise ValueError(f"frame rate must be positive, got {fps}")
    if rate.numerator > 65535:
        rate = Fraction(round(float(rate) * 100), 100)
    return rate
