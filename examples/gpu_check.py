"""A short GPU check (a few minutes on one H200): the sd15 preset from random init, bf16, ZeRO-2.

    torchrun --nproc_per_node 1 examples/gpu_check.py [--steps 30] [--batch-size 8]
Prints samples/s over the timed steps and the peak GPU memory. Uses the built-in world dataset
(32x32 drawings, resized to 512x512), so it needs no data on disk.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch

from diffdis.config import TrainConfig, preset
from diffdis.train.loop import DeepSpeedTrainer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=8, help="global batch")
    parser.add_argument("--stage", default="zero2")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    out = tempfile.mkdtemp(prefix="diffdis-gpu-check-")
    cfg = TrainConfig(data="world:2000", output_dir=out, max_steps=args.steps, batch_size=args.batch_size,
                      mixed_precision="bf16", checkpointing_steps=10**9, learning_rate=1e-4, warmup_steps=0)  # fmt: skip
    trainer = DeepSpeedTrainer(cfg, args.stage, preset("sd15"))
    torch.cuda.reset_peak_memory_stats()
    times: list[float] = []
    for step in range(args.steps):
        torch.cuda.synchronize()
        start = time.perf_counter()
        logs = trainer.train_step(step)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
        if trainer.rank == 0 and step % 5 == 0:
            print(f"step {step}: loss {logs['loss']:.4f} ({times[-1]:.2f} s)", flush=True)
    timed = times[args.warmup :]
    if trainer.rank == 0:
        print(f"sd15 {args.stage} bf16, global batch {args.batch_size}: "
              f"{args.batch_size * len(timed) / sum(timed):.2f} samples/s, "
              f"{sum(timed) / len(timed):.3f} s/step, peak memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")  # fmt: skip


if __name__ == "__main__":
    main()
