"""What prepare (and every walk of a tree) does when the file system or the cluster gets in the
way: linked folders, a full / read-only / size-limited output disk, two runs on one output
folder, a worker killed by the out-of-memory killer, a killed parent. Real processes, real
files; a full disk is simulated where it cannot be made."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import random
import re
import resource
import signal
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

import pytest

import cvpt
import cvpt.io
from cvpt.codec import prepare as prepare_mod
from cvpt.codec.prepare import prepare
from cvpt.data.generate import moving_scene
from cvpt.data.splits import FolderSplits
from cvpt.errors import EncodeError
from cvpt.io import TMP_MARK, stale_temps_for, temp_owner, temp_path_for, walk_files
from cvpt.pool import WorkerDied, WorkerPool
from cvpt.predictor import expand_inputs

CLI = [sys.executable, "-m", "cvpt.cli.main", "prepare"]


def _sources(folder: Path, n: int, frames: int = 36, size=(96, 128), name="v{}.avi") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for k in range(n):
        path = folder / name.format(k)
        scene = moving_scene(frames=frames, height=size[0], width=size[1], seed=k)
        out.append(cvpt.write_video(path, scene, codec="mpeg4", gop=250))
    return out


def _leftovers(folder: Path) -> list[str]:
    """Temp and lock files anywhere under ``folder``."""
    return sorted(p.name for p in folder.rglob(".*") if TMP_MARK in p.name or "cvpt-lock" in p.name)


def _env(tmp_path: Path) -> dict[str, str]:
    src = str(Path(cvpt.__file__).parents[1])
    tmp = tmp_path / "tmpdir"
    tmp.mkdir(exist_ok=True)
    return {**os.environ, "PYTHONPATH": src, "TMPDIR": str(tmp)}


# --- linked folders ---------------------------------------------------------------------------


def _linked_tree(base: Path, seed: int) -> tuple[Path, list[str], list[str]]:
    """A source tree made of real folders, links to folders elsewhere (some nested), links to
    files, links back up the tree (loops) and links to nothing. Returns the root, the video
    paths a walk must find (relative, through the links) and the links it must name."""
    rng = random.Random(seed)
    root, elsewhere = base / "root", base / "elsewhere"
    root.mkdir()
    want, named = [], []
    for c in range(rng.randint(2, 5)):
        cls = f"class {c}, #{c}"  # SSv2-like names: spaces, commas, '#'
        real = rng.random() < 0.5
        folder = root / cls if real else elsewhere / cls
        folder.mkdir(parents=True)
        if not real:
            (root / cls).symlink_to(os.path.relpath(folder, root))
        for v in range(rng.randint(1, 3)):
            (folder / f"v{v}.mp4").write_bytes(b"")
            want.append(f"{cls}/v{v}.mp4")
        (folder / "notes.txt").write_text("not a video")
        if rng.random() < 0.7:  # a folder linked from inside, holding one more video
            deep = elsewhere / f"deep{c}"
            deep.mkdir(parents=True)
            (deep / "d.webm").write_bytes(b"")
            (folder / "deeper").symlink_to(deep)
            want.append(f"{cls}/deeper/d.webm")
        if rng.random() < 0.6:  # a loop: a link to the class folder or the root (absolute:
            # ".." in a linked folder is the parent of its target, not of the link)
            (folder / "again").symlink_to(rng.choice([folder, root]))
            named.append(f"{cls}/again")
        if rng.random() < 0.5:  # a link to a file elsewhere
            (elsewhere / f"f{c}.mkv").write_bytes(b"")
            (folder / "linked.mkv").symlink_to(elsewhere / f"f{c}.mkv")
            want.append(f"{cls}/linked.mkv")
    (root / f".v{TMP_MARK}host-1.mp4").write_bytes(b"")  # a killed prepare's temp: not a video
    (root / "gone.mp4").symlink_to(base / "nowhere.mp4")  # a link to nothing
    named.append("gone.mp4")
    return root, sorted(want), sorted(named)


@pytest.mark.parametrize("seed", range(12))
def test_walk_follows_linked_folders_and_names_every_link_not_followed(tmp_path, seed):
    root, want, named = _linked_tree(tmp_path, seed)
    walk = walk_files(root, cvpt.codec.container.is_video_file)
    assert sorted(p.relative_to(root).as_posix() for p in walk.files) == want
    assert sorted(p.relative_to(root).as_posix() for p, _ in walk.not_followed) == named
    reasons = dict((p.relative_to(root).as_posix(), why) for p, why in walk.not_followed)
    assert "does not exist" in reasons["gone.mp4"]
    assert all("loop" in why for p, why in reasons.items() if p.endswith("again"))
    assert [p.name for p in walk.broken] == ["gone.mp4"]


def test_a_linked_class_folder_is_prepared_predicted_and_trained_on(tmp_path):
    """``src/jump -> ../elsewhere/jump`` (and a loop inside it): prepare writes its videos, the
    report names the loop, predict on the folder and the folder dataset both see the class."""
    src = tmp_path / "src"
    _sources(src / "walk", 1)
    _sources(tmp_path / "elsewhere" / "jump", 2)
    (src / "jump").symlink_to("../elsewhere/jump")
    (tmp_path / "elsewhere" / "jump" / "loop").symlink_to(".")
    dst = tmp_path / "dst"
    report = prepare(src, dst, progress=False)
    assert (report.total, report.done, report.failed) == (3, 3, 0)
    assert sorted(p.relative_to(dst).as_posix() for p in dst.rglob("*.mp4")) == [
        "jump/v0.mp4",
        "jump/v1.mp4",
        "walk/v0.mp4",
    ]
    assert [d["path"] for d in report.links_not_followed] == [str(src / "jump" / "loop")]
    assert "loop" in report.links_not_followed[0]["reason"]
    assert json.loads(Path(report.report_path).read_text())["links_not_followed"]
    (dst / "jump" / "loop").symlink_to(".")
    with pytest.warns(UserWarning, match=r"jump/loop: a link to \., a folder above it"):
        assert expand_inputs([dst]) == [
            str(dst / r) for r in ("jump/v0.mp4", "jump/v1.mp4", "walk/v0.mp4")
        ]
    (dst / "jump").rename(tmp_path / "jump_out")  # the prepared class, linked in
    (dst / "jump").symlink_to(tmp_path / "jump_out")
    splits = FolderSplits(dst)
    assert splits.classes == ["jump", "walk"]
    with pytest.warns(UserWarning, match="jump/loop: a link to"):
        samples = splits.samples("all")
    assert [(s.path, s.label) for s in samples] == [
        ("jump/v0.mp4", 0),
        ("jump/v1.mp4", 0),
        ("walk/v0.mp4", 1),
    ]


# --- a full, read-only or size-limited output disk ------------------------------------------


def _fail_like_a_full_disk(monkeypatch, report_fails: str):
    """What a full disk does to prepare: the encoder's writes fail and FFmpeg's muxer says
    EINVAL, a small file does not fit either, and (``report_fails``: "dst" or "everywhere")
    the report's own write fails with ENOSPC."""

    def reencode(src, dst, **kw):
        cause = OSError(errno.EINVAL, "Invalid argument")
        raise EncodeError(dst, "encoding failed ([Errno 22] Invalid argument)") from cause

    real_write_json = prepare_mod.write_json

    def write_json(path, obj):
        if report_fails == "everywhere" or str(path).startswith(str(dst_root)):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real_write_json(path, obj)

    dst_root = None
    monkeypatch.setattr(prepare_mod, "reencode", reencode)
    monkeypatch.setattr(prepare_mod, "write_json", write_json)
    monkeypatch.setattr(cvpt.io, "_probe_write", lambda folder: errno.ENOSPC)

    def set_dst(d):
        nonlocal dst_root
        dst_root = d

    return set_dst


@pytest.mark.parametrize("report_fails", ["dst", "everywhere"])
def test_a_full_disk_is_named_and_the_summary_printed(tmp_path, monkeypatch, capsys, report_fails):
    from cvpt.cli.main import main

    src = tmp_path / "src"
    for k in range(4):  # nothing is decoded: the encoder fails as on a full disk
        (src / f"c{k % 2}").mkdir(parents=True, exist_ok=True)
        (src / f"c{k % 2}" / f"v{k}.avi").write_bytes(b"x")
    dst = tmp_path / "dst"
    _fail_like_a_full_disk(monkeypatch, report_fails)(dst)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    assert main(["prepare", str(src), str(dst), "--quiet"]) == 1
    out, err = capsys.readouterr()
    summary = out.splitlines()[0]
    assert (
        summary.startswith("4 video(s) in ")
        and "0 encoded, 0 already prepared (skipped), 4 failed" in summary
    )
    failed = re.findall(r"FAILED (\S+): (.*)", err)
    assert [s for s, _ in failed] == [str(src / f"c{k % 2}" / f"v{k}.avi") for k in (0, 2, 1, 3)]
    first, *rest = [why for _, why in failed]
    assert first.startswith(f"cannot write in {dst / 'c0'}: no space left on its device")
    assert "Invalid argument" in first  # the encoder's words kept, after the diagnosis
    for why in rest:  # later files look at their folder first: no encoder run, no EINVAL
        assert why.startswith("not attempted: cannot write in ") and "no space left" in why
        assert "Invalid argument" not in why
    assert "stopped: cannot write in" in err
    spare = tmp_path / f"cvpt-prepare-report-{os.getpid()}.json"
    if report_fails == "dst":  # the report went to the temp folder, and the summary says so
        assert summary.endswith(f"report: {spare}")
        assert f"could not write {dst / 'prepare-report.json'}: cannot write in {dst}" in err
        saved = json.loads(spare.read_text())
        assert saved["failed"] == 4 and saved["report_error"] and len(saved["failures"]) == 4
    else:  # nowhere to write it: one clear line says so and where it tried
        assert summary.endswith("report: not written") and not spare.exists()
        assert f"nor {spare}" in err


def _read_only_or_skip(folder: Path) -> list[str]:
    """A command prefix under which ``folder`` is read-only: chmod for a user (root writes
    anyway), a read-only bind mount in a private mount namespace for root."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return []
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("root without mount namespaces: no way to make a read-only folder")
    mount = f"mount --bind '{folder}' '{folder}' && mount -o remount,bind,ro '{folder}'"
    return ["unshare", "-m", "sh", "-c", f'{mount} && exec "$@"', "sh"]


def test_a_read_only_output_folder_is_named_and_the_report_goes_elsewhere(tmp_path):
    _sources(tmp_path / "src", 3)
    dst = tmp_path / "dst"
    dst.mkdir()
    prefix = _read_only_or_skip(dst)
    env = _env(tmp_path)
    run = subprocess.run(
        [*prefix, *CLI, str(tmp_path / "src"), str(dst), "--quiet"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    dst.chmod(0o755)
    assert run.returncode == 1, run.stderr
    summary = run.stdout.splitlines()[0]
    assert "0 encoded, 0 already prepared (skipped), 3 failed" in summary
    spare = Path(summary.split("report: ")[1])
    assert spare.parent == Path(env["TMPDIR"]) and spare.exists()
    saved = json.loads(spare.read_text())
    reasons = [f["reason"] for f in saved["failures"]]
    ro = f"cannot write in {dst}: "
    assert reasons[0].startswith(ro) and ("read-only" in reasons[0] or "denied" in reasons[0])
    assert all(r.startswith("not attempted: " + ro) for r in reasons[1:]), reasons
    assert f"could not write {dst / 'prepare-report.json'}" in saved["report_error"]
    assert not list(dst.iterdir())


def _limit_file_size(limit: int):
    def apply():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_a_file_size_limit_is_named_not_the_encoders_error(tmp_path):
    """``ulimit -f`` (a real kernel limit: the encoder's own writes fail with EFBIG)."""
    _sources(tmp_path / "src", 3)
    dst = tmp_path / "dst"
    run = subprocess.run(
        [*CLI, str(tmp_path / "src"), str(dst), "--quiet"],
        capture_output=True,
        text=True,
        env=_env(tmp_path),
        preexec_fn=_limit_file_size(20_000),
        timeout=120,
    )
    assert run.returncode == 1, run.stderr
    saved = json.loads((dst / "prepare-report.json").read_text())  # a small file fits
    assert saved["failed"] == 3
    want = f"cannot write a file over 20.0 kB in {dst}: the file size limit of this process"
    first, *rest = [f["reason"] for f in saved["failures"]]
    assert first.startswith(want), first
    assert all(r.startswith("not attempted: " + want) for r in rest), rest
    assert _leftovers(dst) == []


def test_a_really_full_disk(tmp_path):
    """A 32 kB tmpfs as the output folder (root with mount namespaces only)."""
    if os.geteuid() != 0 or subprocess.run(["unshare", "-m", "true"]).returncode != 0:
        pytest.skip("needs root with mount namespaces to mount a small tmpfs")
    _sources(tmp_path / "src", 2)
    dst = tmp_path / "dst"
    dst.mkdir()
    mount = f"mount -t tmpfs -o size=32k tmpfs '{dst}'"
    script = f'{mount} && "$@"; rc=$?; cat "{dst}/prepare-report.json"; exit $rc'
    run = subprocess.run(
        [
            "unshare",
            "-m",
            "sh",
            "-c",
            script,
            "sh",
            *CLI,
            str(tmp_path / "src"),
            str(dst),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        env=_env(tmp_path),
        timeout=120,
    )
    assert run.returncode == 1, run.stderr
    assert "2 failed; report: " + str(dst / "prepare-report.json") in run.stdout
    saved = json.loads(run.stdout[run.stdout.index("{") :])
    first, second = [f["reason"] for f in saved["failures"]]
    assert f"cannot write in {dst}: no space left on its device" in first, first
    assert second.startswith(f"not attempted: cannot write in {dst}: no space left"), second


# --- two runs on one output folder ------------------------------------------------------------


def test_a_live_process_s_temp_file_is_not_stale(tmp_path):
    dst = tmp_path / "out.mp4"
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    try:
        live_tmp, dead_tmp = temp_path_for(dst, alive.pid), temp_path_for(dst, dead.pid)
        other_host = dst.with_name(f".out{TMP_MARK}elsewhere-1.mp4")
        for p in (live_tmp, dead_tmp, other_host):
            p.write_bytes(b"")
        assert stale_temps_for(dst) == sorted([dead_tmp, other_host])
    finally:
        alive.kill()
        alive.wait()


@pytest.mark.parametrize("about", ["source", "temp", "output"])
def test_a_source_is_blamed_only_for_its_own_errors(tmp_path, monkeypatch, about):
    """An error about another file (the temp another run removed, the output) names that file,
    never reads as the source's; an error about the source is the source's reason alone."""
    from cvpt.errors import VideoNotFoundError

    src = tmp_path / "src" / "v.avi"
    src.parent.mkdir()
    src.write_bytes(b"x")
    dst = tmp_path / "dst" / "v.mp4"
    bad = {"source": src, "temp": temp_path_for(dst), "output": dst}[about]

    def reencode(s, d, **kw):
        raise VideoNotFoundError(bad, "no such file")

    monkeypatch.setattr(prepare_mod, "reencode", reencode)
    (failure,) = prepare(src, dst, progress=False).failures
    assert failure["src"] == str(src)
    assert failure["reason"] == ("no such file" if about == "source" else f"{bad}: no such file")


def test_two_runs_on_one_output_folder_share_the_work(tmp_path):
    srcs = _sources(tmp_path / "src", 6, frames=48)
    dst = tmp_path / "dst"
    runs = [
        subprocess.Popen(
            [
                *CLI,
                str(tmp_path / "src"),
                str(dst),
                "--quiet",
                "--report",
                str(tmp_path / f"r{k}.json"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(tmp_path),
        )
        for k in range(2)
    ]
    outs = [r.communicate(timeout=300) for r in runs]
    assert [r.returncode for r in runs] == [0, 0], outs
    reports = [json.loads((tmp_path / f"r{k}.json").read_text()) for k in range(2)]
    for r in reports:
        assert r["failures"] == [] and r["total"] == 6 and r["done"] + r["skipped"] == 6
    assert reports[0]["done"] + reports[1]["done"] == 6  # each file encoded once
    for s in srcs:
        assert not cvpt.probe(dst / (s.stem + ".mp4")).layout_problems()
    assert _leftovers(dst) == []


# --- a killed worker, a killed parent ---------------------------------------------------------


def test_a_pool_survives_a_killed_worker():
    """fn(*args) is ``signal.raise_signal(SIGKILL)`` for one task: that task comes back as
    WorkerDied with the signal, every other task is answered, by a new worker if need be."""
    import operator

    tasks = deque(
        [(k, (abs, -k)) for k in range(5)]
        + [("kill", (signal.raise_signal, signal.SIGKILL))]
        + [(k, (abs, -k)) for k in range(5, 9)]
    )
    with WorkerPool(operator.call, 2) as pool:
        got = dict(pool.run(tasks))
        assert len(pool.pids) <= 2
    died = got.pop("kill")
    assert isinstance(died, WorkerDied) and died.exitcode == -signal.SIGKILL
    assert "killed by SIGKILL (signal 9)" in died.reason
    assert got == {k: k for k in range(9)}


def _parallel_prepare(tmp_path: Path, output, workers: int = 2) -> tuple[Path, subprocess.Popen]:
    """``cvpt prepare --workers 2`` started on 3 sources slow enough to be caught at work
    (upscaled to 480); ``output``: where its stdout and stderr go."""
    _sources(tmp_path / "src", 3, frames=120, size=(240, 320), name="v{}.mp4")
    dst = tmp_path / "dst"
    cmd = [*CLI, str(tmp_path / "src"), str(dst), "--quiet", "--workers", str(workers)]
    cmd += ["--short-side", "480"]
    proc = subprocess.Popen(cmd, stdout=output, stderr=output, text=True, env=_env(tmp_path))
    return dst, proc


def _wait_for_temps(dst: Path, proc: subprocess.Popen, count: int) -> list[Path]:
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        temps = [p for p in dst.rglob(f".*{TMP_MARK}*") if p.suffix == ".mp4"]
        if len({p.name for p in temps}) >= count:
            return temps
        time.sleep(0.01)
    raise AssertionError(f"prepare did not start {count} writes (exit {proc.poll()})")


def _running(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie no longer does)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_killed_worker_fails_its_file_only(tmp_path):
    dst, proc = _parallel_prepare(tmp_path, subprocess.PIPE)
    victim = _wait_for_temps(dst, proc, 1)[0]
    pid = temp_owner(victim)[1]
    os.kill(pid, signal.SIGKILL)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 1, err
    assert "BrokenProcessPool" not in err + out
    saved = json.loads((dst / "prepare-report.json").read_text())
    assert (saved["total"], saved["done"], saved["failed"]) == (3, 2, 1)
    (failure,) = saved["failures"]
    victim_src = tmp_path / "src" / victim.name.split(TMP_MARK)[0].removeprefix(".")
    assert failure["src"] == str(victim_src) + ".mp4"
    assert f"(pid {pid}) was killed by SIGKILL (signal 9)" in failure["reason"]
    assert _leftovers(dst) == []


def _children(pid: int) -> set[int]:
    """The child processes of ``pid`` (Linux)."""
    out = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            out |= {int(c) for c in (task / "children").read_text().split()}
    return out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_exit_when_the_parent_is_killed(tmp_path):
    dst, proc = _parallel_prepare(tmp_path, subprocess.DEVNULL)
    _wait_for_temps(dst, proc, 1)  # at work
    deadline = time.time() + 60
    while len(workers := _children(proc.pid)) < 2 and time.time() < deadline:
        time.sleep(0.01)
    workers = _children(proc.pid)  # the 2 workers, and multiprocessing's resource tracker
    assert len(workers) >= 2 and all(_running(w) for w in workers)
    proc.kill()
    proc.wait()
    t0 = time.time()
    while time.time() < t0 + 5 and any(_running(w) for w in workers):
        time.sleep(0.05)
    assert not any(_running(w) for w in workers), "workers outlived their parent"
    time.sleep(0.2)
    assert not [p for p in dst.rglob(f".*{TMP_MARK}*")]  # each removed its temp file as it left


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_writes_the_report_and_the_summary(tmp_path, workers):
    """A job scheduler's SIGTERM: the workers stop (their temps removed), every file is in the
    report (finished, not finished, not attempted), the summary is printed, exit 143. In one
    process the SIGTERM lands inside FFmpeg, which PyAV turns into an EINVAL: the file being
    written is still "not finished", not failed with the encoder's error."""
    dst, proc = _parallel_prepare(tmp_path, subprocess.PIPE, workers)
    _wait_for_temps(dst, proc, 1)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert re.match(
        r"3 video\(s\) in .* s: \d encoded, 0 already prepared \(skipped\), \d failed", out
    )
    assert "stopped: interrupted (SIGTERM)" in err
    saved = json.loads((dst / "prepare-report.json").read_text())
    kinds = sorted(f["reason"].split(":")[0] for f in saved["failures"])
    assert saved["done"] + saved["failed"] == 3 and "not finished" in kinds
    assert set(kinds) <= {"not finished", "not attempted"}
    assert _leftovers(dst) == []


def test_interrupted_prepare_reports_what_was_not_done(tmp_path, monkeypatch):
    srcs = _sources(tmp_path / "src", 3)
    calls = []

    def reencode(src, dst, **kw):  # the second file is where Ctrl-C comes
        calls.append(src)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(src, dst, **kw)

    real = prepare_mod.reencode
    monkeypatch.setattr(prepare_mod, "reencode", reencode)
    with pytest.raises(prepare_mod.PrepareInterrupted) as info:
        prepare(tmp_path / "src", tmp_path / "dst", progress=False)
    rep = info.value.report
    assert (rep.done, rep.failed) == (1, 2) and rep.stopped == "interrupted (KeyboardInterrupt)"
    assert [(f["src"], f["reason"].split(":")[0]) for f in rep.failures] == [
        (str(srcs[1]), "not finished"),
        (str(srcs[2]), "not attempted"),
    ]
    assert json.loads(Path(rep.report_path).read_text())["failed"] == 2
