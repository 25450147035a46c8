"""Seconds per training step of a preset: unified (both tasks) vs generation-only vs discrimination-only.

    python benchmarks/train_step.py --preset tiny --batch-size 32 --steps 5
Random data of the preset's shape; forward + backward + AdamW step; the first step is a warm-up and not timed.
"""

from __future__ import annotations

import argparse
import time

import torch

from diffdis.config import preset
from diffdis.diffusion.schedule import training_scheduler
from diffdis.model.text import train_tokenizer
from diffdis.pipeline import DiffDisPipeline
from diffdis.train.build import tokenizer_corpus
from diffdis.train.losses import UnifiedLossSettings, unified_loss


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()

    torch.manual_seed(0)
    cfg = preset(args.preset)
    tokenizer = train_tokenizer(tokenizer_corpus(["a red circle"]), 4096, cfg.text_encoder["max_position_embeddings"])
    pipe = DiffDisPipeline.build(cfg, tokenizer)
    params = list(pipe.model.parameters()) + list(pipe.text_encoder.parameters())
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    scheduler = training_scheduler(cfg.schedule)
    ids = pipe.token_ids(["a small red car on a blue background"] * args.batch_size)
    null = pipe.token_ids([""])
    images = torch.rand(args.batch_size, 3, cfg.image_size, cfg.image_size) * 2 - 1
    count = lambda m: sum(p.numel() for p in m.parameters()) / 1e6  # noqa: E731
    print(
        f"{args.preset}: UNet {count(pipe.model.unet):.2f}M, new modules {count(pipe.model.discriminator):.2f}M, "
        f"text encoder {count(pipe.text_encoder):.2f}M; batch {args.batch_size}, {torch.get_num_threads()} threads"
    )
    pipe.model.train()
    pipe.text_encoder.train()
    results = {}
    for tasks in ("both", "gen", "disc"):
        settings = UnifiedLossSettings(tasks=tasks)
        times = []
        for step in range(args.steps + 1):
            start = time.perf_counter()
            loss, _ = unified_loss(
                pipe.model,
                pipe.text_encoder,
                pipe.autoencoder,
                scheduler,
                ids,
                null,
                images,
                settings,
                torch.Generator().manual_seed(step),
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            times.append(time.perf_counter() - start)
        results[tasks] = sorted(times[1:])[len(times[1:]) // 2]
        print(f"  tasks={tasks:4s}  median {results[tasks]:.3f} s/step")
    print(f"  unified / generation-only = {results['both'] / results['gen']:.2f}x")


if __name__ == "__main__":
    main()
