"""Zero-shot classification benchmark: one record per (sampler, steps, guidance), CLIP_benchmark's keys.

The label embeddings are made once per run; every sampler setting then diffuses one text query per image.
A record keeps each sample's target and top-5 classes, so shards merge exactly (`results.merge_shards`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from diffdis.eval.metrics import accuracy_topk, mean_per_class_recall

TOP = 5  # classes kept per sample in a record: enough for acc5 and mean per-class recall


def classification_metrics(logits: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    top = accuracy_topk(logits, targets, ks=(1, 5))
    return {"acc1": top[1], "acc5": top[5], "mean_per_class_recall": mean_per_class_recall(logits, targets)}


def sample_record(logits: torch.Tensor, targets: Sequence[int], indices: Sequence[int]) -> dict[str, list]:
    """Per sample: its row index in the data, its target and its top classes, best first."""
    order = torch.sort(logits, dim=1, descending=True, stable=True).indices[:, :TOP]
    return {"index": list(indices), "target": list(targets), "top": order.tolist()}


def logits_from_ranks(top: list[list[int]], num_classes: int) -> torch.Tensor:
    """Scores that rank each row's recorded classes first, in order: what the metrics need to recompute
    acc1, acc5 and per-class recall from a record."""
    logits = torch.zeros(len(top), num_classes)
    for row, classes in enumerate(top):
        for rank, c in enumerate(classes):
            logits[row, c] = len(classes) - rank
    return logits


def metrics_from_samples(samples: dict[str, list], num_classes: int) -> dict[str, float]:
    logits = logits_from_ranks(samples["top"], num_classes)
    return classification_metrics(logits, torch.tensor(samples["target"], dtype=torch.long))


def warm_up(pipe: Any, images: list) -> None:
    """One 1-step query on one image, so the first timed run does not pay for torch's first-call setup."""
    pipe.image_queries(images[:1], num_inference_steps=1)


def timed_queries(
    pipe: Any,
    images: list,
    scheduler: str,
    steps: int,
    guidance: float,
    seed: int = 0,
    batch_size: int = 64,
    callback: Callable[[int, int], None] | None = None,
) -> tuple[torch.Tensor, float]:
    """((N, d) diffused text queries e0, seconds they took): the timed part of every DiffDis benchmark."""
    start = time.perf_counter()
    queries = pipe.image_queries(
        images,
        num_inference_steps=steps,
        guidance_scale=guidance,
        scheduler=scheduler,
        seed=seed,
        batch_size=batch_size,
        callback=callback,
    )
    return queries, time.perf_counter() - start


def run_diffdis(
    pipe: Any,
    images: list,
    targets: list[int],
    indices: list[int],
    classifier: torch.Tensor,
    scheduler: str,
    steps: int,
    guidance: float,
    seed: int = 0,
    batch_size: int = 64,
    callback: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """DiffDis zero-shot classification of `images` against `classifier` (K, d); metrics, timing, samples."""
    queries, seconds = timed_queries(pipe, images, scheduler, steps, guidance, seed, batch_size, callback)
    logits = (queries.to(classifier.device) @ classifier.T.float()).cpu()  # (N, K), beside the CPU targets
    return {
        **classification_metrics(logits, torch.tensor(targets, dtype=torch.long)),
        "seconds": seconds,
        "seconds_per_image": seconds / len(images),
        "samples": sample_record(logits, targets, indices),
    }
