"""``cvpt.Predictor``: load a trained model once, predict the classes of many videos.

Videos are decoded (and, when they are not in cvpt's compressed layout, the GOPs their views
read re-encoded first: :func:`source_views`) in ``workers`` processes, batched for the model,
and each comes back as a :class:`Prediction` holding either its top classes or the error that
stopped it: one bad file never stops the rest. ``cvpt predict`` is this class on the command
line.
"""

from __future__ import annotations

import contextlib
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from cvpt.codec import packets, window
from cvpt.codec.container import is_video_file
from cvpt.codec.encode import reencode
from cvpt.codec.reader import read_clip
from cvpt.codec.sampling import ClipSpec, view_start_gops
from cvpt.data.dataset import read_views, stack_views, worker_init, write_views
from cvpt.data.splits import LIST_SUFFIXES, read_list
from cvpt.data.transforms import ClipTransform
from cvpt.errors import CorruptVideoError, MissingFileError, UnpreparedVideoError, VideoError
from cvpt.io import walk_files
from cvpt.loading import input_settings, load_model
from cvpt.progress import tqdm
from cvpt.training.evaluate import predict_batch


@dataclass
class Prediction:
    """One video's result: ``top`` = ``[(class, probability), ...]`` best first and ``probs``
    (``[num_classes]``, softmax averaged over the views), or ``error`` (``top`` empty).
    ``warning``: what the reader or re-encoder warned about (e.g. damaged packets skipped, so
    the prediction comes from what still decodes)."""

    path: str
    top: list[tuple[str, float]] = field(default_factory=list)
    probs: np.ndarray | None = None
    error: str | None = None
    warning: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict:
        return {
            "path": self.path,
            "top": [{"class": c, "probability": p} for c, p in self.top],
            "error": self.error,
            "warning": self.warning,
        }


class Predictor:
    """A model, its class names and its input settings, ready to predict videos.

    ``Predictor.from_pretrained(run)`` loads what ``cvpt train`` wrote (a run folder or one of its
    checkpoints) once; ``predictor.predict(paths)`` returns one :class:`Prediction` per path, in
    order. Each video is read as ``cvpt eval`` reads it: ``clips`` clips spread over the video ×
    ``crops`` (1 or 3) crops = clips × crops *views*, softmax averaged over the views. Of videos
    not in the layout cvpt reads, the GOPs the views read are re-encoded into a temporary
    folder first, giving the inputs a whole re-encode would (:func:`source_views`;
    ``prepare=False``: an :class:`cvpt.UnpreparedVideoError` in their ``error`` instead).

    ``device``: ``"cpu"``, ``"cuda"``, or ``None`` (the run's setting: CUDA when available);
    ``amp``: bf16 autocast on CUDA; ``batch_size``: videos per forward pass (× views clips);
    ``workers``: decoding processes (0: in this process); ``clip``: what one clip is (default
    the model's own ``model.clip``, the geometry it was trained on; another number of GOPs or
    P-frames per GOP is a ``ValueError``).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        classes: list[str],
        *,
        size: int = 224,
        short_side: int = 256,
        mv_clip: float = 20.0,
        clips: int = 2,
        crops: int = 3,
        device: str | torch.device | None = None,
        amp: bool = True,
        batch_size: int = 4,
        workers: int = 0,
        prepare: bool = True,
        clip: ClipSpec | None = None,
        source: str | None = None,
    ):
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = model.to(self.device).eval()
        self.classes = list(classes)
        # compact views (uint8 / float16 / int16): under half the bytes from the workers, made
        # float32 on the device by predict_batch (cvpt.data.transforms.normalize_inputs)
        self.transform = ClipTransform(
            size=size, short_side=short_side, crops=crops, mv_clip=mv_clip, compact=True
        )
        self.clips, self.crops = clips, crops
        self.amp, self.batch_size, self.workers = amp, batch_size, workers
        self.prepare, self.source = prepare, source
        self.clip = _model_clip(model, clip)

    @property
    def views(self) -> int:
        """Views per video: clips × crops."""
        return self.clips * self.crops

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        *,
        device: str | torch.device | None = None,
        backbone_checkpoint: str | Path | None = None,
        allow_other_backbone: bool = False,
        **options,
    ) -> Predictor:
        """Load a trained model from ``path`` with :func:`cvpt.load_model` (a ``cvpt train``
        run folder, one of its checkpoint folders, a folder written by
        ``model.save_pretrained`` or a hub id), reading videos as it was trained to (its saved
        crop size, short side and MV scaling); ``options`` are the constructor's.
        ``backbone_checkpoint``: the frozen backbone's file when it is no longer where the run
        loaded it (it must be the same weights unless ``allow_other_backbone``). Raises
        :class:`cvpt.errors.RunError` / :class:`cvpt.errors.MissingFileError` for a folder
        that holds no trained model (or one saved without its input spec), and
        :class:`cvpt.BackboneMismatchError` for another backbone."""
        model = load_model(
            path,
            backbone_checkpoint=backbone_checkpoint,
            allow_other_backbone=allow_other_backbone,
            device=device or ("cuda" if torch.cuda.is_available() else "cpu"),
        )
        settings = input_settings(model)  # clips: the model's own geometry (model.clip)
        source = str(model.loaded_from)
        return cls(model, model.class_names, device=model_device(model), source=source,
                   **{**settings, **options})  # fmt: skip

    def predict(
        self, videos: Iterable[str | Path], *, top: int = 5, progress: bool = False
    ) -> list[Prediction]:
        """One :class:`Prediction` per video, in the given order."""
        return list(self.iter_predict(videos, top=top, progress=progress))

    def __call__(self, video: str | Path, *, top: int = 5) -> Prediction:
        """The prediction for one video."""
        return self.predict([video], top=top)[0]

    def iter_predict(
        self, videos: Iterable[str | Path], *, top: int = 5, progress: bool = False
    ) -> Iterator[Prediction]:
        """Like :meth:`predict`, yielding each batch's results as soon as it is done."""
        paths = [str(v) for v in videos]
        if not paths:
            return
        data = _Inputs(paths, self.transform, self.clips, self.prepare, self.clip)
        workers = min(self.workers, len(paths))
        loader = DataLoader(
            data,
            batch_size=self.batch_size,
            num_workers=workers,
            multiprocessing_context="spawn" if workers > 0 else None,
            worker_init_fn=worker_init,
            collate_fn=list,
        )
        k = min(top, len(self.classes))
        with tqdm(total=len(paths), desc="predict", unit="video", disable=not progress) as bar:
            for items in loader:
                ok = [it for it in items if it["error"] is None]
                probs = []
                if ok:
                    batch = stack_views([it["inputs"] for it in ok])
                    probs = predict_batch(self.model, batch, self.device, self.amp).cpu().numpy()
                done = iter(probs)
                for it in items:
                    if it["error"] is not None:
                        yield Prediction(it["path"], error=it["error"], warning=it["warning"])
                        continue
                    p = next(done)
                    best = np.argsort(-p)[:k]
                    top_k = [(self.classes[i], float(p[i])) for i in best]
                    yield Prediction(it["path"], top_k, probs=p, warning=it["warning"])
                bar.update(len(items))


def model_device(model: torch.nn.Module) -> torch.device:
    """The device ``model``'s parameters are on."""
    return next(model.parameters()).device


def load_views(video: str | Path, model: torch.nn.Module, clips: int = 1, crops: int = 1) -> dict:
    """A batch of one video as ``cvpt eval`` reads it for ``model`` (a :func:`cvpt.load_model`
    model: its input settings and clip geometry): tensors ``[1, V, C, T, H, W]``, V = clips ×
    crops views. Raises :class:`cvpt.errors.RunError` for a model saved without its input
    spec."""
    settings = input_settings(model)
    transform = ClipTransform(crops=crops, **settings)
    return {k: v[None] for k, v in read_views(Path(video), transform, clips, model.clip).items()}


def _model_clip(model: torch.nn.Module, clip: ClipSpec | None) -> ClipSpec:
    """The clips a Predictor reads for ``model``: ``clip`` when given, else the model's own
    (``model.clip``; the paper's default for a model that carries none). Raises
    ``ValueError`` for a ``clip`` of another geometry (GOPs or P-frames per GOP) than the
    model's: its predictions would come from clips it was not trained on."""
    own = getattr(model, "clip", None)
    if clip is None:
        return own if own is not None else ClipSpec()
    if own is not None and (clip.num_gops, clip.p_per_gop) != (own.num_gops, own.p_per_gop):
        raise ValueError(
            f"clip has {clip.num_gops} GOPs × {clip.p_per_gop} P-frames, the model was built "
            f"for {own.num_gops} × {own.p_per_gop} (model.clip): leave clip out to read the "
            "model's own"
        )
    return clip


class _Inputs(Dataset):
    """``[i]`` → ``{"path", "inputs": [V, C, T, S, S] tensors or None, "error": str or None}``."""

    def __init__(self, paths, transform: ClipTransform, clips: int, prepare: bool, spec: ClipSpec):
        self.paths, self.transform, self.clips, self.prepare = paths, transform, clips, prepare
        self.spec = spec

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> dict:
        path = self.paths[i]
        out = {"path": path, "inputs": None, "error": None}
        # warnings travel with the result: a worker's own stderr is no place for them
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                out["inputs"] = source_views(
                    path, self.transform, self.clips, self.spec, prepare=self.prepare
                )
            except VideoError as e:
                out["error"] = e.reason
            except Exception as e:  # one undecodable file must not stop a batch job: reported
                out["error"] = f"{type(e).__name__}: {e}"
        texts = list(dict.fromkeys(str(w.message) for w in caught))
        out["warning"] = "; ".join(texts) or None
        return out


def source_views(
    video: str | Path,
    transform: ClipTransform,
    clips: int,
    spec: ClipSpec | None = None,
    *,
    prepare: bool = True,
) -> dict[str, torch.Tensor]:
    """``read_views(video, transform, clips, spec)`` (tensors ``[clips × crops, C, T, S, S]``)
    of ``video`` as it is when it is in cvpt's layout, else of the copy :func:`prepared`
    would re-encode, bit-identical, re-encoding only the GOPs the clips read when the source's
    packets prove that exact (:mod:`cvpt.codec.window`: constant rate, nothing damaged or
    hidden), the whole file otherwise. Readiness is decided from one pass over the packets
    (``read_clip``'s own checks catch the rest, and such a file is then re-encoded); with
    ``prepare=False`` an unprepared video raises :class:`cvpt.UnpreparedVideoError`."""
    video, spec = Path(video), spec or ClipSpec()
    found = packets.survey(video)
    problems = packets.layout_problems(video, found=found)
    if not problems:
        try:
            return read_views(video, transform, clips, spec)
        except (UnpreparedVideoError, CorruptVideoError) as e:  # seen on decoding a frame
            if not prepare:
                raise
            problems = [e.reason]
    if not prepare:
        raise UnpreparedVideoError(video, problems[0])
    frames = packets.reencoded_frames(found)
    if isinstance(frames, int) and spec.gop_size == window.PREPARED_GOP:
        with tempfile.TemporaryDirectory() as tmp:
            try:
                return _window_views(found, frames, transform, clips, spec, Path(tmp))
            except window.WindowMismatch:  # the decoder disagreed with the packets: all of it
                pass
    with _reencoded(video, transform.short_side) as out:
        return read_views(out, transform, clips, spec)


def _window_views(
    found: packets.Survey,
    frames: int,
    transform: ClipTransform,
    clips: int,
    spec: ClipSpec,
    tmp: Path,
) -> dict[str, torch.Tensor]:
    """:func:`source_views` from the windows (in ``tmp``) of a re-encode of ``frames``
    frames."""
    gop = window.PREPARED_GOP
    num_gops = -(-frames // gop)
    starts = view_start_gops(num_gops, spec.num_gops, clips)
    ranges = window.gop_windows(starts, spec.num_gops, num_gops)
    files = window.encode_windows(
        found, frames, ranges, tmp, short_side=transform.short_side, gop=gop
    )

    def clips():  # each clip from its window, its views written as read_views does
        for start in starts:
            first, path = next(
                (a, p) for (a, b), p in zip(ranges, files, strict=True) if a <= start < b
            )
            yield read_clip(path, spec, start_gop=start - first)

    return write_views(transform, clips(), len(starts))


@contextlib.contextmanager
def prepared(video: str | Path, short_side: int, prepare: bool = True):
    """``video`` itself when it is in the layout read_clip needs (decided from its packets,
    :func:`cvpt.codec.packets.layout_problems`), else a copy re-encoded whole in a temporary
    folder (removed on exit)."""
    video = Path(video)
    problems = packets.layout_problems(video)
    if not problems:
        yield video
        return
    if not prepare:
        raise UnpreparedVideoError(video, problems[0])
    with _reencoded(video, short_side) as out:
        yield out


@contextlib.contextmanager
def _reencoded(video: Path, short_side: int):
    """``video`` re-encoded whole into a temporary folder (removed on exit); damage the
    re-encode found is warned about."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / (video.stem + ".mp4")
        result = reencode(video, out, short_side=short_side)
        if result.damage:  # predicted from what decodes; the caller must know
            warnings.warn(f"{video}: {result.damage}", stacklevel=4)
        yield out


def expand_inputs(inputs: Iterable[str | Path]) -> list[str]:
    """The videos named by ``inputs``: files as given, folders searched recursively for video
    extensions through linked folders (sorted), list files (``.txt``, ``.lst``, ``.list``,
    ``.csv``: one path per line, relative to the list's folder, an optional trailing label
    ignored; read by :func:`cvpt.data.splits.read_list`: quotes, commas, ``#``). A path
    that does not exist stays in the list (its prediction reports it). Raises
    :class:`cvpt.errors.MissingFileError` for a folder without videos."""
    out: list[str] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            walk = walk_files(p, is_video_file)
            # a link to nothing stays in the list: its prediction says so
            found = sorted(map(str, walk.files + walk.broken))
            for link, why in walk.not_followed:
                if link not in walk.broken:
                    warnings.warn(f"{link}: {why}; not followed", stacklevel=2)
            if not found:
                raise MissingFileError(f"{p}: no video files under this folder")
            out += found
        elif p.is_file() and p.suffix.lower() in LIST_SUFFIXES:
            comments: list[tuple[int, str]] = []
            for e in read_list(p, comments):  # the dataset lists' reader: quotes, commas, '#'
                # a whole line naming a file is a path holding spaces, not a path and a label
                out.append(str(p.parent / (e.whole if (p.parent / e.whole).is_file() else e.path)))
            for k, text in comments:  # '#1.mp4': a comment, though a file has that name
                if (p.parent / text).is_file() or (p.parent / text.split()[0]).is_file():
                    warnings.warn(
                        f"{p}, line {k}: {text!r} is read as a comment, though a file has that "
                        f"name; write it in double quotes to predict it",
                        stacklevel=2,
                    )
        else:
            out.append(str(p))
    return out
