"""Backbones by Hugging Face hub id, offline, from a cache laid out as huggingface_hub lays it
out (models--org--name/{refs, snapshots/<commit>, blobs}), holding a tiny random VideoMAE in
both key layouts (transformers 4.x names as published, and 5.x in-memory names)."""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from conftest import hf_videomae_names
from cvpt.models import CheckpointError, load_backbone
from cvpt.models.hub import parse_hub_id

pytest.importorskip("huggingface_hub")

SIZE = dict(
    image_size=32,
    patch_size=16,
    num_frames=4,
    tubelet_size=2,
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=160,
    num_labels=3,
)
COMMIT = {"4x": "a" * 40, "5x": "b" * 40, "5x-old": "c" * 40}


def _add_snapshot(cache: Path, repo: str, commit: str, files: dict[str, bytes], refs=()):
    """One commit of ``repo`` as huggingface_hub stores it: content-addressed blobs, the
    snapshot's files as relative symlinks to them, refs naming the commit."""
    root = cache / ("models--" + repo.replace("/", "--"))
    (root / "blobs").mkdir(parents=True, exist_ok=True)
    snap = root / "snapshots" / commit
    snap.mkdir(parents=True)
    for name, data in files.items():
        blob = hashlib.sha256(data).hexdigest()
        (root / "blobs" / blob).write_bytes(data)
        (snap / name).symlink_to(Path("..") / ".." / "blobs" / blob)
    (root / "refs").mkdir(exist_ok=True)
    for ref in refs:
        (root / "refs" / ref).write_text(commit)


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory):
    """``acme/videomae-tiny`` (4.x keys, main) and ``acme/videomae-tiny-5x`` (5.x keys; main
    and an older commit tagged v1 with other weights); the HF models to compare with. Needs
    transformers (a test-only dependency): the tests without this cache run without it."""
    transformers = pytest.importorskip("transformers")
    cache = tmp_path_factory.mktemp("hf") / "hub"
    tmp = tmp_path_factory.mktemp("hf-save")
    models = {}
    for k, seed in (("4x", 0), ("5x", 1), ("5x-old", 2)):
        torch.manual_seed(seed)
        models[k] = transformers.VideoMAEForVideoClassification(
            transformers.VideoMAEConfig(**SIZE)
        ).eval()
    models["4x"].save_pretrained(tmp / "4x")  # writes the published 4.x names (q_bias)
    config = (tmp / "4x" / "config.json").read_bytes()
    _add_snapshot(
        cache,
        "acme/videomae-tiny",
        COMMIT["4x"],
        {
            "config.json": config,
            "model.safetensors": (tmp / "4x" / "model.safetensors").read_bytes(),
        },
        refs=["main"],
    )
    # the same weights in two shards and their index, as transformers writes a large model
    sd = load_file(tmp / "4x" / "model.safetensors")
    shards = {f"model-0000{i + 1}-of-00002.safetensors": sorted(sd)[i::2] for i in range(2)}
    files = {"config.json": config}
    for shard, keys in shards.items():
        save_file({k: sd[k] for k in keys}, tmp / shard)
        files[shard] = (tmp / shard).read_bytes()
    index = {"weight_map": {k: shard for shard, keys in shards.items() for k in keys}}
    files["model.safetensors.index.json"] = json.dumps(index).encode()
    _add_snapshot(cache, "acme/videomae-tiny-sharded", "e" * 40, files, refs=["main"])
    for k, refs in (("5x-old", ["v1"]), ("5x", ["main"])):
        sd = {n: v.contiguous() for n, v in models[k].state_dict().items()}  # 5.x names
        save_file(sd, tmp / f"{k}.safetensors")
        files = {
            "config.json": config,
            "model.safetensors": (tmp / f"{k}.safetensors").read_bytes(),
        }
        _add_snapshot(cache, "acme/videomae-tiny-5x", COMMIT[k], files, refs=refs)
    return cache, models


def _offline(cache: Path, code: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter with only this cache and HF_HUB_OFFLINE=1 (the hub's
    address a closed port on loopback besides: nothing can reach the network)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_HUB_CACHE=str(cache), HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "home"))
    env.update(HF_ENDPOINT="http://127.0.0.1:9")
    return subprocess.run(
        [sys.executable, "-c", code, *args], cwd=tmp_path, env=env, capture_output=True, text=True
    )


LOAD = """
import json, sys, torch
import cvpt
x = torch.randn(2, 3, 4, 32, 32, generator=torch.Generator().manual_seed(5))
out = {}
for spec in json.loads(sys.argv[1] if len(sys.argv) > 1 else '{ids}'):
    with torch.no_grad():
        out[spec] = cvpt.load_backbone(spec, verbose=False).eval()(x)
model = cvpt.create_model("cvpt", backbone_checkpoint="hf-hub:acme/videomae-tiny", num_classes=7)
assert model.backbone.head.out_features == 7
torch.save(out, "logits.pt")
"""


def test_hub_ids_load_offline_from_the_cache(hub_cache, tmp_path):
    cache, models = hub_cache
    ids = {
        "acme/videomae-tiny": "4x",
        "hf-hub:acme/videomae-tiny": "4x",
        f"hf-hub:acme/videomae-tiny@{COMMIT['4x']}": "4x",
        "acme/videomae-tiny-5x": "5x",
        "acme/videomae-tiny-sharded": "4x",
        "hf-hub:acme/videomae-tiny-5x@main": "5x",
        "hf-hub:acme/videomae-tiny-5x@v1": "5x-old",
        f"acme/videomae-tiny-5x@{COMMIT['5x-old']}": "5x-old",
    }
    proc = _offline(cache, LOAD.replace("{ids}", json.dumps(list(ids))), tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = torch.load(tmp_path / "logits.pt", weights_only=True)
    x = torch.randn(2, 3, 4, 32, 32, generator=torch.Generator().manual_seed(5))
    for spec, k in ids.items():
        with torch.no_grad():
            want = models[k](pixel_values=x.permute(0, 2, 1, 3, 4)).logits
        torch.testing.assert_close(got[spec], want, atol=1e-4, rtol=0, msg=spec)


def test_a_model_neither_cached_nor_reachable_is_a_clear_error(hub_cache, tmp_path):
    cache, _ = hub_cache
    code = """
import cvpt
for spec in ("acme/absent", "hf-hub:acme/videomae-tiny@v9"):
    try:
        cvpt.load_backbone(spec)
    except cvpt.CheckpointError as e:
        print(e)
"""
    proc = _offline(cache, code, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("acme/absent: not in the local Hugging Face cache")
    assert str(cache) in lines[0] and "HF_HUB_OFFLINE=1" in lines[0]
    assert "no local path of that name either" in lines[0]
    assert "at revision v9" in lines[1]
    (tmp_path / "train.txt").write_text("a.mp4 0\n")
    argv = ["train", "--out", "r", "--set", "dataset=list", "root=.", "annotations=train.txt"]
    argv += ["eval_subset=train"]
    code = f"import sys; from cvpt.cli.main import main; sys.exit(main({argv!r} + sys.argv[1:]))"
    proc = _offline(cache, code, tmp_path, "backbone_checkpoint=acme/absent")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "acme/absent: not in the local Hugging Face cache" in proc.stderr


def test_without_huggingface_hub_the_error_says_what_to_install(hub_cache, tmp_path):
    cache, _ = hub_cache
    code = """
import sys
sys.modules["huggingface_hub"] = None  # as if not installed: every import of it fails
import cvpt
try:
    cvpt.load_backbone("acme/videomae-tiny")
except cvpt.MissingDependencyError as e:
    print(e)
"""
    proc = _offline(cache, code, tmp_path)
    assert "pip install 'cvpt[hub]'" in proc.stdout, proc.stderr[-2000:]


def test_paths_are_never_taken_for_hub_ids(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert parse_hub_id("acme/model") == ("acme/model", None)
    assert parse_hub_id("hf-hub:acme/model@v1.0") == ("acme/model", "v1.0")
    for path in ("checkpoints/vit_b.pth", "./acme/model", "/abs/acme", "model.safetensors"):
        assert parse_hub_id(path) is None
    (tmp_path / "acme" / "model").mkdir(parents=True)  # a local folder wins over the hub
    assert parse_hub_id("acme/model") is None
    with pytest.raises(CheckpointError, match="no such file or folder"):
        load_backbone("checkpoints/vit_b.pth")
    with pytest.raises(CheckpointError, match="not a hub id"):
        parse_hub_id("hf-hub:no-slash")


# push_to_hub's two calls to the hub, replaced: the pushed files land in the cache as a new
# commit of the repository, as a download after the push would leave them
FAKE_PUSH = (
    """
import hashlib, os, types
from pathlib import Path
import huggingface_hub
"""
    + inspect.getsource(_add_snapshot)
    + """
calls = []


def create_repo(self, repo_id, **kw):
    calls.append(("create_repo", repo_id))


def upload_folder(self, *, repo_id, folder_path, **kw):
    files = {p.name: p.read_bytes() for p in Path(folder_path).iterdir()}
    calls.append(("upload_folder", repo_id, sorted(files)))
    _add_snapshot(Path(os.environ["HF_HUB_CACHE"]), repo_id, "d" * 40, files, refs=["main"])
    return types.SimpleNamespace(commit_url=f"https://hub.invalid/{repo_id}/commit/" + "d" * 40)


huggingface_hub.HfApi.create_repo = create_repo
huggingface_hub.HfApi.upload_folder = upload_folder
"""
)

SHARE = """
import os, shutil, torch
import cvpt

model = cvpt.create_model("cvpt", backbone_checkpoint="acme/videomae-tiny", num_classes=3)
assert model.origin["backbone_checkpoint"] == "hf-hub:acme/videomae-tiny@" + "a" * 40
g = torch.Generator().manual_seed(0)
with torch.no_grad():
    for p in model.parameters():
        if p.requires_grad:
            p.add_(0.1 * torch.randn(p.shape, generator=g))
model.eval()
x = [torch.randn(2, *s, generator=g) for s in ((3, 4, 32, 32), (2, 12, 32, 32), (3, 12, 32, 32))]
with torch.no_grad():
    want = model(*x)
url = model.push_to_hub("acme/tuned", class_names=["a", "b", "c"])
assert url.endswith("d" * 40), url
assert calls == [
    ("create_repo", "acme/tuned"),
    ("upload_folder", "acme/tuned", ["config.json", "model.safetensors"]),
]
got = {}
for spec in ("acme/tuned", "hf-hub:acme/tuned@" + "d" * 40):
    loaded = cvpt.load_model(spec)
    assert loaded.class_names == ["a", "b", "c"], spec
    got[spec] = loaded
model.save_pretrained("mine")  # a copied folder, loaded from another working directory
shutil.copytree("mine", "elsewhere/copied")
shutil.rmtree("mine")
os.chdir("elsewhere")
got["copied"] = cvpt.load_model("copied")
for spec, loaded in got.items():
    with torch.no_grad():
        assert torch.equal(loaded(*x), want), spec
print("shared", len(got))
"""


def test_a_model_tuned_on_a_hub_id_is_shared_by_push_and_by_copy(hub_cache, tmp_path):
    """``push_to_hub`` (its upload replaced: nothing reaches the network) then
    ``cvpt.load_model("org/name")`` from the cache, and a copied folder loaded elsewhere: the
    backbone is recorded as the hub id at its commit, so each gives the same logits."""
    cache, _ = hub_cache
    proc = _offline(cache, FAKE_PUSH + SHARE, tmp_path)
    assert proc.returncode == 0 and "shared 3" in proc.stdout, proc.stderr[-3000:]


TRAIN_COPY_PREDICT = """
import json, os, shutil, sys
import cvpt
from cvpt.cli.main import main

data, video = sys.argv[1], sys.argv[2]
cvpt.train(out="runs/hub", root=data + "/videos", annotations=data, dataset="list", size=32,
           short_side=32, batch_size=2, effective_batch=4, epochs=1, workers=0, max_steps=1,
           backbone_checkpoint="acme/videomae-tiny")
ckpt = json.loads(open("runs/hub/checkpoints/last.json").read())["checkpoint"]
saved = json.loads(open(f"runs/hub/checkpoints/{ckpt}/config.json").read())
assert saved["backbone_checkpoint"] == "hf-hub:acme/videomae-tiny@" + "a" * 40, saved
want = cvpt.Predictor.from_pretrained("runs/hub", clips=1, crops=1)(video).probs
shutil.copytree("runs/hub", "other-machine/hub")
shutil.rmtree("runs")
os.chdir("other-machine")
got = cvpt.Predictor.from_pretrained("hub", clips=1, crops=1)(video).probs
assert (got == want).all(), (got, want)
assert cvpt.load_model("hub").class_names == ["0", "1"]
sys.exit(main(["predict", "--checkpoint", "hub", video, "--clips", "1", "--crops", "1",
               "--workers", "0", "--json", "--quiet"]))
"""


def test_a_run_on_a_hub_backbone_predicts_from_a_copied_folder(hub_cache, motion_dataset, tmp_path):
    """``cvpt train`` on a hub id, its run folder copied elsewhere (the original gone), then
    predicted from another working directory, from Python and with ``cvpt predict`` (which
    shows the backbone's key table at its default verbosity)."""
    cache, _ = hub_cache
    video = str(motion_dataset / "videos" / "c0_4.mp4")
    proc = _offline(cache, TRAIN_COPY_PREDICT, tmp_path, str(motion_dataset), video)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (row,) = json.loads(proc.stdout[proc.stdout.index("[") :])
    assert row["path"] == video and row["error"] is None
    assert (
        "loaded " in proc.stderr
        and "Hugging Face VideoMAE" in proc.stderr
        and "(folder)" in proc.stderr
    )


PARTLY = """
import sys
import cvpt
for spec in sys.argv[1:]:
    try:
        (cvpt.load_model if spec.startswith("model:") else cvpt.load_backbone)(
            spec.removeprefix("model:")
        )
        print("LOADED", spec)
    except cvpt.CvptError as e:  # CheckpointError, MissingFileError
        print(e)
"""


def test_a_partly_cached_model_names_the_file_it_lacks(tmp_path):
    """Offline, a cache holding config.json but not the weights, or some shards of a sharded
    model but not all: the error names what is missing and says the cache is partial (never
    that the hub model has no weights); an id with a trailing slash is hinted as one."""
    from safetensors.torch import save

    cache = tmp_path / "hub"
    shards = [f"model-0000{i}-of-00002.safetensors" for i in (1, 2)]
    files = {
        "config.json": json.dumps({"model_type": "videomae", **SIZE}).encode(),
        "model.safetensors.index.json": json.dumps(
            {"weight_map": {f"w{i}": shard for i, shard in enumerate(shards)}}
        ).encode(),
        **{shard: save({f"w{i}": torch.zeros(2)}) for i, shard in enumerate(shards)},
    }
    _add_snapshot(
        cache, "acme/no-weights", "1" * 40, {"config.json": files["config.json"]}, ["main"]
    )
    for i, shard in enumerate(shards):  # each shard missing in turn
        kept = {n: b for n, b in files.items() if n != shard}
        _add_snapshot(cache, f"acme/lacks-{i}", f"{i + 2}" * 40, kept, refs=["main"])
    specs = ["acme/no-weights", *(f"acme/lacks-{i}" for i in range(len(shards)))]
    specs += ["acme/no-weights/", "model:acme/tuned/"]
    proc = _offline(cache, PARTLY, tmp_path, *specs)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert len(lines) == len(specs), proc.stdout
    partly = "cached only partly (looked in the cache"
    assert lines[0].startswith(
        "acme/no-weights: config.json is in the cache but none of model.safetensors, "
        "pytorch_model.bin, model.safetensors.index.json, pytorch_model.bin.index.json"
    )
    assert partly in lines[0] and "hf download acme/no-weights" in lines[0]
    for i, shard in enumerate(shards):
        assert lines[1 + i].startswith(
            f"acme/lacks-{i}: the shard {shard} that model.safetensors.index.json lists is not "
            "in the cache"
        )
        assert partly in lines[1 + i]
    hint = "; it looks like a hub id: write it as acme/{0} or hf-hub:acme/{0}"
    assert lines[-2] == "acme/no-weights/: no such file or folder" + hint.format("no-weights")
    assert lines[-1] == "acme/tuned/: no such run or checkpoint folder" + hint.format("tuned")


@pytest.mark.parametrize("repo", ["acme/tuned", "hf-hub:acme/tuned", "hf-hub:acme/tuned@main"])
def test_push_to_hub_without_network_names_repo_and_endpoint(monkeypatch, tmp_path, repo):
    """The hub's address a closed port on loopback: a CvptError naming the repository and the
    address, no raw transport error, and nothing left behind (the staging folder is gone)."""
    import tempfile

    from huggingface_hub import constants

    import cvpt

    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    model = cvpt.create_model(
        "linear", backbone="vit_tiny", num_classes=2, backbone_options={"depth": 1}
    )
    with pytest.raises(cvpt.CvptError) as e:
        model.push_to_hub(repo, token="hf_dummy")
    assert type(e.value) is cvpt.CvptError
    assert str(e.value).startswith("acme/tuned: cannot push to the hub at http://127.0.0.1:9 (")
    assert "no commit was made" in str(e.value)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(cvpt.CvptError, match="no-slash: not a hub repository id"):
        model.push_to_hub("hf-hub:no-slash", token="hf_dummy")


REVISIONS = """
import sys, torch
import cvpt
x = torch.randn(2, 3, 4, 32, 32, generator=torch.Generator().manual_seed(5))
with torch.no_grad():
    torch.save({s: cvpt.load_backbone(s, verbose=False).eval()(x) for s in sys.argv[1:]}, "out.pt")
"""


def test_hub_ids_and_revisions_resolve_offline_without_transformers(tmp_path):
    """The hub resolution itself (refs, tags, commits, the hf-hub: prefix, shards), on whatever
    huggingface_hub is installed (the wheel legs: its floor and its newest) and without
    transformers: cvpt's own ViT written in the published names, its logits back exactly."""
    from safetensors.torch import save

    from cvpt.models import create_backbone

    config = {"model_type": "videomae", "architectures": ["VideoMAEForVideoClassification"]}
    config.update(SIZE, num_channels=3, layer_norm_eps=1e-6, use_mean_pooling=True)
    sizes = dict(embed_dim=64, depth=2, num_heads=4, mlp_ratio=2.5, num_classes=3)
    sizes.update(norm_eps=1e-6, fc_norm_eps=1e-5, img_size=32, num_frames=4)
    vits, blobs = [], []
    for seed in (0, 1):
        torch.manual_seed(seed)
        vits.append(create_backbone("vit_tiny", **sizes).eval())
        with torch.no_grad():
            for p in vits[-1].parameters():
                p.add_(0.2 * torch.randn(p.shape))
        blobs.append(hf_videomae_names(vits[-1].state_dict()))
    cache, cfg = tmp_path / "hub", json.dumps(config).encode()
    _add_snapshot(
        cache,
        "acme/vit",
        "1" * 40,
        {"config.json": cfg, "model.safetensors": save(blobs[1])},
        ["v1"],
    )
    _add_snapshot(
        cache,
        "acme/vit",
        "2" * 40,
        {"config.json": cfg, "model.safetensors": save(blobs[0])},
        ["main"],
    )
    names = sorted(blobs[0])
    shards = {f"model-0000{i + 1}-of-00002.safetensors": names[i::2] for i in range(2)}
    files = {shard: save({k: blobs[0][k] for k in keys}) for shard, keys in shards.items()}
    index = {"weight_map": {k: shard for shard, keys in shards.items() for k in keys}}
    files.update({"config.json": cfg, "model.safetensors.index.json": json.dumps(index).encode()})
    _add_snapshot(cache, "acme/vit-sharded", "3" * 40, files, refs=["main"])
    want = {"acme/vit": 0, "hf-hub:acme/vit": 0, "hf-hub:acme/vit@v1": 1, f"acme/vit@{'1' * 40}": 1}
    want.update({"hf-hub:acme/vit@main": 0, "acme/vit-sharded": 0})
    proc = _offline(cache, REVISIONS, tmp_path, *want)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = torch.load(tmp_path / "out.pt", weights_only=True)
    x = torch.randn(2, 3, 4, 32, 32, generator=torch.Generator().manual_seed(5))
    for spec, k in want.items():
        with torch.no_grad():
            torch.testing.assert_close(got[spec], vits[k](x), atol=1e-6, rtol=0, msg=spec)
