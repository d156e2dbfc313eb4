"""Training: the recipe, exact resume, corrupt videos, configs, evaluation, DDP."""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

import cvpt
from cvpt.cli.main import main
from cvpt.data.generate import translating_texture
from cvpt.models import get_method
from cvpt.models.registry import create_backbone
from cvpt.training.config import load_config, load_run_config
from cvpt.training.schedule import param_groups, scaled_lr, warmup_cosine
from cvpt.training.step import TrainStep, classification_loss
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
    return load_file(run / "checkpoints" / last / "model.safetensors")


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
    # a CVPT run records the reading of SCCP it trains (docs/design.md)
    assert cfg.model_options == {"sccp_layers": 1, "sccp_update": "add"}
    assert cfg.flip is False and cfg.epochs == 2


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


def test_cli_trains_a_registered_method_by_its_name(tiny_dataset, tmp_path, capsys):
    # LoRA: added through the method registry only; its options through model_options
    run = tmp_path / "lora"
    args = ["train", "--out", str(run), "--set", *TINY, "epochs=1", "method=lora",
            "model_options={lora_rank: 2, lora_alpha: 4}", f"root={tiny_dataset / 'videos'}",
            f"annotations={tiny_dataset / 'ann'}"]  # fmt: skip
    assert main(args) == 0
    model = cvpt.load_model(run)
    assert model.method == "lora" and model.options.lora_rank == 2
    qkv = model.backbone.blocks[0].attn.qkv
    assert qkv.scale == 2.0 and qkv.lora_a.weight.shape == (2, qkv.in_features)
    assert qkv.lora_b.weight.abs().sum() > 0  # B left zero: it trained
    weights = _weights(run)
    assert {k.split(".")[-2] for k in weights if k.startswith("backbone.blocks.")} == {
        "lora_a", "lora_b"}  # fmt: skip


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
    assert res["overrides"] == [] and res["eval_subset"] == "test"
    # an evaluation of other inputs never replaces the run's own, and says what it changed
    assert main(["eval", "--run", str(run), "--clips", "2", "--crops", "3", "--set",
                 "eval_subset=train", "mv_clip=0.5", "workers=0"]) == 0  # fmt: skip
    [other] = [p for p in run.glob("eval-2x3-train-set-*.json")]
    assert json.loads((run / "eval-2x3.json").read_text()) == res
    got = json.loads(other.read_text())
    assert got["eval_subset"] == "train" and got["overrides"][1] == "mv_clip=0.5"
    assert got["videos"] == 8  # the training videos


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
    out = capsys.readouterr().out
    assert "stopped by --stop-after after step 1 (epoch 0, batch " in out
    assert f"checkpoint {tmp_path / 'cli' / 'checkpoints' / 'step-0000001'}." in out
    assert f"Resume with: cvpt train --out {tmp_path / 'cli'} --resume" in out
    assert main(["train", "--out", str(tmp_path / "cli"), "--resume"]) == 0
    out = capsys.readouterr().out
    assert "done: 4 steps, 2 epochs, effective batch 4" in out and "Resume with" not in out


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
    assert "1 video(s), 0 failed, 6 views each (2 clips x 3 crops)" in capsys.readouterr().err
    args = ["predict", str(raw), "--checkpoint", ckpt, "--workers", "0", "--clips", "1"]
    assert main([*args, "--crops", "1"]) == 0
    assert "1 video(s), 0 failed, 1 view each (1 clip x 1 crop)" in capsys.readouterr().err


def test_workers_do_not_change_the_run(tiny_dataset, tmp_path):
    Run(_cfg(tiny_dataset, "epochs=1"), tmp_path / "w0").train()
    Run(_cfg(tiny_dataset, "epochs=1", "workers=2"), tmp_path / "w2").train()
    a, b = _weights(tmp_path / "w0"), _weights(tmp_path / "w2")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_compact_inputs_are_the_float32_inputs_made_on_the_device(tiny_dataset, tmp_path):
    """Workers send uint8 / int16 and the motion cells (compact_inputs, the default); the loss
    and the evaluation see exactly what float32 workers would have sent."""
    from cvpt.data.dataset import collate
    from cvpt.data.transforms import INPUT_KEYS, normalize_inputs

    runs = {c: Run(_cfg(tiny_dataset, f"compact_inputs={c}"), tmp_path / str(c)) for c in (0, 1)}
    assert runs[1].train_ds.transform.compact and not runs[0].train_ds.transform.compact
    for ds in ("eval_ds", "train_ds"):
        keys = [(0, i) for i in range(4)] if ds == "train_ds" else list(range(4))
        full, compact = (collate([getattr(runs[c], ds)[k] for k in keys]) for c in (0, 1))
        assert compact["iframes"].dtype == torch.uint8 and "mv_rows" in compact
        made = normalize_inputs({k: compact[k] for k in INPUT_KEYS})
        for k in ("iframes", "mvs", "residuals"):
            assert torch.equal(made[k], full[k])
    run = runs[1]  # the loop normalises compact batches on its device: the same loss
    run.model.eval()
    with torch.no_grad():
        losses = [run._loss(run.model, b) for b in (full, compact)]  # the train batches
    assert torch.equal(losses[0], losses[1])


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

    from cvpt.viz.inside import explain

    model = cvpt.load_model(run)
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


# ---------------------------------------------------------------- runs: identity, sharing, stops


@pytest.fixture(scope="module")
def backbones(tmp_path_factory):
    """Two tiny pre-trained backbone files of the same architecture, different weights."""
    d = tmp_path_factory.mktemp("backbones")
    paths = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        paths.append(cvpt.save_backbone(create_backbone("vit_tiny", depth=2), d / f"b{seed}.st"))
    return [p.rename(p.with_suffix(".safetensors")) for p in paths]


def test_run_is_tied_to_its_backbone(tiny_dataset, backbones, tmp_path, capsys):
    a, b = (str(p) for p in backbones)
    run = tmp_path / "run"
    Run(_cfg(tiny_dataset, "epochs=1", f"backbone_checkpoint={a}"), run).train()
    saved = yaml.safe_load((run / "config.yaml").read_text())["identity"]
    assert saved["backbone"] == "vit_tiny(depth=2)"  # the file's, not the default vit_base
    assert saved["backbone_source"] == a and len(saved["backbone_fingerprint"]) == 64
    capsys.readouterr()
    # eval, predict, visualize and --resume on another backbone: refused, naming both
    video = tiny_dataset / "videos" / "c0_5.mp4"
    for argv in (
        ["eval", "--run", str(run), "--set", f"backbone_checkpoint={b}"],
        ["predict", str(video), "--checkpoint", str(run), "--backbone-checkpoint", b],
        [
            "visualize",
            str(video),
            "--checkpoint",
            str(run),
            "--backbone-checkpoint",
            b,
            "-o",
            str(tmp_path / "vis"),
        ],
        ["train", "--out", str(run), "--resume", "--set", "epochs=2", f"backbone_checkpoint={b}"],
    ):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert f"tuned on backbone vit_tiny(depth=2) from {a}, fingerprint" in err, argv
        assert f"the backbone here is vit_tiny(depth=2) from {b}, fingerprint" in err, argv
        assert "--allow-other-backbone" in err and "Traceback" not in err
    assert not (tmp_path / "vis").exists()
    # the same file moved elsewhere is the same backbone; another one only when asked for
    moved = shutil.copy(a, tmp_path / "moved.safetensors")
    assert main(["predict", str(video), "--checkpoint", str(run), "--backbone-checkpoint",
                 str(moved)]) == 0  # fmt: skip
    argv = ["eval", "--run", str(run), "--set", f"backbone_checkpoint={b}"]
    assert main([*argv, "--allow-other-backbone"]) == 0


def test_save_pretrained_and_load_model(tiny_dataset, backbones, tmp_path):
    run = tmp_path / "run"
    cfg = _cfg(tiny_dataset, "epochs=1", "model_options={sccp_layers: 1}", "clip.mv_cell=16")
    Run(cfg, run).train()
    # the run's config.yaml is exactly what ran, every key and every model option
    assert load_run_config(run) == cfg
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["clip"]["mv_cell"] == 16 and saved["clip"]["num_gops"] == 4
    cvpt_options = get_method("cvpt").options().to_dict()  # the method's own and the shared
    assert saved["resolved"]["model_options"] == {**cvpt_options, "sccp_layers": 1}
    ckpt = Path(json.loads((run / "checkpoints" / "last.json").read_text())["checkpoint"])
    folder = run / "checkpoints" / ckpt
    config = json.loads((folder / "config.json").read_text())  # the final checkpoint describes
    assert config["method"] == "cvpt" and config["options"]["sccp_layers"] == 1
    assert config["class_names"] == ["0", "1"]
    assert config["input"]["clip"]["num_gops"] == 4 and config["input"]["size"] == 32
    assert config["backbone_source"] == "random initialisation (seed 0)"
    from cvpt.training.checkpoint import last_checkpoint, load_checkpoint
    from cvpt.training.trainer import build_model

    # what --resume rebuilds from config.yaml, with the checkpoint's tensors
    ref = build_model(load_run_config(run), 2, torch.device("cpu")).eval()
    load_checkpoint(last_checkpoint(run), ref)
    model = cvpt.load_model(run)  # the run folder: its last checkpoint
    x = (torch.randn(1, 3, 4, 32, 32), torch.randn(1, 2, 12, 32, 32), torch.randn(1, 3, 12, 32, 32))
    with torch.no_grad():
        assert torch.equal(model(*x), ref(*x))
    assert model.class_names == ["0", "1"]
    # a model of one's own, on a backbone file; shared as a folder; refused on another backbone
    a, b = backbones
    torch.manual_seed(3)
    mine = cvpt.create_model("vpt", num_classes=2, backbone_checkpoint=a,
                             backbone_options={"use_mean_pooling": True})  # fmt: skip
    with torch.no_grad():
        next(p for p in mine.parameters() if p.requires_grad).add_(1.0)
    mine.save_pretrained(tmp_path / "shared", class_names=["left", "right"])
    files = sorted(p.name for p in (tmp_path / "shared").iterdir())
    assert files == ["config.json", "model.safetensors"]
    back = cvpt.load_model(tmp_path / "shared")
    with torch.no_grad():
        assert torch.equal(back(*x), mine.eval()(*x))
    assert back.class_names == ["left", "right"] and back.method == "vpt"
    with pytest.raises(cvpt.BackboneMismatchError, match="fingerprint"):
        cvpt.load_model(tmp_path / "shared", backbone_checkpoint=b)
    other = cvpt.load_model(tmp_path / "shared", backbone_checkpoint=b, allow_other_backbone=True)
    with torch.no_grad():
        assert not torch.equal(other(*x), back(*x))
    # shared with a machine that lacks the backbone file: the error names the fix, which works
    gone = Path(shutil.copy(a, tmp_path / "gone.safetensors"))
    mine = cvpt.create_model("vpt", num_classes=2, backbone_checkpoint=gone,
                             backbone_options={"use_mean_pooling": True})  # fmt: skip
    mine.save_pretrained(tmp_path / "away", class_names=["left", "right"])
    gone.unlink()
    with pytest.raises(cvpt.CheckpointError, match=r"gone\.safetensors, which is not on this ma"):
        cvpt.load_model(tmp_path / "away")
    assert cvpt.load_model(tmp_path / "away", backbone_checkpoint=a).class_names[0] == "left"


def test_existing_run_folder_is_a_one_line_error(tiny_dataset, tmp_path, capsys):
    args = ["train", "--out", str(tmp_path / "r"), "--set", *TINY, "epochs=1",
            f"root={tiny_dataset / 'videos'}", f"annotations={tiny_dataset / 'ann'}"]  # fmt: skip
    assert main(args) == 0
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"cvpt train: error: {tmp_path / 'r'} holds a run already: add --resume to continue it, "
        "or choose another --out"
    )


def test_checkpoints_every_n_steps_mid_epoch(tiny_dataset, tmp_path, monkeypatch):
    seen = []
    real = Run._checkpoint

    def spy(self):
        seen.append((self.progress["epoch"], self.progress["global_step"]))
        return real(self)

    monkeypatch.setattr(Run, "_checkpoint", spy)
    cfg = _cfg(tiny_dataset, "epochs=1", "effective_batch=2", "checkpoint_every_steps=2")
    Run(cfg, tmp_path / "r").train()  # 4 steps: at 2 (mid-epoch), then the epoch's end
    assert seen == [(0, 2), (1, 4)]
    seen.clear()
    cfg = _cfg(tiny_dataset, "epochs=1", "effective_batch=2", "checkpoint_every_minutes=1e-9")
    Run(cfg, tmp_path / "m").train()
    assert seen == [(0, 1), (0, 2), (0, 3), (1, 4)]


def test_sigterm_mid_epoch_then_resume_gives_the_same_weights(tiny_dataset, tmp_path):
    """A real `cvpt train` process, SIGTERM sent to its whole process group (as SLURM does)
    while it trains with a data-loader worker: it checkpoints at the next step, exits cleanly
    and says how to resume; the resumed run ends bit-identical to an uninterrupted one."""
    settings = [*TINY, "epochs=1", "effective_batch=2", f"root={tiny_dataset / 'videos'}",
                f"annotations={tiny_dataset / 'ann'}"]  # fmt: skip
    run = tmp_path / "killed"
    # as many threads as this process, which runs the rest: CPU sums are bit-exact per count
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cvpt.cli.main",
            "train",
            "--out",
            str(run),
            "--set",
            *settings,
            "workers=1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    metrics = run / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while not (metrics.exists() and metrics.read_text().strip()):  # the first step is done
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "stopped by SIGTERM after step" in out
    assert f"Resume with: cvpt train --out {run} --resume" in out
    assert "Traceback" not in err
    last = json.loads((run / "checkpoints" / "last.json").read_text())
    assert last["batch_in_epoch"] > 0 and last["global_step"] < 4  # mid-epoch 0 (4 steps)
    # the data-loader position does not depend on the workers: resume without them (faster)
    assert main(["train", "--out", str(run), "--resume", "--set", "workers=0"]) == 0
    Run(load_config(None, settings), tmp_path / "straight").train()
    a, b = _weights(tmp_path / "straight"), _weights(run)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------- one training step


def _tiny_model(seed: int = 0):
    torch.manual_seed(seed)
    return cvpt.create_model("cvpt", backbone="vit_tiny", num_classes=3,
                             backbone_options={"depth": 1})  # fmt: skip


def _clip_batch(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(n, 3, 4, 32, 32, generator=g), torch.randn(n, 2, 12, 32, 32, generator=g),
         torch.randn(n, 3, 12, 32, 32, generator=g))  # fmt: skip
    return x, torch.randint(0, 3, (n,), generator=g)


def _loss(net, batch):
    x, y = batch
    return classification_loss(net(*x), y)


def test_train_step_accumulates_and_clips():
    x, y = _clip_batch(4, 0)
    whole, split = _tiny_model(), _tiny_model()
    steps = {}
    for name, model in (("whole", whole), ("split", split)):
        opt = torch.optim.SGD(param_groups(model, 0.0), lr=0.1)  # linear in the gradient
        steps[name] = TrainStep(model, opt, loss_fn=_loss, accum=1 if name == "whole" else 2)
    loss_whole = steps["whole"](iter([(x, y)]))
    halves = [(tuple(t[:2] for t in x), y[:2]), (tuple(t[2:] for t in x), y[2:])]
    loss_split = steps["split"](iter(halves))
    assert loss_split == pytest.approx(loss_whole, rel=1e-5)  # the mean over the 4 clips
    start = _tiny_model()
    moved = 0
    for a, b, s in zip(whole.parameters(), split.parameters(), start.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)
        moved += int(not torch.equal(a, s))
    assert moved > 0
    assert steps["split"](iter(halves[:1])) is None  # ran out mid-accumulation: no step
    model = _tiny_model()
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.0)
    TrainStep(model, opt, loss_fn=_loss, grad_clip=1e-3)(iter([(x, y)]))
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])) <= 1e-3 * 1.0001


def _subnormals_kept() -> bool:
    """Whether this thread computes with subnormals (a float literal below 1.18e-38 would be
    flushed on its way in: the value is made from its bits)."""
    tiny = torch.tensor([0x00400000], dtype=torch.int32).view(torch.float32)  # 5.9e-39
    return (tiny * 1.0).view(torch.int32).item() != 0  # bits: under DAZ a subnormal == 0


_FLUSH_PROBE = """
import sys, torch
from cvpt.training.step import flush_denormals
torch.set_num_threads(2)
if sys.argv[1] != "first":
    torch.full((1 << 20,), 1.0).sum()  # torch's worker threads start before the call
if sys.argv[1] == "fewer":  # the call made while torch runs one thread; then two again
    torch.set_num_threads(1)
if sys.argv[1] == "no-ftz":  # a CPU without FTZ/DAZ: torch says so and changes nothing
    torch.set_flush_denormal = lambda enabled: False
flushed = flush_denormals("cpu")
torch.set_num_threads(2)
x = torch.full((1 << 20,), 0x00400000, dtype=torch.int32).view(torch.float32)
print(flushed, int((x * 1.0).count_nonzero()))
"""


@pytest.mark.parametrize("when", ["first", "late", "fewer", "no-ftz"])
def test_flush_denormals_reaches_every_worker_thread_or_says_it_did_not(when):
    out = subprocess.run(
        [sys.executable, "-c", _FLUSH_PROBE, when], capture_output=True, text=True, check=True
    )
    flushed, kept = out.stdout.split()
    if when == "first":  # both threads flush: every product of a subnormal is 0
        assert (flushed, kept) == ("True", "0") and "thread only" not in out.stderr
    elif when == "no-ftz":
        assert flushed == "False" and int(kept) > 0 and "this CPU cannot" in out.stderr
    else:  # a worker thread kept IEEE subnormals, and the call says so
        assert flushed == "False" and int(kept) > 0 and "on this thread only" in out.stderr


def test_cpu_training_flushes_subnormals_unless_asked_not_to(tiny_dataset, tmp_path):
    from cvpt.demo.cache import ClipTensors
    from cvpt.demo.tune import TuneSettings, Variant, tune

    assert _subnormals_kept()
    Run(_cfg(tiny_dataset, "epochs=1", "max_steps=1"), tmp_path / "on")
    assert not _subnormals_kept()
    Run(_cfg(tiny_dataset, "epochs=1", "max_steps=1", "flush_denormal=false"), tmp_path / "off")
    assert _subnormals_kept()
    (x, y) = _clip_batch(2, 1)
    clips = ClipTensors(*(t.half() for t in x), labels=y, views=1)
    for flush in (True, False):
        settings = TuneSettings(backbone_options={"depth": 1}, epochs=1, batch_size=2, threads=1,
                                flush_denormal=flush)  # fmt: skip
        tune(Variant("t", "linear", pretrained=False), settings, clips, clips, seed=0,
             num_classes=3)  # fmt: skip
        assert _subnormals_kept() is not flush


def test_every_training_loop_takes_the_one_step(tiny_dataset, tmp_path, monkeypatch):
    from cvpt.bench.model import StepCase
    from cvpt.data.synth import synthesize
    from cvpt.demo.cache import ClipTensors
    from cvpt.demo.tune import TuneSettings, Variant, tune
    from cvpt.training.pretrain import pretrain

    calls = []
    real = TrainStep.__call__

    def spy(self, batches):
        loss = real(self, batches)
        if loss is not None:
            calls.append(type(self.model).__name__)
        return loss

    monkeypatch.setattr(TrainStep, "__call__", spy)
    Run(_cfg(tiny_dataset, "epochs=1"), tmp_path / "run").train()
    assert calls == ["CompressedVideoModel"] * 2
    calls.clear()
    (x, y), n = _clip_batch(6, 1), 6
    clips = ClipTensors(*(t.half() for t in x), labels=y, views=1)
    settings = TuneSettings(backbone_options={"depth": 1}, epochs=1, batch_size=4, threads=1)
    tune(Variant("t", "linear", pretrained=False), settings, clips, clips, seed=0, num_classes=3)
    assert calls == ["CompressedVideoModel"] * -(-n // 4)
    calls.clear()
    case = StepCase("cvpt", backbone="vit_tiny", size=32, batch=1, num_classes=3,
                    backbone_options={"depth": 1})  # fmt: skip
    case.step(*case.setup())
    assert calls == ["CompressedVideoModel"]
    calls.clear()
    synthesize(tmp_path / "src", task="source", videos=8, seed=0, size=32, progress=False)
    pretrain(tmp_path / "src", tmp_path / "bb.safetensors", depth=1, epochs=1, batch_size=4,
             progress=False)  # fmt: skip
    assert calls and set(calls) == {"VisionTransformer"}


# ---------------------------------------------------------------- clusters: world sizes, SLURM

# the eval-start SIGTERM driver: rank 0 signals the whole process group (as SLURM does) right
# after its first evaluation's DataLoader worker is spawned, before the worker ignores signals
EVAL_START_SIGTERM = """
import os, signal, sys
from multiprocessing.context import SpawnProcess
from cvpt.training import trainer
armed = []
real_start, real_evaluate = SpawnProcess.start, trainer.Run.evaluate
def start(self):
    real_start(self)
    if armed and armed.pop():
        os.killpg(os.getpgid(0), signal.SIGTERM)
def evaluate(self, stop=None):
    armed.append(os.environ.get("RANK") == "0")
    return real_evaluate(self, stop)
SpawnProcess.start, trainer.Run.evaluate = start, evaluate
if __name__ == "__main__":  # not in the spawned workers, which import this file again
    from cvpt.cli.main import main
    sys.exit(main(sys.argv[1:]))
"""


def _settings(ds: Path) -> list[str]:
    """2 steps an epoch at effective batch 4: 2 micro-batches on 1 process, 1 each on 2."""
    return [*TINY, "epochs=2", f"root={ds / 'videos'}", f"annotations={ds / 'ann'}"]


@pytest.fixture(scope="module")
def straight(tiny_dataset, tmp_path_factory):
    """The uninterrupted 1-process run the resumed ones must equal."""
    run = tmp_path_factory.mktemp("straight") / "run"
    Run(load_config(None, _settings(tiny_dataset)), run).train()
    return run


def _rows(run: Path, kind: str) -> list[dict]:
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r["kind"] == kind]


def _same_run(run: Path, straight: Path) -> None:
    """Same global batches: the same losses, evaluations and tuned weights as the straight run
    (to float sums in another order: other processes, other accumulation)."""
    steps, want = _rows(run, "step"), _rows(straight, "step")
    assert [r["step"] for r in steps] == [r["step"] for r in want] == [1, 2, 3, 4]
    np.testing.assert_allclose([r["loss"] for r in steps], [r["loss"] for r in want], rtol=1e-4)
    evals, want_evals = _rows(run, "eval"), _rows(straight, "eval")
    assert [(r["step"], r["epoch"]) for r in evals] == [(2, 1), (4, 2)]  # the final one too
    assert [r["top1"] for r in evals] == [r["top1"] for r in want_evals]
    a, b = _weights(straight), _weights(run)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # two real processes and their workers
def test_sigterm_as_eval_workers_start_under_torchrun_then_resume_on_one_process(
    tiny_dataset, straight, tmp_path
):
    """A real 2-process torchrun (gloo; its steps are 1-process steps, see _same_run). SIGTERM
    to rank 0's group while its first evaluation worker starts: both ranks write the stop
    checkpoint (the evaluation owed) and leave cleanly, `cvpt torchrun` exits 143 as
    documented; the run resumed on 1 process evaluates first, then ends as the run that was
    never stopped."""
    run, driver = tmp_path / "run", tmp_path / "driver.py"
    driver.write_text(EVAL_START_SIGTERM)
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    cmd = [sys.executable, "-m", "cvpt.cli.main", "torchrun", "--nproc_per_node=2",
           "--standalone", str(driver), "train", "--out", str(run), "--set",
           *_settings(tiny_dataset), "workers=1"]  # fmt: skip
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**env, "OMP_NUM_THREADS": "1"},
        start_new_session=True,  # the group it signals is its own
    )
    assert proc.returncode == 128 + signal.SIGTERM, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.stdout.count("stopped by SIGTERM after step 2 (epoch 1, batch 0)") == 1
    last = json.loads((run / "checkpoints" / "last.json").read_text())
    assert last["eval_pending"] and last["global_step"] == 2 and last["processes"] == 2
    assert _rows(run, "eval") == []
    config = (run / "config.yaml").read_bytes()
    started = yaml.safe_load(config)["resolved"]
    assert started["processes"] == 2 and started["accumulation"] == 1
    # a kill after the owed evaluation was logged, before its checkpoint: logged once again
    with open(run / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"kind": "eval", "step": 2, "epoch": 1, "top1": 9.0}) + "\n")
    assert main(["train", "--out", str(run), "--resume", "--set", "workers=0"]) == 0
    _same_run(run, straight)
    assert (run / "config.yaml").read_bytes() == config  # how the run started, kept
    resumed = yaml.safe_load((run / "config.resume-step-0000002.yaml").read_text())
    assert resumed["resolved"]["processes"] == 1 and resumed["workers"] == 0


@pytest.mark.slow  # two real processes
def test_srun_tasks_resume_a_one_process_run_as_one_two_process_run(
    tiny_dataset, straight, tmp_path
):
    """Two plain `cvpt train` processes with srun's SLURM_* variables (no torchrun) form one
    2-process run, not two duplicates; it resumes a 1-process run stopped mid-epoch onto the
    same global batches. A resume that changes the recipe is refused, config.yaml untouched."""
    run = tmp_path / "run"
    Run(load_config(None, _settings(tiny_dataset)), run).train(stop_at=1)  # mid-epoch 0
    config = (run / "config.yaml").read_bytes()
    argv = ["train", "--out", str(run), "--resume"]
    with pytest.raises(cvpt.RunError, match=r"base_lr: run 0\.001, here 0\.5.*new --out"):
        cvpt.train(out=run, resume=True, base_lr=0.5)
    assert (run / "config.yaml").read_bytes() == config
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    slurm = {"SLURM_JOB_ID": "4242", "SLURM_STEP_NUM_TASKS": "2", "SLURM_NTASKS": "2",
             "SLURM_STEP_NODELIST": "localhost", "MASTER_PORT": str(_free_port()),
             "OMP_NUM_THREADS": "1"}  # fmt: skip
    tasks = [
        subprocess.Popen(
            [sys.executable, "-m", "cvpt.cli.main", *argv],
            env={**env, **slurm, "SLURM_PROCID": str(i), "SLURM_LOCALID": str(i)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outs = [t.communicate(timeout=300) for t in tasks]
    assert [t.returncode for t in tasks] == [0, 0], outs[0][1][-3000:] + outs[1][1][-3000:]
    assert "done: 4 steps" in outs[0][0] and outs[1][0] == ""  # rank 0 speaks
    resumed = yaml.safe_load((run / "config.resume-step-0000001.yaml").read_text())
    assert resumed["resolved"]["processes"] == 2 and resumed["resolved"]["accumulation"] == 1
    assert (run / "config.yaml").read_bytes() == config
    _same_run(run, straight)


def test_resume_on_a_number_of_processes_that_changes_the_batch_is_refused(tiny_dataset, tmp_path):
    """A checkpoint of 3 processes at effective batch 6: 1 process of batch_size 2 makes 4,
    another run; refused naming both sizes and the counts that fit."""
    run = tmp_path / "run"
    Run(load_config(None, _settings(tiny_dataset)), run).train(stop_at=1)
    ckpt = run / "checkpoints" / "step-0000001" / "state.pt"
    state = torch.load(ckpt, weights_only=True)
    state["progress"].update(processes=3, effective_batch=6)
    torch.save(state, ckpt)
    with pytest.raises(cvpt.RunError) as e:
        Run(load_config(None, _settings(tiny_dataset)), run, resume=True).train()
    assert (
        "trained by 3 process(es) at effective batch 6; 1 process(es) of batch_size 2 give 4"
        in str(e.value)
    )
    assert str(e.value).endswith(
        "Resume it on 1 or 3 process(es) at batch_size 2, or on 1 at a batch_size that divides 6"
    )


def test_the_final_evaluation_runs_when_the_last_step_ends_mid_epoch(tiny_dataset, tmp_path):
    run = tmp_path / "run"
    Run(load_config(None, [*_settings(tiny_dataset), "max_steps=3"]), run).train()
    assert [(r["step"], r["epoch"]) for r in _rows(run, "eval")] == [(2, 1), (3, 1)]


@pytest.mark.parametrize(
    ("env", "want"),
    [
        # an srun task of a 4-task step on nodes gpu[07-09,12]: task 0 runs on gpu07
        ({"SLURM_STEP_NUM_TASKS": "4", "SLURM_PROCID": "3", "SLURM_LOCALID": "1",
          "SLURM_STEP_NODELIST": "gpu[07-09,12]", "SLURM_JOB_ID": "123456"},
         {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "MASTER_ADDR": "gpu07",
          "MASTER_PORT": str(15000 + 123456 % 20000)}),
        # the job's MASTER_ADDR / MASTER_PORT win; SLURM_NODELIST when the step has none
        ({"SLURM_STEP_NUM_TASKS": "2", "SLURM_PROCID": "0", "SLURM_NODELIST": "a1,a2",
          "MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29500"},
         {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "MASTER_ADDR": "10.0.0.1",
          "MASTER_PORT": "29500"}),
        ({"SLURM_STEP_NUM_TASKS": "2", "SLURM_PROCID": "1", "SLURM_LAUNCH_NODE_IPADDR": "10.1.2.3",
          "SLURM_JOB_ID": "7"},
         {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "MASTER_ADDR": "10.1.2.3",
          "MASTER_PORT": "15007"}),
        # a batch script running cvpt itself (no srun step) or a 1-task step: one process
        ({"SLURM_NTASKS": "8", "SLURM_PROCID": "0", "SLURM_NODELIST": "n[1-2]"}, None),
        ({"SLURM_STEP_NUM_TASKS": "1", "SLURM_PROCID": "0", "SLURM_NODELIST": "n1"}, None),
    ],
)  # fmt: skip
def test_slurm_task_variables_give_the_rendezvous(env, want):
    from cvpt.training.dist import slurm_environment

    assert slurm_environment(env) == want


def test_slurm_without_a_rendezvous_host_is_a_clear_error():
    from cvpt.training.dist import first_host, slurm_environment

    with pytest.raises(cvpt.ConfigError, match="torchrun per node"):
        slurm_environment({"SLURM_STEP_NUM_TASKS": "2", "SLURM_PROCID": "0"})
    assert first_host("node[001-004]x") == "node001x"
    with pytest.raises(cvpt.ConfigError, match="cannot read its first host"):
        first_host("[,]")


def test_cvpt_torchrun_turns_stopped_ranks_into_the_signal_status(monkeypatch, capsys):
    """torchrun reports ranks that exit 143 as failed (exit 1); `cvpt torchrun` says 143 for
    that, 128+n when torchrun itself got signal n, and passes any other failure on."""
    import torch.distributed.run as run_mod
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError, ProcessFailure

    def failing(code):
        def fake(argv):
            assert argv == ["--nproc_per_node=2", "x.py"]  # as given, "--" dropped
            failure = ProcessFailure(local_rank=0, pid=1, exitcode=code, error_file="")
            raise ChildFailedError("x.py", {0: failure})

        return fake

    argv = ["torchrun", "--nproc_per_node=2", "x.py"]
    monkeypatch.setattr(run_mod, "main", failing(143))
    assert main(argv) == 143 and "stopped by SIGTERM (exit status 143)" in capsys.readouterr().err
    monkeypatch.setattr(run_mod, "main", failing(1))
    with pytest.raises(ChildFailedError):
        main(argv)

    def signalled(argv):
        raise SignalException("got 2", sigval=signal.SIGINT)

    monkeypatch.setattr(run_mod, "main", signalled)
    assert main(argv) == 130


@pytest.mark.parametrize(
    "override", ["method=linear", "model_options.sccp_update=replace", "clip.num_gops=8"]
)
def test_eval_refuses_an_override_of_what_makes_the_model(tiny_run, override, capsys):
    """cvpt eval loads the checkpoint's own model (cvpt.load_model): an override of what makes
    it would evaluate another model than the one named, so it is refused, writing nothing."""
    before = sorted(p.name for p in tiny_run.iterdir())
    assert main(["eval", "--run", str(tiny_run), "--set", override]) == 2
    err = capsys.readouterr().err
    assert "cvpt eval evaluates the run's own model; --set may not change" in err
    assert override.split("=")[0].split(".")[0] in err and "Traceback" not in err
    assert sorted(p.name for p in tiny_run.iterdir()) == before


def test_eval_takes_a_model_option_given_at_its_default(tiny_run, tmp_path, capsys):
    # the same model as the option left out: not an override of what makes it
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    method = yaml.safe_load((run / "config.yaml").read_text())["method"]
    name, default = next(iter(get_method(method).options().to_dict().items()))
    value = str(default).lower() if isinstance(default, bool) else default
    assert main(["eval", "--run", str(run), "--set", f"model_options.{name}={value}"]) == 0
    assert "top-1" in capsys.readouterr().out and (run / "eval-1x1.json").exists()


def test_resume_compares_the_options_with_their_defaults_filled_in(tiny_dataset, tmp_path):
    from cvpt.errors import RunError
    from cvpt.models.methods import make_options
    from cvpt.training.checkpoint import check_identity

    run, lora = tmp_path / "r", ("method=lora", "model_options={lora_rank: 2}")
    Run(_cfg(tiny_dataset, "epochs=2", *lora), run).train(stop_at=3)
    # lora_alpha at its default (8: an int, as YAML reads it) is the model the run was made by
    again = _cfg(tiny_dataset, "epochs=2", *lora, "model_options.lora_alpha=8")
    Run(again, run, resume=True).train()
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["kind"] == "step"] == list(range(1, 5))
    other = _cfg(tiny_dataset, "epochs=3", *lora, "model_options.lora_alpha=4")
    with pytest.raises(RunError, match=r"another model.*'lora_alpha': 8\.0.*'lora_alpha': 4\.0"):
        Run(other, run, resume=True).train()
    # a checkpoint that recorded only the options its run set
    full = make_options("lora", {"lora_rank": 2}).to_dict()
    check_identity(run, {"method": "lora", "model_options": {"lora_rank": 2}},
                   {"method": "lora", "model_options": full})  # fmt: skip
    with pytest.raises(RunError, match="another model"):
        check_identity(run, {"method": "lora", "model_options": {"lora_rank": 2}},
                       {"method": "lora", "model_options": {**full, "lora_rank": 4}})  # fmt: skip


def test_a_runs_config_yaml_as_config_trains_the_same_run(tiny_dataset, tmp_path):
    from cvpt.formats import FORMAT_KEYS

    first, again = tmp_path / "first", tmp_path / "again"
    made = _cfg(tiny_dataset, "epochs=1", "method=lora", "model_options={lora_rank: 2}")
    Run(made, first).train()
    assert load_config(first / "config.yaml") == load_run_config(first) == made
    assert main(["train", "--config", str(first / "config.yaml"), "--out", str(again)]) == 0
    a, b = (yaml.safe_load((r / "config.yaml").read_text()) for r in (first, again))
    assert a == b  # keys, resolved values and identity
    w, v = _weights(first), _weights(again)
    assert w.keys() == v.keys() and all(torch.equal(w[k], v[k]) for k in w)
    # a run's config.yaml from before the formats were versioned reads as its time's
    old = {k: x for k, x in a.items() if k not in FORMAT_KEYS} | {"flush_denormal": True}
    (tmp_path / "old.yaml").write_text(yaml.safe_dump(old))
    old.pop("flush_denormal")
    (tmp_path / "older.yaml").write_text(yaml.safe_dump(old))
    assert load_config(tmp_path / "old.yaml") == made
    assert load_config(tmp_path / "older.yaml").flush_denormal is False


def test_grad_checkpointing_beyond_the_blocks_is_one_line(tiny_dataset, tmp_path, capsys):
    args = ["train", "--out", str(tmp_path / "r"), "--set", *TINY, "epochs=1",
            "backbone_options={depth: 1}", "grad_checkpointing=3",
            f"root={tiny_dataset / 'videos'}", f"annotations={tiny_dataset / 'ann'}"]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err
    assert re.fullmatch(r"cvpt train: error: .*block count 0\.\.1; got 3\n", err)
