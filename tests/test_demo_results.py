"""What `cvpt demo` keeps of earlier runs in its folder: every finished run of the same
settings whatever seeds or readings are asked for next, nothing of a user's file overwritten,
one demo per folder, and bad seeds or devices refused before any work."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import pytest

from cvpt.cli.demo import _seeds
from cvpt.cli.main import main
from cvpt.demo import suite
from cvpt.demo.suite import COMPARISON, CONTROLS, DemoConfig
from cvpt.demo.tune import TuneSettings
from cvpt.errors import ConfigError

TINY = DemoConfig(videos=16, seeds=(0, 1), train_views=2, workers=0, tune=TuneSettings(epochs=1))
ROWS = [v.name for v in COMPARISON + CONTROLS]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """The TINY demo's videos and clip cache, made once."""
    from cvpt.data.synth import synthesize

    d = tmp_path_factory.mktemp("demo-data")
    synthesize(d, task="target", videos=TINY.videos, seed=TINY.data_seed, size=TINY.size,
               pan=TINY.pan, workers=0, progress=False)  # fmt: skip
    return d


def _fake_run(variant_name: str, seed: int) -> dict:
    top1 = 0.5 + 0.01 * seed + 0.001 * len(variant_name)
    return {"top1": top1, "curve": [top1], "curve_epochs": [1], "loss": [1.0], "seconds": 0.1,
            "tunable_params": 10, "tunable_params_without_embeddings": 5, "total_params": 100,
            "lr": 1e-3}  # fmt: skip


@pytest.fixture
def trained(monkeypatch):
    """suite.tune replaced by a fake that records (variant, seed)."""
    calls = []

    def fake_tune(variant, settings, train, test, *, seed, num_classes, on_epoch=None):
        calls.append((variant.name, seed))
        return _fake_run(variant.name, seed)

    monkeypatch.setattr(suite, "tune", fake_tune)
    return calls


def _runs(path) -> set:
    saved = json.loads(path.read_text())
    runs = [r for m in saved["methods"].values() for r in m["runs"]] + saved["other_runs"]
    return {(r["name"], r["seed"]) for r in runs}


@pytest.mark.slow  # over 10 s: run by `make test` after the default set
def test_seeds_run_one_at_a_time_are_all_kept(data, tmp_path, trained):
    suite.run_demo(tmp_path, replace(TINY, seeds=(0,)), data=data, progress=False)
    suite.run_demo(tmp_path, replace(TINY, seeds=(1,)), data=data, progress=False)
    assert _runs(tmp_path / "results.json") == {(n, s) for n in ROWS for s in (0, 1)}
    trained.clear()  # both seeds together: nothing trained again, both shown
    res = suite.run_demo(tmp_path, TINY, data=data, progress=False)
    assert trained == [] and all(m["seeds"] == [0, 1] for m in res["methods"].values())


@pytest.mark.slow  # over 10 s: run by `make test` after the default set
def test_readings_run_one_at_a_time_are_all_kept(data, tmp_path, trained):
    for reading in ("replace", "add"):
        suite.run_demo(tmp_path, TINY, ablations=True, readings=(reading,), data=data,
                       progress=False)  # fmt: skip
    kept = _runs(tmp_path / "results.json")
    assert ("CVPT w/o attention (replace)", 0) in kept and ("CVPT w/o attention (add)", 1) in kept
    trained.clear()
    res = suite.run_demo(tmp_path, TINY, ablations=True, data=data, progress=False)
    assert trained == [] and res["decision"]["reading"] in ("replace", "add")


@pytest.mark.parametrize("text", ["0", "-1", ",", "0,0", "a", "99999999999999999999,"])
def test_bad_seeds_are_refused_before_any_work(text):
    with pytest.raises(ConfigError, match="seed"):
        _seeds(text)


def test_the_library_refuses_repeated_seeds_too():
    with pytest.raises(ConfigError, match="distinct"):
        suite.run_demo("unused", replace(TINY, seeds=(1, 1)))


@pytest.mark.slow  # over 10 s: run by `make test` after the default set
def test_the_same_backbone_elsewhere_keeps_the_runs(data, tmp_path, trained, monkeypatch):
    suite.run_demo(tmp_path, TINY, data=data, progress=False)
    elsewhere = tmp_path / "other-venv" / "renamed.safetensors"
    elsewhere.parent.mkdir()
    shutil.copy(suite.shipped_backbone(), elsewhere)  # the same bytes, another install
    monkeypatch.setattr(suite, "shipped_backbone", lambda: elsewhere)
    trained.clear()
    suite.run_demo(tmp_path, TINY, data=data, progress=False)
    assert trained == []


@pytest.mark.parametrize("content", ["", "{", "[]", "null", '{"methods": 3}'])
def test_a_results_file_it_cannot_read_is_set_aside(data, tmp_path, trained, content):
    (tmp_path / "results.json").write_text(content)
    (tmp_path / "top1.png").write_bytes(b"its picture")
    (tmp_path / "top1.before-1.png").write_bytes(b"an older one")  # taken: the next free N
    suite.run_demo(tmp_path, TINY, data=data, progress=False)
    assert (tmp_path / "results.before-2.json").read_text() == content
    assert (tmp_path / "top1.before-2.png").read_bytes() == b"its picture"
    assert (tmp_path / "top1.before-1.png").read_bytes() == b"an older one"
    assert _runs(tmp_path / "results.json") == {(n, s) for n in ROWS for s in (0, 1)}


def test_device_words_it_cannot_use_are_one_line_errors(tmp_path, capsys):
    with pytest.raises(SystemExit):  # argparse: cpu or cuda
        main(["demo", "--out", str(tmp_path), "--device", "auto"])
    with pytest.raises(ConfigError, match="cpu or cuda"):
        suite.run_demo(tmp_path, replace(TINY, tune=replace(TINY.tune, device="mps")))


def test_a_second_demo_into_the_same_folder_is_refused(data, tmp_path, monkeypatch):
    other = replace(TINY, tune=replace(TINY.tune, epochs=2))
    refused = []

    def fake_tune(variant, settings, train, test, *, seed, num_classes, on_epoch=None):
        if not refused:  # a second demo starts while the first is running
            with pytest.raises(ConfigError, match="another cvpt demo") as e:
                suite.run_demo(tmp_path, other, data=data, progress=False)
            refused.append(str(e.value))
        return _fake_run(variant.name, seed)

    monkeypatch.setattr(suite, "tune", fake_tune)
    suite.run_demo(tmp_path, TINY, data=data, progress=False)
    assert refused and str(tmp_path) in refused[0]
    assert _runs(tmp_path / "results.json") == {(n, s) for n in ROWS for s in (0, 1)}
    assert not list(tmp_path.glob("results.before-*.json"))
