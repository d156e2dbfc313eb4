"""``cvpt prepare``: re-encode a file or a whole tree into the layout read_clip needs.

Resumable (a verified output is skipped), shardable across machines (``shard=(i, n)``), parallel
across processes, atomic per file, and never touching a source. Ends with a report of every
failure and its reason.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

from cvpt.codec.container import is_video_file
from cvpt.codec.encode import reencode, settings_of
from cvpt.errors import ConfigError, MissingFileError, VideoError
from cvpt.io import stale_temps_for, write_json
from cvpt.progress import tqdm


@dataclass
class Job:
    src: Path
    dst: Path


@dataclass
class Outcome:
    src: str
    dst: str
    status: str  # "done", "skipped" (verified output already there) or "failed"
    reason: str = ""
    frames: int = 0
    seconds: float = 0.0
    decode_errors: int = 0
    damage: str = ""  # the source is truncated or damaged (ReencodeResult.damage)
    source_frames: str = ""  # e.g. "123 of 240 decoded", for a damaged source
    leading_frames: int = 0  # source frames before its first key frame, dropped
    corrupt_frames: int = 0  # source frames the decoder flagged corrupt (damage it concealed)
    source_bytes: int = 0  # of the source and of its output ("done" and "skipped")
    output_bytes: int = 0


@dataclass
class PrepareReport:
    src: str
    dst: str
    shard: str
    total: int = 0
    done: int = 0
    skipped: int = 0
    failed: int = 0
    seconds: float = 0.0
    # bytes of the sources whose output is there ("done" or "skipped"), and of those outputs
    source_bytes: int = 0
    output_bytes: int = 0
    failures: list[dict] = field(default_factory=list)
    # encoded as far as they decode: truncated, or past damaged packets (src, reason, frames)
    damaged_sources: list[dict] = field(default_factory=list)
    report_path: str = ""  # where this report was written as JSON

    @property
    def ok(self) -> bool:
        return self.failed == 0

    @property
    def bytes_ratio(self) -> float | None:
        """Output bytes over source bytes (None when no output is there)."""
        return self.output_bytes / self.source_bytes if self.source_bytes else None


def plan_jobs(src: str | Path, dst: str | Path, shard: tuple[int, int] = (0, 1)) -> list[Job]:
    """Source → output pairs: one file, or every video under a folder mirrored under ``dst``
    with an ``.mp4`` suffix. Sorted by relative path, then every ``n``-th from ``i`` (shard)."""
    src, dst = Path(src), Path(dst)
    index, count = shard
    if not 0 <= index < count:
        raise ConfigError(f"shard must be I/N with 0 ≤ I < N, got {index}/{count}")
    if src.is_file():
        if dst.suffix.lower() != ".mp4":  # a folder to put the file in
            dst = dst / (src.stem + ".mp4")
        jobs = [Job(src, dst)]
    elif src.is_dir():
        dst_abs = dst.resolve()
        files = sorted(
            p
            for p in src.rglob("*")
            if p.is_file() and is_video_file(p) and not p.resolve().is_relative_to(dst_abs)
        )
        jobs = [Job(p, dst / p.relative_to(src).with_suffix(".mp4")) for p in files]
    else:
        raise MissingFileError(f"{src}: no such file or folder")
    return [j for k, j in enumerate(jobs) if k % count == index]


def prepare_one(job: Job, options: dict, overwrite: bool = False) -> Outcome:
    """Re-encode one file unless a verified output is already there. Never raises."""
    t0 = time.perf_counter()
    src, dst = str(job.src), str(job.dst)
    try:
        if job.dst.exists():
            if job.src.resolve() == job.dst.resolve():
                return Outcome(src, dst, "failed", "the output path is the source itself")
            from cvpt.codec import window  # window imports encode: not at the top

            gop = options.get("gop", 12)
            try:  # the packet-level check reencode verifies its own outputs with
                found = window.survey(job.dst, gop)
                problems = window.layout_problems(job.dst, gop, found=found)
                other = not problems and _other_settings(job.dst, found, options)
            except VideoError as e:
                found, problems, other = None, [e.reason], ""
            if not problems and not other:
                return Outcome(src, dst, "skipped", frames=found.frames, **_sizes(job))
            if not overwrite:
                why = f"was prepared {other}" if other else f"does not verify ({problems[0]})"
                return Outcome(
                    src,
                    dst,
                    "failed",
                    f"{dst} exists and {why}; delete it, pass --overwrite, or prepare into "
                    "another folder",
                )
        for stale in stale_temps_for(job.dst):  # left by a killed run on this shard's file
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()
        result = reencode(job.src, job.dst, overwrite=overwrite, **options)
        return Outcome(
            src,
            dst,
            "done",
            frames=result.frames,
            seconds=time.perf_counter() - t0,
            decode_errors=result.decode_errors,
            damage=result.damage,
            source_frames=f"{result.decoded_frames} decoded"
            + (f" of {result.header_frames} in its header" if result.header_frames else ""),
            leading_frames=result.leading_frames,
            corrupt_frames=result.corrupt_frames,
            **_sizes(job),
        )
    except VideoError as e:
        return Outcome(src, dst, "failed", e.reason, seconds=time.perf_counter() - t0)
    except Exception as e:  # a bug or an FFmpeg surprise must not stop a 10,000-file run
        return Outcome(
            src, dst, "failed", f"{type(e).__name__}: {e}", seconds=time.perf_counter() - t0
        )


def _other_settings(dst: Path, found, options: dict) -> str:
    """How an existing output differs from what this run would write ("" when it does not, as
    far as it can tell): the settings it carries (:func:`cvpt.codec.encode.settings_of`), or,
    for one written before cvpt tagged its outputs, its short side."""
    want = {
        "codec": options.get("codec", "mpeg4"),
        "gop": options.get("gop", 12),
        "q": options.get("q", 2),
        "short_side": options.get("short_side", 256),
        "dia_size": options.get("dia_size", 4),
    }
    have = settings_of(dst)
    if have is None:
        side = want["short_side"]
        got = min(found.width, found.height)
        if side and got != side - side % 2:
            return f"at short side {got}, not {side}"
        return ""
    if want["codec"] != "mpeg4":  # the quantiser is MPEG-4's (libx264 takes crf)
        want.pop("q")
    keys = [k for k, v in want.items() if have.get(k) != str(v)]
    if not keys:
        return ""
    return f"with {' '.join(f'{k}={have.get(k)}' for k in keys)}, not " + " ".join(
        f"{k}={want[k]}" for k in keys
    )


def _sizes(job: Job) -> dict[str, int]:
    return {"source_bytes": job.src.stat().st_size, "output_bytes": job.dst.stat().st_size}


def prepare(
    src: str | Path,
    dst: str | Path,
    *,
    workers: int = 1,
    shard: tuple[int, int] = (0, 1),
    overwrite: bool = False,
    report_path: str | Path | None = None,
    progress: bool = True,
    **options,
) -> PrepareReport:
    """Re-encode ``src`` (file or tree) into ``dst``; ``options`` go to :func:`cvpt.reencode`.

    Writes the report as JSON to ``report_path`` (default:
    ``dst/prepare-report[-shard-I-of-N].json`` for a folder, beside the output for a file) and
    returns it.
    """
    t0 = time.perf_counter()
    # several workers keep the cores busy: one decode thread each spends less CPU time
    options = {"decode_threads": "NONE" if workers > 1 else "AUTO", **options}
    jobs = plan_jobs(src, dst, shard)
    shard_tag = f"{shard[0]}/{shard[1]}"
    report = PrepareReport(src=str(src), dst=str(dst), shard=shard_tag, total=len(jobs))
    seen: dict[Path, Path] = {}
    runnable = []
    for job in jobs:  # a.avi and a.mkv in one folder would both become a.mp4
        if job.dst in seen:
            _record(
                report,
                Outcome(
                    str(job.src), str(job.dst), "failed", f"same output name as {seen[job.dst]}"
                ),
            )
        else:
            seen[job.dst] = job.src
            runnable.append(job)

    bar = tqdm(total=len(runnable), unit="video", desc="prepare", disable=not progress)
    if workers <= 1:
        for job in runnable:
            _record(report, prepare_one(job, options, overwrite), bar)
    else:
        # spawn: FFmpeg's and OpenCV's threads do not survive a fork safely
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
            futures = [pool.submit(prepare_one, job, options, overwrite) for job in runnable]
            for fut in as_completed(futures):
                _record(report, fut.result(), bar)
    bar.close()
    report.seconds = time.perf_counter() - t0
    report.failures.sort(key=lambda f: f["src"])
    if report_path is None:
        base = Path(dst) if Path(src).is_dir() else Path(jobs[0].dst).parent if jobs else Path(dst)
        suffix = "" if shard == (0, 1) else f"-shard-{shard[0]}-of-{shard[1]}"
        report_path = base / f"prepare-report{suffix}.json"
    report.report_path = str(report_path)
    write_json(report_path, asdict(report))
    return report


def _record(report: PrepareReport, out: Outcome, bar: tqdm | None = None) -> None:
    setattr(report, out.status, getattr(report, out.status) + 1)
    report.source_bytes += out.source_bytes
    report.output_bytes += out.output_bytes
    if out.status == "failed":
        report.failures.append({"src": out.src, "reason": out.reason})
        if bar is not None and not getattr(bar, "disable", False):  # --quiet: listed once
            bar.write(f"FAILED {out.src}: {out.reason}")
    if out.damage:
        report.damaged_sources.append(
            {
                "src": out.src,
                "reason": out.damage,
                "damaged_packets": out.decode_errors,
                "frames": out.source_frames,
                "dropped_before_key_frame": out.leading_frames,
                "corrupt_frames": out.corrupt_frames,
            }
        )
    if bar is not None:
        bar.update(1)
