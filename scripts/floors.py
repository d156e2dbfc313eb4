"""Print cvpt's declared floors as exact pins, one a line: the lower bound (``>=``) of every
runtime dependency and of the ``plots`` extra in pyproject.toml, and the oldest Python it
allows (``python==3.11``, first). The floors leg of CI (scripts/wheel_check.sh floors)
installs exactly these, so that every lower bound stays one that installs and passes.
Exits 1 naming a dependency without a lower bound."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def floors() -> list[str]:
    """``["python==3.11", "torch==2.9.1", ...]`` from pyproject.toml (names as written)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = ["python==" + project["requires-python"].removeprefix(">=")]
    for req in project["dependencies"] + project["optional-dependencies"]["plots"]:
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*>=\s*([0-9][0-9A-Za-z.]*)\s*(,.*)?", req)
        if not m:
            sys.exit(f"pyproject.toml: {req!r} has no lower bound for the floors leg")
        pins.append(f"{m[1]}=={m[2]}")
    return pins


if __name__ == "__main__":
    print("\n".join(floors()))
