"""Validation during training: a grid of samples for `--validation-prompts` and a held-out zero-shot caption
accuracy on `--validation-data`, written to OUTPUT_DIR/validation/step-N.{png,json} (rank 0 only).

The caption accuracy is zero-shot retrieval over the held-out rows: each image's diffused text query is
compared with every distinct caption of the set, and a hit is the image's own caption ranked first.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch

from diffdis.atomic import write_atomic, write_json_atomic
from diffdis.config import TrainConfig
from diffdis.data.transforms import image_grid

VALIDATION_ROWS = 256


@lru_cache(maxsize=2)
def _held_out(data: str, image_column: str, caption_column: str) -> tuple[list, list[str]]:
    from diffdis.data.captions import load_captioned

    ds = load_captioned(data, image_column, caption_column)
    rows = ds[: min(VALIDATION_ROWS, len(ds))]
    return list(rows["image"]), [str(t or "") for t in rows["text"]]


def caption_accuracy(pipe, images: list, captions: list[str]) -> float:
    """Fraction of images whose own caption scores highest among the set's distinct captions."""
    distinct = sorted(set(captions))
    scores = pipe.retrieve(images, distinct)  # (N, K)
    best = scores.argmax(dim=-1).tolist()
    return sum(distinct[b] == c for b, c in zip(best, captions)) / len(captions)


def validate(pipe, cfg: TrainConfig, folder: Path, step: int) -> dict[str, float]:
    """Samples and accuracy with the current weights; the model goes back to training mode after."""
    folder.mkdir(parents=True, exist_ok=True)
    modes = [(m, m.training) for m in (pipe.model, pipe.text_encoder)]
    for module, _ in modes:
        module.eval()
    logs: dict[str, float] = {}
    try:
        with torch.no_grad():
            if cfg.validation_prompts:
                images = pipe.generate(cfg.validation_prompts, seed=cfg.seed)
                write_atomic(folder / f"step-{step}.png", lambda tmp: image_grid(images).save(tmp, format="PNG"))
            if cfg.validation_data:
                held_images, captions = _held_out(cfg.validation_data, cfg.image_column, cfg.caption_column)
                logs["zero_shot_caption_top1"] = caption_accuracy(pipe, held_images, captions)
    finally:
        for module, training in modes:
            module.train(training)
    write_json_atomic(folder / f"step-{step}.json", {"step": step, **logs}, indent=None)
    return logs
