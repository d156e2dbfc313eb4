"""load_backbone against Hugging Face transformers' VideoMAE (a test-only dependency; random
small configs, nothing downloaded) and against the official VideoMAE checkpoint formats."""

from __future__ import annotations

import json
import logging
import os

import pytest
import torch
from safetensors.torch import load_file, save_file

import cvpt
from cvpt.models import CheckpointError, create_backbone, load_backbone, save_backbone

transformers = pytest.importorskip("transformers")

HF_SIZE = dict(
    image_size=32,
    patch_size=16,
    num_channels=3,
    num_frames=4,
    tubelet_size=2,
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=160,
)


def _perturb(model: torch.nn.Module, seed: int = 0) -> None:
    """No bias or norm may stay trivially 0 or 1: noise on every parameter."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.2)


@pytest.fixture(scope="module")
def hf_classifier(tmp_path_factory):
    cfg = transformers.VideoMAEConfig(**HF_SIZE, num_labels=5)  # HF default eps 1e-12
    model = transformers.VideoMAEForVideoClassification(cfg).eval()
    _perturb(model)
    folder = tmp_path_factory.mktemp("hf") / "videomae-5x"
    model.save_pretrained(folder)
    return model, folder


def _video(batch=2, frames=4, size=32, seed=1):
    return torch.randn(batch, 3, frames, size, size, generator=torch.Generator().manual_seed(seed))


def _hf_logits(model, x):
    with torch.no_grad():
        return model(pixel_values=x.permute(0, 2, 1, 3, 4)).logits  # HF wants [B, T, C, H, W]


def _ours(model, x):
    with torch.no_grad():
        return model.eval()(x)


def test_hf_folder_4x_layout_gives_the_same_logits(hf_classifier):
    hf, folder = hf_classifier
    # save_pretrained writes the 4.x names, what the published checkpoints hold
    assert any(k.endswith("attention.q_bias") for k in load_file(folder / "model.safetensors"))
    ours = load_backbone(folder)
    assert ours.cfg.norm_eps == 1e-12 and ours.cfg.num_classes == 5  # HF's eps default, kept
    x = _video()
    assert torch.allclose(_ours(ours, x), _hf_logits(hf, x), atol=1e-4, rtol=0)


@pytest.mark.parametrize("weights", ["model.safetensors", "pytorch_model.bin"])
def test_hf_folder_5x_layout_gives_the_same_logits(hf_classifier, tmp_path, weights):
    hf, folder = hf_classifier
    sd = {k: v.contiguous() for k, v in hf.state_dict().items()}  # 5.x in-memory names
    assert any(k.endswith("attention.attention.query.bias") for k in sd)
    (tmp_path / "config.json").write_text((folder / "config.json").read_text())
    if weights.endswith(".bin"):
        torch.save(sd, tmp_path / weights)
    else:
        save_file(sd, tmp_path / weights)
    x = _video()
    assert torch.allclose(_ours(load_backbone(tmp_path), x), _hf_logits(hf, x), atol=1e-4, rtol=0)


def test_official_pth_formats_give_the_same_logits(hf_classifier, tmp_path):
    hf, folder = hf_classifier
    ours = load_backbone(folder)
    x = _video()
    sd = ours.state_dict()  # our names are the official VideoMAE names
    for wrapper in ("model", "module"):
        path = tmp_path / f"finetuned_{wrapper}.pth"
        torch.save({wrapper: sd, "epoch": 3}, path)
        loaded = load_backbone(path, num_heads=4, norm_eps=1e-12, fc_norm_eps=1e-5)
        assert torch.allclose(_ours(loaded, x), _hf_logits(hf, x), atol=1e-4, rtol=0)


def test_official_pretraining_checkpoint_loads_with_its_allowed_leftovers(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="cvpt.models")  # the key table of each load
    vit = create_backbone("vit_tiny", depth=2, num_heads=3, num_classes=0)
    _perturb(vit)
    sd = {f"encoder.{k}": v for k, v in vit.state_dict().items() if not k.startswith("fc_norm")}
    sd["encoder.norm.weight"] = torch.ones(192)
    sd["encoder.norm.bias"] = torch.zeros(192)
    sd["mask_token"] = torch.zeros(1, 1, 96)
    sd["encoder_to_decoder.weight"] = torch.zeros(96, 192)
    sd["decoder.blocks.0.mlp.fc1.weight"] = torch.zeros(384, 96)
    sd["decoder.head.weight"] = torch.zeros(1536, 96)
    path = tmp_path / "pretrain.pth"
    torch.save({"model": sd}, path)
    loaded = load_backbone(path, num_heads=3)
    table = caplog.text
    assert "official VideoMAE pre-training" in table
    assert "pre-training decoder" in table and "mask token" in table and "new fc_norm" in table
    x = _video(size=32)
    with torch.no_grad():
        assert torch.allclose(loaded.forward_features(x), vit.forward_features(x), atol=1e-5)


def test_hf_pretraining_checkpoint_features_match_the_encoder(tmp_path):
    cfg = transformers.VideoMAEConfig(
        **HF_SIZE,
        use_mean_pooling=False,
        decoder_hidden_size=32,
        decoder_num_hidden_layers=1,
        decoder_num_attention_heads=2,
        decoder_intermediate_size=64,
    )
    hf = transformers.VideoMAEForPreTraining(cfg).eval()
    _perturb(hf)
    hf.save_pretrained(tmp_path / "pre")
    ours = load_backbone(tmp_path / "pre").eval()
    x = _video()
    with torch.no_grad():
        want = hf.videomae(pixel_values=x.permute(0, 2, 1, 3, 4)).last_hidden_state
        assert torch.allclose(ours.forward_features(x), want, atol=1e-4, rtol=0)
        # for tuning: mean pooling with a fresh fc_norm, the pre-training norm left unused
        pooled = load_backbone(tmp_path / "pre", use_mean_pooling=True).eval()
        raw = hf.videomae.encoder(hf.videomae.embeddings(x.permute(0, 2, 1, 3, 4), None))
        assert torch.allclose(pooled.forward_features(x), raw.last_hidden_state, atol=1e-4)


def test_unknown_or_missing_keys_are_refused(tmp_path):
    vit = create_backbone("vit_tiny", depth=2, num_classes=4)
    sd = vit.state_dict()
    extra = dict(sd, **{"blocks.0.attn.k_bias": torch.zeros(192)})
    torch.save(extra, tmp_path / "extra.pth")
    with pytest.raises(CheckpointError, match=r"unexpected blocks\.0\.attn\.k_bias"):
        load_backbone(tmp_path / "extra.pth", verbose=False)
    missing = {k: v for k, v in sd.items() if k != "blocks.1.mlp.fc2.weight"}
    torch.save(missing, tmp_path / "missing.pth")
    with pytest.raises(CheckpointError, match=r"missing blocks\.1\.mlp\.fc2\.weight"):
        load_backbone(tmp_path / "missing.pth", verbose=False)
    torch.save({"model": [1, 2, 3]}, tmp_path / "junk.pth")
    with pytest.raises(CheckpointError, match=r"junk\.pth"):
        load_backbone(tmp_path / "junk.pth")
    with pytest.raises(CheckpointError, match="no such file"):
        load_backbone(tmp_path / "nope.pth")


@pytest.mark.parametrize("call", [print, os.system, eval])
def test_pickles_are_read_with_weights_only(tmp_path, capfd, call):
    class Evil:
        def __reduce__(self):
            return (call, ("print('pwned')" if call is eval else "echo pwned",))

    torch.save({"model": Evil()}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match=r"evil\.pth: holds pickled objects other than"):
        load_backbone(tmp_path / "evil.pth", verbose=False)
    assert "pwned" not in capfd.readouterr().out  # nothing the pickle names ran


def test_a_sharded_hugging_face_folder_loads_its_shards(hf_classifier, tmp_path):
    """``model.safetensors.index.json`` and the shards it lists, as transformers writes a
    large model: the same logits as the one-file folder; a missing shard is named."""
    hf, folder = hf_classifier
    sd = load_file(folder / "model.safetensors")
    names = sorted(sd)
    shards = {f"model-0000{i + 1}-of-00002.safetensors": names[i::2] for i in range(2)}
    for shard, keys in shards.items():
        save_file({k: sd[k] for k in keys}, tmp_path / shard)
    weight_map = {k: shard for shard, keys in shards.items() for k in keys}
    index = {"metadata": {"total_size": 0}, "weight_map": weight_map}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    (tmp_path / "config.json").write_text((folder / "config.json").read_text())
    x = _video()
    assert torch.allclose(_ours(load_backbone(tmp_path), x), _hf_logits(hf, x), atol=1e-4, rtol=0)
    (tmp_path / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"model-00002-of-00002\.safetensors: no such file"):
        load_backbone(tmp_path)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_an_image_vit_is_refused_naming_what_to_use(tmp_path, suffix):
    """A timm image ViT (cls token, 2-D patch embedding, qkv bias), as .pth or safetensors."""
    vit = create_backbone("vit_tiny", depth=2, num_classes=10)
    sd = {k: v for k, v in vit.state_dict().items() if not k.startswith("fc_norm")}
    sd["patch_embed.proj.weight"] = torch.zeros(192, 3, 16, 16)
    sd["cls_token"] = torch.zeros(1, 1, 192)
    sd["pos_embed"] = torch.zeros(1, 197, 192)
    sd["norm.weight"], sd["norm.bias"] = torch.ones(192), torch.zeros(192)
    path = tmp_path / f"vit_tiny_patch16_224{suffix}"
    if suffix == ".pth":
        torch.save(sd, path)
    else:
        save_file({k: v.contiguous() for k, v in sd.items()}, path)
    with pytest.raises(CheckpointError) as e:
        load_backbone(path)
    msg = str(e.value)
    assert msg.startswith(str(path)) and "an image model" in msg and "[192, 3, 16, 16]" in msg
    assert "VideoMAE" in msg and "videomae-base" in msg and "Video Swin" in msg


def test_cvpt_safetensors_round_trip_and_head_resize(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="cvpt.models")  # the key table of each load
    vit = create_backbone("vit_tiny", depth=2, num_classes=7)
    _perturb(vit)
    path = save_backbone(vit, tmp_path / "b.safetensors")
    again = load_backbone(path)
    x = _video()
    assert torch.equal(_ours(again, x), _ours(vit, x))
    resized = load_backbone(path, num_classes=3)
    assert resized.head.out_features == 3
    assert "head re-sized to 3 classes" in caplog.text
    save_file({"x": torch.zeros(1)}, tmp_path / "other.safetensors")
    with pytest.raises(CheckpointError, match="not a checkpoint of a supported backbone family"):
        load_backbone(tmp_path / "other.safetensors")  # no metadata: read by its keys


def test_create_model_on_a_real_checkpoint(hf_classifier):
    _, folder = hf_classifier
    model = cvpt.create_model("cvpt", backbone_checkpoint=folder, num_classes=11)
    assert model.backbone.head.out_features == 11
    out = model(
        torch.randn(1, 3, 4, 32, 32), torch.randn(1, 2, 12, 32, 32), torch.randn(1, 3, 12, 32, 32)
    )
    assert out.shape == (1, 11)


# ---------------------------------------------------------------- files people hold (issue 22)


def _tiny_vit(seed: int = 0):
    """A perturbed 2-block vit_tiny (192 wide, 3 heads: a width the heads table knows)."""
    torch.manual_seed(seed)
    vit = create_backbone("vit_tiny", depth=2, num_classes=0, img_size=32, num_frames=4).eval()
    _perturb(vit, seed)
    return vit


@pytest.mark.parametrize(
    ("dtype", "layout"),  # every dtype once, every layout at least twice
    [
        (torch.int8, "pth"),
        (torch.int8, "shard"),
        (torch.uint8, "module.pth"),
        (torch.int32, "safetensors"),
        (torch.int64, "module.pth"),
        (torch.bool, "pth"),
        (torch.bool, "safetensors"),
        (torch.complex64, "shard"),
    ],
)
def test_non_float_weights_are_refused_naming_file_key_and_dtype(tmp_path, dtype, layout):
    """Quantised (integer), bool and complex tensors where float weights belong: never cast
    (int8 was off by 3.8 in the outputs, complex lost its imaginary part)."""
    sd = {k: v for k, v in _tiny_vit().state_dict().items() if k != "pos_embed"}
    key = "blocks.1.mlp.fc1.weight"
    sd[key] = (sd[key] * 50).round().to(dtype)
    if layout == "shard":  # the HF layout, one shard quantised
        _, folder = _hf_with_bad_shard(tmp_path, dtype)
        with pytest.raises(CheckpointError) as e:
            load_backbone(folder, verbose=False)
        assert str(e.value).startswith(str(folder / "b.safetensors"))
        assert f"is {dtype} where the backbone holds float weights" in str(e.value)
        return
    path = tmp_path / f"q.{layout.split('.')[-1]}"
    if layout == "safetensors":
        save_file(sd, path)
    else:
        torch.save({"module": sd} if layout.startswith("module") else sd, path)
    with pytest.raises(CheckpointError) as e:
        load_backbone(path, verbose=False)
    assert str(e.value).startswith(f"{path}: {key} is {dtype} where the backbone holds float")
    assert "dequantise" in str(e.value)


def _hf_with_bad_shard(folder, dtype):
    """A sharded HF folder (config.json + two shards) whose second shard holds ``dtype``
    weights, e.g. one query weight quantised (it would be concatenated into float qkv)."""
    folder.mkdir(exist_ok=True)
    cfg = transformers.VideoMAEConfig(**HF_SIZE, num_labels=3)
    hf = transformers.VideoMAEForVideoClassification(cfg).eval()
    sd = {k: v.contiguous() for k, v in hf.state_dict().items()}
    query = next(k for k in sorted(sd) if k.endswith("attention.query.weight"))
    rest = [k for k in sorted(sd) if k != query]
    save_file({k: sd[k] for k in rest}, folder / "a.safetensors")
    save_file({query: (sd[query] * 100).to(dtype)}, folder / "b.safetensors")
    weight_map = {**{k: "a.safetensors" for k in rest}, query: "b.safetensors"}
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    hf.config.to_json_file(folder / "config.json")
    return hf, folder


@pytest.mark.parametrize("sharded", [False, True])
def test_float_dtype_mixtures_widen_exactly(tmp_path, sharded):
    """fp16/bf16/fp64 tensors (in one file or across shards) load as their exact float32
    values: every tensor equals ``v.float()`` of what the file holds."""
    dtypes = [torch.float16, torch.bfloat16, torch.float64, torch.float32]
    if sharded:  # an HF folder: compared with the same tensors widened into one file
        hf, folder = _hf_with_bad_shard(tmp_path / "shards", torch.float16)
        where = json.loads((folder / "model.safetensors.index.json").read_text())["weight_map"]
        sd = {k: v.contiguous() for k, v in hf.state_dict().items()}
        mixed = {k: v.to(dtypes[i % 4]) for i, (k, v) in enumerate(sorted(sd.items()))}
        for shard in ("a.safetensors", "b.safetensors"):
            save_file({k: v for k, v in mixed.items() if where[k] == shard}, folder / shard)
        (tmp_path / "one").mkdir()
        save_file({k: v.float() for k, v in mixed.items()}, tmp_path / "one" / "model.safetensors")
        hf.config.to_json_file(tmp_path / "one" / "config.json")
        want = load_backbone(tmp_path / "one", verbose=False).state_dict()
        got = load_backbone(folder, verbose=False).state_dict()
        assert want.keys() == got.keys()
        assert all(torch.equal(got[k], want[k]) for k in want)
        return
    sd = _tiny_vit().state_dict()
    mixed = {k: v.to(dtypes[i % 4]) for i, (k, v) in enumerate(sorted(sd.items()))}
    torch.save(mixed, tmp_path / "mix.pth")
    got = load_backbone(tmp_path / "mix.pth", verbose=False, img_size=32, num_frames=4)
    for k, v in got.state_dict().items():
        assert v.dtype == torch.float32 and torch.equal(v, mixed[k].float()), k


@pytest.mark.parametrize(
    ("width", "heads"),
    [(192, 3), (384, 6), (768, 12), (1024, 16), (1280, 16), (1408, 16), (512, None), (64, None)],
)
def test_published_vit_widths_get_their_head_count(tmp_path, width, heads):
    """The weights do not hold the head count: VideoMAE ViT-H (1280) and VideoMAE V2 ViT-g
    (1408) have 16 (not width // 64); a width no published size has needs ``num_heads=``."""
    sd = {
        "patch_embed.proj.weight": torch.zeros(width, 3, 2, 16, 16),
        "blocks.0.mlp.fc1.weight": torch.zeros(4 * width, width),
    }
    assert cvpt.models.vit.config_from_state_dict(sd).num_heads == (heads or 0)
    if heads is None:  # end to end: a real (tiny) checkpoint of that width is refused
        vit = create_backbone("vit_tiny", embed_dim=width, num_heads=2, depth=1, num_classes=0)
        torch.save(vit.state_dict(), path := tmp_path / f"vit{width}.pth")
        with pytest.raises(CheckpointError) as e:
            load_backbone(path, verbose=False)
        msg = str(e.value)
        assert msg.startswith(f"{path}: a ViT of width {width}") and "pass num_heads=" in msg
        assert "1280: 16 heads" in msg
        loaded = load_backbone(path, verbose=False, num_heads=2)
        x = _video(batch=1, size=32)
        assert torch.equal(_ours(loaded, x), _ours(vit, x))


def test_hf_folders_keep_their_configs_head_count(hf_classifier):
    """A Hugging Face folder's config.json says the heads (64 wide, 4 heads here: no guess)."""
    _, folder = hf_classifier
    assert load_backbone(folder, verbose=False).cfg.num_heads == 4


@pytest.mark.parametrize(
    ("family", "config", "field"),
    [
        ("vit", {"frobnicate": 1}, "fields ['frobnicate'] that a ViTConfig has not"),
        ("vit", [1, 2], "is a JSON list, not an object"),
        ("vit", "{not json", "is not JSON"),
        ("swin", {}, "that a SwinConfig has not"),  # a Swin family tag on ViT weights
    ],
)
def test_bad_safetensors_metadata_is_a_checkpoint_error(tmp_path, family, config, field):
    vit = _tiny_vit()
    path = save_backbone(vit, tmp_path / "b.safetensors")
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    tensors = load_file(path)
    if isinstance(config, dict):
        config = json.dumps({**json.loads(meta["cvpt_backbone_config"]), **config})
    elif not isinstance(config, str):
        config = json.dumps(config)
    meta = {**meta, "cvpt_backbone_config": config, "cvpt_backbone_family": family}
    save_file(tensors, path, metadata=meta)
    with pytest.raises(CheckpointError) as e:
        load_backbone(path, verbose=False)
    msg = str(e.value)
    assert msg.startswith(f"{path}: its metadata cvpt_backbone_config") and field in msg


WRAPPED = ["module.module.", "model.", "model.backbone.", "backbone.module.", "_orig_mod."]
WRAPPED += ["module._orig_mod.", "_orig_mod.module.", "module.backbone.encoder.", "model.module."]


@pytest.mark.parametrize(
    ("prefix", "container"),  # each nesting once, in a bare state dict or a Lightning .ckpt
    [(p, ("bare", "lightning")[i % 2]) for i, p in enumerate(WRAPPED)],
)
def test_wrapper_prefixes_are_stripped_in_any_order(tmp_path, prefix, container):
    """DDP, torch.compile and Lightning wrap keys, nested in any order: the same weights."""
    vit = _tiny_vit()
    sd = {prefix + k: v for k, v in vit.state_dict().items()}
    obj = sd
    if container == "lightning":  # what Lightning's .ckpt holds beside the weights
        obj = {"state_dict": sd, "epoch": 3, "global_step": 10, "optimizer_states": []}
    torch.save(obj, path := tmp_path / "w.ckpt")
    got = load_backbone(path, verbose=False, img_size=32, num_frames=4).state_dict()
    assert all(torch.equal(got[k], v) for k, v in vit.state_dict().items())


def test_an_unknown_wrapper_is_named(tmp_path):
    sd = {f"net.{k}": v for k, v in _tiny_vit().state_dict().items()}
    torch.save({"state_dict": sd}, path := tmp_path / "lit.ckpt")
    with pytest.raises(CheckpointError) as e:
        load_backbone(path, verbose=False)
    msg = str(e.value)
    assert msg.startswith(f"{path}: not a checkpoint of a supported backbone family")
    assert "every key starts with 'net.'" in msg and "removeprefix('net.')" in msg


def test_ema_state_dicts(tmp_path):
    """mmengine's EMA model (``steps`` + ``module.*``) loads its averaged weights; mmcv's
    ``ema_*`` copies beside the weights are refused, naming them and the fix."""
    vit = _tiny_vit()
    ema = {k: v + 1.0 for k, v in vit.state_dict().items()}
    obj = {"steps": torch.tensor(5), **{f"module.{k}": v for k, v in ema.items()}}
    torch.save({"state_dict": obj}, path := tmp_path / "ema.pth")
    got = load_backbone(path, verbose=False, img_size=32, num_frames=4).state_dict()
    assert all(torch.equal(got[k], v) for k, v in ema.items())
    copies = {f"ema_{k.replace('.', '_')}": v for k, v in ema.items()}
    torch.save({"state_dict": {**vit.state_dict(), **copies}}, path := tmp_path / "mmcv.pth")
    with pytest.raises(CheckpointError) as e:
        load_backbone(path, verbose=False)
    assert str(e.value).startswith(f"{path}: holds mmcv EMA copies") and "ema_" in str(e.value)


@pytest.mark.parametrize("where", ["absolute", "../", "sub/../../"])
def test_a_shard_outside_its_folder_is_refused(hf_classifier, tmp_path, where):
    _, folder = hf_classifier
    sd = load_file(folder / "model.safetensors")
    save_file(sd, outside := tmp_path / "outside.safetensors")
    (inner := tmp_path / "a" / "b").mkdir(parents=True)
    (inner / "config.json").write_text((folder / "config.json").read_text())
    shard = {"absolute": str(outside), "../": "../../outside.safetensors"}.get(
        where, "sub/../../../outside.safetensors"
    )
    (inner / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {k: shard for k in sd}})
    )
    with pytest.raises(CheckpointError) as e:
        load_backbone(inner, verbose=False)
    assert f"lists the shard {shard}, which is outside its folder" in str(e.value)
