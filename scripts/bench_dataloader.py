"""DataLoader views/s per worker of this cvpt against another checkout (e.g. main before the fused
views): what a training or evaluation loop's workers deliver (docs/benchmarks.md, "Whole
pipeline"). A benchmark, not a test.

    python scripts/bench_dataloader.py --baseline-pythonpath /tmp/old/src --rounds 3
    python scripts/bench_dataloader.py --videos ~/data/ucf-sample-mpeg4 --baseline-pythonpath ...

Every measurement is a fresh process (``python scripts/bench_dataloader.py --one ...`` with the
tree's ``PYTHONPATH``): a ``CompressedVideoDataset`` of prepared videos through a ``DataLoader``
(batch 1, spawn workers, ``cvpt``'s collate and worker setup), warmed by one pass, timed on the
second; eval views (centred clip, centre crop) and train views (random clip, crop, flip), as
float32 and, for trees that have it, compact (``compact=True``, what ``cvpt train`` sends).
The trees run in an order swapped every round; medians over rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODES = ("eval", "train", "eval_compact", "train_compact")


def one(videos: Path, workers: int, items: int, mode: str) -> float:
    """Views/s of ``mode`` through a DataLoader with ``workers`` workers (this process's cvpt)."""
    from torch.utils.data import DataLoader

    from cvpt.data.dataset import CompressedVideoDataset, collate, worker_init
    from cvpt.data.splits import Sample

    paths = sorted(videos.rglob("*.mp4"))
    cycled = [paths[i % len(paths)] for i in range(items)]
    kw = {"compact": True} if mode.endswith("compact") else {}
    ds = CompressedVideoDataset(Path("/"), [Sample(str(p.resolve()), 0) for p in cycled],
                                train=mode.startswith("train"), **kw)  # fmt: skip
    loader = DataLoader(ds, batch_size=1, num_workers=workers, persistent_workers=workers > 0,
                        multiprocessing_context="spawn" if workers else None,
                        worker_init_fn=worker_init, collate_fn=collate)  # fmt: skip
    for _ in loader:  # start and warm the workers
        pass
    t0 = time.perf_counter()
    for _ in loader:
        pass
    return items / (time.perf_counter() - t0)


def bench(videos: Path, trees: dict[str, str], workers: list[int], items: int, rounds: int):
    rates: dict[str, list[float]] = {}
    order = list(trees.items())
    for r in range(rounds):
        for w in workers:
            for mode in MODES:
                for name, src in order if r % 2 == 0 else order[::-1]:
                    env = {**os.environ, "PYTHONPATH": src}
                    cmd = [sys.executable, __file__, "--one", str(videos), str(w), str(items)]
                    done = subprocess.run([*cmd, mode], env=env, capture_output=True, text=True)
                    if done.returncode != 0:  # an old tree without compact views: not measured
                        continue
                    rates.setdefault(f"{name} {mode} workers={w}", []).append(float(done.stdout))
    med = {k: statistics.median(v) for k, v in rates.items()}
    ratios = {}
    for w in workers:
        for mode in MODES:
            new = med.get(f"this {mode} workers={w}")
            old = med.get(f"baseline {mode.split('_')[0]} workers={w}")  # float32 there
            if new and old:
                ratios[f"{mode} workers={w}"] = new / old
    per_worker = {k: v / int(k.rsplit("=", 1)[1]) for k, v in med.items()}
    return {"median_views_per_s": med, "per_worker": per_worker, "this_over_baseline": ratios,
            "rounds": rates}  # fmt: skip


def _commit(src: str) -> str:
    """The git commit of the checkout holding ``src`` ("" outside a git checkout)."""
    done = subprocess.run(["git", "-C", src, "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True)  # fmt: skip
    return done.stdout.strip()


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--one":
        videos, workers, items, mode = sys.argv[2:6]
        print(one(Path(videos), int(workers), int(items), mode))
        return
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--videos", type=Path, default=None,
                   help="folder of prepared videos (default: generated scenes)")  # fmt: skip
    p.add_argument("--baseline-pythonpath", required=True, help="the other checkout's src/")
    p.add_argument("--workers", default="1,2", help="worker counts")
    p.add_argument("--items", type=int, default=32, help="views per timing")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = p.parse_args()
    here = str(Path(__file__).resolve().parents[1] / "src")
    with tempfile.TemporaryDirectory() as tmp:
        videos = args.videos
        if videos is None:
            from cvpt.bench.reader import make_videos
            from cvpt.codec.prepare import prepare

            make_videos(Path(tmp) / "raw")
            prepare(Path(tmp) / "raw", Path(tmp) / "prepared", progress=False)
            videos = Path(tmp) / "prepared"
        trees = {"this": here, "baseline": args.baseline_pythonpath}
        res = bench(videos, trees, [int(w) for w in args.workers.split(",")], args.items,
                    args.rounds)  # fmt: skip
    res["trees"] = {name: {"src": src, "commit": _commit(src)} for name, src in trees.items()}
    res["date"] = time.strftime("%Y-%m-%d %H:%M")
    cores = os.cpu_count()
    res["machine"] = f"{platform.machine()}, {cores} cores, Python {platform.python_version()}"
    for k, v in res["this_over_baseline"].items():
        print(f"{k}: this / baseline per worker = {v:.2f}")
    for k, v in res["per_worker"].items():
        print(f"  {k}: {v:.1f} views/s per worker")
    if args.out:
        args.out.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
