"""The unified loss (paper Algorithm 1): L = L_IG + lambda * L_ITA, both tasks every step on one batch.

- Generative pass: no text token; noisy z_t; condition c (dropped to the null caption with p) -> L_IG.
- Discriminative pass: c masked (null caption or skipped); clean z (dropped to the null image, zeros, with
  p [ours]); noisy text query e_t -> e0_hat -> symmetric InfoNCE against the batch's e -> L_ITA.
e enters e_t detached [ours]: the text encoder learns e from the InfoNCE targets, not by making the noisy
input easy to copy.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from diffdis.diffusion.schedule import add_noise, noise_query


def loss_generative(noise_pred: torch.Tensor, noise: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """L_IG = ||eps - Phi_u(z_t, t, c)||^2, mean over elements (as diffusers' training scripts).

    `weights` (B,) reweights samples, e.g. Min-SNR-gamma (Hang et al. 2023): min(SNR_t, gamma) / SNR_t.
    """
    if weights is None:
        return F.mse_loss(noise_pred.float(), noise.float())
    per_sample = F.mse_loss(noise_pred.float(), noise.float(), reduction="none").flatten(1).mean(1)
    return (per_sample * weights).mean()


def min_snr_weights(scheduler, timesteps: torch.Tensor, gamma: float) -> torch.Tensor:
    """min(SNR_t, gamma) / SNR_t for eps-prediction; speeds up convergence of the generative loss."""
    from diffusers.training_utils import compute_snr

    snr = compute_snr(scheduler, timesteps)
    return torch.clamp(snr, max=gamma) / snr


def _gather_with_grad(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """All ranks' rows, gradients flowing to the local part (as CLIP training); (x, 0) when not distributed."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x, 0
    import torch.distributed.nn.functional as dist_fn

    return torch.cat(dist_fn.all_gather(x), dim=0), dist.get_rank() * x.shape[0]


def loss_alignment(
    predicted_queries: torch.Tensor, text_queries: torch.Tensor, logit_scale: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """L_ITA: symmetric InfoNCE between normalised e0_hat_i (image i) and e_j (caption j) over the global batch.

    Returns (loss, fraction of rows whose own caption scores highest) for logging.
    """
    pred = F.normalize(predicted_queries.float(), dim=-1)
    text = F.normalize(text_queries.float(), dim=-1)
    all_pred, offset = _gather_with_grad(pred)
    all_text, _ = _gather_with_grad(text)
    labels = torch.arange(pred.shape[0], device=pred.device) + offset
    logits_image_to_text = logit_scale * pred @ all_text.T  # (B, N)
    logits_text_to_image = logit_scale * text @ all_pred.T  # (B, N)
    loss = (F.cross_entropy(logits_image_to_text, labels) + F.cross_entropy(logits_text_to_image, labels)) / 2
    accuracy = (logits_image_to_text.argmax(-1) == labels).float().mean()
    return loss, accuracy


@dataclass
class UnifiedLossSettings:
    tasks: str = "both"  # "both" | "gen" | "disc"
    loss_alignment_weight: float = 1.0
    condition_dropout: float = 0.1
    image_dropout: float = 0.1
    snr_gamma: float | None = None  # Min-SNR weighting of L_IG; None: the paper's plain MSE


def unified_loss(
    model: nn.Module,  # DiffDisModel
    text_encoder: nn.Module,
    autoencoder: nn.Module,
    scheduler,
    input_ids: torch.Tensor,  # (B, L)
    null_ids: torch.Tensor,  # (1, L) the empty caption
    images: torch.Tensor,  # (B, 3, H, W) in [-1, 1]
    settings: UnifiedLossSettings,
    generator: torch.Generator,  # CPU generator: all randomness of this step
    rows: tuple[int, int] | None = None,  # (offset, global batch) when this rank holds a slice of the batch
) -> tuple[torch.Tensor, dict[str, float]]:
    batch, device = input_ids.shape[0], images.device
    num_t = scheduler.config.num_train_timesteps
    offset, global_batch = rows or (0, batch)
    # Draw for the whole global batch, keep this rank's rows: N ranks x B see the noise of one rank x N*B.

    def mine(x: torch.Tensor) -> torch.Tensor:
        return x[offset : offset + batch].to(device)

    def rand(n: int) -> torch.Tensor:
        return mine(torch.rand((global_batch,), generator=generator))

    def randn(shape: torch.Size) -> torch.Tensor:
        return mine(torch.randn((global_batch, *shape[1:]), generator=generator))

    def randint(n: int) -> torch.Tensor:
        return mine(torch.randint(0, num_t, (global_batch,), generator=generator))

    conditions, queries = text_encoder(torch.cat([input_ids, null_ids.to(input_ids)], dim=0))
    conditions, queries = conditions.to(images.dtype), queries.to(images.dtype)  # a frozen fp32 encoder beside bf16
    condition, null_condition = conditions[:batch], conditions[batch:].expand(batch, -1, -1)
    text_query = queries[:batch]  # (B, d) unit norm
    # the VAE posterior draws from its own stream, so the draws below stay aligned across rank layouts
    latents = autoencoder.encode(images, torch.Generator().manual_seed(generator.initial_seed() + offset + 1))
    latents = latents.to(images.dtype)  # an fp32 VAE beside a bf16 UNet
    logs: dict[str, float] = {}
    total = torch.zeros((), device=device)

    if settings.tasks in ("both", "gen"):
        drop = (rand(batch) < settings.condition_dropout)[:, None, None]
        condition_gen = torch.where(drop, null_condition, condition)
        t_z, noise = randint(batch), randn(latents.shape).to(latents.dtype)
        noise_pred = model.predict_noise(add_noise(scheduler, latents, noise, t_z), t_z, condition_gen)
        weights = None if settings.snr_gamma is None else min_snr_weights(scheduler, t_z, settings.snr_gamma).to(device)
        loss_ig = loss_generative(noise_pred, noise, weights)
        total = total + loss_ig
        logs["loss_generative"] = loss_ig.item()

    if settings.tasks in ("both", "disc"):
        keep = (rand(batch) >= settings.image_dropout).to(latents.dtype)[:, None, None, None]
        latents_disc = latents * keep  # the null image is all zeros
        t_e, noise_e = randint(batch), randn(text_query.shape).to(text_query.dtype)
        noisy_query = noise_query(scheduler, text_query.detach(), noise_e, t_e, model.config.query_scale)
        condition_disc = null_condition if model.config.disc_condition == "null_text" else None
        predicted = model.predict_query(latents_disc, noisy_query, t_e, condition_disc)
        logit_scale = model.logit_scale()
        loss_ita, accuracy = loss_alignment(predicted, text_query, logit_scale)
        total = total + settings.loss_alignment_weight * loss_ita
        logs.update(loss_alignment=loss_ita.item(), batch_accuracy=accuracy.item(), logit_scale=logit_scale.item())

    logs["loss"] = total.item()
    return total, logs
