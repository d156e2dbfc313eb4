"""The tuning-method registry: every registered backbone family × every registered method
(forward, backward, save/load, FLOPs), models saved by main's code before the registry loading
bit for bit, and LoRA, the method added through it."""

from __future__ import annotations

import dataclasses
import math
import re
import typing
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import cvpt
from conftest import hf_videomae_names, official_swin_names, random_clips
from cvpt.errors import ConfigError
from cvpt.models import (
    backbone_config,
    create_backbone,
    get_method,
    list_backbones,
    list_methods,
    load_backbone,
    save_backbone,
)
from cvpt.models.backbone import RawVideoRecipe, VideoBackbone
from cvpt.models.flops import count_macs, model_inputs
from cvpt.models.methods import make_options
from cvpt.models.methods.base import field_type
from cvpt.models.methods.lora import LoRALinear
from cvpt.models.registry import get_family, list_families
from cvpt.models.report import model_row

SAVED_BY_MAIN = Path(__file__).parent / "data" / "saved_by_main"

# one tiny variant per registered family: a new family adds its line (the test says so)
TINY = {
    "vit": dict(backbone="vit_tiny", backbone_options=dict(embed_dim=16, depth=2, num_heads=2)),
    "swin": dict(
        backbone="swin_tiny", backbone_options=dict(embed_dim=16, depths=(2, 2), num_heads=(1, 2))
    ),
}
FAMILIES = sorted({backbone_config(n).family for n in list_backbones()})
# each family's published key layout, written from cvpt's names (the inverse of its filter):
# a new family adds its line
PUBLISHED = {"vit": hf_videomae_names, "swin": official_swin_names}
# the hooks every family implements itself (the base class's raise NotImplementedError)
HOOKS = ("checkpoint_format", "checkpoint_filter_fn", "config_from_state_dict", "unregistered_name")


def _inputs(batch=2, size=16, seed=1):
    return random_clips(batch, size, seed)


def _perturb(model) -> None:
    """Move every tuned tensor off its initialisation (LoRA's B and the adapters start at 0)."""
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn(p.shape, generator=g))


def test_every_registered_family_has_a_tiny_config_here():
    assert sorted(TINY) == FAMILIES == list_families()
    assert sorted(PUBLISHED) == FAMILIES


def _tiny_backbone(family: str, num_classes: int = 5) -> VideoBackbone:
    torch.manual_seed(0)
    tiny = TINY[family]
    model = create_backbone(tiny["backbone"], num_classes=num_classes, **tiny["backbone_options"])
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():  # off the initialisation: zero biases would hide a swapped tensor
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return model.eval()


@pytest.mark.parametrize("family", FAMILIES)
def test_family_declares_every_contract_hook(family):
    """What cvpt knows about a family it reads from the family's class, never its name: every
    hook is there and fits the family's config."""
    cls = get_family(family)
    assert cls.family == family == cls.config_class.family
    for hook in HOOKS:
        assert getattr(cls, hook) is not getattr(VideoBackbone, hook), hook
    if cls.hf_model_types:  # reads Hugging Face folders: sizes them from config.json
        assert cls.config_from_hf is not VideoBackbone.config_from_hf
    assert cls.default_variant in list_backbones(family)
    assert isinstance(cls.raw_video, RawVideoRecipe) and cls.raw_video.frames > 0
    assert cls.checkpoint_help and isinstance(cls.supports_separate_stream_attention, bool)
    cfg = backbone_config(cls.default_variant)
    assert set(cls.shape_fields) | {cls.depth_field} <= set(cfg.to_dict())
    assert cls.unregistered_name(cfg).startswith(f"{family}(")
    for depth in (1, 3):  # cvpt bench --depth: that many blocks (per stage, where staged)
        got = getattr(
            backbone_config(cls.default_variant, **cls.depth_option(cfg, depth)), cls.depth_field
        )
        assert got == depth or (isinstance(got, tuple) and set(got) == {depth}), got


@pytest.mark.parametrize("family", FAMILIES)
def test_family_checkpoints_round_trip_and_are_recognised(family, tmp_path):
    """Its own weights: save_backbone → load_backbone gives the same outputs; its state dict
    (bare, and in its published layout from the inverse of its filter) is recognised by this
    family alone, filtered back to cvpt's names exactly and loads with the same outputs."""
    model = _tiny_backbone(family)
    x = torch.randn(1, 3, 4, 16, 16, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        ref = model(x)
    back = load_backbone(save_backbone(model, tmp_path / "b.safetensors"), verbose=False)
    assert type(back) is type(model) and back.cfg.to_dict() == model.cfg.to_dict()
    with torch.no_grad():
        assert torch.equal(back.eval()(x), ref)
    one = torch.randn(2, 1, model.num_features, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():  # token_features (viz's class maps): the head's input, per token
        assert torch.equal(model.token_features(one)[:, 0], model.forward_head(one, True))
    own = {k: v.contiguous() for k, v in model.state_dict().items()}
    cls = get_family(family)
    for name, sd in (("cvpt names", own), ("published", PUBLISHED[family](own))):
        claims = [f for f in list_families() if get_family(f).checkpoint_format(sd)]
        assert claims == [family], name
        filtered = cls.checkpoint_filter_fn(sd)
        assert filtered.keys() == own.keys() and all(torch.equal(filtered[k], own[k]) for k in own)
        read = cls.config_from_state_dict(filtered)
        assert getattr(read, cls.depth_field) == getattr(model.cfg, cls.depth_field), name
        # what the weights do not hold (e.g. a ViT's head count at a width no published
        # size has) is passed as an override, as a user would
        overrides = {k: v for k, v in model.cfg.to_dict().items() if getattr(read, k) != v}
        path = tmp_path / f"{len(name)}.pth"
        torch.save(sd, path)
        loaded = load_backbone(path, verbose=False, **overrides).eval()
        with torch.no_grad():
            assert torch.equal(loaded(x), ref), name


@pytest.mark.parametrize("method", list_methods())
@pytest.mark.parametrize("family", FAMILIES)
def test_family_method_contract(family, method, tmp_path):
    tuning = get_method(method)
    kwargs = dict(**TINY[family], num_classes=5)
    if tuning.families is not None and family not in tuning.families:
        with pytest.raises(ValueError, match=rf"'{method}'.*'{family}'"):
            cvpt.create_model(method, **kwargs)
        return
    torch.manual_seed(0)
    model = cvpt.create_model(method, **kwargs).train()
    model.origin["seed"] = 0
    _perturb(model)
    x = _inputs()
    logits = model(*x)
    assert logits.shape == (2, 5) and torch.isfinite(logits).all()
    logits.logsumexp(-1).sum().backward()
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and p.grad.abs().sum() > 0, name
        else:
            assert p.grad is None, name
    assert any(not p.requires_grad for p in model.parameters()) != tuning.trains_backbone
    model.eval()
    with torch.no_grad():
        before = model(*x)
    back = cvpt.load_model(model.save_pretrained(tmp_path / "m"))
    assert back.method == method and type(back.options) is tuning.options
    with torch.no_grad():
        assert torch.equal(back(*x), before)
    with torch.device("meta"):  # shapes only: counting on CPU tensors takes seconds
        meta = cvpt.create_model(method, **kwargs)
    assert count_macs(meta, *model_inputs(meta, 1, size=16)) > 0


@pytest.mark.parametrize("method", ["cvpt", "linear", "vpt", "adaptformer", "full"])
def test_models_saved_by_main_before_the_registry_load_with_the_same_logits(method):
    # written by main at 976b7c6 (tests/data/saved_by_main/README.md): one flat options dict
    # with every method's options; a seeded random backbone rebuilt from its seed
    folder = SAVED_BY_MAIN / method
    model = cvpt.load_model(folder)
    g = torch.Generator().manual_seed(1)
    x = (
        torch.randn(2, 3, 4, 8, 8, generator=g),
        torch.randn(2, 2, 12, 8, 8, generator=g),
        torch.randn(2, 3, 12, 8, 8, generator=g),
    )
    with torch.no_grad():
        logits = model(*x)
    assert torch.equal(logits, load_file(str(folder / "logits.safetensors"))["logits"])
    assert set(model.options.to_dict()) == set(get_method(method).options.field_names())


def test_an_option_of_another_method_is_refused_naming_its_method():
    with pytest.raises(ConfigError, match=r"method 'cvpt' \(vpt_tokens is an option of vpt\)"):
        cvpt.create_model("cvpt", **TINY["vit"], num_classes=3, vpt_tokens=4)
    with pytest.raises(ConfigError, match=r"lora_rank is an option of lora"):
        cvpt.create_model("linear", **TINY["vit"], num_classes=3, lora_rank=4)
    with pytest.raises(ConfigError, match=r"method must be one of.*lora"):
        cvpt.create_model("st_adapter", **TINY["vit"], num_classes=3)


@pytest.mark.parametrize("family", FAMILIES)
def test_lora_starts_as_the_frozen_model_and_keeps_its_keys(family):
    kwargs = dict(**TINY[family], num_classes=5)
    torch.manual_seed(0)
    lora = cvpt.create_model("lora", **kwargs).eval()
    torch.manual_seed(0)  # same backbone and embeddings; no LoRA
    plain = cvpt.create_model("full", **kwargs).eval()
    x = _inputs()
    with torch.no_grad():
        assert torch.equal(lora(*x), plain(*x))  # B = 0: the update adds exactly zero
    keys, plain_keys = set(lora.state_dict()), set(plain.state_dict())
    added = keys - plain_keys
    assert plain_keys <= keys  # frozen tensors under their own keys: checkpoints still load
    blocks = len(lora.backbone.blocks)
    assert len(added) == blocks * 2 * 2 and all(".lora_a." in k or ".lora_b." in k for k in added)
    tuned = {n for n, p in lora.named_parameters() if p.requires_grad}
    frozen_weights = ("attn.qkv.weight", "attn.proj.weight")
    assert added <= tuned and not any(n.endswith(frozen_weights) for n in tuned)


@pytest.mark.parametrize(("rank", "alpha"), [(1, 1.0), (2, 8.0), (4, 2.0)])
def test_lora_linear_adds_alpha_over_r_times_b_a(rank, alpha):
    torch.manual_seed(rank)
    base = torch.nn.Linear(6, 9)
    lora = LoRALinear(base, rank, alpha)
    with torch.no_grad():
        lora.lora_b.weight.normal_()
    x = torch.randn(4, 6, dtype=torch.float64)
    w, b = base.weight.double(), base.bias.double()
    a, bb = lora.lora_a.weight.double(), lora.lora_b.weight.double()
    want = x @ w.T + b + alpha / rank * (x @ a.T @ bb.T)
    got = lora.double()(x)
    assert torch.allclose(got, want, rtol=0, atol=1e-12)
    bias = torch.randn(9, dtype=torch.float64)  # a bias from the caller, as the ViT's qkv gets
    assert torch.allclose(lora(x, bias), want - b + bias, rtol=0, atol=1e-12)
    assert lora.weight is base.weight and tuple(lora.lora_a.weight.shape) == (rank, 6)


@pytest.mark.parametrize("rank", [4, 8])
def test_lora_tunes_under_one_percent_of_vit_b_without_the_prompt_embeddings(rank):
    row = model_row("lora", backbone="vit_base", num_classes=51, lora_rank=rank)
    head = 768 * 51 + 51 + 2 * 768  # head and fc_norm
    lora = 12 * rank * ((768 + 3 * 768) + (768 + 768))  # A and B of qkv and proj, per block
    assert row["tunable_params_without_embeddings"] == lora + head
    assert row["tunable_percent_without_embeddings"] < 1.0  # 0.28% at r=4, 0.52% at r=8
    assert row["about"] == get_method("lora").help and row["gmacs_per_view"] > 0


@pytest.mark.parametrize("family", sorted(TINY))
def test_a_method_can_tune_some_of_the_frozen_backbones_own_weights(monkeypatch, family):
    """tuned_parameters (BitFit-like: the blocks' biases): exactly those, the head and the
    prompt embeddings train; every other backbone weight stays frozen (returning the blocks
    from tuned_modules would train them whole)."""
    from cvpt.models.methods import base

    class Biases(base.TuningMethod):
        name, label, help = "biases_only", "Biases", "the blocks' biases"

        def tuned_parameters(self, model):
            return [p for n, p in model.backbone.named_parameters() if _block_bias(n)]

    monkeypatch.setitem(base._METHODS, Biases.name, Biases())
    model = cvpt.create_model("biases_only", num_classes=3, **TINY[family])
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    biases = {f"backbone.{n}" for n, _ in model.backbone.named_parameters() if _block_bias(n)}
    heads = {n for n, _ in model.named_parameters() if n.startswith(("backbone.head", "mv_embed",
             "res_embed", "backbone.fc_norm", "backbone.norm"))}  # fmt: skip
    assert biases and biases <= trained and trained - biases <= heads
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert any("blocks." in n and n.endswith("weight") for n in frozen)


def _block_bias(name: str) -> bool:
    return "blocks." in name and name.endswith("bias")


# every option of every registered method, with its declared type and allowed values
OPTIONS = [
    pytest.param(
        m,
        f.name,
        *field_type(typing.get_type_hints(get_method(m).options)[f.name]),
        f.metadata,
        id=f"{m}.{f.name}",
    )
    for m in list_methods()
    for f in dataclasses.fields(get_method(m).options)
]


def _bad_values(tp, optional, meta) -> list:
    """Values of the wrong type, out of range, or not finite, for a field (type ``tp``)."""
    none = [] if optional else [None]
    if tp is bool:
        return ["no", "false", 1, 0, *none]
    if tp is int:
        low = [meta["min"] - 1, meta["min"] - 100] if "min" in meta else []
        return [True, False, 2.5, float(meta.get("min", 1)), "4", *low, *none]
    if tp is float:
        low = [meta["above"], meta["above"] - 1.0] if "above" in meta else []
        low += [meta["min"] - 0.5] if "min" in meta else []
        return [math.nan, math.inf, -math.inf, True, "x", *low, *none]
    return ["bad", "ALL", 1, True, *none]


def _good_values(tp, optional, meta, default) -> list:
    """The default, the edges of the allowed range, every choice, None where allowed."""
    good = [default, *([None] if optional else [])]
    if tp is int:
        good += [meta.get("min", 0), meta.get("min", 0) + 1]
    if tp is float:
        edge = meta.get("above", meta.get("min", 0.0))
        good += [edge + 1e-6, edge + 3, int(edge) + 2]  # an int is taken for a float
    if tp is bool:
        good += [True, False]
    good += list(meta.get("choices", ()))
    return good


@pytest.mark.parametrize(("method", "name", "tp", "optional", "meta"), OPTIONS)
def test_every_option_refuses_wrong_types_and_ranges_naming_what_it_takes(
    method, name, tp, optional, meta
):
    for value in _bad_values(tp, optional, meta):
        with pytest.raises(ConfigError, match=rf"option {name}={re.escape(repr(value))} is not "):
            make_options(method, {name: value})
    default = getattr(get_method(method).options(), name)
    for value in _good_values(tp, optional, meta, default):
        got = getattr(make_options(method, {name: value}), name)
        assert got == value and (type(got) is float if tp is float and value is not None else 1)


@pytest.mark.parametrize(("method", "name", "tp", "optional", "meta"), OPTIONS)
def test_every_option_declares_what_it_takes(method, name, tp, optional, meta):
    # a number with no range or a string with no choices would take any value unchecked
    assert tp in (bool, int, float, str)
    if tp in (int, float):
        assert "min" in meta or "above" in meta, f"{method}.{name}: declare option(min=/above=)"
    if tp is str:
        assert meta.get("choices"), f"{method}.{name}: declare option(choices=...)"


@pytest.mark.parametrize("family", FAMILIES)
def test_lora_rank_is_at_most_the_wrapped_layers_smaller_side(family):
    # qkv is d→3d and proj d→d: the smallest block width bounds B·A's rank
    most = min(cvpt.create_model("linear", **TINY[family], num_classes=3).backbone.block_dims())
    model = cvpt.create_model("lora", **TINY[family], num_classes=3, lora_rank=most)
    assert model.backbone.blocks[0].attn.proj.lora_a.weight.shape[0] == most
    with pytest.raises(ConfigError, match=rf"lora_rank={most + 1} .* must be 1\.\.{most}"):
        cvpt.create_model("lora", **TINY[family], num_classes=3, lora_rank=most + 1)


@pytest.mark.parametrize(
    ("family", "method", "options", "message"),
    [
        ("swin", "vpt", {}, "does not support the backbone family 'swin'"),
        ("vit", "cvpt", {"sccp_layers": 3}, r"sccp_layers=3 .* takes 0\.\.2"),
        ("swin", "cvpt", {"sccp_layers": 5}, r"sccp_layers=5 .* takes 0\.\.4"),
        ("vit", "cvpt", {"inputs": "iframe"}, "no prompts"),
        ("vit", "lora", {"stream_attention": "separate"}, "ablation of windowed backbones"),
    ],
)
def test_what_a_backbone_cannot_take_is_a_config_error(family, method, options, message):
    # ConfigError (a ValueError): the command line prints it as one line
    with pytest.raises(ConfigError, match=message):
        cvpt.create_model(method, **TINY[family], num_classes=3, **options)


@pytest.mark.parametrize("family", FAMILIES)
def test_grad_checkpointing_beyond_the_blocks_is_a_config_error(family):
    model = cvpt.create_model("linear", **TINY[family], num_classes=3)
    depth = len(model.backbone.blocks)
    model.set_grad_checkpointing(depth)
    assert model.backbone.checkpoint_blocks == depth
    for bad in (depth + 1, -1, 1.5):
        with pytest.raises(ConfigError, match=rf"block count 0\.\.{depth}; got {bad!r}"):
            model.set_grad_checkpointing(bad)
