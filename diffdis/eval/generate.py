"""Generation benchmark: FID against reference images, the DiffDis score, the judge's accuracy, a sample grid.

DiffDis score: the model's own text-image agreement, like CLIPScore without CLIP. The generated image is
read back by the discriminative branch (its diffused e0, `pipeline.image_queries`) and compared by cosine
with the prompt's text embedding e. It says how well the image matches the prompt *as this model reads it*,
so it rewards a model that agrees with itself; the judge's accuracy and FID are the independent checks.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from diffdis.data.transforms import image_grid  # noqa: F401  (re-exported for the CLI)
from diffdis.eval.fid import FeatureExtractor, fid_from_features


def generate_images(
    pipe: Any, prompts: Sequence[str], steps: int | None, guidance: float | None, scheduler: str | None,
    seed: int = 0, batch_size: int = 16, callback: Callable[[int, int], None] | None = None,
) -> list[Image.Image]:  # fmt: skip
    """One image per prompt, in batches; batch b uses seed + b, so results do not depend on memory."""
    images: list[Image.Image] = []
    for b, start in enumerate(range(0, len(prompts), batch_size)):
        chunk = list(prompts[start : start + batch_size])
        images += pipe.generate(chunk, num_inference_steps=steps, guidance_scale=guidance, scheduler=scheduler,
                                seed=seed + b)  # fmt: skip
        if callback is not None:
            callback(len(images), len(prompts))
    return images


@torch.no_grad()
def diffdis_score(pipe: Any, images: Sequence[Image.Image], prompts: Sequence[str], seed: int = 0) -> float:
    """Mean cosine between each image's diffused e0 (the model's default query sampler) and its prompt's e."""
    _, text = pipe.encode_text(list(prompts))
    queries = pipe.image_queries(list(images), seed=seed).to(text.device)
    return float((queries.float() * text.float()).sum(dim=-1).mean())


def judge_scores(judge: Any, images: Sequence[Image.Image], rows: Sequence[dict] | None) -> dict[str, float]:
    """The judge's object (and colour) accuracy on prompts whose rows name them (world and digits data)."""
    if judge is None or not rows or not all("object" in r or "label_name" in r for r in rows):
        return {}
    from diffdis.eval.judge import judge_accuracy

    return {f"judge_{k}_accuracy": v for k, v in judge_accuracy(judge, list(images), list(rows)).items()}


def run_generation(
    pipe: Any,
    prompts: Sequence[str],
    reference: Sequence[Image.Image],
    extractor: FeatureExtractor,
    rows: Sequence[dict] | None = None,
    judge: Any = None,
    steps: int | None = None,
    guidance: float | None = None,
    scheduler: str | None = None,
    seed: int = 0,
    batch_size: int = 16,
    callback: Callable[[int, int], None] | None = None,
) -> tuple[dict[str, Any], list[Image.Image]]:
    """(metrics, generated images)."""
    start = time.perf_counter()
    images = generate_images(pipe, prompts, steps, guidance, scheduler, seed, batch_size, callback)
    seconds = time.perf_counter() - start
    fid = fid_from_features(np.asarray(extractor(images)), np.asarray(extractor(list(reference))))
    metrics = {
        "fid": fid,
        "diffdis_score": diffdis_score(pipe, images, prompts, seed),
        **judge_scores(judge, images, rows),
        "n": len(images),
        "n_reference": len(reference),
        "seconds": seconds,
        "seconds_per_image": seconds / len(images),
    }
    return metrics, images
