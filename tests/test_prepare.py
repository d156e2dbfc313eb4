"""cvpt prepare: other codecs in, verified GOP-12 MPEG-4 out; resumable; atomic; sharded."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import cvpt
from cvpt.codec.prepare import plan_jobs, prepare
from cvpt.data.generate import moving_scene


def _tree(root: Path, videos: dict) -> Path:
    (root / "a").mkdir(parents=True)
    (root / "b" / "c").mkdir(parents=True)
    shutil.copy(videos["x264_bframes"], root / "a" / "x264.mp4")
    shutil.copy(videos["vp8"], root / "b" / "vp8.webm")
    shutil.copy(videos["odd"], root / "b" / "c" / "odd.mkv")
    (root / "b" / "readme.txt").write_text("not a video, not picked up")
    return root


def test_prepare_tree_verifies_and_resumes(tmp_path, videos):
    src = _tree(tmp_path / "src", videos)
    dst = tmp_path / "dst"
    report = prepare(src, dst, workers=2, progress=False)
    assert (report.total, report.done, report.failed) == (3, 3, 0)
    outs = sorted(p.relative_to(dst).as_posix() for p in dst.rglob("*.mp4"))
    assert outs == ["a/x264.mp4", "b/c/odd.mp4", "b/vp8.mp4"]
    for p in dst.rglob("*.mp4"):
        info = cvpt.probe(p)
        assert info.codec == "mpeg4" and not info.layout_problems(), p
        assert min(info.width, info.height) == 256
        cvpt.read_clip(p)  # readable
    assert json.loads((dst / "prepare-report.json").read_text())["done"] == 3
    mtimes = {p: p.stat().st_mtime_ns for p in dst.rglob("*.mp4")}
    again = prepare(src, dst, progress=False)
    assert (again.skipped, again.done) == (3, 0)
    assert mtimes == {p: p.stat().st_mtime_ns for p in dst.rglob("*.mp4")}


def test_frame_count_and_content_survive(tmp_path, videos):
    res = cvpt.reencode(videos["x264_bframes"], tmp_path / "o.mp4", short_side=None)
    assert res.frames == 72
    src = cvpt.read_clip(cvpt.reencode(videos["prepared"], tmp_path / "p.mp4", short_side=None).dst)
    ref = cvpt.read_clip(videos["prepared"])
    assert np.abs(src.iframes.astype(int) - ref.iframes.astype(int)).mean() < 4


def test_failures_are_reported_and_exit_non_zero(tmp_path, videos):
    src = _tree(tmp_path / "src", videos)
    (src / "broken.avi").write_bytes(b"RIFF" + os.urandom(2000))
    (src / "a" / "x264.mkv").write_bytes(videos["vp8"].read_bytes())  # same output as x264.mp4
    dst = tmp_path / "dst"
    proc = subprocess.run(
        [sys.executable, "-m", "cvpt.cli.main", "prepare", str(src), str(dst), "--quiet"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1, proc.stderr
    report = json.loads((dst / "prepare-report.json").read_text())
    failed = {Path(f["src"]).name: f["reason"] for f in report["failures"]}
    assert set(failed) == {"broken.avi", "x264.mp4"} or set(failed) == {"broken.avi", "x264.mkv"}
    assert "broken.avi" in proc.stderr and "same output name" in proc.stderr
    assert report["done"] == 3


def test_shards_partition_the_work(tmp_path, videos):
    src = _tree(tmp_path / "src", videos)
    all_jobs = {j.src for j in plan_jobs(src, tmp_path / "dst")}
    parts = [{j.src for j in plan_jobs(src, tmp_path / "dst", (i, 2))} for i in range(2)]
    assert parts[0] | parts[1] == all_jobs and not parts[0] & parts[1]
    rep = prepare(src, tmp_path / "dst", shard=(1, 2), progress=False)
    assert rep.total == len(parts[1])
    assert (tmp_path / "dst" / "prepare-report-shard-1-of-2.json").exists()


def test_single_file_and_source_untouched(tmp_path, videos):
    src = tmp_path / "in.webm"
    shutil.copy(videos["vp8"], src)
    before = src.read_bytes()
    rep = prepare(src, tmp_path / "out", progress=False)
    assert rep.done == 1 and (tmp_path / "out" / "in.mp4").exists()
    assert src.read_bytes() == before
    # an output that exists but does not verify is the user's: refused, not overwritten
    bad = tmp_path / "out2" / "in.mp4"
    bad.parent.mkdir()
    bad.write_bytes(b"user file")
    rep = prepare(src, tmp_path / "out2", progress=False)
    assert rep.failed == 1 and "--overwrite" in rep.failures[0]["reason"]
    assert bad.read_bytes() == b"user file"


def test_killed_run_leaves_no_partial_output(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for k in range(6):
        cvpt.write_video(
            src / f"v{k}.mp4",
            moving_scene(frames=240, height=240, width=320, seed=k),
            codec="libx264",
            gop=250,
        )
    dst = tmp_path / "dst"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cvpt.cli.main",
            "prepare",
            str(src),
            str(dst),
            "--quiet",
            "--short-side",
            "480",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while time.time() < deadline and not list(dst.glob(".*cvpt-tmp*")):  # wait for a write
        time.sleep(0.005)
    assert proc.poll() is None, "prepare finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finals = [p for p in dst.glob("*.mp4") if not p.name.startswith(".")]
    assert len(finals) < 6
    for p in finals:  # whatever has its final name is complete and verified
        assert not cvpt.probe(p).layout_problems()
    rep = prepare(src, dst, progress=False)
    assert rep.failed == 0 and rep.skipped == len(finals) and rep.done == 6 - len(finals)
    assert not list(dst.glob(".*cvpt-tmp*"))  # the stale temp file was cleaned up
