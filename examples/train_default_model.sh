#!/usr/bin/env bash
# How the shipped default model (diffdis/default_weights/) was made: the tiny preset on the built-in captioned
# world (20,000 images) plus scikit-learn's 1,438 training digits, 2,400 steps of batch 32 on 2 CPU cores,
# then stored in fp16 with a name and version. Re-run it to retrain; bump MODEL_VERSION in diffdis/default_model.py.
# Then measure it: python benchmarks/default_model.py (prints every figure of the README's results).
set -euo pipefail
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
OUT=${OUT:-runs/default}
mkdir -p "$OUT"
RESUME=()
[ -f "$OUT/model/checkpoints/latest" ] && RESUME=(--resume-from-checkpoint latest)  # an interrupted run
[ -f "$OUT/model/model_index.json" ] || diffdis train --data world:20000+digits --output-dir "$OUT/model" --preset tiny \
  --max-steps 2400 --batch-size 32 --learning-rate 5e-4 --warmup-steps 200 --ema-decay 0.999 --snr-gamma 5 \
  --checkpointing-steps 400 --seed 0 "${RESUME[@]}"
python -c "import sys; from diffdis.default_model import package_model; package_model(sys.argv[1], sys.argv[2])" \
  "$OUT/model" "${TARGET:-diffdis/default_weights}"
