"""Write tiny tuned models with main's code (save_pretrained) and their logits on fixed inputs:
tests/data/saved_by_main/<method>/ for the cross-commit loading test."""

import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

import cvpt

out = Path(sys.argv[1])
TINY = dict(
    backbone="vit_tiny",
    backbone_options=dict(embed_dim=16, depth=2, num_heads=2, patch_size=4),
    num_classes=3,
)
g = torch.Generator().manual_seed(1)
x = (
    torch.randn(2, 3, 4, 8, 8, generator=g),
    torch.randn(2, 2, 12, 8, 8, generator=g),
    torch.randn(2, 3, 12, 8, 8, generator=g),
)
for method, opts in [
    ("cvpt", {"sccp_layers": 1}),
    ("linear", {}),
    ("vpt", {"vpt_tokens": 2}),
    ("adaptformer", {"adapter_dim": 4}),
    ("full", {}),
]:
    torch.manual_seed(0)
    model = cvpt.create_model(method, **TINY, **opts)
    model.origin["seed"] = 0
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(
                    0.01 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel()))
                )
    model.eval()
    with torch.no_grad():
        logits = model(*x)
    model.save_pretrained(out / method, class_names=["a", "b", "c"])
    save_file({"logits": logits}, str(out / method / "logits.safetensors"))
    print(method, logits.flatten()[:3])
