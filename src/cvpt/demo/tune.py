"""Tune and evaluate one method on cached clips: the paper's recipe (AdamW, warm-up then
cosine, no decay on norms/biases/ω), sized for two CPU cores."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from cvpt.demo.cache import ClipTensors
from cvpt.models.factory import create_model
from cvpt.models.methods import get_method
from cvpt.training.schedule import make_optimizer
from cvpt.training.step import TrainStep, classification_loss, flush_denormals


@dataclass
class Variant:
    """One row of a demo table: a method, its options and the backbone it starts from."""

    name: str
    method: str
    options: dict = field(default_factory=dict)
    pretrained: bool = True  # False: a randomly initialised backbone (frozen unless "full")
    lr: float | None = None  # None: the suite's lr for this kind of method


@dataclass
class TuneSettings:
    """What every variant of one demo shares."""

    backbone: str = "vit_tiny"
    # random-backbone variants: the demo sets the checkpoint's own architecture here
    backbone_options: dict = field(default_factory=lambda: {"depth": 4})
    backbone_checkpoint: str | None = None  # the pre-trained backbone; None: random
    epochs: int = 5
    batch_size: int = 32
    lr: float = 1e-2  # prompt / adapter / head methods: few weights, a larger step
    full_lr: float = 1e-3  # full fine-tuning: every weight moves (the paper's lr)
    weight_decay: float = 0.05
    warmup_epochs: int = 1
    # test top-1 after every k-th epoch and the last; 0: after the last only (the table's
    # number; every epoch's test pass cost a linear probe 40% of its run)
    eval_every: int = 0
    threads: int = 2
    flush_denormal: bool = True  # subnormals as zero on CPU: 1.4–1.5× faster (flush_denormals)
    device: str = "cpu"  # "cuda" runs the same loop on a GPU (clips stay cached on the CPU)


def build(variant: Variant, settings: TuneSettings, num_classes: int, seed: int):
    torch.manual_seed(seed)  # the random backbone and every new weight, per seed
    ckpt = settings.backbone_checkpoint if variant.pretrained else None
    return create_model(
        variant.method,
        backbone=settings.backbone,
        num_classes=num_classes,
        backbone_checkpoint=ckpt,
        # the key table of a checkpoint is printed once by the demo, not once per run
        backbone_options={"verbose": False} if ckpt else settings.backbone_options,
        **variant.options,
    )


def tune(
    variant: Variant,
    settings: TuneSettings,
    train: ClipTensors,
    test: ClipTensors,
    *,
    seed: int,
    num_classes: int,
    on_epoch=None,
) -> dict:
    """Train ``variant`` for ``settings.epochs`` on ``train`` (clip view = epoch), evaluating
    on ``test`` after the epochs ``settings.eval_every`` asks for and the last. Returns top-1
    (final epoch), the test curve (top-1 at ``curve_epochs``, 1-based), train loss per epoch,
    seconds."""
    torch.set_num_threads(settings.threads)
    device = torch.device(settings.device)
    flush_denormals(device, settings.flush_denormal)
    model = build(variant, settings, num_classes, seed).to(device)
    full = get_method(variant.method).trains_backbone  # every weight moves: its own lr
    lr = variant.lr or (settings.full_lr if full else settings.lr)
    steps_per_epoch = -(-train.videos // settings.batch_size)
    total = settings.epochs * steps_per_epoch
    opt, sched = make_optimizer(
        model, lr, settings.weight_decay, total, settings.warmup_epochs * steps_per_epoch
    )
    # cvpt train's step (float32 here, on CPU and CUDA alike: the published demo numbers)
    step = TrainStep(
        model,
        opt,
        sched,
        loss_fn=lambda net, batch: classification_loss(net(**batch[0]), batch[1]),
    )
    gen = torch.Generator().manual_seed(seed)
    curve, curve_epochs, losses = [], [], []
    t0 = time.perf_counter()
    for epoch in range(settings.epochs):
        model.train()
        rows = train.rows(epoch)[torch.randperm(train.videos, generator=gen)]
        batches = (train.batch(chunk, device) for chunk in rows.split(settings.batch_size))
        epoch_loss = []
        while (loss := step(batches)) is not None:
            epoch_loss.append(loss)
        losses.append(float(np.mean(epoch_loss)))
        every = settings.eval_every
        if epoch + 1 == settings.epochs or (every and (epoch + 1) % every == 0):
            curve.append(evaluate(model, test, settings.batch_size * 4, device))
            curve_epochs.append(epoch + 1)
        if on_epoch is not None:
            on_epoch(epoch, losses[-1], curve[-1] if curve_epochs[-1:] == [epoch + 1] else None)
    counts = model.param_counts()
    return {
        "top1": curve[-1],
        "curve": curve,
        "curve_epochs": curve_epochs,
        "loss": losses,
        "seconds": time.perf_counter() - t0,
        "tunable_params": counts["tunable"],
        "tunable_params_without_embeddings": counts["tunable_without_embeddings"],
        "total_params": counts["total"],
        "lr": lr,
    }


@torch.no_grad()
def evaluate(model, test: ClipTensors, batch_size: int, device=None) -> float:
    """Top-1 on ``test`` (one clip per video)."""
    model.eval()
    correct = 0
    for chunk in torch.arange(len(test.labels)).split(batch_size):
        x, y = test.batch(chunk, device)
        correct += int((model(**x).argmax(1) == y).sum())
    return correct / len(test.labels)
