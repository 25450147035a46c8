"""The Diffusion Classifier baseline (Li et al., ICCV 2023) on the same UNet, for comparison with DiffDis.

Each class k scores -E_t ||eps - eps_theta(x_t, t, c_k)||^2: the image is noised at N evenly spaced
timesteps, with the same noise for every class and every image (the paper's variance reduction), and the
class whose prompt best explains the noise wins. Cost: one UNet pass per (class, timestep), so it grows with
the number of classes, which is what DiffDis avoids.

Class prompts: the first template only. c is a token sequence (L, d); averaging the sequences of differently
worded templates would mix tokens that do not line up, so we do not (Li et al. use one template too).

Adaptive pruning (`keep`): a first round scores every class on an evenly spaced subset of the timesteps,
only the `keep` best classes see the rest; pruned classes rank below every kept class.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from diffdis.diffusion.schedule import training_scheduler
from diffdis.errors import DiffDisError

NoisePredictor = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]  # (x_t, t, c) -> eps


def even_timesteps(count: int, num_train_timesteps: int) -> torch.Tensor:
    """`count` timesteps at the centres of equal slices of [0, T): (i + 0.5) * T / count."""
    if not 1 <= count <= num_train_timesteps:
        raise DiffDisError(f"dc-timesteps must be in [1, {num_train_timesteps}], got {count}")
    return ((torch.arange(count) + 0.5) * num_train_timesteps / count).long()


def first_round(count: int, first: int) -> tuple[list[int], list[int]]:
    """Split positions 0..count-1 into an evenly spaced first round of `first` and the rest."""
    first = max(1, min(first, count))
    chosen = sorted({round((i + 0.5) * count / first - 0.5) for i in range(first)})
    return chosen, [i for i in range(count) if i not in chosen]


class PassCounter:
    """Wraps a noise predictor and counts UNet passes (one per batch row)."""

    def __init__(self, predict: NoisePredictor) -> None:
        self.predict, self.passes = predict, 0

    def __call__(self, x: torch.Tensor, t: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        self.passes += x.shape[0]
        return self.predict(x, t, c)


@torch.no_grad()
def _error_matrix(
    predict: NoisePredictor,
    x_ts: torch.Tensor,
    timesteps: torch.Tensor,
    noise: torch.Tensor,
    conditions: torch.Tensor,
    positions: list[int],
    classes: list[int],
    batch_size: int,
) -> torch.Tensor:
    """(len(positions), len(classes)) mean squared eps error of the noised image x_ts[p] (T, C, h, w) under each
    class condition; (timestep, class) pairs are batched together, `batch_size` UNet rows at a time."""
    if not positions or not classes:
        return torch.zeros(len(positions), len(classes))
    pairs = torch.tensor([(p, k) for p in positions for k in classes])
    out = []
    for chunk in pairs.split(batch_size):
        p, k = chunk[:, 0], chunk[:, 1]
        eps = predict(x_ts[p], timesteps[p].to(x_ts.device), conditions[k.to(conditions.device)])
        out.append(((eps.float() - noise[p].float()) ** 2).flatten(1).mean(dim=1).cpu())
    return torch.cat(out).view(len(positions), len(classes))


def class_scores(
    predict: NoisePredictor,
    latents: torch.Tensor,  # (N, C, h, w) clean image latents
    conditions: torch.Tensor,  # (K, L, d) one text condition per class
    schedule: dict[str, Any],
    num_timesteps: int = 25,
    keep: int | None = None,
    first: int | None = None,
    seed: int = 0,
    batch_size: int = 64,
) -> torch.Tensor:
    """(N, K) scores: minus the mean eps error over timesteps (higher is better)."""
    scheduler = training_scheduler(schedule)
    timesteps = even_timesteps(num_timesteps, scheduler.config.num_train_timesteps)
    generator = torch.Generator().manual_seed(seed)
    # drawn on the CPU (same seed, same noise on every device) and kept fp32: the target eps is exact in bf16/fp16 runs
    noise = torch.randn((num_timesteps, *latents.shape[1:]), generator=generator).to(latents.device)
    num_classes = conditions.shape[0]
    prune = keep is not None and keep < num_classes
    round1, round2 = (
        first_round(num_timesteps, first or max(1, num_timesteps // 5)) if prune else (list(range(num_timesteps)), [])
    )
    scores = torch.empty(latents.shape[0], num_classes)
    everyone = list(range(num_classes))
    for n, z in enumerate(latents):
        # (T, C, h, w), noised in fp32, fed to the network in its dtype
        x_ts = scheduler.add_noise(z.float().expand(num_timesteps, *z.shape), noise, timesteps).to(z.dtype)
        errors = _error_matrix(predict, x_ts, timesteps, noise, conditions, round1, everyone, batch_size)
        row = -errors.mean(dim=0)
        if prune:
            kept = row.topk(keep).indices
            more = _error_matrix(predict, x_ts, timesteps, noise, conditions, round2, kept.tolist(), batch_size)
            final = -torch.cat([errors[:, kept], more]).mean(dim=0)
            row = row - row.max() + final.min() - 1.0  # every pruned class below every kept one, in round-1 order
            row[kept] = final
        scores[n] = row
    return scores


def expected_passes(num_classes: int, num_timesteps: int, keep: int | None, first: int | None = None) -> int:
    """UNet passes per image: K * N, or K * N1 + keep * (N - N1) with pruning."""
    if keep is None or keep >= num_classes:
        return num_classes * num_timesteps
    round1, round2 = first_round(num_timesteps, first or max(1, num_timesteps // 5))
    return num_classes * len(round1) + keep * len(round2)


@torch.no_grad()
def diffusion_classify(
    pipe: Any,
    images: Sequence,
    labels: Sequence[str],
    templates: Sequence[str],
    num_timesteps: int = 25,
    keep: int | None = None,
    seed: int = 0,
    batch_size: int = 64,
) -> tuple[torch.Tensor, float]:
    """((N, K) scores, UNet passes per image) for a DiffDisPipeline's generation branch."""
    conditions, _ = pipe.encode_text([templates[0].replace("{}", label) for label in labels])
    counter = PassCounter(pipe.model.predict_noise)
    images = list(images)
    scores = torch.cat(
        [
            class_scores(
                counter,
                pipe.encode_images(images[i : i + batch_size]),
                conditions,
                pipe.config.schedule,
                num_timesteps,
                keep,
                None,
                seed,
                batch_size,
            )
            for i in range(0, len(images), batch_size)
        ]
    )
    return scores, counter.passes / max(1, len(images))
