"""The prediction benchmark (``python -m cvpt.bench.predict``, part of ``cvpt bench
pipeline``): one small run reports every case in the form the pipeline bench reads (no timing
is asserted)."""

from __future__ import annotations

import pytest

from cvpt.bench.predict import CASES, bench_predict_inputs


@pytest.mark.slow  # (the model's input size: 224² crops of every view, 5 × 3 of them)
def test_one_small_benchmark_run_reports_every_case(tmp_path):
    res = bench_predict_inputs(tmp_path, rounds=1, before=True, seconds=1, width=96, height=64)
    assert res["identical_to_whole_reencode"] is True
    assert (tmp_path / "recorded.mp4").exists()
    for case in CASES:  # what cvpt bench pipeline prints and checks against its targets
        key = case.replace(" ", "_")
        assert res["ratios"][case] > 0 and res["ratios_cpu"][case] > 0
        for side in ("cvpt", "rgb", "before"):
            assert res["median_ms"][f"{side}_{key}"] > 0
        assert res["where_ms"][case]["encode MPEG-4"] > 0
        assert res["where_ms"][case]["convert frames (swscale)"] > 0  # the scaler is found
    assert set(res["before_over_rgb"]) == set(CASES)
