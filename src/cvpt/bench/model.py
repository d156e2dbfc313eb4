"""``cvpt bench model``: what the compressed model costs next to the raw-video backbone, in one
run.

- forward latency per clip (batch 1, inference): CVPT on 3N tokens (the model's clip,
  ``model.clip``: 4 I-frames + 12 P-frames by default) vs the backbone on RGB frames as
  published (VideoMAE: 16 frames, 1568 tokens; Video Swin: 32 frames), same backbone;
- train step (forward + backward + AdamW) and its peak memory: CVPT vs full fine-tuning, same
  batch and inputs;
- per-task checkpoint size (the tuned tensors as safetensors): CVPT with full-rank and low-rank
  prompt embeddings vs the whole model.
Cases are interleaved repeat by repeat; medians. Peak memory of a train step (the first, which
also allocates the optimiser state) is the CUDA allocator's peak on a GPU and the peak of live
tensor storages (:class:`~cvpt.bench.memory.PeakTensorMemory`) elsewhere. ``amp`` runs every
case under bf16 autocast as ``cvpt train`` does on CUDA (its default there).
"""

from __future__ import annotations

import contextlib
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file

from cvpt.bench.memory import PeakTensorMemory
from cvpt.codec.sampling import ClipSpec
from cvpt.io import atomic_output
from cvpt.models.factory import create_model
from cvpt.models.flops import model_inputs
from cvpt.models.registry import create_backbone
from cvpt.progress import tqdm
from cvpt.training.config import TrainConfig
from cvpt.training.schedule import param_groups
from cvpt.training.step import TrainStep, classification_loss


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass(frozen=True)
class StepCase:
    """One train step to measure: ``method`` on ``backbone`` at ``size``², ``batch`` random
    clips, AdamW on the tuned parameters, as ``cvpt train`` runs it."""

    method: str
    backbone: str = "vit_base"
    size: int = 224
    batch: int = 2
    num_classes: int = 51
    backbone_options: dict | None = None
    device: str = "cpu"
    grad_checkpointing: bool | int = False  # recompute (the first k) blocks in the backward
    amp: bool = False  # bf16 autocast (the trainer's default on CUDA)
    frozen_bf16: bool = True  # with amp: frozen matmul weights in bf16, as the trainer does
    clip: ClipSpec | None = None  # the model's clip geometry (None: the paper's, 4 GOPs × 3 P)

    def setup(self) -> tuple:
        """``(model, optimiser, inputs, labels)``: a fresh model (seed 0) in train mode."""
        dev = torch.device(self.device)
        torch.manual_seed(0)
        model = create_model(
            self.method,
            backbone=self.backbone,
            num_classes=self.num_classes,
            backbone_options=self.backbone_options or {},
            clip=self.clip,
        ).to(dev)
        model.set_grad_checkpointing(self.grad_checkpointing)
        if self.amp and self.frozen_bf16:  # as prepare_precision does where amp runs (CUDA)
            model.cast_frozen_weights(torch.bfloat16)
        # cvpt train's optimiser: AdamW, no weight decay on norms, biases or ω
        opt = torch.optim.AdamW(param_groups(model, TrainConfig.weight_decay), lr=1e-4)
        shapes = model_inputs(model, self.batch, size=self.size, device=dev)
        inputs = tuple(torch.randn_like(x) for x in shapes)
        labels = torch.randint(0, self.num_classes, (self.batch,), device=dev)
        return model.train(), opt, inputs, labels

    def loss(self, model, inputs, labels) -> torch.Tensor:
        """The training step's forward and loss (under its autocast), for the tensor split."""
        with torch.autocast(torch.device(self.device).type, torch.bfloat16, enabled=self.amp):
            return _loss(model, (inputs, labels))

    def step(self, model, opt, inputs, labels) -> None:
        """One step of cvpt train's :class:`TrainStep` (no scheduler: one step is measured)."""
        TrainStep(model, opt, loss_fn=_loss, amp=self.amp)(iter([(inputs, labels)]))


def _loss(model, batch) -> torch.Tensor:
    inputs, labels = batch
    return classification_loss(model(*inputs), labels)


def step_peak(case: StepCase, breakdown: bool = False) -> tuple[int, dict[str, int]]:
    """Peak memory a first train step adds to what the model holds (activations, gradients,
    AdamW state, temporaries): the CUDA allocator's peak on a GPU, live tensor storages
    elsewhere; with ``breakdown``, also what that peak is made of, bytes per operator that
    created them (live tensor storages on any device), largest first; else ``{}``."""
    model, opt, inputs, labels = case.setup()
    dev = torch.device(case.device)
    cuda = dev.type == "cuda"
    mem = PeakTensorMemory(breakdown=breakdown)
    if cuda:
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        base = torch.cuda.memory_allocated(dev)
    with mem if breakdown or not cuda else contextlib.nullcontext():
        case.step(model, opt, inputs, labels)
    peak = torch.cuda.max_memory_allocated(dev) - base if cuda else mem.peak
    return peak, dict(sorted(mem.peak_by_op.items(), key=lambda kv: -kv[1]))


def step_peak_bytes(case: StepCase) -> int:
    """:func:`step_peak` without the breakdown."""
    return step_peak(case)[0]


def step_tensor_bytes(case: StepCase) -> dict:
    """Exact bytes of what training holds besides the weights: activations saved for backward
    (unique storages, via saved-tensor hooks, plus every block's input, which is what a
    checkpointed block keeps), gradients, and AdamW's state after one step."""
    model, opt, inputs, labels = case.setup()
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(t):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in params:
            saved[ptr] = t.untyped_storage().nbytes()
        return t

    def block_input(_module, args):  # what a checkpointed block keeps instead (its input)
        streams = args[0] if isinstance(args[0], list | tuple) else [args[0]]  # Swin: a list
        for t in streams:
            pack(t)

    hooks = [blk.register_forward_pre_hook(block_input) for blk in model.backbone.blocks]
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = case.loss(model, inputs, labels)
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


def timed(fn, device) -> float:
    """Seconds ``fn()`` takes, CUDA work included (synchronised before and after)."""
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


def _size_of(tensors: dict[str, torch.Tensor]) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "ckpt.safetensors")
        save_file({k: v.contiguous() for k, v in tensors.items()}, path)
        return os.path.getsize(path)


def _settings(backbone, size, batch, num_classes, backbone_options, device, amp, frozen_bf16):
    """The :class:`StepCase` fields every case of a run shares; ``amp=None`` resolves to
    ``cvpt train``'s rule (bf16 autocast on CUDA only)."""
    return dict(
        backbone=backbone,
        size=size,
        batch=batch,
        num_classes=num_classes,
        backbone_options=backbone_options or {},
        device=device,
        amp=torch.device(device).type == "cuda" if amp is None else amp,
        frozen_bf16=frozen_bf16,
    )


def _run_info(settings: dict, repeats: int) -> dict:
    """What a result file says about the run it came from."""
    return {
        "backbone": settings["backbone"],
        "size": settings["size"],
        "batch": settings["batch"],
        "repeats": repeats,
        "device": str(torch.device(settings["device"])),
        "amp": settings["amp"],
        "frozen_bf16": settings["amp"] and settings["frozen_bf16"],
        "torch_threads": torch.get_num_threads(),
    }


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
    amp: bool | None = None,
    frozen_bf16: bool = True,
    breakdown: bool = False,
) -> dict:
    """Run the three comparisons; returns medians (seconds, bytes) and ratios. With
    ``grad_checkpointing``, CVPT with checkpointed backbone blocks is measured beside them.
    ``amp`` (bf16 autocast for every case): None = what ``cvpt train`` does, on for CUDA only;
    with it, ``frozen_bf16`` stores the frozen weights in bf16 as ``cvpt train`` does.
    ``breakdown`` adds what each case's peak is made of (:func:`step_peak`)."""
    dev = torch.device(device)
    common = _settings(
        backbone, size, batch, num_classes, backbone_options, device, amp, frozen_bf16
    )
    amp = common["amp"]
    cases = {"cvpt": StepCase("cvpt", **common), "full": StepCase("full", **common)}
    if grad_checkpointing:
        cases["cvpt_ckpt"] = StepCase("cvpt", grad_checkpointing=True, **common)
    trained = {name: case.setup() for name, case in cases.items()}
    cvpt_model, full_model = trained["cvpt"][0], trained["full"][0]
    bopts = backbone_options or {}
    rgb_model = create_backbone(backbone, num_classes=num_classes, **bopts).to(dev).eval()
    one = tuple(torch.randn_like(x) for x in model_inputs(cvpt_model, 1, size=size, device=dev))
    rgb_name, rgb_frames = rgb_model.raw_video.name, rgb_model.raw_video.frames
    rgb = torch.randn(1, 3, rgb_frames, size, size, device=dev)

    def infer(model, *x):
        with torch.no_grad(), torch.autocast(dev.type, torch.bfloat16, enabled=amp):
            model(*x)

    times: dict[str, list[float]] = {
        k: [] for k in ("cvpt_fwd", "rgb_fwd", *(f"{name}_step" for name in cases))
    }
    for r in range(repeats + 1):  # the first round warms up and is dropped
        row = {
            "cvpt_fwd": timed(lambda: infer(cvpt_model.eval(), *one), dev),
            "rgb_fwd": timed(lambda: infer(rgb_model, rgb), dev),
        }
        for name, (model, opt, inputs, labels) in trained.items():
            model.train()
            row[f"{name}_step"] = timed(
                lambda c=cases[name], a=(model, opt, inputs, labels): c.step(*a), dev
            )
        if r:
            for k, v in row.items():
                times[k].append(v)
    med = {k: statistics.median(v) for k, v in times.items()}
    # fresh models: a first step allocates the gradients and AdamW's state
    measured = {f"{name}_step": step_peak(case, breakdown) for name, case in cases.items()}
    peak = {name: bytes_ for name, (bytes_, _) in measured.items()}
    parts = {name: by_op for name, (_, by_op) in measured.items()}
    held = {f"{name}_step": step_tensor_bytes(case) for name, case in cases.items()}

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
    ratios = {
        "cvpt_forward_over_rgb": med["cvpt_fwd"] / med["rgb_fwd"],
        "cvpt_step_over_full": med["cvpt_step"] / med["full_step"],
        "cvpt_peak_over_full": peak["cvpt_step"] / max(peak["full_step"], 1),
        "cvpt_tensor_memory_over_full": held["cvpt_step"]["total"] / held["full_step"]["total"],
        "low_rank_checkpoint_over_full_model": sizes[f"cvpt_rank_{low_rank}"] / sizes["full_model"],
        "full_rank_checkpoint_over_full_model": sizes["cvpt_full_rank"] / sizes["full_model"],
    }
    if rgb_model.raw_video.legacy_ratio:  # its name in earlier result files
        ratios[rgb_model.raw_video.legacy_ratio] = ratios["cvpt_forward_over_rgb"]
    if grad_checkpointing:
        ratios |= {
            "cvpt_ckpt_step_over_full": med["cvpt_ckpt_step"] / med["full_step"],
            "cvpt_ckpt_peak_over_full": peak["cvpt_ckpt_step"] / max(peak["full_step"], 1),
            "cvpt_ckpt_tensor_memory_over_full": held["cvpt_ckpt_step"]["total"]
            / held["full_step"]["total"],
        }
    return {
        **_run_info(common, repeats),
        "peak_measure": "torch.cuda.max_memory_allocated"
        if dev.type == "cuda"
        else "live tensor storages (cvpt.bench.memory.PeakTensorMemory)",
        "rgb_reference": f"{rgb_name} RGB {rgb_frames}f",
        "median_seconds": med,
        "peak_bytes": peak,
        "tensor_bytes": held,
        **({"peak_breakdown_bytes": parts} if breakdown else {}),
        "checkpoint_bytes": sizes,
        "ratios": ratios,
    }


def sweep_checkpointing(
    backbone: str = "vit_base",
    *,
    size: int = 224,
    batch: int = 2,
    repeats: int = 3,
    num_classes: int = 51,
    device: str = "cpu",
    backbone_options: dict | None = None,
    amp: bool | None = None,
    frozen_bf16: bool = True,
) -> dict:
    """CVPT's train step with the first k backbone blocks checkpointed, k = 0..depth: median
    step time and first-step peak memory of each, over full fine-tuning's in the same run.
    Steps are interleaved round by round (one model, k switched between steps)."""
    dev = torch.device(device)
    common = _settings(
        backbone, size, batch, num_classes, backbone_options, device, amp, frozen_bf16
    )
    full_case, cvpt_case = StepCase("full", **common), StepCase("cvpt", **common)
    full, cvpt = full_case.setup(), cvpt_case.setup()
    depth = len(cvpt[0].backbone.blocks)
    times: dict[str, list[float]] = {"full": [], **{f"k{k}": [] for k in range(depth + 1)}}
    for r in tqdm(range(repeats + 1), desc="rounds (the first warms up)", leave=False):
        row = {"full": timed(lambda: full_case.step(*full), dev)}
        for k in range(depth + 1):
            cvpt[0].set_grad_checkpointing(k)
            row[f"k{k}"] = timed(lambda: cvpt_case.step(*cvpt), dev)
        if r:
            for name, t in row.items():
                times[name].append(t)
    med = {name: statistics.median(v) for name, v in times.items()}
    full_peak = step_peak_bytes(full_case)
    points = []
    for k in tqdm(range(depth + 1), desc="peak memory per k", leave=False):
        peak = step_peak_bytes(StepCase("cvpt", grad_checkpointing=k, **common))
        points.append(
            {
                "checkpointed_blocks": k,
                "step_seconds": med[f"k{k}"],
                "peak_bytes": peak,
                "step_over_full": med[f"k{k}"] / med["full"],
                "peak_over_full": peak / max(full_peak, 1),
            }
        )
    return {
        **_run_info(common, repeats),
        "full_step_seconds": med["full"],
        "full_peak_bytes": full_peak,
        "points": points,
    }


def plot_sweep(res: dict, out: str | Path, targets: tuple[float, float] = (0.75, 0.6)) -> None:
    """CVPT's peak memory against its step time, both over full fine-tuning's, one point per
    number of checkpointed blocks; the shaded box is where both targets hold."""
    from cvpt.training.plots import _plt

    plt = _plt()
    pts = res["points"]
    x = [p["step_over_full"] for p in pts]
    y = [p["peak_over_full"] for p in pts]
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    ax.add_patch(plt.Rectangle((0, 0), targets[0], targets[1], color="tab:green", alpha=0.12, lw=0))
    ax.plot(x, y, "o-", color="tab:orange", label="CVPT, first k blocks checkpointed")
    for p, xi, yi in zip(pts, x, y, strict=True):
        ax.annotate(str(p["checkpointed_blocks"]), (xi, yi), textcoords="offset points",
                    xytext=(5, 3), fontsize=8)  # fmt: skip
    ax.plot([1], [1], "s", color="tab:blue", label="full fine-tuning")
    ax.set_xlim(0.5, max(1.15, max(x) + 0.05))
    ax.set_ylim(0, 1.1)
    ax.set_xlabel("train step time / full fine-tuning's")
    ax.set_ylabel("peak memory of a first step / full fine-tuning's")
    precision = "bf16 autocast" if res["amp"] else "float32"
    ax.set_title(f"{res['backbone']}, batch {res['batch']}, {res['device']}, {precision}")
    ax.text(0.52, 0.03, f"targets: step ≤ {targets[0]}, memory ≤ {targets[1]}", fontsize=8)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    with atomic_output(out) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
