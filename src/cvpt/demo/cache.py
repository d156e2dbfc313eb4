"""Clips read once and kept as tensors, so that a demo trains many models without decoding.

Each training video contributes ``train_views`` train-mode clips (random P positions per third,
keyed by (seed, view, video) exactly as ``cvpt train`` draws them for epoch = view); each test
video its test-mode clip. Tensors are float16 after normalisation (half the memory of float32;
the models compute in float32), stored as one safetensors file per subset beside the videos.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch.utils.data import DataLoader

from cvpt.codec.probe import probe
from cvpt.data.dataset import CompressedVideoDataset, worker_init
from cvpt.data.splits import ListSplits
from cvpt.data.transforms import MODALITIES
from cvpt.formats import Format
from cvpt.io import atomic_output
from cvpt.progress import tqdm

# the header of a cache/*.safetensors file (its "settings": what the clips were read with)
DEMO_CACHE = Format("cvpt-demo-cache", 1)


@dataclass
class ClipTensors:
    """``iframes [N,3,T_I,S,S]``, ``mvs [N,2,T_P,S,S]``, ``residuals [N,3,T_P,S,S]`` (float16),
    ``labels int64 [N]``; ``views`` clips per video, stored video-major (row = video·views + v)."""

    iframes: torch.Tensor
    mvs: torch.Tensor
    residuals: torch.Tensor
    labels: torch.Tensor
    views: int

    @property
    def videos(self) -> int:
        return len(self.labels) // self.views

    def rows(self, view: int) -> torch.Tensor:
        """Row of every video's clip number ``view`` (mod ``views``)."""
        return torch.arange(self.videos) * self.views + view % self.views

    def batch(self, rows: torch.Tensor, device=None) -> tuple[dict, torch.Tensor]:
        """Model inputs (float32) and labels of ``rows``, on ``device``."""
        x = {k: getattr(self, k)[rows].to(device).float() for k in MODALITIES}
        return x, self.labels[rows].to(device)

    def nbytes(self) -> int:
        return sum(getattr(self, k).nbytes for k in MODALITIES)


def load_clips(
    root: str | Path,
    subset: str,
    *,
    train_views: int = 4,
    seed: int = 0,
    mv_clip: float = 20.0,
    workers: int = 0,
    progress: bool = True,
) -> ClipTensors:
    """The clips of ``subset`` ("train" or "test") of a list dataset at ``root`` (e.g. from
    ``cvpt synth``), read and cached in ``root/cache/`` on first use, by ``workers`` spawned
    processes (0: in this one; the clips and their order do not depend on it; a script that
    asks for workers needs the ``if __name__ == "__main__":`` guard of spawned processes)."""
    root = Path(root)
    train = subset == "train"
    views = train_views if train else 1
    samples = ListSplits(root).samples(subset)
    # the list's content is part of the key: the same folder re-synthesised with another video
    # count has other train/test lists, and must not reuse clips of the old ones
    listed = zlib.crc32("\n".join(f"{s.path} {s.label}" for s in samples).encode())
    key = {"subset": subset, "views": views, "seed": seed, "mv_clip": mv_clip, "list": listed}
    name = "_".join(f"{k}{v}" for k, v in key.items())
    path = root / "cache" / f"{name}.safetensors"
    if path.exists():
        with safe_open(str(path), "pt") as f:
            DEMO_CACHE.upgrade(f.metadata() or {}, path)  # its layout has not changed
        t = load_file(path)
        return ClipTensors(**{k: t[k] for k in (*MODALITIES, "labels")}, views=views)
    size = _frame_size(root, samples[0].path)
    ds = CompressedVideoDataset(
        root, samples, train=train, size=size, short_side=size, flip=False, seed=seed,
        mv_clip=mv_clip,
    )  # fmt: skip
    # filled in place, float16: a list of float32 clips stacked at the end would hold 4× the
    # cache at its peak (the default demo's 1 GB cache peaked at 4.1 GB that way)
    tensors: dict[str, torch.Tensor] = {}
    labels = torch.empty(len(ds) * views, dtype=torch.int64)
    # row = video·views + view; a train clip's P positions are keyed by (seed, view, video)
    keys = [(v, i) if train else i for i in range(len(ds)) for v in range(views)]
    items = DataLoader(
        ds, batch_size=None, sampler=keys, num_workers=workers, worker_init_fn=worker_init,
        # spawn: a forked worker can inherit thread pools locked by the parent (dataset.py)
        multiprocessing_context="spawn" if workers > 0 else None,
    )  # fmt: skip
    bar = tqdm(items, total=len(keys), desc=f"read {subset} clips", unit="clip",
               disable=not progress)  # fmt: skip
    for row, item in enumerate(bar):
        if item["failed"]:  # replaced by another video: a cache must hold what it says
            raise RuntimeError(f"{root}: could not read {item['failed']}")
        for k in MODALITIES:
            x = item[k] if train else item[k][0]
            if k not in tensors:
                tensors[k] = torch.empty((len(labels), *x.shape), dtype=torch.float16)
            tensors[k][row] = x
        labels[row] = item["label"]
    tensors["labels"] = labels
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path) as tmp:
        save_file(
            tensors, str(tmp), metadata=DEMO_CACHE.stamp_metadata({"settings": json.dumps(key)})
        )
    return ClipTensors(**tensors, views=views)


def _frame_size(root: Path, rel: str) -> int:
    """The synthetic videos are square; the model sees them whole (no crop, no flip: a flip
    would turn "right" into "left")."""
    info = probe(root / rel)
    if info.width != info.height:
        size = f"{info.width}x{info.height}"
        raise ValueError(f"{root / rel}: the demo expects square videos, got {size}")
    return info.width
