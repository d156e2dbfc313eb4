"""Which GOPs and P-frames a clip takes."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import cvpt
from cvpt.codec.sampling import (
    choose_start_gop,
    clip_gop_indices,
    sample_positions,
    segment_bounds,
    view_start_gops,
)


def test_thirds_of_a_full_gop():
    assert segment_bounds(12, 3) == [(1, 3), (4, 7), (8, 11)]
    assert sample_positions(12, 3, train=False).tolist() == [2, 6, 10]


def test_train_positions_stay_in_their_thirds_and_cover_them():
    rng = np.random.default_rng(0)
    draws = np.stack([sample_positions(12, 3, train=True, rng=rng) for _ in range(500)])
    for k, (lo, hi) in enumerate([(1, 3), (4, 7), (8, 11)]):
        assert set(draws[:, k].tolist()) == set(range(lo, hi + 1))


def test_short_gops_never_leave_the_gop():
    for n in range(1, 13):
        for train in (False, True):
            pos = sample_positions(n, 3, train=train, rng=np.random.default_rng(n))
            assert pos.min() >= (0 if n == 1 else 1) and pos.max() <= n - 1
            assert np.all(np.diff(pos) >= 0)


def test_start_gop_and_views():
    assert choose_start_gop(10, 4, train=False) == 3
    assert choose_start_gop(3, 4, train=False) == 0
    rng = np.random.default_rng(1)
    assert {choose_start_gop(10, 4, train=True, rng=rng) for _ in range(200)} == set(range(7))
    assert view_start_gops(10, 4, 3) == [0, 3, 6]
    assert clip_gop_indices(3, 4, 0).tolist() == [0, 1, 2, 2]


def test_one_view_is_the_centred_clip_of_test_mode():
    """read_views reads a single view as read_clip's test mode does (no GOP count first)."""
    for n in range(1, 60):
        for clip in (1, 2, 4, 8):
            assert view_start_gops(n, clip, 1) == [choose_start_gop(n, clip, train=False)]


def test_clip_has_4_iframes_and_12_pframes_at_test_positions(videos):
    clip = cvpt.read_clip(videos["prepared"])
    h, w = 96, 128
    assert clip.iframes.shape == (4, h, w, 3)
    assert clip.mvs.shape == (12, h, w, 2)
    assert clip.residuals.shape == (12, h, w, 3)
    assert clip.positions.tolist() == [[2, 6, 10]] * 4
    assert clip.gop_indices.tolist() == [1, 2, 3, 4]  # 6 GOPs: centred start is 1
    assert clip.frame_indices.tolist()[:3] == [14, 18, 22]


def test_train_mode_is_reproducible_with_a_seed(videos):
    a = cvpt.read_clip(videos["prepared"], train=True, rng=123)
    b = cvpt.read_clip(videos["prepared"], train=True, rng=123)
    assert a.gop_indices.tolist() == b.gop_indices.tolist()
    assert a.positions.tolist() == b.positions.tolist()
    np.testing.assert_array_equal(a.residuals, b.residuals)
    draws = {
        tuple(cvpt.read_clip(videos["prepared"], train=True, rng=s).frame_indices) for s in range(8)
    }
    assert len(draws) > 1


def test_start_gop_is_honoured_and_checked(videos):
    clip = cvpt.read_clip(videos["prepared"], start_gop=2)
    assert clip.gop_indices.tolist() == [2, 3, 4, 5]
    with pytest.raises(ValueError, match="start_gop"):
        cvpt.read_clip(videos["prepared"], start_gop=6)


def test_short_video_repeats_its_last_gop_and_warns(videos):
    with pytest.warns(cvpt.ShortVideoWarning, match="repeating the last GOP"):
        clip = cvpt.read_clip(videos["short"])  # 30 frames: GOPs of 12, 12, 6
    assert clip.gop_indices.tolist() == [0, 1, 2, 2]
    assert clip.repeated_gops == 1
    assert clip.positions[2].max() <= 5  # the 6-frame GOP's P-frames are 1..5
    np.testing.assert_array_equal(clip.iframes[3], clip.iframes[2])
    np.testing.assert_array_equal(clip.mvs[9:], clip.mvs[6:9])


def test_non_accumulated_mode_differs_and_is_flagged(videos):
    acc = cvpt.read_clip(videos["prepared"])
    per = cvpt.read_clip(videos["prepared"], accumulate=False)
    assert acc.accumulated and not per.accumulated
    # accumulated motion grows along the GOP, per-frame motion does not
    assert np.abs(acc.mvs[2]).mean() > np.abs(per.mvs[2]).mean()


def test_no_warning_for_long_videos(videos):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cvpt.read_clip(videos["prepared"])


def test_count_gops_agrees_with_probe_without_decoding(videos):
    from cvpt.codec.reader import count_gops

    for name in ("prepared", "short"):
        assert count_gops(videos[name]) == cvpt.probe(videos[name]).num_gops


def test_keyframe_pts_match_exact_fraction_arithmetic():
    from fractions import Fraction

    from cvpt.codec.reader import _keyframe_pts

    cases = [(30, Fraction(1, 15360)), (Fraction(30000, 1001), Fraction(1, 30000))]
    cases += [(25, Fraction(1, 25)), (Fraction(24000, 1001), Fraction(1, 90000))]
    cases += [(Fraction(2997, 100), Fraction(1, 1000)), (24, Fraction(1))]  # 24: ties at .5
    for rate, tb in cases:
        ticks = 1 / (Fraction(rate) * tb)
        for start in (0, 512, -7):
            want = tuple(start + round(g * 12 * ticks) for g in range(500))
            assert _keyframe_pts(start, 500 * 12, 12, rate, tb) == want, (rate, tb, start)
