"""Noising for the image latent z and the text query e (with its scale gamma); x0 <-> eps conversions.

One schedule abar_t is shared by both (PAPER.md §1). The text query is diffused as x0 = gamma * e0:
    e_t = gamma * sqrt(abar_t) * e0 + sqrt(1 - abar_t) * eps
The network predicts the *direction* of e0; the sampler is handed x0 = gamma * normalize(e0_hat), so the
trajectory stays on the data manifold (unit-norm e0 scaled by gamma). Nothing here knows the network.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from diffusers import DDPMScheduler
from diffusers.schedulers.scheduling_utils import SchedulerMixin


def training_scheduler(schedule: dict[str, Any]) -> DDPMScheduler:
    """The forward process q(x_t | x0) used in training (and the base config of every sampler)."""
    return DDPMScheduler(**schedule, clip_sample=False, prediction_type="epsilon")


def add_noise(scheduler: SchedulerMixin, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return scheduler.add_noise(x0, noise, t)


def noise_query(
    scheduler: SchedulerMixin, e0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor, gamma: float
) -> torch.Tensor:
    """e_t = gamma*sqrt(abar_t)*e0 + sqrt(1-abar_t)*eps for unit-norm e0 of shape (B, d)."""
    return scheduler.add_noise(gamma * e0, noise, t)


def alpha_bar(scheduler: SchedulerMixin, t: torch.Tensor | float) -> torch.Tensor:
    """abar at a (possibly fractional) timestep, interpolated in sigma as Euler-type samplers do."""
    alphas = scheduler.alphas_cumprod.double().numpy()
    sigmas = np.sqrt((1 - alphas) / alphas)
    sigma = np.interp(np.asarray(t, dtype=np.float64), np.arange(len(sigmas)), sigmas)
    return torch.as_tensor(1.0 / (1.0 + sigma**2))


def eps_from_x0(x_t: torch.Tensor, x0: torch.Tensor, abar: torch.Tensor) -> torch.Tensor:
    abar = abar.to(x_t.dtype).to(x_t.device)
    return (x_t - abar.sqrt() * x0) / (1 - abar).sqrt()


def x0_from_eps(x_t: torch.Tensor, eps: torch.Tensor, abar: torch.Tensor) -> torch.Tensor:
    abar = abar.to(x_t.dtype).to(x_t.device)
    return (x_t - (1 - abar).sqrt() * eps) / abar.sqrt()
