"""Every method and ablation on a tiny backbone: shapes, what trains, what stays frozen."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

import cvpt
from conftest import random_clips
from cvpt.models import METHODS, create_backbone, list_backbones
from cvpt.models.prompts import SCCP

TINY = dict(backbone="vit_tiny", backbone_options=dict(depth=3), num_classes=7)
ABLATIONS = [
    {},
    {"sccp_layers": 0},
    {"sccp_layers": 1},
    {"sccp_attention": False},
    {"residual_prompt": False},
    {"residual_prompt": False, "sccp_attention": False},
    {"prompt_embed_rank": 4},
    {"pool": "iframe"},
    {"sccp_update": "add"},
    {"sccp_update": "replace"},
]
CASES = [("cvpt", o) for o in ABLATIONS] + [(m, {}) for m in METHODS if m != "cvpt"]


def _inputs(batch=2, size=32, seed=0):
    return random_clips(batch, size, seed)


def _model(method, **options):
    torch.manual_seed(0)
    return cvpt.create_model(method, **TINY, **options)


@pytest.mark.parametrize(("method", "options"), CASES)
def test_shapes_for_batch_1_and_3(method, options):
    model = _model(method, **options).eval()
    for b in (1, 3):
        assert model(*_inputs(b)).shape == (b, 7)


@pytest.mark.parametrize(("method", "options"), CASES)
def test_gradients_reach_all_tunable_and_no_frozen_parameter(method, options):
    model = _model(method, **options).train()
    named = dict(model.named_parameters())
    before = {n: p.detach().clone() for n, p in named.items()}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(2):  # the second step moves zero-initialised adapters' partners too
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(*_inputs()), torch.tensor([1, 4]))
        loss.backward()
        for n, p in named.items():
            assert (p.grad is not None) == p.requires_grad, n
        opt.step()
    for n, p in named.items():
        changed = not torch.equal(p.detach(), before[n])
        if not p.requires_grad:
            assert not changed, f"frozen {n} changed"
    tunable = [n for n, p in named.items() if p.requires_grad]
    moved = [n for n in tunable if not torch.equal(named[n].detach(), before[n])]
    assert len(moved) == len(tunable), set(tunable) - set(moved)


def test_what_each_method_tunes():
    def tuned(method):
        return {
            n.split(".")[0] if not n.startswith("backbone.") else ".".join(n.split(".")[:2])
            for n, p in _model(method).named_parameters()
            if p.requires_grad
        }

    assert tuned("linear") == {"backbone.fc_norm", "backbone.head"}
    assert tuned("cvpt") == {"backbone.fc_norm", "backbone.head", "mv_embed", "res_embed", "sccp"}
    assert tuned("vpt") == {"backbone.fc_norm", "backbone.head", "mv_embed", "res_embed", "prompts"}
    assert tuned("adaptformer") == {
        "backbone.fc_norm",
        "backbone.head",
        "backbone.blocks",
        "mv_embed",
        "res_embed",
    }
    assert tuned("lora") == {"backbone.fc_norm", "backbone.head", "backbone.blocks", "mv_embed",
                             "res_embed"}  # fmt: skip
    assert all(p.requires_grad for p in _model("full").parameters())


def test_frozen_modules_stay_in_eval_mode_while_training():
    model = _model("adaptformer").train()
    assert not model.backbone.blocks[0].attn.training
    assert not model.backbone.patch_embed.training
    assert model.backbone.blocks[0].adapter.training and model.backbone.head.training
    assert all(m.training for m in _model("full").train().modules())


@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_sccp_layers_runs_exactly_k_blocks(k):
    model = _model("cvpt", sccp_layers=k).eval()
    calls = []
    for blk in model.sccp:
        blk.register_forward_hook(lambda *_: calls.append(1))
    model(*_inputs())
    assert len(model.sccp) == k and len(calls) == k
    with pytest.raises(ValueError, match="sccp_layers"):
        _model("cvpt", sccp_layers=4)


@pytest.mark.parametrize("residual_prompt", [True, False])
def test_sccp_attention_sums_to_one_over_tokens(residual_prompt):
    model = _model("cvpt", residual_prompt=residual_prompt).eval()
    for blk in model.sccp:
        blk.keep_attention = True
    model(*_inputs())
    for blk in model.sccp:
        a = blk.last_attention  # [B, N, d']
        assert a.shape == (2, 8, 8)  # N = (4/2)·(32/16)² = 8 tokens, d' = 8
        assert torch.allclose(a.sum(dim=1), torch.ones(2, 8), atol=1e-5)
        assert (a >= 0).all()


def test_wrong_input_shapes_say_the_expected_layout():
    model = _model("cvpt").eval()
    i, m, r = _inputs()
    with pytest.raises(ValueError, match=r"mvs must be \[B, 2, 12, H, W\]"):
        model(i, m[:, :, :6], r)
    with pytest.raises(ValueError, match=r"iframes must be \[B, 3, T, H, W\]"):
        model(i.permute(0, 2, 1, 3, 4), m, r)
    with pytest.raises(ValueError, match=r"residuals must be"):
        model(i, m, r[..., :16])
    with pytest.raises(ValueError, match="multiples of 16"):
        model(i[..., :30, :30], m[..., :30, :30], r[..., :30, :30])


def test_unknown_method_or_option_is_an_error():
    with pytest.raises(ValueError, match="method must be one of"):
        cvpt.create_model("st_adapter", **TINY)
    with pytest.raises(ValueError, match=r"unknown options.*sccp_layer"):
        cvpt.create_model("cvpt", sccp_layer=3, **TINY)
    with pytest.raises(ValueError, match="sccp_update='skip' is not allowed: it takes one of"):
        cvpt.create_model("cvpt", sccp_update="skip", **TINY)


@pytest.mark.parametrize("was, now", [(True, "add"), (False, "replace")])
def test_the_renamed_sccp_skip_is_refused_with_its_new_name(was, now):
    # silently dropping it would train the other reading
    with pytest.raises(ValueError, match=rf"renamed to sccp_update.*sccp_update='{now}'"):
        cvpt.create_model("cvpt", sccp_skip=was, **TINY)


def test_tunable_checkpoint_round_trip(tmp_path):
    model = _model("cvpt").eval()
    with torch.no_grad():
        for p in model.sccp.parameters():
            p.add_(0.1)
    sd = model.tunable_state_dict()
    assert set(sd) == {n for n, p in model.named_parameters() if p.requires_grad}
    save_file(sd, tmp_path / "task.safetensors")
    torch.manual_seed(123)
    fresh = cvpt.create_model("cvpt", **TINY).eval()
    fresh.backbone.load_state_dict(model.backbone.state_dict())  # the shared frozen backbone
    fresh.load_tunable_state_dict(load_file(tmp_path / "task.safetensors"))
    x = _inputs()
    assert torch.equal(fresh(*x), model(*x))
    with pytest.raises(ValueError, match="do not match"):
        _model("vpt").load_tunable_state_dict(sd)


def test_low_rank_embeddings_shrink_the_per_task_checkpoint():
    full = _model("cvpt").param_counts()
    low = _model("cvpt", prompt_embed_rank=4).param_counts()
    assert low["tunable"] < full["tunable"]
    assert low["tunable_without_embeddings"] == full["tunable_without_embeddings"]


@pytest.mark.parametrize("name", list_backbones("vit"))
def test_every_registered_backbone_builds_and_runs(name):
    with torch.device("meta"):
        vit = create_backbone(name, num_classes=3)
        out = vit(torch.zeros(1, 3, 4, 32, 32))
    assert out.shape == (1, 3)
    assert vit.embed_dim % vit.cfg.num_heads == 0


def test_tiny_backbone_runs_on_real_tensors_and_pools_like_videomae():
    vit = create_backbone("vit_tiny", depth=2, num_classes=4).eval()
    x = torch.randn(2, 3, 4, 32, 32)
    tokens = vit.forward_features(x)
    assert tokens.shape == (2, 8, 192)
    assert torch.allclose(vit(x), vit.head(vit.fc_norm(tokens.mean(1))))


def test_sccp_parameter_shapes_follow_the_paper():
    blk = SCCP(768, 8)
    assert sum(p.numel() for p in blk.parameters()) == 39_192 + 1


def test_iframe_only_control_ignores_motion_and_refuses_cvpt():
    torch.manual_seed(0)
    model = cvpt.create_model(
        "full", backbone="vit_tiny", num_classes=3, backbone_options={"depth": 2},
        inputs="iframe",
    )  # fmt: skip
    model.eval()
    i = torch.randn(2, 3, 4, 32, 32)
    a = model(i, torch.randn(2, 2, 12, 32, 32), torch.randn(2, 3, 12, 32, 32))
    b = model(i, torch.randn(2, 2, 12, 32, 32), torch.randn(2, 3, 12, 32, 32))
    assert a.shape == (2, 3) and torch.equal(a, b) and torch.equal(model(i), a)
    assert model.mv_embed is None and model.num_streams == 1
    with pytest.raises(ValueError, match="inputs='iframe'"):
        cvpt.create_model("cvpt", backbone="vit_tiny", num_classes=3, inputs="iframe")


def test_sccp_update_add_keeps_the_streams_with_the_same_weights():
    torch.manual_seed(0)
    replace, add = SCCP(32, 8, update="replace"), SCCP(32, 8, update="add")
    add.load_state_dict(replace.state_dict())  # same weights: the reading adds none
    e, m, r = (torch.randn(2, 6, 32) for _ in range(3))
    pm, pr, pe = replace(e, m, r)
    sm, sr, se = add(e, m, r)
    assert torch.equal(pe, se)  # E's update is the same
    assert torch.allclose(sm, m + pm) and torch.allclose(sr, r + pr)
    assert sum(p.numel() for p in SCCP(768, 8, update="add").parameters()) == 39_192 + 1
    # the model passes its option down to every block
    model = _model("cvpt", sccp_update="add")
    assert {blk.update for blk in model.sccp} == {"add"}


@pytest.mark.parametrize("method", ["cvpt", "vpt", "full"])
def test_grad_checkpointing_keeps_gradients_and_saves_memory(method):
    from cvpt.bench.model import StepCase, step_tensor_bytes

    grads, losses = {}, {}
    for ckpt in (False, True):
        model = _model(method).train()
        model.set_grad_checkpointing(ckpt)
        loss = torch.nn.functional.cross_entropy(model(*_inputs()), torch.tensor([1, 4]))
        loss.backward()
        losses[ckpt] = loss.item()
        grads[ckpt] = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
    assert losses[True] == pytest.approx(losses[False], abs=1e-6)
    assert grads[True].keys() == grads[False].keys()
    for n, g in grads[False].items():
        torch.testing.assert_close(grads[True][n], g, atol=1e-6, rtol=1e-5, msg=n)
    spec = dict(backbone="vit_tiny", size=32, num_classes=7, backbone_options={"depth": 3})
    plain = step_tensor_bytes(StepCase(method, **spec))["activations"]
    checkpointed = step_tensor_bytes(StepCase(method, grad_checkpointing=3, **spec))
    checkpointed = checkpointed["activations"]
    assert checkpointed < 0.6 * plain
    # evaluation (no autograd) runs the blocks directly
    model = _model(method).eval()
    model.set_grad_checkpointing(True)
    with torch.no_grad():
        assert model(*_inputs(1)).shape == (1, 7)


@pytest.mark.parametrize("method", METHODS)
def test_frozen_weights_in_bf16_give_the_same_numbers_under_autocast(method):
    models = []
    for cast in (False, True):
        torch.manual_seed(0)
        model = cvpt.create_model(method, **TINY).train()
        freed = model.cast_frozen_weights(torch.bfloat16) if cast else 0
        models.append(model)
    plain, cast = models
    frozen = [p for p in cast.parameters() if not p.requires_grad]
    if method == "full":
        assert freed == 0 and cast.frozen_dtype is None
    else:
        assert freed > 0 and cast.frozen_dtype == torch.bfloat16
        assert freed == sum(p.numel() * 2 for p in frozen if p.dtype == torch.bfloat16)
    assert all(p.dtype == torch.float32 for p in cast.parameters() if p.requires_grad)
    assert all(
        p.dtype == torch.float32
        for m in cast.modules()
        if isinstance(m, torch.nn.LayerNorm)
        for p in m.parameters()
    )
    torch.manual_seed(0)
    recomputed = cvpt.create_model(method, **TINY).train()  # cast and checkpointed: the same too
    recomputed.cast_frozen_weights(torch.bfloat16)
    recomputed.set_grad_checkpointing(3)
    out = {}
    for name, model in (("plain", plain), ("cast", cast), ("recomputed", recomputed)):
        with torch.autocast("cpu", torch.bfloat16):
            logits = model(*_inputs())
        torch.nn.functional.cross_entropy(logits.float(), torch.tensor([1, 4])).backward()
        grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
        out[name] = logits, grads
    for other in ("cast", "recomputed"):
        assert torch.equal(out["plain"][0], out[other][0])
        for n, g in out["plain"][1].items():
            assert torch.equal(out[other][1][n], g), (other, n)


@pytest.mark.slow  # over 10 s: run by `make test` after the default set
def test_frozen_weights_in_bf16_need_autocast_and_save_memory():
    model = cvpt.create_model("cvpt", **TINY)
    model.cast_frozen_weights(torch.bfloat16)
    with pytest.raises(ValueError, match=r"torch\.autocast\('cpu', dtype=torch\.bfloat16\)"):
        model(*_inputs())
    with torch.autocast("cpu", torch.float16), pytest.raises(ValueError, match="bfloat16"):
        model(*_inputs())
    model.cast_frozen_weights(torch.float32)
    assert model.frozen_dtype is None and model(*_inputs()).dtype == torch.float32

    from cvpt.bench.model import StepCase, step_peak_bytes, step_tensor_bytes

    spec = dict(backbone="vit_tiny", size=64, batch=24, num_classes=7, amp=True)
    spec["backbone_options"] = {"depth": 3}
    held = {c: step_tensor_bytes(StepCase("cvpt", frozen_bf16=c, **spec)) for c in (False, True)}
    peak = {c: step_peak_bytes(StepCase("cvpt", frozen_bf16=c, **spec)) for c in (False, True)}
    # the backward keeps no bf16 copy of a frozen weight any more: one per block Linear
    copies = sum(
        m.weight.numel() * 2
        for m in model.backbone.blocks.modules()
        if isinstance(m, torch.nn.Linear)
    )
    assert held[False]["activations"] - held[True]["activations"] == copies
    assert peak[True] < peak[False] - copies / 2  # the peak falls in the backward pass, where
    # the last blocks' copies are already gone


def test_checkpointing_the_first_k_blocks_trades_memory_step_by_step():
    from cvpt.bench.model import StepCase, step_tensor_bytes

    model = _model("cvpt")
    for enable, k in ((True, 2), (False, 0), (3, 3), (1, 1), (0, 0)):
        model.set_grad_checkpointing(enable)
        assert model.backbone.checkpoint_blocks == k
        assert model.backbone.grad_checkpointing == (k > 0)
    for bad in (4, -1):
        with pytest.raises(ValueError, match=r"0\.\.3"):
            model.set_grad_checkpointing(bad)
    spec = dict(backbone="vit_tiny", size=32, num_classes=7, backbone_options={"depth": 3})
    held = [
        step_tensor_bytes(StepCase("cvpt", grad_checkpointing=k, **spec))["activations"]
        for k in range(4)
    ]
    assert held[0] > held[1] > held[2] > held[3]
    # each checkpointed block sheds the same activations (all blocks are alike)
    assert held[0] - held[1] == held[1] - held[2] == held[2] - held[3]


@pytest.mark.parametrize("was, reading", [(True, "add"), (False, "replace")])
def test_a_model_saved_with_sccp_skip_loads_in_its_reading(tmp_path, was, reading):
    import json

    from cvpt.loading import load_model
    from cvpt.models.tuned import save_pretrained

    torch.manual_seed(3)
    model = cvpt.create_model("cvpt", sccp_update=reading, **TINY).eval()
    model.origin = {"seed": 3, "backbone_options": TINY["backbone_options"]}
    save_pretrained(model, tmp_path / "tuned")
    config = tmp_path / "tuned" / "config.json"
    saved = json.loads(config.read_text())
    del saved["options"]["sccp_update"]  # as written before the option's rename (unversioned)
    del saved["format_version"], saved["cvpt_version"]
    saved["options"]["sccp_skip"] = was
    config.write_text(json.dumps(saved))
    back = load_model(tmp_path / "tuned")
    assert back.options.sccp_update == reading
    x = _inputs()
    with torch.no_grad():
        assert torch.equal(model(*x), back(*x))
