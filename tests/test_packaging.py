"""cvpt installs beside a researcher's other tools: ranges in pyproject.toml, exact versions only
in CI's constraints.txt. (The wheel itself is installed at every declared floor, and at pip's
newest picks on Python 3.13, by `make wheel-check`, which `make test` runs.)"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
RUNTIME = [Requirement(r) for r in PROJECT["dependencies"]]
EXTRAS = {
    name: [Requirement(r) for r in reqs]
    for name, reqs in PROJECT["optional-dependencies"].items()
    if name != "dev"
}


def constraints() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep, f"constraints.txt: {line!r} is not an exact pin"
            pins[_norm(name)] = version
    return pins


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_no_exact_pins_for_users():
    """`==` in a runtime or optional dependency makes cvpt uninstallable beside other tools."""
    for req in RUNTIME + [r for reqs in EXTRAS.values() for r in reqs]:
        assert all(s.operator not in ("==", "===") for s in req.specifier), str(req)
        assert any(s.operator == ">=" for s in req.specifier) or req.name == "cvpt", (
            f"{req}: give the lowest version cvpt is tested with"
        )


@pytest.mark.parametrize("python", ["3.11", "3.12", "3.13"])
def test_supported_pythons_are_allowed(python):
    assert Version(python) in SpecifierSet(PROJECT["requires-python"])


@pytest.mark.parametrize(
    ("package", "version"),
    [("numpy", "2.0.2"), ("numpy", "2.3.5"), ("matplotlib", "3.9.4"), ("matplotlib", "3.10.8")],
)
def test_older_releases_users_have_are_allowed(package, version):
    """What failed with ResolutionImpossible beside `numpy<2.4` or `matplotlib<3.11`."""
    reqs = [r for r in RUNTIME + EXTRAS["plots"] if _norm(r.name) == package]
    assert reqs and all(r.specifier.contains(version) for r in reqs)


def test_ci_constraints_pin_everything_and_fit_the_ranges():
    pins = constraints()
    assert pins["torch"] == "2.13.0"  # the CPU wheel on disk: unpinned pulls a CUDA build
    for req in RUNTIME + [r for reqs in EXTRAS.values() for r in reqs if r.name != "cvpt"]:
        name = _norm(req.name)
        assert name in pins, f"constraints.txt lacks {req.name}"
        assert req.specifier.contains(pins[name]), f"{req}: CI runs {pins[name]}"


def test_this_environment_is_the_constrained_one():
    """CI installs with `-c constraints.txt`: what runs the tests is what the file says."""
    pins = constraints()
    for name in ("torch", "numpy", "av", "opencv-python-headless", "safetensors"):
        installed = Version(metadata.version(name)).public
        assert installed == pins[name], f"{name}: installed {installed}, constraints {pins[name]}"


def test_make_and_ci_apply_the_constraints():
    makefile = (ROOT / "Makefile").read_text()
    assert "-c constraints.txt" in makefile and "wheel-check" in makefile
    assert "wheel_check.sh floors" in makefile and "wheel_check.sh latest" in makefile
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    script = (ROOT / "scripts" / "wheel_check.sh").read_text()
    assert "scripts/floors.py" in script and "scripts/smoke.sh" in script
    smoke = (ROOT / "scripts" / "smoke.sh").read_text()
    assert '"$cvpt" doctor' in smoke and '"$cvpt" train' in smoke and '"$cvpt" predict' in smoke


def _floors() -> list[str]:
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "floors.py")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.split()


def test_the_floors_leg_installs_every_lower_bound_exactly():
    """What the floors leg installs is each `>=` of the runtime dependencies and of every extra
    the tests exercise (all but the gathering `all` and `dev`), as written (not a later patch
    release), on the oldest Python allowed; `--extras` names those extras, which both legs
    install the wheel with."""
    pins = dict(p.split("==") for p in _floors())
    assert pins.pop("python") == PROJECT["requires-python"].removeprefix(">=")
    tested = [name for name in EXTRAS if name != "all"]
    assert {"plots", "hub", "onnx", "tensorboard", "wandb", "mlflow"} <= set(tested)
    for req in RUNTIME + [r for name in tested for r in EXTRAS[name]]:
        low = [s.version for s in req.specifier if s.operator == ">="]
        assert low and pins.pop(req.name) == low[0], str(req)
    assert not pins, pins
    extras = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "floors.py"), "--extras"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert extras.split(",") == tested
    script = (ROOT / "scripts" / "wheel_check.sh").read_text()
    assert script.count('"${wheel}[$extras]"') == 2 and "[plots]" not in script


def _venv_key_input(script: str, project: str, tmp_path: Path) -> str:
    """What wheel_check.sh hashes of pyproject.toml into a venv's key (its own snippet, run on
    ``project`` as the pyproject.toml of ``tmp_path``)."""
    snippet = re.search(r"python3 -c '(import tomllib.*?)'\n\) \| sha256sum", script, re.S)
    assert snippet, "wheel_check.sh: the key's pyproject snippet moved"
    (tmp_path / "pyproject.toml").write_text(project)
    return subprocess.run(
        [sys.executable, "-c", snippet[1]], cwd=tmp_path, capture_output=True, text=True, check=True
    ).stdout


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('"huggingface_hub>=0.34"', '"huggingface_hub>=0.35"'),
        ('"tensorboard>=2.18"', '"tensorboard>=2.19"'),
        ('"onnxruntime>=1.20"', '"onnxruntime>=1.21"'),
        ('"numpy>=2.0.0"', '"numpy>=2.1.0"'),
        ('plots = ["matplotlib>=3.9.0"]', 'plots = ["matplotlib>=3.9.0", "pillow>=10"]'),
    ],
)
def test_the_venv_key_changes_when_an_ask_changes(tmp_path, old, new):
    """A kept venv is reused only for the same asks: any dependency or extra changed in
    pyproject.toml changes the key (a floor raised and the old venv kept would test nothing)."""
    script = (ROOT / "scripts" / "wheel_check.sh").read_text()
    project = (ROOT / "pyproject.toml").read_text()
    assert old in project
    before = _venv_key_input(script, project, tmp_path)
    assert before == _venv_key_input(script, project, tmp_path)
    assert _venv_key_input(script, project.replace(old, new), tmp_path) != before


def test_the_floors_are_the_known_good_ones():
    """The floors a new environment broke on: opencv 4.10.0.82 is built for NumPy 1 (its import
    fails beside numpy 2); torch 2.9.1 runs everything but the torch export; PyAV 18.0.0 has no
    ``codec_context.field_order`` (interlaced sources' field order)."""
    lows = {r.name: Version(s.version) for r in RUNTIME for s in r.specifier if s.operator == ">="}
    assert lows["opencv-python-headless"] >= Version("4.10.0.84")
    assert lows["numpy"] >= Version("2.0.0")
    assert lows["torch"] == Version("2.9.1")
    assert lows["av"] >= Version("18.1.0")
    assert "scipy" not in lows  # the demo's statistics are cvpt.demo.stats


def test_plots_are_optional(tmp_path):
    """Without matplotlib a run still trains (plots skipped, said once); `cvpt show` says what to
    install, in one line."""
    code = f"""
import sys
sys.modules["matplotlib"] = None  # as if not installed: every import of it fails
from pathlib import Path
from cvpt.training.plots import plot_curves
from cvpt.cli.main import main
out = Path({str(tmp_path)!r})
assert plot_curves([{{"kind": "step", "step": 1, "loss": 1.0, "lr": 0.1}}], out / "c.png") is None
assert not (out / "c.png").exists()
sys.exit(main(["show", "nothing.mp4", "-o", str(out / "x.png")]))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert "pip install 'cvpt[plots]'" in proc.stderr and "Traceback" not in proc.stderr
