#!/usr/bin/env bash
# The text-query study (issue #17): does the query scale gamma (and the query's own noise schedule) make the text
# diffusion matter, i.e. does accuracy rise with sampler steps? Trains one model per variant on the same data,
# batches, steps and seed, then sweeps classification over DDIM and DPM-Solver++ at 1, 2, 5, 10, 25 steps (and
# DDIM with query guidance s = 2) and retrieval at 1, 5, 25 steps, and prints one table (OUT/table.md).
# Re-run: bash examples/query_study.sh   (STEPS=1500: about 25 min of 1 core per variant for training).
# VARIANTS is a list of name=flags; the flags go to `diffdis train`.
set -euo pipefail
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
OUT=${OUT:-runs/query_study}
STEPS=${STEPS:-1500}
DATA=${DATA:-world:3000}
N=${N:-300}
EVAL=${EVAL:-world:$N}   # the held-out split (colour x object pairs never drawn in training)
SEED=${SEED:-0}
VARIANTS=${VARIANTS:-"g1=--query-scale=1 g4=--query-scale=4 g16=--query-scale=sqrt-d g16cos=--query-scale=sqrt-d,--query-schedule=cosine"}
mkdir -p "$OUT"
for variant in $VARIANTS; do
  name=${variant%%=*}; IFS=, read -r -a FLAGS <<< "${variant#*=}"
  [ -f "$OUT/$name/model_index.json" ] || diffdis train --data "$DATA" --preset tiny-patch2 --max-steps "$STEPS" \
    --batch-size 32 --learning-rate 5e-4 --seed "$SEED" --mixed-precision bf16 --warmup-steps 300 --lr-scheduler cosine \
    --ema-decay 0.999 --snr-gamma 5 --checkpointing-steps 500 --output-dir "$OUT/$name" "${FLAGS[@]}" --json > /dev/null
  R="$OUT/results/$name"; mkdir -p "$R"
  [ -f "$R/done" ] && continue
  for labels in world_objects world_colours; do
    diffdis eval classify --model "$OUT/$name" --data "$EVAL" --labels "$labels" --drop-unknown --scheduler ddim,dpm++ \
      --num-inference-steps 1,2,5,10,25 --output "$R/classify_${labels}_{scheduler}_{steps}_g{guidance}.json" --json > /dev/null
    diffdis eval classify --model "$OUT/$name" --data "$EVAL" --labels "$labels" --drop-unknown --scheduler ddim \
      --num-inference-steps 1,5,25 --guidance-scale 2 --output "$R/classify_${labels}_{scheduler}_{steps}_g{guidance}.json" --json > /dev/null
  done
  diffdis eval retrieve --model "$OUT/$name" --data "$EVAL" --scheduler ddim --num-inference-steps 1,5,25 \
    --output "$R/retrieve_{scheduler}_{steps}.json" --json > /dev/null
  touch "$R/done"
done
python - "$OUT" <<'EOF' | tee "$OUT/table.md"
import json, sys
from collections import defaultdict
from pathlib import Path

rows = defaultdict(dict)
for path in sorted(Path(sys.argv[1], "results").glob("*/*.json")):  # the models of this OUT, all variants
    r = json.loads(path.read_text())
    what = r.get("labels", "retrieval")
    # CLIP_benchmark's names: text_retrieval = image -> text, image_retrieval = text -> image
    metrics = ["acc1"] if r["task"] == "classify" else ["text_retrieval_recall@1", "image_retrieval_recall@1"]
    for metric in metrics:
        rows[(path.parent.name, what, r["scheduler"], r["guidance"], metric)][r["steps"]] = r[metric]
steps = sorted({s for v in rows.values() for s in v})
print("| model | task | sampler | s | metric | " + " | ".join(f"{s} steps" for s in steps) + " |")
print("|" + "---|" * (5 + len(steps)))
for (model, what, sched, g, metric), vals in sorted(rows.items()):
    cells = " | ".join(f"{100 * vals[s]:.1f}" if s in vals else "" for s in steps)
    print(f"| {model} | {what} | {sched} | {g} | {metric} | {cells} |")
EOF
