"""Motion-compensated prediction and the motion-field helpers read_clip's speed rests on."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from cvpt.codec.container import open_video
from cvpt.codec.motion import MotionRecords, grid_shape, grid_to_dense, side_data_to_grid
from cvpt.codec.warp import Predictor, integer_shift


def _remap_reference(rgb: np.ndarray, shift: np.ndarray, cell: int) -> np.ndarray:
    """What the segment gather must equal: cv2.remap at p − shift(cell of p), whole pixels."""
    h, w = rgb.shape[:2]
    dense = np.repeat(np.repeat(shift, cell, axis=0), cell, axis=1)[:h, :w].astype(np.float32)
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    src = np.dstack([gx, gy]) - dense
    return cv2.remap(rgb, src, None, cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE)


def test_integer_shift_rounds_to_nearest_with_ties_toward_zero():
    f = np.array([0.5, -0.5, 1.5, -1.5, 0.75, -0.25, 2.0, -3.0, 0.0], np.float32)
    np.testing.assert_array_equal(integer_shift(f), [0, 0, 1, -1, 1, 0, 2, -3, 0])


@pytest.mark.parametrize(("h", "w", "cell"), [(48, 64, 16), (50, 70, 16), (37, 53, 4), (40, 24, 8)])
def test_nearest_prediction_equals_remap_with_whole_pixel_cell_shifts(h, w, cell):
    rng = np.random.default_rng(h * w + cell)
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    hc, wc = grid_shape(h, w, cell)
    # small, half-pel and far-out-of-frame motion (the clamped border cases)
    field = rng.choice([-40.0, -7.5, -1.5, -0.5, 0.0, 0.5, 2.0, 3.5, 45.0], size=(hc, wc, 2))
    field = field.astype(np.float32)
    pred = Predictor(h, w, cell)
    ref = pred.reference(rgb)
    got = pred.predict(ref, field, grid_to_dense(field, h, w, cell))
    assert got.shape == (h, w, 3) and got.dtype == np.uint8
    np.testing.assert_array_equal(got, _remap_reference(rgb, integer_shift(field), cell))
    # several frames from one reference in one call give the same as one by one
    fields = np.stack([field, -field, np.zeros_like(field)])
    batch = pred.predict(ref, fields, grid_to_dense(fields, h, w, cell))
    for f, b in zip(fields, batch, strict=True):
        np.testing.assert_array_equal(b, pred.predict(ref, f, grid_to_dense(f, h, w, cell)))


def test_half_pel_motion_shifts_whole_cells_without_doubling_pixels():
    # A horizontal ramp moved by 0.5 px: per-pixel nearest remap rounds x − 0.5 half to even and
    # copies columns 0, 0, 2, 2, 4, 4…; the cell shift keeps every column (ties toward zero).
    ramp = np.tile(np.arange(64, dtype=np.uint8)[None, :, None], (32, 1, 3))
    field = np.full((2, 4, 2), (0.5, 0.0), np.float32)
    pred = Predictor(32, 64, 16)
    got = pred.predict(pred.reference(ramp), field, grid_to_dense(field, 32, 64, 16))
    np.testing.assert_array_equal(got, ramp)
    gx, gy = np.meshgrid(np.arange(64, dtype=np.float32), np.arange(32, dtype=np.float32))
    per_pixel = cv2.remap(ramp, gx - 0.5, gy, cv2.INTER_NEAREST)
    assert len(np.unique(per_pixel[0, :, 0])) < 40  # the doubled columns this avoids


def test_linear_prediction_samples_the_reference_bilinearly():
    rgb = np.random.default_rng(0).integers(0, 256, (32, 48, 3), dtype=np.uint8)
    field = np.full((2, 3, 2), (1.5, -0.5), np.float32)
    dense = grid_to_dense(field, 32, 48, 16)
    pred = Predictor(32, 48, 16, "linear")
    gx, gy = np.meshgrid(np.arange(48, dtype=np.float32), np.arange(32, dtype=np.float32))
    want = cv2.remap(rgb, gx - 1.5, gy + 0.5, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    np.testing.assert_array_equal(pred.predict(pred.reference(rgb), field, dense), want)
    with pytest.raises(ValueError, match="residual_interp"):
        Predictor(32, 48, 16, "cubic")


@pytest.mark.parametrize(("h", "w", "cell"), [(48, 64, 16), (50, 70, 16), (37, 53, 4)])
def test_grid_to_dense_repeats_every_cell(h, w, cell):
    hc, wc = grid_shape(h, w, cell)
    field = np.random.default_rng(1).normal(size=(3, hc, wc, 2)).astype(np.float32)
    dense = grid_to_dense(field, h, w, cell)
    assert dense.shape == (3, h, w, 2) and dense.dtype == np.float32
    ys, xs = np.mgrid[0:h, 0:w]
    np.testing.assert_array_equal(dense, field[:, ys // cell, xs // cell])
    out = np.empty((h, w, 2), np.float32)
    assert grid_to_dense(field[1], h, w, cell, out=out) is out
    np.testing.assert_array_equal(out, dense[1])


def _side_data(path, frames: int = 12):
    container, stream = open_video(path, export_mvs=True)
    try:
        decoded = [f for _, f in zip(range(frames), container.decode(stream), strict=False)]
        return [f.side_data.get("MOTION_VECTORS") for f in decoded[1:]]  # the P-frames
    finally:
        container.close()


def test_motion_records_fast_path_equals_the_general_path(videos):
    vectors = _side_data(videos["prepared"])
    records = MotionRecords()
    for v in vectors:
        records.append(v)
    grid = grid_shape(96, 128, 16)
    fast = records.fields(grid, 16)
    general = np.stack(
        [side_data_to_grid(None if v is None else v.to_ndarray(), grid, 16) for v in vectors]
    )
    assert len(records) == len(vectors) and np.abs(fast).max() > 0
    np.testing.assert_array_equal(fast, general)


class _FakeVectors(bytes):
    """Stands in for PyAV's MotionVectors side data (a buffer of 40-byte records, and
    ``to_ndarray``): records we write ourselves."""

    def __new__(cls, array: np.ndarray):
        self = super().__new__(cls, array.tobytes())
        self.array = array
        return self

    def to_ndarray(self) -> np.ndarray:
        return self.array


def test_whole_inter_frames_take_the_raster_path_and_agree_with_the_scatter(videos):
    """Frames whose every macroblock is inter-coded are read as they are listed (raster
    order); a frame with an intra block (a gap), reordered records or a partial last row of
    cells goes through the scatter. Both give the general path's fields."""
    from cvpt.codec import motion

    real = next(v for v in _side_data(videos["prepared"]) if v is not None).to_ndarray()
    hc, wc = grid_shape(96, 128, 16)
    rng = np.random.default_rng(0)
    full = np.zeros(hc * wc, real.dtype)  # a whole inter frame, made from real records' layout
    full[:] = real[0]
    full["dst_x"] = np.tile(np.arange(wc) * 16 + 8, hc)
    full["dst_y"] = np.repeat(np.arange(hc) * 16 + 8, wc)
    full["motion_x"] = rng.integers(-40, 40, hc * wc)
    full["motion_y"] = rng.integers(-40, 40, hc * wc)
    gap = np.delete(full, 17)  # an intra block: absent from the side data
    shuffled = full[rng.permutation(hc * wc)]
    calls = []
    raster = motion._in_raster_order
    motion._in_raster_order = lambda *a: calls.append(raster(*a)) or calls[-1]
    try:
        # (frames, what the raster check answered: not asked when the counts already differ)
        for frames, asked in (([full, full], [True]), ([full, gap], []), ([shuffled], [False])):
            calls.clear()
            records = MotionRecords()
            for f in frames:
                records.append(_FakeVectors(f))
            got = records.fields((hc, wc), 16)
            want = np.stack([side_data_to_grid(f, (hc, wc), 16) for f in frames])
            np.testing.assert_array_equal(got, want)
            assert calls == asked
    finally:
        motion._in_raster_order = raster


def test_motion_records_handle_mixed_scales_and_damaged_positions(videos):
    real = next(v for v in _side_data(videos["prepared"]) if v is not None).to_ndarray()
    a = real.copy()
    a["motion_scale"][::2] = 4  # quarter-pel records beside half-pel ones
    a["dst_x"][:3] = 30000  # positions far outside the frame: clipped into the grid
    records = MotionRecords()
    records.append(_FakeVectors(a))
    records.append(None)
    fields = records.fields(grid_shape(96, 128, 16), 16)
    assert fields.shape == (2, 6, 8, 2) and not fields[1].any()
    want = side_data_to_grid(a[3:], (6, 8), 16)  # the damaged records aside
    inside = np.ones((6, 8), bool)
    inside[:, -1] = False  # where the clipped records landed
    np.testing.assert_array_equal(fields[0][inside], want[inside])


def test_grid_to_dense_refuses_an_output_it_could_not_write_through():
    field = np.zeros((2, 3, 2), np.float32)
    with pytest.raises(ValueError, match="C-contiguous"):
        grid_to_dense(field, 32, 48, 16, out=np.empty((32, 96, 2), np.float32)[:, ::2])
