"""``cvpt export``: a trained run's model as torch.export (.pt2) or ONNX, checked against eager."""

from __future__ import annotations

import json
from pathlib import Path

from cvpt.cli.common import CHECKPOINT_HELP, add_command

SUFFIX = {"torch": ".pt2", "onnx": ".onnx"}


def register(sub) -> None:
    p = add_command(
        sub,
        "export",
        "Export a trained model (the network: three normalised input tensors -> logits, dynamic "
        "batch) to torch.export (.pt2) or ONNX (needs cvpt[onnx]), and check its logits "
        "against the eager model (ONNX in onnxruntime). Decoding stays in Python.",
        "cvpt export --checkpoint runs/ucf101 --format onnx --out ucf101_cvpt.onnx",
        run,
    )
    p.add_argument(
        "--checkpoint",
        required=True,
        help=CHECKPOINT_HELP,
    )
    p.add_argument(
        "--format",
        choices=sorted(SUFFIX),
        default=None,
        help="torch (.pt2) or onnx (.onnx); default: from --out's suffix, else torch",
    )
    p.add_argument("--out", default=None, help="output file (default: model.pt2 / model.onnx)")
    p.add_argument("--atol", type=float, default=1e-4, help="largest logit difference allowed")
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args) -> int:
    from cvpt.export import export_model
    from cvpt.loading import input_settings, load_model

    args.format, out = export_target(args.format, args.out)
    model = load_model(args.checkpoint, device="cpu")
    size, classes = input_settings(model)["size"], model.class_names
    report = export_model(model, out, size=size, format=args.format, atol=args.atol)
    report.update(checkpoint=str(model.loaded_from), classes=classes, size=size)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        diff = report["max_abs_diff"]
        shapes = ", ".join(f"{k} [{', '.join(map(str, s))}]" for k, s in report["inputs"].items())
        print(
            f"wrote {out} ({args.format}; inputs {shapes} -> logits [B, {len(classes)}]); "
            f"checked with {report['checked_with']}"
            + (f": max |logit difference| {diff:.1e}" if diff is not None else "")
        )
    return 0


def export_target(format: str | None, out: str | None) -> tuple[str, Path]:
    """``(format, output file)`` from ``--format`` and ``--out``: the format named, else the one
    ``--out``'s suffix says, else torch; a suffix of the other format (a torch program written
    as ``model.onnx``) or of neither without ``--format`` is a :class:`ConfigError`."""
    from cvpt.errors import ConfigError

    by_suffix = {v: k for k, v in SUFFIX.items()}
    said = by_suffix.get(Path(out).suffix.lower()) if out else None
    if out and said is None and format is None:
        raise ConfigError(
            f"--out {out}: cannot tell the format from its suffix; name the file .pt2 or .onnx, "
            "or pass --format"
        )
    if format and said and said != format:
        raise ConfigError(
            f"--out {out} names a {said} file, but --format is {format}: a {format} export is "
            f"written as {SUFFIX[format]}"
        )
    format = format or said or "torch"
    return format, Path(out or f"model{SUFFIX[format]}")
