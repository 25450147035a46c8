"""One sampling loop over diffusers schedulers, for image latents and text queries alike.

The loop calls `denoise(x_t, t)`, which returns eps (images) or x0 (text queries); x0 is converted to eps
for the scheduler, so every scheduler works with both. Stateful schedulers (DPM-Solver, UniPC, Euler) must
not be shared: `make_scheduler` returns a fresh instance for every loop.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
from diffusers import (
    DDIMScheduler,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    EulerDiscreteScheduler,
    UniPCMultistepScheduler,
)
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from diffdis.diffusion.schedule import alpha_bar, eps_from_x0, x0_from_eps
from diffdis.errors import UsageError

SCHEDULERS: dict[str, type[SchedulerMixin]] = {
    "ddim": DDIMScheduler,
    "ddpm": DDPMScheduler,
    "dpm++": DPMSolverMultistepScheduler,
    "euler": EulerDiscreteScheduler,
    "unipc": UniPCMultistepScheduler,
}

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def make_scheduler(name: str, schedule: dict[str, Any]) -> SchedulerMixin:
    """A fresh sampler by short name over the model's training schedule.

    "trailing" spacing starts every sampler at the last training timestep, so even 1 step starts from noise.
    """
    if name not in SCHEDULERS:
        raise UsageError(f"unknown scheduler {name!r}; choose one of: {', '.join(SCHEDULERS)}")
    cls = SCHEDULERS[name]
    kwargs: dict[str, Any] = {**schedule, "prediction_type": "epsilon", "timestep_spacing": "trailing"}
    accepted = inspect.signature(cls.__init__).parameters
    if "clip_sample" in accepted:
        kwargs["clip_sample"] = False
    if name == "dpm++":
        kwargs["algorithm_type"] = "dpmsolver++"
    return cls(**{k: v for k, v in kwargs.items() if k in accepted})


def sample(
    denoise: Denoiser,
    noise: torch.Tensor,
    scheduler: SchedulerMixin,
    num_inference_steps: int,
    prediction: str = "epsilon",
    generator: torch.Generator | None = None,
    callback: Callable[[int, int], None] | None = None,
    clip_x0: float | None = None,
) -> torch.Tensor:
    """Run `scheduler` from `noise` to x0. `prediction` says what `denoise` returns: "epsilon" or "sample".

    `clip_x0` clamps each step's x0 estimate to [-clip_x0, clip_x0], for every scheduler alike (pixel-space
    models need it: near t = T, x0 = (x_t - sqrt(1-abar) eps) / sqrt(abar) amplifies eps errors ~150x).
    """
    if num_inference_steps < 1:
        raise UsageError(f"num-inference-steps must be at least 1, got {num_inference_steps}")
    scheduler.set_timesteps(num_inference_steps, device=noise.device)
    x = noise * scheduler.init_noise_sigma
    step_kwargs = {"generator": generator} if "generator" in inspect.signature(scheduler.step).parameters else {}
    timesteps = scheduler.timesteps
    for i, t in enumerate(timesteps):
        x_in = scheduler.scale_model_input(x, t)
        eps = out = denoise(x_in, t)
        if prediction == "sample" or clip_x0 is not None:
            abar = alpha_bar(scheduler, t.item())
            x0 = out if prediction == "sample" else x0_from_eps(x_in, out, abar)
            if clip_x0 is not None:
                x0 = x0.clamp(-clip_x0, clip_x0)
            eps = eps_from_x0(x_in, x0, abar)
        x = scheduler.step(eps, t, x, **step_kwargs).prev_sample
        if callback is not None:
            callback(i + 1, len(timesteps))
    return x
