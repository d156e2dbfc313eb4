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
