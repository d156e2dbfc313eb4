"""Every kind of bad input raises a VideoError subclass that names the file and the reason."""

from __future__ import annotations

import av
import numpy as np
import pytest

import cvpt
from cvpt.codec.encode import target_size


def _audio_only(path):
    with av.open(str(path), "w") as c:
        s = c.add_stream("pcm_s16le", rate=16000)
        frame = av.AudioFrame.from_ndarray(
            np.zeros((1, 1600), np.int16), format="s16", layout="mono"
        )
        frame.sample_rate = 16000
        for p in s.encode(frame):
            c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    return path


@pytest.mark.parametrize("reader", [cvpt.read_clip, cvpt.probe])
def test_missing_file(tmp_path, reader):
    with pytest.raises(cvpt.VideoNotFoundError, match="no such file") as e:
        reader(tmp_path / "nope.mp4")
    assert "nope.mp4" in str(e.value) and isinstance(e.value, FileNotFoundError)


@pytest.mark.parametrize("reader", [cvpt.read_clip, cvpt.probe])
def test_not_a_video(tmp_path, reader):
    bad = tmp_path / "notes.mp4"
    bad.write_text("this is not a video\n" * 20)
    with pytest.raises(cvpt.NotAVideoError, match=r"notes\.mp4"):
        reader(bad)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(cvpt.NotAVideoError, match="empty"):
        reader(empty)


@pytest.mark.parametrize("reader", [cvpt.read_clip, cvpt.probe])
def test_audio_only(tmp_path, reader):
    path = _audio_only(tmp_path / "speech.wav")
    with pytest.raises(cvpt.NotAVideoError, match=r"no video stream.*audio"):
        reader(path)


def test_zero_frames(tmp_path, videos):
    # an mkv cut right after its header: a video stream with no frame in it
    data = videos["vp8"].read_bytes()
    cut = tmp_path / "header_only.webm"
    cut.write_bytes(data[:200])
    for fn in (cvpt.read_clip, cvpt.probe):
        with pytest.raises(cvpt.VideoError, match=r"header_only\.webm"):
            fn(cut)
    with pytest.raises(cvpt.VideoError, match=r"header_only\.webm"):
        cvpt.reencode(cut, tmp_path / "out.mp4")


def test_truncated_file(tmp_path, videos):
    data = videos["prepared"].read_bytes()
    cut = tmp_path / "truncated.mp4"
    cut.write_bytes(data[: len(data) // 2])  # mp4 from PyAV keeps its index at the end
    with pytest.raises(cvpt.VideoError, match=r"truncated\.mp4"):
        cvpt.read_clip(cut)


@pytest.mark.parametrize("name", ["x264_bframes", "gop6", "vp8"])
def test_unprepared_layouts_tell_the_user_to_prepare(videos, name):
    with pytest.raises(cvpt.UnpreparedVideoError, match="cvpt prepare") as e:
        cvpt.read_clip(videos[name])
    assert videos[name].name in str(e.value)


def test_probe_reports_the_layout(videos):
    assert not cvpt.probe(videos["prepared"]).layout_problems()
    info = cvpt.probe(videos["x264_bframes"])
    assert info.has_b_frames and "B-frames" in info.layout_problems()[0]
    assert "GOP pattern" in cvpt.probe(videos["gop6"]).layout_problems()[0]
    assert cvpt.probe(videos["prepared"]).gop_pattern == "6 × IPPPPPPPPPPP"


def test_odd_sizes_are_made_even(tmp_path, videos):
    assert cvpt.probe(videos["odd"]).width == 127
    res = cvpt.reencode(videos["odd"], tmp_path / "odd.mp4", short_side=None)
    assert (res.width, res.height) == (126, 94)
    res = cvpt.reencode(videos["odd"], tmp_path / "odd256.mp4")
    assert res.height == 256 and res.width % 2 == 0
    clip = cvpt.read_clip(tmp_path / "odd256.mp4")
    assert clip.iframes.shape[1:3] == (256, res.width)


def test_frame_sizes_that_are_not_multiples_of_16(tmp_path):
    from cvpt.data.generate import translating_texture

    frames = translating_texture(2, 0, frames=48, height=90, width=134, seed=2)
    path = cvpt.write_video(tmp_path / "v.mp4", frames)
    for cell in (4, 16):
        clip = cvpt.read_clip(path, mv_cell=cell)
        assert clip.mvs.shape == (12, 90, 134, 2)


def test_target_size():
    assert target_size(320, 240, 256) == (342, 256)
    assert target_size(240, 320, 256) == (256, 342)
    assert target_size(127, 95, None) == (126, 94)
    assert target_size(1920, 1080, 256) == (456, 256)


def test_reencode_never_overwrites(tmp_path, videos):
    src = tmp_path / "src.mp4"
    src.write_bytes(videos["prepared"].read_bytes())
    before = src.read_bytes()
    with pytest.raises(cvpt.EncodeError, match="source itself"):
        cvpt.reencode(src, src)
    out = tmp_path / "out.mp4"
    out.write_bytes(b"user data")
    with pytest.raises(cvpt.EncodeError, match="exists"):
        cvpt.reencode(src, out)
    assert out.read_bytes() == b"user data" and src.read_bytes() == before


@pytest.mark.parametrize("train", [False, True])
def test_an_unprepared_layout_is_named_whatever_its_gop_and_frame_order(tmp_path, train):
    """A camera file (one key frame, or a long GOP, with or without B-frames) read as it is:
    read_clip says what is not in cvpt's layout and to prepare it, never that it is corrupt."""
    from cvpt.data.generate import moving_scene

    frames = moving_scene(frames=100, height=48, width=64, seed=2)
    kinds = {
        "one_key_mpeg4": dict(gop=250),
        "one_key_h264": dict(codec="libx264", gop=250),
        "b_frames_h264": dict(codec="libx264", gop=250, max_b_frames=2),
        "gop30_h264": dict(codec="libx264", gop=30),
        "gop24_mpeg4": dict(gop=24),
        "b_frames_mpeg4": dict(max_b_frames=2),
    }
    for name, kw in kinds.items():
        path = cvpt.write_video(tmp_path / f"{name}.mp4", frames, **kw)
        for seed in range(3):
            with pytest.raises(cvpt.UnpreparedVideoError, match="cvpt prepare") as e:
                cvpt.read_clip(path, train=train, rng=seed)
            assert "corrupt" not in e.value.reason.lower(), (name, e.value.reason)
