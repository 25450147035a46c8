"""The unified loss (paper Algorithm 1): L = L_IG + lambda * L_ITA, both tasks every step on one batch.

- Generative pass: no text token; noisy z_t; condition c (dropped to the null caption with p) -> L_IG.
- Discriminative pass: c masked (null caption or skipped); clean z (dropped to the null image, zeros, with
  p [ours]); noisy text query e_t -> e0_hat -> symmetric InfoNCE against the batch's e -> L_ITA.
e enters e_t detached [ours]: the text encoder learns e from the InfoNCE targets, not by making the noisy
input easy to copy.

All randomness of a step is drawn up front for the whole global batch (`StepNoise`), so N ranks x B/N and K
micro-batches (`diffdis.train.accumulation`) see the noise of one process x B.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from diffdis.diffusion.schedule import add_noise, noise_query, training_scheduler


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


def distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def gather_with_grad(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """All ranks' rows, gradients flowing to the local part (as CLIP training); (x, 0) when not distributed."""
    if not distributed():
        return x, 0
    import torch.distributed.nn.functional as dist_fn

    return torch.cat(dist_fn.all_gather(x), dim=0), dist.get_rank() * x.shape[0]


def loss_alignment(
    predicted_queries: torch.Tensor,
    text_queries: torch.Tensor,
    logit_scale: torch.Tensor,
    columns: tuple[torch.Tensor, torch.Tensor, int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """L_ITA: symmetric InfoNCE between normalised e0_hat_i (image i) and e_j (caption j) over the global batch.

    `columns` = (all e0_hat, all e, offset of these rows) when the caller assembled the global batch itself
    (gradient accumulation); otherwise the rows are gathered across ranks here.
    Returns (loss, fraction of rows whose own caption scores highest) for logging.
    """
    pred = F.normalize(predicted_queries.float(), dim=-1)
    text = F.normalize(text_queries.float(), dim=-1)
    if columns is None:
        all_pred, offset = gather_with_grad(pred)
        all_text, _ = gather_with_grad(text)
    else:
        all_pred, all_text, offset = columns
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
    query_self_condition: float = 0.0  # share of e_t built from the model's own first guess [ours]

    @property
    def generative(self) -> bool:
        return self.tasks in ("both", "gen")

    @property
    def discriminative(self) -> bool:
        return self.tasks in ("both", "disc")


@dataclass
class StepNoise:
    """This rank's share of one step's randomness (CPU tensors; None for a task that does not run)."""

    condition_drop: torch.Tensor | None = None  # (B,) bool: c replaced by the null caption
    t_z: torch.Tensor | None = None  # (B,) image timesteps
    noise: torch.Tensor | None = None  # (B, C, h, w)
    image_keep: torch.Tensor | None = None  # (B,) float: 0 replaces the image by the null image
    t_e: torch.Tensor | None = None  # (B,) text-query timesteps
    noise_e: torch.Tensor | None = None  # (B, d)
    own_guess: torch.Tensor | None = None  # (B,) bool: e_t noises the model's first guess, not e0
    noise_guess: torch.Tensor | None = None  # (B, d) the pure noise that first guess starts from

    @classmethod
    def draw(
        cls,
        generator: torch.Generator,
        settings: UnifiedLossSettings,
        num_timesteps: int,
        rows: tuple[int, int, int],
        latent_shape: tuple[int, ...],
        query_dim: int,
        query_timesteps: int | None = None,
    ) -> StepNoise:
        """`rows` = (offset, count, global batch): draw for the global batch, in a fixed order, keep our rows.
        `query_timesteps`: T of the query's own schedule (None: the image's `num_timesteps`)."""
        offset, count, total = rows

        def mine(x: torch.Tensor) -> torch.Tensor:
            return x[offset : offset + count]

        out = cls()
        if settings.generative:
            out.condition_drop = mine(torch.rand((total,), generator=generator)) < settings.condition_dropout
            out.t_z = mine(torch.randint(0, num_timesteps, (total,), generator=generator))
            out.noise = mine(torch.randn((total, *latent_shape), generator=generator))
        if settings.discriminative:
            out.image_keep = (mine(torch.rand((total,), generator=generator)) >= settings.image_dropout).float()
            out.t_e = mine(torch.randint(0, query_timesteps or num_timesteps, (total,), generator=generator))
            out.noise_e = mine(torch.randn((total, query_dim), generator=generator))
            if settings.query_self_condition > 0:  # drawn only then: other runs keep their random stream
                out.own_guess = mine(torch.rand((total,), generator=generator)) < settings.query_self_condition
                out.noise_guess = mine(torch.randn((total, query_dim), generator=generator))
        return out

    def rows(self, part: slice) -> StepNoise:
        return StepNoise(
            **{f.name: None if getattr(self, f.name) is None else getattr(self, f.name)[part] for f in fields(self)}
        )


@dataclass
class TextInputs:
    """What the text side gives a forward: token ids for a text encoder that runs (and may train), or c and e
    computed beforehand (a frozen encoder, or the frozen-encoder cache)."""

    input_ids: torch.Tensor | None = None  # (B, L)
    null_ids: torch.Tensor | None = None  # (1, L)
    condition: torch.Tensor | None = None  # (B, L, d_c)
    query: torch.Tensor | None = None  # (B, d)
    null_condition: torch.Tensor | None = None  # (1, L, d_c)

    def rows(self, part: slice) -> TextInputs:
        pick = lambda x: None if x is None else x[part]  # noqa: E731
        return TextInputs(
            pick(self.input_ids), self.null_ids, pick(self.condition), pick(self.query), self.null_condition
        )


@dataclass
class ForwardOutputs:
    loss_generative: torch.Tensor | None
    predicted_queries: torch.Tensor | None  # (B, d) e0_hat, not normalised
    text_queries: torch.Tensor  # (B, d) e, unit norm
    logit_scale: torch.Tensor | None


def encode_text(
    text_encoder: nn.Module, text: TextInputs, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(c, e, null c): from the encoder (one pass over the captions and the null caption) or as given."""
    if text.condition is not None:
        return text.condition.to(dtype), text.query.to(dtype), text.null_condition.to(dtype)
    batch = text.input_ids.shape[0]
    conditions, queries = text_encoder(torch.cat([text.input_ids, text.null_ids.to(text.input_ids)], dim=0))
    conditions, queries = conditions.to(dtype), queries.to(dtype)  # a frozen fp32 encoder beside bf16
    return conditions[:batch], queries[:batch], conditions[batch:]


def unified_forward(
    model: nn.Module,  # DiffDisModel
    text_encoder: nn.Module | None,
    scheduler,
    text: TextInputs,
    latents: torch.Tensor,  # (B, C, h, w) clean z
    noise: StepNoise,
    settings: UnifiedLossSettings,
) -> ForwardOutputs:
    """Both passes on one batch: L_IG, and e0_hat with its targets e (L_ITA needs the whole batch's)."""
    device, dtype = latents.device, latents.dtype
    condition, text_query, null_condition = encode_text(text_encoder, text, dtype)
    null_condition = null_condition.expand(latents.shape[0], -1, -1)
    loss_ig = predicted = logit_scale = None
    if settings.generative:
        condition_gen = torch.where(noise.condition_drop.to(device)[:, None, None], null_condition, condition)
        t_z, eps = noise.t_z.to(device), noise.noise.to(device, dtype)
        noise_pred = model.predict_noise(add_noise(scheduler, latents, eps, t_z), t_z, condition_gen)
        weights = None if settings.snr_gamma is None else min_snr_weights(scheduler, t_z, settings.snr_gamma).to(device)
        loss_ig = loss_generative(noise_pred, eps, weights)
    if settings.discriminative:
        latents_disc = latents * noise.image_keep.to(device, dtype)[:, None, None, None]  # the null image is zeros
        t_e, eps_e = noise.t_e.to(device), noise.noise_e.to(device, text_query.dtype)
        config = model.config
        query_scheduler = scheduler if config.query_schedule is None else training_scheduler(config.query_schedule)
        condition_disc = null_condition if config.disc_condition == "null_text" else None
        clean = text_query.detach()
        if noise.own_guess is not None and bool(noise.own_guess.any()):
            clean = _with_own_guess(model, query_scheduler, latents_disc, condition_disc, clean, noise)
        noisy_query = noise_query(query_scheduler, clean, eps_e, t_e, config.gamma)
        predicted = model.predict_query(latents_disc, noisy_query, t_e, condition_disc)
        logit_scale = model.logit_scale()
    return ForwardOutputs(loss_ig, predicted, text_query, logit_scale)


def _with_own_guess(
    model: nn.Module,
    scheduler,
    latents: torch.Tensor,
    condition: torch.Tensor | None,
    clean: torch.Tensor,
    noise: StepNoise,
) -> torch.Tensor:
    """e0 where the step keeps it, elsewhere the model's own first guess: e0_hat from pure noise at the last query
    timestep (what a sampler's first step sees), unit norm, no gradient."""
    last = scheduler.config.num_train_timesteps - 1
    t = torch.full((latents.shape[0],), last, device=latents.device, dtype=torch.long)
    with torch.no_grad():  # a sampler starts from unit-variance noise (trailing spacing: at the last timestep)
        guess = model.predict_query(latents, noise.noise_guess.to(clean), t, condition)
        guess = F.normalize(guess.float(), dim=-1).to(clean.dtype)
    return torch.where(noise.own_guess.to(clean.device)[:, None], guess, clean)


def combine(
    out: ForwardOutputs, settings: UnifiedLossSettings, columns=None, generative_share: float = 1.0
) -> tuple[torch.Tensor, dict[str, float]]:
    """L = share * L_IG + lambda * L_ITA, and the logs. `generative_share` is 1/K for one of K micro-batches."""
    logs: dict[str, float] = {}
    total = torch.zeros((), device=out.text_queries.device)
    if out.loss_generative is not None:
        total = total + generative_share * out.loss_generative
        logs["loss_generative"] = out.loss_generative.item()
    if out.predicted_queries is not None:
        loss_ita, accuracy = loss_alignment(out.predicted_queries, out.text_queries, out.logit_scale, columns)
        total = total + settings.loss_alignment_weight * loss_ita
        logs.update(loss_alignment=loss_ita.item(), batch_accuracy=accuracy.item(), logit_scale=out.logit_scale.item())
    return total, logs


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
    """The whole batch in one forward (no accumulation): L and its logs. The training loop goes through
    `diffdis.train.accumulation`; this is the same computation for K = 1, kept for tests and benchmarks."""
    offset, global_batch = rows or (0, input_ids.shape[0])
    latents = encode_latents(autoencoder, images, generator, offset)
    noise = StepNoise.draw(
        generator,
        settings,
        scheduler.config.num_train_timesteps,
        (offset, input_ids.shape[0], global_batch),
        tuple(latents.shape[1:]),
        model.config.query_dim,
        training_scheduler(model.config.query_noise_schedule).config.num_train_timesteps,
    )
    out = unified_forward(model, text_encoder, scheduler, TextInputs(input_ids, null_ids), latents, noise, settings)
    total, logs = combine(out, settings)
    logs["loss"] = total.item()
    return total, logs


def encode_latents(
    autoencoder: nn.Module, images: torch.Tensor, generator: torch.Generator, offset: int = 0
) -> torch.Tensor:
    """z from pixels. The VAE posterior draws from its own stream, so the draws of `StepNoise` stay aligned
    across rank layouts."""
    return autoencoder.encode(images, posterior_generator(generator, offset)).to(
        images.dtype
    )  # an fp32 VAE beside a bf16 UNet


def posterior_generator(generator: torch.Generator, offset: int = 0) -> torch.Generator:
    """The generator `encode_latents` samples the VAE posterior with (the frozen-encoder cache reproduces it)."""
    return torch.Generator().manual_seed(generator.initial_seed() + offset + 1)
