#!/usr/bin/env bash
# DiffDis beside its baselines at equal data and steps (issue #5): the unified model (--tasks both), a
# generation-only and a discrimination-only model, a one-way-fusion model (its image stream is cached during
# classification), and transformers' CLIPModel; then the Diffusion Classifier
# method on the two models that can generate. Every model is scored by the same `diffdis eval` commands on the
# world's held-out split, and `diffdis eval build` merges the records into one table (OUT/table.csv).
# About 30 minutes on 2 CPU cores with the defaults. Run from the repository root.
set -euo pipefail
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
OUT=${OUT:-runs/baselines}
STEPS=${STEPS:-400}
DATA=${DATA:-world:3000}
PRESET=${PRESET:-tiny-patch2}
N=${N:-300}          # held-out images for classification and retrieval
DC_N=${DC_N:-100}    # the Diffusion Classifier costs classes x timesteps UNet passes per image: fewer images
mkdir -p "$OUT/results"
COMMON=(--data "$DATA" --max-steps "$STEPS" --batch-size 32 --learning-rate 5e-4 --seed 0)
for name in both gen disc oneway; do  # oneway: both tasks, but image tokens never attend to the text token
  tasks=$name; FUSION=(); [ "$name" = oneway ] && tasks=both && FUSION=(--fusion one-way)
  [ -f "$OUT/$name/model_index.json" ] || diffdis train "${COMMON[@]}" --output-dir "$OUT/$name" --preset "$PRESET" \
    --tasks "$tasks" --checkpointing-steps "$STEPS" "${FUSION[@]}"
done
[ -f "$OUT/clip/clip_baseline.json" ] || diffdis eval train-clip "${COMMON[@]}" --output-dir "$OUT/clip"
R="$OUT/results"
for name in both disc oneway clip; do
  method=diffdis; [ "$name" = clip ] && method=clip
  for labels in world_objects world_colours; do
    diffdis eval classify --method "$method" --model "$OUT/$name" --data "world:$N" --labels "$labels" --drop-unknown \
      --output "$R/classify_${name}_${labels}.json" --json > /dev/null
  done
  diffdis eval retrieve --method "$method" --model "$OUT/$name" --data "world:$N" --output "$R/retrieve_${name}.json" --json > /dev/null
done
for name in both gen; do
  diffdis eval classify --method diffusion-classifier --dc-timesteps 10 --model "$OUT/$name" --data "world:$DC_N" \
    --labels world_colours --output "$R/classify_${name}_dc_world_colours.json" --json > /dev/null
  diffdis eval generate --model "$OUT/$name" --prompts world --num-prompts 64 --output "$R/generate_${name}.json" --json > /dev/null
done
diffdis eval build "$R"/*.json --output "$OUT/table.csv"
echo "table: $OUT/table.csv"
