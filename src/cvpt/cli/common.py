"""Helpers shared by the sub-commands."""

from __future__ import annotations

import argparse


class Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keep the examples in epilogs as written, and show defaults: those that mean something
    (not None, not an option's off state), and only where the help does not already say."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        shown = action.default is not None and action.default is not False
        if not shown or "default:" in text or isinstance(action.default, list | tuple):
            return text  # tuples and lists: e.g. --shard 0/1 kept as (0, 1), an empty --set
        return super()._get_help_string(action)


# what --checkpoint takes wherever a trained model is loaded (cvpt.load_model reads each)
CHECKPOINT_HELP = (
    "a run folder (or one checkpoint in it), a save_pretrained folder, or a hub id "
    "(org/name[@revision])"
)


def add_command(sub, name: str, help: str, example: str, func) -> argparse.ArgumentParser:
    """A sub-command whose ``--help`` ends with an example."""
    p = sub.add_parser(
        name,
        help=help,
        description=help,
        epilog=f"example:\n  {example}",
        formatter_class=Formatter,
    )
    p.set_defaults(func=func)
    return p


def parse_shard(text: str) -> tuple[int, int]:
    """``'I/N'`` → ``(I, N)`` with 0 ≤ I < N."""
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"shard must look like 0/4, got {text!r}") from None
    if not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"shard I/N needs 0 <= I < N, got {text!r}")
    return i, n


def count(n: int, noun: str) -> str:
    """``'1 view'``, ``'6 views'``: a count with its noun in the right number."""
    return f"{n} {noun}{'' if n == 1 else 's'}"
