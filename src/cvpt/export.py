"""``cvpt export``: a trained model as a ``torch.export`` program (``.pt2``) or ONNX graph.

What is exported is the network only: three input tensors ``iframes [B, 3, T_I, S, S]``,
``mvs [B, 2, T_P, S, S]``, ``residuals [B, 3, T_P, S, S]`` (float32, normalised as
:class:`cvpt.ClipTransform` does) → ``logits [B, num_classes]``, at the clip geometry the
model was built for (``model.clip``: T_I = ``num_gops`` GOPs, T_P = ``num_gops·p_per_gop``
P-frames; 4 and 12 for the paper's clips). The batch size is dynamic; ``S`` (the run's crop
size) and the clip length are fixed: the program refuses inputs of another length. Decoding
the compressed stream (I-frames, motion vectors, residuals) stays in Python (PyAV,
:func:`cvpt.read_clip`): no export format carries it. Every export is checked against the
eager model on random inputs at two batch sizes, by reloading the ``.pt2``, or by running the
ONNX file in onnxruntime (when installed; otherwise ``onnx.checker`` validates the graph and
the report says so).
"""

from __future__ import annotations

from pathlib import Path

import torch

from cvpt.errors import ConfigError, CvptError, require
from cvpt.models.flops import INPUT_NAMES, model_inputs

INPUTS = INPUT_NAMES
FORMATS = ("torch", "onnx")
# The oldest torch whose torch.export traces and runs cvpt's models with a dynamic batch; on
# 2.9.1 the exported program fails its symbolic-shape guard (GuardOnDataDependentSymNode) when
# run, while training and inference work (pyproject.toml's floor is the older one).
EXPORT_TORCH = "2.13"


class ExportError(CvptError):
    """The exported model does not compute what the eager model computes."""


def example_inputs(
    model: torch.nn.Module, size: int, batch: int = 2, seed: int = 0
) -> tuple[torch.Tensor, ...]:
    """Random float32 inputs of ``model``'s shapes: batch ``batch``, crop ``size``, its clip
    geometry (``model.clip``)."""
    g = torch.Generator().manual_seed(seed)
    shapes = model_inputs(model, batch, size=size)
    return tuple(torch.randn(x.shape, generator=g) for x in shapes)


def export_model(
    model: torch.nn.Module, out: str | Path, *, size: int, format: str, atol: float = 1e-4
) -> dict:
    """Export ``model`` (float32, CPU) to ``out`` and check it numerically against eager.

    The program takes clips of ``model.clip``'s geometry (the one it was trained on).
    Returns ``{"format", "path", "checked_with", "max_abs_diff", "batch_sizes", "inputs"}``
    (``inputs``: each input's shape, ``"B"`` for the dynamic batch). Raises
    :class:`ConfigError` for an unknown ``format``, :class:`cvpt.errors.MissingDependencyError`
    for ONNX without the ``onnx`` extra, and :class:`ExportError` when the exported model's
    logits differ from eager by more than ``atol``, or when a torch older than
    :data:`EXPORT_TORCH` fails to export or run it (the message names the version needed)."""
    if format not in FORMATS:
        raise ConfigError(f"format must be one of {', '.join(FORMATS)}; got {format!r}")
    model = model.float().cpu().eval()
    try:
        return _export_checked(model, Path(out), size, format, atol)
    except CvptError:
        raise
    except Exception as e:
        if torch.torch_version.TorchVersion(torch.__version__) >= EXPORT_TORCH:
            raise  # a bug of ours, not torch's age: keep the traceback
        raise ExportError(
            f"{out}: cvpt export needs torch >= {EXPORT_TORCH}; torch {torch.__version__} "
            f"failed ({type(e).__name__}: {str(e).splitlines()[0][:200]}). Upgrade torch "
            f"(pip install 'torch>={EXPORT_TORCH}'); training and prediction work on this one"
        ) from e


def _export_checked(model: torch.nn.Module, out: Path, size: int, format: str, atol: float):
    """:func:`export_model` once ``model`` is float32 on the CPU in eval mode."""
    from cvpt.io import atomic_output

    args = example_inputs(model, size, batch=2)  # traced at the model's own clip geometry
    batch = torch.export.Dim("batch", min=1, max=4096)
    dynamic = tuple({0: batch} for _ in INPUTS)
    # checked before it takes ``out``'s name: a failed check leaves no file, and an earlier
    # good export at ``out`` stays
    with atomic_output(out) as tmp:
        if format == "torch":
            program = torch.export.export(model, args, dynamic_shapes=dynamic)
            torch.export.save(program, tmp)
        else:
            require("onnxscript", extra="onnx", feature="cvpt export --format onnx")
            torch.onnx.export(
                model,
                args,
                tmp,
                dynamo=True,
                input_names=list(INPUTS),
                output_names=["logits"],
                dynamic_shapes=dynamic,
                external_data=False,
            )
        run, checked_with = _runner(tmp, format)
        diff, sizes = 0.0, (1, 3)
        for b in sizes if run is not None else ():  # other batch sizes than the one traced:
            x = example_inputs(model, size, batch=b, seed=b)  # the batch axis is really dynamic
            with torch.no_grad():
                want = model(*x)
            diff = max(diff, float((torch.as_tensor(run(x)) - want).abs().max()))
        if diff > atol:
            raise ExportError(
                f"{out}: the exported model differs from eager by {diff:.2e} > {atol}"
            )
    return {
        "format": format,
        "path": str(out),
        "checked_with": checked_with,
        "max_abs_diff": diff if run is not None else None,
        "batch_sizes": list(sizes),
        "inputs": {k: ["B", *x.shape[1:]] for k, x in zip(INPUTS, args, strict=True)},
    }


def _runner(path: Path, format: str):
    """A function inputs → logits running the exported file, and what runs it."""
    if format == "torch":
        module = torch.export.load(path).module()
        return (lambda x: module(*x).detach()), "torch.export.load"
    try:
        import onnxruntime
    except ImportError:
        onnx = require("onnx", extra="onnx", feature="checking an ONNX export")
        onnx.checker.check_model(str(path))
        return None, "onnx.checker only (onnxruntime not installed: no numerical check)"
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def run(x):
        return session.run(None, {k: v.numpy() for k, v in zip(INPUTS, x, strict=True)})[0]

    return run, f"onnxruntime {onnxruntime.__version__}"
