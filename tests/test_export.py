"""`cvpt export`: torch.export and ONNX of a trained run, checked against the eager model."""

from __future__ import annotations

import json
import re
import sys

import numpy as np
import pytest
import torch

import cvpt
from cvpt.cli.export import export_target
from cvpt.cli.main import main
from cvpt.errors import ConfigError
from cvpt.export import ExportError, export_model
from cvpt.predictor import load_views


def _real_inputs(run, video):
    model = cvpt.load_model(run)
    batch = load_views(video, model, 2, 1)  # [1, 2, ...]: two clips of a real video
    return model, tuple(batch[k][0] for k in ("iframes", "mvs", "residuals"))


def test_torch_export_matches_eager_on_a_real_video(tiny_run, motion_dataset, tmp_path, capsys):
    out = tmp_path / "m.pt2"
    assert main(["export", "--checkpoint", str(tiny_run), "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["checked_with"] == "torch.export.load" and report["max_abs_diff"] < 1e-5
    model, x = _real_inputs(tiny_run, motion_dataset / "videos" / "c1_5.mp4")
    program = torch.export.load(out).module()
    with torch.no_grad():
        torch.testing.assert_close(program(*x), model(*x), atol=1e-5, rtol=0)
    assert not list(tmp_path.glob(".*"))  # written atomically


def test_onnx_export_runs_in_onnxruntime(tiny_run, motion_dataset, tmp_path, capsys):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    out = tmp_path / "m.onnx"
    assert (
        main(["export", "--checkpoint", str(tiny_run), "--format", "onnx", "--out", str(out)]) == 0
    )
    assert "checked with onnxruntime" in capsys.readouterr().out
    model, x = _real_inputs(tiny_run, motion_dataset / "videos" / "c0_5.mp4")
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    feed = {k: t.numpy() for k, t in zip(("iframes", "mvs", "residuals"), x, strict=True)}
    got = session.run(None, feed)[0]
    with torch.no_grad():
        np.testing.assert_allclose(got, model(*x).numpy(), atol=1e-4)


def test_a_wrong_export_is_refused(tmp_path, monkeypatch):
    """The check can fail: an exported file computing something else is an error."""
    model = cvpt.create_model("linear", backbone="vit_tiny", num_classes=2,
                              backbone_options={"depth": 1, "img_size": 32})  # fmt: skip
    real = torch.export.load

    def perturbed(path):
        program = real(path)
        with torch.no_grad():
            for name, t in program.state_dict.items():
                if name.endswith("head.bias"):
                    t.add_(1.0)
        return program

    out = tmp_path / "m.pt2"
    export_model(model, out, size=32, format="torch")
    good = out.read_bytes()
    monkeypatch.setattr(torch.export, "load", perturbed)
    with pytest.raises(ExportError, match="differs from eager"):
        export_model(model, out, size=32, format="torch")
    # checked before it took the name: the good export is still there, nothing else is
    assert out.read_bytes() == good and [p.name for p in tmp_path.iterdir()] == ["m.pt2"]
    with pytest.raises(ExportError, match="differs from eager"):
        export_model(model, tmp_path / "new.pt2", size=32, format="torch")
    assert not (tmp_path / "new.pt2").exists()


def test_onnx_without_the_extra_says_what_to_install(tiny_run, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnxscript", None)
    args = ["export", "--checkpoint", str(tiny_run), "--format", "onnx", "--out", "x.onnx"]
    assert main(args) == 2
    assert "pip install 'cvpt[onnx]'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("format", "out", "want"),
    [
        (None, None, ("torch", "model.pt2")),
        (None, "m.onnx", ("onnx", "m.onnx")),
        (None, "d/M.PT2", ("torch", "d/M.PT2")),
        ("onnx", None, ("onnx", "model.onnx")),
        ("torch", "m.pt2", ("torch", "m.pt2")),
        ("torch", "m.onnx", "names a onnx file, but --format is torch"),
        ("onnx", "m.pt2", "names a torch file, but --format is onnx"),
        (None, "m.bin", "cannot tell the format"),
        ("torch", "m.bin", ("torch", "m.bin")),
    ],
)
def test_the_export_format_is_the_one_the_file_name_says(format, out, want):
    """A torch program is never written under a .onnx name (nor the reverse): the format comes
    from --out's suffix unless named, and a mismatch is refused before any work."""
    if isinstance(want, str):
        with pytest.raises(ConfigError, match=want):
            export_target(format, out)
    else:
        got = export_target(format, out)
        assert (got[0], got[1].as_posix()) == want


@pytest.mark.parametrize(
    ("version", "named"),
    [("2.9.1", True), ("2.12.1+cu128", True), ("2.13.0", False), ("2.14.1+cpu", False)],
)
def test_export_on_an_older_torch_says_which_torch_it_needs(tmp_path, monkeypatch, version, named):
    """Where torch.export of an older torch fails (2.9.1: a symbolic-shape guard when the
    program runs), the error names the torch needed; on a torch that should work, the
    failure is not disguised as one of age."""
    model = cvpt.create_model("linear", backbone="vit_tiny", num_classes=2,
                              backbone_options={"depth": 1, "img_size": 32})  # fmt: skip

    def fails(*args, **kwargs):
        raise RuntimeError("Could not guard on data-dependent expression zuf0\nmore lines")

    monkeypatch.setattr(torch, "__version__", version)
    monkeypatch.setattr(torch.export, "export", fails)
    out = tmp_path / "m.pt2"
    if named:
        with pytest.raises(
            ExportError, match=rf"needs torch >= 2\.13; torch {re.escape(version)}"
        ) as e:
            export_model(model, out, size=32, format="torch")
        assert "Could not guard" in str(e.value) and "more lines" not in str(e.value)
    else:
        with pytest.raises(RuntimeError, match="Could not guard"):
            export_model(model, out, size=32, format="torch")
    assert not out.exists()  # nothing half-written
