#!/usr/bin/env bash
# The README's "Results" section: `diffdis eval` on the default model (or MODEL=DIR). A sampler sweep of
# zero-shot classification (cifar10 labels on the world's held-out colour x object pairs; the digits test
# split), the Diffusion Classifier on the same model and images, retrieval, and generation metrics; merged
# into OUT/table.csv and OUT/steps_vs_accuracy.png. Needs matplotlib (pip install -e ".[eval]").
# Run from the repository root; about 5 minutes on 2 CPU cores with the defaults.
set -euo pipefail
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
OUT=${OUT:-runs/eval_default}
N=${N:-300}          # held-out world images (those with a CIFAR-10 object are scored) and digits
DC_N=${DC_N:-100}    # the Diffusion Classifier costs classes x timesteps UNet passes per image: fewer images
MODEL_ARGS=(); [ -n "${MODEL:-}" ] && MODEL_ARGS=(--model "$MODEL")
R="$OUT/results"
mkdir -p "$R"
run() { "$@" --json > /dev/null; echo "done: ${*:1:3} ${*: -2}"; }
run diffdis eval classify "${MODEL_ARGS[@]}" --data "world:$N" --labels cifar10 --label-column object --drop-unknown \
  --scheduler ddim,dpm++,unipc --num-inference-steps 1,2,5,10,25,50 --output "$R/classify_cifar10_{scheduler}_{steps}.json"
run diffdis eval classify "${MODEL_ARGS[@]}" --data "digits:$N" --labels digits \
  --scheduler ddim,dpm++ --num-inference-steps 1,5,25 --output "$R/classify_digits_{scheduler}_{steps}.json"
run diffdis eval classify "${MODEL_ARGS[@]}" --data "world:$DC_N" --labels cifar10 --label-column object --drop-unknown \
  --method diffusion-classifier --dc-timesteps 10 --output "$R/classify_cifar10_dc.json"
run diffdis eval retrieve "${MODEL_ARGS[@]}" --data world:1000 --output "$R/retrieve_world.json"
run diffdis eval generate "${MODEL_ARGS[@]}" --prompts world --num-prompts 64 --output "$R/generate_world.json"
diffdis eval build "$R"/*.json --output "$OUT/table.csv" --plot "$OUT/steps_vs_accuracy.png"
echo "table: $OUT/table.csv  plot: $OUT/steps_vs_accuracy.png"
