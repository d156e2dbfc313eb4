#!/usr/bin/env bash
# CI step (make wheel-check, run by make test): build cvpt's wheel, install it into a fresh venv
# (no system site-packages) beside *other* versions than CI's own -- the lowest numpy, OpenCV,
# matplotlib and tqdm that pyproject.toml allows -- and check it works there: `cvpt doctor`
# (encode -> decode -> motion vectors), the public import, and one clip through a model to a
# plot. Everything else comes from constraints.txt (torch==2.13.0 from this machine's disk).
# Prints the seconds it took.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
# the lower bounds in pyproject.toml, installed here so that they stay true
LOWEST=("numpy==2.0.2" "opencv-python-headless==4.10.0.84" "matplotlib==3.9.4" "tqdm==4.66.6")

start=$(date +%s)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
quiet() { grep -v "WARNING: Location" || true; }  # this machine's pip config notes, not ours

$PYTHON -m pip wheel --quiet --no-deps --wheel-dir "$work/dist" . 2>&1 | quiet
wheel=$(ls "$work"/dist/cvpt-*.whl)
built=$(date +%s)

# --no-compile: byte-compiling torch's sources was over half the install (115 s -> 48 s here)
$PYTHON -m venv "$work/venv"
# CI's exact versions, minus the packages pinned lower above
grep -v -E '^(numpy|opencv-python-headless|matplotlib|tqdm)==' constraints.txt >"$work/constraints.txt"
"$work/venv/bin/pip" install --quiet --no-compile -c "$work/constraints.txt" "${wheel}[plots]" "${LOWEST[@]}" 2>&1 | quiet
installed=$(date +%s)

cd "$work"  # away from the source tree: the installed wheel is what gets imported
"$work/venv/bin/cvpt" doctor
"$work/venv/bin/python" - <<'EOF'
import numpy, cv2, matplotlib, torch

import cvpt
from cvpt.codec.encode import write_video
from cvpt.data.generate import moving_scene

assert cvpt.__file__.startswith(__import__("sys").prefix), cvpt.__file__  # the wheel, not src/
path = write_video("clip.mp4", moving_scene(frames=48, height=64, width=80, seed=0))
clip = cvpt.read_clip(path)
x = cvpt.ClipTransform(size=64, short_side=64)(clip)
model = cvpt.create_model("cvpt", backbone="vit_tiny", num_classes=3,
                          backbone_options={"depth": 1, "img_size": 64})
with torch.no_grad():
    logits = model(*(x[k][None] for k in ("iframes", "mvs", "residuals")))
assert logits.shape == (1, 3) and torch.isfinite(logits).all()
from cvpt.viz.clip import plot_clip
plot_clip(clip, "clip.png")
print(f"wheel check: cvpt {cvpt.__version__} with numpy {numpy.__version__}, opencv "
      f"{cv2.__version__}, matplotlib {matplotlib.__version__}, torch {torch.__version__}: ok")
EOF
end=$(date +%s)
echo "wheel check took $((end - start)) s: build $((built - start)) s, fresh venv + install" \
    "$((installed - built)) s, doctor + import + clip $((end - installed)) s"
