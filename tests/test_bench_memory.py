"""PeakTensorMemory: the CPU's stand-in for ``torch.cuda.max_memory_allocated``."""

from __future__ import annotations

import torch

from cvpt.bench.memory import PeakTensorMemory
from cvpt.bench.model import StepCase, step_peak_bytes, step_tensor_bytes

MB = 1000 * 1000 * 4  # bytes of a float32 [1000, 1000]


def test_counts_what_is_alive_at_once_and_sees_frees():
    x = torch.randn(1000, 1000, requires_grad=True)
    with PeakTensorMemory(breakdown=True) as mem:
        a = x * 2
        b = a * 3
        del a  # nothing saved it (a product with a number keeps no input)
        b.sum().backward()
    # b, the gradient flowing into a and x.grad were alive together; b and x.grad remain
    # (plus the sum and its gradient, a few bytes)
    assert 3 * MB <= mem.peak < 3 * MB + 64
    assert 2 * MB <= mem.current < 2 * MB + 64
    # what the peak is made of: the three products (b, and both gradients), a few bytes more
    assert sum(mem.peak_by_op.values()) == mem.peak
    assert mem.peak_by_op["aten.mul.Tensor"] == 3 * MB
    del b
    x.grad = None


def test_views_in_place_results_and_outside_storages_count_once_or_not_at_all():
    w = torch.zeros(1000, 1000)
    with PeakTensorMemory() as mem:
        w.add_(1)  # in place into a storage made before: not ours
        v = w.view(-1)[:10]  # a view of it: not ours either
        y = w.t().contiguous()  # a new storage
        z, zz = y[:10], y.view(-1)  # views of ours: counted once
        y.mul_(2)
    assert mem.current == mem.peak == MB
    assert v.shape == (10,) and z.shape == (10, 1000) and zz.numel() == 1000 * 1000


def test_backward_frees_the_activations_and_leaves_the_gradients():
    case = StepCase(
        "cvpt", backbone="vit_tiny", size=32, num_classes=7, backbone_options={"depth": 2}
    )
    model, _, inputs, labels = case.setup()
    with torch.no_grad():
        model(*inputs)  # fills the model's position-table cache, which would stay counted
    with PeakTensorMemory() as mem:
        loss = case.loss(model, inputs, labels)
        loss.backward()
        del loss
    grads = sum(p.grad.untyped_storage().nbytes() for p in model.parameters() if p.grad is not None)
    assert grads > 0 and mem.current == grads
    assert mem.peak > grads


def test_step_peak_follows_what_the_step_keeps():
    """Activations dominate at this batch: checkpointing and frozen blocks lower the peak, and
    the peak is at least the activations made inside the step (the inputs are made before)."""
    spec = dict(
        backbone="vit_tiny", size=64, batch=12, num_classes=7, backbone_options={"depth": 3}
    )
    peak = {
        (m, ck): step_peak_bytes(StepCase(m, grad_checkpointing=ck, **spec))
        for m in ("cvpt", "full")
        for ck in (False, True)
    }
    assert peak["cvpt", True] < 0.8 * peak["cvpt", False]
    # True spares the last block, whose recomputation would open the backward pass: same peak
    assert step_peak_bytes(StepCase("cvpt", grad_checkpointing=3, **spec)) == peak["cvpt", True]
    assert peak["cvpt", False] < 0.9 * peak["full", False]
    _, _, inputs, _ = StepCase("cvpt", **spec).setup()
    held = step_tensor_bytes(StepCase("cvpt", **spec))
    input_bytes = sum(x.untyped_storage().nbytes() for x in inputs)
    assert peak["cvpt", False] >= held["activations"] - input_bytes
