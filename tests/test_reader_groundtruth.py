"""read_clip against motion we put there ourselves."""

from __future__ import annotations

import numpy as np
import pytest

import cvpt

# Half-pel and negative motions included; all within the ≤ 8 px/frame the encoder tracks.
MOTIONS = [(1, 0), (3, -2), (-5, 4), (1.5, -0.5), (-0.5, 2.5), (8, 8), (-7, 6)]


def _exact(field: np.ndarray, dx: float, dy: float) -> np.ndarray:
    return (np.abs(field[..., 0] - dx) <= 0.5) & (np.abs(field[..., 1] - dy) <= 0.5)


@pytest.mark.parametrize(("dx", "dy"), MOTIONS)
def test_interior_mvs_equal_the_truth(translation_videos, dx, dy):
    path, _ = translation_videos(dx, dy)
    clip = cvpt.read_clip(path, accumulate=False)
    assert clip.mvs.dtype == np.float32 and clip.mvs.shape[-1] == 2
    blocks = clip.mvs[:, 16:-16:16, 16:-16:16]  # one sample per interior macroblock
    assert _exact(blocks, dx, dy).mean() >= 0.98
    # half-pel values are kept, not rounded
    if dx % 1:
        assert np.isclose(np.median(blocks[..., 0]), dx)


@pytest.mark.parametrize(("dx", "dy"), [(1, 0), (3, -2), (-5, 4), (1.5, -0.5)])
def test_accumulated_mvs_are_position_times_motion(translation_videos, dx, dy):
    path, _ = translation_videos(dx, dy)
    clip = cvpt.read_clip(path)  # accumulated by default
    h, w = clip.mvs.shape[1:3]
    ys, xs = np.mgrid[0:h, 0:w]
    for k, pos in enumerate(clip.positions.reshape(-1)):
        # pixels whose content was inside the I-frame (away from the border) at position 0
        src_x, src_y = xs - pos * dx, ys - pos * dy
        inside = (src_x >= 16) & (src_x < w - 16) & (src_y >= 16) & (src_y < h - 16)
        inside &= (xs >= 16) & (xs < w - 16) & (ys >= 16) & (ys < h - 16)
        assert _exact(clip.mvs[k], pos * dx, pos * dy)[inside].mean() >= 0.98, pos


@pytest.mark.parametrize(("dx", "dy"), [(1, 0), (3, -2), (-5, 4)])
def test_residual_is_small_against_frame_difference_on_grey_texture(translation_videos, dx, dy):
    path, frames = translation_videos(dx, dy, grey=True)
    clip = cvpt.read_clip(path, accumulate=False)
    assert clip.residuals.dtype == np.int16
    idx = clip.frame_indices
    frame_diff = np.abs(frames[idx].astype(int) - frames[idx - 1].astype(int))[:, 16:-16, 16:-16]
    residual = np.abs(clip.residuals.astype(int))[:, 16:-16, 16:-16]
    assert residual.mean() < 0.25 * frame_diff.mean()


def test_bilinear_residual_handles_half_pel(translation_videos):
    path, frames = translation_videos(1.5, -0.5, grey=True)
    idx = cvpt.read_clip(path, accumulate=False).frame_indices
    frame_diff = np.abs(frames[idx].astype(int) - frames[idx - 1].astype(int)).mean()
    nearest = np.abs(cvpt.read_clip(path, accumulate=False).residuals).mean()
    linear = np.abs(cvpt.read_clip(path, accumulate=False, residual_interp="linear").residuals)
    assert linear.mean() < 0.25 * frame_diff
    assert linear.mean() < nearest  # the codec's half-pel prediction is bilinear


def test_accumulated_residual_is_small_against_distance_to_iframe(translation_videos):
    path, frames = translation_videos(3, -2, grey=True)
    clip = cvpt.read_clip(path)
    idx = clip.frame_indices
    i_idx = clip.gop_indices.repeat(clip.positions.shape[1]) * clip.gop_size
    far = np.abs(frames[idx].astype(int) - frames[i_idx].astype(int))[:, 32:-32, 32:-32].mean()
    assert np.abs(clip.residuals[:, 32:-32, 32:-32]).mean() < 0.25 * far


def test_iframes_are_the_decoded_rgb_frames(translation_videos):
    path, frames = translation_videos(1, 0)
    clip = cvpt.read_clip(path)
    assert clip.iframes.dtype == np.uint8
    src = frames[clip.gop_indices * clip.gop_size].astype(int)
    # q=2 MPEG-4 is near lossless: within a few levels (chroma subsampling aside)
    assert np.abs(clip.iframes.astype(int) - src).mean() < 6


def test_grid_cells_agree_on_macroblock_streams(translation_videos):
    path, _ = translation_videos(3, -2)
    fine = cvpt.read_clip(path, mv_cell=4)
    coarse = cvpt.read_clip(path, mv_cell=16)
    interior = (slice(None), slice(32, -32), slice(32, -32))
    np.testing.assert_array_equal(fine.mvs[interior], coarse.mvs[interior])


def test_h264_gop12_streams_are_readable(tmp_path):
    from cvpt.data.generate import translating_texture

    frames = translating_texture(2, 1, frames=48, height=96, width=128, seed=3)
    path = cvpt.write_video(tmp_path / "h264.mp4", frames, codec="libx264", gop=12)
    clip = cvpt.read_clip(path, accumulate=False)
    assert _exact(clip.mvs[:, 16:-16, 16:-16], 2, 1).mean() >= 0.95


def test_a_short_last_gop_fills_every_slot_from_the_frames_it_has(tmp_path):
    from cvpt.data.generate import translating_texture

    # 26 frames: GOPs of 12, 12 and 2; the last one has one P-frame for all three thirds
    frames = translating_texture(2, 1, frames=26, height=96, width=128, seed=5)
    path = cvpt.write_video(tmp_path / "short_tail.mp4", frames)
    for accumulate in (True, False):
        clip = cvpt.read_clip(path, num_gops=1, start_gop=2, accumulate=accumulate)
        np.testing.assert_array_equal(clip.positions, [[1, 1, 1]])
        assert _exact(clip.mvs[:, 16:-16:16, 16:-16:16], 2, 1).mean() >= 0.95
        for k in (1, 2):
            np.testing.assert_array_equal(clip.mvs[k], clip.mvs[0])
            np.testing.assert_array_equal(clip.residuals[k], clip.residuals[0])
