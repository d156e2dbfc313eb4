"""``cvpt predict``: the top classes of many videos with a trained run, loaded once."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

from cvpt.cli.common import CHECKPOINT_HELP, add_command, count
from cvpt.cli.train import add_backbone_override
from cvpt.errors import ConfigError


def register(sub) -> None:
    p = add_command(
        sub,
        "predict",
        "Top classes of videos, folders (searched recursively by extension) and list files "
        "(one path per line) with a trained run: one model load, videos decoded in parallel "
        "workers and batched; unprepared videos are re-encoded on the fly. A video that fails "
        "is reported with its error and never stops the rest (exit status 1 if any failed).",
        "cvpt predict clips/ more.mp4 list.txt --checkpoint runs/ucf101 --out predictions.csv",
        run,
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="video files, folders, list files")
    p.add_argument(
        "--checkpoint",
        required=True,
        help=CHECKPOINT_HELP,
    )
    p.add_argument("--clips", type=int, default=2, help="clips per video (views = clips x crops)")
    p.add_argument("--crops", type=int, default=3, help="crops per clip (1 or 3)")
    p.add_argument("--top", type=int, default=5, help="classes per video")
    p.add_argument("--batch-size", type=int, default=4, help="videos per forward pass")
    p.add_argument("--workers", type=int, default=2, help="decoding processes (0: none)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: the run's)")
    p.add_argument(
        "--no-prepare",
        action="store_true",
        help="report unprepared videos as errors instead of re-encoding them",
    )
    p.add_argument(
        "--out", default=None, help="write the results to this .csv or .json (atomically)"
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_backbone_override(p, with_path=True)
    p.add_argument("--quiet", action="store_true", help="no progress output")


def run(args) -> int:
    from cvpt.predictor import Predictor, expand_inputs

    if args.out and Path(args.out).suffix.lower() not in (".csv", ".json"):
        raise ConfigError(f"--out {args.out}: the name must end in .csv or .json")
    videos = expand_inputs(args.inputs)
    predictor = Predictor.from_pretrained(
        args.checkpoint,
        device=args.device,
        clips=args.clips,
        crops=args.crops,
        batch_size=args.batch_size,
        workers=args.workers,
        prepare=not args.no_prepare,
        backbone_checkpoint=args.backbone_checkpoint,
        allow_other_backbone=args.allow_other_backbone,
    )
    results = predictor.predict(videos, top=args.top, progress=not args.quiet)
    rows = [r.to_dict() for r in results]
    if args.out:
        write_results(rows, args.out, args.top)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for r in results:
            print(result_line(r))
    failed = sum(not r.ok for r in results)
    print(
        f"{len(results)} video(s), {failed} failed, {count(predictor.views, 'view')} each "
        f"({count(args.clips, 'clip')} x {count(args.crops, 'crop')}), model {predictor.source}"
        + (f" -> {args.out}" if args.out else ""),
        file=sys.stderr,
    )
    return 1 if failed else 0


def write_results(rows: list[dict], out: str | Path, top: int) -> None:
    """CSV (``path, error, warning, class_1, prob_1, ...``) or JSON by the suffix, atomically."""
    from cvpt.io import atomic_output, write_json

    if Path(out).suffix.lower() == ".json":
        write_json(out, rows)
        return
    header = ["path", "error", "warning"]
    header += [f"{k}_{i}" for i in range(1, top + 1) for k in ("class", "prob")]
    with atomic_output(out) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for r in rows:
            cells = [x for t in r["top"] for x in (t["class"], f"{t['probability']:.6f}")]
            cells += [""] * (2 * top - len(cells))  # a failed video: empty class columns
            w.writerow([r["path"], r["error"] or "", r["warning"] or "", *cells])


def result_line(r) -> str:
    """One video's line of the table output: every class of its ``top`` (``--top``) with its
    probability, or why it failed."""
    if not r.ok:
        return f"{r.path}: FAILED {r.error}"
    best = ", ".join(f"{c} {100 * p:.1f}%" for c, p in r.top)
    return f"{r.path}: {best}" + (f" (warning: {r.warning})" if r.warning else "")
