#!/usr/bin/env bash
# DiffDis at Stable Diffusion scale with DeepSpeed ZeRO, from SD 1.x weights on disk, on streamed
# img2dataset shards. --batch-size is the GLOBAL batch (split across ranks and accumulation steps).
# On CPU machines the same commands run on the gloo backend.
#
#   SD=/path/to/stable-diffusion-v1-5 DATA='/data/cc3m/{00000..00331}.tar' bash examples/multi_gpu.sh
set -euo pipefail
GPUS=${GPUS:-8}
SD=${SD:?set SD to a local Stable Diffusion v1.x folder (unet/ vae/ text_encoder/ tokenizer/ scheduler/)}
DATA=${DATA:?set DATA to your shards, e.g. /data/cc3m/{00000..00331}.tar, a parquet folder, or an image folder}
OUT=${OUT:-runs/sd15-zero2}
CACHE=${CACHE:-}                       # optional: a frozen-encoder cache made once with `diffdis data cache`
RESUME=()
[ -f "$OUT/checkpoints/latest" ] && RESUME=(--resume-from-checkpoint latest)   # continue an interrupted run
ARGS=(train --data "${CACHE:-$DATA}" --output-dir "$OUT" --init-from "$SD" --preset sd15 --mixed-precision bf16
      --batch-size $((GPUS * 32)) --gradient-accumulation-steps 2 --gradient-checkpointing
      --learning-rate 1e-5 --scratch-learning-rate 1e-4 --max-steps 100000 --checkpointing-steps 2000
      --dataloader-num-workers 8 --ema-decay 0.9999 --report-to tensorboard "${RESUME[@]}")

# Optional, once: encode the data with the frozen VAE and text encoder, then train on CACHE (neither runs again)
# diffdis data cache --data "$DATA" --output-dir /data/cc3m-cache --init-from "$SD" --preset sd15 --device cuda

# 1) torchrun, one machine
torchrun --nproc_per_node "$GPUS" -m diffdis_cli "${ARGS[@]}" --deepspeed zero2

# 2) or the DeepSpeed launcher (--no_local_rank: diffdis reads LOCAL_RANK from the environment)
# deepspeed --num_gpus "$GPUS" --no_local_rank --module diffdis_cli "${ARGS[@]}" --deepspeed zero3

# 3) several machines: the same command on every node, OUT on a filesystem all nodes share
# torchrun --nnodes "$NODES" --node-rank "$NODE_RANK" --nproc_per_node "$GPUS" \
#          --rdzv-backend c10d --rdzv-endpoint "$HEAD_NODE:29500" -m diffdis_cli "${ARGS[@]}" --deepspeed zero2

# Any checkpoint (ZeRO-3 included) becomes a normal model folder every command loads:
# diffdis export "$OUT/checkpoints/checkpoint-2000" exported-model
