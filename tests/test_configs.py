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
    if cfg.method == "cvpt":  # the shipped configs name the reading they train (docs/design.md)
        assert model.options.sccp_update == "add" == cfg.model_options["sccp_update"]


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


def test_runs_record_the_reading_of_sccp_and_old_runs_keep_theirs(tmp_path):
    import yaml

    from cvpt.models.compressed import TuningOptions
    from cvpt.training.checkpoint import check_identity
    from cvpt.training.config import load_run_config, save_config

    default = TuningOptions().sccp_update
    cfg = load_config(overrides=["method=cvpt"])
    assert cfg.model_options == {"sccp_update": default}  # recorded, not implied
    other = "replace" if default == "add" else "add"
    chosen = load_config(overrides=["method=cvpt", f"model_options={{sccp_update: {other}}}"])
    assert chosen.model_options == {"sccp_update": other}
    assert load_config(overrides=["method=vpt"]).model_options == {}
    # a run folder written before the reading was recorded: SCCP replaced the streams then
    old = cfg.to_dict() | {"model_options": {"sccp_layers": 2}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(old))
    run = load_run_config(tmp_path)
    assert run.model_options == {"sccp_update": "replace", "sccp_layers": 2}
    save_config(chosen, tmp_path / "config.yaml")  # a run of today reads back as it was made
    assert load_run_config(tmp_path).model_options == {"sccp_update": other}
    # and an old checkpoint's identity (no reading) resumes only into the old reading
    saved = {"method": "cvpt", "model_options": {}}
    check_identity(tmp_path, saved, {"method": "cvpt", "model_options": {"sccp_update": "replace"}})
    with pytest.raises(ValueError, match="another model"):
        check_identity(tmp_path, saved, {"method": "cvpt", "model_options": {"sccp_update": "add"}})
