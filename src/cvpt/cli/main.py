"""The ``cvpt`` command: one sub-command per module of this package."""

from __future__ import annotations

import argparse
import sys

from cvpt import __version__
from cvpt.cli import (
    bench,
    data,
    demo,
    doctor,
    info,
    inspect,
    prepare,
    pretrain,
    synth,
    train,
    visualize,
)
from cvpt.errors import VideoError

COMMANDS = (prepare, inspect, data, synth, pretrain, train, demo, visualize, info, doctor, bench)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cvpt",
        description="Compressed Video Prompt Tuning: compressed-domain action recognition.",
    )
    parser.add_argument("--version", action="version", version=f"cvpt {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except VideoError as e:
        print(f"cvpt {args.command}: error: {e}", file=sys.stderr)
        return 2
    except (FileNotFoundError, FileExistsError, ValueError) as e:
        print(f"cvpt {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"cvpt {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
