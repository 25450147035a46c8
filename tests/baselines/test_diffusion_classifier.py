"""The Diffusion Classifier baseline on a noise predictor whose answer we control."""

from __future__ import annotations

import torch

from diffdis.baselines.diffusion_classifier import (
    PassCounter,
    class_scores,
    even_timesteps,
    expected_passes,
    first_round,
)
from diffdis.config import _pixel_schedule
from diffdis.diffusion.schedule import training_scheduler

SCHEDULE = _pixel_schedule()


def oracle(prototypes: torch.Tensor):
    """eps_theta for an ideal model whose class k always draws prototypes[k]: the condition's first value names
    k, and the predicted noise is the one that would turn that prototype into x_t."""
    scheduler = training_scheduler(SCHEDULE)

    def predict(x_t: torch.Tensor, t: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        x0 = prototypes[c[:, 0, 0].long()]
        abar = scheduler.alphas_cumprod[t].view(-1, 1, 1, 1)
        return (x_t - abar.sqrt() * x0) / (1 - abar).sqrt()

    return predict


def test_picks_the_class_that_explains_the_image():
    torch.manual_seed(0)
    prototypes = torch.rand(6, 3, 4, 4) * 2 - 1
    conditions = torch.arange(6).float().view(6, 1, 1).expand(6, 2, 3).contiguous()
    images = prototypes[[4, 0, 2]] + 0.05 * torch.randn(3, 3, 4, 4)
    scores = class_scores(oracle(prototypes), images, conditions, SCHEDULE, num_timesteps=6, batch_size=4)
    assert scores.shape == (3, 6)
    assert scores.argmax(dim=1).tolist() == [4, 0, 2]


def test_pruning_keeps_the_winner_ranks_pruned_classes_last_and_counts_passes():
    torch.manual_seed(0)
    prototypes = torch.rand(8, 3, 4, 4) * 2 - 1
    conditions = torch.arange(8).float().view(8, 1, 1).expand(8, 2, 3).contiguous()
    images = prototypes[[3, 7]]
    counter = PassCounter(oracle(prototypes))
    scores = class_scores(counter, images, conditions, SCHEDULE, num_timesteps=10, keep=2, batch_size=3)
    assert scores.argmax(dim=1).tolist() == [3, 7]
    # 8 classes on 2 first-round timesteps, then 2 classes on the other 8: 16 + 16 per image
    assert counter.passes == 2 * expected_passes(8, 10, keep=2) == 2 * 32
    kept = scores.topk(2, dim=1).values.min(dim=1).values
    pruned = scores.topk(8, dim=1).values[:, 2:].max(dim=1).values
    assert (pruned < kept).all()
    counter = PassCounter(oracle(prototypes))
    class_scores(counter, images, conditions, SCHEDULE, num_timesteps=5)
    assert counter.passes == 2 * 8 * 5 == 2 * expected_passes(8, 5, keep=None)


def test_timesteps_are_even_and_rounds_split_them():
    assert even_timesteps(4, 1000).tolist() == [125, 375, 625, 875]
    chosen, rest = first_round(10, 2)
    assert len(chosen) == 2 and sorted(chosen + rest) == list(range(10))
    assert first_round(3, 10)[0] == [0, 1, 2]
