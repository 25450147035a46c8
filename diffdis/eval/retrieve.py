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
    indices: list[int] | None = None,
) -> dict[str, Any]:
    """Recall@k of `indices` (a shard's images; default all) against every caption of `data`. A shard's record
    keeps what `merge_retrieval` needs to give the recall of all shards together exactly ("samples")."""
    texts, text_image = captions(data, text_column)
    _, text_queries = pipe.encode_text(texts)  # (N_texts, d)
    sharded = indices is not None
    indices = list(range(len(data))) if indices is None else indices
    images = data.images(indices)
    queries, seconds = timed_queries(pipe, images, scheduler, steps, guidance, seed, batch_size, callback)
    scores = (queries.to(text_queries.device) @ text_queries.T.float()).cpu()  # (N_images, N_texts), for CPU metrics
    timing = {"num_texts": len(texts), "seconds": seconds, "seconds_per_image": seconds / len(images)}
    if not sharded:
        return {
            **retrieval_recall(scores, torch.tensor(text_image), ks),
            **world_truth_recall(data.rows, texts, text_image, scores, ks),
            **timing,
        }
    samples = shard_samples(scores, indices, text_image, max(ks))
    return {**recall_from_samples([samples], ks), **timing, "samples": samples}


def shard_samples(
    scores: torch.Tensor, image_index: list[int], text_image: list[int], top: int = 10
) -> dict[str, list]:
    """What a shard of images contributes to Recall@k over all shards: each image's best rank among all texts
    (image->text is complete within a shard), and each text's `top` best images of this shard with their scores
    (text->image: the best of all shards is the best of each shard's best). Ties rank the lower index first."""
    text_image_t, ranks = torch.tensor(text_image).view(1, -1), []
    for start in range(0, len(image_index), 256):  # rank of each text in each image's row, a few rows at a time
        rows = scores[start : start + 256]
        own = text_image_t == torch.tensor(image_index[start : start + 256]).view(-1, 1)  # (rows, N_texts)
        order = torch.sort(rows, dim=1, descending=True, stable=True).indices
        position = torch.empty_like(order).scatter_(1, order, torch.arange(order.shape[1]).expand_as(order))
        ranks += position.masked_fill(~own, order.shape[1]).min(dim=1).values.tolist()
    best = torch.sort(scores.T, dim=1, descending=True, stable=True)
    k = min(top, len(image_index))
    return {
        "image_index": list(image_index),
        "image_rank": ranks,
        "text_image": list(text_image),
        "text_top": torch.tensor(image_index)[best.indices[:, :k]].tolist(),
        "text_top_scores": best.values[:, :k].tolist(),
    }


def recall_from_samples(shards: list[dict[str, list]], ks: tuple[int, ...] = (1, 5, 10)) -> dict[str, float]:
    """Recall@k both ways, with CLIP_benchmark's names too, over the images of all `shards` against all texts
    (the same numbers as `retrieval_recall` on the whole score matrix; texts whose image is in no shard are left
    out of text->image, as a partial merge has them)."""
    ranks = torch.tensor([r for s in shards for r in s["image_rank"]])
    present = {i for s in shards for i in s["image_index"]}
    text_image = shards[0]["text_image"]
    candidates: list[list[tuple[float, int]]] = [[] for _ in text_image]
    for s in shards:
        for j, (idx, val) in enumerate(zip(s["text_top"], s["text_top_scores"])):
            candidates[j] += [(-v, i) for v, i in zip(val, idx)]
    kmax, found = min(max(ks), len(present)), []
    for j, c in enumerate(candidates):
        if text_image[j] in present:  # the position of the text's image among its best images of all shards
            best = [i for _, i in sorted(c)[:kmax]]
            found.append(best.index(text_image[j]) if text_image[j] in best else kmax)
    found_t = torch.tensor(found)
    out: dict[str, float] = {}
    for k in ks:
        i2t, t2i = (ranks < k).float().mean().item(), (found_t < min(k, len(present))).float().mean().item()
        out[f"image_to_text_R@{k}"], out[f"text_to_image_R@{k}"] = i2t, t2i
        out[f"text_retrieval_recall@{k}"], out[f"image_retrieval_recall@{k}"] = i2t, t2i
    return out


def merge_retrieval(shards: list[dict[str, Any]]) -> dict[str, Any]:
    """One record from a retrieval run's shards, its recall recomputed over all of them (world-truth views are
    per-run only and are left out)."""
    for r in shards:
        if "samples" not in r:
            raise DiffDisError(f"{r['_path']} is a retrieval shard without per-sample results; it cannot be merged")
    n = sum(len(r["samples"]["image_index"]) for r in shards)
    seconds = sum(float(r.get("seconds", 0.0)) for r in shards)
    merged = {k: v for k, v in shards[0].items() if not k.startswith(("any_true_", "own_caption_ceiling_"))}
    return {
        **merged,
        **recall_from_samples([r["samples"] for r in shards]),
        "n": n,
        "seconds": seconds,
        "seconds_per_image": seconds / n,
    }


def world_truth_recall(
    rows: list[dict[str, Any]],
    texts: list[str],
    text_image: list[int],
    scores: torch.Tensor,
    ks: tuple[int, ...] = (1, 5, 10),
) -> dict[str, float]:
    """On the built-in world (rows with object, colour, background, size and position), two more views of the
    same scores: `any_true_*` counts any caption true of the image (and any image the caption is true of) as a
    hit, and `own_caption_ceiling_*` is what a random-tie oracle scores on the own-caption figures (a reference, not
    a bound; see diffdis.data.world_truth.own_caption_ceiling).
    Other data, or captions outside the world's grammar (edited by hand): nothing."""
    if not rows or not all(all(a in row for a in ATTRIBUTES) for row in rows):
        return {}
    try:
        truth = truth_matrix(rows, texts)
    except DiffDisError:
        return {}
    any_true = retrieval_recall(scores, positive=truth, ks=ks)
    ceiling = (
        own_caption_ceiling(truth, torch.tensor(text_image), ks) if len(set(text_image)) == len(text_image) else {}
    )
    return {
        **{f"any_true_{k}": v for k, v in any_true.items() if "_R@" in k},
        **{f"own_caption_ceiling_{k}": v for k, v in ceiling.items()},
    }
