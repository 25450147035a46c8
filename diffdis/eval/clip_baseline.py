"""The CLIP baseline of `diffdis eval`: transformers' own CLIPModel trained on the same data and steps.

A ViT image tower and a CLIP text tower sized like the tiny presets' discriminative path, trained with
CLIPModel's built-in contrastive loss (`return_loss=True`), the same tokenizer recipe, batch order, image
transform, optimiser and schedule as `diffdis train`. `ClipBaseline` answers the calls the eval harness makes
of a DiffDis pipeline (`image_queries`, `encode_text`, `zero_shot_classifier`), so DiffDis and CLIP are scored
by the same code on the same labels and templates. open_clip is not used: it needs torchvision.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from diffusers.optimization import SchedulerType, get_scheduler
from PIL import Image
from transformers import CLIPConfig, CLIPModel

from diffdis.config import InferenceConfig
from diffdis.data.captions import check_rows, load_captioned
from diffdis.data.transforms import image_to_tensor
from diffdis.errors import DiffDisError, UsageError
from diffdis.model.text import load_tokenizer, tokenize, train_tokenizer
from diffdis.pipeline import zero_shot_weights

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
    max_steps: int = 1000
    batch_size: int = 32
    learning_rate: float = 5e-4
    weight_decay: float = 0.01
    warmup_steps: int = 50
    lr_scheduler: str = "cosine"
    max_grad_norm: float = 1.0
    seed: int = 0
    bad_rows: str = "error"

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
    text = dict(vocab_size=len(tokenizer), hidden_size=cfg.text_width, intermediate_size=4 * cfg.text_width,
                num_hidden_layers=cfg.text_layers, num_attention_heads=cfg.heads, max_position_embeddings=cfg.max_length,
                bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)  # fmt: skip
    vision = dict(hidden_size=cfg.vision_width, intermediate_size=4 * cfg.vision_width, num_hidden_layers=cfg.vision_layers,
                  num_attention_heads=cfg.heads, image_size=cfg.image_size, patch_size=cfg.patch_size)  # fmt: skip
    return CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=cfg.text_width))


def train_clip(
    cfg: ClipBaselineConfig,
    callback: Callable[[int, int, dict[str, float]], None] | None = None,
    log: Callable[[str], None] = print,
) -> Path:
    """Train the baseline on cfg.data and save it (safetensors + tokenizer + clip_baseline.json)."""
    from diffdis.train.loop import batch_indices, tokenizer_corpus

    dataset = check_rows(load_captioned(cfg.data), cfg.bad_rows, log)
    if cfg.batch_size > len(dataset):
        raise DiffDisError(f"batch size {cfg.batch_size} exceeds the {len(dataset)} rows of {cfg.data}")
    tokenizer = train_tokenizer(tokenizer_corpus([str(t or "") for t in dataset["text"]]), cfg.vocab_size, cfg.max_length)
    torch.manual_seed(cfg.seed)
    model = build_clip(cfg, tokenizer)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    schedule = get_scheduler(cfg.lr_scheduler, optimizer, num_warmup_steps=cfg.warmup_steps, num_training_steps=cfg.max_steps)
    model.train()
    for step in range(cfg.max_steps):
        started = time.perf_counter()
        rows = dataset[batch_indices(step, len(dataset), cfg.batch_size, cfg.seed)]
        pixels = torch.stack([image_to_tensor(im, cfg.image_size) for im in rows["image"]])
        ids = tokenize(tokenizer, [str(t or "") for t in rows["text"]], cfg.max_length)
        out = model(input_ids=ids, pixel_values=pixels, return_loss=True)
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm))
        optimizer.step()
        schedule.step()
        accuracy = float((out.logits_per_image.argmax(-1) == torch.arange(len(ids))).float().mean())
        logs = {"loss": out.loss.item(), "batch_accuracy": accuracy, "grad_norm": grad_norm,
                "lr": schedule.get_last_lr()[0], "seconds_per_step": time.perf_counter() - started}  # fmt: skip
        if callback is not None:
            callback(step + 1, cfg.max_steps, logs)
    out_dir = Path(cfg.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir / "tokenizer")
    (out_dir / MARKER).write_text(json.dumps(dataclasses.asdict(cfg), indent=2) + "\n", encoding="utf-8")
    return out_dir


def _projected(out: Any) -> torch.Tensor:
    """get_*_features returns the projected tensor (transformers 4) or an output whose pooler_output it is (5)."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output


def is_clip_baseline(path: str | Path) -> bool:
    return (Path(path) / MARKER).is_file()


class ClipBaseline:
    """A trained baseline folder, answering the eval harness like a DiffDis pipeline (one pass per image)."""

    def __init__(self, model: CLIPModel, tokenizer, cfg: ClipBaselineConfig, name: str) -> None:
        self.model, self.tokenizer, self.cfg = model.eval(), tokenizer, cfg
        self.card = {"name": name, "model_version": "clip-baseline"}
        # the harness sweeps sampler settings; CLIP has none, so every run is one encoder pass
        self.inference = InferenceConfig(query_scheduler="none", query_steps=1, query_guidance=1.0)

    @classmethod
    def from_pretrained(cls, path: str | Path) -> ClipBaseline:
        folder = Path(path)
        if not is_clip_baseline(folder):
            raise UsageError(f"{folder} is not a CLIP baseline folder (no {MARKER}); train one with diffdis eval train-clip")
        fields = json.loads((folder / MARKER).read_text(encoding="utf-8"))
        cfg = ClipBaselineConfig(**{k: v for k, v in fields.items() if k in {f.name for f in dataclasses.fields(ClipBaselineConfig)}})
        model = CLIPModel.from_pretrained(folder, local_files_only=True)
        return cls(model, load_tokenizer(folder / "tokenizer"), cfg, folder.resolve().name)

    @torch.no_grad()
    def encode_text(self, texts: Sequence[str], batch_size: int = 256) -> tuple[None, torch.Tensor]:
        """(None, e (N, d) unit norm): CLIP has no token condition c."""
        parts = []
        for i in range(0, len(texts), batch_size):
            ids = tokenize(self.tokenizer, list(texts[i : i + batch_size]), self.cfg.max_length)
            parts.append(F.normalize(_projected(self.model.get_text_features(input_ids=ids)).float(), dim=-1))
        return None, torch.cat(parts)

    def zero_shot_classifier(self, labels: Sequence[str], templates: Sequence[str]) -> torch.Tensor:
        return zero_shot_weights(self.encode_text, labels, templates)

    @torch.no_grad()
    def image_queries(self, images: Sequence[Image.Image], batch_size: int = 64, callback=None, **_sampling: Any) -> torch.Tensor:
        """(N, d) unit-norm image embeddings; the sampler arguments DiffDis takes are accepted and unused."""
        out, done = [], 0
        for start in range(0, len(images), batch_size):
            chunk = images[start : start + batch_size]
            pixels = torch.stack([image_to_tensor(im, self.cfg.image_size) for im in chunk])
            out.append(F.normalize(_projected(self.model.get_image_features(pixel_values=pixels)).float(), dim=-1))
            done += len(chunk)
            if callback is not None:
                callback(done, len(images))
        return torch.cat(out)
