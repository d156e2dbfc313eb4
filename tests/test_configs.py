"""Every shipped config loads, names valid options, and builds its model."""

from __future__ import annotations

import pytest
import torch

import cvpt
from cvpt.training.config import list_configs, load_config, resolve_config

CONFIGS = [resolve_config(name) for name in list_configs()]


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


def test_a_method_override_keeps_only_the_options_the_new_method_takes():
    # the shipped CVPT configs set SCCP options; --set method=lora trains LoRA from them
    cfg = load_config("hmdb51_vitb_cvpt_sccp4", ["method=lora"])
    assert cfg.method == "lora" and cfg.model_options == {}
    cfg = load_config("hmdb51_vitb_cvpt_sccp4", ["method=lora", "model_options.lora_rank=4"])
    assert cfg.model_options == {"lora_rank": 4}
    shared = load_config("hmdb51_vitb_cvpt_no_residual_prompt", ["method=adaptformer"])
    assert shared.model_options == {"residual_prompt": False}  # an option of every method
    # what the override's own layer sets for another method is refused when the model is built
    cfg = load_config(None, ["method=lora", "model_options.sccp_layers=2"])
    with pytest.raises(ValueError, match=r"sccp_layers is an option of cvpt"):
        cvpt.create_model(cfg.method, backbone="vit_tiny", num_classes=2, **cfg.model_options)


def test_runs_record_the_reading_of_sccp_and_old_runs_keep_theirs(tmp_path):
    import yaml

    from cvpt.models import get_method
    from cvpt.training.checkpoint import check_identity, upgrade
    from cvpt.training.config import load_run_config, save_config

    default = get_method("cvpt").options().sccp_update
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
    # and an old checkpoint's identity (no reading) resumes only into the old reading: its
    # state.pt (version 0) is upgraded to the reading of its time
    old_state = {
        "identity": {"method": "cvpt", "model_options": {}},
        "rng": {},
        "progress": {"batch_in_epoch": 0, "samples_in_epoch": 0},
    }
    saved = upgrade(old_state, tmp_path, {}, 1)["identity"]
    assert saved["model_options"] == {"sccp_update": "replace"}
    check_identity(tmp_path, saved, {"method": "cvpt", "model_options": {"sccp_update": "replace"}})
    with pytest.raises(ValueError, match="another model"):
        check_identity(tmp_path, saved, {"method": "cvpt", "model_options": {"sccp_update": "add"}})


def test_an_override_merges_into_nested_settings():
    # docs/design.md's advice on the HMDB-51 configs must keep their sccp_layers
    cfg = load_config("hmdb51_vitb_cvpt_sccp4", ["model_options={sccp_update: replace}"])
    assert cfg.model_options == {"sccp_layers": 4, "sccp_update": "replace"}
    cfg = load_config("hmdb51_vitb_cvpt_sccp4", ["model_options.sccp_layers=7", "clip.num_gops=8"])
    assert cfg.model_options == {"sccp_layers": 7, "sccp_update": "add"}
    assert cfg.clip.num_gops == 8
    assert cfg.clip.p_per_gop == 3  # the rest of the clip spec stays
    with pytest.raises(ValueError, match="epochs"):
        load_config(None, ["epochs=three"])
    with pytest.raises(ValueError, match="residual_interp"):
        load_config(None, ["clip.residual_interp=cubic"])


def test_paths_expand_home_and_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CVPT_DATA", str(tmp_path / "data"))
    (tmp_path / "c.yaml").write_text(
        "root: ~/data/hmdb51/videos\nannotations: $CVPT_DATA/splits\n"
        "backbone_checkpoint: ${oc.env:CVPT_DATA}/vitb.pth\n"
    )
    cfg = load_config(tmp_path / "c.yaml")
    assert cfg.root == str(tmp_path / "home" / "data" / "hmdb51" / "videos")
    assert cfg.annotations == str(tmp_path / "data" / "splits")
    assert cfg.backbone_checkpoint == str(tmp_path / "data" / "vitb.pth")


def test_configs_by_name_and_listed(capsys):
    from cvpt.cli.main import main

    assert load_config("hmdb51_vitb_cvpt_sccp4").model_options == {
        "sccp_update": "add",
        "sccp_layers": 4,
    }
    assert load_config("hmdb51_vitb_cvpt_sccp4.yaml").dataset == "hmdb51"
    assert main(["train", "--list-configs"]) == 0
    listed = capsys.readouterr().out.split()
    assert "hmdb51_vitb_cvpt_sccp4" in listed and "ssv2_vitb_full" in listed
    assert len(listed) == len(CONFIGS)
    with pytest.raises(FileNotFoundError, match=r"shipped: .*ucf101_vitb_cvpt"):
        load_config("hmdb51_vitb_cvpt_sccp5")
    # shipped with the package, not read from the repository
    assert all("cvpt/configs/" in str(p) for p in CONFIGS)


def test_list_keys_shows_nested_keys_with_defaults_and_meaning(capsys):
    from cvpt.cli.main import main

    assert main(["train", "--list-keys"]) == 0
    lines = capsys.readouterr().out.splitlines()
    by_key = {ln.split(" = ")[0]: ln for ln in lines}
    assert by_key["model_options.sccp_layers"].startswith("model_options.sccp_layers = None  # ")
    assert by_key["backbone_options.depth"].startswith("backbone_options.depth = 12  # ")
    assert by_key["clip.num_gops"].startswith("clip.num_gops = 4  # GOPs")
    assert by_key["epochs"].startswith("epochs = 30  # ")
    assert all("  # " in ln for ln in lines)  # every key says what it is
    # with a config: its values, nested overrides included
    main(["train", "--list-keys", "--config", "hmdb51_vitb_cvpt_sccp4", "--set", "size=112"])
    out = capsys.readouterr().out
    assert "model_options.sccp_layers = 4" in out and "size = 112" in out


def test_clip_spec_travels_from_the_config_to_read_clip(tmp_path):
    from cvpt.data.generate import translating_texture
    from cvpt.training.dist import DistInfo
    from cvpt.training.trainer import build_data

    videos, ann = tmp_path / "videos", tmp_path / "ann"
    videos.mkdir()
    ann.mkdir()
    cvpt.write_video(videos / "a.mp4", translating_texture(2, 0, frames=48, height=32, width=32))
    for subset in ("train", "test"):
        (ann / f"{subset}.txt").write_text("a.mp4 0\n")
    common = ["dataset=list", f"root={videos}", f"annotations={ann}", "size=32", "short_side=32"]
    cfg = load_config(None, [*common, "clip.num_gops=2", "clip.accumulate=false"])
    _, ds, _ = build_data(cfg, "test", False, DistInfo())
    item = ds[0]
    assert item["iframes"].shape[2] == 2 and item["mvs"].shape[2] == 6  # [V, C, T, H, W]
    # per-frame MVs of a 2 px/frame motion: 2 px everywhere (accumulated would grow to 20)
    clip = cvpt.read_clip(videos / "a.mp4", cfg.clip)
    assert not clip.accumulated and clip.iframes.shape[0] == 2
    assert item["mvs"][0, 0].abs().max() * cfg.mv_clip <= 2.5
    default = load_config(None, common)
    _, ds4, _ = build_data(default, "test", False, DistInfo())
    assert ds4[0]["iframes"].shape[2] == 4
    assert ds4[0]["mvs"][0, 0].abs().max() * default.mv_clip > 10


def test_info_options_use_the_config_parser(capsys):
    from cvpt.cli.main import main

    assert main(["info", "--backbone", "vit_tiny", "--set", "sccp_layers=1", "--json"]) == 0
    import json

    row = json.loads(capsys.readouterr().out)[0]
    assert row["method"] == "cvpt"
