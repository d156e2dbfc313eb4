"""Predicting from a video not in cvpt's layout: only the GOP windows the views read are
re-encoded, and the model inputs are bit-identical to re-encoding the whole file
(``cvpt.codec.window``, ``cvpt.predictor.source_views``); sources whose packets cannot prove
that fall back to the whole re-encode."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

import cvpt
from conftest import concatenate, write_raw
from cvpt import predictor
from cvpt.codec import packets, window
from cvpt.codec.encode import WindowEncoder, reencode
from cvpt.data.dataset import read_views
from cvpt.data.generate import moving_scene
from cvpt.data.transforms import ClipTransform

pytestmark = pytest.mark.filterwarnings("ignore::cvpt.ShortVideoWarning")
NTSC = Fraction(30000, 1001)
MS = Fraction(1, 1000)


def _packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as c:
        return [bytes(p) for p in c.demux(video=0) if p.size]


def _source(path, frames, codec, *, bframes=0, fps=30, gop=None, **opts):
    """A source as a camera or an editor writes it: x264 (its own GOP unless ``gop``) or
    MPEG-4 Part 2 (GOP 30 unless ``gop``), with or without B-frames."""
    gop = gop or (30 if codec == "mpeg4" else None)
    opts = {"bf": str(bframes), **({"g": str(gop)} if gop else {}), **opts}
    if codec == "libx264":
        opts.setdefault("preset", "veryfast")  # B-pyramid still; the tests' time is encoding
    return write_raw(path, frames, codec, rate=fps, **opts)


def _windows_only(monkeypatch):
    """Make the whole re-encode fail, so a test proves the window path gave its inputs."""

    def refuse(*_a, **_k):
        raise AssertionError("fell back to re-encoding the whole file")

    monkeypatch.setattr(predictor, "_reencoded", refuse)


def _assert_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].shape == b[k].shape and torch.equal(a[k], b[k]), k


ALL_VIEWS = [(c, k) for c in (1, 2, 3) for k in (1, 3)]  # clips × crops
SOME_VIEWS = [(1, 1), (2, 3), (3, 1)]  # every clips and crops value, fewer windows encoded


def _check_windows(monkeypatch, tmp_path, src, *, short_side=48, size=32, views=ALL_VIEWS):
    """For each (clips, crops): window inputs == the inputs of today's path (the whole file
    re-encoded, as ``prepared()`` writes it, then read), exactly."""
    found = packets.survey(src)
    assert packets.layout_problems(src, found=found)  # not in cvpt's layout: re-encoded
    whole = reencode(src, tmp_path / "whole.mp4", short_side=short_side, overwrite=True)
    assert packets.reencoded_frames(found) == whole.frames
    for n_clips, crops in views:
        tr = ClipTransform(size=size, short_side=short_side, crops=crops)
        want = read_views(whole.dst, tr, n_clips)
        with monkeypatch.context() as m:
            _windows_only(m)
            got = predictor.source_views(src, tr, n_clips)
        _assert_equal(got, want)


# --- 1. the encoder: a GOP-aligned window is the whole encode's bytes ------------------------


@pytest.mark.parametrize("fps", [25, NTSC])
def test_a_window_on_the_gop_grid_encodes_to_the_whole_encodes_bytes(tmp_path, fps):
    src = _source(
        tmp_path / "src.mp4",
        moving_scene(frames=70, height=48, width=64),
        "libx264",
        bframes=3,
        fps=fps,
    )
    whole = _packets(reencode(src, tmp_path / "whole.mp4", short_side=None).dst)
    found = packets.survey(src)
    frames = packets.reencoded_frames(found)
    assert frames == len(whole) == 70
    windows = [(1, 3), (4, 6)]  # GOPs 1-2 and 4-5 (the last one: 10 frames)
    files = window.encode_windows(found, frames, windows, tmp_path / "w", short_side=None)
    for (a, b), path in zip(windows, files, strict=True):
        assert _packets(path) == whole[a * 12 : min(b * 12, frames)]
    # numbered from 0 instead (the frame times in the MPEG-4 headers differ): other bytes
    with av.open(str(src)) as c:
        decoded = list(c.decode(video=0))
    enc = WindowEncoder(tmp_path / "from0.mp4", src, decoded[0], found.rate, 0, short_side=None)
    for f in decoded[12:24]:
        enc.write(enc.convert(f))
    enc.close()
    assert _packets(tmp_path / "from0.mp4") != whole[12:24]


# --- 2. a sweep over sources: window inputs == whole re-encode inputs ------------------------


@pytest.mark.parametrize(
    ("codec", "bframes", "fps", "size", "frames", "views"),
    [
        # B-pyramid, frames not a multiple of 12, every protocol
        ("libx264", 3, 30, (128, 96), 100, ALL_VIEWS),
        ("mpeg4", 2, 25, (96, 64), 61, SOME_VIEWS),  # MPEG-4 ASP with B-frames, GOP 30
        ("libx264", 0, NTSC, (160, 90), 30, SOME_VIEWS),  # 3 GOPs: fewer than a clip's 4
        ("mpeg4", 0, 30, (128, 96), 150, SOME_VIEWS),  # 13 GOPs: the views' windows apart
    ],
)
def test_window_inputs_equal_the_whole_reencode(
    monkeypatch, tmp_path, codec, bframes, fps, size, frames, views
):
    scene = moving_scene(frames=frames, height=size[1], width=size[0], seed=frames)
    src = _source(tmp_path / "src.mp4", scene, codec, bframes=bframes, fps=fps)
    _check_windows(monkeypatch, tmp_path, src, views=views)


def _sweep_cases(count: int, seed: int = 0) -> list[tuple]:
    """Random draws from codecs × B-frames × rates × sizes × lengths × containers."""
    rng = np.random.default_rng(seed)
    grid = dict(
        codec=["libx264", "mpeg4"],
        bframes=[0, 2],
        fps=[25, 30, NTSC],
        size=[(320, 240), (480, 360), (640, 360)],
        frames=[13, 47, 61, 145, 301],
        suffix=[".mp4", ".mkv", ".mov"],
    )
    return [tuple(v[rng.integers(len(v))] for v in grid.values()) for _ in range(count)]


@pytest.mark.slow
@pytest.mark.parametrize(("codec", "bframes", "fps", "size", "frames", "suffix"), _sweep_cases(8))
def test_window_sweep(monkeypatch, tmp_path, codec, bframes, fps, size, frames, suffix):
    scene = moving_scene(frames=frames, height=size[1], width=size[0], seed=frames + 1)
    src = _source(tmp_path / f"src{suffix}", scene, codec, bframes=bframes, fps=fps)
    short_side = 256 if size == (640, 360) else 96  # the real layout once, smaller elsewhere
    _check_windows(monkeypatch, tmp_path, src, short_side=short_side, size=64, views=SOME_VIEWS)


def test_a_long_last_frame_is_held_as_the_whole_reencode_holds_it(monkeypatch, tmp_path):
    """The last frame lasting 3 frame times: reencode writes it 3 times (the duration is
    kept), so the last window ends with the same repeats."""
    src = _source(tmp_path / "a.mp4", moving_scene(frames=46, height=48, width=64), "libx264")
    held = tmp_path / "held.mp4"
    with av.open(str(src)) as inp, av.open(str(held), "w") as out:
        o = out.add_stream_from_template(inp.streams.video[0])
        shown = [p for p in inp.demux(video=0) if p.size]
        shown[-1].duration *= 3
        for p in shown:
            p.stream = o
            out.mux(p)
    assert packets.reencoded_frames(packets.survey(held)) == 48
    _check_windows(monkeypatch, tmp_path, held, views=[(1, 1), (2, 1)])


@pytest.mark.parametrize("rotation", [90, 180])
def test_a_rotated_source_is_windowed_upright(monkeypatch, tmp_path, rotation):
    scene = moving_scene(frames=60, height=48, width=64, seed=2)
    src = write_raw(tmp_path / "phone.mp4", scene, "libx264", rotation=rotation, bf="2")
    _check_windows(monkeypatch, tmp_path, src, views=[(1, 1), (3, 1)])


def test_a_frame_size_change_is_scaled_as_the_whole_reencode_scales_it(monkeypatch, tmp_path):
    # VP8 at 64x48 for 36 frames, then 96x32: every frame goes to the first frame's size
    parts = []
    for k, (w, h) in enumerate([(64, 48), (96, 32)]):
        frames = moving_scene(frames=36, height=h, width=w, seed=k)
        parts.append(write_raw(tmp_path / f"part{k}.webm", frames, "libvpx"))
    src = concatenate(tmp_path / "recording.webm", parts, 1200)
    assert cvpt.probe(src).size_changes
    _check_windows(monkeypatch, tmp_path, src, views=[(1, 1), (2, 3)])


@pytest.mark.parametrize(
    ("name", "codec", "opts"),
    [
        # open GOPs: B-frames after a key frame shown before it, predicted from the GOP before
        ("open_gop.mp4", "libx264", {"x264-params": "open-gop=1:keyint=30:bframes=3"}),
        ("late.mkv", "libx264", {"bf": "2"}),  # the first frame at 5 s (a cut recording)
        pytest.param(
            "hevc.mp4",
            "libx265",
            {"x265-params": "keyint=40:bframes=4:log-level=0"},
            marks=[
                pytest.mark.slow,
                pytest.mark.skipif("libx265" not in av.codecs_available, reason="no libx265"),
            ],
        ),
        pytest.param("vp9.webm", "libvpx-vp9", {}, marks=pytest.mark.slow),
    ],
)
def test_other_sources_are_windowed_exactly(monkeypatch, tmp_path, name, codec, opts):
    times = {}
    if name == "late.mkv":
        times = dict(pts=[5000 + round(k * 1000 / 30) for k in range(100)], time_base=MS)
    src = write_raw(
        tmp_path / name,
        moving_scene(frames=100, height=48, width=64, seed=9),
        codec,
        **times,
        **opts,
    )
    _check_windows(monkeypatch, tmp_path, src, views=SOME_VIEWS)


def test_full_range_colour_and_a_cover_art_stream_are_windowed_exactly(monkeypatch, tmp_path):
    from test_real_world import _two_streams

    scene = moving_scene(frames=60, height=48, width=64, seed=4)
    pc = write_raw(tmp_path / "pc.mp4", scene, "libx264", "yuvj420p", color_range="JPEG", bf="2")
    still, _ = _two_streams(tmp_path / "still.mkv", "matroska", False)  # the still first
    for src in (pc, still):
        _check_windows(monkeypatch, tmp_path, src, views=[(1, 3), (2, 1)])
