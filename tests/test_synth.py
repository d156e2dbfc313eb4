"""The synthetic tasks: deterministic, balanced, and carried by motion, not by single frames."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np

import cvpt
from cvpt.cli.main import main
from cvpt.data.splits import ListSplits
from cvpt.data.synth import TASKS, make_spec, render


def test_same_seed_same_bytes_other_seed_other_videos(tmp_path):
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        assert main(["synth", str(tmp_path / name), "--videos", "6", "--seed", str(seed)]) == 0
    a, b, c = (tmp_path / n for n in "abc")
    assert (a / "train.txt").read_text() == (b / "train.txt").read_text()
    for f in sorted((a / "videos").iterdir()):
        assert f.read_bytes() == (b / "videos" / f.name).read_bytes()
        assert f.read_bytes() != (c / "videos" / f.name).read_bytes()


def test_layout_balance_and_readability(tmp_path):
    main(["synth", str(tmp_path), "--task", "source", "--videos", "8", "--seed", "1"])
    splits = ListSplits(tmp_path)
    assert set(splits.subsets) == {"train", "test"}
    labels = Counter(s.label for sub in splits.subsets for s in splits.samples(sub))
    assert labels == Counter({0: 2, 1: 2, 2: 2, 3: 2})
    assert json.loads((tmp_path / "classes.json").read_text()) == TASKS["source"]
    # the labels are directions: named classes, and training must not flip them
    assert splits.classes == TASKS["source"] and splits.flips is False
    info = cvpt.probe(tmp_path / "videos" / "source_00000.mp4")
    assert not info.layout_problems() and info.frames == 48 and info.width == 64


def _disc(x: float, y: float, r: float, size: int = 64) -> np.ndarray:
    """Boolean mask of a disc on a torus of side ``size``."""
    yy, xx = np.mgrid[0:size, 0:size]
    dx = np.minimum(abs(xx - x), size - abs(xx - x))
    dy = np.minimum(abs(yy - y), size - abs(yy - y))
    return dx**2 + dy**2 < r**2


def test_target_label_is_in_the_motion_vectors_not_in_a_frame(tmp_path):
    hits = 0
    for i in range(8):
        spec = make_spec("target", i, 0, 64, 48)
        frames = render(spec, 64, 48)
        path = cvpt.write_video(tmp_path / f"{i}.mp4", frames)
        clip = cvpt.read_clip(path, accumulate=False)
        d = spec.discs[0]
        rel = []
        for k, f in enumerate(clip.frame_indices):
            cx, cy = int((d.x + f * d.vx) % 64), int((d.y + f * d.vy) % 64)
            ys, xs = np.arange(cy - 3, cy + 3) % 64, np.arange(cx - 3, cx + 3) % 64
            inside = clip.mvs[k][np.ix_(ys, xs)].reshape(-1, 2)
            rel.append(np.median(inside, 0) - np.median(clip.mvs[k].reshape(-1, 2), 0))
        r = np.median(rel, 0)
        hits += int(np.argmax([r[0], -r[0], r[1], -r[1]]) == spec.label)
        # a single frame: the patch looks like any other region of the background
        f0 = frames[0].astype(float).mean(-1)
        patch = _disc(d.x % 64, d.y % 64, d.radius - 2)
        rng = np.random.default_rng(i)
        others = [f0[_disc(*rng.uniform(0, 64, 2), d.radius - 2)] for _ in range(200)]
        means = np.array([o.mean() for o in others])
        stds = np.array([o.std() for o in others])
        assert abs(f0[patch].mean() - means.mean()) < 3 * means.std()
        assert abs(f0[patch].std() - stds.mean()) < 3 * stds.std()
    assert hits >= 7


def test_pretrain_writes_a_backbone_that_load_backbone_reads(tmp_path):
    import torch

    main(["synth", str(tmp_path / "src"), "--task", "source", "--videos", "12", "--seed", "2"])
    out = tmp_path / "bb.safetensors"
    assert (
        main(
            [
                "pretrain",
                str(tmp_path / "src"),
                "--out",
                str(out),
                "--epochs",
                "2",
                "--depth",
                "2",
                "--batch-size",
                "4",
            ]
        )
        == 0
    )
    record = json.loads((tmp_path / "bb.safetensors.json").read_text())
    assert record["epochs"] == 2 and len(record["loss_per_epoch"]) == 2
    vit = cvpt.load_backbone(out)
    assert vit.cfg.depth == 2 and vit.cfg.num_classes == 0 and vit.cfg.img_size == 64
    model = cvpt.create_model("cvpt", backbone_checkpoint=out, num_classes=4)
    x = (torch.randn(1, 3, 4, 64, 64), torch.randn(1, 2, 12, 64, 64), torch.randn(1, 3, 12, 64, 64))
    assert model(*x).shape == (1, 4)
    # the frozen backbone is the pre-trained one, weight for weight
    assert torch.equal(model.backbone.blocks[0].attn.qkv.weight, vit.blocks[0].attn.qkv.weight)


def test_other_settings_in_the_same_folder_are_refused(tmp_path):
    import pytest

    assert main(["synth", str(tmp_path), "--videos", "4", "--seed", "1"]) == 0
    assert main(["synth", str(tmp_path), "--videos", "6", "--seed", "1"]) == 0  # extends
    assert main(["synth", str(tmp_path), "--videos", "4", "--seed", "2"]) == 2  # refused
    assert main(["synth", str(tmp_path), "--videos", "4", "--seed", "1", "--pan", "0"]) == 2
    with pytest.raises(ValueError, match="another folder"):
        from cvpt.data.synth import synthesize

        synthesize(tmp_path, videos=4, seed=2, progress=False)
    static = make_spec("target", 3, 0, 64, 48, pan=0.0)
    assert static.pan == (0.0, 0.0)


def test_masked_pretraining_hides_tubes_learns_and_saves_the_encoder(tmp_path):
    import torch

    from cvpt.models.registry import create_backbone
    from cvpt.training.mae import MaskedAutoencoder

    torch.manual_seed(0)
    mae = MaskedAutoencoder(create_backbone("vit_tiny", depth=1), mask_ratio=0.75)
    mask = mae.tube_mask(3, 4, 16).view(3, 4, 16)
    assert torch.equal(mask, mask[:, :1].expand_as(mask))  # the same patches in every tubelet
    assert mask[:, 0].sum(1).tolist() == [12, 12, 12]  # 75% of the 16 patches
    # the per-patch targets: zero mean, unit variance per tubelet patch
    x = torch.randn(2, 3, 4, 32, 32)
    t = mae.targets(x)
    assert t.shape == (2, 2 * 2 * 2, 2 * 16 * 16 * 3)
    assert torch.allclose(t.mean(-1), torch.zeros(2, 8), atol=1e-5)
    # it learns: the loss on one batch falls under a few Adam steps (same masks each time)
    opt = torch.optim.Adam(mae.parameters(), lr=1e-3)
    losses = []
    for _ in range(30):
        loss = mae(x, torch.Generator().manual_seed(1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]

    main(["synth", str(tmp_path / "src"), "--task", "source", "--videos", "8", "--seed", "2"])
    out = tmp_path / "mae.safetensors"
    args = ["pretrain", str(tmp_path / "src"), "--out", str(out), "--epochs", "1", "--depth",
            "1", "--batch-size", "4", "--masked"]  # fmt: skip
    assert main(args) == 0
    record = json.loads((tmp_path / "mae.safetensors.json").read_text())
    assert record["objective"] == "masked reconstruction" and record["source_test_top1"] is None
    assert record["test_reconstruction_loss"] > 0
    assert cvpt.load_backbone(out).cfg.depth == 1  # the encoder only: no decoder keys saved


def test_a_killed_worker_fails_its_video_only_and_a_rerun_makes_it(tmp_path):
    """``cvpt synth --workers 2`` with one worker killed (as the out-of-memory killer does):
    the other videos are made, the error names the video and the signal, no temp file is left,
    and a rerun makes just the missing video."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    import pytest

    from cvpt.io import TMP_MARK, temp_owner

    if not sys.platform.startswith("linux"):
        pytest.skip("the test kills a worker by the pid in its temp file name")
    out = tmp_path / "data"
    cmd = [sys.executable, "-m", "cvpt.cli.main", "synth", str(out), "--videos", "6"]
    cmd += ["--size", "128", "--frames", "96", "--workers", "2"]
    env = {**os.environ, "PYTHONPATH": str(Path(cvpt.__file__).parents[1])}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline, victim = time.time() + 120, None
    while victim is None and time.time() < deadline and proc.poll() is None:
        temps = list((out / "videos").glob(f".*{TMP_MARK}*")) if (out / "videos").exists() else []
        victim = next((t for t in temps if temp_owner(t)), None)
        time.sleep(0.005)
    assert victim is not None, f"no video was caught being written (exit {proc.poll()})"
    name = victim.name.split(TMP_MARK)[0].removeprefix(".") + victim.suffix
    os.kill(temp_owner(victim)[1], signal.SIGKILL)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 2, err  # the CLI's exit status for a cvpt error
    assert "1 of 6 video(s) not made" in err and "killed by SIGKILL (signal 9)" in err
    assert name in err and "BrokenProcessPool" not in err
    made = sorted(p.name for p in (out / "videos").iterdir())
    assert len(made) == 5 and name not in made  # the others were made, no temp left
    main(["synth", str(out), "--videos", "6", "--size", "128", "--frames", "96"])
    assert name in {p.name for p in (out / "videos").iterdir()}
