"""``cvpt synth``: procedural motion-centric datasets."""

from __future__ import annotations

from cvpt.cli.common import add_command


def register(sub) -> None:
    p = add_command(
        sub,
        "synth",
        "Write a synthetic video dataset: 'target' (a camouflaged patch moving right/left/down/up "
        "relative to a panning background, among clutter: only motion tells) or 'source' (a "
        "visible disc moving along a diagonal, for pre-training). MPEG-4 GOP 12, list format.",
        "cvpt synth data/synth-target --task target --videos 400 --seed 0",
        run,
    )
    p.add_argument("out", help="output folder (videos/, train.txt, test.txt, classes.json)")
    p.add_argument(
        "--task", choices=["target", "source"], default="target", help="which synthetic task"
    )
    p.add_argument("--videos", type=int, default=200, help="videos to generate")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--size", type=int, default=64, help="frame side in pixels (multiple of 16)")
    p.add_argument("--frames", type=int, default=48, help="frames per video (4 GOPs = 48)")
    p.add_argument(
        "--test-fraction", type=float, default=0.25, help="share of videos in the test split"
    )
    p.add_argument(
        "--pan",
        type=float,
        default=1.5,
        help="target task: largest camera pan, px/frame (0: a static camera)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes that render and encode videos (the videos do not depend on it)",
    )


def run(args) -> int:
    from cvpt.data.synth import synthesize

    res = synthesize(
        args.out,
        task=args.task,
        videos=args.videos,
        seed=args.seed,
        size=args.size,
        frames=args.frames,
        test_fraction=args.test_fraction,
        pan=args.pan,
        workers=args.workers,
    )
    print(
        f"wrote {res['videos']} {res['task']} videos ({res['train']} train, {res['test']} test, "
        f"classes {', '.join(res['classes'])}) to {args.out}"
    )
    return 0
