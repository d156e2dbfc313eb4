"""A dataset of prepared videos, read in the compressed domain.

Randomness is a function of ``(seed, epoch, index)``, never of which worker or which process
reads a video: the same run gives the same clips with 0 or 8 workers, with 1 or 4 GPUs, and
after a resume (``cvpt train`` keys items by ``(epoch, index)``; a loop of one's own calls
``set_epoch``). A loop that never calls ``set_epoch`` (Lightning, accelerate, a plain ``for
epoch`` loop) still gets new clips on each pass over the data: see :class:`_Passes`.

A video that fails to decode is replaced by another sample (chosen by the same rule) and
reported with the batch, so that the run can count and list every skipped file.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from cvpt.codec.reader import count_gops, read_clip
from cvpt.codec.sampling import ClipSpec, view_start_gops
from cvpt.data.splits import Sample, resolve_video
from cvpt.data.transforms import INPUT_KEYS, ClipTransform
from cvpt.errors import DataError, VideoError

log = logging.getLogger("cvpt.data")
MAX_REPLACEMENTS = 10  # a sample whose 10 substitutes all fail is a dataset-wide problem


class CompressedVideoDataset(Dataset):
    """Prepared videos as model inputs, read in the compressed domain.

    ``dataset[index]`` (or ``dataset[(epoch, index)]``, what :class:`EpochSampler` yields) is a
    dict of float32 tensors ``iframes [3, 4, S, S]``, ``mvs [2, 12, S, S]``, ``residuals
    [3, 12, S, S]`` (train), or ``[V, ...]`` stacks of V = views × crops clips (eval), plus
    ``label`` (int), ``index`` (the sample actually read) and ``failed`` (``(path, reason)`` of
    each video that failed to decode and was replaced by another sample). Batch it with
    :func:`collate` (PyTorch's default collate cannot stack the ``failed`` lists).

    ``train=True``: random start GOP and P positions, multi-scale crop, flip (unless
    ``flip=False``, e.g. SSv2), all drawn from ``(seed, epoch, index)``: call
    :meth:`set_epoch` before each epoch when indexing by ``int`` (a plain ``DataLoader``), or
    key by ``(epoch, index)``. Without either, each pass over the data draws new clips all
    the same (a pass ends where an index comes again), so loops that re-iterate a
    ``DataLoader`` without calling ``set_epoch`` (Lightning, accelerate) lose no augmentation;
    in ``DataLoader`` workers those draws also depend on the worker's seed (reproducible under
    ``torch.manual_seed``, but not the same as with 0 workers), in a distributed run on the
    rank.

    ``train=False``: ``views`` clips spread over the video × ``crops`` (1 or 3) crops, the
    same every epoch. ``clip`` (:class:`ClipSpec`, the paper's 4 GOPs × 3 P-frames by
    default: T_I = 4, T_P = 12) is handed to every :func:`read_clip`.
    ``compact=True``: uint8 I-frames, int16 residuals, the motion's cells and maps, for
    :func:`cvpt.data.transforms.normalize_inputs` to make float32 on the device (what
    ``cvpt train`` does: a worker makes and sends half the bytes).

    Raises :class:`cvpt.errors.DataError` for an empty sample list, or when a sample and its
    10 substitutes all fail (a dataset-wide problem).
    """

    def __init__(
        self,
        root: str | Path,
        samples: list[Sample],
        *,
        train: bool,
        size: int = 224,
        short_side: int = 256,
        flip: bool = True,
        views: int = 1,
        crops: int = 1,
        seed: int = 0,
        clip: ClipSpec | None = None,
        mv_clip: float = 20.0,
        twins: bool = True,
        compact: bool = False,
    ):
        if not samples:
            raise DataError(f"{root}: no samples to read")
        self.root, self.samples, self.train = Path(root), samples, train
        self.views, self.seed, self.epoch = views, seed, 0
        self._epoch_set = False  # set_epoch called: its epoch wins over counted passes
        self._passes: _Passes | None = None  # this process's passes (made on first read)
        self._rank: int | None = None  # the rank of the process that pickled this copy
        self.clip = clip or ClipSpec()
        self.transform = ClipTransform(
            size=size,
            short_side=short_side,
            train=train,
            flip=flip,
            crops=crops,
            mv_clip=mv_clip,
            compact=compact,
        )
        self.twins = twins  # read a listed video's prepared .mp4 twin (splits.resolve_video)

    def set_epoch(self, epoch: int) -> None:
        """The epoch whose random clips ``dataset[index]`` draws (``(epoch, index)`` keys carry
        their own). With ``persistent_workers=True`` the workers keep their copy: use
        :class:`EpochSampler` there. Once called, passes are no longer counted."""
        self.epoch, self._epoch_set = epoch, True

    def __len__(self) -> int:
        return len(self.samples)

    def __getstate__(self) -> dict:
        """The state a DataLoader sends to a ``spawn`` / ``forkserver`` worker, with this
        process's rank: torch.distributed is not initialised in such a worker, so it could not
        tell its rank otherwise (and the ranks, whose worker seeds agree under one seed, would
        draw each other's clips)."""
        return {**self.__dict__, "_rank": process_rank()}

    def __getitem__(self, key: tuple[int, int] | int) -> dict:
        if isinstance(key, tuple):
            epoch, index = key
            entropy = [self.seed, epoch, index]
        else:
            index = key
            entropy = [self.seed, *self._epoch_of(index)]
        failed: list[tuple[str, str]] = []
        rng = np.random.default_rng(entropy)
        target = index
        for _ in range(MAX_REPLACEMENTS + 1):
            sample = self.samples[target]
            try:
                item = self._load(sample, rng)
                item.update(label=sample.label, index=target, failed=failed)
                return item
            except VideoError as e:
                failed.append((str(self.root / sample.path), e.reason))
                log.warning("skipping %s: %s", self.root / sample.path, e.reason)
                target = int(rng.integers(len(self.samples)))
        raise DataError(
            f"{MAX_REPLACEMENTS + 1} videos in a row failed to decode, e.g. "
            + "; ".join(f"{p}: {r}" for p, r in failed[:3])
        )

    def _epoch_of(self, index: int) -> list[int]:
        """``[epoch, index]`` to seed the draws of ``dataset[index]``: the :meth:`set_epoch`
        epoch, or (training, never set) this process's pass over the data, and in a
        DataLoader worker that worker's seed too (:class:`_Passes`)."""
        if self._epoch_set or not self.train:
            return [self.epoch, index]
        info = torch.utils.data.get_worker_info()
        dist = torch.distributed
        initialised = dist.is_available() and dist.is_initialized()
        # a worker's copy carries its parent's rank (__getstate__); a forked one has dist too
        rank = dist.get_rank() if initialised else getattr(self, "_rank", None)
        token = (None if info is None else int(info.seed), process_rank() if rank is None else rank)
        if self._passes is None or self._passes.token != token:
            self._passes = _Passes(token, len(self.samples))
        return self._passes.key(index)

    def _load(self, sample: Sample, rng: np.random.Generator) -> dict:
        path = resolve_video(self.root, sample.path, twins=self.twins)
        if path is None:
            raise VideoError(self.root / sample.path, "listed in the annotations but not found")
        if self.train:
            return self.transform(read_clip(path, self.clip, train=True, rng=rng), rng)
        return read_views(path, self.transform, self.views, self.clip)


def process_rank() -> int:
    """This process's rank in a distributed run: torch.distributed's when initialised, else
    the ``RANK`` that torchrun (and Lightning, accelerate) set in the environment, else 0."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    try:
        return int(os.environ.get("RANK", 0))
    except ValueError:  # not a number: not a rank torchrun set
        return 0


class _Passes:
    """Counts one process's passes over a dataset whose ``set_epoch`` is never called.

    A pass ends where an index comes again: ``key(i)`` starts pass ``p + 1`` when ``i`` was
    read in pass ``p``. So no ``(pass, index)`` is drawn twice in one process, whatever the
    sampler (shuffled, distributed and padded, a subset, an iterator abandoned mid-epoch).
    The main process (0 workers) has no other clue, and its pass ``p`` draws what
    ``set_epoch(p)`` would. A DataLoader worker is a new copy for each iterator (unless
    ``persistent_workers``), which starts counting again from 0: its key also holds the
    worker's seed, drawn anew by each iterator and different for each worker, so two passes
    (or two workers) never share a key. ``token`` is ``(worker seed or None, process rank)``:
    the ranks of a distributed run (whose worker seeds may agree) each read other indices each
    epoch, and their keys differ by rank too."""

    def __init__(self, token: tuple[int | None, int], n: int):
        self.token, self.epoch = token, 0
        self.seen = bytearray(n)  # 1 where the index was read in this pass

    def key(self, index: int) -> list[int]:
        if self.seen[index]:
            self.epoch += 1
            self.seen = bytearray(len(self.seen))
        self.seen[index] = 1
        seed, rank = self.token
        if seed is None and rank == 0:  # one process: pass p is epoch p
            return [self.epoch, index]
        return [self.epoch, index, int(seed is not None), seed or 0, rank]


def read_views(
    path: str | Path, transform: ClipTransform, clips: int, spec: ClipSpec | None = None
) -> dict[str, torch.Tensor]:
    """Multi-view testing input of one video: ``clips`` clips (each as ``spec`` says, the
    paper's by default) spread evenly over it, each cut into ``transform.crops`` crops: tensors
    ``[V, C, T, S, S]``, V = clips × crops (clip-major). Raises :class:`cvpt.VideoError`
    (naming the file) when the video cannot be read."""
    spec = spec or ClipSpec()
    if clips == 1:  # the centred clip: read_clip's test mode finds it with the same rule
        starts = [None]
    else:
        starts = view_start_gops(count_gops(path, spec.gop_size), spec.num_gops, clips)
    return write_views(transform, (read_clip(path, spec, start_gop=s) for s in starts), len(starts))


def write_views(transform: ClipTransform, clips: Iterable, n: int) -> dict[str, torch.Tensor]:
    """The views of ``n`` clips, read one at a time from ``clips``, written in place into one
    ``[n × views per clip, ...]`` output (no stacking copy); every clip of one video has the
    same frame size, so the first sizes the output (compact motion's cells included)."""
    out, done = None, 0
    for clip in clips:
        if out is None:
            cells = transform.cells(clip) if transform.compact else None
            views = n * transform.views_per_clip
            out = transform.empty(views, len(clip.iframes), len(clip.mv_grid), cells)
        done += transform.write(clip, out, done)
    return out


def collate(items: list[dict]) -> dict:
    """Batch dataset items: tensors stacked (``[B, ...]``, :func:`stack_views`), ``label`` and
    ``index`` as ``[B]`` int64, ``failed`` one flat list of every ``(path, reason)`` replaced on
    the way."""
    out = stack_views(items)
    out["label"] = torch.tensor([it["label"] for it in items])
    out["index"] = torch.tensor([it["index"] for it in items])
    out["failed"] = [f for it in items for f in it["failed"]]
    return out


def stack_views(items: list[dict]) -> dict[str, torch.Tensor]:
    """The model-input tensors of ``items`` stacked ``[B, ...]``: the three modalities, and a
    compact view's ``mv_rows`` / ``mv_cols`` (its motion cells padded with zeros to the largest
    item's, which no index reads). In a DataLoader worker they are stacked straight into shared
    memory (as PyTorch's default collate does), not stacked and then copied there when the
    batch is sent."""
    shared = torch.utils.data.get_worker_info() is not None
    out = {}
    for k in INPUT_KEYS:
        if k not in items[0]:
            continue
        xs = [it[k] for it in items]
        shape = [max(x.shape[d] for x in xs) for d in range(xs[0].dim())]
        dst = None
        if shared:
            n = len(xs) * math.prod(shape)
            storage = xs[0]._typed_storage()._new_shared(n, device=xs[0].device)
            dst = xs[0].new(storage).view(len(xs), *shape)
        if any(list(x.shape) != shape for x in xs):  # compact motion of other sizes
            dst = torch.zeros((len(xs), *shape), dtype=xs[0].dtype) if dst is None else dst.zero_()
            for j, x in enumerate(xs):
                dst[j][tuple(slice(0, n) for n in x.shape)] = x
            out[k] = dst
        else:
            out[k] = torch.stack(xs, out=dst)
    return out


class EpochSampler(Sampler):
    """Yields ``(epoch, index)``: a permutation seeded by ``(seed, epoch)`` (train) or the
    order itself (eval), this rank's share of it (every ``world``-th from ``rank``, padded to
    equal length), from position ``start`` (batches already done before a resume)."""

    def __init__(self, n: int, *, shuffle: bool, seed: int = 0, rank: int = 0, world: int = 1):
        self.n, self.shuffle, self.seed, self.rank, self.world = n, shuffle, seed, rank, world
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def order(self) -> list[int]:
        idx = (
            np.random.default_rng([self.seed, self.epoch]).permutation(self.n)
            if self.shuffle
            else np.arange(self.n)
        ).tolist()
        per_rank = -(-self.n // self.world)
        idx += idx[: per_rank * self.world - self.n]  # pad so every rank has as many
        return idx[self.rank :: self.world]

    def __iter__(self):
        for i in self.order()[self.start :]:
            yield (self.epoch, i)

    def __len__(self) -> int:
        return len(self.order()) - self.start


def worker_init(_worker_id: int) -> None:
    """One thread per worker for torch and OpenCV: workers already use every core. SIGTERM and
    SIGINT sent to the whole process group are ignored here: the training process stops at its
    next step boundary with a checkpoint, and needs its workers until then."""
    import signal

    import cv2

    for s in (signal.SIGTERM, signal.SIGINT):
        signal.signal(s, signal.SIG_IGN)  # also drops one held while the worker started
    # started with them blocked (cvpt.training.preempt.signals_held): ignored from now on
    signal.pthread_sigmask(signal.SIG_UNBLOCK, (signal.SIGTERM, signal.SIGINT))
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
