"""Classification and retrieval metrics as pure functions on score tensors (CLIP_benchmark definitions).

Ties go to the lower column index (a stable sort), so equal scores give the same answer on every machine.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from diffdis.errors import DiffDisError


def _check_scores(scores: Tensor, rows: int | None = None, what: str = "logits") -> None:
    if scores.ndim != 2 or scores.shape[1] == 0:
        raise DiffDisError(f"{what} must be a non-empty (N, C) matrix, got shape {tuple(scores.shape)}")
    if rows is not None and scores.shape[0] != rows:
        raise DiffDisError(f"{what} has {scores.shape[0]} rows but there are {rows} targets; pass one per row")


def _top(scores: Tensor, k: int) -> Tensor:
    """(N, k) column indices, best first; ties keep column order (torch.topk leaves their order open)."""
    return torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :k]


def accuracy_topk(logits: Tensor, targets: Tensor, ks: Sequence[int] = (1, 5)) -> dict[int, float]:
    """{k: fraction of rows whose target is among the k highest scores}; k is clipped to the number of
    classes, so top-5 over 3 classes is 1.0 (the key stays the asked-for k)."""
    _check_scores(logits, len(targets))
    if len(targets) == 0:
        return {k: float("nan") for k in ks}
    top = _top(logits, min(max(ks), logits.shape[1]))  # (N, kmax), best first
    hits = top == targets.to(top.device).view(-1, 1)
    return {k: hits[:, : min(k, logits.shape[1])].any(dim=1).float().mean().item() for k in ks}


def mean_per_class_recall(logits: Tensor, targets: Tensor) -> float:
    """Top-1 recall averaged over the classes present in `targets` (balanced accuracy), so a rare class
    weighs as much as a common one."""
    _check_scores(logits, len(targets))
    predictions, targets = logits.argmax(dim=1).cpu(), targets.cpu()
    recalls = [(predictions[targets == c] == c).float().mean() for c in targets.unique()]
    return torch.stack(recalls).mean().item() if recalls else float("nan")


def retrieval_recall(
    scores: Tensor, text_image: Tensor | None = None, ks: Sequence[int] = (1, 5, 10), positive: Tensor | None = None
) -> dict[str, float]:
    """Recall@k both ways for scores (N_images, N_texts), where text j describes image `text_image[j]`, or,
    given `positive` (N_images, N_texts bool), where text j describes every image i with positive[i, j].

    image->text: an image is a hit when any of its texts is in its top k texts; text->image: a text is a hit
    when any of its images is in its top k images. k is clipped to the number of candidates. Images and texts
    with no positive at all are left out. Keys: `image_to_text_R@k`, `text_to_image_R@k` and CLIP_benchmark's
    names for the same numbers, `text_retrieval_recall@k` (= image->text) and `image_retrieval_recall@k`
    (= text->image)."""
    _check_scores(scores, what="scores")
    num_images, num_texts = scores.shape
    if (text_image is None) == (positive is None):
        raise DiffDisError("give retrieval_recall either text_image or positive, not both or neither")
    if positive is None:
        text_image = text_image.to(scores.device).long()
        if text_image.shape != (num_texts,):
            raise DiffDisError(
                f"text_image needs one image index per text ({num_texts}), got shape {tuple(text_image.shape)}"
            )
        if text_image.min() < 0 or text_image.max() >= num_images:
            raise DiffDisError(
                f"text_image indices must be in [0, {num_images}); each names the image a text describes"
            )
        positive = torch.zeros(num_images, num_texts, dtype=torch.bool, device=scores.device)
        positive[text_image, torch.arange(num_texts, device=scores.device)] = True
    elif positive.shape != scores.shape:
        raise DiffDisError(f"positive must have the scores' shape {tuple(scores.shape)}, got {tuple(positive.shape)}")
    positive = positive.to(scores.device).bool()
    image_top = _top(scores, min(max(ks), num_texts))  # (N_images, k): best texts per image
    text_top = _top(scores.T, min(max(ks), num_images))  # (N_texts, k): best images per text
    image_hits = positive.gather(1, image_top)  # (N_images, k)
    text_hits = positive.T.gather(1, text_top)  # (N_texts, k)
    has_text, has_image = positive.any(dim=1), positive.any(dim=0)
    out: dict[str, float] = {}
    for k in ks:
        i2t = image_hits[has_text, : min(k, num_texts)].any(dim=1).float().mean().item()
        t2i = text_hits[has_image, : min(k, num_images)].any(dim=1).float().mean().item()
        out[f"image_to_text_R@{k}"], out[f"text_to_image_R@{k}"] = i2t, t2i
        out[f"text_retrieval_recall@{k}"], out[f"image_retrieval_recall@{k}"] = i2t, t2i
    return out
