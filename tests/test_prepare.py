"""cvpt prepare: other codecs in, verified GOP-12 MPEG-4 out; resumable; atomic; sharded."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

import av
import numpy as np
import pytest

import cvpt
from conftest import write_raw
from cvpt.codec import container, encode
from cvpt.codec.container import VIDEO_EXTENSIONS
from cvpt.codec.orient import upright_frame
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
    saved = json.loads((dst / "prepare-report.json").read_text())
    assert saved["done"] == 3
    # bytes of what is there: every source (not the readme) and every output
    source_bytes = sum(p.stat().st_size for p in src.rglob("*") if p.suffix in VIDEO_EXTENSIONS)
    output_bytes = sum(p.stat().st_size for p in dst.rglob("*.mp4"))
    assert (saved["source_bytes"], saved["output_bytes"]) == (source_bytes, output_bytes)
    assert report.bytes_ratio == output_bytes / source_bytes
    mtimes = {p: p.stat().st_mtime_ns for p in dst.rglob("*.mp4")}
    again = prepare(src, dst, progress=False)
    assert (again.skipped, again.done) == (3, 0)
    assert (again.source_bytes, again.output_bytes) == (source_bytes, output_bytes)
    assert mtimes == {p: p.stat().st_mtime_ns for p in dst.rglob("*.mp4")}


def test_frame_count_and_content_survive(tmp_path, videos):
    res = cvpt.reencode(videos["x264_bframes"], tmp_path / "o.mp4", short_side=None)
    assert res.frames == 72
    src = cvpt.read_clip(cvpt.reencode(videos["prepared"], tmp_path / "p.mp4", short_side=None).dst)
    ref = cvpt.read_clip(videos["prepared"])
    assert np.abs(src.iframes.astype(int) - ref.iframes.astype(int)).mean() < 4


def test_failures_are_reported_and_exit_non_zero(tmp_path, videos):
    src = _tree(tmp_path / "src", videos)
    (src / "broken.avi").write_bytes(b"RIFF" + bytes(range(256)) * 8)  # not a video
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
    # the summary: bytes of the outputs written, of their sources, and the ratio
    ratio = report["output_bytes"] / report["source_bytes"]
    kb = report["source_bytes"] / 1e3, report["output_bytes"] / 1e3  # < 1 MB of either
    summary = f"{kb[1]:.1f} kB prepared from {kb[0]:.1f} kB of sources ({ratio:.2f}× the source"
    assert summary in proc.stdout, proc.stdout


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


@pytest.mark.slow  # over 10 s: run by `make test` after the default set
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


# --- what prepare writes, and how it checks it, without decoding twice ------------------------


def _per_frame_context_convert(self, frame):
    """``_Resampler._convert`` before 2026-12: ``frame.reformat`` builds a swscale context for
    every frame (the reference the kept context must reproduce byte for byte)."""
    out = frame.reformat(width=self.scaled[0], height=self.scaled[1], **encode.CONVERSION)
    return upright_frame(out, self.orient)


def _awkward_sources(folder: Path, videos: dict) -> list[Path]:
    """Sources that take every branch of the conversion: B-frames, VP8, odd size and yuv444p,
    full range, a display rotation, a variable frame rate."""
    scene = moving_scene(frames=30, height=48, width=64, seed=2)
    times = [0, 33, 67, 100, 133, 233, 267, 300, 400, 433] + [466 + 33 * k for k in range(20)]
    return [
        videos["x264_bframes"],
        videos["vp8"],
        videos["odd"],
        write_raw(folder / "full.mp4", scene, "libx264", "yuvj420p", color_range="JPEG"),
        write_raw(folder / "phone.mp4", scene, "libx264", rotation=90),
        write_raw(folder / "vfr.mkv", scene, "libx264", pts=times, time_base=Fraction(1, 1000)),
    ]


def test_output_bytes_are_what_the_per_frame_path_wrote(tmp_path, videos, monkeypatch):
    # one swscale context per video, packet-level verification and one decode thread must not
    # change a byte of the output: the encoder gets the same frames
    sources = _awkward_sources(tmp_path, videos)
    new = {}
    for src in sources:
        out = tmp_path / "new" / f"{src.stem}.mp4"
        out.parent.mkdir(exist_ok=True)
        new[src] = Path(cvpt.reencode(src, out, short_side=40).dst)
        one = cvpt.reencode(src, tmp_path / f"one_{src.stem}.mp4", decode_threads="NONE")
        two = cvpt.reencode(src, tmp_path / f"two_{src.stem}.mp4", decode_threads="AUTO")
        assert Path(one.dst).read_bytes() == Path(two.dst).read_bytes(), src.name
    monkeypatch.setattr(encode._Resampler, "_convert", _per_frame_context_convert)
    for src in sources:
        old = cvpt.reencode(src, tmp_path / f"old_{src.stem}.mp4", short_side=40, verify="decode")
        assert Path(old.dst).read_bytes() == new[src].read_bytes(), src.name


def test_packet_verification_sees_key_flags_a_decode_does_not(tmp_path, videos):
    # seeking (read_clip) trusts the index's key frames: a P marked key, an I not marked
    path = tmp_path / "flags.mp4"
    with av.open(str(videos["prepared"])) as src, av.open(str(path), "w") as out:
        stream = out.add_stream_from_template(src.streams.video[0])
        for k, packet in enumerate(p for p in src.demux(video=0) if p.size):
            packet.is_keyframe = k in (0, 5, 24, 36, 48, 60)  # 5: a P; 12: an I left unmarked
            packet.stream = stream
            out.mux(packet)
    assert not cvpt.probe(path).layout_problems()  # the decoder does not look
    problems, frames = encode._written_layout(path, 12, "packets")
    assert "its key frames are at frames 0, 5, 24, 36" in problems[0] and frames == 72


@pytest.mark.parametrize(
    ("forced", "problem"),
    [
        ({"gop": 5}, "GOP pattern is|key frames are at frames 0, 5, 10"),
        ({"max_b_frames": 2}, "B-frames"),
    ],
)
def test_an_output_without_the_layout_is_refused(tmp_path, videos, monkeypatch, forced, problem):
    class Wrong(encode.VideoWriter):  # an encoder that ignores what it is asked for
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **{**kwargs, **forced})

    monkeypatch.setattr(encode, "VideoWriter", Wrong)
    dst = tmp_path / "out.mp4"
    for verify in ("packets", "decode"):
        with pytest.raises(cvpt.EncodeError, match=rf"out\.mp4.*does not verify.*({problem})"):
            cvpt.reencode(videos["x264_bframes"], dst, verify=verify)
        assert not dst.exists() and not list(tmp_path.glob(".*"))


def test_quantiser_option(tmp_path, videos):
    sizes = {}
    for q in (2, 8):
        res = cvpt.reencode(videos["x264_bframes"], tmp_path / f"q{q}.mp4", q=q, short_side=None)
        assert not cvpt.probe(res.dst).layout_problems()
        sizes[q] = Path(res.dst).stat().st_size
    assert sizes[8] < 0.6 * sizes[2]
    with pytest.raises(cvpt.EncodeError, match=r"q40\.mp4.*from 2 to 31, got 40"):
        cvpt.reencode(videos["x264_bframes"], tmp_path / "q40.mp4", q=40)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "cvpt.cli.main",
            "prepare",
            str(videos["vp8"]),
            str(tmp_path),
            "--q=1",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and "q must be from 2 to 31, got 1" in proc.stderr


# --- frame timing in pure Python (prepare does not import numpy): the numpy version's answers


def _numpy_on_rate_grid(pts, time_base, rate) -> bool:
    if len(pts) < 2:
        return True
    t = np.sort(np.asarray(pts, np.int64))
    t -= t[0]
    step = Fraction(time_base) * Fraction(rate)
    k = np.arange(len(t))
    if step > Fraction(1, 2):  # ticks too coarse to place frames: within one tick of k / rate
        return bool((np.abs(t * step.numerator - k * step.denominator) <= step.numerator).all())
    slots = (t * step.numerator * 2 + step.denominator) // (2 * step.denominator)
    return bool(np.array_equal(slots, k))


def _numpy_typical_rate(t: np.ndarray, tb: Fraction) -> Fraction:
    steps = np.diff(np.unique(t))
    median = np.median(steps)
    typical = Fraction(float(steps[np.abs(steps - median) <= 0.1 * median].mean()))
    return container._snap_rate(1 / (typical * tb), Fraction(1, int(2 * median)))


def test_frame_timing_gives_the_numpy_versions_answers():
    rng = np.random.default_rng(0)
    cases = 0
    for tb in (Fraction(1, 1000), Fraction(1, 90000), Fraction(1, 15360), Fraction(1001, 30000)):
        for fps in (Fraction(30000, 1001), Fraction(25), Fraction(12), Fraction(60)):
            n = int(rng.integers(2, 300))
            exact = np.arange(n) / float(fps) / float(tb)
            for jitter in (0.0, 0.3, 0.6, 3.0):  # in units of the time base
                t = np.round(exact + rng.uniform(-jitter, jitter, n)).astype(np.int64)
                if rng.random() < 0.3:  # stalls
                    t[n // 2 :] += int(rng.integers(1, 5 * (1 / fps / tb)))
                if rng.random() < 0.3:
                    t = rng.permutation(t)  # any order
                pts = [int(x) for x in t]
                stream = SimpleNamespace(
                    time_base=tb, average_rate=fps, guessed_rate=fps * 2, base_rate=fps
                )
                rate, constant = container.frame_timing(stream, pts)
                for r in (fps, rate, fps * 2, Fraction(24)):
                    assert container.on_rate_grid(pts, tb, r) == _numpy_on_rate_grid(pts, tb, r)
                if not constant:
                    assert rate == _numpy_typical_rate(t, tb)
                cases += 1 - constant
    assert cases > 10  # the variable-rate branch was taken


def test_the_bytes_written_do_not_depend_on_the_machine_s_core_count(tmp_path):
    """libavcodec would give the mpeg4 encoder one slice per core + 1, and other slices are
    other frames: a process that sees one core must write what this one writes."""
    script = (
        "import os, sys\n"
        "os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})\n"
        "from cvpt.codec.encode import write_video\n"
        "from cvpt.data.generate import moving_scene\n"
        "write_video(sys.argv[1], moving_scene(frames=24, height=96, width=128, seed=3))\n"
    )
    for name in ("one_core.mp4", "control.mp4"):  # the control: every core
        code = script if name == "one_core.mp4" else script.replace("os.sched_setaffinity", "#")
        done = subprocess.run([sys.executable, "-c", code, str(tmp_path / name)], timeout=120)
        assert done.returncode == 0
    here = tmp_path / "here.mp4"
    cvpt.write_video(here, moving_scene(frames=24, height=96, width=128, seed=3))
    assert (tmp_path / "one_core.mp4").read_bytes() == here.read_bytes()
    assert (tmp_path / "control.mp4").read_bytes() == here.read_bytes()


def test_a_rerun_with_other_settings_names_the_outputs_it_would_not_match(tmp_path, capsys):
    """Outputs carry their settings: a second run asking for another quantiser or short side
    does not take them for done (with --overwrite it re-encodes them); the same settings
    skip them, from the packets alone."""
    from cvpt.cli.main import main
    from cvpt.codec.encode import settings_of

    src = tmp_path / "src"
    src.mkdir()
    for k in range(2):
        cvpt.write_video(src / f"v{k}.mp4", moving_scene(frames=30, height=48, width=64, seed=k))
    dst = tmp_path / "dst"
    assert main(["prepare", str(src), str(dst), "--short-side", "48", "--quiet"]) == 0
    assert settings_of(dst / "v0.mp4") == {
        "codec": "mpeg4", "gop": "12", "q": "2", "short_side": "48", "dia_size": "4"
    }  # fmt: skip
    before = (dst / "v0.mp4").read_bytes()
    for extra, what in ((["--q", "4"], "q=2, not q=4"), (["--short-side", "32"], "short_side=48")):
        capsys.readouterr()
        assert main(["prepare", str(src), str(dst), "--quiet", "--short-side", "48", *extra]) == 1
        err = capsys.readouterr().err
        assert err.count("exists and was prepared with") == 2 and what in err
        assert (dst / "v0.mp4").read_bytes() == before  # nothing the user owns replaced
    assert main(["prepare", str(src), str(dst), "--short-side", "48", "--quiet"]) == 0
    assert "0 encoded, 2 already prepared (skipped)" in capsys.readouterr().out
    args = ["prepare", str(src), str(dst), "--short-side", "48", "--q", "4", "--overwrite"]
    assert main([*args, "--quiet"]) == 0
    assert settings_of(dst / "v0.mp4")["q"] == "4"
    assert len((dst / "v0.mp4").read_bytes()) < len(before)
