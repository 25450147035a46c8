"""DiffDis training on the one training loop (`scaffold.py`): what trains, how a batch becomes gradients.

The model starts from scratch (a BPE tokenizer trained on the captions), from pretrained weights
(`--init-from SD_DIR`, `--text-encoder DIR`), or from a checkpoint. Batches come from `diffdis.data.loader`
(image folders, files, built-in sets, streamed shards) or from a frozen-encoder cache (`diffdis.data.cache`),
in which case neither the VAE nor the text encoder runs. Each step draws its noise from (seed, step)
(`losses.StepNoise`) and runs the unified loss through `accumulation.accumulate` (K micro-batches, InfoNCE
over the whole batch).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from diffdis.config import ModelConfig, TrainConfig
from diffdis.data.loader import training_data
from diffdis.diffusion.schedule import training_scheduler
from diffdis.errors import DiffDisError
from diffdis.pipeline import DiffDisPipeline
from diffdis.train.accumulation import accumulate
from diffdis.train.backends import check_lr_scheduler
from diffdis.train.build import build_training_pipeline
from diffdis.train.checkpoint import diffdis_model_problem
from diffdis.train.losses import (
    StepNoise,
    TextInputs,
    UnifiedLossSettings,
    encode_latents,
    posterior_generator,
    unified_forward,
)
from diffdis.train.scaffold import LoopConfig, StepCallback, TrainedModules, TrainingLoop


def step_generator(seed: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


def loop_config(c: TrainConfig) -> LoopConfig:
    names = {f.name for f in dataclasses.fields(LoopConfig)}
    return LoopConfig(**{k: v for k, v in dataclasses.asdict(c).items() if k in names})


class Trainer(TrainingLoop):
    """Train DiffDis: `Trainer(cfg, model_config).run()` writes the model folder to cfg.output_dir."""

    def __init__(
        self,
        train_config: TrainConfig,
        model_config: ModelConfig | None = None,
        resume_from_checkpoint: str | None = None,
        log: Callable[[str], None] = print,
        deepspeed: str | None = None,
    ) -> None:
        check_lr_scheduler(train_config.lr_scheduler)
        self.cfg, self.model_config = train_config, model_config
        super().__init__(loop_config(train_config), resume_from_checkpoint, log, deepspeed)

    # ---- building -----------------------------------------------------------------------------------------
    def build(self, checkpoint: Path | None, data_state: dict | None) -> None:
        c = self.cfg
        from diffdis.data.cache import is_cache

        self.cache, self.data = None, None
        if is_cache(c.data):
            from diffdis.data.cache import CachedRows

            self.cache = CachedRows(c.data)
        if checkpoint is not None:
            pipe = DiffDisPipeline.from_pretrained(checkpoint / "model")
        else:

            def captions(image_size: int) -> list[str]:  # opened here only for a from-scratch tokenizer
                self.data = self._open_data(image_size, data_state)
                return self.data.captions()

            pipe = build_training_pipeline(c, self.model_config, captions, self.cache is not None, self.log)
        pipe.training = c
        self.pipe = pipe
        if self.cache is not None:
            from diffdis.data.cache import check_cache

            if pipe.config.text_encoder_trainable:
                raise DiffDisError(
                    f"{c.data} is a frozen-encoder cache: it needs a frozen text encoder (drop --train-text-encoder)"
                )
            check_cache(c.data, pipe)
        if self.data is None:  # a from-scratch model opened it already, for its tokenizer's captions
            self.data = self._open_data(pipe.config.image_size, data_state)
        if c.gradient_checkpointing:
            pipe.model.enable_gradient_checkpointing()
        if not pipe.config.text_encoder_trainable:
            pipe.text_encoder.requires_grad_(False)
        self.scheduler = training_scheduler(pipe.config.schedule)
        self.query_timesteps = training_scheduler(pipe.config.query_noise_schedule).config.num_train_timesteps
        self.settings = UnifiedLossSettings(
            c.tasks, c.loss_alignment_weight, c.condition_dropout, c.image_dropout, c.snr_gamma, c.query_self_condition
        )

    def _open_data(self, image_size: int, state: dict | None) -> Any:
        c = self.cfg
        common = dict(
            batch_size=c.batch_size,
            rank=self.rank,
            world_size=self.world_size,
            seed=c.seed,
            num_workers=c.dataloader_num_workers,
            start_step=self.start_step,
            state=state,
            pin_memory=self.device.type == "cuda",
        )
        if self.cache is not None:
            from diffdis.data.loader import cached_training_data

            return cached_training_data(self.cache, **common)
        return training_data(
            c.data,
            image_size=image_size,
            image_column=c.image_column,
            caption_column=c.caption_column,
            bad_rows=c.bad_rows,
            max_bad_fraction=c.max_bad_fraction,
            shuffle_buffer=c.shuffle_buffer,
            log=self.log,
            **common,
        )

    def trained_modules(self) -> TrainedModules:
        trained = {"model": self.pipe.model}
        if self.pipe.config.text_encoder_trainable:
            trained["text_encoder"] = self.pipe.text_encoder
        return TrainedModules(**trained)

    def parameter_groups(self) -> list[dict[str, Any]]:
        from diffdis.train.param_groups import parameter_groups

        c, model = self.cfg, self.pipe.model
        modules = {"unet": (model.unet, bool(c.init_from)), "discriminator": (model.discriminator, False)}
        if self.pipe.config.text_encoder_trainable:
            modules["text_encoder"] = (self.pipe.text_encoder, bool(c.init_from or c.text_encoder))
        return parameter_groups(modules, c.learning_rate, c.scratch_learning_rate, c.weight_decay)

    def move_frozen(self, device: torch.device) -> None:
        self.pipe.autoencoder.to(device)
        if not self.pipe.config.text_encoder_trainable:
            self.pipe.text_encoder.to(device)
        self.null_ids = self.pipe.token_ids([""]).to(device)
        if self.cache is not None:  # the empty caption's c, read once: the cache stands in for the text encoder
            self.null_condition = self.cache.null_condition()[0].to(device)

    def model_problem(self, checkpoint: Path) -> str | None:
        return diffdis_model_problem(checkpoint)

    # ---- one step -----------------------------------------------------------------------------------------
    def _inputs(self, batch: dict, generator: torch.Generator, offset: int) -> tuple[TextInputs, torch.Tensor]:
        """This rank's text inputs and clean latents z (no gradients: the VAE is frozen)."""
        device, dtype = self.device, self.backend.compute_dtype
        if self.cache is not None:
            from diffdis.data.cache import sample_latents

            latents = sample_latents(
                batch["latent_mean"],
                batch["latent_std"],
                self.pipe.autoencoder.scaling_factor,
                posterior_generator(generator, offset),
            )
            text = TextInputs(
                condition=batch["condition"].to(device),
                query=batch["query"].to(device),
                null_condition=self.null_condition,
            )
            return text, latents.to(device, dtype)
        images = batch["pixels"].to(device, dtype, non_blocking=True)
        # the frozen VAE in bf16 too when the step is: ~20% of an SD step's FLOPs at 512^2 (examples/gpu_check.py)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.mixed_precision == "bf16"):
            latents = encode_latents(self.pipe.autoencoder, images, generator, offset)
        return TextInputs(self.pipe.token_ids(batch["text"]).to(device), self.null_ids), latents

    def train_step(self, batch: dict, step: int) -> dict[str, float]:
        self.pipe.model.train()
        self.pipe.text_encoder.train(self.pipe.config.text_encoder_trainable)
        rows = self.cfg.batch_size // self.world_size
        offset = self.rank * rows
        generator = step_generator(self.cfg.seed, step)
        text, latents = self._inputs(batch, generator, offset)
        noise = StepNoise.draw(
            generator,
            self.settings,
            self.scheduler.config.num_train_timesteps,
            (offset, rows, self.cfg.batch_size),
            tuple(latents.shape[1:]),
            self.pipe.config.query_dim,
            self.query_timesteps,
        )
        frozen_text = self.pipe.text_encoder

        def run(modules, text, latents, noise, settings):
            text_encoder = getattr(modules, "text_encoder", frozen_text)
            return unified_forward(modules.model, text_encoder, self.scheduler, text, latents, noise, settings)

        def forward(text, latents, noise, settings):
            return self.backend.forward(run, text, latents, noise, settings)

        logs = accumulate(
            forward, self.backend.backward, text, latents, noise, self.settings, self.cfg.gradient_accumulation_steps
        )
        logs["bad_rows"] = float(batch.get("bad", 0))
        if self.world_size > 1:  # log the global-batch means, as one process would (bad rows: the sum)
            names = sorted(logs)
            values = torch.tensor([logs[k] for k in names], dtype=torch.float64)
            dist.all_reduce(values)
            logs = dict(zip(names, (values / self.world_size).tolist()))
            logs["bad_rows"] *= self.world_size
        return logs

    # ---- output -------------------------------------------------------------------------------------------
    def save_model(self, directory: Path) -> None:
        self.pipe.save_pretrained(directory)

    def validate(self, step: int) -> dict[str, float]:
        if self.rank != 0:
            return {}
        from diffdis.train.validation import validate

        return validate(self.pipe, self.cfg, Path(self.cfg.output_dir) / "validation", step)


class DeepSpeedTrainer(Trainer):
    """`Trainer` under DeepSpeed (the same as `Trainer(..., deepspeed=spec)`)."""

    def __init__(
        self,
        train_config: TrainConfig,
        deepspeed: str,
        model_config: ModelConfig | None = None,
        resume_from_checkpoint: str | None = None,
        log: Callable[[str], None] = print,
    ) -> None:
        super().__init__(train_config, model_config, resume_from_checkpoint, log, deepspeed=deepspeed)


def train(
    train_config: TrainConfig,
    model_config: ModelConfig | None = None,
    resume_from_checkpoint: str | None = None,
    callback: StepCallback | None = None,
    log: Callable[[str], None] = print,
    deepspeed: str | None = None,
) -> Path:
    """Train and write the model folder to OUTPUT_DIR (checkpoints go to OUTPUT_DIR/checkpoints)."""
    return Trainer(train_config, model_config, resume_from_checkpoint, log, deepspeed).run(callback)
