"""Train the judge of generated images (`diffdis.eval.judge.Judge`) on the one training loop.

The recipe that made the shipped weights (diffdis/eval/judge_weights/, benchmarks/train_judge.py), kept
bitwise: both heads with one summed cross-entropy; plain (unfused) AdamW with weight decay 5e-4; a one-cycle
learning rate over all steps; no gradient clipping; epochs of shuffled, augmented batches, the last one short.
One generator draws each epoch's order and every batch's augmentation, in that order.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from diffdis.data.digits import make_digits
from diffdis.data.transforms import image_to_tensor
from diffdis.data.world import make_world
from diffdis.errors import DiffDisError
from diffdis.eval.judge import IGNORE, Judge, JudgeConfig, augment, read_labelled_folder, save_judge, targets_for
from diffdis.train.scaffold import LoopConfig, TrainedModules, TrainingLoop

JUDGE_WORLD_SEED = 1234  # train split; the heldout split uses seed + 1. DiffDis's default model uses seed 0


@dataclass
class JudgeTrainConfig:
    """How the judge trains; the defaults (with `train_judge`'s data) made the shipped weights."""

    epochs: int = 5
    batch_size: int = 128
    learning_rate: float = 3e-3  # the one-cycle peak
    weight_decay: float = 5e-4
    seed: int = 0  # the weight init, the order and the augmentation
    device: str = "cpu"  # the shipped weights were trained on the CPU; another device rounds differently


class JudgeBatches:
    """Endless epochs of (augmented pixels, object targets, colour targets): a fresh order at each epoch's start,
    the last batch of an epoch short. Drawn lazily in the main process (no workers), so the one generator
    serves the orders and the augmentation in the same sequence whatever the device."""

    def __init__(
        self, pixels: Tensor, object_targets: Tensor, colour_targets: Tensor, batch_size: int, seed: int
    ) -> None:
        if len(pixels) == 0:
            raise DiffDisError("the judge was given no training images")
        self.pixels, self.object_targets, self.colour_targets = pixels, object_targets, colour_targets
        self.batch_size, self.seed = batch_size, seed

    def steps_per_epoch(self) -> int:
        return -(-len(self.pixels) // self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        generator = torch.Generator().manual_seed(self.seed)
        while True:
            order = torch.randperm(len(self.pixels), generator=generator)
            for start in range(0, len(order), self.batch_size):
                index = order[start : start + self.batch_size]
                yield augment(self.pixels[index], generator), self.object_targets[index], self.colour_targets[index]


def judge_loss(judge: Judge, pixels: Tensor, object_targets: Tensor, colour_targets: Tensor) -> Tensor:
    """Object cross-entropy, plus colour cross-entropy over the images that have a colour (digits have none)."""
    object_logits, colour_logits = judge(pixels)
    loss = F.cross_entropy(object_logits, object_targets)
    if (colour_targets != IGNORE).any():
        loss = loss + F.cross_entropy(colour_logits, colour_targets, ignore_index=IGNORE)
    return loss


class JudgeTrainer(TrainingLoop):
    """A fresh judge on labelled pixels; logs.jsonl, a checkpoint at the end and the judge folder (`load_judge`
    reads it) go to `output_dir`. One log line per epoch with its mean loss."""

    def __init__(
        self,
        pixels: Tensor,
        object_targets: Tensor,
        colour_targets: Tensor,
        output_dir: str | Path,
        config: JudgeConfig | None = None,
        train: JudgeTrainConfig | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.config, self.cfg = config or JudgeConfig(), train or JudgeTrainConfig()
        c = self.cfg
        self.data = JudgeBatches(pixels, object_targets, colour_targets, c.batch_size, c.seed)
        self.steps_per_epoch = self.data.steps_per_epoch()
        max_steps = c.epochs * self.steps_per_epoch
        loop = LoopConfig(
            output_dir=str(output_dir),
            max_steps=max_steps,
            batch_size=c.batch_size,
            seed=c.seed,
            learning_rate=c.learning_rate,
            weight_decay=c.weight_decay,
            max_grad_norm=float("inf"),
            checkpointing_steps=max_steps,
            checkpoints_total_limit=1,
            log_every=self.steps_per_epoch,
            mixed_precision="no",
            device=c.device,
        )
        self.epoch_total, self.epoch_count = 0.0, 0
        super().__init__(loop, None, log or (lambda message: None))

    def build(self, checkpoint: Path | None, data_state: dict | None) -> None:
        # self.data was made in __init__: max_steps needs its length
        with torch.random.fork_rng(devices=[]):  # the weight init is seeded without touching the caller's RNG
            torch.manual_seed(self.cfg.seed)
            self.judge = Judge(self.config)
        self.judge.train()

    def trained_modules(self) -> TrainedModules:
        return TrainedModules(judge=self.judge)

    def make_optimizer(self, groups: list[dict[str, Any]]) -> torch.optim.Optimizer:
        # unfused: the fused kernel rounds differently, and the shipped weights came from this one
        return torch.optim.AdamW(
            groups,
            lr=self.loop.learning_rate,
            betas=(self.loop.adam_beta1, self.loop.adam_beta2),
            weight_decay=self.loop.weight_decay,
        )

    def make_lr_scheduler(self, optimizer: torch.optim.Optimizer) -> Any:
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, self.loop.learning_rate, total_steps=self.loop.max_steps)

    def train_step(self, batch: tuple[Tensor, Tensor, Tensor], step: int) -> dict[str, float]:
        pixels, object_targets, colour_targets = (t.to(self.device) for t in batch)
        loss = self.backend.forward(lambda modules: judge_loss(modules.judge, pixels, object_targets, colour_targets))
        self.backend.backward(loss)
        logs = {"loss": loss.item()}
        self.epoch_total += logs["loss"] * len(pixels)
        self.epoch_count += len(pixels)
        if (step + 1) % self.steps_per_epoch == 0:
            logs["epoch_loss"] = mean = self.epoch_total / self.epoch_count
            self.log(f"judge epoch {(step + 1) // self.steps_per_epoch}/{self.cfg.epochs} loss {mean:.4f}")
            self.epoch_total, self.epoch_count = 0.0, 0
        return logs

    def save_model(self, directory: Path) -> None:
        save_judge(self.judge, directory)


def training_data(
    out_dir: Path,
    world_images: int,
    heldout_images: int,
    world_seed: int = JUDGE_WORLD_SEED,
    digits_limit: int | None = None,
) -> tuple[list[Image.Image], list[dict]]:
    """The judge's own training images: world train and heldout splits (its own seeds), digits train split, all
    in the plain style the shipped judge was trained on (worlds before version 2), so it retrains bit for bit."""
    out_dir = Path(out_dir)
    folders = [make_world(out_dir / "world", world_images, seed=world_seed, split="train", style="plain")]
    if heldout_images:
        folders.append(
            make_world(out_dir / "heldout", heldout_images, seed=world_seed + 1, split="heldout", style="plain")
        )
    folders.append(make_digits(out_dir / "digits", "train", limit=digits_limit, style="plain"))
    images: list[Image.Image] = []
    rows: list[dict] = []
    for folder in folders:
        more_images, more_rows = read_labelled_folder(folder)
        images.extend(more_images)
        rows.extend(more_rows)
    return images, rows


def train_judge(
    world_images: int = 10000,
    heldout_images: int = 2000,
    digits_limit: int | None = None,
    digits_repeat: int = 2,
    world_seed: int = JUDGE_WORLD_SEED,
    config: JudgeConfig | None = None,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
    **train_args: Any,
) -> Judge:
    """A judge trained from scratch, in eval mode; the same arguments give the same weights on the same machine.
    `train_args`: the rest of `JudgeTrainConfig` (epochs, batch_size, learning_rate, ...). The few digits (1,438
    train images) are repeated `digits_repeat` times per epoch so they are not drowned."""
    config = config or JudgeConfig()
    with tempfile.TemporaryDirectory(prefix="diffdis-judge-") as tmp:
        images, rows = training_data(Path(tmp) / "data", world_images, heldout_images, world_seed, digits_limit)
        repeat = [digits_repeat if "label_name" in row else 1 for row in rows]
        pixels = torch.stack([image_to_tensor(im, config.image_size) for im in images])
        object_targets, colour_targets = targets_for(rows, config)
        index = torch.from_numpy(np.repeat(np.arange(len(rows)), repeat))
        trainer = JudgeTrainer(
            pixels[index],
            object_targets[index],
            colour_targets[index],
            Path(tmp) / "run",
            config,
            JudgeTrainConfig(seed=seed, **train_args),
            log,
        )
        trainer.run()
    return trainer.judge.eval()
