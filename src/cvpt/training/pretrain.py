"""``cvpt pretrain``: a small VideoMAE-style ViT trained on raw, dense RGB video.

This is the "pre-trained on raw video" half of the paper's setting, in miniature: supervised
training on 16-frame RGB clips (stride 3) of the synthetic ``source`` task, saved as cvpt
safetensors that :func:`cvpt.load_backbone` reads, to be frozen and adapted to the compressed
``target`` task.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from cvpt.codec.rgb import read_rgb
from cvpt.data.splits import ListSplits, resolve_video
from cvpt.data.transforms import normalize_rgb
from cvpt.formats import Format
from cvpt.io import write_json
from cvpt.models.backbone_weights import save_backbone
from cvpt.models.registry import create_backbone
from cvpt.progress import tqdm
from cvpt.training.mae import MaskedAutoencoder
from cvpt.training.schedule import param_groups
from cvpt.training.step import TrainStep, classification_loss

PRETRAIN_RESULT = Format("cvpt-pretrain-result", 1)  # OUT.json beside the backbone

FRAMES, STRIDE = 16, 3  # 16 frames spanning 46 of the 48: VideoMAE's 16-frame input, shorter


class RawClips(Dataset):
    """Dense RGB clips ``[3, 16, H, W]`` (ImageNet-normalised), decoded once and kept."""

    def __init__(self, root: Path, samples, *, train: bool, seed: int = 0):
        self.videos = [read_rgb(resolve_video(root, s.path)) for s in samples]
        self.labels = [s.label for s in samples]
        self.train, self.seed = train, seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, i: int):
        v = self.videos[i]
        span = (FRAMES - 1) * STRIDE + 1
        spare = max(0, len(v) - span)
        rng = np.random.default_rng([self.seed, self.epoch, i])
        start = int(rng.integers(spare + 1)) if self.train else spare // 2
        idx = np.minimum(np.arange(start, start + span, STRIDE), len(v) - 1)
        x = normalize_rgb(v[idx])
        return torch.from_numpy(x.transpose(3, 0, 1, 2).copy()), self.labels[i]


def pretrain(
    data: str | Path,
    out: str | Path,
    *,
    backbone: str = "vit_tiny",
    depth: int = 4,
    epochs: int = 30,
    batch_size: int = 16,
    lr: float = 1e-3,
    weight_decay: float = 0.05,
    seed: int = 0,
    masked: bool = False,
    mask_ratio: float = 0.9,
    progress: bool = True,
) -> dict:
    """Train on ``data`` (a ``cvpt synth --task source`` folder, or any list dataset) and save
    the backbone (without its head) to ``out``; returns the run's numbers. ``masked``: VideoMAE's
    self-supervised objective (tube masking at ``mask_ratio``, pixel reconstruction; labels
    unused) instead of supervised classification."""
    torch.manual_seed(seed)
    data = Path(data)
    splits = ListSplits(data)
    train = RawClips(data, splits.samples("train"), train=True, seed=seed)
    test = RawClips(data, splits.samples("test"), train=False, seed=seed)
    classes = len(splits.classes)
    model = create_backbone(
        backbone,
        depth=depth,
        num_classes=classes,
        num_frames=FRAMES,
        img_size=int(train.videos[0].shape[1]),
    )
    mae = MaskedAutoencoder(model, mask_ratio=mask_ratio) if masked else None
    trained = mae if masked else model
    # cvpt train's parameter groups (no decay on norms and biases, as VideoMAE) and step
    opt = torch.optim.AdamW(param_groups(trained, weight_decay), lr=lr)
    steps = epochs * -(-len(train) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    gen = torch.Generator().manual_seed(seed)

    def loss_fn(net, batch):
        x, y = batch
        return net(x, gen) if masked else classification_loss(net(x), y)

    step = TrainStep(trained, opt, sched, loss_fn=loss_fn)
    loader = DataLoader(train, batch_size=batch_size, shuffle=True, generator=gen)
    t0 = time.perf_counter()
    history = []
    for epoch in tqdm(range(epochs), desc="pretrain", unit="epoch", disable=not progress):
        train.epoch = epoch
        trained.train()
        losses = []
        batches = iter(loader)
        while (loss := step(batches)) is not None:
            losses.append(loss)
        history.append(float(np.mean(losses)))
    trained.eval()
    with torch.no_grad():
        if masked:  # held-out reconstruction loss (fixed masks)
            g = torch.Generator().manual_seed(seed)
            test_losses = [float(mae(x, g)) for x, _ in DataLoader(test, batch_size=64)]
        else:
            correct = sum(
                int((model(x).argmax(1) == y).sum()) for x, y in DataLoader(test, batch_size=64)
            )
    model.reset_classifier(0)  # the backbone is what is kept: a new task brings its own head
    save_backbone(model, out)
    result = {
        "backbone": backbone,
        "depth": depth,
        "epochs": epochs,
        "seed": seed,
        "lr": lr,
        "train_videos": len(train),
        "test_videos": len(test),
        "objective": "masked reconstruction" if masked else "supervised classification",
        "source_test_top1": None if masked else correct / len(test),
        "test_reconstruction_loss": float(np.mean(test_losses)) if masked else None,
        "seconds": time.perf_counter() - t0,
        "loss_per_epoch": history,
        "data": str(data),
    }
    write_json(Path(str(out) + ".json"), PRETRAIN_RESULT.stamp(result))
    return result
