"""Peak tensor memory of a piece of work on any device, CPU included.

PyTorch reports an allocator peak only for CUDA (``torch.cuda.max_memory_allocated``). On a CPU
the resident set is no substitute: glibc keeps freed pages in the heap and reuses them, so it
says more about the allocator's history than about the work. :class:`PeakTensorMemory` counts
what the work itself holds: every tensor storage an operator creates while the mode is active,
alive until its last reference goes. Its peak is what ``max_memory_allocated`` minus the level
at entry would report, without the allocator's block rounding and without buffers an operator
allocates and frees inside its own kernel (a CUDA run's figure is a little higher for both).
"""

from __future__ import annotations

import torch
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves


class PeakTensorMemory(TorchDispatchMode):
    """``with PeakTensorMemory() as mem: work()`` → ``mem.peak``: the most bytes that storages
    created inside the block held at once (after any operator); ``mem.current``: what they hold
    now. Views and in-place results share their storage and are counted once; storages that
    existed before the block (weights, inputs) are not counted. Works for forward, backward
    (autograd runs its operators under the mode) and optimiser steps alike.

    ``breakdown=True`` also keeps ``peak_by_op``: at the peak, the bytes held per operator that
    created them (``"aten.mm.default"``: …), which says what the peak is made of (slower).
    """

    def __init__(self, breakdown: bool = False) -> None:
        super().__init__()
        # keyed by the storage's address; the weak reference keeps that address from being
        # reused by another storage while we hold it
        self._live: dict[int, tuple[StorageWeakRef, int, str]] = {}  # ours: (ref, bytes, op)
        self._outside: dict[int, StorageWeakRef] = {}  # storages we did not see created
        self._bytes = 0
        self.peak = 0
        self.breakdown = breakdown
        self.peak_by_op: dict[str, int] = {}

    @property
    def current(self) -> int:
        """Bytes held now by the storages created inside the block."""
        self._release_dead()
        return self._bytes

    def _release_dead(self) -> None:
        for key in [k for k, (ref, *_) in self._live.items() if ref.expired()]:
            self._bytes -= self._live.pop(key)[1]
        for key in [k for k, ref in self._outside.items() if ref.expired()]:
            del self._outside[key]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        self._release_dead()  # what was freed since the last operator, before its outputs
        # an in-place update of a weight returns the weight, which must not count
        for ref, _ in _storages((args, kwargs)):
            if ref.cdata not in self._live:
                self._outside.setdefault(ref.cdata, ref)
        out = func(*args, **kwargs)
        for ref, nbytes in _storages(out):
            if ref.cdata not in self._live and ref.cdata not in self._outside:
                self._live[ref.cdata] = (ref, nbytes, str(func))
                self._bytes += nbytes
        if self._bytes > self.peak:
            self.peak = self._bytes
            if self.breakdown:
                self.peak_by_op = {}
                for _, nbytes, op in self._live.values():
                    self.peak_by_op[op] = self.peak_by_op.get(op, 0) + nbytes
        return out


def _storages(tree) -> list[tuple[StorageWeakRef, int]]:
    """``(weak reference, bytes)`` of the storage behind every dense tensor in ``tree``."""
    found = []
    for t in tree_leaves(tree):
        if isinstance(t, torch.Tensor) and t.layout == torch.strided:
            storage = t.untyped_storage()
            found.append((StorageWeakRef(storage), storage.nbytes()))
    return found
