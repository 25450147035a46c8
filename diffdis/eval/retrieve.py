"""Image-text retrieval benchmark: each image's diffused e0 against every caption's e, Recall@k both ways."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from diffdis.data.world_truth import ATTRIBUTES, own_caption_ceiling, truth_matrix
from diffdis.errors import DiffDisError
from diffdis.eval.classify import timed_queries
from diffdis.eval.data import EvalData
from diffdis.eval.metrics import retrieval_recall


def caption_lists(values: list[Any], name: str, column: str = "text") -> list[list[str]]:
    """Each row's captions as a list; a row's column may hold one caption or a list of them."""
    out = []
    for i, value in enumerate(values):
        texts = value if isinstance(value, list) else [value]
        if not texts or not all(isinstance(v, str) and v.strip() for v in texts):
            raise DiffDisError(f"{name} row {i}: column {column!r} needs a caption or a list of captions")
        out.append(texts)
    return out


def captions(data: EvalData, column: str = "text") -> tuple[list[str], list[int]]:
    """(texts, index of each text's image)."""
    texts, text_image = [], []
    for i, values in enumerate(caption_lists(data.column(column), data.name, column)):
        texts.extend(values)
        text_image.extend([i] * len(values))
    return texts, text_image


def run_retrieval(
    pipe: Any,
    data: EvalData,
    scheduler: str,
    steps: int,
    guidance: float,
    seed: int = 0,
    batch_size: int = 64,
    text_column: str = "text",
    ks: tuple[int, ...] = (1, 5, 10),
    callback: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    texts, text_image = captions(data, text_column)
    _, text_queries = pipe.encode_text(texts)  # (N_texts, d)
    images = data.images(list(range(len(data))))
    queries, seconds = timed_queries(pipe, images, scheduler, steps, guidance, seed, batch_size, callback)
    scores = (queries.to(text_queries.device) @ text_queries.T.float()).cpu()  # (N_images, N_texts), for CPU metrics
    return {
        **retrieval_recall(scores, torch.tensor(text_image), ks),
        **world_truth_recall(data.rows, texts, text_image, scores, ks),
        "num_texts": len(texts),
        "seconds": seconds,
        "seconds_per_image": seconds / len(images),
    }


def world_truth_recall(rows: list[dict[str, Any]], texts: list[str], text_image: list[int], scores: torch.Tensor,
                       ks: tuple[int, ...] = (1, 5, 10)) -> dict[str, float]:  # fmt: skip
    """On the built-in world (rows with object, colour, background, size and position), two more views of the
    same scores: `any_true_*` counts any caption true of the image (and any image the caption is true of) as a
    hit, and `own_caption_ceiling_*` is the best the own-caption figures can be (see diffdis.data.world_truth).
    Other data, or captions outside the world's grammar (edited by hand): nothing."""
    if not rows or not all(all(a in row for a in ATTRIBUTES) for row in rows):
        return {}
    try:
        truth = truth_matrix(rows, texts)
    except DiffDisError:
        return {}
    any_true = retrieval_recall(scores, positive=truth, ks=ks)
    ceiling = own_caption_ceiling(truth, torch.tensor(text_image), ks) if len(set(text_image)) == len(text_image) else {}
    return {**{f"any_true_{k}": v for k, v in any_true.items() if "_R@" in k},
            **{f"own_caption_ceiling_{k}": v for k, v in ceiling.items()}}  # fmt: skip
