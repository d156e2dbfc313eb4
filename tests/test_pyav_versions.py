"""What PyAV 18 and 19 do differently, met by one code path (tests run on whichever is installed:
CI runs PyAV 18 on Python 3.11 and PyAV 19 on the newest Python)."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

import cvpt
from cvpt.codec.container import rational, stream_fps
from cvpt.codec.encode import settings_of, write_video
from cvpt.data.generate import moving_scene

# tags as cameras and old muxers write them: Latin-1, Windows-1251, and a byte no encoding has
_NOT_UTF8 = [b"\xe9t\xe9 \xe0 Paris", b"\xcf\xf0\xe8\xe2\xe5\xf2", b"cam\xff\xfe01"]


@pytest.mark.parametrize("suffix", [".mkv", ".avi"])  # (mp4's demuxer drops such a tag itself)
@pytest.mark.parametrize("tag", _NOT_UTF8)
def test_tags_that_are_not_utf8_are_read_past(tmp_path, tag, suffix):
    # PyAV 18 raises UnicodeDecodeError on reading such a tag unless the file was opened with
    # metadata_errors; PyAV 19 has no such argument (and reads it with surrogateescape)
    scene = moving_scene(frames=24, height=64, width=80, seed=3)
    plain = write_video(tmp_path / f"plain{suffix}", scene)
    placeholder = b"Q" * len(tag)
    tagged = write_video(tmp_path / f"tagged{suffix}", scene, comment=placeholder.decode())
    data = tagged.read_bytes()
    assert data.count(placeholder) == 1
    tagged.write_bytes(data.replace(placeholder, tag))  # same length: the headers stay valid

    assert settings_of(tagged) is None  # the comment tag is read, and is not cvpt's
    want, got = cvpt.read_clip(plain, num_gops=2), cvpt.read_clip(tagged, num_gops=2)
    for name in ("iframes", "mvs", "residuals"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)
    info = cvpt.probe(tagged)
    assert (info.frames, info.width, info.height) == (24, 80, 64)


@pytest.mark.parametrize(
    ("value", "want"),
    [
        (None, None),  # PyAV 18: unset
        (Fraction(0), None),  # PyAV 19: unset is AVRational(0, 1), falsy
        (Fraction(30000, 1001), Fraction(30000, 1001)),
        (Fraction(1, 90000), Fraction(1, 90000)),
    ],
)
def test_rational_reads_both_pyav_types(value, want):
    got = rational(value)
    assert got == want and (got is None or type(got) is Fraction)
    if value and hasattr(av, "AVRational"):  # PyAV 19's own type, with no round() or int()
        got = rational(av.AVRational(value.numerator, value.denominator))
        assert got == want and type(got) is Fraction and round(got) == round(want)


@pytest.mark.parametrize("fps", [Fraction(30000, 1001), Fraction(25), Fraction(24000, 1001)])
def test_frame_rates_and_times_are_fractions(tmp_path, fps):
    path = write_video(tmp_path / "r.mp4", moving_scene(frames=24, height=64, width=80), fps=fps)
    with av.open(str(path)) as c:
        got = stream_fps(c.streams.video[0])
    assert got == fps and type(got) is Fraction
    info = cvpt.probe(path)
    assert info.fps == pytest.approx(float(fps)) and info.duration_s == pytest.approx(24 / fps)
