"""The paper's parameter counts and GMACs (ViT-B, 224², 4 I-frames), on the meta device."""

from __future__ import annotations

import pytest
import torch

import cvpt
from cvpt.models import create_backbone
from cvpt.models.flops import _AttentionMACs, compressed_inputs, count_macs
from cvpt.models.prompts import SCCP


def _meta_model(method, **options):
    with torch.device("meta"):
        return cvpt.create_model(method, backbone="vit_base", num_classes=51, **options)


def test_sccp_block_parameters_match_table_4():
    full = SCCP(768, 8)
    assert sum(p.numel() for n, p in full.named_parameters() if n != "omega") == 39_192
    no_res = SCCP(768, 8, residual_prompt=False)
    assert sum(p.numel() for n, p in no_res.named_parameters() if n != "omega") == 19_216
    no_att = SCCP(768, 8, attention=False)
    assert sum(p.numel() for p in no_att.parameters()) == 39_192


def test_adaptformer_adapters_match_table_1():
    model = _meta_model("adaptformer")
    adapters = sum(p.numel() for b in model.backbone.blocks for p in b.adapter.parameters())
    assert adapters == 1_189_632


def test_cvpt_tunable_parameters_are_half_a_million_without_embeddings():
    counts = _meta_model("cvpt").param_counts()
    # 12 SCCP (+ω) + fc_norm + HMDB-51 head: the paper's "0.5M (0.6%)"
    assert counts["tunable_without_embeddings"] == 12 * 39_193 + 1_536 + 768 * 51 + 51
    assert 0.5 < 100 * counts["tunable_without_embeddings"] / counts["total"] < 0.7


def test_cvpt_gmacs_per_view_match_table_1():
    gmacs = count_macs(_meta_model("cvpt"), *compressed_inputs()) / 1e9
    assert gmacs == pytest.approx(128.3, rel=0.01)
    assert 6 * gmacs == pytest.approx(772.2, rel=0.01)


def test_videomae_b_on_16_frames_is_180_gmacs():
    with torch.device("meta"):
        vit = create_backbone("vit_base", num_classes=400)
    gmacs = count_macs(vit, torch.zeros(1, 3, 16, 224, 224, device="meta")) / 1e9
    assert gmacs == pytest.approx(180, rel=0.01)


def test_video_swin_b_on_32_frames_is_the_published_281_gmacs():
    # SwinTransformer/Video-Swin-Transformer: Swin-B 32×224² "281.6 GFLOPs" (multiply-adds)
    with torch.device("meta"):
        swin = create_backbone("swin_base", num_classes=400)
    gmacs = count_macs(swin, torch.zeros(1, 3, 32, 224, 224, device="meta")) / 1e9
    assert gmacs == pytest.approx(281.3, rel=0.01)
    assert gmacs == pytest.approx(281.6, rel=0.01)


def test_cvpt_on_swin_b_costs_the_three_streams_of_4_iframes():
    """Joint windows cost the backbone on 3×2 temporal slots (101.6 GMACs, as if the streams
    were stacked in time) + prompt embeddings (0.39) + 24 SCCPs (0.30); separate streams run
    2-slot windows (94.3 + the same)."""
    with torch.device("meta"):
        joint = cvpt.create_model("cvpt", backbone="swin_base", num_classes=51)
        separate = cvpt.create_model(
            "cvpt", backbone="swin_base", num_classes=51, stream_attention="separate"
        )
        stacked = create_backbone("swin_base")
    assert count_macs(joint, *compressed_inputs()) / 1e9 == pytest.approx(102.4, rel=0.005)
    assert count_macs(separate, *compressed_inputs()) / 1e9 == pytest.approx(95.0, rel=0.005)
    # the backbone alone on 12 frames (6 temporal slots): the same attention and linear work
    six_slots = count_macs(stacked, torch.zeros(1, 3, 12, 224, 224, device="meta")) / 1e9
    assert six_slots == pytest.approx(101.6, rel=0.005)


def test_baselines_cost_what_table_1_says_over_linear():
    base = count_macs(_meta_model("linear"), *compressed_inputs())
    vpt = count_macs(_meta_model("vpt"), *compressed_inputs())
    adapt = count_macs(_meta_model("adaptformer"), *compressed_inputs())
    assert 6 * (vpt - base) / 1e9 == pytest.approx(6.0, abs=0.5)
    assert 6 * (adapt - base) / 1e9 == pytest.approx(8.4, abs=0.5)


def test_attention_is_counted_on_real_cpu_tensors_too():
    torch.manual_seed(0)
    real = cvpt.create_model(
        "vpt", backbone="vit_tiny", num_classes=3, backbone_options=dict(depth=2)
    )
    with torch.device("meta"):
        meta = cvpt.create_model(
            "vpt", backbone="vit_tiny", num_classes=3, backbone_options=dict(depth=2)
        )
    on_cpu = count_macs(real, *compressed_inputs(2, size=32, device="cpu"))
    assert on_cpu == count_macs(meta, *compressed_inputs(2, size=32))
    linear_only = 2 * 2 * (8 * 3 + 8) ** 2 * 192  # the attention part must be in there
    assert on_cpu > linear_only


def test_swin_attention_is_counted_on_real_cpu_tensors_too():
    opts = dict(embed_dim=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4))
    torch.manual_seed(0)
    real = cvpt.create_model("cvpt", backbone="swin_tiny", num_classes=3, backbone_options=opts)
    with torch.device("meta"):
        meta = cvpt.create_model("cvpt", backbone="swin_tiny", num_classes=3, backbone_options=opts)
    on_cpu = count_macs(real, *compressed_inputs(1, size=32, device="cpu"))
    assert on_cpu == count_macs(meta, *compressed_inputs(1, size=32))
    # the attention part, by hand: per stage, windows × (3 streams · window tokens)² × C for
    # q·kᵀ and again for attn·v, 2 blocks each. Stage 1: 2×8×8 tokens, window 2×7×7 (time
    # clamped), padded to 2×14×14 = 4 windows; stages 2-4 (2×4×4, 2×2×2, 2×1×1) are one
    # clamped window each.
    stages = [(4, 2 * 49, 16), (1, 32, 32), (1, 8, 64), (1, 2, 128)]
    expect = sum(2 * 2 * windows * (3 * n) ** 2 * c for windows, n, c in stages)
    with torch.no_grad(), _AttentionMACs() as attention:
        meta(*compressed_inputs(1, size=32))
    assert attention.macs == expect
    assert on_cpu > expect


def test_info_command_table_and_json(capsys):
    from cvpt.cli.main import main

    assert main(["info", "--method", "cvpt", "--num-classes", "51", "--json"]) == 0
    import json

    row = json.loads(capsys.readouterr().out)[0]
    assert row["gmacs_per_view"] == pytest.approx(128.3, rel=0.01)
    assert row["tokens_per_block"] == 1176
    assert main(["info", "--all", "--num-classes", "101"]) == 0
    out = capsys.readouterr().out
    for name in ("cvpt", "linear", "vpt", "adaptformer", "full", "VideoMAE RGB 16f"):
        assert name in out
    assert "multiply-accumulates" in out


def test_info_on_swin_b_reports_cvpt_and_the_raw_32_frame_model(capsys):
    import json

    from cvpt.cli.main import main

    assert main(["info", "--backbone", "swin_base", "--num-classes", "51", "--json"]) == 0
    cvpt_row, raw = json.loads(capsys.readouterr().out)
    assert cvpt_row["method"] == "cvpt" and cvpt_row["gmacs_per_view"] == pytest.approx(102.4, 0.01)
    assert cvpt_row["tokens_per_block"] == 3 * 2 * 56 * 56  # three streams of 2×56×56
    assert cvpt_row["tunable_percent"] < 1.0  # the paper's "< 1%" holds on Swin-B too
    assert raw["method"] == "Video Swin RGB 32f" and raw["views"] == 12
    assert raw["gmacs_per_view"] == pytest.approx(281.3, rel=0.01)
    assert raw["total_params"] == 87_638_984 + 1024 * 51 + 51
