"""Multi-view evaluation: softmax averaged over clips × crops; top-1/top-5, per class."""

from __future__ import annotations

import numpy as np
import torch

from cvpt.data.transforms import INPUT_KEYS, MODALITIES, normalize_inputs
from cvpt.formats import Format

# RUN/eval.json, RUN/eval-<clips>x<crops>.json: metrics() of an evaluation
EVAL_METRICS = Format("cvpt-eval-metrics", 1)


@torch.no_grad()
def predict_batch(model, batch: dict, device: torch.device, amp: bool = False) -> torch.Tensor:
    """``[B, V, ...]`` views (float32, or compact: normalised here, on ``device``) → class
    probabilities ``[B, K]`` averaged over the V views."""
    x = normalize_inputs({k: batch[k].to(device) for k in INPUT_KEYS if k in batch})
    i, m, r = (x[k] for k in MODALITIES)
    b, v = i.shape[:2]
    with torch.autocast(device.type, torch.bfloat16, enabled=amp and device.type == "cuda"):
        logits = model(i.flatten(0, 1), m.flatten(0, 1), r.flatten(0, 1))
    return logits.float().softmax(-1).view(b, v, -1).mean(1)


def metrics(probs: np.ndarray, labels: np.ndarray, num_classes: int) -> dict:
    """Top-1, top-5, mean per-class accuracy, per-class accuracy and the confusion matrix."""
    pred = probs.argmax(1)
    k = min(5, num_classes)
    top5 = np.argsort(-probs, axis=1)[:, :k]
    confusion = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(confusion, (labels, pred), 1)
    counts = confusion.sum(1)
    per_class = np.where(counts > 0, np.diag(confusion) / np.maximum(counts, 1), np.nan)
    return {
        "top1": float((pred == labels).mean()),
        "top5": float((top5 == labels[:, None]).any(1).mean()),
        "mean_class_accuracy": float(np.nanmean(per_class)) if counts.any() else float("nan"),
        "per_class": [None if np.isnan(a) else float(a) for a in per_class],
        "confusion": confusion.tolist(),
        "videos": len(labels),
    }
