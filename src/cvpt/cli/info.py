"""``cvpt info``: parameters and GMACs, as in the paper's tables."""

from __future__ import annotations

import json

from cvpt.cli.common import add_command


def register(sub) -> None:
    p = add_command(
        sub,
        "info",
        "Tunable parameters (with and without the prompt embeddings), share of the total, and "
        "GMACs per view and x views (clips x crops) of a method, or of all methods (--all), next "
        "to the raw-RGB "
        "backbone (VideoMAE: 16 frames, 5x3 views; Video Swin: 32 frames, 4x3 views).",
        "cvpt info --method cvpt --backbone swin_base --num-classes 51 --clips 2 --crops 3",
        run,
    )
    # the registered methods (cvpt.models.methods) are not listed here: naming them imports
    # torch, which no --help does; --all prints each with its one-line help
    p.add_argument(
        "--method",
        default="cvpt",
        help="a registered tuning method (the paper's cvpt by default; --all lists every one "
        "with what it trains)",
    )
    p.add_argument(
        "--backbone",
        default="vit_base",
        help="vit_tiny, vit_small, vit_base, vit_large, swin_tiny, swin_small or swin_base",
    )
    p.add_argument("--num-classes", type=int, default=51, help="classifier outputs")
    p.add_argument(
        "--clips", type=int, default=2, help="test clips per video (views = clips x crops)"
    )
    p.add_argument("--crops", type=int, default=3, help="test crops per clip")
    p.add_argument("--size", type=int, default=224, help="input height and width")
    p.add_argument(
        "--all", action="store_true", help="every method, plus VideoMAE on 16 RGB frames"
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="tuning options, e.g. sccp_layers=1 residual_prompt=false (with --all: each "
        "method gets the ones it takes)",
    )


def run(args) -> int:
    from cvpt.models.report import all_rows, format_table, model_row, raw_video_row
    from cvpt.training.config import parse_overrides

    common = dict(
        backbone=args.backbone,
        num_classes=args.num_classes,
        views=args.clips * args.crops,
        size=args.size,
        **parse_overrides(args.set),
    )
    # --all: each method gets the --set options it takes, all at --size (comparable rows)
    rows = all_rows(**common) if args.all else [model_row(args.method, **common)]
    rows.append(raw_video_row(args.backbone, num_classes=args.num_classes, size=args.size))
    print(json.dumps(rows, indent=2) if args.json else format_table(rows))
    return 0
