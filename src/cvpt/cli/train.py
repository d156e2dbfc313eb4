"""``cvpt train`` and ``cvpt eval``."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from cvpt.cli.common import add_command, count
from cvpt.errors import ConfigError


def register(sub) -> None:
    t = add_command(
        sub,
        "train",
        "Tune a model on prepared videos with the paper's recipe (AdamW, warm-up + cosine, "
        "effective batch 240). Multi-GPU: launch with torchrun.",
        "cvpt train --config ucf101_vitb_cvpt --set epochs=30 --out runs/ucf101",
        run_train,
    )
    t.add_argument(
        "--config",
        default=None,
        help="a YAML file, or the name of a shipped config (see --list-configs)",
    )
    t.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="override keys; a mapping merges into a nested key (model_options={sccp_update: "
        "replace}), a dotted key sets one field (model_options.sccp_layers=4, clip.num_gops=8)",
    )
    t.add_argument("--out", required=False, help="run folder")
    t.add_argument("--resume", action="store_true", help="continue the run in --out")
    t.add_argument(
        "--list-keys",
        action="store_true",
        help="print every key (nested ones dotted) with its value and meaning, and exit",
    )
    t.add_argument("--list-configs", action="store_true", help="print the shipped configs and exit")
    add_backbone_override(t)
    t.add_argument(
        "--stop-after",
        type=int,
        default=None,
        metavar="STEPS",
        help="stop (checkpointed) after this optimiser step; --resume continues",
    )

    r = add_command(
        sub,
        "torchrun",
        "torchrun (the same arguments) with the exit status of a stopped run: 143 after SIGTERM, "
        "130 after SIGINT, once torchrun has stopped the ranks (each at its next step, with its "
        "stop checkpoint; torchrun's --shutdown-timeout, 30 s by default, bounds the wait). "
        "Plain torchrun exits 1 with a traceback.",
        "cvpt torchrun --nproc_per_node=8 -m cvpt.cli.main train --config ssv2_vitb_cvpt "
        "--out runs/ssv2",
        run_torchrun,
    )
    r.add_argument(
        "torchrun_args", nargs=argparse.REMAINDER, help="torchrun's arguments, as given to it"
    )

    e = add_command(
        sub,
        "eval",
        "Evaluate a run's last checkpoint: top-1/top-5, per-class accuracy, confusion matrix, "
        "multi-view testing (clips x crops, softmax averaged).",
        "cvpt eval --run runs/ucf101 --clips 2 --crops 3",
        run_eval,
    )
    e.add_argument("--run", required=True, help="a run folder made by cvpt train")
    e.add_argument(
        "--clips", type=int, default=None, help="clips per video (views = clips x crops)"
    )
    e.add_argument("--crops", type=int, default=None, help="crops per clip (1 or 3)")
    e.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override keys")
    add_backbone_override(e)


def add_backbone_override(p, with_path: bool = False) -> None:
    """The flags that let a tuned model meet another backbone than it was tuned on."""
    if with_path:
        p.add_argument(
            "--backbone-checkpoint",
            default=None,
            help="the frozen backbone's file, when it is no longer where the run loaded it",
        )
    p.add_argument(
        "--allow-other-backbone",
        action="store_true",
        help="use a backbone whose weights differ from the ones the run was tuned on "
        "(refused otherwise: the predictions would differ)",
    )


def run_train(args) -> int:
    from cvpt.training.api import train
    from cvpt.training.config import describe_keys, list_configs, load_config

    if args.list_configs:
        for name in list_configs():
            print(name)
        return 0
    if args.list_keys:
        cfg = load_config(args.config, args.set)
        for key, value, doc in describe_keys(cfg):
            print(f"{key} = {value!r}" + (f"  # {doc}" if doc else ""))
        return 0
    if not args.out:
        raise ConfigError("--out is required: the run folder")
    summary = train(
        args.config,
        args.out,
        resume=args.resume,
        stop_after=args.stop_after,
        overrides=args.set,
        allow_other_backbone=args.allow_other_backbone,
    )
    stopped = summary.get("stopped")
    quiet = os.environ.get("RANK", "0") != "0"  # under DDP rank 0 speaks for every rank
    if summary.get("interrupted") or stopped:
        where = stopped or summary
        if not quiet:
            print(
                f"stopped by {summary.get('interrupted') or '--stop-after'} after step "
                f"{summary['steps']} (epoch {where['epoch']}, batch {where['batch_in_epoch']}); "
                f"checkpoint {where['checkpoint']}. Resume with: cvpt train --out {args.out} "
                "--resume"
            )
        return 0 if stopped else 128 + (summary["signum"] or 15)
    last = summary["last_eval"]
    if quiet:
        return 0
    print(
        f"done: {count(summary['steps'], 'step')}, {count(summary['epochs'], 'epoch')}, "
        f"effective batch {summary['effective_batch']}"
        + (f", top-1 {100 * last['top1']:.1f}%" if last else "")
    )
    if summary["skipped_videos"]:
        print(
            f"{summary['skipped_videos']} video(s) failed to decode and were replaced; "
            f"listed in {Path(args.out) / 'summary.json'}"
        )
    return 0


def run_torchrun(args) -> int:
    """torchrun's ``main`` in this process, its signal and stopped-rank outcomes turned into
    128 + the signal's number; any other failure raises as torchrun's would."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main as torchrun_main

    try:
        torchrun_main([a for a in args.torchrun_args[:1] if a != "--"] + args.torchrun_args[1:])
    except SignalException as e:  # torchrun itself was signalled: it stopped the ranks
        code = 128 + int(e.sigval)
    except ChildFailedError as e:
        codes = {f.exitcode for f in e.failures.values()}
        stopped = {128 + signal.SIGTERM, 128 + signal.SIGINT}
        if len(codes) != 1 or not codes <= stopped:
            raise
        code = codes.pop()  # only the ranks were signalled; each stopped cleanly
    else:
        return 0
    print(
        f"cvpt torchrun: stopped by {signal.Signals(code - 128).name} (exit status {code})",
        file=sys.stderr,
    )
    return code


def run_eval(args) -> int:
    from cvpt.training.config import load_run_config, parse_overrides
    from cvpt.training.evaluate import EVAL_METRICS
    from cvpt.training.trainer import evaluate_run

    run = Path(args.run)
    overrides = list(args.set)
    if args.clips:
        overrides.append(f"eval_views={args.clips}")  # the config key counts clips per video
    if args.crops:
        overrides.append(f"eval_crops={args.crops}")
    cfg = load_run_config(run, overrides)
    # the model is the checkpoint's own (cvpt.load_model); --set backbone_checkpoint= moves
    # its backbone (the fingerprint is checked), refused on another unless allowed
    moved = cfg.backbone_checkpoint if "backbone_checkpoint" in parse_overrides(args.set) else None
    m, classes, info, ckpt = evaluate_run(
        run, cfg, backbone_checkpoint=moved, allow_other_backbone=args.allow_other_backbone
    )
    if info.main:
        from cvpt.io import write_json
        from cvpt.training.plots import plot_confusion

        name = eval_name(cfg, load_run_config(run))
        m = {**m, "eval_subset": cfg.eval_subset, "overrides": list(args.set)}
        write_json(run / f"{name}.json", EVAL_METRICS.stamp(m))
        plot_confusion(m["confusion"], classes, run / f"{name}-confusion.png")
        print(
            f"{ckpt.name}: top-1 {100 * m['top1']:.2f}%  top-5 {100 * m['top5']:.2f}%  "
            f"mean class {100 * m['mean_class_accuracy']:.2f}%  ({m['videos']} videos, "
            f"{count(cfg.eval_views * cfg.eval_crops, 'view')}: {count(cfg.eval_views, 'clip')} x "
            f"{count(cfg.eval_crops, 'crop')}) -> {run / (name + '.json')}"
        )
    return 0


# config keys that do not change what cvpt eval measures (how it is computed, how many views:
# those are in the name already)
HARMLESS_EVAL_KEYS = ("workers", "batch_size", "device", "eval_views", "eval_crops")


def eval_name(cfg, own) -> str:
    """The name of an evaluation's files: ``eval-<clips>x<crops>``, then, when ``cfg`` (the
    run's config ``own`` with the command's ``--set``) differs from the run's own in what it
    measures, the subset when that differs and a digest of the keys that differ (the data, the
    sizes the videos are read at; a model option given at its default is no difference): an
    evaluation of other inputs never replaces the run's own (the JSON records ``eval_subset``
    and ``overrides`` too)."""
    import hashlib

    from cvpt.models.methods import full_options

    def measured(c) -> dict:
        d = {k: v for k, v in c.to_dict().items() if k not in HARMLESS_EVAL_KEYS}
        return {**d, "model_options": full_options(c.method, c.model_options)}

    mine, theirs = measured(cfg), measured(own)
    differ = sorted(k for k in mine if mine[k] != theirs.get(k))
    name = f"eval-{cfg.eval_views}x{cfg.eval_crops}"
    if "eval_subset" in differ:  # the run's own subset is not named (SSv2's: validation)
        name += f"-{cfg.eval_subset}"
    if differ:
        said = "\n".join(f"{k}={mine[k]!r}" for k in differ)
        name += "-set-" + hashlib.sha256(said.encode()).hexdigest()[:8]
    return name
