"""``cvpt visualize``: what a tuned model looks at, for one video."""

from __future__ import annotations

from cvpt.cli.common import CHECKPOINT_HELP, add_command
from cvpt.cli.train import add_backbone_override
from cvpt.errors import ConfigError
from cvpt.formats import Format

VISUALIZE_SUMMARY = Format("cvpt-visualize-summary", 1)  # OUT/summary.json


def register(sub) -> None:
    p = add_command(
        sub,
        "visualize",
        "Draw, for one video and a trained run: the clip (I-frames, MV colours, residuals; the "
        "paper's Fig. 3a), the last layer's feature maps over the I-frames (token norm and "
        "class activation; Fig. 6) and the SCCP attention of chosen layers.",
        "cvpt visualize --checkpoint runs/hmdb51_cvpt video.avi -o vis/",
        run,
    )
    p.add_argument("video", help="any video (re-encoded in a temp folder unless prepared)")
    p.add_argument(
        "--checkpoint",
        required=True,
        help=CHECKPOINT_HELP,
    )
    p.add_argument("-o", "--out", required=True, help="output folder")
    p.add_argument(
        "--layers",
        default="first,last",
        help="SCCP layers to draw: 'all', or indices / first / last, comma-separated",
    )
    add_backbone_override(p, with_path=True)


def run(args) -> int:
    from pathlib import Path

    from cvpt.codec.reader import read_clip
    from cvpt.io import write_json
    from cvpt.loading import input_settings, load_model
    from cvpt.predictor import load_views, prepared
    from cvpt.training.trainer import pick_device
    from cvpt.viz.clip import plot_clip
    from cvpt.viz.inside import explain, plot_maps, to_uint8

    model = load_model(
        args.checkpoint,
        backbone_checkpoint=args.backbone_checkpoint,
        allow_other_backbone=args.allow_other_backbone,
        device=pick_device("auto"),
    )
    device, classes, ckpt = next(model.parameters()).device, model.class_names, model.loaded_from
    out = Path(args.out)
    with prepared(args.video, input_settings(model)["short_side"]) as path:
        plot_clip(read_clip(path, model.clip), out / "clip.png")
        batch = load_views(path, model)
    x = {k: batch[k][:, 0].to(device) for k in ("iframes", "mvs", "residuals")}
    res = explain(model, **x)
    frames = to_uint8(x["iframes"][0])
    name = classes[res["predicted"]]
    title = f"{Path(args.video).name}: predicted {name} ({res['probs'].max():.0%})"
    plot_maps(frames, {"token norm": res["token_norm"], f"CAM '{name}'": res["cam"]},
              out / "feature_map.png", title)  # fmt: skip
    layers = _pick(args.layers, sorted(res["attention"]))
    if layers:
        maps = {f"SCCP A, layer {i}": res["attention"][i] for i in layers}
        plot_maps(frames, maps, out / "sccp_attention.png",
                  title + " — SCCP attention (mean over channels)")  # fmt: skip
    top = res["probs"].argsort()[::-1][:5]
    write_json(out / "summary.json", VISUALIZE_SUMMARY.stamp({
        "video": str(args.video), "checkpoint": str(ckpt), "method": model.method,
        "top": [{"class": classes[i], "probability": float(res["probs"][i])} for i in top],
        "sccp_layers_drawn": layers,
    }))  # fmt: skip
    drawn = ["clip.png", "feature_map.png"] + (["sccp_attention.png"] if layers else [])
    print(f"predicted {name} ({res['probs'].max():.1%}); wrote {', '.join(drawn)} to {out}")
    if not layers:
        print(f"(no SCCP attention: method {model.method} has no attention-based SCCP blocks)")
    return 0


def _pick(spec: str, available: list[int]) -> list[int]:
    if not available:
        return []
    if spec == "all":
        return available
    chosen = []
    for part in spec.split(","):
        part = part.strip()
        i = {"first": available[0], "last": available[-1]}.get(part)
        if i is None:
            i = int(part)
            if i not in available:
                raise ConfigError(f"--layers: no SCCP attention at layer {i}; have {available}")
        if i not in chosen:
            chosen.append(i)
    return chosen
