"""The fused views give the tensors of the step-by-step path they replace.

Every model-ready view (``ClipTransform`` / ``apply_crop``) is compared exactly with
``cvpt.bench.reference.reference_view`` (the code before the fused path, verbatim), on clips
read from generated videos: frame sizes whose cells end inside or outside the frame, MPEG-4
(16-px cells) and H.264 (4-px cells), accumulated and per-frame motion, nearest and bilinear
residuals, short videos that repeat their last GOP, eval (1 and 3 crops) and train (random
multi-scale crops and flips from many seeds), a transform short side that differs from the
video's, and the compact outputs normalised afterwards.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import cvpt
from cvpt.bench.reference import reference_view
from cvpt.codec.warp import Predictor
from cvpt.data.generate import moving_scene
from cvpt.data.transforms import (
    ClipTransform,
    Crop,
    apply_crop,
    eval_crops,
    normalize_inputs,
    train_crop,
)


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """``{name: path}``: scenes of several sizes and codecs, and one too short for a clip."""
    d = tmp_path_factory.mktemp("fused")
    out = {}
    for h, w, frames in ((64, 96, 60), (120, 200, 54), (72, 72, 30), (90, 134, 50)):
        scene = moving_scene(frames=frames, height=h, width=w, seed=h + w)
        out[f"mpeg4_{w}x{h}"] = cvpt.write_video(d / f"m_{w}x{h}.mp4", scene)
    scene = moving_scene(frames=50, height=80, width=112, seed=5)
    out["h264_112x80"] = cvpt.write_video(d / "h264.mp4", scene, codec="libx264")
    return out


READS = {
    "default": {},
    "per_frame": {"accumulate": False},
    "bilinear": {"residual_interp": "linear"},
    "per_frame_bilinear": {"accumulate": False, "residual_interp": "linear"},
    "cell8": {"mv_cell": 8},
}


def _pair(path, **kw):
    """The same clip read twice: one kept compact (what the views use), one made dense."""
    lazy = cvpt.read_clip(path, **kw)
    dense = cvpt.read_clip(path, **kw)
    dense.mvs, dense.residuals  # noqa: B018  (made dense: what the step-by-step path reads)
    return lazy, dense


def _assert_equal(got: dict, want: dict, what: str) -> None:
    for k in ("iframes", "mvs", "residuals"):
        assert got[k].dtype == want[k].dtype and got[k].shape == want[k].shape, (what, k)
        assert torch.equal(got[k], want[k]), (what, k, (got[k] - want[k]).abs().max())


@pytest.mark.filterwarnings("ignore::cvpt.ShortVideoWarning")
@pytest.mark.parametrize("read", READS)
def test_eval_views_equal_the_step_by_step_path(sources, read):
    for name, path in sources.items():
        for train in (False, True):
            lazy, dense = _pair(path, train=train, rng=3, **READS[read])
            side = min(lazy.height, lazy.width)
            for size in (side, side - 8, side // 2 + 2):
                for crops in (1, 3):
                    t = ClipTransform(size=size, short_side=side, crops=crops)
                    got = t.crops_of(lazy)
                    boxes = eval_crops(lazy.height, lazy.width, size=size, num_crops=crops)
                    for g, box in zip(got, boxes, strict=True):
                        _assert_equal(g, reference_view(dense, box), f"{name} {read} {box}")


@pytest.mark.filterwarnings("ignore::cvpt.ShortVideoWarning")
@pytest.mark.parametrize("read", ["default", "per_frame", "bilinear"])
def test_train_views_equal_the_step_by_step_path(sources, read):
    for name, path in sources.items():
        lazy, dense = _pair(path, train=True, rng=11, **READS[read])
        side = min(lazy.height, lazy.width)
        t = ClipTransform(size=side - side % 4 - 8, short_side=side, train=True)
        for seed in range(12):  # multi-scale corner crops, half of them flipped
            rng_a, rng_b = np.random.default_rng(seed), np.random.default_rng(seed)
            crop = train_crop(lazy.height, lazy.width, rng_b, size=t.size, flip=True)
            got = t(lazy, rng_a)
            _assert_equal(got, reference_view(dense, crop), f"{name} {read} {crop}")


def test_every_crop_box_and_flip_on_a_hand_made_clip():
    """Boxes of every size and place (odd ones included), resized up and down, both flips, on
    a clip built from dense arrays (grid cell 1) and on the same clip read as a 16-px grid."""
    rng = np.random.default_rng(0)
    h, w = 48, 80
    grid = rng.normal(0, 15, (12, 3, 5, 2)).astype(np.float32)
    dense_mvs = np.repeat(np.repeat(grid, 16, 1), 16, 2)
    frames = rng.integers(0, 256, (12, h, w, 3), dtype=np.uint8)
    preds = rng.integers(0, 256, (12, h, w, 3), dtype=np.uint8)
    iframes = rng.integers(0, 256, (4, h, w, 3), dtype=np.uint8)
    dense = cvpt.CompressedClip(
        "hand", iframes, dense_mvs, frames.astype(np.int16) - preds, num_gops_in_video=4
    )
    from cvpt.codec.clip import PredictedResiduals

    on_grid = cvpt.CompressedClip(
        "hand",
        iframes,
        mv_grid=grid,
        mv_cell=16,
        residual_source=PredictedResiduals(list(frames), list(preds)),
        num_gops_in_video=4,
    )
    for _ in range(60):
        cw, ch = int(rng.integers(1, w + 1)), int(rng.integers(1, h + 1))
        x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        crop = Crop(x, y, cw, ch, int(rng.integers(1, 70)), bool(rng.random() < 0.5))
        want = reference_view(dense, crop, mv_clip=12.0)
        for clip in (dense, on_grid):
            _assert_equal(apply_crop(clip, crop, 12.0), want, str(crop))


def test_a_transform_short_side_other_than_the_video_s(sources):
    """The rare path (the video is not at the transform's short side) is the old one."""
    lazy, dense = _pair(sources["mpeg4_200x120"])
    for short_side in (96, 150):
        t = ClipTransform(size=64, short_side=short_side, crops=3)
        got = t.crops_of(lazy)
        h, w = round(120 * short_side / 120), round(200 * short_side / 120)
        for g, crop in zip(got, eval_crops(h, w, size=64, num_crops=3),
                           strict=True):  # fmt: skip
            _assert_equal(g, reference_view(dense, crop, short_side=short_side), str(crop))


def test_compact_views_normalise_to_the_same_tensors(sources):
    """uint8 I-frames, int16 residuals and the motion cells a view reads with their row and
    column maps, made dense and float32 afterwards: the float32 views, exactly; batched with
    views of other frame sizes (other cell spans, padded) too."""
    from cvpt.data.dataset import stack_views

    for name in ("mpeg4_134x90", "h264_112x80", "mpeg4_200x120"):
        for train in (False, True):
            clip = cvpt.read_clip(sources[name], train=train, rng=1)
            side = min(clip.height, clip.width)
            kw = dict(size=side - 10, short_side=side, train=train, crops=1 if train else 3)
            full = ClipTransform(**kw)(clip, np.random.default_rng(4))
            compact = ClipTransform(**kw, compact=True)(clip, np.random.default_rng(4))
            assert compact["iframes"].dtype == torch.uint8
            assert compact["residuals"].dtype == torch.int16
            assert compact["mvs"].dtype == torch.float32 and compact["mv_rows"].dtype == torch.int64
            assert compact["mvs"].shape[-2:] < full["mvs"].shape[-2:]  # cells, not pixels
            batch = {k: v[None] for k, v in compact.items()}  # as a DataLoader batches them
            back = {k: v[0] for k, v in normalize_inputs(batch).items()}
            assert set(back) == {"iframes", "mvs", "residuals"}
            for k in full:
                assert torch.equal(back[k], full[k]), (name, train, k)
    items = [ClipTransform(size=40, short_side=side, compact=True)(cvpt.read_clip(sources[n]))
             for n, side in (("mpeg4_96x64", 64), ("h264_112x80", 80))]  # fmt: skip
    assert items[0]["mvs"].shape != items[1]["mvs"].shape  # 16-px and 4-px cells
    made = normalize_inputs(stack_views(items))
    for item, got in zip(items, made["mvs"], strict=True):
        assert torch.equal(got, normalize_inputs({k: v[None] for k, v in item.items()})["mvs"][0])
    again = normalize_inputs(made)  # float32 inputs pass through untouched
    assert all(again[k] is made[k] for k in made)


def test_the_dense_arrays_once_made_are_what_the_views_read(sources):
    """Editing ``clip.mvs`` or ``clip.residuals`` in place must reach the model's inputs."""
    clip = cvpt.read_clip(sources["mpeg4_96x64"])
    before = ClipTransform(size=64, short_side=64)(clip)
    clip.mvs[...] = 4.0
    clip.residuals[...] = 51
    after = ClipTransform(size=64, short_side=64)(clip)
    assert torch.all(after["mvs"] == 0.2) and not torch.equal(before["mvs"], after["mvs"])
    torch.testing.assert_close(
        after["residuals"][0], torch.full_like(after["residuals"][0], 0.2 / 0.229)
    )


@pytest.mark.parametrize("cell", [4, 8, 16])
def test_a_prediction_box_is_that_part_of_the_whole_prediction(cell):
    rng = np.random.default_rng(cell)
    h, w = 50, 70
    pred = Predictor(h, w, cell)
    ref = pred.reference(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    hc, wc = -(-h // cell), -(-w // cell)
    fields = rng.normal(0, 9, (3, hc, wc, 2)).astype(np.float32)
    fields[0, 0, 0] = (300, -300)  # far outside the frame: clamped as a whole cell
    whole = pred.predict(ref, fields)
    for _ in range(40):
        y0, x0 = int(rng.integers(0, h)), int(rng.integers(0, w))
        y1, x1 = int(rng.integers(y0 + 1, h + 1)), int(rng.integers(x0 + 1, w + 1))
        part = pred.predict(ref, fields, box=(y0, y1, x0, x1))
        np.testing.assert_array_equal(part, whole[:, y0:y1, x0:x1])


def test_a_crop_outside_the_frame_is_refused(sources):
    clip = cvpt.read_clip(sources["mpeg4_96x64"])
    with pytest.raises(ValueError, match="not inside the 96x64 frame"):
        apply_crop(clip, Crop(40, 0, 64, 64, 64))


def test_the_residuals_are_the_codec_s_whatever_the_clip_s_owner_does(sources):
    """Editing a read clip's I-frames or motion grid in place (an augmentation) changes those,
    never the residuals, before or after a view was made; a view's I-frames show the edit."""
    path = sources["mpeg4_200x120"]
    crop = eval_crops(120, 200, size=96)[0]
    want = reference_view(_pair(path)[1], crop)
    for view_first in (False, True):
        clip = cvpt.read_clip(path)
        if view_first:
            apply_crop(clip, crop)
        clip.iframes[...] = 255 - clip.iframes
        clip.mv_grid[...] = 0
        got = apply_crop(clip, crop)
        assert torch.equal(got["residuals"], want["residuals"])
        assert not torch.equal(got["iframes"], want["iframes"])
        assert torch.all(got["mvs"] == 0)


def test_a_clip_refuses_arrays_that_do_not_describe_its_frames():
    rng = np.random.default_rng(0)
    i = rng.integers(0, 256, (4, 32, 48, 3), dtype=np.uint8)
    mvs = rng.normal(0, 3, (12, 32, 48, 2))  # float64: made float32, as every view computes
    res = rng.integers(-255, 256, (12, 32, 48, 3)).astype(np.int32)
    clip = cvpt.CompressedClip("hand.mp4", i, mvs, res)
    assert clip.mvs.dtype == np.float32 and clip.residuals.dtype == np.int16
    as_read = cvpt.CompressedClip("hand.mp4", i, mvs.astype(np.float32), res.astype(np.int16))
    crop = Crop(3, 2, 30, 20, 40)
    _assert_equal(apply_crop(clip, crop), reference_view(as_read, crop), "cast")
    bad = {
        "iframes must be uint8": dict(iframes=i.astype(np.float32)),
        "iframes must be uint8 \\[T_I, H, W, 3\\]": dict(iframes=i[..., 0]),
        "mvs must be \\[T_P, H, W, 2\\]": dict(mvs=mvs[:, :10, :10]),
        "residuals must be \\[T_P, H, W, 3\\]": dict(residuals=res[:5]),
        "residuals must be integers": dict(residuals=res.astype(np.float32)),
        "motion must be floating point": dict(mvs=mvs.astype(np.int32)),
    }
    for message, change in bad.items():
        args = dict(iframes=i, mvs=mvs, residuals=res) | change
        with pytest.raises(ValueError, match=f"hand.mp4: {message}"):
            cvpt.CompressedClip("hand.mp4", **args)
    with pytest.raises(ValueError, match="mv_grid must be"):
        cvpt.CompressedClip(
            "hand.mp4", i, mv_grid=np.zeros((12, 3, 3, 2), np.float32), mv_cell=16, residuals=res
        )  # fmt: skip  (48x32 is 3x2 cells)


def test_replace_keeps_the_grid_s_cells(sources):
    clip = cvpt.read_clip(sources["mpeg4_96x64"])
    doubled = clip.replace(mv_grid=clip.mv_grid * 2)
    assert doubled.mv_cell == clip.mv_cell == 16
    np.testing.assert_array_equal(doubled.mvs, clip.mvs * 2)
    with pytest.raises(ValueError, match="mv_grid must be"):
        clip.replace(mv_grid=clip.mv_grid, mv_cell=8)


def test_outputs_and_crops_are_checked_before_anything_is_written(sources):
    clip = cvpt.read_clip(sources["mpeg4_96x64"])
    t = ClipTransform(size=32, short_side=64, crops=3)
    out = t.empty(3, 4, 12)
    for k in out:
        out[k].fill_(7)
    for bad, message in (
        ({**out, "residuals": out["residuals"][:, :, :5]}, "out\\['residuals'\\] must be"),
        ({k: v for k, v in out.items() if k != "mvs"}, "out\\['mvs'\\] must be"),
        ({**out, "mvs": out["mvs"].to(torch.float16)}, "out\\['mvs'\\] must be"),
    ):
        with pytest.raises(ValueError, match=message):
            t.write(clip, bad)
        assert all(torch.all(v == 7) for v in out.values())  # nothing written
    with pytest.raises(ValueError, match="do not fit in outputs of 3"):
        t.write(clip, out, first=1)
    strided = {k: v.transpose(-1, -2) for k, v in t.empty(3, 4, 12).items()}
    with pytest.raises(ValueError, match="must be contiguous"):
        t.write(clip, strided)
    for crop in (Crop(0, 0, 0, 10, 8), Crop(5, 0, -5, 10, 8), Crop(0, 0, 10, 10, 0)):
        with pytest.raises(ValueError, match=r"empty|not inside"):
            apply_crop(clip, crop)


def test_a_read_clip_pickles_at_its_own_size_after_a_view(sources):
    """The views' predictions are made from references the clip keeps whole, not from strided
    views of them that a pickle (a DataLoader worker's) would write out cell-fold."""
    import pickle

    clip = cvpt.read_clip(sources["mpeg4_200x120"])
    before = len(pickle.dumps(clip))
    apply_crop(clip, eval_crops(120, 200, size=96)[0])
    after = pickle.dumps(clip)
    assert len(after) < 1.2 * before
    again = pickle.loads(after)
    crop = eval_crops(120, 200, size=96)[0]
    _assert_equal(apply_crop(again, crop), apply_crop(clip, crop), "unpickled")


def test_compact_batches_of_mixed_sizes_cross_from_a_worker_unchanged(sources):
    """A spawn worker stacks compact views of videos with other cell grids (padded) into shared
    memory: the batch is the one stacked in this process, and normalises to the float32 one."""
    from torch.utils.data import DataLoader

    from cvpt.data.dataset import CompressedVideoDataset, collate, worker_init
    from cvpt.data.splits import Sample

    names = ["mpeg4_96x64", "h264_112x80", "mpeg4_134x90", "mpeg4_200x120"]
    samples = [Sample(str(sources[n]), 0) for n in names]
    kw = dict(train=False, size=48, short_side=64, crops=3, views=2)
    compact = CompressedVideoDataset("/", samples, compact=True, **kw)
    full = CompressedVideoDataset("/", samples, **kw)
    here = collate([compact[i] for i in range(4)])
    loader = DataLoader(compact, batch_size=4, num_workers=1, collate_fn=collate,
                        multiprocessing_context="spawn", worker_init_fn=worker_init)  # fmt: skip
    (there,) = list(loader)
    for k in ("iframes", "mvs", "residuals", "mv_rows", "mv_cols"):
        assert torch.equal(here[k], there[k]), k
    made = normalize_inputs(there)
    want = collate([full[i] for i in range(4)])
    for k in ("iframes", "mvs", "residuals"):
        assert torch.equal(made[k], want[k]), k
