"""Shared fixtures: tiny real videos made on the fly with PyAV (nothing is downloaded)."""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from cvpt.codec.encode import write_video
from cvpt.data.generate import moving_scene, translating_texture

# torchvision (a test-only dependency: the reference Video Swin) ships CUDA-built compiled ops
# that do not load against our CPU torch, and its import then fails on "operator torchvision::nms
# does not exist". Declaring the schemas its Python side looks up lets it import (its detection
# ops stay unusable; the video models need none). This must run before anything imports
# torchvision, and transformers imports it whenever it is installed: so here, before any test
# module is collected.
try:
    _TORCHVISION_OPS = torch.library.Library("torchvision", "DEF")
    _TORCHVISION_OPS.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _TORCHVISION_OPS.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
except RuntimeError:  # the real ops registered first (a CPU build of torchvision): nothing to do
    pass


# torch's CPU worker threads copy the subnormal setting of the thread that starts them, once:
# start them here, with IEEE subnormals, so that no test's outcome depends on which test ran a
# parallel operation first (training loops then flush on the main thread only, as they warn)
torch.full((1 << 20,), 1.0).sum()


def random_clips(batch: int = 2, size: int = 32, seed: int = 0, gops: int = 4, p: int = 3):
    """Random model inputs of the paper's clip layout, from their own generator: ``iframes
    [B, 3, gops, S, S]``, ``mvs [B, 2, p·gops, S, S]``, ``residuals [B, 3, p·gops, S, S]``."""
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(batch, 3, gops, size, size, generator=g),
        torch.randn(batch, 2, p * gops, size, size, generator=g),
        torch.randn(batch, 3, p * gops, size, size, generator=g),
    )


def hf_videomae_names(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A cvpt ViT's tensors in Hugging Face VideoMAE's published (transformers 4.x) names: the
    inverse of :func:`cvpt.models.vit.filter_hf`, q/k/v split again."""
    layer = r"videomae.encoder.layer.\1."
    rules = [
        (r"^patch_embed\.proj\.", "videomae.embeddings.patch_embeddings.projection."),
        (r"^blocks\.(\d+)\.attn\.proj\.", layer + "attention.output.dense."),
        (r"^blocks\.(\d+)\.attn\.(q|v)_bias$", layer + r"attention.attention.\2_bias"),
        (r"^blocks\.(\d+)\.norm1\.", layer + "layernorm_before."),
        (r"^blocks\.(\d+)\.norm2\.", layer + "layernorm_after."),
        (r"^blocks\.(\d+)\.mlp\.fc1\.", layer + "intermediate.dense."),
        (r"^blocks\.(\d+)\.mlp\.fc2\.", layer + "output.dense."),
        (r"^head\.", "classifier."),
    ]
    out = {}
    for k, v in sd.items():
        qkv = re.match(r"^blocks\.(\d+)\.attn\.qkv\.weight$", k)
        if qkv:
            prefix = f"videomae.encoder.layer.{qkv[1]}.attention.attention"
            for name, part in zip(("query", "key", "value"), v.chunk(3), strict=True):
                out[f"{prefix}.{name}.weight"] = part.contiguous()
            continue
        for pattern, repl in rules:
            k = re.sub(pattern, repl, k)
        out[k] = v.contiguous()
    return out


def official_swin_names(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A cvpt Video Swin's tensors in the official Video-Swin-Transformer / mmaction2 0.x names
    (cvpt's are those without ``backbone.``; the head is ``cls_head.fc_cls``): the inverse of
    :func:`cvpt.models.swin.checkpoint_filter_fn` on that layout."""
    return {
        ("cls_head.fc_cls." + k[5:] if k.startswith("head.") else "backbone." + k): v
        for k, v in sd.items()
    }


@pytest.fixture(autouse=True)
def _ieee_subnormals():
    """Training loops flush subnormals to zero (cvpt.training.step.flush_denormals); every test
    starts and ends with IEEE subnormals on its thread, whatever ran before."""
    torch.set_flush_denormal(False)
    yield
    torch.set_flush_denormal(False)


def write_raw(
    path: Path,
    frames: np.ndarray,
    codec: str,
    pix_fmt: str = "yuv420p",
    *,
    rate: int = 30,
    pts: list[int] | None = None,
    time_base: Fraction | None = None,
    rotation: int | None = None,
    hflip: bool = False,
    color_range: str | None = None,
    colorspace: str | None = None,
    container_options: dict[str, str] | None = None,
    **opts,
):
    """Encode with a codec VideoWriter does not set up (odd sizes, lossless, VP8...), and the
    things real-world files carry: explicit frame times (``pts`` in ``time_base``: variable
    frame rates), a display matrix (``rotation`` counter-clockwise, ``hflip``), a colour range
    and matrix (converted from RGB and tagged), container options (``movflags``)."""
    with av.open(str(path), "w", options=container_options or {}) as c:
        s = c.add_stream(codec, rate=rate)
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
        if time_base is not None:
            s.time_base = time_base
        if rotation is not None or hflip:
            s.set_display_rotation(rotation or 0, hflip=hflip)
        tags = {"MPEG": 1, "JPEG": 2}.get(color_range), {"ITU709": 1, "ITU601": 6}.get(colorspace)
        if tags[0]:
            s.codec_context.color_range = tags[0]
        if tags[1]:
            s.codec_context.colorspace = tags[1]
        s.options = opts
        for i, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(f, format="rgb24").reformat(
                format=pix_fmt, dst_color_range=color_range, dst_colorspace=colorspace
            )
            vf.pts = i if pts is None else pts[i]
            if time_base is not None:
                vf.time_base = time_base
            for p in s.encode(vf):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    return path


def concatenate(path: Path, parts: list[Path], step: int) -> Path:
    """The packets of ``parts`` (video files of one codec) one after the other in ``path``,
    with the first part's stream settings and part k's times shifted by k × ``step`` (in its
    time base): a recording whose frame size changes where a part starts, as WebRTC writes."""
    with av.open(str(parts[0])) as first, av.open(str(path), "w") as out:
        o = out.add_stream_from_template(first.streams.video[0])
        for k, part in enumerate(parts):
            with av.open(str(part)) as inp:
                for p in inp.demux(video=0):
                    if p.size:
                        p.pts, p.dts, p.stream = p.pts + step * k, p.dts + step * k, o
                        out.mux(p)
    return path


@pytest.fixture(scope="session")
def videos(tmp_path_factory) -> dict[str, Path]:
    """A few small videos in several codecs and layouts, made once per session."""
    d = tmp_path_factory.mktemp("videos")
    scene = moving_scene(frames=72, height=96, width=128, seed=1)
    out = {
        "prepared": write_video(d / "prepared.mp4", scene),  # 6 GOPs of IPPPPPPPPPPP
        "x264_bframes": write_video(
            d / "x264_bframes.mp4", scene, codec="libx264", gop=250, max_b_frames=3
        ),
        "vp8": write_video(d / "vp8.webm", scene, codec="libvpx", gop=250),
        "gop6": write_video(d / "gop6.mp4", scene, gop=6),
        "short": write_video(d / "short.mp4", scene[:30]),  # 3 GOPs, the last one 6 frames
        "odd": write_raw(d / "odd.mkv", scene[:40, :95, :127], "libx264", "yuv444p"),
    }
    return out


@pytest.fixture(scope="session")
def translation_videos(tmp_path_factory):
    """Encoded textures translating by known (dx, dy) px/frame, and their source frames."""
    d = tmp_path_factory.mktemp("translation")

    def make(dx: float, dy: float, grey: bool = False) -> tuple[Path, np.ndarray]:
        frames = translating_texture(dx, dy, frames=48, height=240, width=320, grey=grey, seed=7)
        path = d / f"t_{dx}_{dy}_{'grey' if grey else 'rgb'}.mp4"
        if not path.exists():
            write_video(path, frames)
        return path, frames

    return make


@pytest.fixture(scope="session")
def motion_dataset(tmp_path_factory) -> Path:
    """12 prepared videos, 2 classes (a texture moving right or left), with ``train.txt`` and
    ``test.txt`` list files beside ``videos/``: the public-API tests' dataset."""
    return write_motion_dataset(tmp_path_factory.mktemp("motion"), frames=48, train=4, test=2)


def write_motion_dataset(d: Path, *, frames: int, train: int, test: int) -> Path:
    """``d/videos/c{label}_{i}.mp4`` prepared videos of ``frames`` frames (32×48; a texture
    moving right for label 0, left for 1), ``train + test`` per class, and the ``train.txt`` /
    ``test.txt`` lists beside them (the first ``train`` of each class train)."""
    (d / "videos").mkdir()
    rows: dict[str, list[str]] = {"train": [], "test": []}
    for label, dx in enumerate((2, -2)):
        for i in range(train + test):
            name = f"c{label}_{i}.mp4"
            seed = 10 * label + i
            video = translating_texture(dx, 0, frames=frames, height=32, width=48, seed=seed)
            write_video(d / "videos" / name, video)
            rows["train" if i < train else "test"].append(f"{name} {label}")
    for subset, lines in rows.items():
        (d / f"{subset}.txt").write_text("\n".join(lines) + "\n")
    return d


TINY_RUN = {
    "dataset": "list",
    "backbone": "vit_tiny",
    "backbone_options": {"depth": 2},
    "size": 32,
    "short_side": 32,
    "batch_size": 2,
    "effective_batch": 4,
    "warmup_epochs": 1,
    "workers": 0,
    "epochs": 1,
}


@pytest.fixture(scope="session")
def tiny_run(motion_dataset, tmp_path_factory) -> Path:
    """A run folder trained for one epoch on :func:`motion_dataset` (through ``cvpt.train``)."""
    import cvpt

    out = tmp_path_factory.mktemp("runs") / "tiny"
    ds = motion_dataset
    cvpt.train(out=out, root=str(ds / "videos"), annotations=str(ds), **TINY_RUN)
    return out
