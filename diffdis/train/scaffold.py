"""The one training loop of diffdis, plain or under DeepSpeed: DiffDis, the autoencoder, the CLIP baseline, the judge.

A subclass says what trains and how: `build` (the modules, fresh or from a checkpoint's model folder, and
the batches), `trained_modules`, `parameter_groups`, `train_step` (forward and backward of one global batch through
`self.backend`) and `save_model`. This base owns the rest: device and precision, the optimiser and LR schedule
(`PlainBackend` or DeepSpeed's engine), an fp32 EMA, atomic checkpoints with resume (data position included),
logs.jsonl / TensorBoard, and periodic validation.

Deterministic from the seed: the batch at step s (map-style data) and all noise of step s are functions of
(seed, s), so a resumed run continues the same curve.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers.training_utils import EMAModel

from diffdis.errors import DiffDisError
from diffdis.train.backends import PlainBackend, TrainedModules, fused_adamw, lr_schedule, mixed_precision_for
from diffdis.train.checkpoint import find_checkpoint, read_step, save_checkpoint
from diffdis.train.reporting import Reporter, peak_memory_gib

StepCallback = Callable[[int, int, dict[str, float]], None]


@dataclass
class LoopConfig:
    """What the loop needs of any trainer's config."""

    output_dir: str
    max_steps: int
    batch_size: int  # the global batch of one optimiser step
    seed: int = 0
    learning_rate: float = 3e-4
    weight_decay: float = 0.01
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    lr_scheduler: str = "cosine"
    warmup_steps: int = 50
    max_grad_norm: float = 1.0
    ema_decay: float | None = None
    checkpointing_steps: int = 500
    checkpoints_total_limit: int | None = 3
    log_every: int = 10
    mixed_precision: str = "auto"  # auto | no | bf16 | fp16 (fp16: DeepSpeed only)
    gradient_accumulation_steps: int = 1
    device: str = "auto"
    report_to: str = "none"  # none | tensorboard
    validation_every: int | None = None


class TrainingLoop:
    loop: LoopConfig

    def __init__(
        self,
        loop: LoopConfig,
        resume_from_checkpoint: str | None = None,
        log: Callable[[str], None] = print,
        deepspeed: str | None = None,
    ) -> None:
        self.loop = loop
        self.deepspeed_spec = deepspeed
        self.rank, self.world_size = self._ranks(loop, deepspeed)
        self.log = log if self.rank == 0 else (lambda message: None)
        self.device = self._device()
        self.mixed_precision = mixed_precision_for(loop.mixed_precision, self.device, bool(deepspeed))
        self.checkpoint = (
            find_checkpoint(Path(loop.output_dir), resume_from_checkpoint, log, self.model_problem)
            if resume_from_checkpoint
            else None
        )
        self.start_step = read_step(self.checkpoint) if self.checkpoint is not None else 0
        if self.checkpoint is not None:
            self.log(f"resuming from {self.checkpoint}")
        self.build(self.checkpoint, self._data_state())
        self.trained = self.trained_modules()
        self.params = [p for p in self.trained.parameters() if p.requires_grad]
        # EMA in fp32, built before DeepSpeed casts the weights: a bf16 shadow cannot take a 0.999 update
        self.ema = (
            EMAModel([p.detach().float() for p in self.params], decay=loop.ema_decay, foreach=not deepspeed)
            if loop.ema_decay
            else None
        )
        self.backend = self._backend(loop, deepspeed)
        self.device = self.backend.device  # DeepSpeed places the weights on its own device
        self.move_frozen(self.device)
        if self.ema is not None:
            self.ema.to(self.device)
        if self.checkpoint is not None:
            self._restore(self.checkpoint)
        self.reporter = Reporter(Path(loop.output_dir), loop.report_to, self.rank == 0, self.start_step)

    @staticmethod
    def _ranks(loop: LoopConfig, deepspeed: str | None) -> tuple[int, int]:
        """(rank, world size), after the checks that need them: every rank its share of whole micro-batches."""
        if loop.gradient_accumulation_steps < 1:
            raise DiffDisError(
                f"gradient-accumulation-steps must be at least 1, got {loop.gradient_accumulation_steps}"
            )
        rank, world_size = 0, 1
        if deepspeed:
            from diffdis.train.deepspeed import check_shared_output, init_distributed

            rank, world_size = init_distributed()
            check_shared_output(Path(loop.output_dir), rank, world_size)
        if loop.batch_size % (world_size * loop.gradient_accumulation_steps):
            raise DiffDisError(
                f"--batch-size {loop.batch_size} (the global batch) must be divisible by {world_size} rank(s) "
                f"x {loop.gradient_accumulation_steps} accumulation step(s)"
            )
        return rank, world_size

    def _backend(self, loop: LoopConfig, deepspeed: str | None) -> Any:
        """The optimiser side: a DeepSpeed engine (it places the weights), or plain AdamW on self.device."""
        if deepspeed:
            from diffdis.train.deepspeed import DeepSpeedBackend

            return DeepSpeedBackend(
                self.trained, self.parameter_groups(), loop, deepspeed, self.world_size, self.mixed_precision
            )
        self.trained.to(self.device)
        return PlainBackend(
            self.trained,
            self.parameter_groups(),
            loop,
            self.device,
            self.mixed_precision,
            self.make_optimizer,
            self.make_lr_scheduler,
        )

    # ---- what a subclass provides -------------------------------------------------------------------------
    def build(self, checkpoint: Path | None, data_state: dict | None) -> None:
        """Make the modules (fresh, or from `checkpoint`'s model folder) and `self.data`, the batches from
        `self.start_step` on (`data_state`: the position a checkpoint saved for this rank, if any)."""
        raise NotImplementedError

    def trained_modules(self) -> TrainedModules:
        raise NotImplementedError

    def parameter_groups(self) -> list[dict[str, Any]]:
        return [{"params": self.params}]

    def make_optimizer(self, groups: list[dict[str, Any]]) -> torch.optim.Optimizer:
        """The plain loop's optimiser over `groups` (DeepSpeed builds its own from its config)."""
        return fused_adamw(groups, self.loop, self.device)

    def make_lr_scheduler(self, optimizer: torch.optim.Optimizer) -> Any:
        """The plain loop's LR schedule, stepped once per optimiser step (DeepSpeed takes diffusers' by name)."""
        return lr_schedule(self.loop)(optimizer)

    def move_frozen(self, device: torch.device) -> None:
        """Move what does not train (a VAE, a frozen text encoder) beside the trained modules."""

    def train_step(self, batch: Any, step: int) -> dict[str, float]:
        """Forward and backward of the global batch of `step` (the backend's `forward` and `backward`)."""
        raise NotImplementedError

    def save_model(self, directory: Path) -> None:
        raise NotImplementedError

    def model_problem(self, checkpoint: Path) -> str | None:
        """Why a checkpoint's model folder is incomplete, or None (checked when resuming)."""
        return None

    def validate(self, step: int) -> dict[str, float]:
        return {}

    # ---- the loop ------------------------------------------------------------------------------------------
    def _device(self) -> torch.device:
        from diffdis.device import enable_tf32, resolve_device

        if self.deepspeed_spec:  # DeepSpeed's accelerator: the local rank's GPU, or the CPU
            device = (
                torch.device(f"cuda:{os.environ.get('LOCAL_RANK', '0')}")
                if torch.cuda.is_available()
                else torch.device("cpu")
            )
        else:
            device = resolve_device(self.loop.device)
        enable_tf32(device)
        return device

    def _data_state(self) -> dict | None:
        if self.checkpoint is None:
            return None
        path = self.checkpoint / "data" / f"rank-{self.rank}.pt"
        return torch.load(path, weights_only=True) if path.is_file() else None

    def _restore(self, checkpoint: Path) -> None:
        state = self.backend.load(checkpoint)
        if self.ema is not None:
            if "ema" not in state:
                raise DiffDisError(
                    f"{checkpoint} holds no EMA state: resume without --ema-decay or from another checkpoint"
                )
            self.ema.load_state_dict(state["ema"])

    def batches(self) -> Iterator[Any]:
        return iter(self.data)

    def run(self, callback: StepCallback | None = None) -> Path:
        loop = self.loop
        if self.start_step > loop.max_steps:
            raise DiffDisError(f"the checkpoint is at step {self.start_step}, beyond --max-steps {loop.max_steps}")
        if self.start_step == loop.max_steps:  # killed after the last checkpoint, before the model folder was written
            self.log(f"the checkpoint is at --max-steps {loop.max_steps}: writing the final model folder")
        stream = self.batches()
        for step in range(self.start_step, loop.max_steps):
            started = time.perf_counter()
            batch = next(stream)
            logs = self.train_step(batch, step)
            logs["grad_norm"] = self.backend.step()
            if self.ema is not None:
                self.ema.step(self.params)
            seconds = time.perf_counter() - started
            logs.update(
                lr=self.backend.lr(),
                seconds_per_step=seconds,
                samples_per_second=loop.batch_size / seconds,
                peak_memory_gib=peak_memory_gib(self.device),
            )
            if callback is not None:
                callback(step + 1, loop.max_steps, logs)
            if (step + 1) % loop.log_every == 0 or step + 1 == loop.max_steps:
                self.reporter.write(step + 1, logs)
            if (step + 1) % loop.checkpointing_steps == 0 or step + 1 == loop.max_steps:
                self.save_checkpoint(step + 1)
            if loop.validation_every and (step + 1) % loop.validation_every == 0:
                self.reporter.write(step + 1, self._validate(step + 1), validation=True)
        self._save_final(Path(loop.output_dir))
        self.reporter.close()
        return Path(loop.output_dir)

    def _validate(self, step: int) -> dict[str, float]:
        with self.backend.gathered():
            return self.validate(step)

    def _with_ema(self, save: Callable[[Path], None], directory: Path) -> None:
        """The model folder holds EMA weights when EMA is on (as diffusers' scripts export)."""
        if self.ema is None:
            save(directory)
            return
        self.ema.store(self.params)
        self.ema.copy_to(self.params)
        try:
            save(directory)
        finally:
            self.ema.restore(self.params)

    def _save_final(self, directory: Path) -> None:
        with self.backend.gathered():
            if self.rank == 0:
                self._with_ema(self.save_model, directory)
        self.backend.barrier()

    def save_checkpoint(self, step: int) -> Path:
        """The checkpoint's model folder holds the raw (non-EMA) weights: resume continues from them."""
        client = {"ema": self.ema.state_dict()} if self.ema is not None else {}
        data_state = self.data.state_dict() if hasattr(self.data, "state_dict") else None
        return save_checkpoint(
            Path(self.loop.output_dir),
            step,
            self.save_model,
            self.backend,
            client,
            data_state,
            self.rank,
            self.loop.checkpoints_total_limit,
        )
