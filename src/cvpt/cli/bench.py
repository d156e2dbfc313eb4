"""``cvpt bench reader``: benchmarks are commands, never timed tests."""

from __future__ import annotations

import argparse
import importlib

from cvpt.cli.common import Formatter
from cvpt.formats import Format

BENCH_RESULTS = Format("cvpt-bench-results", 1)  # every --out JSON of cvpt bench


class _BenchParser(argparse.ArgumentParser):
    """A benchmark's parser whose ``--help`` description is its module's docstring, imported
    only when the help is shown (the model benchmarks import torch; ``cvpt --help`` must not)."""

    def __init__(self, *args, doc_module: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.doc_module = doc_module

    def format_help(self) -> str:
        if self.doc_module and self.description is None:
            self.description = importlib.import_module(self.doc_module).__doc__
        return super().format_help()


def register(sub) -> None:
    p = sub.add_parser("bench", help="benchmarks (not tests): cvpt bench reader ...")
    bsub = p.add_subparsers(dest="bench", required=True, metavar="BENCH", parser_class=_BenchParser)
    r = bsub.add_parser(
        "reader",
        formatter_class=Formatter,
        help="read_clip against the decode floor and a VideoMAE-style RGB clip",
        doc_module="cvpt.bench.reader",
        epilog="example:\n  cvpt bench reader --repeats 15 --rounds 5 --out reader.json",
    )
    r.add_argument(
        "--videos",
        default=None,
        help="folder of prepared videos (default: generated 320x240 30 fps 6 s scenes)",
    )
    r.add_argument(
        "--repeats", type=int, default=15, help="reads of every video per round (medians over them)"
    )
    r.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="repeat the whole measurement; ratios are the median over rounds",
    )
    r.add_argument("--threads", type=int, default=1, help="OpenCV threads")
    r.add_argument(
        "--residual-interp",
        choices=["nearest", "linear"],
        default="nearest",
        help="residual reference: whole-pixel (CoViAR) or bilinear MVs",
    )
    r.add_argument("--no-accumulate", action="store_true")
    r.add_argument("--out", default=None, help="write the results as JSON here")
    r.set_defaults(func=run_reader)

    m = bsub.add_parser(
        "model",
        formatter_class=Formatter,
        help="CVPT vs VideoMAE-16 forward, CVPT vs full fine-tuning train step, checkpoint sizes",
        doc_module="cvpt.bench.model",
        epilog="example:\n  cvpt bench model --batch 2 --repeats 3 --out model.json",
    )
    m.add_argument("--backbone", default="vit_base", help="registered backbone")
    m.add_argument("--size", type=int, default=224, help="input height and width")
    m.add_argument("--batch", type=int, default=2, help="train-step batch")
    m.add_argument("--repeats", type=int, default=3, help="timed repetitions")
    m.add_argument(
        "--low-rank", type=int, default=16, help="rank of the low-rank prompt embeddings"
    )
    m.add_argument("--device", default="auto", help="cpu, cuda or auto (cuda if available)")
    m.add_argument(
        "--depth",
        type=int,
        default=None,
        help="override the backbone depth (smoke runs; Video Swin: blocks per stage)",
    )
    m.add_argument(
        "--grad-checkpointing",
        action="store_true",
        help="also measure CVPT with gradient checkpointing of the backbone blocks",
    )
    m.add_argument(
        "--amp",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="bf16 autocast for every case (default: as cvpt train, on for CUDA only)",
    )
    m.add_argument(
        "--keep-frozen-fp32",
        action="store_true",
        help="with --amp: keep the frozen weights in float32 (cvpt train stores them in bf16)",
    )
    m.add_argument(
        "--sweep-checkpointing",
        action="store_true",
        help="instead: CVPT's step time and peak memory with the first k blocks checkpointed, "
        "k = 0..depth, over full fine-tuning's (with --out, also a PNG beside the JSON)",
    )
    m.add_argument(
        "--breakdown",
        action="store_true",
        help="also say what each train step's peak memory is made of, by operator",
    )
    m.add_argument("--out", default=None, help="write the results as JSON here")
    m.set_defaults(func=run_model)

    pl = bsub.add_parser(
        "pipeline",
        formatter_class=Formatter,
        help="one model-ready view and each protocol, compressed vs raw RGB (PyAV, decord, "
        "torchcodec), from prepared files and sources; cvpt predict on a raw video; DataLoader "
        "views/s per worker",
        doc_module="cvpt.bench.pipeline",
        epilog="example:\n  cvpt bench pipeline --rounds 5 --out bench-pipeline\n"
        "  cvpt bench pipeline --videos ~/data/ucf-sample --inference --device cuda",
    )
    pl.add_argument(
        "--videos", default=None, help="folder of videos (default: generated 320x240 scenes)"
    )
    pl.add_argument("--rounds", type=int, default=5, help="the whole measurement again; "
                    "ratios are the median of the rounds' ratios")  # fmt: skip
    pl.add_argument("--repeats", type=int, default=2, help="reads of every video per round")
    pl.add_argument("--workers", default="0,1,2", help="DataLoader worker counts to time")
    pl.add_argument("--loader-items", type=int, default=24, help="views per DataLoader timing")
    pl.add_argument("--no-predict", action="store_true",
                    help="skip cvpt predict on a generated 10 s 720p H.264 file")  # fmt: skip
    pl.add_argument("--inference", action="store_true",
                    help="also time the model's forward (one view and each protocol)")  # fmt: skip
    pl.add_argument("--backbone", default="vit_base", help="with --inference: the backbone")
    pl.add_argument("--depth", type=int, default=None, help="override the backbone depth")
    pl.add_argument("--device", default="auto", help="cpu, cuda or auto (cuda if available)")
    pl.add_argument("--out", default="bench-pipeline", help="folder for results.json and PNG")
    pl.set_defaults(func=run_pipeline)


def _device(name: str) -> str:
    """``--device``: ``auto`` is CUDA when torch sees a GPU, else the CPU."""
    if name != "auto":
        return name
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _depth_option(backbone: str, depth: int | None) -> dict | None:
    """``--depth``: the ViT's block count; Video Swin's blocks per stage."""
    if not depth:
        return None
    from cvpt.models.backbone import family_of
    from cvpt.models.registry import backbone_config

    cfg = backbone_config(backbone)
    return family_of(cfg).depth_option(cfg, depth)


def _model_settings(args) -> dict:
    """The arguments ``bench_model`` and ``sweep_checkpointing`` share."""
    return dict(
        backbone=args.backbone,
        size=args.size,
        batch=args.batch,
        repeats=args.repeats,
        device=_device(args.device),
        backbone_options=_depth_option(args.backbone, args.depth),
        amp=args.amp,
        frozen_bf16=not args.keep_frozen_fp32,
    )


def run_model(args) -> int:
    from cvpt.bench import model as model_bench
    from cvpt.io import write_json

    if args.sweep_checkpointing:
        return run_sweep(args)
    res = model_bench.bench_model(
        **_model_settings(args),
        low_rank=args.low_rank,
        grad_checkpointing=args.grad_checkpointing,
        breakdown=args.breakdown,
    )
    t, p, c, r = res["median_seconds"], res["peak_bytes"], res["checkpoint_bytes"], res["ratios"]
    mb = 1 / 2**20
    print(
        f"{res['backbone']} at {res['size']}², {res['device']}, {res['torch_threads']} threads, "
        f"{_precision(res)}, medians of {res['repeats']}:"
    )
    print(
        f"  forward, batch 1: CVPT {t['cvpt_fwd'] * 1e3:.0f} ms, {res['rgb_reference']} "
        f"{t['rgb_fwd'] * 1e3:.0f} ms  ratio {r['cvpt_forward_over_rgb']:.2f}"
    )
    print(
        f"  train step, batch {res['batch']}: CVPT {t['cvpt_step'] * 1e3:.0f} ms, full FT "
        f"{t['full_step'] * 1e3:.0f} ms  ratio {r['cvpt_step_over_full']:.2f}"
    )
    what = "peak CUDA allocation" if res["device"].startswith("cuda") else "peak live tensors"
    print(
        f"  {what} added by a first train step: CVPT {p['cvpt_step'] * mb:.0f} MiB, "
        f"full FT {p['full_step'] * mb:.0f} MiB"
        f"  ratio {r['cvpt_peak_over_full']:.2f}"
    )
    h = res["tensor_bytes"]
    print(
        "  tensors held by a train step (saved activations + grads + AdamW state): CVPT "
        f"{h['cvpt_step']['total'] * mb:.0f} MiB, full FT {h['full_step']['total'] * mb:.0f} MiB"
        f"  ratio {r['cvpt_tensor_memory_over_full']:.2f}"
    )
    if "cvpt_ckpt_step" in t:
        print(
            f"  CVPT with gradient checkpointing: step {t['cvpt_ckpt_step'] * 1e3:.0f} ms "
            f"(ratio to full FT {r['cvpt_ckpt_step_over_full']:.2f}), {what} "
            f"{p['cvpt_ckpt_step'] * mb:.0f} MiB ({r['cvpt_ckpt_peak_over_full']:.2f}), tensors "
            f"held {h['cvpt_ckpt_step']['total'] * mb:.0f} MiB "
            f"({r['cvpt_ckpt_tensor_memory_over_full']:.2f})"
        )
    for case, parts in res.get("peak_breakdown_bytes", {}).items():
        largest = list(parts.items())[:6]
        top = ", ".join(f"{op.removeprefix('aten.')} {b * mb:.0f}" for op, b in largest)
        print(f"  {case.removesuffix('_step')} peak by operator (MiB): {top}")
    sizes = ", ".join(f"{k} {v * mb:.2f} MiB" for k, v in c.items())
    print(
        f"  per-task checkpoints: {sizes}; low-rank / full model "
        f"{r['low_rank_checkpoint_over_full_model']:.2%}"
    )
    if args.out:
        write_json(args.out, BENCH_RESULTS.stamp(res))
        print(f"wrote {args.out}")
    return 0


def run_sweep(args) -> int:
    from pathlib import Path

    from cvpt.bench import model as model_bench
    from cvpt.io import write_json

    res = model_bench.sweep_checkpointing(**_model_settings(args))
    print(
        f"{res['backbone']} at {res['size']}², batch {res['batch']}, {res['device']}, "
        f"{_precision(res)}, medians of {res['repeats']}; full fine-tuning: step "
        f"{res['full_step_seconds'] * 1e3:.0f} ms, peak {res['full_peak_bytes'] / 2**20:.0f} MiB"
    )
    print("  k checkpointed blocks   step ms  / full    peak MiB  / full")
    for p in res["points"]:
        print(
            f"  {p['checkpointed_blocks']:>3}  {p['step_seconds'] * 1e3:>20.0f}  "
            f"{p['step_over_full']:>6.2f}  {p['peak_bytes'] / 2**20:>10.0f}  "
            f"{p['peak_over_full']:>6.2f}"
        )
    if args.out:
        write_json(args.out, BENCH_RESULTS.stamp(res))
        png = Path(args.out).with_suffix(".png")
        model_bench.plot_sweep(res, png)
        print(f"wrote {args.out} and {png}")
    return 0


def _precision(res: dict) -> str:
    if not res["amp"]:
        return "float32"
    return "bf16 autocast, frozen weights " + ("bf16" if res["frozen_bf16"] else "float32")


def run_reader(args) -> int:
    from cvpt.bench import reader as reader_bench
    from cvpt.io import write_json

    res = reader_bench.bench_reader(
        args.videos,
        repeats=args.repeats,
        rounds=args.rounds,
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
    if len(res["rounds"]) > 1:
        for k in ("b_over_a", "b_over_c"):
            each = ", ".join(f"{r[k]:.2f}" for r in res["rounds"])
            print(f"  {k.replace('_over_', '/')} per round: {each}")
        print(f"  median over {len(res['rounds'])} rounds:")
    print(f"  b/a = {res['b_over_a']:.2f}   b/c = {res['b_over_c']:.2f}")
    if args.out:
        write_json(args.out, BENCH_RESULTS.stamp(res))
        print(f"wrote {args.out}")
    return 0


def run_pipeline(args) -> int:
    from pathlib import Path

    from cvpt.bench import pipeline as pipeline_bench
    from cvpt.io import write_json

    res = pipeline_bench.bench_pipeline(
        args.videos,
        rounds=args.rounds,
        repeats=args.repeats,
        workers=tuple(int(w) for w in args.workers.split(",")),
        loader_items=args.loader_items,
        predict=not args.no_predict,
        inference=args.inference,
        backbone=args.backbone,
        backbone_options=_depth_option(args.backbone, args.depth),
        device=_device(args.device),
        progress=lambda msg: print(f"  {msg} ...", flush=True),
    )
    print(
        f"{res['videos']} video(s) prepared to {res['video']} from {res['source']}; medians of "
        f"{res['rounds']} round(s) × {res['repeats']}, interleaved"
    )
    m, c = res["median_ms"], res["median_cpu_ms"]
    print(f"  {'case':<24} {'ms':>8} {'CPU ms':>8}")
    for k in m:
        print(f"  {k:<24} {m[k]:>8.1f} {c[k]:>8.1f}")
    print(f"  {'ratio (median of rounds)':<40} {'wall':>7} {'CPU':>7}  rounds (wall)")
    for k, r in res["ratios"].items():
        cpu = res["ratios_cpu"].get(k, {}).get("median", float("nan"))
        each = " ".join(f"{x:.2f}" for x in r["rounds"])
        print(f"  {k:<40} {r['median']:>7.2f} {cpu:>7.2f}  {each}")
    dl = res["dataloader"]
    print("  DataLoader views/s: " + ", ".join(f"{k} {v:.1f}" for k, v in dl.items()))
    print("  (against main before the fused views: scripts/bench_dataloader.py)")
    pr = res.get("predict")
    if pr:
        print("  cvpt predict inputs vs the RGB pipeline on " + pr["video"] + ":")
        for k, v in pr["ratios"].items():
            print(f"    {k}: {v:.2f} (cvpt {pr['median_ms'][f'cvpt_{_key(k)}']:.0f} ms, RGB "
                  f"{pr['median_ms'][f'rgb_{_key(k)}']:.0f} ms)")  # fmt: skip
    for k, t in res["targets"].items():
        print(f"  target {k} {t['target']}: {t['measured']:.2f} {'met' if t['met'] else 'NOT met'}")
    unavailable = {k: v for k, v in res["readers"].items() if v != "ok"}
    for k, v in unavailable.items():
        print(f"  {k}: {v}")
    out = Path(args.out)
    write_json(out / "results.json", BENCH_RESULTS.stamp(res))
    pipeline_bench.plot_pipeline(res, out / "pipeline.png")
    print(f"wrote {out / 'results.json'} and {out / 'pipeline.png'}")
    return 0


def _key(name: str) -> str:
    return name.replace(" ", "_")
