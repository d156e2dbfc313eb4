"""The prediction benchmark's pieces (``python -m cvpt.bench.predict``): its exact RGB baseline
reads the frames it means, and one small run reports every case (no timing is asserted)."""

from __future__ import annotations

import av
import cv2
import numpy as np
import pytest
import torch

from cvpt.bench.predict import bench_predict, recorded_video, rgb_views_exact
from cvpt.data.transforms import normalize_rgb


def _by_hand(frames: list[np.ndarray], first: int, size: int = 32) -> torch.Tensor:
    """One centre-cropped VideoMAE view of frames first, first + 4, … (16 of them)."""
    clip = []
    for f in frames[first : first + 61 : 4]:
        s = size / min(f.shape[:2])
        clip.append(cv2.resize(f, (round(f.shape[1] * s), round(f.shape[0] * s))))
    clip = np.stack(clip)
    y, x = (clip.shape[1] - size) // 2, (clip.shape[2] - size) // 2
    view = normalize_rgb(clip[:, y : y + size, x : x + size])
    return torch.from_numpy(np.ascontiguousarray(view.transpose(3, 0, 1, 2)))


def test_the_exact_rgb_baseline_reads_the_centre_frames(tmp_path):
    # x264's defaults: one key frame (250 frames apart), B-frames; 100 frames, centre 19..79
    src = recorded_video(tmp_path / "r.mp4", seconds=100 / 30, width=64, height=48)
    with av.open(str(src)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    got = rgb_views_exact(src, 1, 1, size=32)
    assert got.shape == (1, 3, 16, 32, 32)
    assert torch.equal(got[0], _by_hand(frames, (100 - 61) // 2))
    assert rgb_views_exact(src, 5, 3, size=32).shape == (15, 3, 16, 32, 32)


@pytest.mark.slow  # (the model's input size: 224² crops of every view, 5 × 3 of them)
def test_one_small_benchmark_run_reports_every_case(tmp_path):
    res = bench_predict(rounds=1, before=False, seconds=1, width=96, height=64)
    assert res["identical_to_whole_reencode"] is True
    for case in ("cvpt_one", "rgb_one", "rgb_one_exact", "cvpt_protocol", "rgb_protocol"):
        assert res["median_s"][f"{case}_cpu"] > 0 and res["median_s"][f"{case}_wall"] > 0
    assert set(res["ratios"]) >= {"one_view_cpu", "protocol_wall", "one_view_exact_rgb_cpu"}
    assert res["where_s"]["cvpt_one"]["encode MPEG-4"] > 0
