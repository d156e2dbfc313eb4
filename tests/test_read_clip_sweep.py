"""read_clip over every frame count 1..60, every mode: every value is a possible value.

Property-style and exhaustive (the domain is small): a video of each length, 32×32, made once
per session; test mode, train mode (several seeds), per-frame motion, and a few other clip
shapes. For every clip: finite motion, |residual| ≤ 255 (8-bit differences), the P slots of a
lone I-frame GOP exactly zero, every other slot written by its own frame.
"""

from __future__ import annotations

import numpy as np
import pytest

import cvpt
from cvpt.data.generate import moving_scene, translating_texture

FRAME_COUNTS = range(1, 61)
MODES = [
    {"train": False},
    {"train": False, "accumulate": False},
    *({"train": True, "rng": seed} for seed in range(3)),
    {"train": True, "rng": 7, "accumulate": False},
    {"num_gops": 2, "p_per_gop": 5, "train": True, "rng": 1},
    {"num_gops": 8, "p_per_gop": 1},
]

pytestmark = pytest.mark.filterwarnings("ignore::cvpt.ShortVideoWarning")


@pytest.fixture(scope="session")
def sweep_videos(tmp_path_factory) -> dict[int, object]:
    d = tmp_path_factory.mktemp("sweep")
    scene = moving_scene(frames=max(FRAME_COUNTS), height=32, width=32, seed=4)
    return {n: cvpt.write_video(d / f"n{n:02d}.mp4", scene[:n]) for n in FRAME_COUNTS}


def _check(clip: cvpt.CompressedClip, frames: int) -> None:
    t_i, p = clip.positions.shape
    assert clip.mvs.shape[0] == clip.residuals.shape[0] == t_i * p
    assert np.isfinite(clip.mvs).all()
    assert np.abs(clip.residuals).max(initial=0) <= 255
    assert (clip.gop_indices < -(-frames // 12)).all()
    assert (clip.frame_indices < frames).all()
    lone = (clip.positions == 0).reshape(-1)
    # position 0 only where the GOP is a lone I-frame, and there: nothing moved, nothing left
    gop_len = np.minimum(12, frames - clip.gop_indices * 12).repeat(p)
    np.testing.assert_array_equal(lone, gop_len == 1)
    assert not clip.mvs[lone].any() and not clip.residuals[lone].any()
    # a repeated GOP (short video) repeats its first slot: the same frames, so the same positions
    for g in np.unique(clip.gop_indices):
        rows = clip.positions[clip.gop_indices == g]
        assert (rows == rows[0]).all(), (g, rows.tolist())


@pytest.mark.parametrize("frames", FRAME_COUNTS)
def test_every_frame_count_gives_possible_values(sweep_videos, frames):
    for mode in MODES:
        _check(cvpt.read_clip(sweep_videos[frames], **mode), frames)


def test_unwritten_memory_cannot_hide(sweep_videos, monkeypatch):
    # np.empty can hand back zeros by chance; fill every fresh buffer with NaN / 32767 so a slot
    # the reader leaves unwritten cannot pass for a written one
    real_empty = np.empty

    def poisoned(shape, dtype=float, *args, **kwargs):
        out = real_empty(shape, dtype, *args, **kwargs)
        kind = np.dtype(dtype).kind  # (numpy 2.0's own np.unique asks for bool buffers too)
        if kind in "fiu":
            out.fill(np.nan if kind == "f" else np.iinfo(dtype).max)
        return out

    monkeypatch.setattr(np, "empty", poisoned)
    for frames in (1, 13, 25, 49):
        for mode in MODES[:3]:
            _check(cvpt.read_clip(sweep_videos[frames], **mode), frames)


@pytest.mark.parametrize("seed", range(4))
def test_repeated_gops_hold_the_frames_their_positions_name(tmp_path, seed):
    # content moving 2 px/frame: the accumulated motion of in-GOP position k is 2k px, so a slot
    # whose data came from another position than it reports is caught (before the fix: train
    # mode drew new positions for a repeated GOP but copied the first slot's fields)
    path = cvpt.write_video(
        tmp_path / "t.mp4", translating_texture(2, 0, frames=24, height=48, width=64, seed=3)
    )
    clip = cvpt.read_clip(path, train=True, rng=seed)
    assert clip.repeated_gops == 2
    median_dx = np.median(clip.mvs[:, 8:-8, 8:-8, 0].reshape(len(clip.mvs), -1), axis=1)
    np.testing.assert_allclose(median_dx, 2.0 * clip.positions.reshape(-1), atol=0.6)


def _live_frames() -> int:
    """Decoded pictures alive (yuv420p; the sampled frames' RGB stays, as the clip's arrays)."""
    import gc

    import av

    return sum(type(o) is av.VideoFrame and o.format.name == "yuv420p" for o in gc.get_objects())


@pytest.mark.parametrize("mode", MODES[:2] + MODES[-1:])
def test_decoded_frames_are_freed_as_the_reader_goes(sweep_videos, mode):
    """PyAV's ``frame.side_data`` ties a frame to itself in a reference cycle: read that way,
    every decoded frame waited for the garbage collector and the decoder allocated new pictures
    for the ones still held (a clip read 1.3-3.5x as slowly as its frames decode). Read through
    ``frame_side_data``, no frame outlives the read: none is left, even with the collector off."""
    import gc

    gc.collect()
    before = _live_frames()
    gc.disable()
    try:
        clip = cvpt.read_clip(sweep_videos[60], **mode)
        left = _live_frames() - before
    finally:
        gc.enable()
    assert clip.mvs.any()  # the motion was read
    assert left == 0


def test_frame_side_data_is_the_frames_own(sweep_videos):
    """``frame_side_data`` gives what ``frame.side_data`` gives, record for record, on every
    frame."""
    from cvpt.codec.container import frame_side_data, open_video

    container, stream = open_video(sweep_videos[60], export_mvs=True)
    seen = 0
    try:
        for frame in container.decode(stream):
            ours = frame_side_data(frame).get("MOTION_VECTORS")
            theirs = frame.side_data.get("MOTION_VECTORS")
            assert (ours is None) == (theirs is None)
            if ours is not None:
                assert len(ours) > 0 and bytes(ours) == bytes(theirs)
                seen += 1
    finally:
        container.close()
    assert seen >= 40  # most of the 55 P-frames have inter blocks
