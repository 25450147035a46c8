"""Seconds per step of the real training loop, with and without the CPU speed-ups of the plain loop.

    python benchmarks/train_step_speed.py --preset tiny-patch2 --batch-size 32 --steps 10 --rounds 2
Variants run interleaved on one Trainer (world:2000, bf16 autocast by default), so they share the CPU's state:
- flash: PyTorch's default SDPA kernel, AdamW with a per-tensor loop, per-tensor EMA (the loop before this change);
- math: the math SDPA kernel in training (diffdis/train/attention_kernel.py), same optimiser and EMA;
- math+fused+foreach: also fused AdamW and foreach EMA (what the loop now does).
"""

from __future__ import annotations

import argparse
import contextlib
import time

import torch
from diffusers.training_utils import EMAModel

from diffdis.config import TrainConfig, preset
from diffdis.train import backends
from diffdis.train.loop import Trainer


def one_step(trainer: Trainer, stream, step: int) -> None:
    """What TrainingLoop.run does per step: batch, forward/backward, optimiser, EMA."""
    trainer.train_step(next(stream), step)
    trainer.backend.step()
    trainer.ema.step(trainer.params)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--preset", default="tiny-patch2")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--mixed-precision", default="bf16", choices=["no", "bf16"])
    parser.add_argument("--output-dir", default="/tmp/diffdis_step_speed")
    args = parser.parse_args()

    cfg = TrainConfig(
        data="world:2000",
        output_dir=args.output_dir,
        preset=args.preset,
        batch_size=args.batch_size,
        max_steps=1000,
        ema_decay=0.999,
        mixed_precision=args.mixed_precision,
    )
    trainer = Trainer(cfg, preset(args.preset), log=lambda s: None)
    fast_opt, fast_ema = trainer.backend.optimizer, trainer.ema
    c = cfg
    plain_opt = torch.optim.AdamW(
        trainer.params, lr=c.learning_rate, betas=(c.adam_beta1, c.adam_beta2), weight_decay=c.weight_decay
    )
    plain_ema = EMAModel(trainer.params, decay=c.ema_decay)
    variants = {
        "flash": (False, plain_opt, plain_ema),
        "math": (True, plain_opt, plain_ema),
        "math+fused+foreach": (True, fast_opt, fast_ema),
    }
    math_kernel = backends.training_attention
    stream = trainer.batches()
    for step in range(3):
        one_step(trainer, stream, step)  # warm-up
    results: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, (math, optimizer, ema) in variants.items():
            backends.training_attention = math_kernel if math else (lambda device: contextlib.nullcontext())
            trainer.backend.optimizer, trainer.backend.lr_scheduler.optimizer, trainer.ema = optimizer, optimizer, ema
            for step in range(args.steps):
                start = time.perf_counter()
                one_step(trainer, stream, step)
                results[name].append(time.perf_counter() - start)
    backends.training_attention = math_kernel
    print(
        f"{args.preset}, batch {args.batch_size}, {args.mixed_precision}, {torch.get_num_threads()} threads, "
        f"{args.rounds} rounds x {args.steps} steps each"
    )
    base = sorted(results["flash"])[len(results["flash"]) // 2]
    for name, times in results.items():
        median = sorted(times)[len(times) // 2]
        print(f"  {name:20s} median {median:.3f} s/step  min {min(times):.3f}  speed-up {base / median:.2f}x")


if __name__ == "__main__":
    main()
