"""Damaged bytes: read_clip returns a well-formed clip or raises VideoError, quickly."""

from __future__ import annotations

import time

import numpy as np
import pytest

import cvpt

TIME_BOUND_S = 5.0


def _mutations(data: bytes, count: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    n = len(data)
    for k in range(count):
        buf = bytearray(data)
        kind = k % 3
        if kind == 0:  # truncate
            buf = buf[: int(rng.integers(1, n))]
        elif kind == 1:  # flip scattered bytes
            for pos in rng.integers(0, n, int(rng.integers(1, 64))):
                buf[pos] ^= int(rng.integers(1, 256))
        else:  # overwrite a run of bytes with noise
            start = int(rng.integers(0, n - 1))
            length = int(rng.integers(1, 512))
            buf[start : start + length] = rng.integers(
                0, 256, len(buf[start : start + length]), dtype=np.uint8
            ).tobytes()
        yield k, bytes(buf)


def _well_formed(clip: cvpt.CompressedClip) -> None:
    t_i, h, w, _ = clip.iframes.shape
    assert t_i == 4 and clip.iframes.dtype == np.uint8
    assert clip.mvs.shape == (12, h, w, 2) and clip.mvs.dtype == np.float32
    assert clip.residuals.shape == (12, h, w, 3) and clip.residuals.dtype == np.int16
    assert np.isfinite(clip.mvs).all()
    assert np.abs(clip.residuals).max() <= 255


@pytest.mark.filterwarnings("ignore::cvpt.ShortVideoWarning")
def test_mutated_videos_never_crash_or_hang(tmp_path, videos):
    data = videos["prepared"].read_bytes()
    outcomes = {"clip": 0, "error": 0}
    for k, blob in _mutations(data, 90):
        path = tmp_path / f"m{k}.mp4"
        path.write_bytes(blob)
        t0 = time.perf_counter()
        try:
            _well_formed(cvpt.read_clip(path))
            outcomes["clip"] += 1
        except cvpt.VideoError as e:
            assert path.name in str(e)
            outcomes["error"] += 1
        assert time.perf_counter() - t0 < TIME_BOUND_S, f"mutation {k} took too long"
    # both outcomes occur: the test exercises the decoder, not only the header checks
    assert outcomes["clip"] > 0 and outcomes["error"] > 0, outcomes
