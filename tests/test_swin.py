"""Video Swin: exact against torchvision's swin3d (random weights), its checkpoint formats, and
CVPT's three streams on it (joint windows, docs/design.md, *Video Swin*)."""

from __future__ import annotations

import logging
import math
import re
import sys

import numpy as np
import pytest
import torch

import cvpt
from conftest import random_clips
from cvpt.models import create_backbone, load_backbone
from cvpt.models.backbone_weights import CheckpointError
from cvpt.models.swin import WindowAttention3d, checkpoint_filter_fn

video = pytest.importorskip("torchvision.models.video.swin_transformer")

# tiny sizes for speed; stage widths 16, 32, 64, 128
TINY = dict(embed_dim=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4))
# [B, 3, T, H, W]: a clamped spatial window in the last stages (64²: 16→8→4→2 tokens), a
# clamped temporal window (T' = 2 < 8), T' = window (clamped by "≤": no temporal shift), sizes
# padded by the patch embedding and by the windows (60×52, 30×34, odd T), batch 2
SIZES = [
    (1, 3, 8, 64, 64),
    (2, 3, 4, 32, 32),
    (1, 3, 6, 60, 52),
    (1, 3, 16, 56, 56),
    (1, 3, 5, 30, 34),
]


def _jitter(model: torch.nn.Module, seed: int = 0) -> None:
    """Move every weight off its initialisation (unit norms, zero biases, tiny bias tables make
    a weak test): + N(0, 0.1²)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))


def _pair(window=(8, 7, 7), num_classes=5, **sizes):
    """torchvision's SwinTransformer3d and ours with the same random weights (eval mode)."""
    sizes = sizes or TINY
    torch.manual_seed(0)
    tv = video.SwinTransformer3d(
        patch_size=[2, 4, 4],
        embed_dim=sizes["embed_dim"],
        depths=list(sizes["depths"]),
        num_heads=list(sizes["num_heads"]),
        window_size=list(window),
        num_classes=num_classes,
    ).eval()
    _jitter(tv)
    return tv, _ours_from(tv, window_size=window, num_classes=num_classes, **sizes)


def _ours_from(tv, name="swin_tiny", **overrides):
    """Our backbone holding ``tv``'s weights: built on the meta device (no weights drawn), then
    the mapped state dict assigned, strictly."""
    with torch.device("meta"):
        ours = create_backbone(name, **overrides)
    ours.load_state_dict(checkpoint_filter_fn(tv.state_dict()), strict=True, assign=True)
    return ours.eval()


def _tv_features(tv, x):
    """torchvision's tokens after the final norm, ``[B, N, C]``."""
    return tv.norm(tv.features(tv.patch_embed(x))).flatten(1, 3)


@pytest.mark.parametrize("window", [(8, 7, 7), (4, 3, 3)])
def test_tiny_swin_equals_torchvision_at_every_size(window):
    tv, ours = _pair(window)
    g = torch.Generator().manual_seed(1)
    for shape in SIZES:
        x = torch.randn(shape, generator=g)
        with torch.no_grad():
            feats, ref = ours.forward_features(x), _tv_features(tv, x)
            logits = ours.forward_head(feats)
            ref_logits = tv.head(tv.avgpool(ref.transpose(1, 2)[..., None, None]).flatten(1))
        assert feats.shape == ref.shape, shape
        assert feats.shape[1] == math.prod(ours.token_grid(shape)), shape
        assert (feats - ref).abs().max() <= 1e-4, shape
        assert (logits - ref_logits).abs().max() <= 1e-4, shape
        assert ref.abs().max() > 0.5  # a real signal, not two near-zero outputs


def test_swin_b_widths_and_heads_equal_torchvision():
    """Swin-B's first three stages' widths and heads (32-dim heads), 2 blocks each: the blocks
    are alike, and the full sizes are checked below without running them."""
    tv, ours = _pair(embed_dim=128, depths=(2, 2, 2), num_heads=(4, 8, 16))
    x = torch.randn(1, 3, 4, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert (ours.forward_features(x) - _tv_features(tv, x)).abs().max() <= 1e-4
        assert (ours(x) - tv(x)).abs().max() <= 1e-4


def test_swin3d_t_equals_ours_and_registered_sizes_match_the_builders():
    import torchvision.models.video as tvv

    torch.manual_seed(0)
    tv = tvv.swin3d_t(weights=None).eval()
    ours = _ours_from(tv, num_classes=400)
    x = torch.randn(1, 3, 4, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert (ours(x) - tv(x)).abs().max() <= 1e-4
    for name, builder in [("swin_small", tvv.swin3d_s), ("swin_base", tvv.swin3d_b)]:
        with torch.device("meta"):  # every key and shape, no weights drawn
            tv_sd = builder(weights=None).state_dict()
            ours = create_backbone(name, num_classes=400)
        mapped = checkpoint_filter_fn(tv_sd)
        own = ours.state_dict()
        assert set(mapped) == set(own), name
        assert all(mapped[k].shape == own[k].shape for k in own), name
        if name == "swin_base":  # the published count, with a 400-class head
            assert sum(p.numel() for p in ours.parameters()) == 88_048_984


def test_grad_checkpointing_gives_the_same_gradients():
    _, ours = _pair()
    ours.train()
    x = torch.randn(2, 3, 4, 32, 32, generator=torch.Generator().manual_seed(3))
    grads = []
    for k in (0, len(ours.blocks)):
        ours.set_grad_checkpointing(k)
        ours.zero_grad()
        torch.manual_seed(4)  # the same stochastic-depth draws
        ours(x).square().sum().backward()
        grads.append({n: p.grad.clone() for n, p in ours.named_parameters()})
    for other in grads[1:]:
        for n, g in grads[0].items():
            assert torch.allclose(g, other[n], atol=1e-6), n
    with pytest.raises(ValueError, match=r"0\.\.8"):
        ours.set_grad_checkpointing(9)


# ---------------------------------------------------------------- checkpoints


def _official_from_torchvision(sd: dict) -> dict:
    """The official / mmaction2 0.x names, written out here independently of cvpt's filter."""
    out = {}
    for k, v in sd.items():
        m = re.match(r"features\.(\d+)\.(\d+)\.(.*)", k)
        if m:
            rest = m.group(3).replace("mlp.0.", "mlp.fc1.").replace("mlp.3.", "mlp.fc2.")
            k = f"backbone.layers.{int(m.group(1)) // 2}.blocks.{m.group(2)}.{rest}"
        elif m := re.match(r"features\.(\d+)\.(.*)", k):
            k = f"backbone.layers.{int(m.group(1)) // 2}.downsample.{m.group(2)}"
        elif k.startswith("head."):
            k = "cls_head.fc_cls." + k[len("head.") :]
        else:
            k = "backbone." + k
        out[k] = v
    return out


def test_three_checkpoint_formats_load_strictly_and_give_torchvision_logits(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="cvpt.models")  # the key table of each load
    tv, _ = _pair(num_classes=7)
    x = torch.randn(1, 3, 8, 64, 64, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        ref = tv(x)
    official = _official_from_torchvision(tv.state_dict())
    mm1 = {re.sub(r"^backbone\.norm\.", "backbone.norm3.", k): v for k, v in official.items()}
    files = {
        "torchvision swin3d": tv.state_dict(),
        "official Video Swin / mmaction2 0.x": {"state_dict": official, "meta": {"epoch": 30}},
        "mmaction2 1.x Video Swin": {"state_dict": mm1},
    }
    for kind, obj in files.items():
        path = tmp_path / f"swin_{len(kind)}.pth"
        torch.save(obj, path)
        model = load_backbone(path).eval()
        assert kind in caplog.text
        assert model.cfg.window_size == (8, 7, 7) and model.cfg.depths == (2, 2, 2, 2)
        assert model.cfg.num_heads == (1, 2, 2, 4) and model.cfg.num_classes == 7
        with torch.no_grad():
            assert (model(x) - ref).abs().max() <= 1e-4, kind
    # a new head for another task is said so; the backbone still loads
    model = load_backbone(tmp_path / f"swin_{len('torchvision swin3d')}.pth", num_classes=3)
    assert "head re-sized to 3 classes" in caplog.text
    assert model.head.out_features == 3


def test_stray_or_missing_swin_keys_are_refused(tmp_path):
    tv, _ = _pair()
    sd = dict(tv.state_dict())
    sd["features.0.0.attn.extra"] = torch.zeros(1)
    torch.save(sd, tmp_path / "stray.pth")
    with pytest.raises(CheckpointError, match=r"unexpected layers\.0\.blocks\.0\.attn\.extra"):
        load_backbone(tmp_path / "stray.pth", verbose=False)
    sd = dict(tv.state_dict())
    del sd["features.1.reduction.weight"]
    torch.save(sd, tmp_path / "missing.pth")
    with pytest.raises(CheckpointError, match=r"missing layers\.0\.downsample\.reduction"):
        load_backbone(tmp_path / "missing.pth", verbose=False)


def test_a_checkpoint_of_no_known_family_names_what_it_found(tmp_path):
    torch.save(
        {"state_dict": {"conv1.weight": torch.zeros(2), "fc.bias": torch.zeros(2)}},
        p := (tmp_path / "resnet.pth"),
    )
    with pytest.raises(CheckpointError) as e:
        load_backbone(p)
    msg = str(e.value)
    assert "resnet.pth" in msg and "conv1.weight" in msg and "fc.bias" in msg
    assert "VideoMAE ViT" in msg and "Video Swin" in msg


def test_a_broken_swin_file_or_another_hugging_face_model_says_what_it_is(tmp_path):
    tv, _ = _pair()
    sd = {k: v for k, v in tv.state_dict().items() if "relative_position_bias_table" not in k}
    torch.save(sd, tmp_path / "no_tables.pth")
    with pytest.raises(CheckpointError, match="torchvision swin3d checkpoint whose sizes"):
        load_backbone(tmp_path / "no_tables.pth")
    image = _official_from_torchvision(tv.state_dict())
    image["backbone.patch_embed.proj.weight"] = torch.zeros(16, 3, 4, 4)  # a Conv2d
    torch.save(
        {"model": {k.removeprefix("backbone."): v for k, v in image.items()}},
        p := (tmp_path / "swin_image.pth"),
    )
    with pytest.raises(CheckpointError, match=r"2D \(image\) Swin"):
        load_backbone(p)
    folder = tmp_path / "hf_swin"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "swin", "hidden_size": 96}')
    with pytest.raises(CheckpointError, match="Hugging Face 'swin' model, not VideoMAE"):
        load_backbone(folder)


def test_cvpt_safetensors_keep_the_family(tmp_path):
    _, ours = _pair()
    path = cvpt.save_backbone(ours, tmp_path / "swin.safetensors")
    back = load_backbone(path, verbose=False).eval()
    assert back.family == "swin" and back.cfg == ours.cfg
    x = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        assert torch.equal(back(x), ours(x))


# ---------------------------------------------------------------- streams (CVPT's design)


def _dense_window_attention(attn: WindowAttention3d, xs, window, shift):
    """Brute force: every token of every stream against every other, allowed when both fall in
    the same (shifted) window; logits + the relative bias of their in-window offsets, −100
    between different regions of a shifted map; no windows are ever formed."""
    s = len(xs)
    b, t, h, w, c = xs[0].shape
    heads = attn.num_heads
    size, win, sh = torch.tensor([t, h, w]), torch.tensor(window), torch.tensor(shift)
    pos = torch.stack(torch.meshgrid(*(torch.arange(n) for n in (t, h, w)), indexing="ij"), -1)
    r = (pos.reshape(-1, 3) - sh) % size  # where the roll puts each token
    same = ((r // win)[:, None] == (r // win)[None]).all(-1)
    inner = r % win
    rel = inner[:, None] - inner[None] + (win - 1)
    index = rel[..., 0] * (2 * win[1] - 1) * (2 * win[2] - 1) + rel[..., 1] * (2 * win[2] - 1)
    index = index + rel[..., 2]
    bias = attn.relative_position_bias_table[index].permute(2, 0, 1)  # [heads, N, N]
    region = torch.where(r < size - win, 0, torch.where(r < size - sh, 1, 2))
    region = torch.where(sh == 0, 2, region)
    other_region = (region[:, None] != region[None]).any(-1)
    add = bias + torch.where(other_region, -100.0, 0.0)
    add = torch.where(same, add, float("-inf")).repeat(1, s, s)
    x = torch.cat([x.reshape(b, -1, c) for x in xs], dim=1)
    q, k, v = attn.qkv(x).reshape(b, -1, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
    logits = q @ k.transpose(-1, -2) * (c // heads) ** -0.5 + add
    y = attn.proj((logits.softmax(-1) @ v).transpose(1, 2).reshape(b, -1, c))
    return [part.reshape(b, t, h, w, c) for part in y.chunk(s, dim=1)]


@pytest.mark.parametrize("shift", [(0, 0, 0), (1, 1, 1), (0, 1, 1)])
def test_joint_window_attention_equals_dense_attention_with_the_block_mask(shift):
    torch.manual_seed(0)
    window = (2, 3, 3)
    attn = WindowAttention3d(16, 2, window, shift, qkv_bias=True)
    _jitter(attn)
    g = torch.Generator().manual_seed(6)
    xs = [torch.randn(2, 4, 6, 6, 16, generator=g) for _ in range(3)]  # no padding, no clamp
    with torch.no_grad():
        got = attn(xs, joint=True)
        ref = _dense_window_attention(attn, xs, window, shift)
    for a, r in zip(got, ref, strict=True):
        assert (a - r).abs().max() <= 1e-5


def test_three_identical_streams_give_the_single_stream_output():
    _, ours = _pair()
    x = torch.randn(1, 3, 8, 64, 64, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        e = ours.embed(x)
        single = ours.forward_streams([e])[0]
        joint = ours.forward_streams([e, e.clone(), e.clone()], joint=True)
    assert single.abs().max() > 0.5
    for stream in joint:  # duplicated keys leave each softmax unchanged
        assert (stream - single).abs().max() <= 1e-5


def test_separate_streams_each_run_as_alone():
    _, ours = _pair()
    g = torch.Generator().manual_seed(8)
    es = [ours.embed(torch.randn(1, 3, 4, 32, 32, generator=g)) for _ in range(3)]
    with torch.no_grad():
        alone = [ours.forward_streams([e])[0] for e in es]
        separate = ours.forward_streams(es, joint=False)
        joint = ours.forward_streams(es, joint=True)
    for a, s_, j in zip(alone, separate, joint, strict=True):
        assert (a - s_).abs().max() <= 1e-5
        assert (a - j).abs().max() > 1e-2  # joint windows do mix the streams


# ---------------------------------------------------------------- CVPT and baselines on Swin

# two stages: shifted windows, one patch merging and both widths of an SCCP, at half the cost
SWIN = dict(
    backbone="swin_tiny",
    backbone_options=dict(embed_dim=16, depths=(2, 2), num_heads=(1, 2)),
    num_classes=7,
)
SWIN_CASES = [
    ("cvpt", {}),
    ("cvpt", {"stream_attention": "separate"}),
    ("cvpt", {"sccp_update": "replace"}),
    ("cvpt", {"residual_prompt": False, "pool": "iframe"}),
    ("linear", {}),
    ("adaptformer", {}),
    ("full", {}),
]


def _clips(batch=2, size=32, seed=0):
    return random_clips(batch, size, seed)


@pytest.mark.parametrize(("method", "options"), SWIN_CASES)
def test_methods_train_on_swin_and_touch_only_their_parameters(method, options):
    torch.manual_seed(0)
    model = cvpt.create_model(method, **SWIN, **options).train()
    assert model(*_clips(1)).shape == (1, 7)
    named = dict(model.named_parameters())
    before = {n: p.detach().clone() for n, p in named.items()}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(2):  # the second step moves zero-initialised adapters' partners too
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(*_clips()), torch.tensor([1, 4])).backward()
        for n, p in named.items():
            assert (p.grad is not None) == p.requires_grad, n
        opt.step()
    for n, p in named.items():
        moved = not torch.equal(p.detach(), before[n])
        assert moved == p.requires_grad, n
    tuned = {
        n.split(".")[0] if n.split(".")[0] != "backbone" else n for n in model.tunable_state_dict()
    }
    if method == "linear":
        assert tuned == {"backbone.head.weight", "backbone.head.bias"}
    if method == "cvpt":
        assert {"mv_embed", "sccp", "backbone.head.weight"} <= tuned


def test_prompts_off_the_model_is_torchvisions_backbone():
    """With no motion inputs (``inputs='iframe'``) the compressed model runs the I-frames
    through the plain backbone: torchvision's logits."""
    tv, _ = _pair(num_classes=7, **SWIN["backbone_options"])
    model = cvpt.create_model("linear", inputs="iframe", **SWIN)
    model.backbone.load_state_dict(checkpoint_filter_fn(tv.state_dict()), strict=True)
    iframes = _clips(2, 64)[0]
    with torch.no_grad():
        assert (model.eval()(iframes, None, None) - tv(iframes)).abs().max() <= 1e-4


def test_cvpt_on_swin_has_an_sccp_per_block_with_a_constant_hidden_width():
    with torch.device("meta"):
        model = cvpt.create_model("cvpt", backbone="swin_base", num_classes=51)
        wide = cvpt.create_model("cvpt", backbone="swin_base", num_classes=51, hidden_dim=16)
    widths = [blk.g1.in_features for blk in model.sccp]
    assert widths == [128] * 2 + [256] * 2 + [512] * 18 + [1024] * 2
    assert {blk.g1.out_features for blk in model.sccp} == {8}
    # per SCCP 6·C·d' + 3·d' + 3·C + 1 (g1-g6 and ω), summed over the 24 blocks
    for m, d in ((model, 8), (wide, 16)):
        expect = sum(6 * c * d + 3 * d + 3 * c + 1 for c in widths)
        assert sum(p.numel() for p in m.sccp.parameters()) == expect
    assert sum(p.numel() for p in model.sccp.parameters()) == 614_232
    assert cvpt.create_model("cvpt", **SWIN, sccp_layers=3).sccp_layers == 3


def test_adaptformer_on_swin_has_one_bottleneck_64_adapter_per_block():
    model = cvpt.create_model("adaptformer", **SWIN)
    for blk, dim in zip(model.backbone.blocks, model.backbone.block_dims(), strict=True):
        assert (blk.adapter.down.in_features, blk.adapter.down.out_features) == (dim, 64)


def test_vpt_and_separate_streams_where_unsupported_say_why():
    with pytest.raises(ValueError, match=r"'vpt' does not support the backbone family 'swin'"):
        cvpt.create_model("vpt", **SWIN)
    with pytest.raises(ValueError, match="windowed backbones"):
        cvpt.create_model("cvpt", backbone="vit_tiny", num_classes=3, stream_attention="separate")


def test_cvpt_on_swin_checkpointing_keeps_gradients():
    torch.manual_seed(0)
    model = cvpt.create_model("cvpt", **SWIN).train()
    grads = []
    for k in (False, True):
        model.set_grad_checkpointing(k)
        model.zero_grad()
        model(*_clips()).square().sum().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad})
    for n, g in grads[0].items():
        assert torch.allclose(g, grads[1][n], atol=1e-6), n


def test_frozen_swin_weights_in_bf16_give_the_same_numbers_under_autocast():
    x = _clips()
    out = []
    for cast in (False, True):
        torch.manual_seed(0)
        model = cvpt.create_model("cvpt", **SWIN).train()
        if cast:
            assert model.cast_frozen_weights(torch.bfloat16) > 0
        with torch.autocast("cpu", torch.bfloat16):
            y = model(*x)
        y.float().square().sum().backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
        out.append((y.detach(), grads))
    assert torch.equal(out[0][0], out[1][0])
    assert all(torch.equal(g, out[1][1][n]) for n, g in out[0][1].items())


def test_inside_view_maps_lie_on_each_stage_grid():
    from cvpt.viz.inside import explain

    torch.manual_seed(0)
    model = cvpt.create_model("cvpt", **SWIN).eval()
    out = explain(model, *_clips(1, 64))
    assert out["token_norm"].shape == out["cam"].shape == (2, 8, 8)  # 64/4 = 16, merged once
    assert out["attention"][0].shape == (2, 16, 16) and out["attention"][3].shape == (2, 8, 8)
    assert out["probs"].shape == (7,)


def test_a_tuned_swin_model_saves_and_loads_with_its_family(tmp_path):
    from cvpt.loading import load_model
    from cvpt.models.tuned import save_pretrained

    torch.manual_seed(3)
    model = cvpt.create_model("cvpt", **SWIN).eval()
    model.origin = {"seed": 3, "backbone_options": SWIN["backbone_options"]}
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.01)  # tuned values, not the initialisation
    save_pretrained(model, tmp_path / "tuned")
    back = load_model(tmp_path / "tuned")
    assert back.backbone.family == "swin" and back.identity["backbone"].startswith("swin(")
    x = _clips(1)
    with torch.no_grad():
        assert torch.equal(model(*x), back(*x))


def test_a_plain_safetensors_state_dict_loads_like_its_pth(tmp_path):
    """torchvision's swin3d state dict saved with safetensors (no cvpt metadata), as people
    convert their .pth files: the same keys, the same logits."""
    from safetensors.torch import save_file

    tv, _ = _pair(num_classes=7)
    x = torch.randn(1, 3, 8, 64, 64, generator=torch.Generator().manual_seed(5))
    save_file({k: v.contiguous() for k, v in tv.state_dict().items()}, tmp_path / "b.safetensors")
    model = load_backbone(tmp_path / "b.safetensors", verbose=False).eval()
    with torch.no_grad():
        assert (model(x) - tv(x)).abs().max() <= 1e-4
    assert model.cfg.num_heads == (1, 2, 2, 4) and model.cfg.num_classes == 7


def _fake_mmengine(monkeypatch, built: list) -> type:
    """mmengine's HistoryBuffer as a training checkpoint pickles it (by reference to its
    module); its ``__setstate__`` records any run of its code."""
    import types

    module = types.ModuleType("mmengine.logging.history_buffer")

    class HistoryBuffer:
        def __init__(self, values):
            self._log_history = np.asarray(values)

        def __setstate__(self, state):
            built.append(state)
            self.__dict__.update(state)

    HistoryBuffer.__module__, HistoryBuffer.__qualname__ = module.__name__, "HistoryBuffer"
    module.HistoryBuffer = HistoryBuffer
    for name in ("mmengine", "mmengine.logging", module.__name__):
        monkeypatch.setitem(sys.modules, name, sys.modules.get(name) or types.ModuleType(name))
    monkeypatch.setitem(sys.modules, module.__name__, module)
    return HistoryBuffer


def test_an_mmengine_training_checkpoint_loads_its_state_dict_only(tmp_path, monkeypatch, caplog):
    """The user's own mmaction2 1.x training checkpoint: ``meta``, ``message_hub`` (mmengine
    objects, numpy arrays), ``optimizer``, ``state_dict``. The weights load; no pickled class
    is built (mmengine need not be installed); a file whose weights are not plain tensors is
    refused with the fix."""
    caplog.set_level(logging.INFO, logger="cvpt.models")
    built: list = []
    buffer = _fake_mmengine(monkeypatch, built)
    tv, _ = _pair(num_classes=7)
    weights = _official_from_torchvision(tv.state_dict())
    opt = torch.optim.AdamW(tv.parameters())
    tv(torch.randn(1, 3, 4, 32, 32)).sum().backward()
    opt.step()
    ckpt = {
        "meta": {"epoch": 3, "iter": 120, "seed": np.int64(42), "mmengine_version": "0.10.4"},
        "message_hub": {"log_scalars": {"train/loss": buffer([0.9, 0.7])}, "runtime_info": {}},
        "optimizer": opt.state_dict(),
        "param_schedulers": [{"base_lrs": [1e-3], "last_step": 120}],
        "state_dict": weights,
    }
    torch.save(ckpt, tmp_path / "epoch_3.pth")
    torch.save({"state_dict": {"w": buffer([1.0])}}, tmp_path / "odd.pth")
    for name in ("mmengine", "mmengine.logging", "mmengine.logging.history_buffer"):
        monkeypatch.delitem(sys.modules, name)  # loaded where mmengine is not installed
    model = load_backbone(tmp_path / "epoch_3.pth").eval()
    x = torch.randn(1, 3, 8, 64, 64, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        assert (model(x) - tv(x)).abs().max() <= 1e-4
    assert built == []  # no code of the pickled classes ran
    assert "read its 'state_dict' only" in caplog.text
    assert "mmengine.logging.history_buffer.HistoryBuffer" in caplog.text
    with pytest.raises(CheckpointError) as e:
        load_backbone(tmp_path / "odd.pth")
    msg = str(e.value)
    assert "odd.pth" in msg and "HistoryBuffer" in msg and "weights_only=False" in msg
    assert built == []
