"""Gradient accumulation that keeps the InfoNCE batch whole (open_clip's `accum_freq`).

L_ITA couples every row of the global batch, so K micro-batches cannot each add a loss of their own. As
open_clip does: embed all K micro-batches without gradients (pass 1), then recompute each micro-batch with
gradients, put its live features into the cached global batch and take the whole batch's loss (pass 2).
Summed over the K backward passes this is the one-big-batch gradient; L_IG is per sample and adds 1/K of
each micro-batch's mean. Memory is one micro-batch's activations; the price is one extra gradient-free
discriminative forward per micro-batch. With K = 1 it is a plain forward and backward.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch
import torch.distributed as dist
import torch.nn.functional as F

from diffdis.train.losses import ForwardOutputs, StepNoise, TextInputs, UnifiedLossSettings, combine, distributed

Forward = Callable[[TextInputs, torch.Tensor, StepNoise, UnifiedLossSettings], ForwardOutputs]


def _gather_no_grad(x: torch.Tensor) -> torch.Tensor:
    """(W, *x.shape): every rank's x, without gradients (a world of one is x[None])."""
    if not distributed():
        return x[None]
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.stack(parts)


def _gather_live(x: torch.Tensor) -> torch.Tensor:
    """(W, *x.shape) with gradients flowing back to each rank's own part."""
    if not distributed():
        return x[None]
    import torch.distributed.nn.functional as dist_fn

    return torch.stack(dist_fn.all_gather(x))


def _with_live(cached: torch.Tensor, live: torch.Tensor, j: int) -> torch.Tensor:
    """cached (W, K, m, d) with micro-batch j replaced by live (W, m, d)."""
    parts = [live[:, None] if i == j else cached[:, i : i + 1] for i in range(cached.shape[1])]
    return torch.cat(parts, dim=1)


def accumulate(
    forward: Forward,
    backward: Callable[[torch.Tensor], None],
    text: TextInputs,
    latents: torch.Tensor,  # (B, C, h, w): this rank's rows of the global batch
    noise: StepNoise,
    settings: UnifiedLossSettings,
    steps: int,
) -> dict[str, float]:
    """Run `steps` micro-batches over this rank's rows, calling `backward` once per micro-batch; the logs."""
    rows = latents.shape[0]
    if rows % steps:
        raise ValueError(f"{rows} rows do not split into {steps} micro-batches")
    size = rows // steps
    parts = [slice(j * size, (j + 1) * size) for j in range(steps)]
    cached = None
    if steps > 1 and settings.discriminative:
        disc_only = dataclasses.replace(settings, tasks="disc")
        with torch.no_grad():
            outs = [forward(text.rows(p), latents[p], noise.rows(p), disc_only) for p in parts]
        pred = F.normalize(torch.stack([o.predicted_queries.float() for o in outs]), dim=-1)  # (K, m, d)
        queries = F.normalize(torch.stack([o.text_queries.float() for o in outs]), dim=-1)
        cached = _gather_no_grad(pred), _gather_no_grad(queries)  # (W, K, m, d) each
    totals: dict[str, float] = {}
    for j, part in enumerate(parts):
        out = forward(text.rows(part), latents[part], noise.rows(part), settings)
        columns = None
        if cached is not None:
            rank = dist.get_rank() if distributed() else 0
            pred = _with_live(cached[0], _gather_live(F.normalize(out.predicted_queries.float(), dim=-1)), j)
            queries = _with_live(cached[1], _gather_live(F.normalize(out.text_queries.float(), dim=-1)), j)
            # the logit scale enters every micro-batch's copy of the whole-batch loss: its gradient counts once
            scale = out.logit_scale if j == 0 else out.logit_scale.detach()
            out = dataclasses.replace(
                out,
                predicted_queries=pred[rank].flatten(0, 1),
                text_queries=queries[rank].flatten(0, 1),
                logit_scale=scale,
            )
            columns = (pred.flatten(0, 2), queries.flatten(0, 2), rank * rows)
        loss, logs = combine(out, settings, columns, generative_share=1.0 / steps)
        backward(loss)
        for key, value in logs.items():  # L_IG: the micro-batches' mean; L_ITA: the same whole-batch value each time
            totals[key] = totals.get(key, 0.0) + value / steps
    totals["loss"] = totals.get("loss_generative", 0.0) + settings.loss_alignment_weight * totals.get(
        "loss_alignment", 0.0
    )
    return totals
