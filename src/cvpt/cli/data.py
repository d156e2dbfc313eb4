"""``cvpt data check``."""

from __future__ import annotations

from cvpt.cli.common import Formatter


def register(sub) -> None:
    p = sub.add_parser("data", help="dataset tools: cvpt data check ...")
    dsub = p.add_subparsers(dest="data", required=True, metavar="TOOL")
    c = dsub.add_parser(
        "check",
        formatter_class=Formatter,
        help="how many listed videos exist under a root, per subset, and the first missing",
        description="Compare a dataset's official annotations with the videos under ROOT "
        "(original or prepared .mp4 names). Exit 1 when any listed video is missing.",
        epilog="example:\n  cvpt data check --dataset ucf101 --root ~/data/UCF-101-mpeg4 "
        "--annotations ~/data/ucfTrainTestlist --split 1",
    )
    c.add_argument(
        "--dataset", required=True, choices=["ucf101", "hmdb51", "ssv2", "list", "folder"]
    )
    c.add_argument("--root", required=True, help="folder of (prepared) videos")
    c.add_argument("--annotations", required=True, help="split files (folder or list file)")
    c.add_argument("--split", type=int, default=1, help="official split 1, 2 or 3")
    c.add_argument("--show", type=int, default=5, help="how many missing paths to list")
    c.set_defaults(func=run_check)


def run_check(args) -> int:
    from cvpt.data.splits import check_dataset

    report = check_dataset(args.dataset, args.root, args.annotations, args.split)
    bad = 0
    for subset, (listed, found, missing) in report.items():
        print(f"{subset:<11} listed {listed:>7}  found {found:>7}  missing {len(missing):>7}")
        for path in missing[: args.show]:
            print(f"    missing: {path}")
        if len(missing) > args.show:
            print(f"    ... and {len(missing) - args.show} more")
        bad += len(missing)
    return 1 if bad else 0
