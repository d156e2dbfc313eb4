"""The public Python API (docs/api.md): a researcher's own loop on cvpt's Dataset, per-epoch
randomness with a plain DataLoader, a collate that survives replaced videos, the transform, and
the CLI's training run and prepare as functions."""

from __future__ import annotations

import logging
import shutil
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import cvpt
from conftest import TINY_RUN


def _dataset(root, subset="train", **kw):
    splits = cvpt.open_splits("list", root)
    options = dict(train=subset == "train", size=32, short_side=32)
    return cvpt.CompressedVideoDataset(root / "videos", splits.samples(subset), **{**options, **kw})


def test_a_hand_written_loop_learns_the_motion_task(motion_dataset):
    """Only motion tells the classes apart; a few epochs of CVPT on a random tiny ViT learn it
    from the public Dataset, DataLoader and collate alone."""
    torch.manual_seed(0)
    train = _dataset(motion_dataset, flip=False)  # a flip would turn "right" into "left"
    test = _dataset(motion_dataset, "test")
    model = cvpt.create_model(
        "full", backbone="vit_tiny", num_classes=2, backbone_options={"depth": 1, "img_size": 32}
    )
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loader = DataLoader(train, batch_size=4, shuffle=True, collate_fn=cvpt.collate)
    losses = []
    for epoch in range(6):
        train.set_epoch(epoch)
        model.train()
        for batch in loader:
            logits = model(batch["iframes"], batch["mvs"], batch["residuals"])
            loss = torch.nn.functional.cross_entropy(logits, batch["label"])
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    model.eval()
    batch = cvpt.collate([test[i] for i in range(len(test))])  # eval items: [V, C, T, S, S]
    with torch.no_grad():
        logits = model(batch["iframes"][:, 0], batch["mvs"][:, 0], batch["residuals"][:, 0])
    assert np.mean(losses[-4:]) < 0.5 * np.mean(losses[:4])
    assert (logits.argmax(1) == batch["label"]).float().mean() == 1.0


def test_each_epoch_draws_other_clips_and_each_is_reproducible(motion_dataset):
    ds = _dataset(motion_dataset)

    def epoch_batch(epoch):
        ds.set_epoch(epoch)
        return next(iter(DataLoader(ds, batch_size=8, collate_fn=cvpt.collate)))

    a, b, a2 = epoch_batch(0), epoch_batch(1), epoch_batch(0)
    assert torch.equal(a["iframes"], a2["iframes"]) and torch.equal(a["mvs"], a2["mvs"])
    assert not torch.equal(a["mvs"], b["mvs"])  # another crop, flip or GOP every epoch
    assert torch.equal(ds[(1, 3)]["mvs"], b["mvs"][3])  # the sampler's (epoch, index) keys agree


def _passes(loader: DataLoader, epochs: int) -> list[dict[int, torch.Tensor]]:
    """What a loop that never calls ``set_epoch`` sees (Lightning's, accelerate's, a plain
    ``for epoch`` loop): the same DataLoader iterated again; per epoch ``{index: mvs}``."""
    out = []
    for _ in range(epochs):
        got = {}
        for batch in loader:
            got.update(zip(batch["index"].tolist(), batch["mvs"], strict=True))
        out.append(got)
    return out


# spawning workers takes seconds (each epoch spawns them anew): 2 epochs there
@pytest.mark.parametrize(("workers", "n_epochs"), [(0, 3), (2, 2)])
def test_a_loop_without_set_epoch_draws_new_clips_each_epoch(motion_dataset, workers, n_epochs):
    torch.manual_seed(0)  # the worker seeds (drawn by each DataLoader iterator) follow it
    ds = _dataset(motion_dataset)
    loader = DataLoader(
        ds,
        batch_size=3,
        shuffle=True,
        collate_fn=cvpt.collate,
        num_workers=workers,
        multiprocessing_context="spawn" if workers else None,
    )
    epochs = _passes(loader, n_epochs)
    for e, got in enumerate(epochs):
        assert sorted(got) == list(range(len(ds))), e
    for i in range(len(ds)):  # another crop, flip or P-frame choice of every video, each epoch
        for later in range(1, n_epochs):
            for earlier in range(later):
                assert not torch.equal(epochs[earlier][i], epochs[later][i]), (i, earlier, later)
    if workers == 0:  # in one process, pass p draws exactly what set_epoch(p) would
        for e, got in enumerate(epochs):
            for i, mvs in got.items():
                assert torch.equal(mvs, ds[(e, i)]["mvs"]), (e, i)


def test_persistent_workers_draw_new_clips_each_epoch(motion_dataset, monkeypatch):
    """Persistent workers keep their copy and count their own passes: each reads some indices
    the other read the epoch before, so their keys hold their seeds. Two copies of the dataset
    stand for the two workers here (real ones take seconds to spawn)."""
    import copy

    ds = _dataset(motion_dataset)
    workers = [copy.deepcopy(ds) for _ in range(2)]
    seen: dict[int, list[torch.Tensor]] = {i: [] for i in range(len(ds))}
    rng = np.random.default_rng(0)
    for _ in range(3):
        order = rng.permutation(len(ds))
        for j, i in enumerate(order):  # batches of 2 dealt in turn to the workers
            w = (j // 2) % 2
            info = SimpleNamespace(id=w, seed=1000 + w, num_workers=2)
            monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda info=info: info)
            seen[int(i)].append(workers[w][int(i)]["mvs"])
    for i, draws in seen.items():
        for later in range(1, len(draws)):
            for earlier in range(later):
                assert not torch.equal(draws[earlier], draws[later]), (i, earlier, later)


def test_set_epoch_wins_over_counted_passes(motion_dataset):
    ds = _dataset(motion_dataset)
    loader = DataLoader(ds, batch_size=4, shuffle=True, collate_fn=cvpt.collate)
    _passes(loader, 1)  # counted pass 0
    ds.set_epoch(5)
    first, again = _passes(loader, 2)
    for i, mvs in first.items():
        assert torch.equal(mvs, again[i]) and torch.equal(mvs, ds[(5, i)]["mvs"]), i


class _Draws(cvpt.CompressedVideoDataset):
    """Reads no video: each item is the first number its random generator draws."""

    def _load(self, sample, rng):
        return {"draw": int(rng.integers(1 << 62))}


def _pairs(items: list[dict]) -> list[tuple[int, int]]:
    return [(item["index"], item["draw"]) for item in items]


def _rank_draws(rank: int, monkeypatch, epochs: int = 2) -> list[tuple[int, int]]:
    """``(index, draw)`` of every item rank ``rank`` of 2 reads over ``epochs`` epochs through
    one persistent ``spawn`` worker, under the same seed on every rank, never calling
    set_epoch (Lightning's loop). torch.distributed is faked in this process only: the worker
    starts a fresh interpreter, where it is not initialised, as in a real run."""
    from torch.utils.data import DistributedSampler

    from cvpt.data.splits import Sample

    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_rank", lambda group=None: rank)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda group=None: 2)
    torch.manual_seed(42)  # seed_everything: the same worker seeds on every rank
    ds = _Draws("/nowhere", [Sample(f"v{i}.mp4", 0) for i in range(8)], train=True, seed=7)
    sampler = DistributedSampler(ds, num_replicas=2, rank=rank, shuffle=True, seed=0)
    loader = DataLoader(
        ds,
        sampler=sampler,
        batch_size=2,
        num_workers=1,
        persistent_workers=True,
        multiprocessing_context="spawn",
        collate_fn=_pairs,
    )
    out = []
    for epoch in range(epochs):
        sampler.set_epoch(epoch)  # the sampler's epoch only, as Lightning does
        out += [pair for batch in loader for pair in batch]
    return out


def test_spawned_workers_of_two_ranks_never_repeat_a_draw(monkeypatch):
    """The rank is read where the dataset is pickled for the worker (the parent), not in the
    spawned worker, where torch.distributed is not initialised: no draw repeats across ranks
    and epochs (3 of 24 did), and the same seed gives the same draws again."""
    ranks = [_rank_draws(rank, monkeypatch) for rank in (0, 1)]
    draws = [d for pairs in ranks for _, d in pairs]
    assert len(draws) == 16 and len(set(draws)) == 16
    assert sorted(i for i, _ in ranks[0][:4] + ranks[1][:4]) == list(range(8))  # a true split
    assert _rank_draws(1, monkeypatch) == ranks[1]


def test_the_rank_comes_from_the_environment_without_torch_distributed(monkeypatch):
    """torchrun's RANK, when torch.distributed is not (yet) initialised: ranks differ."""
    from cvpt.data.dataset import process_rank

    for rank in ("0", "3"):
        monkeypatch.setenv("RANK", rank)
        assert process_rank() == int(rank)
    monkeypatch.delenv("RANK")
    assert process_rank() == 0


@pytest.mark.parametrize("seed", range(20))
def test_counted_passes_never_draw_one_key_twice(seed):
    """Under any order of reads (shuffled epochs, a distributed sampler's padding, subsets,
    epochs abandoned midway), no (pass, index) key of one process comes twice, and whole
    permutations are counted as epochs 0, 1, 2..."""
    from cvpt.data.dataset import _Passes

    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 12))
    # one process, a worker (its seed), two ranks of a distributed run, a worker of rank 1
    tokens = [(None, 0), (1234, 0), (None, 1), (None, 2), (1234, 1)]
    processes, keys = [_Passes(t, n) for t in tokens], []
    for epoch in range(4):  # whole shuffled epochs first: pass e is epoch e
        order = rng.permutation(n)
        assert all(processes[0].key(int(i)) == [epoch, int(i)] for i in order)
    for _ in range(30):  # then anything, in any process: padded, partial, repeated reads
        passes = processes[int(rng.integers(len(processes)))]
        order = rng.integers(n, size=int(rng.integers(1, 2 * n + 2)))
        keys += [tuple(passes.key(int(i))) for i in order]
    assert len(keys) == len(set(keys))
    assert _Passes((1234, 0), n).key(0) == [0, 0, 1, 1234, 0]  # a worker's key: its seed
    assert _Passes((None, 2), n).key(0) == [0, 0, 0, 0, 2]  # a rank's: its rank


def test_collate_survives_a_replaced_video(motion_dataset, tmp_path):
    root = tmp_path / "ds"
    shutil.copytree(motion_dataset, root)
    bad = root / "videos" / "c0_1.mp4"
    bad.write_bytes(bad.read_bytes()[:300])
    ds = _dataset(root)
    batches = list(DataLoader(ds, batch_size=4, collate_fn=cvpt.collate))
    failed = [f for b in batches for f in b["failed"]]
    assert [p for p, _ in failed] == [str(bad)]
    assert sum(len(b["label"]) for b in batches) == len(ds)
    replaced = next(b for b in batches if b["failed"])
    assert 1 not in replaced["index"].tolist()  # the sample actually read is reported


def test_clip_transform_gives_the_dataset_inputs(motion_dataset):
    path = motion_dataset / "videos" / "c1_5.mp4"
    clip = cvpt.read_clip(path)
    one = cvpt.ClipTransform(size=32, short_side=32)(clip)
    assert one["iframes"].shape == (3, 4, 32, 32) and one["mvs"].shape == (2, 12, 32, 32)
    assert one["residuals"].shape == (3, 12, 32, 32) and one["iframes"].dtype == torch.float32
    assert one["mvs"][0].mean() < -0.05  # the texture moves left: negative x after /mv_clip
    three = cvpt.ClipTransform(size=32, short_side=32, crops=3)(clip)
    assert three["iframes"].shape == (3, 3, 4, 32, 32)
    views = cvpt.read_views(path, cvpt.ClipTransform(size=32, short_side=32, crops=3), clips=1)
    for k in one:
        torch.testing.assert_close(views[k], three[k])
    with pytest.raises(cvpt.ConfigError, match="num_crops must be 1 or 3"):
        cvpt.ClipTransform(crops=2)(clip)


def test_train_and_prepare_from_python_take_the_cli_options(motion_dataset, tiny_run, tmp_path):
    import yaml

    saved = yaml.safe_load((tiny_run / "config.yaml").read_text())
    assert saved["epochs"] == 1 and saved["backbone_options"] == {"depth": 2}
    assert (tiny_run / "checkpoints" / "last.json").exists()
    with pytest.raises(cvpt.ConfigError, match=r"unknown config key\(s\) \['epoch'\]"):
        cvpt.train(out=tmp_path / "x", epoch=3)
    with pytest.raises(cvpt.RunExistsError, match="--resume"):
        cvpt.train(
            out=tiny_run,
            root=str(motion_dataset / "videos"),
            annotations=str(motion_dataset),
            **TINY_RUN,
        )
    report = cvpt.prepare(motion_dataset / "videos" / "c0_0.mp4", tmp_path / "p", progress=False)
    assert report.ok and report.done == 1
    assert cvpt.probe(tmp_path / "p" / "c0_0.mp4").layout_problems() == []


def test_loads_print_nothing_and_log_their_key_table(tmp_path, capsys, caplog):
    """create_model / load_model print nothing; each load's key table is an INFO record of the
    ``cvpt.models`` logger, which an application shows or silences (the CLI shows it)."""
    from cvpt.models import create_backbone

    backbone = create_backbone("vit_tiny", depth=1, num_classes=2)
    path = cvpt.save_backbone(backbone, tmp_path / "b")  # safetensors, told by content, not name
    with caplog.at_level(logging.WARNING):
        model = cvpt.create_model("linear", backbone_checkpoint=path, num_classes=3)
        model.save_pretrained(tmp_path / "m", class_names=["a", "b", "c"])
        cvpt.load_model(tmp_path / "m")
    assert capsys.readouterr().err == "" and caplog.records == []
    caplog.set_level(logging.INFO, logger="cvpt.models")
    cvpt.load_model(tmp_path / "m")
    (record,) = caplog.records
    assert record.name == "cvpt.models" and record.levelno == logging.INFO
    assert record.getMessage() == (
        f"loaded {path} (cvpt safetensors): ViT d=192 depth=1 heads=3 classes=2, 19 tensors"
    )
    assert capsys.readouterr().err == ""


def test_push_to_hub_without_huggingface_hub_says_what_to_install(monkeypatch, tmp_path):
    model = cvpt.create_model(
        "linear", backbone="vit_tiny", num_classes=2, backbone_options={"depth": 1}
    )
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # as if not installed
    with pytest.raises(cvpt.MissingDependencyError, match=r"pip install 'cvpt\[hub\]'"):
        model.push_to_hub("acme/tuned")


def _seeded_model(seed: int = 0):
    """A tiny linear-probe model whose random backbone load_model rebuilds from ``seed``."""
    torch.manual_seed(seed)
    model = cvpt.create_model(
        "linear", backbone="vit_tiny", num_classes=2, backbone_options={"depth": 1}
    )
    model.origin["seed"] = seed  # what cvpt train records after seeding
    return model


FOREIGN = {
    "config.json": [b'{"my": "own config"}', b"[1, 2]", b"not json", b'{"format": "other/1"}'],
    "model.safetensors": [b"MY WEIGHTS"],
}


@pytest.mark.parametrize(
    ("name", "data"), [(name, data) for name, datas in FOREIGN.items() for data in datas]
)
def test_save_pretrained_never_replaces_someone_elses_files(tmp_path, name, data):
    """A folder whose config.json is not a cvpt tuned model's (or weights beside none) is
    refused, naming the file, and left as it was; overwrite=True replaces them; a folder of
    an earlier save is replaced without asking."""
    model = _seeded_model()
    (tmp_path / name).write_bytes(data)
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(cvpt.CheckpointError) as e:
        model.save_pretrained(tmp_path, class_names=["a", "b"])
    assert str(e.value).startswith(f"{tmp_path / name}: ") and "overwrite=True" in str(e.value)
    assert (tmp_path / name).read_bytes() == data
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([name, "notes.txt"])
    model.save_pretrained(tmp_path, class_names=["a", "b"], overwrite=True)
    assert cvpt.load_model(tmp_path).class_names == ["a", "b"]
    model.save_pretrained(tmp_path, class_names=["c", "d"])  # cvpt's own save: replaced
    assert cvpt.load_model(tmp_path).class_names == ["c", "d"]
    assert (tmp_path / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("seed", [0, 7])
def test_load_model_leaves_the_callers_rng_as_it_was(tmp_path, seed):
    """A seeded random backbone is rebuilt from its seed without touching the global RNG: the
    caller's next draws are the ones it would have made, and two loads are equal."""
    model = _seeded_model(seed)
    model.save_pretrained(tmp_path / "m")
    torch.manual_seed(123)
    want = torch.rand(5)
    torch.manual_seed(123)
    first = cvpt.load_model(tmp_path / "m")
    assert torch.equal(torch.rand(5), want)  # unchanged by the load
    again = cvpt.load_model(tmp_path / "m")
    for (k, v), w in zip(first.state_dict().items(), again.state_dict().values(), strict=True):
        assert torch.equal(v, w), k


@pytest.mark.parametrize("family", ["swim", "VIT", "resnet"])
def test_list_backbones_of_an_unknown_family_names_the_known_ones(family):
    assert cvpt.list_backbones("vit") and cvpt.list_backbones("swin")
    with pytest.raises(
        cvpt.ConfigError, match=f"unknown backbone family '{family}'; known: swin, vit"
    ):
        cvpt.list_backbones(family)
