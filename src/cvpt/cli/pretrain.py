"""``cvpt pretrain``."""

from __future__ import annotations

from cvpt.cli.common import add_command, count


def register(sub) -> None:
    p = add_command(
        sub,
        "pretrain",
        "Pre-train a small ViT on raw 16-frame RGB clips (e.g. cvpt synth --task source) and save "
        "it as a backbone for cvpt.load_backbone / backbone_checkpoint.",
        "cvpt pretrain data/synth-source --out backbones/tiny_source.safetensors --epochs 30",
        run,
    )
    p.add_argument("data", help="a list dataset folder (train.txt, test.txt, videos)")
    p.add_argument("--out", required=True, help="backbone .safetensors to write")
    p.add_argument("--backbone", default="vit_tiny", help="registered ViT to pre-train")
    p.add_argument("--depth", type=int, default=4, help="transformer blocks")
    p.add_argument("--epochs", type=int, default=30, help="passes over the videos")
    p.add_argument("--batch-size", type=int, default=16, help="videos per step")
    p.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument(
        "--masked",
        action="store_true",
        help="VideoMAE-style masked pre-training (tube masking, pixel reconstruction) instead "
        "of supervised classification",
    )
    p.add_argument("--mask-ratio", type=float, default=0.9, help="share of masked tubes")


def run(args) -> int:
    from cvpt.training.pretrain import pretrain

    res = pretrain(
        args.data,
        args.out,
        backbone=args.backbone,
        depth=args.depth,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        masked=args.masked,
        mask_ratio=args.mask_ratio,
    )
    if res["source_test_top1"] is None:
        done = f"held-out reconstruction loss {res['test_reconstruction_loss']:.3f}"
    else:
        done = f"source-task test top-1 {100 * res['source_test_top1']:.1f}%"
    print(
        f"{done} after {count(res['epochs'], 'epoch')} ({res['seconds']:.0f} s); backbone "
        f"written to {args.out} (+ .json)"
    )
    return 0
