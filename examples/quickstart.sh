#!/usr/bin/env bash
# The main job on a fresh machine, end to end on CPU: make a small captioned world, train the tiny preset,
# then generate, classify and retrieve with it. ~17 minutes on 2 cores. Run from the repository root.
set -euo pipefail
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
OUT=${OUT:-runs/quickstart}
STEPS=${STEPS:-500}
mkdir -p "$OUT"
[ -f "$OUT/data/metadata.jsonl" ] || diffdis data make shapes --output-dir "$OUT/data" --num-images 3000 --seed 1
[ -f "$OUT/test/metadata.jsonl" ] || diffdis data make shapes --output-dir "$OUT/test" --num-images 8 --seed 99
if [ -f "$OUT/model/model_index.json" ]; then
  echo "model already trained in $OUT/model"
else
  RESUME=()
  [ -f "$OUT/model/checkpoints/latest" ] && RESUME=(--resume-from-checkpoint latest)  # an interrupted run
  diffdis train --data "$OUT/data" --output-dir "$OUT/model" --preset tiny --max-steps "$STEPS" --batch-size 32 \
    --learning-rate 5e-4 --checkpointing-steps 250 "${RESUME[@]}"
fi
diffdis generate "a red circle" --model "$OUT/model" --num-images 4 --output "$OUT/red-circle.png" --overwrite
diffdis classify "$OUT"/test/00000{0,1,2,3}.png --model "$OUT/model" --labels "$(python3 examples/shape_labels.py)" --top-k 3 --json
printf 'a red circle\na blue square\na green triangle\na yellow cross\n' > "$OUT/texts.txt"
diffdis retrieve --model "$OUT/model" --images "$OUT/test" --texts "$OUT/texts.txt" --top-k 2 --json
diffdis retrieve --model "$OUT/model" --images "$OUT/test" --query "a blue square" --top-k 3
