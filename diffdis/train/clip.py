"""The CLIP baseline trained on the one training loop: the same data, batch order, tokenizer recipe, image
transform, optimiser and schedule as `diffdis train`, with CLIPModel's own contrastive loss
(`return_loss=True`). Checkpoints, resume, logs.jsonl and devices come with the loop.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import torch
from transformers import CLIPModel

from diffdis.data.loader import training_data
from diffdis.model.clip import MARKER, ClipBaselineConfig, build_clip, load_clip_config
from diffdis.model.locked_text_clip import PARTS, LockedTextClip
from diffdis.model.text import (
    TextEncoder,
    check_text_encoder_folder,
    load_text_tower,
    load_tokenizer,
    text_pooling,
    tokenize,
    train_tokenizer,
)
from diffdis.train.build import tokenizer_corpus
from diffdis.train.scaffold import LoopConfig, TrainedModules, TrainingLoop


class ClipTrainer(TrainingLoop):
    def __init__(
        self, cfg: ClipBaselineConfig, resume_from_checkpoint: str | None = None, log: Callable[[str], None] = print
    ) -> None:
        self.cfg = cfg
        if cfg.text_encoder:
            check_text_encoder_folder(Path(cfg.text_encoder))
        names = {f.name for f in dataclasses.fields(LoopConfig)}
        loop = LoopConfig(**{k: v for k, v in dataclasses.asdict(cfg).items() if k in names}, mixed_precision="no")
        super().__init__(loop, resume_from_checkpoint, log)

    def build(self, checkpoint: Path | None, data_state: dict | None) -> None:
        c = self.cfg
        self.data = training_data(
            c.data,
            image_size=c.image_size,
            batch_size=c.batch_size,
            seed=c.seed,
            start_step=self.start_step,
            state=data_state,
            bad_rows=c.bad_rows,
            num_workers=c.dataloader_num_workers,
            log=self.log,
        )
        if c.text_encoder:
            self.build_locked(checkpoint)
        elif checkpoint is not None:
            self.model = CLIPModel.from_pretrained(checkpoint / "model", local_files_only=True)
            self.tokenizer = load_tokenizer(checkpoint / "model" / "tokenizer")
        else:
            self.tokenizer = train_tokenizer(tokenizer_corpus(self.data.captions()), c.vocab_size, c.max_length)
            torch.manual_seed(c.seed)
            self.model = build_clip(c, self.tokenizer)
        self.model.train()

    def build_locked(self, checkpoint: Path | None) -> None:
        """The ViT against the frozen --text-encoder: from the folder, or as the checkpoint left it."""
        c = self.cfg
        if checkpoint is not None:
            c.text_pooling = load_clip_config(checkpoint / "model").text_pooling
            self.tokenizer = load_tokenizer(checkpoint / "model" / "tokenizer")
            self.model = LockedTextClip.load(checkpoint / "model", c.text_pooling, c.max_length, self.tokenizer)
            return
        text_dir = Path(c.text_encoder)
        text_model, self.tokenizer, _ = load_text_tower(text_dir)
        c.text_pooling = text_pooling(text_dir, text_model.config.model_type)
        text = TextEncoder(text_model, c.text_pooling, c.max_length, self.tokenizer.pad_token_id)
        torch.manual_seed(c.seed)
        self.model = LockedTextClip.build(text, c.image_size, c.patch_size, c.vision_width, c.vision_layers, c.heads)

    def trained_modules(self) -> TrainedModules:
        return TrainedModules(clip=self.model)

    def model_problem(self, checkpoint: Path) -> str | None:
        parts = PARTS if self.cfg.text_encoder else ("config.json", "model.safetensors", "tokenizer")
        for name in (MARKER, *parts):
            if not (checkpoint / "model" / name).exists():
                return f"model/{name} is missing"
        return None

    def train_step(self, batch: dict, step: int) -> dict[str, float]:
        pixels = batch["pixels"].to(self.device)
        ids = tokenize(self.tokenizer, batch["text"], self.cfg.max_length).to(self.device)
        out = self.backend.forward(lambda modules: modules.clip(input_ids=ids, pixel_values=pixels, return_loss=True))
        self.backend.backward(out.loss)
        accuracy = float((out.logits_per_image.argmax(-1) == torch.arange(len(ids), device=ids.device)).float().mean())
        return {"loss": out.loss.item(), "batch_accuracy": accuracy}

    def save_model(self, directory: Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        if isinstance(self.model, LockedTextClip):
            self.model.save(directory, self.tokenizer)
        else:
            self.model.save_pretrained(directory, safe_serialization=True)
            self.tokenizer.save_pretrained(directory / "tokenizer")
        (directory / MARKER).write_text(json.dumps(dataclasses.asdict(self.cfg), indent=2) + "\n", encoding="utf-8")


def train_clip(
    cfg: ClipBaselineConfig,
    callback: Callable[[int, int, dict[str, float]], None] | None = None,
    log: Callable[[str], None] = print,
    resume_from_checkpoint: str | None = None,
) -> Path:
    """Train the baseline on cfg.data and save it (safetensors + tokenizer + clip_baseline.json)."""
    return ClipTrainer(cfg, resume_from_checkpoint, log).run(callback)
