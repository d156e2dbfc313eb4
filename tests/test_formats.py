"""Versioned saved formats: every file cvpt saves carries ``format_version``; files written
before (no version, as main wrote them) load with the same values through each format's one
``upgrade()``; a file of a newer version is refused, naming the file, its version and the cvpt
that wrote it."""

from __future__ import annotations

import importlib
import json
import pkgutil
import shutil

import pytest
import torch
import yaml
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import cvpt
from cvpt.demo.suite import DemoConfig, _previous_runs
from cvpt.formats import FORMAT_KEYS, VERSION_KEY, WRITER_KEY, Format
from cvpt.models.backbone_weights import load_backbone
from cvpt.models.flops import model_inputs
from cvpt.models.registry import create_backbone
from cvpt.models.tuned import CONFIG
from cvpt.training.checkpoint import STATE, last_checkpoint, load_checkpoint
from cvpt.training.config import load_run_config
from cvpt.training.trainer import build_model

TINY = {"backbone": "vit_tiny", "num_classes": 2, "backbone_options": {"depth": 1, "img_size": 32}}


def _all_formats() -> dict[str, Format]:
    """Every :class:`Format` a module of cvpt defines (its constant), by name."""
    found: dict[str, Format] = {}
    for info in pkgutil.walk_packages(cvpt.__path__, "cvpt."):
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if isinstance(value, Format):
                assert found.get(value.name, value) == value, value.name  # one per name
                found[value.name] = value
    return found


FORMATS = _all_formats()


def test_every_writer_has_its_format():
    """The files cvpt saves, each a format of its own (a new writer adds one here)."""
    assert sorted(FORMATS) == sorted(
        f"cvpt-{n}"
        for n in (
            "tuned-model", "run-config", "run-checkpoint", "backbone", "prepare-report",
            "demo-results", "demo-cache", "bench-results", "eval-metrics", "run-summary",
            "visualize-summary", "pretrain-result", "tracker-ids", "synth-settings",
            "dataset-options",
        )
    )  # fmt: skip


@pytest.mark.parametrize("name", sorted(FORMATS))
@pytest.mark.parametrize("ahead", [1, 2, 7])
@pytest.mark.parametrize("writer", ["0.9.3", None])
def test_a_newer_version_is_refused_naming_file_version_and_cvpt(name, ahead, writer, tmp_path):
    fmt = FORMATS[name]
    data = fmt.stamp({"x": 1})
    assert data[VERSION_KEY] == fmt.version and data[WRITER_KEY] == cvpt.__version__
    assert fmt.upgrade(data, tmp_path / "f.json") == {"x": 1}
    assert fmt.upgrade({"x": 1}, tmp_path / "f.json") == {"x": 1}  # unversioned: version 0
    newer = {**data, VERSION_KEY: fmt.version + ahead, WRITER_KEY: writer}
    with pytest.raises(cvpt.FormatVersionError) as e:
        fmt.upgrade(newer, tmp_path / "f.json")
    msg = str(e.value)
    assert msg.startswith(f"{tmp_path / 'f.json'}: {name} version {fmt.version + ahead}")
    assert f"reads versions up to {fmt.version}" in msg
    assert (f"cvpt {writer}" if writer else f"a cvpt newer than {cvpt.__version__}") in msg
    for bad in (-1, 1.5, "x", True):
        with pytest.raises(cvpt.FormatVersionError, match="not a version number"):
            fmt.upgrade({VERSION_KEY: bad}, "f")


# ---------------------------------------------------------------- tuned-model folders


def _saved(tmp_path, method="cvpt", **options):
    torch.manual_seed(0)
    model = cvpt.create_model(method, **TINY, **options)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.01)  # tuned values, not the initialisation
    model.origin["seed"] = 0
    model.save_pretrained(tmp_path / "m", class_names=["a", "b"])
    return model.eval(), tmp_path / "m"


def _unversioned(file, change=None) -> dict:
    """Rewrite a JSON file as main wrote it (no version keys), then apply ``change``."""
    data = {k: v for k, v in json.loads(file.read_text()).items() if k not in FORMAT_KEYS}
    if change:
        change(data)
    file.write_text(json.dumps(data))
    return data


def _logits(model):
    g = torch.Generator().manual_seed(1)
    x = tuple(torch.randn(t.shape, generator=g) for t in model_inputs(model, 1, size=32))
    with torch.no_grad():
        return model(*x)


def _drop(*keys):
    return lambda c: [c.pop(k) for k in keys]


def _sccp_skip(value):
    def change(c):
        del c["options"]["sccp_update"]
        c["options"]["sccp_skip"] = value

    return change


@pytest.mark.parametrize(
    "method, options, change",
    [
        ("cvpt", {}, None),  # exactly as main writes today
        ("linear", {}, None),
        ("cvpt", {}, _drop("clip")),  # before the model carried its clip
        ("cvpt", {}, _drop("clip", "backbone_family", "class_names", "input")),
        ("cvpt", {"sccp_update": "add"}, _sccp_skip(True)),  # before the option's rename
        ("cvpt", {"sccp_update": "replace"}, _sccp_skip(False)),
        ("vpt", {}, _drop("backbone_fingerprint", "backbone_source", "backbone")),
    ],
)
def test_an_unversioned_model_folder_loads_the_same_model(tmp_path, method, options, change):
    model, folder = _saved(tmp_path, method, **options)
    config = _unversioned(folder / CONFIG, change)
    loaded = cvpt.load_model(folder)
    assert loaded.method == method and loaded.clip == model.clip
    assert loaded.options == model.options
    assert loaded.class_names == config.get("class_names")
    torch.testing.assert_close(_logits(loaded), _logits(model), atol=0, rtol=0)


def test_an_unversioned_model_without_its_clip_reads_its_input_clip(tmp_path):
    torch.manual_seed(0)
    model = cvpt.create_model("cvpt", clip={"num_gops": 8}, **TINY)
    model.origin["seed"] = 0
    model.save_pretrained(tmp_path / "m", input_spec={"clip": model.clip.to_dict(), "size": 32})
    _unversioned(tmp_path / "m" / CONFIG, _drop("clip"))
    assert cvpt.load_model(tmp_path / "m").clip.num_gops == 8


def test_a_model_folder_of_a_newer_cvpt_is_refused(tmp_path):
    _, folder = _saved(tmp_path)
    config = json.loads((folder / CONFIG).read_text())
    assert config[VERSION_KEY] == 1 and config[WRITER_KEY] == cvpt.__version__
    config.update({VERSION_KEY: 2, WRITER_KEY: "0.4.0", "clip": "a field of another shape"})
    (folder / CONFIG).write_text(json.dumps(config))
    with pytest.raises(cvpt.FormatVersionError) as e:
        cvpt.load_model(folder)
    assert str(e.value).startswith(f"{folder / CONFIG}: cvpt-tuned-model version 2, written by")
    assert "cvpt 0.4.0" in str(e.value)


def test_a_current_model_folder_missing_a_field_is_refused(tmp_path):
    _, folder = _saved(tmp_path)
    config = json.loads((folder / CONFIG).read_text())
    del config["clip"]  # a version-1 file lacks nothing: not silently the default geometry
    (folder / CONFIG).write_text(json.dumps(config))
    with pytest.raises(cvpt.CheckpointError, match=r"version 1 without \['clip'\]"):
        cvpt.load_model(folder)


# ---------------------------------------------------------------- runs


@pytest.fixture
def old_run(tiny_run, tmp_path):
    """A copy of :func:`tiny_run` with every file as main wrote it: no version anywhere."""
    run = shutil.copytree(tiny_run, tmp_path / "run")
    config = yaml.safe_load((run / "config.yaml").read_text())
    for key in FORMAT_KEYS:
        del config[key]
    (run / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    _unversioned(run / "checkpoints" / "last.json")
    ckpt = last_checkpoint(run)
    _unversioned(ckpt / CONFIG)
    state = torch.load(ckpt / STATE, weights_only=True)
    torch.save({k: v for k, v in state.items() if k not in FORMAT_KEYS}, ckpt / STATE)
    return run


def test_an_unversioned_run_loads_the_same(tiny_run, old_run):
    assert load_run_config(old_run) == load_run_config(tiny_run)
    assert last_checkpoint(old_run).name == last_checkpoint(tiny_run).name
    want = cvpt.load_model(tiny_run)
    got = cvpt.load_model(old_run)
    assert got.class_names == want.class_names and got.input_spec == want.input_spec
    torch.testing.assert_close(_logits(got), _logits(want), atol=0, rtol=0)
    # what --resume reads: the same progress and tensors
    models = [build_model(load_run_config(r), 2, torch.device("cpu")) for r in (tiny_run, old_run)]
    saved = yaml.safe_load((tiny_run / "config.yaml").read_text())
    progress = [
        load_checkpoint(last_checkpoint(r), m, run_config=saved, world=1)
        for r, m in zip((tiny_run, old_run), models, strict=True)
    ]
    assert progress[0] == progress[1]
    torch.testing.assert_close(_logits(models[1].eval()), _logits(want), atol=0, rtol=0)


@pytest.mark.parametrize("batch, processes", [(2, 1), (3, 2), (5, 4)])
def test_an_old_progress_gets_its_global_position(old_run, batch, processes):
    """Before the position was global (no samples_in_epoch), and before the processes and
    effective batch were recorded: both from the run's config.yaml."""
    ckpt = last_checkpoint(old_run)
    state = torch.load(ckpt / STATE, weights_only=True)
    for key in ("samples_in_epoch", "processes", "effective_batch"):
        state["progress"].pop(key)
    torch.save(state, ckpt / STATE)
    model = build_model(load_run_config(old_run), 2, torch.device("cpu"))
    resolved = {"processes": processes, "effective_batch": batch * processes * 2}
    progress = load_checkpoint(
        ckpt, model, run_config={"batch_size": batch, "resolved": resolved}, world=8
    )
    assert progress["processes"] == processes
    assert progress["effective_batch"] == batch * processes * 2
    assert progress["samples_in_epoch"] == progress["batch_in_epoch"] * batch * processes


def test_checkpoint_tensors_under_their_old_name_load(old_run):
    ckpt = last_checkpoint(old_run)
    (ckpt / "model.safetensors").rename(ckpt / "tunable.safetensors")
    model = build_model(load_run_config(old_run), 2, torch.device("cpu"))
    load_checkpoint(ckpt, model)
    want = load_file(ckpt / "tunable.safetensors")
    assert all(torch.equal(model.tunable_state_dict()[k], v) for k, v in want.items())


@pytest.mark.parametrize("file", ["config.yaml", "last.json", "state.pt", "config.json"])
def test_a_run_file_of_a_newer_cvpt_is_refused(tiny_run, tmp_path, file):
    run = shutil.copytree(tiny_run, tmp_path / "run")
    ckpt = last_checkpoint(run)
    path = {
        "config.yaml": run / "config.yaml",
        "last.json": run / "checkpoints" / "last.json",
        "state.pt": ckpt / STATE,
        "config.json": ckpt / CONFIG,
    }[file]
    newer = {VERSION_KEY: 5, WRITER_KEY: "1.2.0"}
    if file == "state.pt":
        torch.save({**torch.load(path, weights_only=True), **newer}, path)
    elif file == "config.yaml":
        path.write_text(yaml.safe_dump({**yaml.safe_load(path.read_text()), **newer}))
    else:
        path.write_text(json.dumps({**json.loads(path.read_text()), **newer}))
    with pytest.raises(cvpt.FormatVersionError, match=r"version 5, written by cvpt 1\.2\.0") as e:
        if file == "config.yaml":
            load_run_config(run)
        elif file == "state.pt":
            load_checkpoint(ckpt, build_model(load_run_config(run), 2, torch.device("cpu")))
        else:
            cvpt.load_model(run)
    assert str(e.value).startswith(str(path))


# ---------------------------------------------------------------- other files read back


@pytest.mark.parametrize("family", [None, "vit", "swin"])
def test_an_unversioned_backbone_file_loads_the_same_weights(tmp_path, family):
    """``None``: a file from before Swin, without a family (a ViT)."""
    torch.manual_seed(0)
    options = (
        {"depth": 1}
        if family != "swin"
        else {"embed_dim": 16, "depths": (1, 1), "num_heads": (1, 2)}
    )
    net = create_backbone("swin_tiny" if family == "swin" else "vit_tiny", **options)
    path = cvpt.save_backbone(net, tmp_path / "b.safetensors")
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    assert meta[VERSION_KEY] == "1"
    meta = {k: v for k, v in meta.items() if k not in FORMAT_KEYS}
    if family is None:
        del meta["cvpt_backbone_family"]
    save_file(load_file(path), str(path), metadata=meta)
    back = load_backbone(path)
    assert back.family == net.family
    assert all(torch.equal(back.state_dict()[k], v) for k, v in net.state_dict().items())
    save_file(load_file(path), str(path), metadata={**meta, VERSION_KEY: "3"})
    with pytest.raises(cvpt.FormatVersionError, match="cvpt-backbone version 3"):
        load_backbone(path)


def test_an_unversioned_demo_results_keeps_its_runs(tmp_path):
    config = DemoConfig()
    runs = [{"name": "cvpt", "seed": 0, "top1": 0.5}, {"name": "linear", "seed": 0, "top1": 0.25}]
    results = {
        "config": config.to_dict(),
        "methods": {r["name"]: {"runs": [r]} for r in runs},
        "backbone_sha256": "ab",
    }
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))
    assert _previous_runs(path, config, {"backbone_sha256": "ab"}) == runs
    path.write_text(json.dumps({**results, VERSION_KEY: 2}))
    with pytest.raises(cvpt.FormatVersionError, match="cvpt-demo-results version 2"):
        _previous_runs(path, config, {"backbone_sha256": "ab"})
    assert path.exists()  # a newer demo's runs are not set aside as foreign


@pytest.mark.parametrize("shared", [False, True])
def test_a_checkpoint_from_before_model_folders_loads_the_same_model(tiny_run, old_run, shared):
    """No config.json, tensors in tunable.safetensors: described by its run's config.yaml and
    classes.json (in the run, or copied beside a checkpoint shared alone)."""
    ckpt = last_checkpoint(old_run)
    (ckpt / CONFIG).unlink()
    (ckpt / "model.safetensors").rename(ckpt / "tunable.safetensors")
    source = old_run
    if shared:
        source = shutil.copytree(ckpt, old_run.parent / "alone")
        with pytest.raises(cvpt.RunError, match=r"config\.yaml and classes\.json are not beside"):
            cvpt.load_model(source)
        for name in ("config.yaml", "classes.json"):
            shutil.copy(old_run / name, source / name)
    want, got = cvpt.load_model(tiny_run), cvpt.load_model(source)
    assert got.method == want.method and got.options == want.options and got.clip == want.clip
    assert got.class_names == want.class_names and got.input_spec == want.input_spec
    assert got.identity == want.identity
    torch.testing.assert_close(_logits(got), _logits(want), atol=0, rtol=0)


@pytest.mark.parametrize(
    "writer, says",
    [
        ("9.9.0", "written by cvpt 9.9.0; this cvpt ({v}) reads versions up to 1: upgrade to "
         "cvpt 9.9.0 or later"),
        ("{v}", "written by another build of cvpt {v} (a later development version); this cvpt "
         "({v}) reads versions up to 1: install the build of cvpt that wrote it"),
        (None, "written by a cvpt newer than {v}; this cvpt ({v}) reads versions up to 1: "
         "upgrade cvpt"),
    ],
)  # fmt: skip
def test_a_newer_version_says_what_to_install_whoever_wrote_it(tmp_path, writer, says):
    """The refusal never contradicts itself (a file of this cvpt's own version number, from a
    later development build, is not told to upgrade to the version it already has)."""
    v = cvpt.__version__
    data = {VERSION_KEY: 2, **({WRITER_KEY: writer.format(v=v)} if writer else {})}
    with pytest.raises(cvpt.FormatVersionError) as e:
        Format("cvpt-x", 1).version_of(data, tmp_path / "x.json")
    assert str(e.value) == f"{tmp_path / 'x.json'}: cvpt-x version 2, " + says.format(v=v)
