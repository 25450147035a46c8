#!/usr/bin/env bash
# How the default model (diffdis/default_weights/) is made: the tiny-patch2 preset (32x32 pixels folded into
# 16x16x12, about 2x cheaper per step than the tiny preset on CPU) on the built-in captioned world (20,000 images)
# plus scikit-learn's 1,438 training digits, 8,000 steps of batch 32 in bf16 autocast on 2 CPU cores (~90 min), then stored in
# fp16 with a name and version. Re-run it to retrain; bump MODEL_VERSION in diffdis/default_model.py.
# Then measure the packaged copy (fp16, shipped guidance s = 6; the raw "$OUT/model" samples at the source's s = 3):
# python benchmarks/default_model.py --model "${TARGET:-diffdis/default_weights}" (every figure of the README's results).
set -euo pipefail
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
OUT=${OUT:-runs/default}
mkdir -p "$OUT"
RESUME=()
[ -f "$OUT/model/checkpoints/latest" ] && RESUME=(--resume-from-checkpoint latest)  # an interrupted run
[ -f "$OUT/model/model_index.json" ] || diffdis train --data world:20000+digits --output-dir "$OUT/model" --preset tiny-patch2 \
  --max-steps "${MAX_STEPS:-8000}" --batch-size 32 --mixed-precision bf16 --learning-rate 5e-4 --warmup-steps 300 --ema-decay 0.999 --snr-gamma 5 \
  --checkpointing-steps 500 --seed 0 "${RESUME[@]}"
python -c "import sys; from diffdis.default_model import package_model; package_model(sys.argv[1], sys.argv[2])" \
  "$OUT/model" "${TARGET:-diffdis/default_weights}"
