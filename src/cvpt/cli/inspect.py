"""``cvpt probe VIDEO`` and ``cvpt show VIDEO -o out.png``."""

from __future__ import annotations

import json

from cvpt.cli.common import add_command


def register(sub) -> None:
    p = add_command(
        sub,
        "probe",
        "Describe a video: codec, size, fps, frames, GOP pattern, rotation, colour range, "
        "constant or variable frame rate, video streams, damage, readiness.",
        "cvpt probe clip.mp4 --json",
        run_probe,
    )
    p.add_argument("video")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    s = add_command(
        sub,
        "show",
        "Draw one clip: I-frames, motion vectors coloured by direction/magnitude, residuals.",
        "cvpt show prepared/v_Archery_g01_c01.mp4 -o archery.png",
        run_show,
    )
    s.add_argument("video", help="a prepared video (see cvpt prepare)")
    s.add_argument("-o", "--out", required=True, help="output PNG")
    s.add_argument("--start-gop", type=int, default=None, help="first GOP (default: centred)")
    s.add_argument("--train", action="store_true", help="sample as in training (random)")
    s.add_argument("--seed", type=int, default=0, help="seed for --train")
    s.add_argument(
        "--no-accumulate",
        action="store_true",
        help="per-frame MVs/residuals instead of accumulated from the I-frame",
    )


def run_probe(args) -> int:
    from cvpt.codec.probe import probe

    info = probe(args.video)
    problems = info.layout_problems()
    if args.json:
        print(json.dumps({**info.to_dict(), "ready": not problems, "problems": problems}, indent=2))
        return 0
    claimed = f"of {info.header_frames} in the header" if info.header_frames else "(no count"
    claimed += "" if info.header_frames else " in the header)"
    rate = "constant" if info.constant_rate else "VARIABLE"
    turn = f"rotated {info.rotation}°" + (", mirrored" if info.mirrored else "")
    print(
        f"{info.path}\n  codec {info.codec}, {info.width}x{info.height}, {info.fps:.3f} fps "
        f"({rate} frame rate), {info.frames} frames decode {claimed} ({info.duration_s:.2f} s)"
        f"\n  colour range {info.color_range}, matrix {info.colorspace}; display "
        f"{turn if info.rotation or info.mirrored else 'upright'}"
        f"\n  pixels: sample aspect {info.sample_aspect}, shown at {info.display_aspect}; "
        f"field order {info.field_order}, {info.interlaced_frames} frame(s) interlaced"
        f"\n  frames flagged corrupt (damage the decoder concealed): {info.corrupt_frames}; "
        f"before the first key frame (dropped): {info.leading_frames}"
        f"\n  GOPs: {info.num_gops}, pattern {info.gop_pattern}"
    )
    if len(info.streams) > 1:
        for s in info.streams:
            used = "  <- read" if s["index"] == info.stream_index else ""
            kind = f", {'/'.join(s['picture'])}" if s["picture"] else ""
            frames = s["frames"] or "?"
            print(
                f"  video stream {s['index']}: {s['codec']} {s['width']}x{s['height']}, "
                f"{frames} frames{kind}{used}"
            )
    if problems:
        print("  not ready for read_clip: " + "; ".join(problems) + " (run `cvpt prepare`)")
    else:
        print("  ready for read_clip")
    return 0


def run_show(args) -> int:
    from cvpt.codec.reader import read_clip
    from cvpt.training.plots import _plt
    from cvpt.viz.clip import plot_clip

    _plt()  # before reading anything: the picture needs matplotlib

    clip = read_clip(
        args.video,
        start_gop=args.start_gop,
        train=args.train,
        rng=args.seed,
        accumulate=not args.no_accumulate,
    )
    out = plot_clip(clip, args.out)
    print(f"wrote {out} (GOPs {clip.gop_indices.tolist()}, P positions {clip.positions.tolist()})")
    return 0
