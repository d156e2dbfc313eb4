"""`cvpt demo`: the comparison runs end to end on generated data, writes what it promises,
resumes, and the controls it relies on do what they claim."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

import cvpt
from cvpt.cli.main import main
from cvpt.demo import suite
from cvpt.demo.cache import ClipTensors
from cvpt.demo.suite import (
    COMPARISON,
    COMPARISON_PAIRS,
    CONTROLS,
    DemoConfig,
    ablation_variants,
    mean_mv_baseline,
    shipped_backbone,
)
from cvpt.demo.tune import TuneSettings, Variant, tune

# in-process reading (workers=0): spawning readers costs more than 16 tiny videos
TINY = DemoConfig(videos=16, seeds=(0, 1), train_views=2, workers=0, tune=TuneSettings(epochs=1))


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    return out, suite.run_demo(out, TINY, progress=False)


def test_demo_writes_every_method_with_the_promised_fields(demo_run):
    out, _ = demo_run
    saved = json.loads((out / "results.json").read_text())
    assert list(saved["methods"]) == [v.name for v in COMPARISON + CONTROLS]
    for name, m in saved["methods"].items():
        for key in ("top1", "top1_std", "tunable_params", "gmacs_per_view", "seconds"):
            assert isinstance(m[key], float | int), (name, key)
        assert 0.0 <= m["top1"] <= 1.0 and m["seeds"] == [0, 1]
        assert m["gmacs_per_view"] > 0 and m["seconds"] > 0
    ms = saved["methods"]
    assert ms["Full fine-tuning"]["tunable_percent"] == pytest.approx(100.0)
    assert ms["Linear probe"]["tunable_params"] < ms["CVPT"]["tunable_params_without_embeddings"]
    # the I-frame-only control runs a third of the tokens: about a third of the MACs
    ratio = (
        ms["Full FT, I-frames only"]["gmacs_per_view"] / ms["Full fine-tuning"]["gmacs_per_view"]
    )
    assert 0.2 < ratio < 0.4
    assert saved["config"]["seeds"] == [0, 1] and saved["test_videos"] == 4
    # one CVPT, in the default reading of SCCP's update; the other reading is an ablation
    assert [m["method"] for m in ms.values()].count("cvpt") == 2  # and its random-backbone control
    assert "sccp_update" not in ms["CVPT"]["options"]
    # the story's pairs, paired by seed, each with its interval and a verdict
    assert [(p["better"], p["worse"]) for p in saved["paired"]] == COMPARISON_PAIRS
    for p in saved["paired"]:
        assert p["seeds"] == [0, 1] and p["low"] <= p["mean"] <= p["high"]
        runs = {n: {r["seed"]: r["top1"] for r in ms[n]["runs"]} for n in (p["better"], p["worse"])}
        diffs = [runs[p["better"]][s] - runs[p["worse"]][s] for s in (0, 1)]
        assert p["differences"] == pytest.approx(diffs)
        assert p["verdict"] in ("holds", "contradicted", "unresolved")


def test_demo_resumes_without_training_again(demo_run, monkeypatch):
    out, result = demo_run

    def no_training(*a, **k):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(suite, "tune", no_training)
    again = suite.run_demo(out, TINY, progress=False)
    assert again["methods"] == result["methods"]


def test_demo_adds_seeds_without_training_the_old_ones_again(demo_run, tmp_path, monkeypatch):
    out, result = demo_run
    (tmp_path / "results.json").write_text((out / "results.json").read_text())
    trained = []

    def fake_tune(variant, settings, train, test, *, seed, num_classes, on_epoch=None):
        trained.append((variant.name, seed))
        return {**result["methods"][variant.name]["runs"][0], "seed": seed}

    monkeypatch.setattr(suite, "tune", fake_tune)
    more = replace(TINY, seeds=(0, 1, 2))
    again = suite.run_demo(tmp_path, more, data=out / "data", progress=False)
    assert trained == [(v.name, 2) for v in COMPARISON + CONTROLS]
    assert all(m["seeds"] == [0, 1, 2] for m in again["methods"].values())


def test_results_of_other_settings_are_kept_aside_not_overwritten(demo_run, tmp_path, monkeypatch):
    out, result = demo_run
    older = json.loads((out / "results.json").read_text())
    older["config"]["tune"]["epochs"] = 7  # a run of other settings, e.g. an earlier version
    (tmp_path / "results.json").write_text(json.dumps(older))
    (tmp_path / "results.before-1.json").write_text("{}")  # an earlier one kept already
    trained = []

    def fake_tune(variant, settings, train, test, *, seed, num_classes, on_epoch=None):
        trained.append((variant.name, seed))
        return {**result["methods"][variant.name]["runs"][0], "seed": seed}

    monkeypatch.setattr(suite, "tune", fake_tune)
    suite.run_demo(tmp_path, TINY, data=out / "data", progress=False)
    assert len(trained) == len(COMPARISON + CONTROLS) * 2  # nothing of the old run reused
    assert json.loads((tmp_path / "results.before-2.json").read_text()) == older
    assert (tmp_path / "results.before-1.json").read_text() == "{}"
    assert json.loads((tmp_path / "results.json").read_text())["config"]["tune"]["epochs"] == 1


def test_tune_tests_after_the_last_epoch_or_every_kth(demo_run):
    from cvpt.demo.cache import load_clips

    out, _ = demo_run
    train = load_clips(out / "data", "train", train_views=2, progress=False)
    test = load_clips(out / "data", "test", progress=False)
    variant = Variant("Linear probe", "linear")
    for every, epochs in ((0, [3]), (2, [2, 3]), (1, [1, 2, 3])):
        settings = TuneSettings(epochs=3, eval_every=every)
        r = tune(variant, settings, train, test, seed=0, num_classes=4)
        assert r["curve_epochs"] == epochs and len(r["curve"]) == len(epochs)
        assert len(r["loss"]) == 3 and r["top1"] == r["curve"][-1]


def test_demo_cli_prints_the_table_and_draws(tmp_path, capsys):
    args = ["demo", "--out", str(tmp_path), "--videos", "8", "--seeds", "1", "--epochs", "1"]
    assert main(args) == 0  # the CLI reads with 2 spawned workers
    text = capsys.readouterr().out
    assert "CVPT" in text and "Linear probe" in text and "mean MV" in text
    assert "paired by seed" in text
    for png in ("top1.png", "curves.png"):
        assert (tmp_path / "default" / png).read_bytes()[:4] == b"\x89PNG"
    assert main([*args, "--readings", "add"]) == 2  # --readings belongs to --ablations


@pytest.mark.slow  # over 10 s: run by `make test` after the default set
def test_ablations_cover_the_claims_for_both_readings(tmp_path):
    config = replace(TINY, seeds=(0,))
    result = suite.run_demo(tmp_path, config, ablations=True, progress=False)
    depth = TuneSettings().backbone_options["depth"]
    ms = result["methods"]
    assert list(ms) == [v.name for v in ablation_variants(depth)]
    for r in ("replace", "add"):
        assert {f"SCCP blocks = {k} ({r})" for k in range(1, depth + 1)} <= set(ms)
        assert ms[f"SCCP blocks = {depth} ({r})"]["options"]["sccp_update"] == r
        assert ms[f"CVPT, random frozen backbone ({r})"]["pretrained_backbone"] is False
        # Table 4: dropping attention removes its weights; dropping residual prompts halves it
        full = ms[f"SCCP blocks = {depth} ({r})"]["tunable_params_without_embeddings"]
        assert ms[f"CVPT w/o attention ({r})"]["tunable_params_without_embeddings"] < full
        assert ms["CVPT w/o residual prompt"]["tunable_params"] < ms[
            f"CVPT w/o attention ({r})"]["tunable_params"]  # fmt: skip
        assert ms["SCCP blocks = 0"]["tunable_params_without_embeddings"] < full
        # one seed: every claim is measured, none can be decided
        assert [c["id"] for c in result["claims"][r]] == [f"C{i}" for i in range(1, 9)]
        assert {c["verdict"] for c in result["claims"][r]} == {"unresolved"}
    # a tie in every count: the literal reading stays
    assert result["readings"] == ["replace", "add"] and result["decision"]["reading"] == "replace"


def test_shipped_backbone_is_small_loads_and_says_how_it_was_made():
    path = shipped_backbone()
    assert path.stat().st_size <= 10 * 2**20
    vit = cvpt.load_backbone(path)
    assert vit.cfg.depth == TuneSettings().backbone_options["depth"]
    recipe = json.loads(path.with_name(path.name + ".json").read_text())
    assert any(c.startswith("cvpt pretrain") for c in recipe["commands"]) and "seed" in recipe


def _clips(mean_x: torch.Tensor, labels: torch.Tensor) -> ClipTensors:
    n = len(labels)
    mvs = torch.randn(n, 2, 12, 8, 8) * 0.1
    mvs[:, 0] += mean_x[:, None, None, None]
    return ClipTensors(
        iframes=torch.zeros(n, 3, 4, 8, 8).half(),
        mvs=mvs.half(),
        residuals=torch.zeros(n, 3, 12, 8, 8).half(),
        labels=labels,
        views=1,
    )


def test_mean_mv_baseline_finds_a_mean_mv_label_and_not_a_random_one():
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 2, (200,), generator=g)
    sign = labels.float() * 2 - 1
    train, test = _clips(sign[:150], labels[:150]), _clips(sign[150:], labels[150:])
    assert mean_mv_baseline(train, test) == 1.0
    shuffled = labels[torch.randperm(200, generator=g)]
    train, test = _clips(sign[:150], shuffled[:150]), _clips(sign[150:], shuffled[150:])
    assert mean_mv_baseline(train, test) < 0.75


def test_clip_cache_follows_the_lists(tmp_path):
    from cvpt.data.synth import synthesize
    from cvpt.demo.cache import load_clips

    synthesize(tmp_path, videos=8, seed=0, pan=0.5, progress=False)
    first = load_clips(tmp_path, "test", progress=False)
    again = load_clips(tmp_path, "test", progress=False)  # from the cache file
    assert torch.equal(first.mvs, again.mvs) and first.videos == 2
    synthesize(tmp_path, videos=16, seed=0, pan=0.5, progress=False)  # more videos, new lists
    bigger = load_clips(tmp_path, "test", progress=False)
    assert bigger.videos == 4 and len(list((tmp_path / "cache").glob("*.safetensors"))) == 2


def test_parallel_synth_and_reading_make_the_same_videos_and_clips(tmp_path):
    from cvpt.data.synth import synthesize
    from cvpt.demo.cache import MODALITIES, load_clips

    a, b = tmp_path / "a", tmp_path / "b"
    synthesize(a, videos=8, seed=0, pan=0.5, progress=False)
    synthesize(b, videos=8, seed=0, pan=0.5, workers=2, progress=False)
    videos = sorted((a / "videos").glob("*.mp4"))
    assert len(videos) == 8
    assert all(v.read_bytes() == (b / "videos" / v.name).read_bytes() for v in videos)
    one = load_clips(a, "train", train_views=2, progress=False)
    two = load_clips(b, "train", train_views=2, workers=2, progress=False)
    assert torch.equal(one.labels, two.labels)
    assert all(torch.equal(getattr(one, k), getattr(two, k)) for k in MODALITIES)


def test_seeds_option_takes_a_count_or_a_list():
    from cvpt.cli.demo import _seeds

    assert _seeds("3") == (0, 1, 2) and _seeds("1,3") == (1, 3) and _seeds("2,") == (2,)
    with pytest.raises(ValueError, match="--seeds expects a count"):
        _seeds("two")
