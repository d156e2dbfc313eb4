"""The model carries its clip geometry (``model.clip``, a :class:`ClipSpec`): built for it,
saved with it, and read back by everything that makes, measures or exports its inputs."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

import cvpt
from conftest import TINY_RUN, write_motion_dataset
from cvpt.cli.main import main
from cvpt.codec.sampling import ClipSpec
from cvpt.models.flops import count_macs, model_inputs
from cvpt.models.report import model_row
from cvpt.models.tuned import CONFIG
from cvpt.predictor import load_views

TINY = {"backbone": "vit_tiny", "num_classes": 2, "backbone_options": {"depth": 1, "img_size": 32}}
GOPS = 8  # twice the paper's 4: every place that read the class default would read 4


@pytest.fixture(scope="module")
def long_dataset(tmp_path_factory):
    """6 prepared videos of 8 GOPs (96 frames), 2 classes (texture moving right / left)."""
    return write_motion_dataset(tmp_path_factory.mktemp("long"), frames=12 * GOPS, train=2, test=1)


@pytest.fixture(scope="module")
def run8(long_dataset, tmp_path_factory):
    """A tiny run trained with the advertised override ``clip.num_gops=8``."""
    out = tmp_path_factory.mktemp("runs") / "gops8"
    ds = long_dataset
    cvpt.train(
        out=out,
        root=str(ds / "videos"),
        annotations=str(ds),
        overrides=[f"clip.num_gops={GOPS}"],
        **TINY_RUN,
    )
    return out


def _checkpoint(run):
    return (
        run
        / "checkpoints"
        / json.loads((run / "checkpoints" / "last.json").read_text())["checkpoint"]
    )


def test_a_run_trained_at_8_gops_saves_and_loads_its_geometry(run8):
    config = json.loads((_checkpoint(run8) / CONFIG).read_text())
    assert config["clip"]["num_gops"] == GOPS and config["clip"]["p_per_gop"] == 3
    assert cvpt.load_model(run8).clip == ClipSpec(num_gops=GOPS)


def test_export_traces_at_the_models_geometry(run8, long_dataset, tmp_path, capsys):
    """The program takes 8-GOP clips, computes what eager does on a real video's 8-GOP clips,
    and refuses the paper's 4 (torch.export's shape guard), instead of being fixed at 4."""
    out = tmp_path / "m.pt2"
    assert main(["export", "--checkpoint", str(run8), "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["inputs"] == {
        "iframes": ["B", 3, GOPS, 32, 32],
        "mvs": ["B", 2, 3 * GOPS, 32, 32],
        "residuals": ["B", 3, 3 * GOPS, 32, 32],
    }
    assert report["max_abs_diff"] < 1e-5
    model = cvpt.load_model(run8)
    views = load_views(long_dataset / "videos" / "c1_2.mp4", model, clips=2)
    x = tuple(views[k][0] for k in ("iframes", "mvs", "residuals"))
    assert x[0].shape[2] == GOPS and x[1].shape[2] == 3 * GOPS  # what eval reads for it
    program = torch.export.load(out).module()
    with torch.no_grad():
        want = model(*x)
        torch.testing.assert_close(program(*x), want, atol=1e-5, rtol=0)
        short = (x[0][:, :, :4], x[1][:, :, :12], x[2][:, :, :12])
        assert not torch.allclose(model(*short), want)  # 4 GOPs is another input to eager
        with pytest.raises(AssertionError, match=f"iframes.size\\(\\)\\[2\\] == {GOPS}"):
            program(*short)


def test_predictor_reads_clips_of_the_models_geometry(run8, long_dataset, tmp_path):
    """From the run folder and from a checkpoint shared alone (its config.json only)."""
    video = long_dataset / "videos" / "c0_2.mp4"
    model = cvpt.load_model(run8)
    with torch.no_grad():
        batch = load_views(video, model, clips=2, crops=1)
        want = model(*(batch[k][0] for k in ("iframes", "mvs", "residuals"))).softmax(-1)
    shared = tmp_path / "shared"
    shutil.copytree(_checkpoint(run8), shared)  # no config.yaml: config.json describes it
    for source in (run8, shared):
        predictor = cvpt.Predictor.from_pretrained(source, device="cpu", clips=2, crops=1)
        assert predictor.clip.num_gops == GOPS
        got = predictor(video)
        assert got.ok, got.error
        np.testing.assert_allclose(got.probs, want.mean(0).numpy(), atol=1e-5)
    assert cvpt.Predictor(model, ["0", "1"]).clip == model.clip  # the model's, by default
    with pytest.raises(ValueError, match="built for 8 × 3"):
        cvpt.Predictor(model, ["0", "1"], clip=ClipSpec())


@pytest.mark.parametrize("family", ["vit_tiny", "swin_tiny"])
@pytest.mark.parametrize("p_per_gop", [1, 5])
def test_p_per_gop_sizes_the_prompt_embeddings_and_flops(family, p_per_gop):
    """A model for p P-frames per GOP embeds p·tubelet P-frames per prompt token, takes
    T_P = p·T_I, refuses 3 per GOP, and its MACs differ from the default's by exactly the
    prompt embeddings' extra kernel taps."""
    swin = {"embed_dim": 16, "depths": (1, 1), "num_heads": (1, 2)}
    options = {"depth": 1, "img_size": 32} if family == "vit_tiny" else swin
    size = 32
    build = dict(backbone=family, num_classes=2, backbone_options=options)
    torch.manual_seed(0)
    model = cvpt.create_model("cvpt", clip=ClipSpec(p_per_gop=p_per_gop), **build)
    default = cvpt.create_model("cvpt", **build)
    tubelet, ph, pw = model.backbone.patch_kernel
    assert model.mv_embed.proj.weight.shape[2] == p_per_gop * tubelet
    assert model.res_embed.proj.weight.shape[2] == p_per_gop * tubelet
    x = model_inputs(model, 2, size=size)
    assert [t.shape[2] for t in x] == [4, 4 * p_per_gop, 4 * p_per_gop]
    assert model(*x).shape == (2, 2)
    with pytest.raises(ValueError, match=f"{p_per_gop} P-frames per I-frame"):
        model(*model_inputs(default, 2, size=size))
    tokens = (4 // tubelet) * (size // ph) * (size // pw)  # per stream at the patch grid
    per_tap = tokens * model.backbone.embed_dim * (2 + 3) * ph * pw  # MV + residual channels
    macs = count_macs(model, *model_inputs(model, 1, size=size))
    base = count_macs(default, *model_inputs(default, 1, size=size))
    assert macs - base == (p_per_gop - 3) * tubelet * per_tap


def test_the_report_measures_the_models_geometry():
    row = model_row("cvpt", **TINY, size=32, clip={"num_gops": GOPS, "p_per_gop": 5})
    assert row["inputs"] == {
        "iframes": [1, 3, GOPS, 32, 32],
        "mvs": [1, 2, 5 * GOPS, 32, 32],
        "residuals": [1, 3, 5 * GOPS, 32, 32],
    }
    default = model_row("cvpt", **TINY, size=32)
    assert default["inputs"]["iframes"] == [1, 3, 4, 32, 32]
    assert row["tokens_per_block"] == 2 * default["tokens_per_block"]  # twice the I-tokens
    assert row["gmacs_per_view"] > 2 * default["gmacs_per_view"]


@pytest.mark.parametrize("clip", [ClipSpec(), ClipSpec(num_gops=8, p_per_gop=5, mv_cell=4)])
def test_save_pretrained_round_trips_the_clip(clip, tmp_path):
    torch.manual_seed(0)
    model = cvpt.create_model("cvpt", clip=clip, **TINY)
    model.origin["seed"] = 0  # load_model rebuilds the random backbone from it
    model.save_pretrained(tmp_path / "m")
    config = json.loads((tmp_path / "m" / CONFIG).read_text())
    assert config["clip"] == clip.to_dict()
    loaded = cvpt.load_model(tmp_path / "m")
    assert loaded.clip == clip
    x = model_inputs(model, 1, size=32)
    x = tuple(torch.randn(t.shape, generator=torch.Generator().manual_seed(1)) for t in x)
    with torch.no_grad():
        torch.testing.assert_close(loaded(*x), model.eval()(*x), atol=0, rtol=0)


def test_a_model_saved_before_it_carried_its_clip(tmp_path):
    """No ``clip`` in config.json: the run's input spec's clip when recorded, else the
    paper's default (every model then was built for 3 P-frames per GOP)."""
    torch.manual_seed(0)
    model = cvpt.create_model("linear", **TINY)
    model.origin["seed"] = 0
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / CONFIG).read_text())
    for key in ("clip", "format_version", "cvpt_version"):  # as written before both
        del config[key]
    (tmp_path / CONFIG).write_text(json.dumps(config))
    assert cvpt.load_model(tmp_path).clip == ClipSpec()
    config["input"] = {"clip": ClipSpec(num_gops=8).to_dict(), "size": 32}
    (tmp_path / CONFIG).write_text(json.dumps(config))
    assert cvpt.load_model(tmp_path).clip == ClipSpec(num_gops=8)


def test_geometry_contradictions_are_refused(tmp_path):
    model = cvpt.create_model("cvpt", clip=ClipSpec(num_gops=8), **TINY)
    with pytest.raises(ValueError, match="not the model's clip"):
        model.save_pretrained(tmp_path, input_spec={"clip": ClipSpec().to_dict(), "size": 32})
    assert not (tmp_path / CONFIG).exists()
    with pytest.raises(ValueError, match=r"clip\.num_gops=3: .* multiple of 2"):
        cvpt.create_model("cvpt", clip=ClipSpec(num_gops=3), **TINY)
