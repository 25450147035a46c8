#!/usr/bin/env bash
# The paper's two claims side by side (issue #17): DiffDis (both tasks) vs discrimination-only vs generation-only
# vs transformers' CLIPModel, with the same data, batches, steps and schedule, over several seeds. Every model is
# scored by the same `diffdis eval` commands: zero-shot acc1 and mean per-class recall on world objects and
# colours (held-out colour x object pairs) and on the digits test split, retrieval R@1/5/10 both ways on the
# held-out world split, and for the generators the judge's object/colour accuracy and FID (judge features).
# OUT/table.md gives each metric as the mean over seeds with the spread (min-max), and each model's training
# FLOPs (one step counted with torch's FlopCounterMode, times the steps), so rows can be read at equal FLOPs.
# Resumable: trained models and finished records are kept. Run from the repository root.
# Cost: one core per run (OMP_NUM_THREADS=1, two seeds side by side on 2 cores); median seconds per step of the
# 3,000-step runs (parts of them shared the CPU): 1.4 (both), 0.5 (disc), 0.8 (gen), 1.6 (CLIPModel), so about
# 70, 25, 40, 80 and 115 (clip_flops) minutes per seed, plus about 10 minutes of scoring per model.
set -euo pipefail
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
OUT=${OUT:-runs/baselines}
STEPS=${STEPS:-3000}
SEEDS=${SEEDS:-"0 1"}
DATA=${DATA:-world:5000+digits}
PRESET=${PRESET:-tiny-patch2}
# clip_flops: CLIP trained for DiffDis's training FLOPs; both_flops: DiffDis at CLIP's training FLOPs, i.e. the
# `both` run's last checkpoint at or before them (checkpoints every 500 steps; `both` keeps them all for this)
METHODS=${METHODS:-"both clip disc gen clip_flops both_flops"}
QUERY=${QUERY:-"--query-scale=1"}   # the text-query settings under test (comma-separated train flags)
# A local pretrained text model, frozen in DiffDis and in CLIP alike (CLIP then trains only its ViT against it:
# the fair baseline for a DiffDis run that starts from it). The FLOPs rows count the from-scratch towers.
TEXT_ENCODER=${TEXT_ENCODER:-}
N=${N:-300}                          # held-out world images for classification and retrieval
GEN_N=${GEN_N:-200}                  # held-out captions to generate from (judge accuracy, FID)
IFS=, read -r -a QUERY_FLAGS <<< "$QUERY"
COMMON=(--data "$DATA" --max-steps "$STEPS" --batch-size 32 --learning-rate 5e-4 --warmup-steps 300 --lr-scheduler cosine)
[ -n "$TEXT_ENCODER" ] && COMMON+=(--text-encoder "$TEXT_ENCODER")
for seed in $SEEDS; do
  for name in $METHODS; do
    dir="$OUT/seed$seed/$name"
    if [ "$name" = clip ] || [ "$name" = clip_flops ]; then
      CLIP_STEPS=(); [ "$name" = clip_flops ] && CLIP_STEPS=(--max-steps "$(python examples/baselines_table.py "$OUT" \
        --steps "$STEPS" --preset "$PRESET" --equal-flops-steps clip)")   # the last --max-steps wins
      RESUME=(); [ -f "$dir/checkpoints/latest" ] && RESUME=(--resume-from-checkpoint latest)
      [ -f "$dir/clip_baseline.json" ] || diffdis eval train-clip "${COMMON[@]}" "${CLIP_STEPS[@]}" --seed "$seed" \
        "${RESUME[@]}" --output-dir "$dir" --json > /dev/null
    elif [ "$name" = both_flops ]; then
      step=$(python examples/baselines_table.py "$OUT" --steps "$STEPS" --preset "$PRESET" \
        --diffdis-steps-at-flops-of clip)
      dir="$OUT/seed$seed/both/checkpoints/checkpoint-$step/model"
      [ -f "$dir/model_index.json" ] || { echo "baselines.sh: $dir is missing (train 'both' first)" >&2; exit 1; }
    else
      KEEP=(); [ "$name" = both ] && KEEP=(--checkpoints-total-limit 1000)   # both_flops reads an early checkpoint
      RESUME=(); [ -f "$dir/checkpoints/latest" ] && RESUME=(--resume-from-checkpoint latest)
      [ -f "$dir/model_index.json" ] || diffdis train "${COMMON[@]}" --seed "$seed" --preset "$PRESET" --tasks "$name" \
        --mixed-precision bf16 --checkpointing-steps 500 "${KEEP[@]}" "${RESUME[@]}" "${QUERY_FLAGS[@]}" \
        --output-dir "$dir" --json > /dev/null
    fi
    R="$OUT/results/seed$seed/$name"; mkdir -p "$R"
    method=diffdis; case "$name" in clip*) method=clip ;; esac
    if [ "$name" != gen ]; then
      for task in "world_objects world:$N" "world_colours world:$N" "digits digits"; do
        set -- $task
        [ -f "$R/classify_$1.json" ] || diffdis eval classify --method "$method" --model "$dir" --data "$2" --labels "$1" \
          --drop-unknown --output "$R/classify_$1.json" --json > /dev/null
      done
      [ -f "$R/retrieve.json" ] || diffdis eval retrieve --method "$method" --model "$dir" --data "world:$N" \
        --output "$R/retrieve.json" --json > /dev/null
    fi
    if [ "$name" = both ] || [ "$name" = gen ]; then
      [ -f "$R/generate.json" ] || diffdis eval generate --model "$dir" --prompts world --num-prompts "$GEN_N" \
        --output "$R/generate.json" --json > /dev/null
    fi
  done
done
NO_FLOPS=(); [ -n "$TEXT_ENCODER" ] && NO_FLOPS=(--no-flops)
python examples/baselines_table.py "$OUT" --steps "$STEPS" --preset "$PRESET" "${NO_FLOPS[@]}" | tee "$OUT/table.md"
