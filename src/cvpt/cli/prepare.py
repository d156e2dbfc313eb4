"""``cvpt prepare SRC DST``."""

from __future__ import annotations

import argparse
import signal
import sys

from cvpt.cli.common import add_command, parse_shard


def register(sub) -> None:
    p = add_command(
        sub,
        "prepare",
        "Re-encode a video or a folder tree to MPEG-4 Part 2, GOP 12, no B-frames (mirrored "
        "under DST, .mp4). Resumable: verified outputs are skipped.",
        "cvpt prepare ~/data/UCF-101 ~/data/UCF-101-mpeg4 --workers 8 --shard 0/4",
        run,
    )
    p.add_argument("src", help="a video file or a folder of videos (searched recursively)")
    p.add_argument("dst", help="output folder (or .mp4 file when SRC is a file)")
    p.add_argument("--workers", type=int, default=1, help="parallel processes")
    p.add_argument(
        "--shard",
        type=parse_shard,
        default=(0, 1),
        metavar="I/N",
        help="process every N-th file from the I-th (0-based), to split across machines "
        "(default: 0/1, every file)",
    )
    p.add_argument(
        "--short-side",
        type=int,
        default=256,
        help="resize so the short side is this (0 keeps the size)",
    )
    p.add_argument("--gop", type=int, default=12, help="frames per GOP")
    p.add_argument(
        "--q",
        type=parse_q,
        default=2,
        help="fixed MPEG-4 quantiser, 2 (best, the paper's) to 31: larger q, smaller files "
        "(measured trade-off: docs/reader.md)",
    )
    p.add_argument(
        "--codec",
        choices=["mpeg4", "libx264"],
        default="mpeg4",
        help="output codec (mpeg4: the layout cvpt reads)",
    )
    p.add_argument(
        "--dia-size",
        type=int,
        default=4,
        help="MPEG-4 motion-search diamond size (0: FFmpeg's default, as CoViAR)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="re-encode outputs that exist but do not verify or were prepared with other settings",
    )
    p.add_argument(
        "--report", default=None, help="report JSON path (default: DST/prepare-report.json)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def parse_q(text: str) -> int:
    """``--q``: an MPEG-4 quantiser, 2..31 (1 is clipped to 2 by the encoder)."""
    try:
        q = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"q must be an integer from 2 to 31, got {text!r}"
        ) from None
    if not 2 <= q <= 31:
        raise argparse.ArgumentTypeError(f"q must be from 2 to 31, got {q}")
    return q


def run(args) -> int:
    from cvpt.codec.prepare import PrepareInterrupted, prepare
    from cvpt.pool import Terminated, stop_on_sigterm

    # a job scheduler's SIGTERM ends the run as Ctrl-C does: the report is written first
    previous = stop_on_sigterm()
    try:
        report = prepare(
            args.src,
            args.dst,
            workers=args.workers,
            shard=args.shard,
            overwrite=args.overwrite,
            report_path=args.report,
            progress=not args.quiet,
            gop=args.gop,
            short_side=args.short_side or None,
            q=args.q,
            codec=args.codec,
            dia_size=args.dia_size or None,
        )
    except PrepareInterrupted as e:
        summarize(e.report)
        stopped_by = e.__cause__
        return 143 if isinstance(stopped_by, Terminated) else 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    summarize(report)
    return 0 if report.ok else 1


def summarize(report) -> None:
    """The one-line summary (always), then bytes, warnings and failures."""
    from cvpt.io import size_text

    where = report.report_path or "not written"
    print(
        f"{report.total} video(s) in {report.seconds:.1f} s: {report.done} encoded, "
        f"{report.skipped} already prepared (skipped), {report.failed} failed; report: {where}"
    )
    if report.report_error:
        print(f"  warning: {report.report_error}", file=sys.stderr)
    if report.stopped:
        print(f"  stopped: {report.stopped}", file=sys.stderr)
    if report.bytes_ratio is not None:
        print(
            f"  {size_text(report.output_bytes)} prepared from {size_text(report.source_bytes)}"
            f" of sources ({report.bytes_ratio:.2f}× the source bytes)"
        )
    for d in report.damaged_sources:
        print(f"  warning: {d['src']}: {d['reason']} (encoded as far as it decodes)")
    for d in report.deinterlaced_sources:
        print(
            f"  note: {d['src']}: {d['interlaced_frames']} interlaced frame(s) "
            f"(field order {d['field_order']}) deinterlaced"
        )
    for link in report.links_not_followed:
        print(f"  warning: {link['path']}: {link['reason']}; not followed")
    for f in report.failures:
        print(f"  FAILED {f['src']}: {f['reason']}", file=sys.stderr)
