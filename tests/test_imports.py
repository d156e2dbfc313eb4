"""What ``import cvpt`` and the light commands load: ``cvpt prepare``, ``cvpt probe`` and every
``--help`` start without torch (2.6 s of CPU time per call) or numpy, and every public name
still imports (PEP 562: on first use)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import cvpt

# numpy too: 0.15 s of CPU per process, a tenth of what prepare costs per short video
# (docs/benchmarks.md, "Prepare")
HEAVY = ("torch", "scipy", "matplotlib", "transformers", "omegaconf", "cv2", "safetensors", "numpy")

# Runs one command in a fresh interpreter, then prints the heavy packages it imported.
PROBE = """
import contextlib, io, json, sys
from cvpt.cli.main import main
with contextlib.redirect_stdout(io.StringIO()):
    try:
        code = main({argv!r})
    except SystemExit as e:
        code = e.code
print(json.dumps([code, sorted({{m.split(".")[0] for m in sys.modules}} & set({heavy!r}))]))
"""


def _loaded(argv: list[str]) -> tuple[int, list[str]]:
    script = PROBE.format(argv=argv, heavy=HEAVY)
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    code, heavy = json.loads(proc.stdout.splitlines()[-1])
    return code, heavy


def test_prepare_probe_and_help_do_not_import_torch_or_numpy(tmp_path, videos):
    out = tmp_path / "out"
    commands = [
        ["--help"],
        ["prepare", "--help"],
        ["probe", "--help"],
        ["bench", "--help"],
        ["probe", str(videos["x264_bframes"])],
        ["prepare", str(videos["x264_bframes"]), str(out), "--quiet"],
    ]
    for argv in commands:
        assert _loaded(argv) == (0, []), argv
    assert (out / "x264_bframes.mp4").exists()  # the prepare above did its work


# Every command's --help in one interpreter, then the heavy packages loaded by any of them.
EVERY_HELP = """
import contextlib, io, json, sys
from cvpt.cli.main import build_parser, main
sub = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction")
for name in sorted(sub.choices):
    with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.suppress(SystemExit):
        main([name, "--help"])
    assert "usage: cvpt " + name in out.getvalue(), name
loaded = {{m.split(".")[0] for m in sys.modules}}
print(json.dumps([sorted(sub.choices), sorted(loaded & set({heavy!r}))]))
"""


def test_the_help_of_every_command_starts_without_torch():
    # `cvpt train --help` (or any other) on a cluster login node: argparse only
    proc = subprocess.run(
        [sys.executable, "-c", EVERY_HELP.format(heavy=HEAVY)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    commands, heavy = json.loads(proc.stdout.splitlines()[-1])
    assert {"train", "predict", "export", "eval", "demo", "doctor"} <= set(commands)
    assert heavy == []


def test_the_model_benchmark_help_loads_its_module():
    # the check above can fail: this help shows the model benchmark's docstring, whose module
    # imports torch (only when that help is asked for)
    code, heavy = _loaded(["bench", "model", "--help"])
    assert code == 0 and "torch" in heavy


@pytest.mark.parametrize("name", cvpt.__all__)
def test_every_public_name_imports(name):
    ns: dict = {}
    exec(f"from cvpt import {name}", ns)
    assert ns[name] is getattr(cvpt, name)
    assert name in dir(cvpt)


def test_public_names_are_listed_once_for_type_checkers_and_at_run_time():
    # the TYPE_CHECKING imports (what static checkers see) name exactly what __getattr__ loads
    tree = ast.parse(Path(cvpt.__file__).read_text())
    guarded = next(
        n for n in tree.body if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING"
    )
    seen = {
        alias.name: node.module
        for node in guarded.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert seen == cvpt._EXPORTS
    assert set(cvpt.__all__) == {*seen, "__version__"}


def test_unknown_attributes_and_submodules():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = cvpt.nope
    assert cvpt.predictor.Predictor is cvpt.Predictor  # a sub-module, imported on first use


def test_bench_help_still_shows_its_benchmark_description(capsys):
    from cvpt.cli.main import main

    with pytest.raises(SystemExit):
        main(["bench", "reader", "--help"])
    first_line = "what reading a compressed clip costs, against two baselines"
    assert first_line in capsys.readouterr().out
