#!/usr/bin/env bash
# Multi-GPU DiffDis training with DeepSpeed ZeRO. --batch-size is the GLOBAL batch (split across the ranks).
# Two equivalent launchers; pick one. On CPU machines the same commands run on the gloo backend.
set -euo pipefail
GPUS=${GPUS:-8}
DATA=${DATA:-world:200000+digits}          # or your own image folder / parquet / csv
OUT=${OUT:-runs/sd15-zero2}
RESUME=()
[ -f "$OUT/checkpoints/latest" ] && RESUME=(--resume-from-checkpoint latest)   # continue an interrupted run
ARGS=(train --data "$DATA" --output-dir "$OUT" --preset sd15 --mixed-precision bf16 --batch-size $((GPUS * 16))
      --learning-rate 1e-4 --max-steps 100000 --checkpointing-steps 2000 "${RESUME[@]}")

# 1) torchrun
torchrun --nproc_per_node "$GPUS" -m diffdis_cli "${ARGS[@]}" --deepspeed zero2

# 2) or the DeepSpeed launcher (--no_local_rank: diffdis reads LOCAL_RANK from the environment)
# deepspeed --num_gpus "$GPUS" --no_local_rank --module diffdis_cli "${ARGS[@]}" --deepspeed zero3

# Any checkpoint (ZeRO-3 included) becomes a normal model folder every command loads:
# diffdis export "$OUT/checkpoints/checkpoint-2000" exported-model
