"""The ``cvpt`` command: one sub-command per module of this package."""

from __future__ import annotations

import argparse
import logging
import sys

from cvpt import __version__
from cvpt.cli import (
    bench,
    data,
    demo,
    doctor,
    export,
    info,
    inspect,
    predict,
    prepare,
    pretrain,
    synth,
    train,
    visualize,
)
from cvpt.errors import CvptError

COMMANDS = (
    prepare,
    inspect,
    data,
    synth,
    pretrain,
    train,
    predict,
    export,
    demo,
    visualize,
    info,
    doctor,
    bench,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cvpt",
        description="Compressed Video Prompt Tuning: compressed-domain action recognition.",
    )
    parser.add_argument("--version", action="version", version=f"cvpt {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="show the full traceback of every error"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.register(sub)
    return parser


def show_cvpt_logs() -> None:
    """Show cvpt's INFO records (each checkpoint's key table, a resumed run...) on stderr, as
    the library itself does not: a handler on the root logger (kept where the application or
    pytest set one up) and level INFO for the ``cvpt`` loggers only, other libraries at
    WARNING."""
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("cvpt").setLevel(logging.INFO)


def main(argv: list[str] | None = None) -> int:
    """Run one sub-command. A :class:`cvpt.errors.CvptError` (bad input the user can fix) is
    printed as one line with exit status 2; anything else is a bug and raises with its traceback,
    as does everything under ``--debug``."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["torchrun"] and not {"-h", "--help"} & set(argv[1:2]):
        # torchrun's own options follow, which argparse would take for cvpt's
        argv = ["torchrun", "--", *argv[1:]]
    args = build_parser().parse_args(argv)
    show_cvpt_logs()
    try:
        return int(args.func(args) or 0)
    except CvptError as e:
        if args.debug:
            raise
        print(f"cvpt {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"cvpt {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
