"""Every shipped config loads, names valid options, and builds its model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import cvpt
from cvpt.training.config import load_config

CONFIGS = sorted((Path(__file__).parent.parent / "configs").glob("*.yaml"))


def test_the_paper_experiments_are_all_there():
    names = {p.stem for p in CONFIGS}
    for ds in ("ucf101", "hmdb51", "ssv2"):
        for m in ("cvpt", "linear", "vpt", "adaptformer", "full"):
            assert f"{ds}_vitb_{m}" in names
    for ablation in ("no_refinement", "sccp1", "no_attention", "no_residual_prompt"):
        assert f"hmdb51_vitb_cvpt_{ablation}" in names
    for ds in ("ucf101", "hmdb51"):  # Table 5: Video Swin-B
        for m in ("cvpt", "full"):
            assert f"{ds}_swinb_{m}" in names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_loads_and_builds(path):
    cfg = load_config(path)
    assert cfg.effective_batch == 240 and cfg.base_lr == 1e-3 and cfg.weight_decay == 1e-4
    assert cfg.warmup_epochs == 5
    if cfg.dataset == "ssv2":
        assert cfg.eval_subset == "validation"
    with torch.device("meta"):
        model = cvpt.create_model(
            cfg.method, backbone=cfg.backbone, num_classes=10, **cfg.model_options
        )
    assert model.method == cfg.method


def test_grad_checkpointing_key_reaches_the_model():
    from cvpt.training.trainer import build_model

    overrides = ["backbone=vit_tiny", "backbone_options={depth: 2}", "grad_checkpointing=true"]
    cfg = load_config(overrides=overrides)
    assert cfg.grad_checkpointing is True
    model = build_model(cfg, num_classes=5, device=torch.device("cpu"))
    assert model.backbone.grad_checkpointing  # True: every block but the last
    assert model.backbone.checkpoint_blocks == 1
    plain = build_model(load_config(overrides=overrides[:2]), 5, torch.device("cpu"))
    assert not plain.backbone.grad_checkpointing
    every = load_config(overrides=[*overrides[:2], "grad_checkpointing=2"])
    assert build_model(every, 5, torch.device("cpu")).backbone.checkpoint_blocks == 2
