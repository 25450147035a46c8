"""The CLIP baseline's configuration and network: transformers' own CLIPModel, a ViT image tower and a CLIP text
tower sized like the tiny presets' discriminative path, or with `text_encoder` set, the same ViT against a frozen
pretrained text tower (`diffdis.model.locked_text_clip`). Trained by `diffdis.train.clip`, scored by
`diffdis.baselines.clip_baseline`. open_clip is not used: it needs torchvision.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

from diffusers.optimization import SchedulerType
from transformers import CLIPConfig, CLIPModel

from diffdis.config import read_json_object
from diffdis.errors import UsageError

MARKER = "clip_baseline.json"


@dataclass
class ClipBaselineConfig:
    """Towers and training; saved as clip_baseline.json beside the CLIPModel weights."""

    data: str = ""
    output_dir: str = ""
    image_size: int = 32
    patch_size: int = 4
    vision_width: int = 256
    vision_layers: int = 6
    text_width: int = 256
    text_layers: int = 4
    heads: int = 4
    max_length: int = 32
    vocab_size: int = 4096
    text_encoder: str = ""  # a local transformers text model, frozen; "" trains a CLIP text tower from scratch
    text_pooling: str = ""  # how the frozen encoder's tokens pool to e (set from its folder at build)
    max_steps: int = 1000
    batch_size: int = 32
    learning_rate: float = 5e-4
    weight_decay: float = 0.01
    warmup_steps: int = 50
    lr_scheduler: str = "cosine"
    max_grad_norm: float = 1.0
    seed: int = 0
    bad_rows: str = "error"
    checkpointing_steps: int = 500
    log_every: int = 50
    dataloader_num_workers: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        for name in ("image_size", "patch_size", "max_steps", "batch_size", "vocab_size", "max_length"):
            if getattr(self, name) <= 0:
                raise UsageError(f"{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        if self.image_size % self.patch_size:
            raise UsageError(f"patch-size {self.patch_size} must divide image-size {self.image_size}")
        if not 0 < self.learning_rate < float("inf"):
            raise UsageError(f"learning-rate must be positive, got {self.learning_rate}")
        schedules = [s.value for s in SchedulerType]
        if self.lr_scheduler not in schedules:
            raise UsageError(f"unknown --lr-scheduler {self.lr_scheduler!r}; choose one of: {', '.join(schedules)}")


def build_clip(cfg: ClipBaselineConfig, tokenizer) -> CLIPModel:
    text = dict(
        vocab_size=len(tokenizer),
        hidden_size=cfg.text_width,
        intermediate_size=4 * cfg.text_width,
        num_hidden_layers=cfg.text_layers,
        num_attention_heads=cfg.heads,
        max_position_embeddings=cfg.max_length,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    vision = dict(
        hidden_size=cfg.vision_width,
        intermediate_size=4 * cfg.vision_width,
        num_hidden_layers=cfg.vision_layers,
        num_attention_heads=cfg.heads,
        image_size=cfg.image_size,
        patch_size=cfg.patch_size,
    )
    return CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=cfg.text_width))


def load_clip_config(folder: Path) -> ClipBaselineConfig:
    """The clip_baseline.json a baseline folder (or a checkpoint's model/) was saved with; unknown keys skipped."""
    stored = read_json_object(folder / MARKER, "; restore it from the original baseline folder")
    names = {f.name for f in fields(ClipBaselineConfig)}
    return ClipBaselineConfig(**{k: v for k, v in stored.items() if k in names})


def is_clip_baseline(path: str | Path) -> bool:
    return (Path(path) / MARKER).is_file()
