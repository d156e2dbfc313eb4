"""One optimiser step for every training loop: ``cvpt train``, the demo, ``cvpt pretrain`` and
``cvpt bench model`` (nanoGPT's loop, as a class).

A step: zero the gradients; for each of ``accum`` micro-batches, the forward pass and the loss
under the run's precision (bf16 autocast when ``amp``) and the backward pass of loss / accum
(DDP synchronises the gradients on the last micro-batch only); clip the tuned parameters'
gradient norm when asked; the optimiser step; the scheduler step. A fix here (precision,
accumulation, clipping) reaches every loop; the optimiser's parameter groups come from
:func:`cvpt.training.schedule.param_groups` everywhere.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger("cvpt")
_SUBNORMALS_WARNED: set = set()


def classification_loss(
    logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float = 0.0
) -> torch.Tensor:
    """Cross-entropy computed in float32 whatever precision the forward pass ran in."""
    return F.cross_entropy(logits.float(), labels, label_smoothing=label_smoothing)


def use_amp(requested: bool, device: torch.device | str) -> bool:
    """bf16 autocast runs on CUDA only: on CPUs it is slower and changes the numbers."""
    return requested and torch.device(device).type == "cuda"


def prepare_precision(model, device, *, amp: bool, frozen_bf16: bool = True) -> bool:
    """``cvpt train``'s precision for ``model`` on ``device``: whether bf16 autocast is on, and
    with it (and ``frozen_bf16``) the frozen matmul weights stored in bf16 (autocast casts them
    at every use anyway: same results, less memory)."""
    amp = use_amp(amp, device)
    if amp and frozen_bf16:
        model.cast_frozen_weights(torch.bfloat16)
    return amp


def flush_denormals(device: torch.device | str, enabled: bool = True) -> bool:
    """On a CPU, compute float32 values below 1.2e-38 (subnormals) as zero: flush-to-zero and
    denormals-are-zero, as TensorFlow's and XLA's CPU thread pools do by default
    (``enabled=False`` restores IEEE behaviour). x86 cores take a slow path on every subnormal
    operand, and a pre-trained backbone's activations and gradients hold many: the demo's
    steps on its pre-trained tiny ViT ran 1.4–1.5× slower with them (a CVPT epoch 4.6 s against
    3.1 s, 2 threads; on a random backbone 1.05×).
    Values that small are far below float32's resolution of anything a network adds them to.

    The flag is per thread, and threads copy it when they are created: it reaches torch's CPU
    worker threads only if they start after this call, so call it before the process's first
    parallel torch operation (the training commands do). Returns whether every worker thread
    computes the requested way (checked on a tensor of subnormals); ``True`` on CUDA, where
    nothing changes (GPUs compute subnormals at full speed)."""
    if torch.device(device).type != "cpu":
        return True
    if enabled:  # numpy computes (and caches) its float limits on first use; with subnormals
        for t in (np.float16, np.float32, np.float64, np.longdouble):  # flushed, numpy 2.0
            np.finfo(t)  # warns "smallest subnormal ... is zero" (matplotlib's import asks)
    if not torch.set_flush_denormal(enabled):  # a CPU without FTZ/DAZ: IEEE on every thread
        _warn_once("cpu", "this CPU cannot flush subnormal floats to zero: they stay (slower)")
        return not enabled
    # the probe runs on as many threads as the machine has cores (or torch uses, if more): a
    # worker started earlier takes part even when torch is set to fewer threads right now
    threads = torch.get_num_threads()
    torch.set_num_threads(max(threads, os.cpu_count() or 1))
    try:
        # 5.9e-39 from its bits (a float literal would be flushed on its way in), large enough
        # that torch splits the product over every worker thread
        subnormal = torch.full((1 << 18,), 0x00400000, dtype=torch.int32).view(torch.float32)
        # compared by its bits: under denormals-are-zero, a subnormal also compares equal to 0
        zero = (subnormal * 1.0).view(torch.int32) == 0
    finally:
        torch.set_num_threads(threads)
    everywhere = bool(zero.all()) if enabled else not bool(zero.any())
    if not everywhere:
        _warn_once(
            enabled,
            f"subnormal floats {'flushed to zero' if enabled else 'kept'} on this thread only: "
            "torch's CPU worker threads started earlier in this process keep their setting (set "
            "it at the start of a process)",
        )
    return everywhere


def _warn_once(key, message: str) -> None:
    """Log ``message`` the first time ``key`` comes up in this process (loops call often)."""
    if key not in _SUBNORMALS_WARNED:
        _SUBNORMALS_WARNED.add(key)
        log.warning(message)


class TrainStep:
    """``step(batches) → mean loss`` (a float), or None when ``batches`` ran out first.

    ``loss_fn(module, batch) → scalar loss`` runs the forward pass (``module`` is ``ddp`` when
    given, else ``model``); ``batches`` is an iterator, read ``accum`` items per step.
    ``grad_clip`` clips the global norm of the parameters that require gradients.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler=None,
        *,
        loss_fn: Callable,
        accum: int = 1,
        grad_clip: float | None = None,
        amp: bool = False,
        ddp: nn.Module | None = None,
    ):
        if accum < 1:
            raise ValueError(f"accum must be ≥ 1, got {accum}")
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.loss_fn, self.accum, self.grad_clip, self.amp = loss_fn, accum, grad_clip, amp
        self.ddp = ddp
        self.device_type = next(model.parameters()).device.type

    def __call__(self, batches: Iterator) -> float | None:
        self.optimizer.zero_grad(set_to_none=True)
        total = 0.0
        module = self.ddp if self.ddp is not None else self.model
        for k in range(self.accum):
            batch = next(batches, None)
            if batch is None:
                return None
            last = k == self.accum - 1
            sync = contextlib.nullcontext() if last or self.ddp is None else self.ddp.no_sync()
            with sync:
                with torch.autocast(self.device_type, torch.bfloat16, enabled=self.amp):
                    loss = self.loss_fn(module, batch)
                (loss / self.accum if self.accum > 1 else loss).backward()
            total += loss.item() / self.accum
        if self.grad_clip:
            torch.nn.utils.clip_grad_norm_(
                [p for p in self.model.parameters() if p.requires_grad], self.grad_clip
            )
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        return total
