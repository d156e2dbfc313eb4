"""``cvpt bench model``: what the compressed model costs next to raw-video VideoMAE, in one run.

- forward latency per clip (batch 1, inference): CVPT on 3N tokens (4 I-frames + 12 P-frames)
  vs VideoMAE on 16 RGB frames (1568 tokens), same backbone;
- train step (forward + backward + AdamW) and its peak memory: CVPT vs full fine-tuning, same
  batch and inputs;
- per-task checkpoint size (the tuned tensors as safetensors): CVPT with full-rank and low-rank
  prompt embeddings vs the whole model.
Cases are interleaved repeat by repeat; medians. Peak memory of a train step (the first, which
also allocates the optimiser state) is the CUDA allocator's peak on a GPU; on a CPU it is the
growth of the peak resident set (Linux VmHWM) over the step, each method in a fresh process,
because a process's heap keeps what an earlier step freed.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

from cvpt.models.factory import create_model
from cvpt.models.flops import compressed_inputs
from cvpt.models.registry import create_backbone


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_reset(device: torch.device) -> int:
    """Reset the peak counter; return the current level (bytes)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return torch.cuda.memory_allocated(device)
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    except OSError:
        return 0
    return _proc_status("VmRSS")


def _peak_read(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    return _proc_status("VmHWM")


def _proc_status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def _train_setup(method, backbone, size, batch, num_classes, bopts, device, ckpt=False):
    """``(model, optimiser, inputs, labels, device)`` for one train step of ``method``
    (``ckpt``: with gradient checkpointing of the backbone blocks)."""
    dev = torch.device(device)
    torch.manual_seed(0)
    model = create_model(
        method, backbone=backbone, num_classes=num_classes, backbone_options=bopts
    ).to(dev)
    model.set_grad_checkpointing(ckpt)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    inputs = tuple(torch.randn_like(x) for x in compressed_inputs(batch, 4, size, device=dev))
    labels = torch.randint(0, num_classes, (batch,), device=dev)
    return model.train(), opt, inputs, labels, dev


def step_peak_bytes(*spec) -> int:
    """Peak memory added by one train step (run it in a fresh process on CPU)."""
    model, opt, inputs, labels, dev = _train_setup(*spec)
    base = _peak_reset(dev)
    _train_step(model, inputs, labels, opt)
    return _peak_read(dev) - base


def step_tensor_bytes(*spec) -> dict:
    """Exact bytes of what training holds besides the weights: activations saved for backward
    (unique storages, via saved-tensor hooks, plus every block's input, which is what a
    checkpointed block keeps), gradients, and AdamW's state after one step."""
    model, opt, inputs, labels, _ = _train_setup(*spec)
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(t):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in params:
            saved[ptr] = t.untyped_storage().nbytes()
        return t

    def block_input(_module, args):  # what a checkpointed block keeps instead (its input)
        pack(args[0])

    hooks = [blk.register_forward_pre_hook(block_input) for blk in model.backbone.blocks]
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = torch.nn.functional.cross_entropy(model(*inputs), labels)
    loss.backward()
    for h in hooks:
        h.remove()
    opt.step()
    grads = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    state = sum(
        v.numel() * v.element_size()
        for st in opt.state.values()
        for v in st.values()
        if torch.is_tensor(v)
    )
    acts = sum(saved.values())
    return {
        "activations": acts,
        "gradients": grads,
        "optimizer": state,
        "total": acts + grads + state,
    }


def _peak_in_fresh_process(method, *spec) -> int:
    if torch.device(spec[5]).type == "cuda":
        return step_peak_bytes(method, *spec)
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(1) as pool:
        return pool.apply(step_peak_bytes, (method, *spec))


def timed(fn, device) -> float:
    """Seconds ``fn()`` takes, CUDA work included (synchronised before and after)."""
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


def _train_step(model, inputs, labels, opt):
    opt.zero_grad(set_to_none=True)
    loss = torch.nn.functional.cross_entropy(model(*inputs), labels)
    loss.backward()
    opt.step()


def _size_of(tensors: dict[str, torch.Tensor]) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "ckpt.safetensors")
        save_file({k: v.contiguous() for k, v in tensors.items()}, path)
        return os.path.getsize(path)


def bench_model(
    backbone: str = "vit_base",
    *,
    size: int = 224,
    batch: int = 2,
    repeats: int = 3,
    num_classes: int = 51,
    low_rank: int = 16,
    device: str = "cpu",
    backbone_options: dict | None = None,
    grad_checkpointing: bool = False,
) -> dict:
    """Run the three comparisons; returns medians (seconds, bytes) and ratios. With
    ``grad_checkpointing``, CVPT with checkpointed backbone blocks is measured beside them."""
    dev = torch.device(device)
    bopts = backbone_options or {}
    torch.manual_seed(0)
    cvpt_model = create_model(
        "cvpt", backbone=backbone, num_classes=num_classes, backbone_options=bopts
    ).to(dev)
    full_model = create_model(
        "full", backbone=backbone, num_classes=num_classes, backbone_options=bopts
    ).to(dev)
    trained = {"cvpt": cvpt_model, "full": full_model}
    if grad_checkpointing:
        torch.manual_seed(0)
        trained["cvpt_ckpt"] = create_model(
            "cvpt", backbone=backbone, num_classes=num_classes, backbone_options=bopts
        ).to(dev)
        trained["cvpt_ckpt"].set_grad_checkpointing(True)
    rgb_model = create_backbone(backbone, num_classes=num_classes, **bopts).to(dev).eval()
    one = compressed_inputs(1, 4, size, device=dev)
    one = tuple(torch.randn_like(x) for x in one)
    rgb = torch.randn(1, 3, 16, size, size, device=dev)
    many = tuple(torch.randn_like(x) for x in compressed_inputs(batch, 4, size, device=dev))
    labels = torch.randint(0, num_classes, (batch,), device=dev)

    def infer(model, *x):
        with torch.no_grad():
            model(*x)

    cvpt_model.eval()
    opts = {
        name: torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-4)
        for name, m in trained.items()
    }
    times: dict[str, list[float]] = {
        k: [] for k in ("cvpt_fwd", "rgb_fwd", *(f"{name}_step" for name in trained))
    }
    for r in range(repeats + 1):  # the first round warms up and is dropped
        fwd = {
            "cvpt_fwd": timed(lambda: infer(cvpt_model.eval(), *one), dev),
            "rgb_fwd": timed(lambda: infer(rgb_model, rgb), dev),
        }
        step = {}
        for name, model in trained.items():
            model.train()
            step[f"{name}_step"] = timed(
                lambda m=model, n=name: _train_step(m, many, labels, opts[n]), dev
            )
        if r:
            for k, v in {**fwd, **step}.items():
                times[k].append(v)
    med = {k: statistics.median(v) for k, v in times.items()}
    spec = (backbone, size, batch, num_classes, bopts, device)
    runs = {name: (name.removesuffix("_ckpt"), name.endswith("_ckpt")) for name in trained}
    peak = {f"{n}_step": _peak_in_fresh_process(m, *spec, c) for n, (m, c) in runs.items()}
    held = {f"{n}_step": step_tensor_bytes(m, *spec, c) for n, (m, c) in runs.items()}

    low = create_model(
        "cvpt",
        backbone=backbone,
        num_classes=num_classes,
        backbone_options=bopts,
        prompt_embed_rank=low_rank,
    )
    sizes = {
        "cvpt_full_rank": _size_of(cvpt_model.tunable_state_dict()),
        f"cvpt_rank_{low_rank}": _size_of(low.tunable_state_dict()),
        "full_model": _size_of(dict(full_model.state_dict())),
    }
    return {
        "backbone": backbone,
        "size": size,
        "batch": batch,
        "repeats": repeats,
        "device": str(dev),
        "torch_threads": torch.get_num_threads(),
        "median_seconds": med,
        "peak_bytes": peak,
        "tensor_bytes": held,
        "checkpoint_bytes": sizes,
        "ratios": {
            "cvpt_forward_over_videomae16": med["cvpt_fwd"] / med["rgb_fwd"],
            "cvpt_step_over_full": med["cvpt_step"] / med["full_step"],
            "cvpt_peak_over_full": peak["cvpt_step"] / max(peak["full_step"], 1),
            "cvpt_tensor_memory_over_full": held["cvpt_step"]["total"] / held["full_step"]["total"],
            "low_rank_checkpoint_over_full_model": sizes[f"cvpt_rank_{low_rank}"]
            / sizes["full_model"],
            "full_rank_checkpoint_over_full_model": sizes["cvpt_full_rank"] / sizes["full_model"],
            **(
                {
                    "cvpt_ckpt_step_over_full": med["cvpt_ckpt_step"] / med["full_step"],
                    "cvpt_ckpt_peak_over_full": peak["cvpt_ckpt_step"] / max(peak["full_step"], 1),
                    "cvpt_ckpt_tensor_memory_over_full": held["cvpt_ckpt_step"]["total"]
                    / held["full_step"]["total"],
                }
                if grad_checkpointing
                else {}
            ),
        },
    }
