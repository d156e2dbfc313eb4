"""Versioned saved formats: every file cvpt saves carries ``format_version``; files written
before (no version, as main wrote them) load with the same values through each format's one
``upgrade()``; a file of a newer version is refused, naming the file, its version and the cvpt
that wrote it."""

from __future__ import annotations

import importlib
import json
import pkgutil
import shutil
import threading
import time

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
from cvpt.models.methods import list_methods
from cvpt.models.registry import create_backbone
from cvpt.models.tuned import CONFIG, DIGEST, WEIGHTS, upgrade
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
        ("cvpt", {}, lambda c: c["clip"].pop("gop_size")),  # a clip key added later: default
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


# ---------------------------------------------------------------- a tuned model's files, checked


def _edit_config(folder, change) -> None:
    config = json.loads((folder / CONFIG).read_text())
    change(config)
    (folder / CONFIG).write_text(json.dumps(config))


def _set(*path_value):
    *path, value = path_value

    def change(c):
        for key in path[:-1]:
            c = c[key]
        c[path[-1]] = value

    return change


def _tuned(method, seed, **options):
    """A model of ``method`` on the backbone of :func:`_saved`, its tuned tensors random from
    ``seed``."""
    torch.manual_seed(0)
    model = cvpt.create_model(method, **TINY, **options)
    model.origin["seed"] = 0
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.2 * torch.randn(p.shape, generator=g))
    return model.eval()


@pytest.mark.parametrize("swap", ["weights", "config"])
@pytest.mark.parametrize("method", ["lora", "cvpt"])
def test_the_files_of_two_saves_are_refused_as_a_pair(tmp_path, method, swap):
    """The weights of one save beside the config.json of another (a load during a save):
    refused naming both files, never a mixed model; without the digest (older files) as
    before."""
    _, a = _saved(tmp_path / "a", method)
    b = _tuned(method, 1).save_pretrained(tmp_path / "b", class_names=["a", "b"])
    name = WEIGHTS if swap == "weights" else CONFIG
    shutil.copy(b / name, a / name)
    with pytest.raises(cvpt.CheckpointError) as e:
        cvpt.load_model(a)
    message = str(e.value)
    assert message.startswith(f"{a / WEIGHTS}: ") and f"and {a / CONFIG} were written by" in message
    assert "another save in progress? load again" in message
    _edit_config(a, lambda c: c.pop(DIGEST))  # a file from before the digest: loads as it did
    loaded = cvpt.load_model(a)
    expected = load_file(a / WEIGHTS)
    assert all(torch.equal(v, loaded.tunable_state_dict()[k]) for k, v in expected.items())


def test_loads_during_saves_give_one_model_or_the_error(tmp_path):
    """Saves of two models into one folder while it is loaded (~2 s): every load is one of
    them whole, or the error that says to load again."""
    models = [_tuned("lora", seed, lora_alpha=8.0 * seed) for seed in (1, 2)]
    expected = [_logits(m) for m in models]
    folder = models[0].save_pretrained(tmp_path / "m", class_names=["a", "b"])
    stop = threading.Event()

    def writer():
        i = 0
        while not stop.is_set():
            models[i % 2].save_pretrained(folder)
            i += 1

    thread = threading.Thread(target=writer)
    thread.start()
    seen, start = {"X": 0, "Y": 0, "error": 0}, time.monotonic()
    try:
        while time.monotonic() - start < 2:
            try:
                out = _logits(cvpt.load_model(folder))
            except cvpt.CheckpointError as e:
                assert "another save in progress? load again" in str(e)
                seen["error"] += 1
                continue
            mine = [torch.equal(out, x) for x in expected]
            assert any(mine), "a load gave a model that is neither save"
            seen["X" if mine[0] else "Y"] += 1
    finally:
        stop.set()
        thread.join()
    assert seen["X"] + seen["Y"] > 0, seen


def test_a_current_model_without_one_of_its_options_is_refused(tmp_path):
    """Every option of every method: a version-1 config.json without it is refused naming the
    file and the option (not read at today's default)."""
    for method in list_methods():
        _, folder = _saved(tmp_path / method, method)
        saved = json.loads((folder / CONFIG).read_text())
        for option in saved["options"]:
            config = {
                **saved,
                "options": {k: v for k, v in saved["options"].items() if k != option},
            }
            with pytest.raises(cvpt.CheckpointError) as e:
                upgrade(config, folder / CONFIG)
            assert str(e.value) == (
                f"{folder / CONFIG}: options without [{option!r}] (method {method!r} has them)"
            )


@pytest.mark.parametrize(
    "method, options, drop, value",
    [
        ("cvpt", {"sccp_update": "replace"}, "sccp_update", "replace"),  # recorded_before
        ("lora", {"lora_alpha": 32.0}, "lora_alpha", 8.0),  # recorded from the start: default
        ("cvpt", {}, "pool", "all"),
    ],
)
def test_an_unversioned_model_without_an_option_reads_its_times_value(
    tmp_path, method, options, drop, value
):
    model, folder = _saved(tmp_path, method, **options)
    _unversioned(folder / CONFIG, lambda c: c["options"].pop(drop))
    loaded = cvpt.load_model(folder)
    assert getattr(loaded.options, drop) == value
    if getattr(model.options, drop) == value:
        torch.testing.assert_close(_logits(loaded), _logits(model), atol=0, rtol=0)


@pytest.mark.parametrize(
    "change, says",
    [
        (_set("options", [1]), "options [1] is not a mapping"),
        (_set("options", "lora_rank", 1), "options ['lora_rank'] are not options of method 'cvpt'"),
        (_set("options", "bogus", 1), "options ['bogus'] are not options of method 'cvpt'"),
        (_set("method", "nope"), "method 'nope' is not one of"),
        (_set("clip", "num_gops", "x"), "num_gops 'x' is not a whole number"),
        (_set("clip", "num_gops", 2.5), "num_gops 2.5 is not a whole number"),
        (_set("clip", "p_per_gop", True), "p_per_gop True is not a whole number"),
        (_set("clip", "num_gops", 0), "num_gops and p_per_gop must be ≥ 1"),
        (_set("clip", "residual_interp", "cubic"), "residual_interp must be one of"),
        (_set("clip", "foo", 1), "keys ['foo'] are not those of a clip spec"),
        (lambda c: c["clip"].pop("gop_size"), "keys ['gop_size'] are not those of a clip spec"),
        (_set("backbone_family", "mvit"), "backbone_family: unknown backbone family 'mvit'"),
        (_set("num_classes", 3), "num_classes 3 is not its backbone_config's head (2 classes)"),
        (_set("num_classes", "2"), "num_classes '2' is not of the type"),
        (_set("class_names", ["a"]), "class_names holds 1 names for num_classes 2"),
        (_set("class_names", ["a", "b", "c"]), "class_names holds 3 names for num_classes 2"),
        (_set("class_names", ["a", 2]), "class_names ['a', 2] are not all strings"),
        (_set("seed", "0"), "seed '0' is not of the type"),
        (_set("backbone_config", [1]), "backbone_config [1] is not of the type"),
        (_set("options", "prompt_embed_rank", "x"), "describes no model cvpt can build"),
        (_set("options", "pool", "nowhere"), "describes no model cvpt can build"),
    ],
)
def test_a_hand_edited_config_is_refused_naming_file_and_field(tmp_path, change, says):
    _, folder = _saved(tmp_path)
    _edit_config(folder, change)
    with pytest.raises(cvpt.CheckpointError) as e:
        cvpt.load_model(folder)
    assert str(e.value).startswith(f"{folder / CONFIG}: ") and says in str(e.value)


@pytest.mark.parametrize(
    "change, says",
    [
        (_set("clip", "p_per_gop", 2), "_embed.proj.weight: saved"),  # its shape: the field
        (_set("options", "prompt_embed_rank", 2), "missing"),
    ],
)
def test_a_config_that_does_not_describe_its_weights_is_refused(tmp_path, change, says):
    _, folder = _saved(tmp_path)
    _edit_config(folder, change)
    with pytest.raises(cvpt.CheckpointError) as e:
        cvpt.load_model(folder)
    message = str(e.value)
    assert message.startswith(f"{folder / WEIGHTS}: does not fit the model {CONFIG} describes")
    assert says in message and "options, clip or num_classes" in message


@pytest.mark.parametrize(
    "damage, says",
    [
        (lambda f: f.unlink(), "missing: the model's tuned tensors"),
        (lambda f: f.write_bytes(b"garbage\n"), "not a safetensors file"),
        (lambda f: f.write_bytes(f.read_bytes()[:-7]), "not a safetensors file"),
        (lambda f: f.write_bytes(b""), "not a safetensors file"),
    ],
)
def test_a_damaged_weights_file_is_refused_naming_it(tmp_path, damage, says):
    _, folder = _saved(tmp_path)
    damage(folder / WEIGHTS)
    with pytest.raises(cvpt.CheckpointError) as e:
        cvpt.load_model(folder)
    assert str(e.value).startswith(f"{folder / WEIGHTS}: {says}")


@pytest.mark.parametrize(
    "pointer, says",
    [
        ("{", "not JSON"),
        ("[1]", "not a JSON object"),
        ('{"format_version": 1}', "checkpoint None is not the name of a checkpoint folder"),
        ('{"checkpoint": 3}', "checkpoint 3 is not the name"),
        ('{"checkpoint": "step-9"}', "checkpoint 'step-9' is not in"),
        ('{"checkpoint": ".."}', "checkpoint '..' is not the name"),
        ('{"checkpoint": "../../elsewhere"}', "checkpoint '../../elsewhere' is not the name"),
        ('{"checkpoint": "/tmp"}', "checkpoint '/tmp' is not the name"),
    ],
)
def test_a_hand_edited_last_json_is_refused_naming_it(tmp_path, pointer, says):
    _, folder = _saved(tmp_path)
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    shutil.copytree(folder, run / "checkpoints" / "step-0000001")
    (tmp_path / "elsewhere").mkdir()
    file = run / "checkpoints" / "last.json"
    file.write_text('{"format_version": 1, "checkpoint": "step-0000001"}')
    assert cvpt.load_model(run).loaded_from == run / "checkpoints" / "step-0000001"
    file.write_text(pointer)
    for read in (lambda: last_checkpoint(run), lambda: cvpt.load_model(run)):
        with pytest.raises(cvpt.RunError) as e:
            read()
        assert str(e.value).startswith(f"{file}: ") and says in str(e.value)
