"""``cvpt bench pipeline``: the paper's Table 6 on this machine — per-video pre-processing,
model inference and the full pipeline, compressed (CVPT) against raw RGB (VideoMAE), same
videos, one run.

- pre-processing, one view: ``read_clip`` → short side 256 → centre 224² crop → normalised
  tensors (the evaluation path of ``cvpt eval``), against VideoMAE's test transform: decode,
  16 frames at stride 4 from the centre, short side 224, centre crop, normalise. Both with PyAV
  and OpenCV, one decode thread, only the frames used converted to RGB.
- inference, one view (batch 1, no grad): CVPT on 3N tokens vs VideoMAE on 16 frames, same
  backbone. Full pipeline = pre-processing + inference.
- multi-view protocol: VideoMAE's 5 clips × 3 crops against ours (2 clips × 3 crops), each
  video read once per protocol, all views in one batch.
- throughput: pre-processed clips per second through a DataLoader with 0, 1 and 2 workers.
Cases are interleaved video by video so that machine noise hits them alike; medians.
"""

from __future__ import annotations

import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from cvpt.bench.model import timed
from cvpt.bench.reader import _seek_frame, make_videos
from cvpt.codec.container import is_video_file, open_video
from cvpt.codec.prepare import prepare
from cvpt.data.dataset import CompressedVideoDataset
from cvpt.data.splits import Sample
from cvpt.data.transforms import normalize_rgb
from cvpt.errors import MissingFileError
from cvpt.io import atomic_output
from cvpt.models.factory import create_model
from cvpt.models.registry import create_backbone

VIDEOMAE_VIEWS = (5, 3)  # temporal clips × spatial crops at test time (VideoMAE)
CVPT_VIEWS = (2, 3)  # the paper's protocol for CVPT


def rgb_views(
    path: Path, clips: int = 1, crops: int = 1, *, frames: int = 16, stride: int = 4,
    size: int = 224,
) -> torch.Tensor:  # fmt: skip
    """VideoMAE's test input: ``clips`` windows of ``frames`` frames at ``stride`` spread
    evenly over the video (the centre one when ``clips`` = 1), short side resized to ``size``,
    ``crops`` crops along the long side; ``float32 [clips·crops, 3, frames, size, size]``."""
    container, stream = open_video(path)
    try:
        n = stream.frames
        span = (frames - 1) * stride + 1
        if clips == 1:
            starts = [max(0, (n - span) // 2)]
        else:
            starts = [round(k * max(0, n - span) / (clips - 1)) for k in range(clips)]
        wanted: dict[int, list[tuple[int, int]]] = {}
        for c, s in enumerate(starts):
            for j in range(frames):
                wanted.setdefault(min(s + j * stride, n - 1), []).append((c, j))
        first, last = min(wanted), max(wanted)
        start = _seek_frame(container, stream, first)
        picked = np.empty((clips, frames), object)
        for i, frame in enumerate(container.decode(stream), start=start):
            if i in wanted:
                rgb = frame.to_ndarray(format="rgb24", threads=1)
                h, w = rgb.shape[:2]
                s = size / min(h, w)
                small = cv2.resize(
                    rgb, (round(w * s), round(h * s)), interpolation=cv2.INTER_LINEAR
                )
                for c, j in wanted[i]:
                    picked[c, j] = small
            if i >= last:
                break
    finally:
        container.close()
    h, w = picked[0, 0].shape[:2]
    views = []
    for c in range(clips):
        clip = np.stack(list(picked[c]))  # [T, h, w, 3]
        for x, y in _crop_origins(h, w, size, crops):
            views.append(clip[:, y : y + size, x : x + size])
    x = normalize_rgb(np.stack(views))
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 4, 1, 2, 3)))


def _crop_origins(h: int, w: int, size: int, crops: int) -> list[tuple[int, int]]:
    cx, cy = (w - size) // 2, (h - size) // 2
    if crops == 1:
        return [(cx, cy)]
    if w >= h:
        return [(x, cy) for x in (0, cx, w - size)]
    return [(cx, y) for y in (0, cy, h - size)]


class _Views(Dataset):
    """One video per item through either pipeline, for the DataLoader throughput."""

    def __init__(self, paths: list[Path], kind: str, compressed: CompressedVideoDataset):
        self.paths, self.kind, self.compressed = paths, kind, compressed

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        if self.kind == "rgb":
            return rgb_views(self.paths[i])
        return self.compressed[i]["iframes"]


def _compressed(paths: list[Path], views: int, crops: int) -> CompressedVideoDataset:
    return CompressedVideoDataset(
        Path("/"), [Sample(str(p.resolve()), 0) for p in paths], train=False,
        size=224, short_side=256, views=views, crops=crops,
    )  # fmt: skip


def _throughput(paths: list[Path], kind: str, workers: int, items: int) -> float:
    cycled = [paths[i % len(paths)] for i in range(items)]
    ds = _Views(cycled, kind, _compressed(cycled, 1, 1))
    loader = DataLoader(
        ds, batch_size=1, num_workers=workers, persistent_workers=workers > 0,
        multiprocessing_context="spawn" if workers else None,
    )  # fmt: skip
    for _ in loader:  # start the workers and warm them
        pass
    t0 = time.perf_counter()
    for _ in loader:
        pass
    return items / (time.perf_counter() - t0)


def bench_pipeline(
    videos: str | Path | None = None,
    *,
    backbone: str = "vit_base",
    repeats: int = 3,
    device: str = "cpu",
    backbone_options: dict | None = None,
    workers: tuple[int, ...] = (0, 1, 2),
    throughput_items: int = 24,
) -> dict:
    """Measure everything in the module docstring; ``videos`` is a folder of videos (prepared
    with ``cvpt prepare`` or not: unprepared ones are prepared into a temp folder first, and the
    RGB side reads the same prepared files). Returns medians (ms), ratios and clips/s."""
    dev = torch.device(device)
    bopts = backbone_options or {}
    torch.manual_seed(0)
    cvpt_model = create_model("cvpt", backbone=backbone, num_classes=101, backbone_options=bopts)
    rgb_model = create_backbone(backbone, num_classes=101, **bopts)
    cvpt_model, rgb_model = cvpt_model.to(dev).eval(), rgb_model.to(dev).eval()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if videos is None:
            make_videos(tmp / "raw")
        src = Path(videos) if videos is not None else tmp / "raw"
        if not any(p.is_file() and is_video_file(p) for p in src.rglob("*")):
            raise MissingFileError(f"{src}: no video files")
        prepare(src, tmp / "prepared", workers=1, progress=False)
        paths = sorted(p for p in (tmp / "prepared").rglob("*.mp4"))
        one, multi = _compressed(paths, 1, 1), _compressed(paths, *CVPT_VIEWS)
        t: dict[str, list[float]] = {}

        def add(name, fn):
            t.setdefault(name, []).append(timed(fn, dev) * 1e3)  # ms

        with torch.no_grad():
            for r in range(repeats + 1):  # round 0 warms up and is dropped
                for i, p in enumerate(paths):
                    x = one[i]
                    rgb = rgb_views(p)
                    xs = {k: x[k].to(dev) for k in ("iframes", "mvs", "residuals")}
                    rgb = rgb.to(dev)
                    add("pre_cvpt", lambda i=i: one[i])
                    add("pre_videomae", lambda p=p: rgb_views(p))
                    add("infer_cvpt", lambda xs=xs: cvpt_model(**xs))
                    add("infer_videomae", lambda rgb=rgb: rgb_model(rgb))
                    if i == 0:  # multi-view: one video per round (ViT-B on 15 views is slow on CPU)
                        mv = {k: v.to(dev) for k, v in multi[0].items() if torch.is_tensor(v)}
                        rv = rgb_views(p, *VIDEOMAE_VIEWS).to(dev)
                        add("multi_pre_cvpt", lambda: multi[0])
                        add("multi_pre_videomae", lambda p=p: rgb_views(p, *VIDEOMAE_VIEWS))
                        add("multi_infer_cvpt", lambda mv=mv: cvpt_model(**mv))
                        add("multi_infer_videomae", lambda rv=rv: rgb_model(rv))
                if r == 0:
                    t = {}
        med = {k: statistics.median(v) for k, v in t.items()}
        throughput = {
            f"{kind}_workers_{w}": _throughput(paths, kind, w, throughput_items)
            for w in workers
            for kind in ("cvpt", "videomae")
        }
        info = _video_info(paths[0])
    for side in ("cvpt", "videomae"):
        med[f"full_{side}"] = med[f"pre_{side}"] + med[f"infer_{side}"]
        med[f"multi_full_{side}"] = med[f"multi_pre_{side}"] + med[f"multi_infer_{side}"]
    return {
        "videos": len(paths),
        "video": info,
        "repeats": repeats,
        "backbone": backbone,
        "backbone_options": bopts,
        "device": str(dev),
        "torch_threads": torch.get_num_threads(),
        "views": {"cvpt": list(CVPT_VIEWS), "videomae": list(VIDEOMAE_VIEWS)},
        "median_ms": med,
        "ratios_videomae_over_cvpt": {
            k: med[f"{k}_videomae"] / med[f"{k}_cvpt"]
            for k in ("pre", "infer", "full", "multi_pre", "multi_infer", "multi_full")
        },
        "throughput_clips_per_s": throughput,
        "paper_table6_ms": {
            "videomae": {"pre": 2496.9, "infer": 26.9, "full": 2523.8},
            "cvpt": {"pre": 238.3, "infer": 25.0, "full": 263.3},
        },
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, torch {torch.__version__}",
    }


def _video_info(path: Path) -> str:
    container, stream = open_video(path)
    try:
        cc = stream.codec_context
        return f"{cc.width}x{cc.height} {cc.name}, {stream.frames} frames"
    finally:
        container.close()


def plot_pipeline(res: dict, out: str | Path) -> None:
    """Grouped bars (ms, log scale): pre-processing, inference, full pipeline, one view and
    multi-view; and the DataLoader throughput."""
    from cvpt.training.plots import _plt

    plt = _plt()
    med = res["median_ms"]
    stages = ["pre", "infer", "full", "multi_pre", "multi_infer", "multi_full"]
    labels = ["pre-process", "inference", "full", "multi-view\npre-process",
              "multi-view\ninference", "multi-view\nfull"]  # fmt: skip
    fig, axes = plt.subplots(1, 2, figsize=(13, 4), gridspec_kw={"width_ratios": [2, 1]})
    x = np.arange(len(stages))
    for k, (side, color) in enumerate((("cvpt", "tab:orange"), ("videomae", "tab:blue"))):
        vals = [med[f"{s}_{side}"] for s in stages]
        name = "CVPT (compressed)" if side == "cvpt" else "VideoMAE (RGB)"
        axes[0].bar(x + (k - 0.5) * 0.4, vals, 0.4, label=name, color=color)
    axes[0].set_xticks(x, labels, fontsize=8)
    axes[0].set_yscale("log")
    axes[0].set_ylabel("ms per video (median)")
    axes[0].set_title(f"{res['backbone']} on {res['device']}; {res['video']}")
    axes[0].legend(fontsize=8)
    tp = res["throughput_clips_per_s"]
    ws = sorted({int(k.rsplit("_", 1)[1]) for k in tp})
    for side, color in (("cvpt", "tab:orange"), ("videomae", "tab:blue")):
        axes[1].plot(ws, [tp[f"{side}_workers_{w}"] for w in ws], "o-", color=color, label=side)
    axes[1].set_xlabel("DataLoader workers")
    axes[1].set_ylabel("pre-processed clips / s")
    axes[1].set_xticks(ws)
    axes[1].grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    with atomic_output(out) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
