#!/usr/bin/env bash
# The smoke test of an installed cvpt (used by scripts/wheel_check.sh on each CI leg): with the
# venv's own cvpt, away from the source tree, `cvpt doctor` (encode -> decode -> motion
# vectors), then what a new user does first: generate videos, probe and read one through a
# model to a plot, train a few steps, evaluate and predict. Then the codec tests (every PyAV
# path) from tests/, against the installed wheel. Usage: scripts/smoke.sh VENV
set -euo pipefail
venv=$(cd "$1" && pwd)
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
cvpt="$venv/bin/cvpt"

"$cvpt" doctor
"$cvpt" synth data --videos 12 --seed 0 --frames 48 --size 64 >/dev/null
"$cvpt" probe data/videos/target_00000.mp4 >/dev/null
"$venv/bin/python" - <<'PY'
import sys

import cv2
import numpy
import torch

import av
import cvpt
from cvpt.viz.clip import plot_clip

assert cvpt.__file__.startswith(sys.prefix), cvpt.__file__  # the wheel, not src/
clip = cvpt.read_clip("data/videos/target_00000.mp4", num_gops=2)
x = cvpt.ClipTransform(size=64, short_side=64)(clip)
model = cvpt.create_model("cvpt", backbone="vit_tiny", num_classes=3,
                          backbone_options={"depth": 1, "img_size": 64})
with torch.no_grad():
    logits = model(*(x[k][None] for k in ("iframes", "mvs", "residuals")))
assert logits.shape == (1, 3) and torch.isfinite(logits).all()
plot_clip(clip, "clip.png")
print(f"smoke: cvpt {cvpt.__version__} on Python {sys.version.split()[0]} with PyAV "
      f"{av.__version__}, numpy {numpy.__version__}, opencv {cv2.__version__}, torch "
      f"{torch.__version__}")
PY
"$cvpt" train --out run --set dataset=list root=data annotations=data backbone=vit_tiny \
    "backbone_options={depth: 1}" size=64 short_side=64 epochs=1 warmup_epochs=0 \
    batch_size=4 effective_batch=4 workers=0 >/dev/null 2>train.err || { cat train.err; exit 1; }
# a new user's first run says nothing it need not (numpy 2.0 warned of flushed subnormals)
if grep -i "warning" train.err; then echo "smoke: cvpt train warned (above)"; exit 1; fi
"$cvpt" predict data/videos/target_00001.mp4 --checkpoint run
echo "smoke: doctor, synth, probe, read_clip + model + plot, train, predict: ok"

# the codec tests: every PyAV call cvpt makes, on this leg's PyAV (tests/ imports the wheel);
# then the extras' tests on this leg's huggingface_hub and trackers (the hub tests that need
# transformers, a test-only package, skip here; the export tests need torch >= 2.13, above
# the floors leg's torch, and run in the constraints leg)
cd "$root"
"$venv/bin/python" -m pytest -q -p no:cacheprovider tests/test_pyav_versions.py \
    tests/test_bad_input.py tests/test_ready.py tests/test_window.py \
    tests/test_window_fallback.py tests/test_warp.py tests/test_reader_groundtruth.py \
    tests/test_read_clip_sweep.py tests/test_real_world.py tests/test_prepare.py \
    tests/test_hub.py tests/test_trackers.py
