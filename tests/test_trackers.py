"""The `logger` setting: TensorBoard, Weights & Biases (offline mode) and MLflow (local file
store) get the resolved config and the metrics; none is imported unless chosen."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import cvpt
from conftest import TINY_RUN


def _rows(run):
    return [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]


def test_all_three_trackers_get_the_config_and_the_metrics(motion_dataset, tmp_path, monkeypatch):
    pytest.importorskip("tensorboard")
    pytest.importorskip("wandb")
    mlflow = pytest.importorskip("mlflow")
    uri = f"file:{tmp_path / 'mlruns'}"
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    run = tmp_path / "run"
    root = str(motion_dataset / "videos")
    opts = {**TINY_RUN, "epochs": 2, "logger": "tensorboard,wandb,mlflow"}
    cvpt.train(out=run, root=root, annotations=str(motion_dataset), **opts)
    rows = _rows(run)
    steps = [r for r in rows if r["kind"] == "step"]
    evals = [r for r in rows if r["kind"] == "eval"]
    assert len(steps) == 4 and len(evals) == 2
    ids = json.loads((run / "trackers.json").read_text())

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tb = EventAccumulator(str(run / "tensorboard"), size_guidance={"tensors": 0}).Reload()
    loss = tb.Scalars("train/loss")
    assert [e.step for e in loss] == [r["step"] for r in steps]
    assert [e.value for e in loss] == pytest.approx([r["loss"] for r in steps], rel=1e-6)
    assert [e.value for e in tb.Scalars("eval/top1")] == pytest.approx([r["top1"] for r in evals])
    config_text = tb.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert root in config_text and "effective_batch: 4" in config_text

    (wandb_file,) = (run / "wandb").glob(f"offline-run-*-{ids['wandb']}/run-{ids['wandb']}.wandb")
    data = wandb_file.read_bytes()  # W&B's offline record log: protobuf, strings as written
    assert root.encode() in data and b"train/loss" in data and b"eval/top1" in data
    assert json.dumps(steps[-1]["loss"]).encode() in data

    client = mlflow.MlflowClient(uri)
    got = client.get_run(ids["mlflow"]).data
    assert got.params["root"] == root and got.params["resolved.effective_batch"] == "4"
    assert got.params["backbone_options.depth"] == "2"
    history = client.get_metric_history(ids["mlflow"], "train/loss")
    assert [m.value for m in history] == pytest.approx([r["loss"] for r in steps], rel=1e-6)
    assert got.metrics["eval/top1"] == pytest.approx(evals[-1]["top1"])


def test_no_tracker_is_imported_unless_chosen(motion_dataset, tmp_path):
    code = f"""
import sys, cvpt
cvpt.train(out={str(tmp_path / "run")!r}, root={str(motion_dataset / "videos")!r},
           annotations={str(motion_dataset)!r}, **{TINY_RUN!r})
loaded = [m for m in ("wandb", "mlflow", "torch.utils.tensorboard") if m in sys.modules]
assert not loaded, loaded
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_an_unknown_logger_is_a_config_error(motion_dataset, tmp_path):
    with pytest.raises(cvpt.ConfigError, match=r"logger: unknown \['neptune'\]"):
        cvpt.train(
            out=tmp_path / "r", root=str(motion_dataset / "videos"),
            annotations=str(motion_dataset), **{**TINY_RUN, "logger": "wandb,neptune"},
        )  # fmt: skip
    assert not (tmp_path / "r").exists()


def test_a_tracker_that_fails_to_start_leaves_no_run(motion_dataset, tmp_path, monkeypatch):
    """``logger=wandb`` without wandb fails before any work; a tracker that fails as it starts
    (no login, no server) takes back the run it was starting; either way the retry (once
    fixed) starts the run without ``resume``."""
    from cvpt.training import trackers

    opts = dict(root=str(motion_dataset / "videos"), annotations=str(motion_dataset), **TINY_RUN)
    run = tmp_path / "run"
    monkeypatch.setitem(sys.modules, "wandb", None)  # not installed: its import fails
    with pytest.raises(cvpt.MissingDependencyError, match=r"pip install 'cvpt\[wandb\]'"):
        cvpt.train(out=run, logger="wandb", **opts)
    assert not run.exists()

    closed = []

    class Started:  # a tracker that starts, then is closed when the next one fails
        run_id = None

        def __init__(self, out, config, run_id):
            (out / "started").mkdir()

        def close(self):
            closed.append(True)

    class NoLogin:
        def __init__(self, out, config, run_id):
            raise RuntimeError("no API key")

    for name, tracker in (("tensorboard", Started), ("mlflow", NoLogin)):
        monkeypatch.setitem(trackers._OPEN, name, tracker)
        monkeypatch.setitem(trackers.MODULES, name, "json")  # "installed"
    for made_by_user in (False, True):
        if made_by_user:
            run.mkdir()
        with pytest.raises(RuntimeError, match="no API key"):
            cvpt.train(out=run, logger="tensorboard,mlflow", **opts)
        assert run.exists() == made_by_user and len(closed) == 1 + made_by_user
        if made_by_user:  # the user's folder stays; the files that mark a run are gone
            assert not {"config.yaml", "classes.json"} & {p.name for p in run.iterdir()}
    summary = cvpt.train(out=run, logger="none", max_steps=1, **opts)
    assert summary["steps"] == 1 and (run / "config.yaml").exists()
