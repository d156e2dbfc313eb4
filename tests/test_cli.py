"""The cvpt command as a user runs it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import cvpt
from cvpt.cli.main import build_parser, main


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cvpt.cli.main", *args], capture_output=True, text=True, timeout=300
    )


def test_show_writes_a_png(tmp_path, videos):
    out = tmp_path / "clip.png"
    assert main(["show", str(videos["prepared"]), "-o", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
    assert not list(tmp_path.glob(".*"))  # no temp file left behind


def test_show_on_an_unprepared_video_fails_clearly(tmp_path, videos):
    proc = _run("show", str(videos["x264_bframes"]), "-o", str(tmp_path / "x.png"))
    assert proc.returncode == 2
    assert "cvpt prepare" in proc.stderr and "x264_bframes.mp4" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_probe_json(videos, capsys):
    assert main(["probe", str(videos["gop6"]), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["codec"] == "mpeg4" and info["frames"] == 72 and info["ready"] is False


def test_doctor_passes_here():
    proc = _run("doctor")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "MV export round trip" in proc.stdout and "all checks passed" in proc.stdout


def test_missing_input_is_an_error_not_a_traceback(tmp_path):
    proc = _run("probe", str(tmp_path / "missing.mp4"))
    assert proc.returncode == 2 and "no such file" in proc.stderr and "Traceback" not in proc.stderr


def test_top_level_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for cmd in (
        "prepare",
        "probe",
        "show",
        "data",
        "synth",
        "pretrain",
        "train",
        "eval",
        "predict",
        "demo",
        "visualize",
        "info",
        "doctor",
        "bench",
    ):
        assert cmd in out


def _all_commands(parser=None, prefix=()) -> list[list[str]]:
    """Every leaf sub-command of `cvpt`, e.g. ["bench", "pipeline"]."""
    import argparse

    parser = parser or build_parser()
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out += _all_commands(sub, (*prefix, name)) or [[*prefix, name]]
    return out


ALL_COMMANDS = _all_commands()


def test_the_command_list_is_complete():
    names = {" ".join(c) for c in ALL_COMMANDS}
    assert {"prepare", "data check", "demo", "visualize", "bench pipeline", "predict"} <= names
    assert len(names) >= 16


@pytest.mark.parametrize("cmd", ALL_COMMANDS, ids=[" ".join(c) for c in ALL_COMMANDS])
def test_every_command_has_help_with_an_example(cmd, capsys):
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args([*cmd, "--help"])
    assert e.value.code == 0
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "example:" in out
    assert "(default: None)" not in out and "(default: False)" not in out
    assert not re.search(r"\(default: [^)]*\) \(default:", out)  # a stated default said twice


def test_bench_reader_runs_on_a_folder(tmp_path, videos):
    out = tmp_path / "bench.json"
    folder = tmp_path / "v"
    folder.mkdir()
    (folder / "a.mp4").write_bytes(videos["prepared"].read_bytes())
    assert (
        main(
            [
                "bench",
                "reader",
                "--videos",
                str(folder),
                "--repeats",
                "2",
                "--rounds",
                "3",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    res = json.loads(out.read_text())
    assert (
        res["videos"] == 1
        and res["b_over_a"] > 0
        and set(res["median_ms"]) == {"a_decode_floor", "b_read_clip", "c_rgb_clip"}
    )
    each = sorted(r["b_over_a"] for r in res["rounds"])
    assert len(each) == 3 and res["b_over_a"] == each[1]  # the median round


def test_bench_model_smoke(tmp_path):
    out = tmp_path / "model.json"
    args = [
        "bench",
        "model",
        "--backbone",
        "vit_tiny",
        "--size",
        "32",
        "--depth",
        "2",
        "--repeats",
        "1",
        "--grad-checkpointing",
        "--breakdown",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    res = json.loads(out.read_text())
    for case, parts in res["peak_breakdown_bytes"].items():  # the parts add up to the peak
        assert sum(parts.values()) == res["peak_bytes"][case] and "aten.mm.default" in parts
    sizes = res["checkpoint_bytes"]
    assert sizes["cvpt_rank_16"] < sizes["cvpt_full_rank"] < sizes["full_model"]
    assert set(res["ratios"]) >= {"cvpt_forward_over_videomae16", "cvpt_step_over_full"}
    held = res["tensor_bytes"]
    assert held["cvpt_ckpt_step"]["activations"] < held["cvpt_step"]["activations"]


def test_bench_pipeline_smoke(tmp_path, videos):
    folder = tmp_path / "v"
    folder.mkdir()  # an unprepared H.264 video with B-frames: the bench prepares it first
    (folder / "a.mp4").write_bytes(videos["x264_bframes"].read_bytes())
    out = tmp_path / "out"
    args = ["bench", "pipeline", "--videos", str(folder), "--rounds", "1", "--repeats", "1",
            "--workers", "0", "--loader-items", "2", "--no-predict", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    res = json.loads((out / "results.json").read_text())
    med = res["median_ms"]
    for case in (
        "floor",
        "read_clip",
        "view_eval",
        "view_train",
        "ref_eval",
        "ref_train",
        "rgb_pyav_prepared",
        "rgb_pyav_source",
        "protocol_cvpt",
        "protocol_rgb_source",
    ):
        assert med[case] > 0 and res["median_cpu_ms"][case] > 0, case  # fmt: skip
    r = res["ratios"]["view_eval / floor"]
    assert r["median"] == pytest.approx(med["view_eval"] / med["floor"]) and len(r["rounds"]) == 1
    assert set(res["targets"]) >= {"view_eval / floor", "read_clip / floor"}
    assert {"fused_workers_0", "reference_workers_0", "rgb_workers_0"} <= set(res["dataloader"])
    assert res["video"].startswith("342x256 mpeg4") and res["source"].startswith("128x96 h264")
    assert (out / "pipeline.png").read_bytes()[:4] == b"\x89PNG"


def test_rgb_views_are_videomae_test_views(videos):
    from cvpt.bench.rgb import available_readers, pyav_tuned_views, pyav_views

    one = pyav_views(videos["prepared"], size=64)
    many = pyav_views(videos["prepared"], 5, 3, size=64)
    assert one.shape == (1, 3, 16, 64, 64) and many.shape == (15, 3, 16, 64, 64)
    # 128x96 → 85x64: crops at x = 0, 10, 21 of the same clip overlap exactly
    assert torch.equal(many[0][..., 10:], many[1][..., :54])
    assert torch.equal(many[1][..., 11:], many[2][..., :53])
    assert not torch.equal(many[1], many[13])  # clip 0 and clip 4: other frames
    assert torch.equal(pyav_tuned_views(videos["prepared"], 5, 3, size=64), many)  # same values
    if available_readers()["decord"] == "ok":  # the readers differ in cost, not in frames
        from cvpt.bench.rgb import decord_views

        assert torch.equal(decord_views(videos["prepared"], 5, 3, size=64), many)


def test_rgb_views_number_frames_by_time_in_a_b_frame_source(videos):
    """A user's H.264 with B-frames: the 16 frames are the ones at the window's times."""
    import av
    import cv2
    import numpy as np

    from cvpt.bench.rgb import pyav_views, to_views, wanted_frames

    with av.open(str(videos["x264_bframes"])) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    for clips in (1, 3):
        picked = np.empty((clips, 16), object)
        for i, slots in wanted_frames(len(frames), clips).items():
            for c, j in slots:
                picked[c, j] = cv2.resize(frames[i], (85, 64), interpolation=cv2.INTER_LINEAR)
        want = to_views(picked, 1, 64)
        assert torch.equal(pyav_views(videos["x264_bframes"], clips, size=64), want)


def test_profile_step_script_splits_a_step_by_operator():
    script = Path(__file__).resolve().parents[1] / "scripts" / "profile_step.py"
    args = ["--backbone", "vit_tiny", "--size", "32", "--rows", "4", "--device", "cpu"]
    proc = subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("Self CPU time total") == 2
    assert "== cvpt" in proc.stdout and "== full" in proc.stdout and "aten::" in proc.stdout


def test_bench_model_checkpointing_sweep_writes_json_and_png(tmp_path):
    out = tmp_path / "sweep.json"
    args = ["bench", "model", "--backbone", "vit_tiny", "--size", "32", "--depth", "2"]
    assert main([*args, "--repeats", "1", "--sweep-checkpointing", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert [p["checkpointed_blocks"] for p in res["points"]] == [0, 1, 2]
    assert all(p["step_seconds"] > 0 and p["peak_bytes"] > 0 for p in res["points"])
    png = tmp_path / "sweep.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_cvpt_errors_are_one_line_bugs_keep_their_traceback(tmp_path, monkeypatch, capsys):
    """A CvptError (bad input) is one line with exit 2; anything else is a bug and raises."""
    proc = _run("train", "--out", str(tmp_path / "r"), "--set", "epoch=3")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and "unknown config key(s) ['epoch']" in proc.stderr
    from cvpt.cli import info

    def boom(args):
        raise ValueError("an internal bug")

    monkeypatch.setattr(info, "run", boom)
    with pytest.raises(ValueError, match="an internal bug"):  # not swallowed into one line
        main(["info"])
    proc = _run("--debug", "probe", str(tmp_path / "missing.mp4"))
    assert proc.returncode == 1 and "Traceback" in proc.stderr
    assert "VideoNotFoundError" in proc.stderr and "missing.mp4" in proc.stderr


def test_every_error_class_is_a_cvpt_error():
    import cvpt.errors as errors

    classes = [
        c
        for c in vars(errors).values()
        if isinstance(c, type) and issubclass(c, Exception) and c.__module__ == errors.__name__
    ]
    assert len(classes) >= 12
    assert all(issubclass(c, cvpt_error) for c in classes for cvpt_error in [errors.CvptError])
    assert issubclass(cvpt.CheckpointError, errors.CvptError)
    assert issubclass(errors.ConfigError, ValueError)  # `except ValueError` code keeps working


def test_views_mean_clips_times_crops_in_eval_predict_and_info(capsys):
    parser = build_parser()
    for cmd in (["eval", "--run", "r"], ["predict", "v.mp4", "--checkpoint", "r"], ["info"]):
        args = parser.parse_args([*cmd, "--clips", "2", "--crops", "3"])
        assert (args.clips, args.crops) == (2, 3)
        with pytest.raises(SystemExit):  # no flag called --views with another meaning
            parser.parse_args([*cmd, "--views", "2"])
    assert main(["info", "--backbone", "vit_tiny", "--clips", "2", "--crops", "3", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)[0]  # the method's row (then the raw-RGB backbone's)
    assert row["views"] == 6 and row["gmacs_total"] == pytest.approx(6 * row["gmacs_per_view"])


def test_progress_is_plain_lines_when_not_a_terminal():
    import io

    from cvpt.progress import LineProgress

    buf = io.StringIO()
    bar = LineProgress(total=4, desc="epoch 0", unit="step", interval=0.0, file=buf)
    for _ in range(4):
        bar.update(1)
        bar.set_postfix(loss="0.5")
    bar.write("FAILED x.mp4")
    bar.set_postfix_str("top-1 50%")  # every tqdm method cvpt calls exists here too
    bar.close()
    lines = buf.getvalue().splitlines()
    assert "\r" not in buf.getvalue() and len(lines) == 6 and lines[4] == "FAILED x.mp4"
    assert lines[-1].startswith("epoch 0: 4/4 step (100%)") and "top-1 50%" in lines[-1]
    assert "loss=0.5" in lines[3]
    buf = io.StringIO()  # a resumed job: the rate counts this run's work only
    LineProgress(total=8, initial=8, desc="synth", unit="video", file=buf).close()
    bar = LineProgress(total=8, initial=6, desc="synth", unit="video", interval=0.0, file=buf)
    bar.start -= 2.0  # two seconds for the two videos left
    bar.update(2)
    LineProgress(total=8, initial=3, desc="synth", unit="video", file=buf).close()  # stopped
    done, resumed, stopped = buf.getvalue().splitlines()
    assert stopped == "synth: 3/8 video (38%) in 0 s"  # no rate, and not "all there"
    assert done.startswith("synth: 8/8 video (100%)") and done.endswith("all there already")
    rate = float(resumed.split(", ")[-1].removesuffix(" video/s"))
    assert resumed.startswith("synth: 8/8 video (100%)") and 0.8 < rate <= 1.0  # not 4 video/s
    from cvpt.progress import tqdm

    assert isinstance(tqdm(range(3), desc="x"), LineProgress)  # pytest's stderr is no terminal


def test_a_closed_pipe_ends_the_command_quietly(tmp_path):
    """`cvpt probe FILE | head -1`: the reader leaves before the command has written; the
    command ends with status 141 (128 + SIGPIPE), as shell tools do, not a traceback."""
    import os

    from cvpt.data.generate import moving_scene

    video = cvpt.write_video(tmp_path / "v.mp4", moving_scene(frames=24, height=32, width=32))
    env = {**os.environ, "PYTHONPATH": str(Path(cvpt.__file__).parents[1])}
    cmd = [sys.executable, "-m", "cvpt.cli.main", "probe", str(video)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    proc.stdout.close()  # the reader is gone before the first line
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141, err
    assert "Traceback" not in err and "BrokenPipeError" not in err


def test_warnings_are_one_line_naming_the_command(tmp_path, capsys):
    """A warning the library raises reads, on the command line, as one line naming the command
    (not Python's file:line and source echo)."""
    (tmp_path / "train.txt").write_text("a/x.mp4 0\n#1.mp4 0\n")
    main(["data", "check", "--dataset", "list", "--root", str(tmp_path), "--annotations",
          str(tmp_path / "train.txt")])  # fmt: skip
    err = capsys.readouterr().err
    assert "cvpt data: warning: " in err and "is read as a comment" in err
    assert "UserWarning" not in err and "splits.py" not in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--method", "lora", "--set", "lora_rank=0"], "lora_rank=0 is not allowed"),
        (["--method", "lora", "--set", "lora_alpha=.nan"], "lora_alpha=nan is not allowed"),
        (["--method", "vpt", "--backbone", "swin_tiny"], "does not support the backbone family"),
        (["--set", "sccp_layers=99"], r"sccp_layers=99 is not allowed.*0\.\.12"),
        (["--set", "pool=bad"], "pool='bad' is not allowed: it takes one of 'all', 'iframe'"),
        (["--set", "residual_prompt=maybe"], "residual_prompt='maybe' is not allowed"),
        (["--all", "--set", "bogus=1"], r"\['bogus'\] are taken by none of the methods"),
    ],
)
def test_info_with_options_out_of_range_is_one_line_and_status_2(argv, message, capsys):
    assert main(["info", *argv]) == 2
    out = capsys.readouterr()
    assert out.out == "" and re.fullmatch(rf"cvpt info: error: .*{message}.*\n", out.err)


def test_info_all_takes_the_options_and_size_of_every_row(capsys):
    from cvpt.models.report import model_row, raw_video_row

    def rows(*argv):
        assert main(["info", "--all", "--backbone", "vit_tiny", "--json", *argv]) == 0
        return json.loads(capsys.readouterr().out)

    base, ranked = rows(), rows("--set", "lora_rank=4", "pool=iframe")
    lora, was = (next(r for r in x if r["method"] == "lora") for x in (ranked, base))
    want = model_row("lora", backbone="vit_tiny", num_classes=51, lora_rank=4, pool="iframe")
    assert lora["tunable_params"] == want["tunable_params"] != was["tunable_params"]
    # the shared option reaches every method, LoRA's own option LoRA only
    assert all(r["options"] == {"pool": "iframe"} for r in ranked[:-1] if r["method"] != "lora")
    assert lora["options"] == {"lora_rank": 4, "pool": "iframe"}
    small = rows("--size", "112")
    assert [r["method"] for r in small] == [r["method"] for r in base]
    for r, b in zip(small[:-1], base[:-1], strict=True):
        at = model_row(r["method"], backbone="vit_tiny", num_classes=51, size=112)
        assert r["gmacs_per_view"] == pytest.approx(at["gmacs_per_view"])
        assert r["gmacs_per_view"] < b["gmacs_per_view"] / 3  # a quarter of the tokens
    raw = raw_video_row("vit_tiny", num_classes=51, size=112)
    assert small[-1]["gmacs_per_view"] == pytest.approx(raw["gmacs_per_view"])
