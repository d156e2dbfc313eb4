"""``cvpt demo``: the paper's comparison (or ablations) on the synthetic task."""

from __future__ import annotations

from cvpt.cli.common import add_command


def register(sub) -> None:
    p = add_command(
        sub,
        "demo",
        "Tune Linear probe, VPT*, AdaptFormer*, Full fine-tuning and CVPT on the synthetic "
        "compressed-video task with the shipped pre-trained tiny backbone (plus the controls "
        "that say what the numbers mean); print the table, write results.json and PNGs. "
        "Interrupted runs resume.",
        "cvpt demo --out demo-out",
        run,
    )
    p.add_argument("--out", default="demo-out", help="output folder (data, results, pictures)")
    p.add_argument("--full", action="store_true", help="more data, epochs and seeds (≤ 1 h)")
    p.add_argument(
        "--ablations",
        action="store_true",
        help="the paper's claims instead of the comparison: Table 3, Table 4 and Fig. 4 (SCCP "
        "blocks, no attention, no residual prompt), Table 1 and the random frozen backbone, "
        "the methods the paper does not have (LoRA), for both readings of SCCP's update "
        "(--readings), with paired differences and verdicts "
        "(docs/design.md); written to OUT/ablations/",
    )
    p.add_argument(
        "--readings",
        choices=("both", "replace", "add"),
        help="with --ablations: the sccp_update readings to run (default: both)",
    )
    p.add_argument(
        "--seeds",
        help="number of seeds, or the seeds themselves: 5 = 0,1,2,3,4; 2, = seed 2 alone "
        "(default: the preset's); runs of other seeds in OUT are kept",
    )
    p.add_argument(
        "--threads",
        type=int,
        help="torch threads per run (default 2: one per core of an idle 2-core machine; 1 is "
        "faster on a machine that others load)",
    )
    p.add_argument("--videos", type=int, help="target-task videos (default: the preset's)")
    p.add_argument("--epochs", type=int, help="epochs per run (default: the preset's)")
    p.add_argument("--backbone-checkpoint", help="a backbone to freeze instead of the shipped one")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="the tuning loop's")


def run(args) -> int:
    from dataclasses import replace
    from pathlib import Path

    from cvpt.demo.claims import format_claims
    from cvpt.demo.report import format_table, plot_bars, plot_curves, plot_sccp_blocks
    from cvpt.demo.suite import PRESETS, run_demo
    from cvpt.errors import ConfigError

    if args.readings and not args.ablations:
        raise ConfigError("--readings goes with --ablations (the comparison runs the default)")
    readings = ("replace", "add") if args.readings in (None, "both") else (args.readings,)
    config = PRESETS["full" if args.full else "default"]
    if args.seeds is not None:
        config = replace(config, seeds=_seeds(args.seeds))
    if args.threads is not None:
        config = replace(config, tune=replace(config.tune, threads=args.threads))
    if args.videos is not None:
        config = replace(config, videos=args.videos)
    if args.device != "cpu":
        config = replace(config, tune=replace(config.tune, device=args.device))
    if args.epochs is not None:
        config = replace(config, tune=replace(config.tune, epochs=args.epochs))
    out = Path(args.out) / ("full" if args.full else "default")
    res_dir = out / "ablations" if args.ablations else out
    result = run_demo(
        res_dir,
        config,
        ablations=args.ablations,
        readings=readings,
        backbone_checkpoint=args.backbone_checkpoint,
        data=out / "data",
    )
    print(format_table(result))
    if result.get("claims"):
        print(format_claims(result["claims"], result.get("decision")))
    plot_bars(result, res_dir / "top1.png")
    plot_curves(result, res_dir / "curves.png")
    if args.ablations:
        plot_sccp_blocks(result, res_dir / "sccp_blocks.png")
    print(
        f"results: {res_dir / 'results.json'}; pictures: {res_dir}/*.png "
        f"({result['wall_seconds']:.0f} s, peak memory {result['peak_rss_mib']:.0f} MiB)"
    )
    return 0


def _seeds(text: str) -> tuple[int, ...]:
    """``"5"`` → seeds 0..4; ``"1,3"`` → seeds 1 and 3; ``"2,"`` → seed 2 alone."""
    from cvpt.demo.suite import check_seeds
    from cvpt.errors import ConfigError

    try:
        if "," in text:
            seeds = tuple(int(s) for s in text.split(",") if s.strip())
        elif int(text) < 1:
            raise ValueError
        else:
            seeds = tuple(range(int(text)))
    except ValueError:
        raise ConfigError(
            f"--seeds expects a count (1 or more) or a list like 0,2,4 (seed 0 alone: 0,), got "
            f"{text!r}"
        ) from None
    check_seeds(seeds)
    return seeds
