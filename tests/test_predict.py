"""`cvpt predict` and cvpt.Predictor: many videos, one model load, batched, failures reported."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
import torch

import cvpt
from cvpt.cli.main import main
from cvpt.data.generate import translating_texture
from cvpt.models import create_backbone
from cvpt.predictor import load_views
from cvpt.training.evaluate import predict_batch


@pytest.fixture(scope="module")
def folder(tmp_path_factory, motion_dataset):
    """A nested folder: 3 prepared videos, 1 corrupt, 1 unprepared (H.264 with B-frames), and a
    text file that is not a video (ignored by the folder walk)."""
    d = tmp_path_factory.mktemp("predict")
    (d / "sub" / "deeper").mkdir(parents=True)
    for name, dst in [
        ("c0_4.mp4", d / "a.mp4"),
        ("c1_4.mp4", d / "sub" / "b.mp4"),
        ("c0_5.mp4", d / "sub" / "deeper" / "c.mp4"),
    ]:
        shutil.copy(motion_dataset / "videos" / name, dst)
    good = (d / "a.mp4").read_bytes()
    (d / "sub" / "broken.mp4").write_bytes(good[: len(good) // 3])  # truncated
    cvpt.write_video(
        d / "sub" / "raw.mkv",
        translating_texture(-2, 0, frames=60, height=32, width=48, seed=99),
        codec="libx264",
        gop=250,
        max_b_frames=2,
    )
    (d / "notes.txt").write_text("not a video\n")
    return d


def _expected(run, video, clips=2, crops=3) -> np.ndarray:
    model = cvpt.load_model(run)
    batch = load_views(video, model, clips, crops)
    return predict_batch(model, batch, torch.device("cpu"))[0].numpy()


def test_predict_a_folder_with_a_corrupt_file_to_csv(tiny_run, folder, tmp_path, capsys):
    out = tmp_path / "preds.csv"
    args = ["predict", str(folder), "--checkpoint", str(tiny_run), "--top", "2", "--out", str(out)]
    assert main([*args, "--batch-size", "2", "--workers", "2"]) == 1  # one failed: status 1
    rows = {r["path"]: r for r in csv.DictReader(out.open())}
    names = {p.split(str(folder))[1] for p in rows}
    assert names == {"/a.mp4", "/sub/b.mp4", "/sub/broken.mp4", "/sub/raw.mkv", "/sub/deeper/c.mp4"}
    broken = rows[str(folder / "sub" / "broken.mp4")]
    assert broken["error"] and broken["class_1"] == ""
    for name in ("a.mp4", "sub/b.mp4", "sub/deeper/c.mp4"):
        row = rows[str(folder / name)]
        assert row["error"] == ""
        probs = _expected(tiny_run, folder / name)
        best = np.argsort(-probs)
        assert [row["class_1"], row["class_2"]] == [str(i) for i in best[:2]]
        assert float(row["prob_1"]) == pytest.approx(probs[best[0]], abs=1e-5)
    assert rows[str(folder / "sub" / "raw.mkv")]["error"] == ""  # re-encoded on the fly
    assert "5 video(s), 1 failed, 6 views each (2 clips x 3 crops)" in capsys.readouterr().err


def test_list_files_and_json(tiny_run, folder, tmp_path):
    lst = folder / "sub" / "list.txt"
    lst.write_text("# videos to label\nb.mp4 1\ndeeper/c.mp4\nmissing.mp4\n")
    out = tmp_path / "preds.json"
    args = ["predict", str(lst), str(folder / "a.mp4"), "--checkpoint", str(tiny_run)]
    assert main([*args, "--workers", "0", "--clips", "1", "--crops", "1", "--out", str(out)]) == 1
    rows = json.loads(out.read_text())
    assert [r["path"] for r in rows] == [
        str(folder / "sub" / "b.mp4"),
        str(folder / "sub" / "deeper" / "c.mp4"),
        str(folder / "sub" / "missing.mp4"),
        str(folder / "a.mp4"),
    ]
    assert "no such file" in rows[2]["error"] and rows[2]["top"] == []
    probs = _expected(tiny_run, folder / "a.mp4", 1, 1)
    assert rows[3]["top"][0]["probability"] == pytest.approx(probs.max(), abs=1e-5)


def test_list_file_labels_of_any_kind_and_paths_with_spaces(folder, tmp_path):
    """A trailing label (class name or index, after a space, tab or comma) is dropped; a path
    with spaces that exists as a whole is kept whole."""
    d = tmp_path / "lst"
    d.mkdir()
    shutil.copy(folder / "a.mp4", d / "my clip.mp4")
    shutil.copy(folder / "a.mp4", d / "b.mp4")
    lst = d / "list.txt"
    lines = [
        "my clip.mp4",
        "b.mp4 Walking",
        "b.mp4\tjump_rope",
        "b.mp4,ApplyEyeMakeup",
        "b.mp4 , 3",
    ]
    lst.write_text("\n".join([*lines, "my clip.mp4 Run", "gone.mp4 Walking", "gone two.mp4"]))
    want = ["my clip.mp4", *["b.mp4"] * 4, "my clip.mp4", "gone.mp4", "gone two.mp4"]
    assert cvpt.predictor.expand_inputs([lst]) == [str(d / w) for w in want]


def test_predictor_python_api_batches_without_changing_results(tiny_run, folder):
    videos = [folder / "a.mp4", folder / "sub" / "b.mp4", folder / "sub" / "deeper" / "c.mp4"]
    one = cvpt.Predictor.from_pretrained(tiny_run, device="cpu", batch_size=1)
    three = cvpt.Predictor.from_pretrained(tiny_run, device="cpu", batch_size=3)
    a, b = one.predict(videos), three.predict(videos)
    for x, y, v in zip(a, b, videos, strict=True):
        assert x.ok and y.ok and x.path == str(v)
        np.testing.assert_allclose(x.probs, y.probs, atol=1e-6)
        np.testing.assert_allclose(x.probs, _expected(tiny_run, v), atol=1e-6)
    assert one.views == 6 and len(one.classes) == 2
    unprepared = cvpt.Predictor.from_pretrained(tiny_run, device="cpu", prepare=False)
    res = unprepared(folder / "sub" / "raw.mkv")
    assert not res.ok and "cvpt prepare" in res.error


def test_predict_refuses_an_output_it_cannot_write(tiny_run, folder, capsys):
    args = ["predict", str(folder / "a.mp4"), "--checkpoint", str(tiny_run), "--out", "x.xlsx"]
    assert main(args) == 2
    assert "must end in .csv or .json" in capsys.readouterr().err


def test_a_checkpoint_shared_on_its_own(tiny_run, folder, tmp_path):
    """A checkpoint folder copied out of its run describes itself (config.json) and predicts
    exactly what the run does, with or without the run's config.yaml and classes.json."""
    ckpt = cvpt.Predictor.from_pretrained(tiny_run, device="cpu").source
    shared = tmp_path / "shared"
    shutil.copytree(ckpt, shared)
    b = cvpt.Predictor.from_pretrained(tiny_run, device="cpu")(folder / "a.mp4")
    alone = cvpt.Predictor.from_pretrained(shared, device="cpu")(folder / "a.mp4")
    np.testing.assert_array_equal(alone.probs, b.probs)
    for name in ("config.yaml", "classes.json"):
        shutil.copy(tiny_run / name, shared / name)
    a = cvpt.Predictor.from_pretrained(shared, device="cpu")(folder / "a.mp4")
    np.testing.assert_array_equal(a.probs, b.probs)
    with pytest.raises(cvpt.MissingFileError, match="no such run or checkpoint"):
        cvpt.Predictor.from_pretrained(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(cvpt.RunError, match="neither a run folder"):
        cvpt.Predictor.from_pretrained(tmp_path / "empty")


def test_a_save_pretrained_folder_predicts_on_its_own(tiny_run, folder, tmp_path, capsys):
    """model.save_pretrained(dir), moved elsewhere: Predictor and `cvpt predict` read it alone
    (config.json: method, options, classes, input spec, backbone identity) and give the run's
    probabilities; another backbone is refused unless allowed."""
    saved = cvpt.load_model(tiny_run).save_pretrained(tmp_path / "made")
    moved = tmp_path / "elsewhere" / "model"
    moved.parent.mkdir()
    shutil.move(saved, moved)
    assert sorted(p.name for p in moved.iterdir()) == ["config.json", "model.safetensors"]
    video = folder / "sub" / "b.mp4"
    got = cvpt.Predictor.from_pretrained(moved, device="cpu")(video)
    want = _expected(tiny_run, video)
    np.testing.assert_allclose(got.probs, want, atol=1e-6)
    out = tmp_path / "p.json"
    args = ["predict", str(video), "--checkpoint", str(moved), "--out", str(out)]
    assert main([*args, "--workers", "0"]) == 0
    top = json.loads(out.read_text())[0]["top"][0]
    assert top["class"] == str(int(np.argmax(want)))
    assert top["probability"] == pytest.approx(want.max(), abs=1e-5)
    config = json.loads((moved / "config.json").read_text())
    config["backbone_fingerprint"] = "0" * 64  # as if tuned on other weights
    (moved / "config.json").write_text(json.dumps(config))
    with pytest.raises(cvpt.BackboneMismatchError):
        cvpt.Predictor.from_pretrained(moved, device="cpu")
    other = cvpt.Predictor.from_pretrained(moved, device="cpu", allow_other_backbone=True)
    np.testing.assert_allclose(other(video).probs, want, atol=1e-6)


def test_a_damaged_source_is_predicted_with_its_warning(tiny_run, tmp_path):
    """A truncated H.264 file is re-encoded as far as it decodes; its prediction says so."""
    from conftest import write_raw
    from cvpt.data.generate import moving_scene

    whole = write_raw(
        tmp_path / "whole.mp4",
        moving_scene(frames=240, height=48, width=64),
        "libx264",
        container_options={"movflags": "+faststart"},
    )
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: int(whole.stat().st_size * 0.55)])
    (res,) = cvpt.Predictor.from_pretrained(tiny_run, device="cpu").predict([cut])
    assert res.ok and res.warning and "truncated" in res.warning
    assert sum(p for _, p in res.top) == pytest.approx(1.0, abs=1e-5)


def test_an_unprepared_video_is_predicted_from_windows_as_from_its_whole_reencode(
    tiny_run, folder, tmp_path, monkeypatch
):
    """raw.mkv (H.264, B-frames, one GOP of 60 frames): only the windows the views read are
    re-encoded, and the probabilities are those of the whole file re-encoded, exactly."""
    raw = folder / "sub" / "raw.mkv"
    predictor = cvpt.Predictor.from_pretrained(tiny_run, device="cpu")
    whole = cvpt.reencode(raw, tmp_path / "whole.mp4", short_side=predictor.transform.short_side)
    views = cvpt.read_views(whole.dst, predictor.transform, predictor.clips, predictor.clip)
    batch = {k: v[None] for k, v in views.items()}
    want = predict_batch(predictor.model, batch, torch.device("cpu"))[0]

    def refuse(*_a, **_k):
        raise AssertionError("re-encoded the whole file")

    monkeypatch.setattr(cvpt.predictor, "_reencoded", refuse)
    got = predictor(raw)
    assert got.ok, got.error
    np.testing.assert_array_equal(got.probs, want.numpy())


def test_the_table_shows_every_class_of_top():
    from cvpt.cli.predict import result_line

    top = [(f"class{k}", 0.3 - 0.05 * k) for k in range(5)]
    line = result_line(cvpt.Prediction("v.mp4", top, warning="2 damaged packet(s) skipped"))
    assert line.count("%") == 5 and "class4 10.0%" in line and "warning: 2 damaged" in line
    failed = result_line(cvpt.Prediction("v.mp4", error="no such file"))
    assert failed == "v.mp4: FAILED no such file"


def test_a_model_saved_without_an_input_spec_predicts_at_the_training_defaults(folder, tmp_path):
    """create_model + save_pretrained(class_names=...) in a user's own loop: no input spec.
    Predictor reads videos at cvpt train's defaults for the backbone's size (short side in
    the 256:224 ratio, MVs at ±20 px), with a warning naming the file: the same
    probabilities as the model saved with that spec written out."""
    backbone = create_backbone("vit_tiny", depth=1, img_size=32, num_classes=0)
    weights = cvpt.save_backbone(backbone, tmp_path / "frozen.safetensors")
    model = cvpt.create_model("cvpt", backbone="vit_tiny", num_classes=2,
                              backbone_checkpoint=weights)  # fmt: skip
    bare = model.save_pretrained(tmp_path / "bare", class_names=["left", "right"])
    spec = {"clip": model.clip.to_dict(), "size": 32, "short_side": 36, "mv_clip": 20.0}
    full = model.save_pretrained(tmp_path / "full", class_names=["left", "right"], input_spec=spec)
    video = folder / "a.mp4"
    with pytest.warns(
        UserWarning, match=r"bare/config\.json: records no input spec.*short side 36"
    ):
        got = cvpt.Predictor.from_pretrained(bare, device="cpu")(video)
    want = cvpt.Predictor.from_pretrained(full, device="cpu")(video)
    assert got.probs.shape == (2,) and np.array_equal(got.probs, want.probs)
    nameless = model.save_pretrained(tmp_path / "nameless")
    with pytest.raises(cvpt.RunError, match=r"nameless/config\.json: records no class names"):
        cvpt.Predictor.from_pretrained(nameless, device="cpu")
