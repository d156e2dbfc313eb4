"""Under Lightning itself (optional: skipped unless ``lightning`` or ``pytorch_lightning`` is
installed, e.g. beside the CPU torch with ``pip install pytorch-lightning``, which pulls no
other torch): a ``Trainer(max_epochs=2)`` re-iterates the DataLoader and never calls the
Dataset's ``set_epoch``; each epoch must still get other clips and crops."""

from __future__ import annotations

import importlib

import pytest
import torch
from torch.utils.data import DataLoader

import cvpt


def _lightning():
    for name in ("lightning.pytorch", "pytorch_lightning"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    pytest.skip("neither lightning nor pytorch_lightning is installed")


def test_lightning_epochs_see_other_clips(motion_dataset):
    pl = _lightning()
    splits = cvpt.open_splits("list", motion_dataset)
    ds = cvpt.CompressedVideoDataset(
        motion_dataset / "videos", splits.samples("train"), train=True, size=32, short_side=32
    )
    seen: dict[int, dict[int, torch.Tensor]] = {}

    class Module(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def training_step(self, batch, _):
            got = seen.setdefault(self.current_epoch, {})
            got.update(zip(batch["index"].tolist(), batch["mvs"], strict=True))
            return (self.w * batch["mvs"].mean()).sum()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.0)

    loader = DataLoader(ds, batch_size=4, shuffle=True, collate_fn=cvpt.collate)
    trainer = pl.Trainer(
        max_epochs=2,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(Module(), loader)
    assert sorted(seen) == [0, 1] and sorted(seen[0]) == sorted(seen[1]) == list(range(len(ds)))
    for i in range(len(ds)):
        assert not torch.equal(seen[0][i], seen[1][i]), i
        assert torch.equal(seen[1][i], ds[(1, i)]["mvs"])  # pass 1 draws what set_epoch(1) would
