"""The documentation cannot rot: every `cvpt` command shown in README.md and docs/*.md parses
with today's CLI (flags included), and the blocks marked `<!-- runs in tests -->` run, as
written, on generated data."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from cvpt.cli.main import build_parser, command_line

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MARK = "<!-- runs in tests -->"
FENCE = re.compile(
    r"(?P<mark><!-- runs in tests -->\s*\n)?```(?:bash|sh|console)\n(?P<body>.*?)```", re.S
)


def shell_blocks() -> list[tuple[Path, bool, str]]:
    """``(page, runs, text)`` of every bash block."""
    out = []
    for page in PAGES:
        for m in FENCE.finditer(page.read_text()):
            out.append((page, m.group("mark") is not None, m.group("body")))
    return out


def commands(block: str) -> list[str]:
    """The block's command lines, continuation lines joined, comments dropped."""
    lines, cur = [], ""
    for raw in block.splitlines():
        line = raw.rstrip()
        if line.endswith("\\"):
            cur += line[:-1] + " "
            continue
        cur += line
        if cur.strip() and not cur.lstrip().startswith("#"):
            lines.append(cur.strip())
        cur = ""
    return lines


def cvpt_argv(command: str) -> list[str] | None:
    """The argv a documented line gives `cvpt` (also through torchrun -m cvpt.cli.main)."""
    words = shlex.split(command, comments=True)
    if words[:1] == ["cvpt"]:
        return words[1:]
    if "cvpt.cli.main" in words:
        return words[words.index("cvpt.cli.main") + 1 :]
    return None


DOCUMENTED = [
    (page.relative_to(ROOT), argv)
    for page, _, block in shell_blocks()
    for c in commands(block)
    if (argv := cvpt_argv(c)) is not None
]


def test_the_docs_show_commands():
    assert len(DOCUMENTED) >= 30
    assert any(runs for _, runs, _ in shell_blocks())


def test_documented_configs_are_packaged_names():
    """`--config` in the docs names a config installed with the package (there is no
    configs/ folder in a user's working directory), and the config list names them all."""
    from cvpt.training.config import list_configs

    named = [a[a.index("--config") + 1] for _, a in DOCUMENTED if "--config" in a]
    assert named and set(named) <= set(list_configs())
    training = (ROOT / "docs" / "training.md").read_text()
    for family in ("{hmdb51,ucf101}_swinb_{cvpt,full}", "_vitb_{cvpt,linear,vpt,adaptformer,full}"):
        assert family in training


@pytest.mark.parametrize(("page", "argv"), DOCUMENTED, ids=[" ".join(a[:2]) for _, a in DOCUMENTED])
def test_documented_command_parses(page, argv):
    """Unknown sub-commands or flags exit with status 2 here."""
    try:
        build_parser().parse_args(command_line(argv))
    except SystemExit as e:
        pytest.fail(f"{page}: `cvpt {' '.join(argv)}` does not parse (exit {e.code})")


def test_marked_blocks_run_as_written(tmp_path):
    """Each marked block runs in a fresh folder with `cvpt` on PATH (commands that need GPUs or
    real datasets are not marked; their flags are checked above)."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for k, (page, runs, block) in enumerate(shell_blocks()):
        if not runs:
            continue
        work = tmp_path / f"block{k}"
        work.mkdir()
        proc = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block], cwd=work, env=env, capture_output=True,
            text=True, timeout=600,
        )  # fmt: skip
        assert proc.returncode == 0, (
            f"{page.name} block {k}:\n{block}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
        )


PYTHON_FENCE = re.compile(r"<!-- runs in tests -->\s*\n```python\n(?P<body>.*?)```", re.S)


def python_blocks() -> list[tuple[Path, str]]:
    return [(p, m.group("body")) for p in PAGES for m in PYTHON_FENCE.finditer(p.read_text())]


def test_the_python_api_page_has_a_runnable_example():
    assert any(page.name == "api.md" for page, _ in python_blocks())


@pytest.mark.parametrize(("page", "code"), python_blocks(), ids=lambda x: getattr(x, "name", ""))
def test_marked_python_blocks_run_as_written(page, code, tmp_path):
    """Marked Python examples run in a fresh folder, as a user would paste them."""
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, f"{page.name}:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"


def test_the_api_page_covers_every_public_name():
    """docs/api.md names (as code) everything ``cvpt`` exports, and the methods a user calls on
    what it returns: a model's save_pretrained / push_to_hub, a predictor's calls."""
    import cvpt
    from cvpt.predictor import Predictor

    text = (ROOT / "docs" / "api.md").read_text()
    predictor = [n for n in vars(Predictor) if not n.startswith("_")]
    names = [*cvpt.__all__, *predictor, "save_pretrained", "push_to_hub"]
    missing = [n for n in names if not re.search(rf"`[\w.]*\b{re.escape(n)}\b", text)]
    assert not missing, f"docs/api.md does not name {missing}"
    assert "`predictor(video" in text  # Predictor.__call__


def test_docs_and_sources_cite_only_the_repository():
    """The docs stand alone: no page, source or test cites a design file outside the repository
    (our design record is docs/design.md)."""
    tracked = subprocess.run(
        ["git", "ls-files", "README.md", "docs/*.md", "src", "tests"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    files = [ROOT / f for f in tracked if f.endswith((".md", ".py", ".yaml", ".toml"))]
    assert any(f.name == "design.md" for f in files)
    bad = [
        f"{f.relative_to(ROOT)}: {word}"
        for f in files
        if f.name != "test_docs.py"
        for word in ("shared/", "DESIGN.md")
        if word in f.read_text()
    ]
    assert not bad, bad


def test_every_option_with_a_default_shows_it_in_help():
    """ArgumentDefaultsHelpFormatter prints a default only for an option with help text."""
    import argparse

    def walk(parser, prefix):
        for a in parser._actions:
            if isinstance(a, argparse._SubParsersAction):
                for name, sub in a.choices.items():
                    yield from walk(sub, [*prefix, name])
            elif a.option_strings and a.default not in (None, False) and not a.help:
                yield f"cvpt {' '.join(prefix)} {a.option_strings[0]}"

    assert list(walk(build_parser(), [])) == []


def test_the_readme_layout_names_every_module():
    """The README's Layout block is a picture of the package: every module of every subpackage
    is named in its subpackage's entry (a tuning method's module need not be: each must be a
    registered method, `cvpt info --all` lists them), every top-level module on a line of its
    own."""
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## Layout", 1)[1].split("```", 2)[1]
    entries: dict[str, str] = {}
    current = None
    for line in block.splitlines():
        m = re.match(r"  (\w+)(/|\.py)\s", line)
        if m:
            current = m[1] + m[2]
        if current:
            entries[current] = entries.get(current, "") + " " + line
    package = ROOT / "src" / "cvpt"
    # a tuning method is one module plus its registration: the Layout names the package and
    # its base; each other module there must be a registered method (so nothing else hides)
    methods = package / "models" / "methods"
    plugins = {m for m in methods.glob("*.py") if m.stem not in ("__init__", "base")}
    from cvpt.models import list_methods
    from cvpt.models.methods import get_method

    registered = {type(get_method(n)).__module__.rsplit(".", 1)[1] for n in list_methods()}
    assert {m.stem for m in plugins} <= registered, "a module in models/methods/ registers none"
    for sub in sorted(p for p in package.iterdir() if (p / "__init__.py").exists()):
        text = entries.get(sub.name + "/")
        assert text is not None, f"README Layout: no entry for {sub.name}/"
        # nested packages (models/methods/) and their modules, in their parent's entry
        for m in sorted(set(sub.rglob("*.py")) - plugins):
            module = m.parent.name if m.stem == "__init__" else m.stem
            where = m.relative_to(sub).as_posix()
            assert re.search(rf"\b{module}\b", text), f"README Layout: {sub.name}/{where}"
    for module in sorted(m.name for m in package.glob("*.py") if m.stem != "__init__"):
        assert re.search(rf"\b{re.escape(module)}", block), f"README Layout: {module}"
