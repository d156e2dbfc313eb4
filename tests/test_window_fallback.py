"""What the packets cannot prove is never guessed: sources whose kind rules out exact windows
fall back to re-encoding the whole file (same inputs as before, same warnings), and readiness
decided from the packets flags every problem ``probe`` flags (or asks ``probe``)."""

from __future__ import annotations

import warnings
from fractions import Fraction

import av
import numpy as np
import pytest
import torch

import cvpt
from conftest import write_raw
from cvpt import predictor
from cvpt.codec import packets, window
from cvpt.codec.encode import reencode
from cvpt.data.dataset import read_views
from cvpt.data.generate import moving_scene
from cvpt.data.transforms import ClipTransform

pytestmark = pytest.mark.filterwarnings("ignore::cvpt.ShortVideoWarning")
TR = ClipTransform(size=32, short_side=48, crops=3)
X264_GOP12 = {"x264-params": "keyint=12:min-keyint=12:scenecut=0:bframes=0:ref=1"}


def _no_windows(monkeypatch):
    def refuse(*_a, **_k):
        raise AssertionError("encoded windows of a source whose packets cannot prove them")

    monkeypatch.setattr(window, "encode_windows", refuse)


def _inputs(src, monkeypatch=None, clips=2) -> tuple[dict, list[str]]:
    """Predictor's inputs of ``src`` (windows refused when ``monkeypatch`` is given) and the
    warnings on the way."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with monkeypatch.context() if monkeypatch else _nothing() as m:
            if m is not None:
                _no_windows(m)
            got = predictor.source_views(src, TR, clips)
    return got, [str(w.message) for w in caught]


class _nothing:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def _assert_whole(got: dict, src, tmp_path, clips=2) -> None:
    """``got`` == the inputs of the whole file re-encoded (today's path), exactly."""
    whole = reencode(src, tmp_path / "whole.mp4", short_side=TR.short_side, overwrite=True)
    want = read_views(whole.dst, TR, clips)
    assert all(torch.equal(got[k], want[k]) for k in want)


def _vfr(path, **opts):
    """30 fps for 2 s, then 10 fps for 3 s."""
    times = [Fraction(k, 30) for k in range(60)] + [2 + Fraction(k, 10) for k in range(30)]
    tb = Fraction(1, 1000)
    frames = moving_scene(frames=len(times), height=48, width=64)
    return write_raw(
        path, frames, "libx264", pts=[int(t / tb) for t in times], time_base=tb, **opts
    )


def _cut(src, dst, fraction):
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


# --- sources the windows cannot be proven exact for: the whole file, as before ---------------


@pytest.mark.parametrize("name", ["vfr.mp4", "vfr.mkv"])
def test_a_variable_frame_rate_is_reencoded_whole(monkeypatch, tmp_path, name):
    src = _vfr(tmp_path / name)
    assert "variable" in packets.reencoded_frames(packets.survey(src))
    got, _ = _inputs(src, monkeypatch)
    _assert_whole(got, src, tmp_path)


def test_a_truncated_source_is_reencoded_whole_with_its_warning(monkeypatch, tmp_path):
    whole = write_raw(
        tmp_path / "w.mp4",
        moving_scene(frames=120, height=48, width=64),
        "libx264",
        container_options={"movflags": "+faststart"},
        bf="2",
    )
    cut = _cut(whole, tmp_path / "cut.mp4", 0.6)
    assert "truncated" in packets.reencoded_frames(packets.survey(cut))
    got, said = _inputs(cut, monkeypatch)
    assert any("cut.mp4: truncated" in w for w in said)
    _assert_whole(got, cut, tmp_path)


def test_damaged_bytes_in_an_mkv_are_reencoded_whole(monkeypatch, tmp_path):
    whole = write_raw(
        tmp_path / "w.mkv", moving_scene(frames=120, height=48, width=64, seed=6), "libx264"
    )
    data = bytearray(whole.read_bytes())
    a = len(data) // 2
    data[a : a + len(data) // 50] = np.random.default_rng(1).bytes(len(data) // 50)
    bad = tmp_path / "bad.mkv"
    bad.write_bytes(bytes(data))
    assert packets.reencoded_frames(packets.survey(bad)).startswith("damaged")
    got, said = _inputs(bad, monkeypatch)
    assert any("bad.mkv: damaged" in w for w in said)
    _assert_whole(got, bad, tmp_path)


def test_frames_without_timestamps_are_reencoded_whole(monkeypatch, tmp_path):
    # AVI stores no pts: with B-frames FFmpeg makes them up (FrameClock's business)
    frames = moving_scene(frames=75, height=32, width=64)
    src = write_raw(tmp_path / "b.avi", frames, "libx264", rate=25, bf="2")
    assert packets.reencoded_frames(packets.survey(src)) == "AVI stores no frame times"
    got, _ = _inputs(src, monkeypatch)
    _assert_whole(got, src, tmp_path)


def test_an_edit_list_is_reencoded_whole(monkeypatch, tmp_path):
    scene = moving_scene(frames=60, height=48, width=64, seed=5)
    whole = write_raw(tmp_path / "w.mp4", scene, "libx264", **X264_GOP12)
    cut = tmp_path / "cut.mp4"  # as `ffmpeg -ss 0.6 -c copy` writes it: frames 12-17 hidden
    with av.open(str(whole)) as inp, av.open(str(cut), "w") as out:
        s = inp.streams.video[0]
        o = out.add_stream_from_template(s)
        shift = round(18 / s.average_rate / s.time_base)
        for k, p in enumerate(p for p in inp.demux(s) if p.size):
            if k >= 12:
                p.pts, p.dts, p.stream = p.pts - shift, p.dts - shift, o
                out.mux(p)
    assert "edit list" in packets.reencoded_frames(packets.survey(cut))
    got, _ = _inputs(cut, monkeypatch)
    _assert_whole(got, cut, tmp_path)


def test_a_decoder_that_disagrees_with_the_packets_falls_back(monkeypatch, tmp_path):
    src = write_raw(
        tmp_path / "s.mp4", moving_scene(frames=60, height=48, width=64), "libx264", bf="2"
    )

    def disagree(self, key):
        raise window.WindowMismatch("a frame the packets did not promise")
        yield  # (a generator, as the real one)

    monkeypatch.setattr(window._Source, "frames_from", disagree)
    got, _ = _inputs(src)
    _assert_whole(got, src, tmp_path)


def test_the_windows_temporary_files_are_removed(monkeypatch, tmp_path):
    import tempfile

    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    src = write_raw(
        tmp_path / "s.mp4", moving_scene(frames=60, height=48, width=64), "libx264", bf="2"
    )
    predictor.source_views(src, TR, 2)
    assert not list(temp.iterdir())

    def broken(*_a, **_k):
        raise cvpt.CorruptVideoError(src, "made to fail")

    monkeypatch.setattr(predictor, "read_clip", broken)  # fails after the windows exist
    with pytest.raises(cvpt.CorruptVideoError, match="made to fail"):
        predictor.source_views(src, TR, 2)
    assert not list(temp.iterdir())


def test_audio_only_is_an_error_naming_the_file(tmp_path):
    from test_bad_input import _audio_only

    with pytest.raises(cvpt.NotAVideoError, match=r"speech\.wav.*no video stream"):
        predictor.source_views(_audio_only(tmp_path / "speech.wav"), TR, 2)
