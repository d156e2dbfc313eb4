"""``cvpt prepare``: re-encode a file or a whole tree into the layout read_clip needs.

Resumable (a verified output is skipped), shardable across machines (``shard=(i, n)``), parallel
across processes, atomic per file, and never touching a source. Ends with a report of every
failure and its reason, whatever failed (docs/reader.md, "When prepare meets trouble"):

- linked folders in the source tree are followed (:func:`cvpt.io.walk_files`); a link not
  followed (a loop, a link to nothing) is named in the report;
- a full, read-only or size-limited output disk is named as such, with the folder (whatever
  errno the encoder gave: :func:`cvpt.io.disk_trouble`); once a folder took no file, each later
  file looks at its own folder first and is "not attempted" while the trouble lasts;
- runs that share an output folder take turns per output (:func:`cvpt.io.output_lock`): no run
  removes another's temp file, and a file another run is writing is waited for, then skipped;
- a worker process that dies (the out-of-memory killer) fails its own file only: a new worker
  takes the rest (:class:`cvpt.pool.WorkerPool`), and workers exit when the run dies;
- the report is written even when ``dst`` cannot take it (to the temp folder instead, and
  :attr:`PrepareReport.report_error` says why), and on Ctrl-C / SIGTERM, listing what was
  "not finished" and "not attempted".
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path

from cvpt.codec import packets
from cvpt.codec.container import is_video_file
from cvpt.codec.encode import reencode, settings_of
from cvpt.errors import ConfigError, MissingFileError, VideoError
from cvpt.formats import Format
from cvpt.io import (
    OutputBusy,
    Walk,
    disk_trouble,
    output_lock,
    remove_leftovers,
    stale_temps_for,
    walk_files,
    write_json,
)
from cvpt.pool import Terminated, WorkerDied, WorkerPool, stop_requested
from cvpt.progress import tqdm

PREPARE_REPORT = Format("cvpt-prepare-report", 1)  # prepare-report*.json (read by people)


@dataclass
class Job:
    src: Path
    dst: Path


@dataclass
class Outcome:
    src: str
    dst: str
    status: str  # "done", "skipped" (verified output already there), "failed"; "busy" (internal)
    reason: str = ""
    # why no file can be written in the output folder now (read-only, full): the files not yet
    # started look at their folder first
    stop: str = ""
    frames: int = 0
    seconds: float = 0.0
    decode_errors: int = 0
    damage: str = ""  # the source is truncated or damaged (ReencodeResult.damage)
    source_frames: str = ""  # e.g. "123 of 240 decoded", for a damaged source
    leading_frames: int = 0  # source frames before its first key frame, dropped
    corrupt_frames: int = 0  # source frames the decoder flagged corrupt (damage it concealed)
    interlaced_frames: int = 0  # source frames flagged interlaced, deinterlaced (bwdif)
    field_order: str = ""
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
    # sources with frames flagged interlaced, deinterlaced: {src, interlaced_frames, field_order}
    deinterlaced_sources: list[dict] = field(default_factory=list)
    # links in the source tree that were not followed (a loop, a link to nothing): path, reason
    links_not_followed: list[dict] = field(default_factory=list)
    # why the files counted as failed "not attempted" were not (output disk, interruption)
    stopped: str = ""
    report_path: str = ""  # where this report was written as JSON ("": nowhere)
    report_error: str = ""  # why it is not where it was asked to be

    @property
    def ok(self) -> bool:
        return self.failed == 0

    @property
    def bytes_ratio(self) -> float | None:
        """Output bytes over source bytes (None when no output is there)."""
        return self.output_bytes / self.source_bytes if self.source_bytes else None


def plan_jobs(src: str | Path, dst: str | Path, shard: tuple[int, int] = (0, 1)) -> list[Job]:
    """Source → output pairs: one file, or every video under a folder (through linked folders)
    mirrored under ``dst`` with an ``.mp4`` suffix. Sorted by relative path, then every
    ``n``-th from ``i`` (shard)."""
    return _plan(src, dst, shard)[0]


def _plan(
    src: str | Path, dst: str | Path, shard: tuple[int, int] = (0, 1)
) -> tuple[list[Job], Walk | None]:
    """:func:`plan_jobs`, and the walk of a source folder (links not followed)."""
    src, dst = Path(src), Path(dst)
    index, count = shard
    if not 0 <= index < count:
        raise ConfigError(f"shard must be I/N with 0 ≤ I < N, got {index}/{count}")
    walk = None
    if src.is_file():
        if dst.suffix.lower() != ".mp4":  # a folder to put the file in
            dst = dst / (src.stem + ".mp4")
        jobs = [Job(src, dst)]
    elif src.is_dir():
        walk = walk_files(src, is_video_file, exclude=dst)
        # a link to nothing named like a video is one: it fails, naming the link
        files = sorted(walk.files + walk.broken, key=lambda p: p.relative_to(src).parts)
        jobs = [Job(p, dst / p.relative_to(src).with_suffix(".mp4")) for p in files]
    else:
        raise MissingFileError(f"{src}: no such file or folder")
    return [j for k, j in enumerate(jobs) if k % count == index], walk


def prepare_one(
    job: Job, options: dict, overwrite: bool = False, wait: bool = True, check_disk: bool = False
) -> Outcome:
    """Re-encode one file unless a verified output is already there. Never raises.

    The output is written while holding its lock (:func:`cvpt.io.output_lock`); with
    ``wait=False`` an output another process is writing comes back as status ``"busy"`` at
    once. ``check_disk``: look at the output folder first (after a file of this run found it
    full or read-only): the file fails as not attempted, naming the folder's trouble, while it
    lasts (unless its output is already there)."""
    t0 = time.perf_counter()
    src, dst = str(job.src), str(job.dst)
    try:
        if job.src.is_symlink() and not job.src.exists():
            return Outcome(
                src, dst, "failed", f"a link to {os.readlink(job.src)}, which does not exist"
            )
        found = _already_there(job, options, overwrite)
        if found is not None:
            return found
        if check_disk:
            trouble, lasting = disk_trouble(job.dst.parent)
            if lasting:
                return Outcome(src, dst, "failed", f"not attempted: {trouble}", stop=trouble)
        with output_lock(job.dst, wait=wait):
            found = _already_there(job, options, overwrite)  # another run may have written it
            if found is not None:
                return found
            for stale in stale_temps_for(job.dst):  # left by a killed run or worker
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
            interlaced_frames=result.interlaced_frames,
            field_order=result.field_order,
            **_sizes(job),
        )
    except OutputBusy:
        return Outcome(src, dst, "busy")
    except Exception as e:  # a bug or an FFmpeg surprise must not stop a 10,000-file run
        return _failure(job, e, time.perf_counter() - t0)


def _already_there(job: Job, options: dict, overwrite: bool) -> Outcome | None:
    """The outcome when ``job.dst`` exists: "skipped" (it verifies, with these settings) or
    "failed" (it is not ours to replace); None when it is to be written."""
    src, dst = str(job.src), str(job.dst)
    if not job.dst.exists():
        return None
    if job.src.resolve() == job.dst.resolve():
        return Outcome(src, dst, "failed", "the output path is the source itself")

    gop = options.get("gop", 12)
    try:  # the packet-level check reencode verifies its own outputs with
        found = packets.survey(job.dst, gop)
        problems = packets.layout_problems(job.dst, gop, found=found)
        other = not problems and _other_settings(job.dst, found, options)
    except VideoError as e:
        found, problems, other = None, [e.reason], ""
    if not problems and not other:
        return Outcome(src, dst, "skipped", frames=found.frames, **_sizes(job))
    if overwrite:
        return None
    why = f"was prepared {other}" if other else f"does not verify ({problems[0]})"
    return Outcome(
        src,
        dst,
        "failed",
        f"{dst} exists and {why}; delete it, pass --overwrite, or prepare into another folder",
    )


def _failure(job: Job, e: Exception, seconds: float) -> Outcome:
    """A failed outcome whose reason names what failed: the source, the output (and then the
    output folder's trouble, read from the folder: a full or read-only disk), or another
    file. A source is blamed only when the error is about the source."""
    if isinstance(e, VideoError):
        reason = e.reason if e.path == str(job.src) else f"{e.path}: {e.reason}"
        about_output = e.path != str(job.src)
    else:
        reason, about_output = f"{type(e).__name__}: {e}", isinstance(e, OSError)
    stop = ""
    if about_output:
        trouble, lasting = disk_trouble(job.dst.parent, e)
        if trouble:
            reason = f"{trouble} ({reason})"
            stop = trouble if lasting else ""
    return Outcome(str(job.src), str(job.dst), "failed", reason, stop=stop, seconds=seconds)


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


class PrepareInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM under ``cvpt prepare``) stopped :func:`prepare`; ``report`` is what it
    did, written like any report, the files it did not finish counted as not attempted."""

    def __init__(self, report: PrepareReport):
        super().__init__("prepare interrupted")
        self.report = report


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
    returns it. When that path cannot be written (a full or read-only disk) the report goes to
    the system's temp folder and ``report_error`` says why (``report_path`` is where it is, ""
    when nowhere). Ctrl-C (and SIGTERM under :func:`cvpt.pool.stop_on_sigterm`, as ``cvpt
    prepare`` runs it) raises :class:`PrepareInterrupted` after writing the report.
    """
    t0 = time.perf_counter()
    # several workers keep the cores busy: one decode thread each spends less CPU time
    options = {"decode_threads": "NONE" if workers > 1 else "AUTO", **options}
    jobs, walk = _plan(src, dst, shard)
    shard_tag = f"{shard[0]}/{shard[1]}"
    report = PrepareReport(src=str(src), dst=str(dst), shard=shard_tag, total=len(jobs))
    if walk is not None:
        report.links_not_followed = [
            {"path": str(p), "reason": why} for p, why in walk.not_followed
        ]
    seen: dict[Path, Path] = {}
    queue: deque = deque()  # (job, whether to wait for its lock)
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
            queue.append((job, False))

    bar = tqdm(total=len(queue), unit="video", desc="prepare", disable=not progress)
    tasks = _Tasks(queue, options, overwrite, report)
    outcomes = _outcomes(tasks, workers)
    try:
        for job, out in outcomes:
            if out.status == "busy":  # another run writes it: once the rest is done, wait
                queue.append((job, True))
                continue
            if out.stop and not report.stopped:  # nothing can be written there now: the
                report.stopped = out.stop  # files not yet started look at their folder first
            _record(report, out, bar)
    except BaseException as e:  # Ctrl-C, SIGTERM, a bug: what was not done is reported
        outcomes.close()  # the workers stop (their temp files removed) before the report
        why = f"interrupted ({str(e) or type(e).__name__})"
        report.stopped = f"{report.stopped}; {why}" if report.stopped else why
        for job in tasks.running.values():
            _record(report, Outcome(str(job.src), str(job.dst), "failed", f"not finished: {why}"))
        for job, _ in queue:
            _record(report, Outcome(str(job.src), str(job.dst), "failed", f"not attempted: {why}"))
        bar.close()
        _finish(report, src, dst, jobs, shard, report_path, t0)
        if isinstance(e, KeyboardInterrupt):
            raise PrepareInterrupted(report) from e
        where = report.report_path or f"not written ({report.report_error})"
        e.add_note(f"cvpt prepare stopped here; its report of every file so far: {where}")
        raise
    bar.close()
    _finish(report, src, dst, jobs, shard, report_path, t0)
    return report


class _Tasks:
    """The jobs still to do as :class:`cvpt.pool.WorkerPool` takes them: one at a time, when a
    worker is free, so that each goes with what is known when it starts (``report.stopped``: an
    output folder took no file, so it is looked at first) and jobs added later are taken too.
    ``running``: the jobs taken and not answered, by output."""

    def __init__(self, queue: deque, options: dict, overwrite: bool, report: PrepareReport):
        self.queue, self.options, self.overwrite, self.report = queue, options, overwrite, report
        self.running: dict[Path, Job] = {}

    def __bool__(self) -> bool:
        return bool(self.queue)

    def popleft(self) -> tuple[Path, tuple]:
        job, wait = self.queue.popleft()
        self.running[job.dst] = job
        return job.dst, (job, self.options, self.overwrite, wait, bool(self.report.stopped))

    def appendleft(self, task: tuple[Path, tuple]) -> None:
        job, wait = self.running.pop(task[0]), task[1][3]
        self.queue.appendleft((job, wait))


def _outcomes(tasks: _Tasks, workers: int):
    """``(job, outcome)`` of every job ``tasks`` hands out, in this process or in ``workers``
    processes (a job whose worker died fails with the reason; a new worker goes on)."""
    if workers <= 1:
        while tasks:
            key, args = tasks.popleft()
            out = prepare_one(*args)
            if stop_requested():  # SIGTERM while FFmpeg ran: PyAV made it an FFmpeg error
                raise Terminated("SIGTERM")
            yield tasks.running.pop(key), out
        return
    with WorkerPool(prepare_one, workers) as pool:
        for key, out in pool.run(tasks):
            job = tasks.running.pop(key)
            if isinstance(out, WorkerDied):
                remove_leftovers(job.dst, out.pid)  # its temp and lock files
                out = Outcome(str(job.src), str(job.dst), "failed", out.reason)
            yield job, out


def _finish(report, src, dst, jobs, shard, report_path, t0) -> None:
    """Sort, time and write the report: to ``report_path``, else to the temp folder."""
    report.seconds = time.perf_counter() - t0
    report.failures.sort(key=lambda f: f["src"])
    if report_path is None:
        base = Path(dst) if Path(src).is_dir() else Path(jobs[0].dst).parent if jobs else Path(dst)
        suffix = "" if shard == (0, 1) else f"-shard-{shard[0]}-of-{shard[1]}"
        report_path = base / f"prepare-report{suffix}.json"
    report.report_path = str(report_path)
    try:
        write_json(report_path, PREPARE_REPORT.stamp(asdict(report)))
        return
    except OSError as e:
        trouble, _ = disk_trouble(Path(report_path).parent, e)
        report.report_error = f"could not write {report_path}: {trouble or e}"
    spare = Path(tempfile.gettempdir()) / f"cvpt-prepare-report-{os.getpid()}.json"
    report.report_path = str(spare)
    try:
        write_json(spare, PREPARE_REPORT.stamp(asdict(report)))
    except OSError as e:
        report.report_error += f"; nor {spare}: {e}"
        report.report_path = ""


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
    if out.interlaced_frames:
        report.deinterlaced_sources.append(
            {
                "src": out.src,
                "interlaced_frames": out.interlaced_frames,
                "field_order": out.field_order,
            }
        )
    if bar is not None:
        bar.update(1)
