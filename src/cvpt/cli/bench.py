"""``cvpt bench reader``: benchmarks are commands, never timed tests."""

from __future__ import annotations

from cvpt.bench import reader as reader_bench
from cvpt.cli.common import Formatter


def register(sub) -> None:
    p = sub.add_parser("bench", help="benchmarks (not tests): cvpt bench reader ...")
    bsub = p.add_subparsers(dest="bench", required=True, metavar="BENCH")
    r = bsub.add_parser(
        "reader",
        formatter_class=Formatter,
        help="read_clip against the decode floor and a VideoMAE-style RGB clip",
        description=reader_bench.__doc__,
        epilog="example:\n  cvpt bench reader --repeats 15 --out reader.json",
    )
    r.add_argument(
        "--videos",
        default=None,
        help="folder of prepared videos (default: generated 320x240 30 fps 6 s scenes)",
    )
    r.add_argument("--repeats", type=int, default=15)
    r.add_argument("--threads", type=int, default=1, help="OpenCV threads")
    r.add_argument("--residual-interp", choices=["nearest", "linear"], default="nearest")
    r.add_argument("--no-accumulate", action="store_true")
    r.add_argument("--out", default=None, help="write the results as JSON here")
    r.set_defaults(func=run_reader)


def run_reader(args) -> int:
    from cvpt.io import write_json

    res = reader_bench.bench_reader(
        args.videos,
        repeats=args.repeats,
        threads=args.threads,
        residual_interp=args.residual_interp,
        accumulate=not args.no_accumulate,
    )
    m = res["median_ms"]
    print(
        f"{res['videos']} video(s) {res['size']} {res['codec']}, {res['repeats']} repeats, "
        f"OpenCV threads {res['opencv_threads']}, medians:"
    )
    print(f"  (a) decode floor, 48 frames     {m['a_decode_floor']:7.2f} ms")
    print(f"  (b) read_clip, 4 I + 12 P       {m['b_read_clip']:7.2f} ms")
    print(f"  (c) RGB clip, 16 frames, 224²   {m['c_rgb_clip']:7.2f} ms")
    print(f"  b/a = {res['b_over_a']:.2f}   b/c = {res['b_over_c']:.2f}")
    if args.out:
        write_json(args.out, res)
        print(f"wrote {args.out}")
    return 0
