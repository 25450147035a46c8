#!/usr/bin/env bash
# The main job on the shipped default model, no training, no network: draw "a red car", classify unseen
# colour x object images with the cifar10 labels and their colours, classify handwritten digits, retrieve.
# About a minute on 2 CPU cores. Run from anywhere with diffdis installed.
set -euo pipefail
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
OUT=${OUT:-runs/main_job}
mkdir -p "$OUT"
diffdis env | grep default_model
diffdis generate "a red car" --num-images 4 --output "$OUT/red-car.png" --overwrite
# 8 images of colour x object pairs the model never saw in training (drawn in the varied style the shipped v5
# model was trained on: scale, slant, stroke, clutter, blur), and 8 test digits
[ -f "$OUT/heldout/metadata.jsonl" ] || diffdis data make world --split heldout --output-dir "$OUT/heldout" --num-images 8 --seed 7
[ -f "$OUT/digits/metadata.jsonl" ] || diffdis data make digits --split test --output-dir "$OUT/digits" --num-images 8
echo "--- what was drawn (from the dataset's metadata):"
python3 -c 'import json,sys; [print(r["file_name"], "|", r["text"]) for r in map(json.loads, open(sys.argv[1]))]' "$OUT/heldout/metadata.jsonl"
diffdis classify "$OUT"/heldout/*.png --labels cifar10 --top-k 3
diffdis classify "$OUT"/heldout/*.png --labels world_colours --top-k 2
diffdis classify "$OUT"/digits/*.png --labels digits --top-k 2
diffdis retrieve --images "$OUT/heldout" --query "a green truck" --top-k 3
