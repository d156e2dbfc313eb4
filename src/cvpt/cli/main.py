"""The ``cvpt`` command: one sub-command per module of this package."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings

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


def command_line(argv: list[str]) -> list[str]:
    """``argv`` as the parser takes it: ``cvpt torchrun``'s own options (torchrun's) are passed
    on after a ``--``, where argparse would take them for cvpt's."""
    argv = list(argv)
    if argv[:1] == ["torchrun"] and not {"-h", "--help"} & set(argv[1:2]):
        argv = ["torchrun", "--", *argv[1:]]
    return argv


def main(argv: list[str] | None = None) -> int:
    """Run one sub-command. A :class:`cvpt.errors.CvptError` (bad input the user can fix) is
    printed as one line with exit status 2; anything else is a bug and raises with its traceback,
    as does everything under ``--debug``."""
    args = build_parser().parse_args(command_line(sys.argv[1:] if argv is None else argv))
    show_cvpt_logs()
    try:
        with warnings.catch_warnings():
            if not args.debug:  # one line each, as the errors, not where the code raised it
                warnings.showwarning = _one_line_warning(args.command)
            return int(args.func(args) or 0)
    except BrokenPipeError:  # `cvpt probe … | head`: the reader left; nothing more to say
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so that the exit flush does not fail again
        return 141  # 128 + SIGPIPE, as a shell tool that met a closed pipe
    except CvptError as e:
        if args.debug:
            raise
        print(f"cvpt {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"cvpt {args.command}: interrupted", file=sys.stderr)
        return 130


def _one_line_warning(command: str):
    """``warnings.showwarning`` for the command line: ``cvpt CMD: warning: MESSAGE``."""

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        print(f"cvpt {command}: warning: {message}", file=file or sys.stderr)

    return show


if __name__ == "__main__":
    sys.exit(main())
