"""Training: the recipe, exact resume, corrupt videos, configs, evaluation, DDP."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import cvpt
from cvpt.cli.main import main
from cvpt.data.generate import translating_texture
from cvpt.training.config import load_config
from cvpt.training.schedule import param_groups, scaled_lr, warmup_cosine
from cvpt.training.trainer import Run

TINY = [
    "dataset=list",
    "backbone=vit_tiny",
    "backbone_options={depth: 2}",
    "size=32",
    "short_side=32",
    "batch_size=2",
    "effective_batch=4",
    "warmup_epochs=1",
    "workers=0",
]


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    """12 videos, 2 classes: a texture moving right or left (only motion tells them apart)."""
    d = tmp_path_factory.mktemp("tiny")
    videos, ann = d / "videos", d / "ann"
    videos.mkdir()
    ann.mkdir()
    rows = {"train": [], "test": []}
    for label, dx in enumerate((2, -2)):
        for i in range(6):
            name = f"c{label}_{i}.mp4"
            cvpt.write_video(
                videos / name,
                translating_texture(dx, 0, frames=48, height=32, width=48, seed=10 * label + i),
            )
            rows["train" if i < 4 else "test"].append(f"{name} {label}")
    for subset, lines in rows.items():
        (ann / f"{subset}.txt").write_text("\n".join(lines) + "\n")
    return d


def _cfg(ds: Path, *extra: str):
    return load_config(None, [*TINY, f"root={ds / 'videos'}", f"annotations={ds / 'ann'}", *extra])


def _weights(run: Path) -> dict:
    last = json.loads((run / "checkpoints" / "last.json").read_text())["checkpoint"]
    return load_file(run / "checkpoints" / last / "tunable.safetensors")


def test_schedule_scaling_and_decay_groups():
    f = warmup_cosine(total_steps=100, warmup_steps=10)
    lrs = [f(s) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in itertools.pairwise(lrs[10:]))
    assert lrs[-1] < 0.01
    assert scaled_lr(1e-3, 240) == 1e-3 and scaled_lr(1e-3, 60) == pytest.approx(2.5e-4)
    model = cvpt.create_model(
        "cvpt", backbone="vit_tiny", num_classes=3, backbone_options={"depth": 1}
    )
    decay, no_decay = param_groups(model, 1e-4)
    assert no_decay["weight_decay"] == 0 and all(p.ndim <= 1 for p in no_decay["params"])
    assert any(p.ndim == 0 for p in no_decay["params"])  # ω
    assert all(p.ndim >= 2 for p in decay["params"])


def test_unknown_config_key_lists_the_valid_ones(tmp_path):
    with pytest.raises(
        ValueError, match=r"unknown config key\(s\) \['epoch'\].*valid keys: .*epochs"
    ):
        load_config(None, ["epoch=3"])
    (tmp_path / "c.yaml").write_text("dataset: hmdb51\nbatchsize: 4\n")
    with pytest.raises(ValueError, match="batchsize"):
        load_config(tmp_path / "c.yaml")
    cfg = load_config(None, ["model_options={sccp_layers: 1}", "flip=false", "epochs=2"])
    assert cfg.model_options == {"sccp_layers": 1} and cfg.flip is False and cfg.epochs == 2


def test_train_learns_motion_and_writes_the_run(tiny_dataset, tmp_path):
    run = tmp_path / "run"
    summary = Run(_cfg(tiny_dataset, "epochs=4", "base_lr=0.02"), run).train()
    assert summary["steps"] == 8 and summary["effective_batch"] == 4
    for name in (
        "config.yaml",
        "metrics.jsonl",
        "metrics.csv",
        "curves.png",
        "confusion.png",
        "summary.json",
        "eval.json",
    ):
        assert (run / name).exists(), name
    cfg_text = (run / "config.yaml").read_text()
    assert "effective_batch: 4" in cfg_text and "accumulation: 2" in cfg_text
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["kind"] == "step"] == list(range(1, 9))
    assert sum(r["kind"] == "eval" for r in rows) == 4
    with pytest.raises(FileExistsError, match="--resume"):
        Run(_cfg(tiny_dataset, "epochs=4"), run).train()


def test_resume_is_bit_exact(tiny_dataset, tmp_path):
    cfg = ("epochs=3",)
    Run(_cfg(tiny_dataset, *cfg), tmp_path / "straight").train()
    Run(_cfg(tiny_dataset, *cfg), tmp_path / "split").train(stop_at=3)  # mid-epoch 2
    half = _weights(tmp_path / "split")
    # a crash after logging a step but before its checkpoint: the row must not survive
    with open(tmp_path / "split" / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"kind": "step", "step": 4, "epoch": 1, "loss": 9.0, "lr": 0.0}) + "\n")
    Run(_cfg(tiny_dataset, *cfg), tmp_path / "split", resume=True).train()
    rows = [json.loads(x) for x in (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["kind"] == "step"] == list(range(1, 7))
    assert all(r.get("loss") != 9.0 for r in rows)
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "split")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], half[k]) for k in a)  # it did train after the resume


def test_checkpoint_of_another_method_is_refused(tiny_dataset, tmp_path):
    Run(_cfg(tiny_dataset, "epochs=1"), tmp_path / "r").train()
    with pytest.raises(ValueError, match=r"another model.*method: checkpoint 'cvpt', run 'vpt'"):
        Run(_cfg(tiny_dataset, "epochs=2", "method=vpt"), tmp_path / "r", resume=True).train()


def test_corrupt_videos_are_skipped_and_reported(tiny_dataset, tmp_path):
    ds = tmp_path / "ds"
    shutil.copytree(tiny_dataset, ds)
    bad = [ds / "videos" / "c0_1.mp4", ds / "videos" / "c1_4.mp4"]  # one train, one test
    bad[0].write_bytes(bad[0].read_bytes()[:300])
    bad[1].write_bytes(b"\x00" * 5000)
    summary = Run(_cfg(ds, "epochs=2"), tmp_path / "run").train()
    assert {s["path"] for s in summary["skipped"]} == {str(p) for p in bad}
    assert summary["skipped_videos"] == 2
    saved = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert {s["path"] for s in saved["skipped"]} == {str(p) for p in bad}


def test_eval_command_multi_view(tiny_dataset, tmp_path, capsys):
    run = tmp_path / "run"
    Run(_cfg(tiny_dataset, "epochs=1"), run).train()
    assert main(["eval", "--run", str(run), "--clips", "2", "--crops", "3"]) == 0
    out = capsys.readouterr().out
    assert "6 views: 2 clips x 3 crops" in out
    res = json.loads((run / "eval-2x3.json").read_text())
    assert res["videos"] == 4 and len(res["per_class"]) == 2
    assert np.asarray(res["confusion"]).sum() == 4
    assert (run / "eval-2x3-confusion.png").exists()


def test_cli_train_stop_and_resume(tiny_dataset, tmp_path, capsys):
    args = [
        "train",
        "--out",
        str(tmp_path / "cli"),
        "--set",
        *TINY,
        "epochs=2",
        f"root={tiny_dataset / 'videos'}",
        f"annotations={tiny_dataset / 'ann'}",
    ]
    assert main([*args, "--stop-after", "1"]) == 0
    assert main(["train", "--out", str(tmp_path / "cli"), "--resume"]) == 0
    assert "done: 4 steps, 2 epochs, effective batch 4" in capsys.readouterr().out


def test_torchrun_two_processes_match_one(tiny_dataset, tmp_path):
    common = [
        *TINY,
        "epochs=2",
        f"root={tiny_dataset / 'videos'}",
        f"annotations={tiny_dataset / 'ann'}",
    ]
    Run(load_config(None, common), tmp_path / "one").train()
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    torchrun = Path(sys.executable).parent / "torchrun"
    proc = subprocess.run(
        [
            str(torchrun),
            "--nproc_per_node=2",
            "--master_port=29517",
            "-m",
            "cvpt.cli.main",
            "train",
            "--out",
            str(tmp_path / "two"),
            "--set",
            *common,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    config = (tmp_path / "two" / "config.yaml").read_text()
    assert "processes: 2" in config and "accumulation: 1" in config
    a, b = _weights(tmp_path / "one"), _weights(tmp_path / "two")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)


def test_predict_any_video_with_a_run(tiny_dataset, tmp_path, capsys):
    run = tmp_path / "run"
    Run(_cfg(tiny_dataset, "epochs=1"), run).train()
    raw = cvpt.write_video(
        tmp_path / "raw.mp4",
        translating_texture(-2, 0, frames=60, height=32, width=48, seed=99),
        codec="libx264",
        gop=250,
        max_b_frames=2,
    )
    assert cvpt.probe(raw).has_b_frames  # not in the compressed layout: predict re-encodes it
    assert (
        main(
            [
                "predict",
                str(raw),
                "--checkpoint",
                str(run),
                "--clips",
                "2",
                "--crops",
                "3",
                "--workers",
                "0",
                "--json",
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    (res,) = json.loads(captured.out)
    assert [r["class"] for r in res["top"]] in (["0", "1"], ["1", "0"])
    assert sum(r["probability"] for r in res["top"]) == pytest.approx(1.0, abs=1e-5)
    assert "6 views each (2 clips x 3 crops)" in captured.err
    ckpt = cvpt.Predictor.from_pretrained(run).source  # a checkpoint folder works as the run
    assert main(["predict", str(raw), "--checkpoint", ckpt, "--workers", "0"]) == 0
    assert "1 video(s), 0 failed" in capsys.readouterr().err


def test_workers_do_not_change_the_run(tiny_dataset, tmp_path):
    Run(_cfg(tiny_dataset, "epochs=1"), tmp_path / "w0").train()
    Run(_cfg(tiny_dataset, "epochs=1", "workers=2"), tmp_path / "w2").train()
    a, b = _weights(tmp_path / "w0"), _weights(tmp_path / "w2")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_visualize_draws_the_clip_feature_maps_and_sccp_attention(tiny_dataset, tmp_path, capsys):
    run = tmp_path / "run"
    Run(_cfg(tiny_dataset, "epochs=1", "model_options={sccp_layers: 2}"), run).train()
    raw = cvpt.write_video(
        tmp_path / "raw.mp4",
        translating_texture(2, 0, frames=60, height=32, width=48, seed=7),
        codec="libx264",
        gop=250,
        max_b_frames=2,
    )
    out = tmp_path / "vis"
    assert main(["visualize", str(raw), "--checkpoint", str(run), "-o", str(out)]) == 0
    assert "predicted" in capsys.readouterr().out
    for png in ("clip.png", "feature_map.png", "sccp_attention.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG", png
    summary = json.loads((out / "summary.json").read_text())
    assert summary["sccp_layers_drawn"] == [0, 1] and summary["method"] == "cvpt"
    assert sum(t["probability"] for t in summary["top"]) == pytest.approx(1.0, abs=1e-5)
    args = ["visualize", str(raw), "--checkpoint", str(run), "-o", str(out), "--layers", "5"]
    assert main(args) == 2
    assert "no SCCP attention at layer 5; have [0, 1]" in capsys.readouterr().err

    from cvpt.training.predict import load_trained
    from cvpt.viz.inside import explain

    model = load_trained(run)[0]
    x = {
        "iframes": torch.randn(1, 3, 4, 32, 32),
        "mvs": torch.randn(1, 2, 12, 32, 32),
        "residuals": torch.randn(1, 3, 12, 32, 32),
    }
    res = explain(model, **x)
    assert res["token_norm"].shape == res["cam"].shape == (2, 2, 2)
    for a in res["attention"].values():  # softmax over tokens, per channel: sums to 1
        assert a.sum() == pytest.approx(1.0, abs=1e-5)
    assert not any(b.keep_attention for b in model.sccp)  # hooks are switched off again
