"""Print cvpt's declared floors as exact pins, one a line: the lower bound (``>=``) of every
runtime dependency and of every extra cvpt's tests exercise (:func:`tested_extras`: plots,
hub, onnx, the trackers) in pyproject.toml, and the oldest Python it allows
(``python==3.11``, first). The floors leg of CI (scripts/wheel_check.sh floors) installs
exactly these, so that every lower bound stays one that installs and passes.
``--extras`` prints those extras instead, comma-separated (``plots,hub,...``: what both legs
install the wheel with). Exits 1 naming a dependency without a lower bound."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def tested_extras(project: dict) -> list[str]:
    """The extras of ``project`` (pyproject's ``[project]`` table) whose packages the tests
    exercise: every extra but those that gather others (``all``, ``dev``: they name
    ``cvpt[...]``), in the order written."""
    extras = project["optional-dependencies"]
    return [name for name, reqs in extras.items() if not any(r.startswith("cvpt[") for r in reqs)]


def floors() -> list[str]:
    """``["python==3.11", "torch==2.9.1", ...]`` from pyproject.toml (names as written)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = ["python==" + project["requires-python"].removeprefix(">=")]
    extras = [r for name in tested_extras(project) for r in project["optional-dependencies"][name]]
    for req in project["dependencies"] + extras:
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*>=\s*([0-9][0-9A-Za-z.]*)\s*(,.*)?", req)
        if not m:
            sys.exit(f"pyproject.toml: {req!r} has no lower bound for the floors leg")
        pins.append(f"{m[1]}=={m[2]}")
    return pins


if __name__ == "__main__":
    if sys.argv[1:] == ["--extras"]:
        print(
            ",".join(tested_extras(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]))
        )
    else:
        print("\n".join(floors()))
