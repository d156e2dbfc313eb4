"""Clip transforms on arrays with known answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import cvpt
from cvpt.codec.reader import CompressedClip
from cvpt.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Crop,
    apply_crop,
    eval_crops,
    resize_short_side,
    train_crop,
)


def _clip(h=64, w=96, dx=2.0, seed=0) -> CompressedClip:
    """A synthetic clip: random I-frames/residuals, MVs = (dx, 0) everywhere."""
    rng = np.random.default_rng(seed)
    mvs = np.zeros((12, h, w, 2), np.float32)
    mvs[..., 0] = dx
    return CompressedClip(
        path="synthetic",
        iframes=rng.integers(0, 256, (4, h, w, 3), dtype=np.uint8),
        mvs=mvs,
        residuals=rng.integers(-255, 256, (12, h, w, 3)).astype(np.int16),
        gop_indices=np.arange(4),
        positions=np.tile([2, 6, 10], (4, 1)),
        accumulated=True,
        num_gops_in_video=4,
        gop_size=12,
        fps=30.0,
    )


def _unnorm_iframes(t: torch.Tensor) -> np.ndarray:
    x = t.numpy().transpose(1, 2, 3, 0) * IMAGENET_STD + IMAGENET_MEAN
    return np.round(x * 255).astype(int)


def test_layout_dtypes_and_normalisation():
    clip = _clip(dx=30.0)
    out = apply_crop(clip, Crop(0, 0, 64, 64, 64))
    assert out["iframes"].shape == (3, 4, 64, 64) and out["iframes"].dtype == torch.float32
    assert out["mvs"].shape == (2, 12, 64, 64) and out["residuals"].shape == (3, 12, 64, 64)
    assert torch.all(out["mvs"][0] == 1.0)  # 30 px clipped to 20, /20
    np.testing.assert_array_equal(_unnorm_iframes(out["iframes"]), clip.iframes[:, :64, :64])
    r = out["residuals"].numpy().transpose(1, 2, 3, 0) * IMAGENET_STD * 255
    np.testing.assert_allclose(r, clip.residuals[:, :64, :64], atol=1e-3)


def test_flip_twice_is_identity():
    clip = _clip()
    once = apply_crop(clip, Crop(8, 0, 64, 64, 64, flip=True))
    flipped = clip.replace(
        iframes=clip.iframes[:, :, ::-1],
        mvs=clip.mvs[:, :, ::-1] * np.array([-1, 1], np.float32),
        residuals=clip.residuals[:, :, ::-1],
    )
    # the same box, seen from the flipped clip, flipped back
    twice = apply_crop(flipped, Crop(96 - 8 - 64, 0, 64, 64, 64, flip=True))
    plain = apply_crop(clip, Crop(8, 0, 64, 64, 64))
    for k in plain:
        torch.testing.assert_close(twice[k], plain[k])
    assert not torch.equal(once["iframes"], plain["iframes"])


def test_a_flipped_right_moving_clip_moves_left(tmp_path):
    from cvpt.data.generate import translating_texture

    path = cvpt.write_video(
        tmp_path / "right.mp4", translating_texture(3, 0, frames=48, height=64, width=96)
    )
    clip = cvpt.read_clip(path, accumulate=False)
    crop = eval_crops(64, 96, size=64)[0]
    plain = apply_crop(clip, crop)["mvs"][0, :, 16:-16, 16:-16]
    flipped = apply_crop(clip, Crop(crop.x, crop.y, crop.w, crop.h, 64, flip=True))["mvs"]
    assert plain.median() == pytest.approx(3 / 20)
    assert flipped[0, :, 16:-16, 16:-16].median() == pytest.approx(-3 / 20)


def test_resize_scales_mv_magnitudes():
    clip = _clip(h=32, w=48, dx=2.0)
    clip.mvs[..., 1] = -1.0
    big = resize_short_side(clip, 64)  # 2×
    assert big.iframes.shape[1:3] == (64, 96)
    np.testing.assert_array_equal(np.unique(big.mvs[..., 0]), [4.0])
    np.testing.assert_array_equal(np.unique(big.mvs[..., 1]), [-2.0])
    out = apply_crop(clip, Crop(0, 0, 32, 16, 64))  # 2× in x, 4× in y
    assert torch.allclose(out["mvs"][0], torch.tensor(4.0 / 20))
    assert torch.allclose(out["mvs"][1], torch.tensor(-4.0 / 20))


def test_all_modalities_get_the_same_crop():
    clip = _clip(h=64, w=96)
    # encode the x coordinate in every modality, then check the crop's columns
    cols = np.arange(96, dtype=np.float32)
    clip.iframes[:] = (cols[None, None, :, None] % 256).astype(np.uint8)
    clip.mvs[..., 0] = cols[None, None, :] / 10
    clip.residuals[:] = cols[None, None, :, None].astype(np.int16)
    rng = np.random.default_rng(3)
    for _ in range(20):
        crop = train_crop(64, 96, rng, size=48)
        out = apply_crop(clip, Crop(crop.x, crop.y, crop.w, crop.h, crop.w, crop.flip))
        i = _unnorm_iframes(out["iframes"])[0, 0, :, 0]
        r = np.round(out["residuals"].numpy()[0, 0, 0] * IMAGENET_STD[0] * 255).astype(int)
        m = out["mvs"].numpy()[0, 0, 0] * 20 * 10 * (-1 if crop.flip else 1)
        expect = np.arange(crop.x, crop.x + crop.w)[:: -1 if crop.flip else 1]
        np.testing.assert_array_equal(i, expect)
        np.testing.assert_array_equal(r, expect)
        np.testing.assert_allclose(m, np.minimum(expect, 200), atol=1e-3)


def test_train_crop_is_reproducible_and_multiscale():
    a = [train_crop(256, 342, np.random.default_rng(7)) for _ in range(3)]
    assert len(set(a)) == 1
    rng = np.random.default_rng(0)
    crops = [train_crop(256, 342, rng) for _ in range(300)]
    assert {c.w for c in crops} == {256, 224, 192, 168}
    assert any(c.flip for c in crops) and not all(c.flip for c in crops)
    assert not any(train_crop(256, 342, rng, flip=False).flip for _ in range(50))  # SSv2
    for c in crops:
        assert c.x >= 0 and c.x + c.w <= 342 and c.y >= 0 and c.y + c.h <= 256


def test_eval_crops():
    assert eval_crops(256, 342) == [Crop(59, 16, 224, 224, 224)]
    three = eval_crops(256, 342, num_crops=3)
    assert [c.x for c in three] == [0, 59, 118] and {c.y for c in three} == {16}


def test_mv_clip_option_sets_the_motion_scale():
    clip = _clip(dx=2.0)
    default = apply_crop(clip, Crop(0, 0, 64, 64, 64))["mvs"]
    small = apply_crop(clip, Crop(0, 0, 64, 64, 64), mv_clip=4.0)["mvs"]
    assert torch.allclose(default[0], torch.tensor(0.1)) and torch.allclose(
        small[0], torch.tensor(0.5)
    )
