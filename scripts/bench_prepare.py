"""``cvpt prepare`` against the ffmpeg command-line tool doing the same re-encode: CPU time of the
whole process (user + system, children and threads included), medians of interleaved rounds
(docs/benchmarks.md, "prepare"). A benchmark, not a test: needs ``ffmpeg`` on PATH.

    python scripts/bench_prepare.py --rounds 5 --out prepare.json
    python scripts/bench_prepare.py --sources ~/data/ucf-sample --rounds 3
    python scripts/bench_prepare.py --baseline-pythonpath /tmp/old/src   # also an older cvpt
    python scripts/bench_prepare.py --q-sizes 2,4,8                       # output bytes against q

Each round runs, in an order rotated from round to round:

- ``cvpt``: ``cvpt prepare SRC DST --quiet``, one process for every source;
- ``ffmpeg``: one ``ffmpeg`` process per source, the same work as cvpt's re-encode
  (``cvpt.codec.encode``: MPEG-4 Part 2, GOP 12, no B-frames, fixed quantiser, scene cuts off,
  ``dia_size=4``, bicubic scaling to the same size, yuv420p, audio dropped);
- ``cvpt_each``: ``cvpt prepare FILE DST`` per source (start-up paid per video, as ffmpeg's);
- ``startup``: ``cvpt --help``, ``cvpt prepare --help`` and ``import cvpt`` (what a call costs
  before any work), for the baseline too.

The default sources are generated once: two 320x240 MPEG-4 scenes (6 s, 30 fps, the reader
benchmark's), and two H.264 scenes with B-frames at 640x480 (4 s) and 1280x720 (3 s).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def make_sources(folder: Path) -> list[Path]:
    """Four generated sources: 2 MPEG-4 320x240, H.264 with B-frames at 640x480 and 1280x720."""
    from cvpt.bench.reader import make_videos
    from cvpt.codec.encode import write_video
    from cvpt.data.generate import moving_scene

    folder.mkdir(parents=True, exist_ok=True)
    paths = make_videos(folder, count=2, seconds=6)
    for name, (w, h), frames, seed in (
        ("h264_640x480.mp4", (640, 480), 120, 5),
        ("h264_1280x720.mp4", (1280, 720), 90, 6),
    ):
        path = folder / name
        scene = moving_scene(frames=frames, height=h, width=w, seed=seed)
        write_video(path, scene, fps=30, codec="libx264", max_b_frames=2, gop=48)
        paths.append(path)
    return sorted(paths)


def ffmpeg_command(src: Path, dst: Path, width: int, height: int, q: int = 2) -> list[str]:
    """The ffmpeg CLI doing what ``cvpt prepare`` does (``cvpt.codec.encode.VideoWriter``).

    ``-q:v q`` with ``-qmin q -qmax q`` is cvpt's ``qscale`` with ``qmin = qmax = q``."""
    return [
        *("ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(src), "-an"),
        *("-c:v", "mpeg4", "-g", "12", "-bf", "0"),
        *("-q:v", str(q), "-qmin", str(q), "-qmax", str(q)),
        *("-sc_threshold", "1000000000", "-dia_size", "4"),
        *("-vf", f"scale={width}:{height}:flags=bicubic", "-pix_fmt", "yuv420p", str(dst)),
    ]


def cpu_of(cmd: list[str], env: dict | None = None) -> float:
    """CPU seconds (user + system) of one child process, all its threads."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def cvpt_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "cvpt.cli.main", *args]


def stage_sources(folder: Path, staged: Path) -> list[Path]:
    """The readable videos anywhere under ``folder`` (a class-folder tree too), linked flat into
    ``staged`` with unique names, so that both tools see the same files; a file FFmpeg cannot
    read is left out and named."""
    from cvpt.codec.container import is_video_file, open_video
    from cvpt.errors import VideoError

    shutil.rmtree(staged, ignore_errors=True)
    staged.mkdir(parents=True)
    out = []
    for p in sorted(x for x in folder.rglob("*") if x.is_file() and is_video_file(x)):
        try:
            open_video(p)[0].close()
        except VideoError as e:
            print(f"bench_prepare: left out {p}: {e.reason}", file=sys.stderr)
            continue
        link = staged / "__".join(p.relative_to(folder).parts)
        link.symlink_to(p.resolve())
        out.append(link)
    if not out:
        sys.exit(f"bench_prepare: no readable video under {folder}")
    return out


def output_size(src: Path, short_side: int = 256) -> tuple[int, int]:
    """The size ``cvpt prepare`` writes for ``src`` (short side 256, even sizes)."""
    from cvpt.codec.encode import target_size
    from cvpt.codec.probe import probe

    info = probe(src)
    w, h = (info.height, info.width) if info.rotation % 180 else (info.width, info.height)
    return target_size(w, h, short_side)


def describe_outputs(cvpt_dir: Path, ffmpeg_dir: Path, sources: list[Path]) -> list[dict]:
    """Frame counts, GOP patterns and bytes of both tools' outputs, per source."""
    from cvpt.codec.probe import probe

    rows = []
    for src in sources:
        row = {"source": src.name, "source_bytes": src.stat().st_size}
        for tool, folder in (("cvpt", cvpt_dir), ("ffmpeg", ffmpeg_dir)):
            out = folder / (src.stem + ".mp4")
            info = probe(out)
            row[tool] = {
                "size": f"{info.width}x{info.height}",
                "frames": info.frames,
                "gop_pattern": info.gop_pattern,
                "bytes": out.stat().st_size,
                "ready": not info.layout_problems(),
            }
        rows.append(row)
    return rows


def bench(sources: list[Path], work: Path, rounds: int, baseline: str | None, q: int = 2) -> dict:
    sizes = {src: output_size(src) for src in sources}
    src_dir = sources[0].parent
    envs = {"cvpt": None}
    if baseline:
        envs["cvpt_baseline"] = {**os.environ, "PYTHONPATH": baseline}
    cases = [*envs, "ffmpeg", "cvpt_each", "startup"]
    per_round: list[dict] = []
    for r in range(rounds):
        res: dict = {}
        order = cases[r % len(cases) :] + cases[: r % len(cases)]
        for case in order:
            out = work / f"round{r}" / case
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)
            if case in envs:
                qa = ["--q", str(q)] if q != 2 else []
                cmd = cvpt_command("prepare", str(src_dir), str(out), "--quiet", *qa)
                res[case] = cpu_of(cmd, envs[case])
            elif case == "ffmpeg":
                each = {
                    s.name: cpu_of(ffmpeg_command(s, out / s.name, *sizes[s], q)) for s in sources
                }
                res["ffmpeg_per_video"], res["ffmpeg"] = each, sum(each.values())
            elif case == "cvpt_each":
                qa = ["--q", str(q)] if q != 2 else []
                each = {
                    s.name: cpu_of(cvpt_command("prepare", str(s), str(out), "--quiet", *qa))
                    for s in sources
                }
                res["cvpt_each_per_video"], res["cvpt_each"] = each, sum(each.values())
            else:
                for name, env in envs.items():  # cvpt, and the baseline's
                    tag = name.removeprefix("cvpt")
                    res[f"startup{tag}_help"] = cpu_of(cvpt_command("--help"), env)
                    res[f"startup{tag}_prepare_help"] = cpu_of(
                        cvpt_command("prepare", "--help"), env
                    )
                    res[f"startup{tag}_import_cvpt"] = cpu_of(
                        [sys.executable, "-c", "import cvpt"], env
                    )
                res["startup_python"] = cpu_of([sys.executable, "-c", "pass"])
                res["startup_ffmpeg_version"] = cpu_of(["ffmpeg", "-version"])
        for case in envs:
            res[f"{case}_over_ffmpeg"] = res[case] / res["ffmpeg"]
        res["cvpt_each_over_ffmpeg"] = res["cvpt_each"] / res["ffmpeg"]
        res["per_video_ratio"] = {
            n: res["cvpt_each_per_video"][n] / res["ffmpeg_per_video"][n]
            for n in res["ffmpeg_per_video"]
        }
        per_round.append(res)
        ratios = ", ".join(f"{k} {v:.2f}" for k, v in res.items() if k.endswith("_over_ffmpeg"))
        print(f"round {r + 1}/{rounds}: {ratios}", flush=True)

    def med(key, sub=None):
        return statistics.median(x[key] if sub is None else x[key][sub] for x in per_round)

    scalar = [k for k, v in per_round[0].items() if isinstance(v, float)]
    result = {
        "median_cpu_seconds": {k: med(k) for k in scalar if not k.endswith("_over_ffmpeg")},
        "median_ratios": {k: med(k) for k in scalar if k.endswith("_over_ffmpeg")},
        "per_video_median": {
            s.name: {
                "cvpt_each": med("cvpt_each_per_video", s.name),
                "ffmpeg": med("ffmpeg_per_video", s.name),
                "ratio": med("per_video_ratio", s.name),
            }
            for s in sources
        },
        "rounds": per_round,
        "outputs": describe_outputs(work / "round0" / "cvpt", work / "round0" / "ffmpeg", sources),
    }
    return result


def q_sizes(sources: list[Path], work: Path, qs: list[int]) -> list[dict]:
    """Output bytes of ``cvpt prepare --q q`` per source, and bytes per second of video."""
    from cvpt.codec.probe import probe

    rows = []
    for q in qs:
        out = work / f"q{q}"
        shutil.rmtree(out, ignore_errors=True)
        subprocess.run(
            cvpt_command("prepare", str(sources[0].parent), str(out), "--quiet", "--q", str(q)),
            check=True,
            stdout=subprocess.DEVNULL,
        )
        for src in sources:
            dst = out / (src.stem + ".mp4")
            info = probe(dst)
            rows.append(
                {
                    "q": q,
                    "source": src.name,
                    "size": f"{info.width}x{info.height}",
                    "seconds": info.duration_s,
                    "bytes": dst.stat().st_size,
                    "bytes_per_second": dst.stat().st_size / info.duration_s,
                }
            )
    return rows


def machine() -> dict:
    import av

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    ffmpeg = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "pyav": av.__version__,
        "pyav_libavcodec": ".".join(map(str, av.library_versions["libavcodec"])),
        "ffmpeg_cli": ffmpeg.splitlines()[0] if ffmpeg else "",
        "date": time.strftime("%Y-%m-%d"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--sources", type=Path, default=None, help="folder of videos (default: generated)"
    )
    ap.add_argument("--work", type=Path, default=Path("bench-prepare"), help="scratch folder")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds (medians over them)")
    ap.add_argument("--q", type=int, default=2, help="quantiser for both tools")
    ap.add_argument(
        "--baseline-pythonpath",
        default=None,
        help="also time the cvpt found on this PYTHONPATH (an older checkout's src)",
    )
    ap.add_argument("--q-sizes", default=None, help="instead: output bytes for these q, e.g. 2,4,8")
    ap.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = ap.parse_args()
    if shutil.which("ffmpeg") is None and not args.q_sizes:
        sys.exit("bench_prepare: the ffmpeg command-line tool is not on PATH")
    if args.sources is None:
        src_dir = args.work / "sources"
        sources = sorted(src_dir.glob("*.mp4")) if src_dir.is_dir() else []
        sources = sources if len(sources) == 4 else make_sources(src_dir)
    else:
        sources = stage_sources(args.sources, args.work / "sources-staged")
    result: dict = {"machine": machine(), "sources": [s.name for s in sources]}
    if args.q_sizes:
        rows = q_sizes(sources, args.work, [int(q) for q in args.q_sizes.split(",")])
        result["q_sizes"] = rows
        for row in rows:
            print(
                f"q={row['q']:<3} {row['source']:<22} {row['size']:>8} {row['bytes']:>10} B "
                f"{row['bytes_per_second'] / 1e3:8.1f} kB/s"
            )
    else:
        result.update(bench(sources, args.work, args.rounds, args.baseline_pythonpath, args.q))
        print(f"medians of {args.rounds} rounds, CPU seconds (user + system):")
        for k, v in result["median_cpu_seconds"].items():
            print(f"  {k:<28} {v:7.3f}")
        for k, v in result["median_ratios"].items():
            print(f"  {k:<28} {v:7.2f}  (median of the rounds' ratios)")
        for name, v in result["per_video_median"].items():
            print(
                f"  per video {name:<22} cvpt {v['cvpt_each']:.3f}  ffmpeg {v['ffmpeg']:.3f}  "
                f"ratio {v['ratio']:.2f}"
            )
        for row in result["outputs"]:
            c, f = row["cvpt"], row["ffmpeg"]
            print(
                f"  {row['source']:<22} cvpt {c['size']} {c['frames']} frames {c['bytes']} B "
                f"[{c['gop_pattern']}] | ffmpeg {f['size']} {f['frames']} frames {f['bytes']} B "
                f"[{f['gop_pattern']}]"
            )
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
