"""Procedural, motion-centric video tasks (the embedded default benchmark).

``target``: a camouflaged patch (a disc of texture with the background's statistics, so that
no single frame shows it) moves right, left, down or up relative to a panning background, among
smaller camouflaged clutter discs moving at random. Only motion tells the classes apart, and
the camera pan keeps the mean motion vector from doing it alone.

``source``: a different label set on raw frames, for pre-training: a *visible* (contrasting)
disc moving along one of the four diagonals over a slowly panning background.

Everything is a function of the seed; videos go through cvpt's own encoder (MPEG-4 Part 2,
GOP 12, no B-frames), so they are ready for ``read_clip`` as they are.
"""

from __future__ import annotations

import json
import zlib
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from cvpt.codec.encode import write_video
from cvpt.data.splits import DATASET_OPTIONS
from cvpt.errors import ConfigError, CvptError
from cvpt.formats import Format
from cvpt.io import atomic_output, remove_leftovers, write_json
from cvpt.pool import WorkerDied, WorkerPool
from cvpt.progress import tqdm

SYNTH_SETTINGS = Format("cvpt-synth-settings", 1)  # OUT/synth.json

TASKS = {
    "target": ["right", "left", "down", "up"],
    "source": ["down-right", "down-left", "up-right", "up-left"],
}
_DIRECTIONS = {
    "right": (1, 0),
    "left": (-1, 0),
    "down": (0, 1),
    "up": (0, -1),
    "down-right": (0.7071, 0.7071),
    "down-left": (-0.7071, 0.7071),
    "up-right": (0.7071, -0.7071),
    "up-left": (-0.7071, -0.7071),
}


@dataclass
class Disc:
    x: float  # centre at frame 0, px
    y: float
    vx: float  # px/frame
    vy: float
    radius: int
    visible: bool  # contrasting (source) or camouflaged (target)


@dataclass
class VideoSpec:
    """Everything needed to redraw a video, kept beside it (meta.jsonl)."""

    name: str
    label: int
    pan: tuple[float, float]  # background motion, px/frame
    discs: list[Disc]  # the first one carries the label
    seed: int


def make_spec(
    task: str, index: int, seed: int, size: int, frames: int, pan: float = 1.5
) -> VideoSpec:
    """The random draw of video ``index`` (balanced labels: index modulo the class count)."""
    classes = TASKS[task]
    rng = np.random.default_rng([seed, index, 0 if task == "target" else 1])
    label = index % len(classes)
    dx, dy = _DIRECTIONS[classes[label]]
    if task == "target":
        pan = tuple(rng.uniform(-pan, pan, 2))  # camera motion, independent of the label
        speed, radius, visible = rng.uniform(1.5, 2.5), int(size * rng.uniform(0.16, 0.22)), False
        clutter = int(rng.integers(1, 3))
    else:
        pan = tuple(rng.uniform(-0.5, 0.5, 2))
        speed, radius, visible = rng.uniform(1.5, 2.5), int(size * rng.uniform(0.12, 0.18)), True
        clutter = 0
    vx, vy = pan[0] + speed * dx, pan[1] + speed * dy
    x0, y0 = rng.uniform(0, size, 2)  # the world wraps around: nothing ever leaves the frame
    discs = [Disc(x0, y0, vx, vy, radius, visible)]
    for _ in range(clutter):
        v = rng.uniform(-2.5, 2.5, 2)
        discs.append(
            Disc(
                *rng.uniform(0, size, 2),
                *(np.asarray(pan) + v),
                int(size * rng.uniform(0.06, 0.1)),
                False,
            )
        )
    return VideoSpec(f"{task}_{index:05d}", label, pan, discs, seed)


def render(spec: VideoSpec, size: int, frames: int) -> np.ndarray:
    """``uint8 [frames, size, size, 3]`` RGB of a toroidal world: the background is a periodic
    texture shifted with wrap-around, and discs leaving one edge re-enter at the other."""
    tex_seed = zlib.crc32(f"{spec.seed}/{spec.name}".encode())
    bg = _periodic_texture(size, tex_seed)
    sprites = []
    for k, d in enumerate(spec.discs):
        side = 2 * d.radius + 4
        # cut from a texture made exactly like the background: same statistics, locally too
        tex = _periodic_texture(size, tex_seed + 1 + k)[:side, :side].copy()
        if d.visible:  # contrasting: brighter and warmer than the background
            tex = cv2.addWeighted(tex, 0.5, np.full_like(tex, (255, 200, 60)), 0.5, 0)
        mask = np.zeros((side, side), np.float32)
        cv2.circle(mask, (side // 2, side // 2), d.radius, 1.0, -1, lineType=cv2.LINE_AA)
        if not d.visible:  # feathered edge: no seam for a single frame to show
            mask = cv2.GaussianBlur(mask, (0, 0), 1.0)
        sprites.append((tex.astype(np.float32), mask[..., None]))
    noise_rng = np.random.default_rng(tex_seed)
    out = np.empty((frames, size, size, 3), np.uint8)
    for t in range(frames):
        m = np.float32([[1, 0, t * spec.pan[0]], [0, 1, t * spec.pan[1]]])
        frame = cv2.warpAffine(
            bg, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP
        ).astype(np.float32)
        for d, (tex, mask) in zip(spec.discs, sprites, strict=True):
            side = tex.shape[0]
            cx, cy = (d.x + t * d.vx) % size, (d.y + t * d.vy) % size
            for ox in (0, -size, size):  # the copies that wrap around the edges
                for oy in (0, -size, size):
                    x, y = cx + ox - side / 2, cy + oy - side / 2
                    if x > size or y > size or x + side < 0 or y + side < 0:
                        continue
                    a = np.float32([[1, 0, x], [0, 1, y]])
                    layer = cv2.warpAffine(tex, a, (size, size), flags=cv2.INTER_LINEAR)
                    alpha = cv2.warpAffine(mask, a, (size, size), flags=cv2.INTER_LINEAR)
                    frame = frame * (1 - alpha[..., None]) + layer * alpha[..., None]
        frame += noise_rng.normal(0, 2.0, frame.shape).astype(np.float32)
        out[t] = np.clip(frame, 0, 255).astype(np.uint8)
    return out


def _periodic_texture(size: int, seed: int) -> np.ndarray:
    """A smooth random texture that tiles seamlessly (blurred with wrap-around borders)."""
    rng = np.random.default_rng(seed)
    tex = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    tex = cv2.GaussianBlur(tex, (0, 0), 1.5, borderType=cv2.BORDER_WRAP)
    return cv2.normalize(tex, None, 0, 255, cv2.NORM_MINMAX)


def _write_one(job: tuple[Path, VideoSpec, int, int]) -> None:
    path, spec, size, frames = job
    with atomic_output(path) as tmp:
        write_video(tmp, render(spec, size, frames))


def _write_in_worker(job: tuple[Path, VideoSpec, int, int]) -> str | None:
    """:func:`_write_one` in a pool worker: the error as text (a worker must not raise)."""
    try:
        _write_one(job)
    except Exception as e:  # reported by the parent, naming the video
        return f"{type(e).__name__}: {e}"
    return None


def _write_all(todo: list, workers: int, bar) -> None:
    """Render and encode ``todo`` in ``workers`` spawned processes (:class:`cvpt.pool.WorkerPool`:
    a worker killed, e.g. by the out-of-memory killer, fails its own video only, and the rest
    are made). Raises :class:`CvptError` naming every video not made and why; a rerun makes
    just those."""
    queue = deque((str(job[0]), (job,)) for job in todo)
    failed = []
    with WorkerPool(_write_in_worker, workers) as pool:
        for key, error in pool.run(queue):
            if isinstance(error, WorkerDied):
                remove_leftovers(Path(key), error.pid)  # its temp file
                error = error.describe("making it")
            if error:
                failed.append(f"{key}: {error}")
            bar.update()
    if failed:
        raise CvptError(
            f"{len(failed)} of {len(todo)} video(s) not made (run the command again to make "
            "just those):\n  " + "\n  ".join(failed)
        )


def synthesize(
    out: str | Path,
    *,
    task: str = "target",
    videos: int = 200,
    seed: int = 0,
    size: int = 64,
    frames: int = 48,
    test_fraction: float = 0.25,
    pan: float = 1.5,
    workers: int = 1,
    progress: bool = True,
) -> dict:
    """Write ``videos`` videos under ``out/videos/`` with ``out/{train,test}.txt`` (the ``list``
    dataset format), ``out/classes.json``, ``out/dataset.json`` (no flips: the labels are
    directions), ``out/meta.jsonl`` and the settings in ``out/synth.json``. Re-running with the
    same settings resumes (existing videos are kept); other settings in the same folder are
    refused, so that no stale video is ever mixed in.
    ``pan``: the target task's largest camera motion, px/frame. ``workers`` > 1 renders and
    encodes in that many spawned processes (the videos do not depend on it)."""
    if task not in TASKS:
        raise ConfigError(f"task must be one of {sorted(TASKS)}, got {task!r}")
    if size % 16:
        raise ConfigError(f"size must be a multiple of 16 (the patch size), got {size}")
    out = Path(out)
    settings = {"task": task, "seed": seed, "size": size, "frames": frames, "pan": pan}
    if (out / "synth.json").exists():
        before = SYNTH_SETTINGS.upgrade(
            json.loads((out / "synth.json").read_text()), out / "synth.json"
        )
        if before != settings:
            raise ConfigError(
                f"{out} holds a dataset made with {before}, not {settings}: use another folder"
            )
    (out / "videos").mkdir(parents=True, exist_ok=True)
    write_json(out / "synth.json", SYNTH_SETTINGS.stamp(settings))
    specs = [make_spec(task, i, seed, size, frames, pan) for i in range(videos)]
    todo = [(out / "videos" / f"{s.name}.mp4", s, size, frames) for s in specs]
    todo = [t for t in todo if not t[0].exists()]
    bar = tqdm(total=len(specs), initial=len(specs) - len(todo), desc=f"synth {task}",
               unit="video", disable=not progress)  # fmt: skip
    if workers > 1 and len(todo) > 1:
        _write_all(todo, workers, bar)
    else:
        for t in todo:
            _write_one(t)
            bar.update()
    bar.close()
    n_test = round(videos * test_fraction)
    split = {"test": specs[:n_test], "train": specs[n_test:]}  # balanced: labels cycle
    for subset, items in split.items():
        with atomic_output(out / f"{subset}.txt") as tmp:
            tmp.write_text("".join(f"videos/{s.name}.mp4 {s.label}\n" for s in items))
    write_json(out / "classes.json", TASKS[task])
    # the labels are directions: a horizontal flip would turn "right" into "left"
    write_json(out / "dataset.json", DATASET_OPTIONS.stamp({"flip": False}))
    with atomic_output(out / "meta.jsonl") as tmp:
        tmp.write_text("".join(json.dumps(asdict(s)) + "\n" for s in specs))
    return {
        "task": task,
        "videos": videos,
        "train": len(split["train"]),
        "test": len(split["test"]),
        "classes": TASKS[task],
        "size": size,
        "frames": frames,
    }
