"""cvpt.codec.rgb: the one raw-RGB reader (RGB pre-training, the RGB pipelines of the benches)
gives a plain decode's frames at the numbers asked for, in any layout, or an error naming the
file."""

from __future__ import annotations

import random

import av
import numpy as np
import pytest

from cvpt.codec.rgb import RgbVideo, read_rgb
from cvpt.errors import EmptyVideoError, VideoError

LAYOUTS = ["prepared", "x264_bframes", "vp8", "gop6", "short", "odd"]


def _plain_decode(path) -> np.ndarray:
    """Every frame in display order, the simplest way PyAV offers."""
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


@pytest.mark.parametrize("name", LAYOUTS)
def test_frames_asked_for_are_a_plain_decodes_frames(videos, name):
    everything = _plain_decode(videos[name])
    assert np.array_equal(read_rgb(videos[name]), everything)
    rng = random.Random(name)
    n = len(everything)
    for wanted in ([0], [n - 1], sorted(rng.sample(range(n), 5)), range(n // 3, n, 4)):
        with RgbVideo(videos[name]) as video:
            assert video.frames == n
            got = list(video.read(wanted))
        assert [i for i, _ in got] == sorted(set(wanted))
        for i, frame in got:
            assert np.array_equal(frame, everything[i]), (name, i)


@pytest.mark.parametrize("name", ["prepared", "x264_bframes"])
def test_a_frame_the_stream_does_not_hold_is_an_error_naming_the_file(videos, name):
    with RgbVideo(videos[name]) as video:
        n = video.frames
        with pytest.raises(EmptyVideoError, match=rf"{name}\.\w+: frame\(s\) \[{n}\] are not"):
            list(video.read([n - 1, n]))


def test_a_file_that_is_not_a_video_is_an_error_naming_it(tmp_path):
    bad = tmp_path / "noise.mp4"
    bad.write_bytes(b"\0\0\0\x18ftypisom" + bytes(range(256)) * 4)
    with pytest.raises(VideoError, match=r"noise\.mp4"):
        read_rgb(bad)
