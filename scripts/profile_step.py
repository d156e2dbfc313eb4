"""Where a train step's time goes: ``torch.profiler`` over one step per method, same shapes as
``cvpt bench model`` (docs/benchmarks.md, "Train step"). A tool for reading, not a benchmark:
the profiler adds its own overhead; compare operators across methods, not totals across runs.

    python scripts/profile_step.py                       # cvpt and full, ViT-B, batch 2, float32
    python scripts/profile_step.py --amp --rows 12       # bf16 autocast, frozen weights in bf16
"""

from __future__ import annotations

import argparse

import torch
from torch.profiler import ProfilerActivity, profile

from cvpt.bench.model import StepCase


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--methods", default="cvpt,full")
    ap.add_argument("--backbone", default="vit_base")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--amp", action="store_true", help="bf16 autocast (cvpt train on CUDA)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--rows", type=int, default=16)
    args = ap.parse_args()
    activities = [ProfilerActivity.CPU]
    if args.device.startswith("cuda"):
        activities.append(ProfilerActivity.CUDA)
    for method in args.methods.split(","):
        case = StepCase(
            method, args.backbone, args.size, args.batch, device=args.device, amp=args.amp
        )
        model, opt, inputs, labels = case.setup()
        for _ in range(2):  # warm up: allocate AdamW's state, pick kernels
            case.step(model, opt, inputs, labels)
        with profile(activities=activities) as prof:
            case.step(model, opt, inputs, labels)
        sort = "self_cuda_time_total" if args.device.startswith("cuda") else "self_cpu_time_total"
        print(f"== {method}")
        print(prof.key_averages().table(sort_by=sort, row_limit=args.rows))


if __name__ == "__main__":
    main()
