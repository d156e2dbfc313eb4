"""What ``cvpt prepare --q`` trades: output bytes against the synthetic task's accuracy.

The demo's target task (``cvpt demo``'s data: 540 videos, pan 0.5, docs/synthetic.md) is
re-encoded by ``cvpt prepare --q q --short-side 0`` for every q asked for, and the demo's CVPT
row (the shipped frozen backbone, the demo's tuning settings) is trained on each with the same
seeds: per seed, the same initial weights, batch order and clip positions, so the per-seed
difference of top-1 between two q cancels what the seed moves in both. Prints bytes, top-1 and
the paired differences to q=2 with their 95% Student-t interval (``cvpt demo``'s rule), and
writes ``results.json`` after every run (a rerun resumes). A measurement, not a test: about
20 s per run on 2 cores, plus reading each variant's clips once.

    python scripts/prepare_quality.py --out q-tradeoff                   # q 2, 4, 8; seeds 0-2
    python scripts/prepare_quality.py --out q-tradeoff --seeds 0,1,2,3,4,5,6,7 --threads 1

Every ``qN`` row is the task's videos (rendered frames encoded once at q=2 by ``cvpt synth``)
re-encoded by ``cvpt prepare``, as a dataset's compressed sources are; ``--synth-row`` adds the
videos as synthesised (what ``cvpt demo`` trains on), to see what the re-encode itself costs.
"""

from __future__ import annotations

import argparse
import json
import shutil
from dataclasses import replace
from pathlib import Path

LIST_FILES = ("train.txt", "test.txt", "classes.json", "dataset.json")


def make_variants(out: Path, qs: list[int], workers: int, synth_row: bool) -> dict[str, dict]:
    """One re-encoded copy of the task's videos per q (and the videos themselves, ``synth``,
    with ``synth_row``), each a list dataset."""
    from cvpt.codec.prepare import prepare
    from cvpt.data.synth import synthesize
    from cvpt.demo.suite import DemoConfig

    config = DemoConfig()
    synth = out / "synth"
    synthesize(
        synth, task="target", videos=config.videos, seed=config.data_seed, size=config.size,
        pan=config.pan, workers=workers,
    )  # fmt: skip
    source_bytes = sum(p.stat().st_size for p in (synth / "videos").glob("*.mp4"))
    variants = {"synth": {"root": synth, "q": 2, "bytes": source_bytes}} if synth_row else {}
    for q in qs:
        root = out / f"q{q}"
        report = prepare(synth / "videos", root / "videos", workers=workers, q=q, short_side=None)
        if not report.ok:
            raise SystemExit(f"prepare --q {q} failed: {report.failures[:3]}")
        for name in LIST_FILES:
            shutil.copy(synth / name, root / name)
        variants[f"q{q}"] = {"root": root, "q": q, "bytes": report.output_bytes}
    return variants


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("q-tradeoff"), help="folder for everything")
    ap.add_argument("--qs", default="2,4,8", help="quantisers to compare (2 is the reference)")
    ap.add_argument("--seeds", default="0,1,2", help="seeds, the same for every q (3 or more)")
    ap.add_argument(
        "--synth-row", action="store_true", help="also train on the videos as synthesised"
    )
    ap.add_argument("--workers", type=int, default=2, help="processes for encoding and reading")
    ap.add_argument(
        "--threads",
        type=int,
        default=2,
        help="torch threads of the tuning (the demo's 2; 1 on a machine others are using: "
        "busy cores slow a 2-thread step down many times)",
    )
    args = ap.parse_args()
    qs = sorted({2, *(int(q) for q in args.qs.split(","))})
    seeds = [int(s) for s in args.seeds.split(",")]

    from cvpt.demo.cache import load_clips
    from cvpt.demo.claims import paired_difference
    from cvpt.demo.suite import ARCHITECTURE, DemoConfig, check_seeds, shipped_backbone
    from cvpt.demo.tune import Variant, tune
    from cvpt.io import write_json
    from cvpt.models.backbone_weights import load_backbone
    from cvpt.training.step import flush_denormals

    check_seeds(tuple(seeds))
    config = DemoConfig()
    flush_denormals(config.tune.device, config.tune.flush_denormal)
    ckpt = shipped_backbone()
    vit = load_backbone(ckpt, verbose=False)
    arch = {k: getattr(vit.cfg, k) for k in ARCHITECTURE}
    settings = replace(
        config.tune, backbone_checkpoint=str(ckpt), backbone_options=arch, threads=args.threads
    )
    cvpt_row = Variant("CVPT", "cvpt")

    args.out.mkdir(parents=True, exist_ok=True)
    variants = make_variants(args.out, qs, args.workers, args.synth_row)
    path = args.out / "results.json"
    saved = json.loads(path.read_text()) if path.exists() else {}
    # runs of other tuning settings (another thread count sums in another order) are not paired
    runs: dict[str, list[dict]] = (
        saved.get("runs", {}) if saved.get("threads") == args.threads else {}
    )
    for name, v in variants.items():
        todo = [s for s in seeds if s not in {r["seed"] for r in runs.get(name, [])}]
        if not todo:
            continue
        train = load_clips(v["root"], "train", train_views=config.train_views, workers=args.workers)
        test = load_clips(v["root"], "test", workers=args.workers)
        classes = json.loads((v["root"] / "classes.json").read_text())
        for seed in todo:
            r = tune(cvpt_row, settings, train, test, seed=seed, num_classes=len(classes))
            runs.setdefault(name, []).append({"seed": seed, "top1": r["top1"], "loss": r["loss"]})
            print(f"{name} seed {seed}: top-1 {r['top1']:.1%} ({r['seconds']:.0f} s)", flush=True)
            write_json(path, {"runs": runs, "threads": args.threads})
        del train, test

    ref = variants["q2"]["bytes"]
    rows = []
    print(f"\n{'videos':<8} {'bytes':>10} {'/ q=2':>6}  {'top-1 (%)':>13}  paired vs q=2 (points)")
    for name, v in variants.items():
        mine = [r for r in runs[name] if r["seed"] in seeds]
        top1 = [100 * r["top1"] for r in sorted(mine, key=lambda r: r["seed"])]
        mean = sum(top1) / len(top1)
        std = (sum((t - mean) ** 2 for t in top1) / max(len(top1) - 1, 1)) ** 0.5
        row = {"variant": name, "q": v["q"], "bytes": v["bytes"], "bytes_over_q2": v["bytes"] / ref}
        row |= {"top1": top1, "top1_mean": mean, "top1_std": std}
        text = ""
        if name != "q2":
            ref_runs = [r for r in runs["q2"] if r["seed"] in seeds]
            d = paired_difference(mine, ref_runs)
            row["vs_q2"] = d
            lo, hi = (100 * x if x is not None else float("nan") for x in (d["low"], d["high"]))
            said = {"holds": "higher", "contradicted": "lower"}.get(d["verdict"], "not told apart")
            text = f"{100 * d['mean']:+.1f} [{lo:+.1f}, {hi:+.1f}] {said}"
        rows.append(row)
        print(
            f"{name:<8} {v['bytes']:>10} {v['bytes'] / ref:>6.2f}  {mean:>6.1f} ± {std:<4.1f}  "
            f"{text}  (seeds: {', '.join(f'{t:.0f}' for t in top1)})"
        )
    write_json(
        path, {"runs": runs, "threads": args.threads, "table": rows, "seeds": seeds, "qs": qs}
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
