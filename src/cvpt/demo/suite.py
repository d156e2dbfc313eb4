"""``cvpt demo``: every method of the paper on the synthetic target task, with the controls that
say what the numbers mean, as a table, ``results.json`` and pictures.

The frozen backbone is the tiny ViT shipped in ``cvpt/demo/backbone/`` (pre-trained on raw RGB
video of the synthetic *source* task by ``cvpt pretrain``; the command and seed are beside it).
Runs resume: every finished (variant, seed) is kept in ``results.json`` and skipped next time.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import resource
import time
from dataclasses import asdict, dataclass, field, replace
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from cvpt.data.synth import synthesize
from cvpt.demo.cache import ClipTensors, load_clips
from cvpt.demo.claims import INTERVALS, decide, evaluate_claims, paired_difference
from cvpt.demo.tune import TuneSettings, Variant, tune
from cvpt.errors import ConfigError, MissingFileError
from cvpt.formats import Format
from cvpt.io import write_json
from cvpt.models.backbone_weights import load_backbone
from cvpt.models.methods import get_method, list_methods
from cvpt.models.prompts import SCCP_UPDATES
from cvpt.models.report import model_row
from cvpt.progress import tqdm
from cvpt.training.step import flush_denormals

SHIPPED_BACKBONE = "vit_tiny_d4_source.safetensors"
log = logging.getLogger("cvpt")

ARCHITECTURE = ("embed_dim", "depth", "num_heads", "mlp_ratio", "patch_size", "tubelet_size")

DEMO_RESULTS = Format("cvpt-demo-results", 1)  # results.json


def shipped_backbone() -> Path:
    """The pre-trained tiny backbone that ships with cvpt (see its ``.json`` for the command)."""
    return Path(str(resources.files("cvpt.demo") / "backbone" / SHIPPED_BACKBONE))


@dataclass
class DemoConfig:
    """The sizes of one demo; ``PRESETS`` holds the default and ``--full`` ones."""

    videos: int = 540  # target-task videos, a quarter of them for testing
    pan: float = 0.5  # largest camera pan, px/frame (see docs/synthetic.md for the choice)
    size: int = 64  # frame side, px: 4×4 patches of 16 px
    data_seed: int = 0
    # one model per seed; paired differences need ≥ 3 (a t-interval on 1 degree of freedom is
    # ±12.7 standard errors)
    seeds: tuple[int, ...] = (0, 1, 2)
    train_views: int = 4  # cached train-mode clips per video (P positions differ)
    # processes that make and read the videos (both cores of a small machine; not a setting
    # of the runs: results.json does not record it)
    workers: int = 2
    tune: TuneSettings = field(default_factory=TuneSettings)

    def to_dict(self) -> dict:
        d = asdict(self)
        del d["workers"]  # how the clips were read does not change them
        return d


PRESETS = {
    "default": DemoConfig(),
    "full": DemoConfig(
        videos=800, seeds=(0, 1, 2, 3, 4), tune=TuneSettings(epochs=10, warmup_epochs=2)
    ),
}


def method_cell(method: str, options: dict | None = None, **kw) -> Variant:
    """A cell of ``method`` with its defaults, named by the registry's label (``"VPT*"``)."""
    return Variant(get_method(method).label, method, options or {}, **kw)


# Table 1 of the paper, in its order (the baselines, then the proposed method; CVPT in the
# default reading of SCCP): the registered methods the paper has
COMPARISON = [
    method_cell(m)
    for m in sorted(list_methods(), key=lambda m: get_method(m).proposed)
    if get_method(m).in_paper
]
CONTROLS = [  # what the comparison's numbers mean (docs/synthetic.md)
    # motion is needed: the most flexible model, without the MV and residual tokens
    Variant("Full FT, I-frames only", "full", {"inputs": "iframe"}),
    # pre-training matters: CVPT's prompts into a frozen backbone that learnt nothing
    Variant("CVPT, random frozen backbone", "cvpt", pretrained=False),
]
# the pairs the comparison's story rests on: (better, worse) in the paper's direction
COMPARISON_PAIRS = [
    ("CVPT", "Linear probe"),
    ("CVPT", "VPT*"),
    ("CVPT", "AdaptFormer*"),
    ("CVPT", "Full fine-tuning"),
    ("CVPT", "CVPT, random frozen backbone"),
    ("CVPT", "Full FT, I-frames only"),
    ("Full fine-tuning", "Full FT, I-frames only"),
]


def ablation_variants(depth: int, readings: tuple[str, ...] = SCCP_UPDATES) -> list[Variant]:
    """The cells of the paper's claims that ``cvpt.demo.claims`` tests, for each reading of how
    SCCP updates the MV/residual streams (``sccp_update``): Table 1's linear probe, VPT* and
    AdaptFormer*; Table 3 / Fig. 4 (SCCP in the first k = 0..depth layers; k = depth is CVPT);
    Table 4 (no attention, no residual prompt); CVPT on a random frozen backbone (§1). Cells
    that the reading cannot change (no SCCP block; no residual prompt, whose block passes the
    MV tokens on) run once. Registered methods the paper does not have (LoRA) run here too,
    after Table 1's baselines, with their defaults."""
    baselines = [  # Table 1's parameter-efficient baselines (not CVPT, not full fine-tuning)
        v
        for v in COMPARISON
        if not (get_method(v.method).proposed or get_method(v.method).trains_backbone)
    ]
    out = [Variant(v.name, v.method) for v in baselines]
    out += [method_cell(m) for m in list_methods() if not get_method(m).in_paper]
    out += [
        Variant("SCCP blocks = 0", "cvpt", {"sccp_layers": 0}),
        Variant("CVPT w/o residual prompt", "cvpt", {"residual_prompt": False}),
    ]
    for r in readings:
        u = {"sccp_update": r}
        out += [Variant(f"SCCP blocks = {k} ({r})", "cvpt", {"sccp_layers": k, **u})
                for k in range(1, depth + 1)]  # fmt: skip
        out += [
            Variant(f"CVPT w/o attention ({r})", "cvpt", {"sccp_attention": False, **u}),
            Variant(f"CVPT, random frozen backbone ({r})", "cvpt", u, pretrained=False),
        ]
    return out


def run_demo(
    out: str | Path,
    config: DemoConfig,
    *,
    ablations: bool = False,
    readings: tuple[str, ...] = SCCP_UPDATES,
    backbone_checkpoint: str | Path | None = None,
    data: str | Path | None = None,
    progress: bool = True,
) -> dict:
    """Synthesise (or reuse) the data in ``data`` (default ``out/data``), tune every variant
    for every seed and write ``out/results.json`` after each run (the CLI adds the table and
    the pictures). ``ablations``: the cells of the paper's claims for each of ``readings``
    instead of the comparison. Seed by seed: an interrupted run leaves whole seeds. Raises
    :class:`~cvpt.errors.ConfigError` for bad seeds, a device it cannot use, or a folder that
    another demo is writing to."""
    out = Path(out)
    t_start = time.perf_counter()
    check_seeds(config.seeds)
    if config.tune.device not in ("cpu", "cuda"):
        raise ConfigError(f"the demo runs on cpu or cuda, not {config.tune.device!r}")
    if config.tune.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device cuda: torch sees no CUDA device here (try --device cpu)")
    # before any parallel torch work, so that torch's worker threads inherit it (tune sets it
    # again on its own thread)
    flush_denormals(config.tune.device, config.tune.flush_denormal)
    ckpt = Path(backbone_checkpoint) if backbone_checkpoint else shipped_backbone()
    if not ckpt.exists():
        raise MissingFileError(f"{ckpt}: the pre-trained backbone is missing")
    out.mkdir(parents=True, exist_ok=True)
    with _only_demo_in(out):
        return _run(out, config, ckpt, t_start, ablations, readings, data, progress)


def _run(out, config, ckpt, t_start, ablations, readings, data, progress) -> dict:
    vit = load_backbone(ckpt, verbose=progress)  # fails early, and shows its key table once
    # the random-backbone controls get the checkpoint's architecture, whatever checkpoint it is
    arch = {k: getattr(vit.cfg, k) for k in ARCHITECTURE}
    settings = replace(config.tune, backbone_checkpoint=str(ckpt), backbone_options=arch)
    config = replace(config, tune=settings)
    backbone = {"backbone_sha256": file_digest(ckpt)}  # the same weights wherever installed
    # first, so that a file it cannot use is set aside before minutes of preparation
    results_path = out / "results.json"
    kept = _previous_runs(results_path, config, backbone)
    data = Path(data) if data else out / "data"
    synthesize(
        data, task="target", videos=config.videos, seed=config.data_seed, size=config.size,
        pan=config.pan, workers=config.workers, progress=progress,
    )  # fmt: skip
    train = load_clips(data, "train", train_views=config.train_views, workers=config.workers,
                       progress=progress)  # fmt: skip
    test = load_clips(data, "test", workers=config.workers, progress=progress)
    classes = json.loads((data / "classes.json").read_text())
    if ablations:
        variants = ablation_variants(settings.backbone_options["depth"], tuple(readings))
    else:
        variants = COMPARISON + CONTROLS
    sizes = {
        **backbone,
        "train_videos": train.videos,
        "test_videos": test.videos,
        "mean_mv_baseline_top1": mean_mv_baseline(train, test),
    }
    runs = {(r["name"], r["seed"]): r for r in kept}
    todo = [(v, s) for s in config.seeds for v in variants if (v.name, s) not in runs]
    bar = tqdm(total=len(todo) * settings.epochs, desc="demo", unit="epoch", disable=not progress)
    for variant, seed in todo:
        bar.set_postfix_str(f"{variant.name} seed {seed}")

        def on_epoch(epoch, loss, top1, _bar=bar, _what=f"{variant.name} seed {seed}"):
            _bar.update(1)
            tested = "" if top1 is None else f" top-1 {top1:.0%}"  # None: not tested after it
            _bar.set_postfix_str(f"{_what}: loss {loss:.2f}{tested}")

        r = tune(variant, settings, train, test, seed=seed, num_classes=len(classes),
                 on_epoch=on_epoch)  # fmt: skip
        runs[(variant.name, seed)] = {"name": variant.name, "seed": seed, **r}
        _write(results_path, config, variants, runs, sizes, ablations, classes)
    bar.close()
    extra = {}
    if ablations:
        extra["readings"] = list(readings)
    result = _write(results_path, config, variants, runs, sizes, ablations, classes, extra)
    # the verdicts, from complete cells only (an interrupted run resumes first)
    if ablations:
        depth = settings.backbone_options["depth"]
        extra["claims"] = evaluate_claims(result["methods"], depth, tuple(readings))
        if len(readings) > 1:
            extra["decision"] = decide(extra["claims"])
        extra["intervals"] = INTERVALS
    else:
        ms = result["methods"]
        extra["paired"] = [
            {"better": a, "worse": b, **paired_difference(ms[a]["runs"], ms[b]["runs"])}
            for a, b in COMPARISON_PAIRS
            if a in ms and b in ms
        ]
    result = _write(results_path, config, variants, runs, sizes, ablations, classes, extra)
    result["wall_seconds"] = time.perf_counter() - t_start
    # peak resident memory of this process (Linux reports KiB), for the "< 4 GB" budget
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def mean_mv_baseline(train: ClipTensors, test: ClipTensors) -> float:
    """Top-1 of a linear classifier on the clip's mean motion vector (per P-frame): the trivial
    statistic the task's distractors are meant to defeat."""

    def feats(clips: ClipTensors) -> torch.Tensor:
        return clips.mvs.float().mean(dim=(3, 4)).flatten(1)  # [N, 2·T_P]

    x, y = feats(train), train.labels
    mu, sd = x.mean(0), x.std(0) + 1e-6
    w = torch.zeros(x.shape[1], int(y.max()) + 1, requires_grad=True)
    b = torch.zeros(w.shape[1], requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=200)

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(((x - mu) / sd) @ w + b, y)
        loss = loss + 1e-3 * (w**2).sum()
        loss.backward()
        return loss

    opt.step(closure)  # L-BFGS from zeros: deterministic, no seed needed
    with torch.no_grad():
        pred = (((feats(test) - mu) / sd) @ w + b).argmax(1)
    return float((pred == test.labels).float().mean())


def _previous_runs(path: Path, config: DemoConfig, backbone: dict) -> list[dict]:
    """Every run of an earlier demo in this folder with the same settings and backbone weights,
    whatever its seeds and cells (``--seeds 5`` after ``--seeds 3`` adds seeds 3 and 4; a
    reading run alone keeps the other's cells). A file of other settings, or one that is not
    a demo's results, is renamed aside (:func:`_set_aside`), never overwritten."""
    if not path.exists():
        return []
    try:
        before = upgrade(json.loads(path.read_text()), path)
        runs = [r for m in before["methods"].values() for r in m["runs"]]
        runs += before.get("other_runs", [])
        names_seeds = [(r["name"], r["seed"]) for r in runs]
        same = _comparable(before["config"]) == _comparable(config.to_dict()) and all(
            before.get(k) == v for k, v in backbone.items()
        )
    except (ValueError, TypeError, KeyError, AttributeError):
        why = "is not a demo's results.json"
    else:
        if same and len(set(names_seeds)) == len(names_seeds):
            return runs
        why = "holds runs of other settings"
    log.warning("%s %s: kept as %s, starting afresh", path, why, _set_aside(path).name)
    return []


def upgrade(results: dict, path: Path) -> dict:
    """A ``results.json`` (read from ``path``) in the current version's shape (no older shape
    to read yet). Raises :class:`~cvpt.errors.FormatVersionError` for a newer version: its
    runs are not this cvpt's to keep or drop; any other non-mapping is not a demo's results
    (``TypeError``)."""
    if not isinstance(results, dict):
        raise TypeError("not a mapping")
    return DEMO_RESULTS.upgrade(results, path)


def _comparable(config: dict) -> dict:
    """A demo's settings as compared between runs: not the seeds (runs are per seed), not
    where the backbone file lies (its digest is compared instead)."""
    config = json.loads(json.dumps(config))
    config.pop("seeds", None)
    config.get("tune", {}).pop("backbone_checkpoint", None)
    return config


def check_seeds(seeds) -> None:
    """Seeds for ``torch.manual_seed``: at least one, distinct integers in [0, 2**63)
    (:class:`~cvpt.errors.ConfigError` otherwise)."""
    bad = [s for s in seeds if not isinstance(s, int) or not 0 <= s < 2**63]
    if not seeds or bad or len(set(seeds)) != len(seeds):
        raise ConfigError(
            f"seeds must be one or more distinct integers from 0 to 2**63 - 1, got {list(seeds)}"
        )


@contextlib.contextmanager
def _only_demo_in(out: Path):
    """Hold ``out/.demo.lock`` while a demo writes there: a second demo into the same folder
    would rewrite results.json from its own memory and drop the first one's runs."""
    with open(out / ".demo.lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise ConfigError(
                f"{out}: another cvpt demo is writing there; wait or use another --out"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def file_digest(path: Path) -> str:
    """SHA-256 (hex) of a file's bytes, or of a folder's files (relative names and bytes, in
    sorted order); a file's own name does not count."""
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for p in files:
        if path.is_dir():
            h.update(f"{p.relative_to(path)}:".encode())
        with open(p, "rb") as f:
            for block in iter(lambda f=f: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def _set_aside(path: Path) -> Path:
    """Rename ``path`` to a free ``<stem>.before-N<suffix>`` beside it, and the pictures drawn
    from it (``*.png`` there) to ``<stem>.before-N.png``: a user's earlier results are never
    overwritten."""
    pngs = [p for p in path.parent.glob("*.png") if ".before-" not in p.name]
    n = 1
    while any(
        p.exists()
        for p in [path.with_name(f"{path.stem}.before-{n}{path.suffix}")]
        + [png.with_name(f"{png.stem}.before-{n}.png") for png in pngs]
    ):
        n += 1
    for png in pngs:
        png.rename(png.with_name(f"{png.stem}.before-{n}.png"))
    kept = path.with_name(f"{path.stem}.before-{n}{path.suffix}")
    path.rename(kept)
    return kept


def _write(path, config, variants, runs, sizes, ablations, classes, extra=None) -> dict:
    settings = config.tune
    methods = {}
    for v in variants:
        done = [runs[(v.name, s)] for s in config.seeds if (v.name, s) in runs]
        if not done:
            continue
        top1 = np.array([r["top1"] for r in done])
        row = model_row(
            v.method, backbone=settings.backbone, num_classes=len(classes), views=1,
            size=config.size, backbone_options=settings.backbone_options, **v.options,
        )  # fmt: skip
        methods[v.name] = {
            "method": v.method,
            "options": v.options,
            "pretrained_backbone": v.pretrained,
            "top1": float(top1.mean()),
            "top1_std": float(top1.std(ddof=1)) if len(top1) > 1 else 0.0,
            "seeds": [r["seed"] for r in done],
            "tunable_params": done[0]["tunable_params"],
            "tunable_percent": 100 * done[0]["tunable_params"] / done[0]["total_params"],
            "tunable_params_without_embeddings": done[0]["tunable_params_without_embeddings"],
            "total_params": done[0]["total_params"],
            "gmacs_per_view": row["gmacs_per_view"],
            "seconds": float(np.mean([r["seconds"] for r in done])),
            "runs": done,
        }
    shown = {(v.name, s) for v in variants for s in config.seeds}
    result = DEMO_RESULTS.stamp({
        "kind": "ablations" if ablations else "comparison",
        "config": json.loads(json.dumps(config.to_dict())),
        "classes": classes,
        "chance": 1 / len(classes),
        **sizes,
        "methods": methods,
        # runs of other seeds or cells, kept for the next demo that asks for them
        "other_runs": [r for key, r in runs.items() if key not in shown],
        **(extra or {}),
    })  # fmt: skip
    write_json(path, result)
    return result
