"""Readiness from the packets (``cvpt.codec.packets.layout_problems``): a prepared file is read
as it is without ``probe`` decoding it first, and every problem ``probe`` reports of an
otherwise GOP-12 file is still found, so the file is re-encoded (never read wrongly)."""

from __future__ import annotations

import warnings
from fractions import Fraction

import av
import numpy as np
import pytest
import torch

import cvpt
from conftest import concatenate, write_raw
from cvpt import predictor
from cvpt.codec import packets
from cvpt.codec.bitstream import h264_length_size, h264_type, mpeg4_type
from cvpt.codec.encode import reencode, write_video
from cvpt.codec.probe import _TYPE_LETTER
from cvpt.data.dataset import read_views
from cvpt.data.generate import moving_scene
from cvpt.data.transforms import ClipTransform

pytestmark = pytest.mark.filterwarnings("ignore::cvpt.ShortVideoWarning")
TR = ClipTransform(size=32, short_side=48, crops=1)
X264_GOP12 = "keyint=12:min-keyint=12:scenecut=0:bframes=0:ref=1"


def _spy_probe(monkeypatch) -> list:
    calls: list = []
    real = packets.probe

    def spy(path):
        calls.append(path)
        return real(path)

    monkeypatch.setattr(packets, "probe", spy)
    return calls


def _assert_reencoded(src, tmp_path) -> None:
    """Predictor's inputs of ``src`` are those of its whole re-encode, exactly."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = predictor.source_views(src, TR, 2)
        res = reencode(src, tmp_path / "whole.mp4", short_side=TR.short_side, overwrite=True)
    want = read_views(res.dst, TR, 2)
    assert all(torch.equal(got[k], want[k]) for k in want)


def test_a_prepared_file_is_read_as_it_is_without_probe(monkeypatch, videos, tmp_path):
    calls = _spy_probe(monkeypatch)
    monkeypatch.setattr(predictor, "_reencoded", None)  # (would fail if called)
    x264 = write_raw(
        tmp_path / "x264.mkv",
        moving_scene(frames=50, height=48, width=64),
        "libx264",
        **{"x264-params": X264_GOP12},
    )
    for path in (videos["prepared"], videos["short"], x264):
        assert packets.layout_problems(path) == [] == cvpt.probe(path).layout_problems()
        got = predictor.source_views(path, TR, 2)
        want = read_views(path, TR, 2)
        assert all(torch.equal(got[k], want[k]) for k in want)
    assert calls == []


def _rotated(path):
    scene = moving_scene(frames=48, height=48, width=64)
    return write_raw(path, scene, "libx264", rotation=90, **{"x264-params": X264_GOP12})


def _vfr(path):
    times = [Fraction(k, 30) for k in range(48)] + [
        Fraction(8, 5) + Fraction(k, 10) for k in range(24)
    ]
    frames = moving_scene(frames=len(times), height=48, width=64)
    tb = Fraction(1, 1000)
    return write_raw(
        path,
        frames,
        "libx264",
        pts=[int(t / tb) for t in times],
        time_base=tb,
        **{"x264-params": X264_GOP12},
    )


def _truncated(path):
    whole = write_raw(
        path.with_name("whole.mp4"),
        moving_scene(frames=120, height=48, width=64),
        "mpeg4",
        container_options={"movflags": "+faststart"},
        g="12",
        bf="0",
        sc_threshold="1000000000",
    )
    path.write_bytes(whole.read_bytes()[: int(whole.stat().st_size * 0.55)])
    return path


def _size_change(path):
    # key frames repeat their parameter sets (as many encoders do): the size may change
    x = {"x264-params": X264_GOP12 + ":repeat-headers=1"}
    parts = [
        write_raw(
            path.with_name(f"p{k}.mkv"), moving_scene(frames=36, height=h, width=w), "libx264", **x
        )
        for k, (w, h) in enumerate([(64, 48), (96, 32)])
    ]
    return concatenate(path, parts, 1200)


def _b_frames(path):
    return write_raw(path, moving_scene(frames=48, height=48, width=64), "mpeg4", g="12", bf="2")


def _gop6(path):
    return write_video(path, moving_scene(frames=48, height=48, width=64), gop=6)


def _inner_iframe(path):
    """GOP 12 with the key flags of GOP 12, but frame 18 an I-frame (from a GOP-6 encode of
    the same frames, its key flag cleared): only the picture types show it."""
    scene = moving_scene(frames=48, height=48, width=64)
    g12 = write_video(path.with_name("g12.mp4"), scene)
    g6 = write_video(path.with_name("g6.mp4"), scene, gop=6)
    with av.open(str(g12)) as a, av.open(str(g6)) as b, av.open(str(path), "w") as out:
        o = out.add_stream_from_template(a.streams.video[0])
        other = [p for p in b.demux(video=0) if p.size]
        for k, p in enumerate(p for p in a.demux(video=0) if p.size):
            if k == 18:
                p = other[18]
                p.is_keyframe = False
            p.stream = o
            out.mux(p)
    return path


@pytest.mark.parametrize(
    ("make", "name", "said", "found"),
    [
        (_rotated, "rot.mp4", "rotated 90°", None),
        (_vfr, "vfr.mp4", "its frame rate is variable", None),
        (_truncated, "cut.mp4", "truncated", None),
        (_size_change, "size.mkv", "its frame size changes", None),
        (_inner_iframe, "inner.mp4", "frame 18 is I", None),
        # once the packets show the file is not ready they are not parsed on: other words
        (_gop6, "gop6.mp4", "GOP pattern is", "its key frames are at frames 0, 6, 12"),
        (_b_frames, "b.mp4", "B-frames", "stored out of display order (B-frames)"),
    ],
)
def test_every_problem_probe_reports_is_found(monkeypatch, tmp_path, make, name, said, found):
    src = make(tmp_path / name)
    want = cvpt.probe(src).layout_problems()
    assert any(said in p for p in want)
    calls = _spy_probe(monkeypatch)
    got = packets.layout_problems(src)
    assert got == want if found is None else any(found in p for p in got)
    assert bool(calls) == (name == "size.mkv")  # parameter sets in the stream: probe asked
    _assert_reencoded(src, tmp_path)


def test_read_clips_own_checks_send_a_file_to_be_reencoded(monkeypatch, tmp_path):
    # a GOP-12 file whose packets look ready but one frame is not what read_clip needs:
    # (here: the survey is told nothing is wrong) read_clip refuses it, and it is re-encoded
    src = _rotated(tmp_path / "rot.mp4")
    monkeypatch.setattr(packets, "layout_problems", lambda *a, **k: [])
    _assert_reencoded(src, tmp_path)
    with pytest.raises(cvpt.UnpreparedVideoError, match=r"rot\.mp4.*rotated 90"):
        predictor.source_views(src, TR, 2, prepare=False)


@pytest.mark.parametrize(
    ("name", "codec", "opts"),
    [
        ("b.mp4", "mpeg4", {"bf": "2", "g": "30"}),
        ("pyramid.mp4", "libx264", {"bf": "3"}),
        ("cuts.mkv", "libx264", {"x264-params": "keyint=40:min-keyint=30:bframes=2"}),
    ],
)
def test_picture_types_from_the_packets_are_the_decoders(tmp_path, name, codec, opts):
    frames = moving_scene(frames=90, height=48, width=64, seed=3)
    frames[45:] = frames[45:, ::-1]  # a scene cut: x264 puts an I-frame that is no key frame
    src = write_raw(tmp_path / name, frames, codec, **opts)
    with av.open(str(src)) as c:
        s = c.streams.video[0]
        size = h264_length_size(s.codec_context.extradata)
        packets = sorted((p.pts, bytes(p)) for p in c.demux(s) if p.size)
    with av.open(str(src)) as c:
        decoded = "".join(_TYPE_LETTER[f.pict_type] for f in c.decode(video=0))
    parse = mpeg4_type if codec == "mpeg4" else (lambda d: h264_type(d, size))
    assert "".join(parse(d) for _, d in packets) == decoded
    assert "B" in decoded and decoded.count("I") > 1


def test_in_band_headers_and_annex_b_cannot_tell(tmp_path):
    assert mpeg4_type(b"\0\0\1\xb0\x01\0\0\1\xb6\x10") is None  # a VOS header before the VOP
    assert mpeg4_type(b"\0\0\1\xb6\x10\0\0\1\xb6\x50") is None  # packed B-frames
    assert mpeg4_type(b"\0\0\1\xb6\x50") == "P"
    assert h264_length_size(b"\0\0\0\1\x67") is None  # Annex B extradata
    sps = b"\0\0\0\2\x67\x42"
    idr = b"\0\0\0\2\x65\x88"  # first_mb 0 (1), slice_type 7 = I (0001000)
    assert h264_type(idr, 4) == "I" and h264_type(sps + idr, 4) is None
    assert h264_type(b"\0\0\0\5\x65", 4) is None  # cut short
    assert np.array_equal(packets._slots(np.array([0, 1, 2, 3]), Fraction(1, 2)), [0, 0, 1, 2])
