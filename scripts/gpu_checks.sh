#!/usr/bin/env bash
# The GPU checks of issues #3 and #6, as run on a lent device machine (see docs/benchmarks.md):
# cvpt has no GPU in CI, so these are run by hand. Needs torch with CUDA, and PyAV (carried as a
# wheel in .whl/ where the machine cannot reach a registry). Writes to ${OUT:-gpu-out}.
set -uo pipefail
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
if ! python3 -c "import av" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD/src" PYTHONUNBUFFERED=1
cvpt() { python3 -m cvpt.cli.main "$@"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, av; print('torch', torch.__version__, 'av', av.__version__)"
{
  # bf16 autocast is what cvpt train does on CUDA (the default here); float32 for comparison
  echo "== bench model, ViT-B, batch 8, bf16"; cvpt bench model --batch 8 --repeats 10 --grad-checkpointing --out "$OUT/model_b8.json"
  echo "== bench model, ViT-B, batch 2, bf16"; cvpt bench model --batch 2 --repeats 10 --grad-checkpointing --out "$OUT/model_b2.json"
  echo "== bench model, ViT-B, batch 8, fp32"; cvpt bench model --batch 8 --repeats 10 --grad-checkpointing --no-amp --out "$OUT/model_b8_fp32.json"
  echo "== checkpointing sweep, ViT-B, batch 8, bf16"; cvpt bench model --batch 8 --repeats 5 --sweep-checkpointing --out "$OUT/ckpt_sweep_b8.json"
  echo "== bench pipeline, ViT-B"; cvpt bench pipeline --repeats 5 --out "$OUT/pipeline"
  echo "== CUDA training path: bf16 autocast, 2 epochs on the synthetic task"
  cvpt synth /tmp/syn --videos 64 --seed 0 --pan 0.5 > /dev/null 2>&1
  cvpt train --out /tmp/run --set dataset=list root=/tmp/syn annotations=/tmp/syn \
    backbone=vit_tiny "backbone_options={depth: 4}" size=64 short_side=64 method=cvpt \
    epochs=2 batch_size=16 effective_batch=16 base_lr=0.15 warmup_epochs=1 workers=2 amp=true \
    device=cuda 2>&1 | grep -v "it/s\]" | tail -n 15
  cvpt eval --run /tmp/run --views 2 --crops 3 2>&1 | tail -n 5
} 2>&1 | tee "$OUT/log.txt"
