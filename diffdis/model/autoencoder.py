"""Image encoder V and decoder D: pixels (optionally folded into patches) or diffusers' AutoencoderKL latents."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL
from torch import nn


class IdentityAutoencoder(nn.Module):
    """Pixel space: the 'latent' is the image in [-1, 1], each p x p patch folded into channels when
    `patch_size` p > 1 (space-to-depth, as in Hoogeboom et al.'s simple diffusion [ours]): lossless, free, and
    the UNet runs at 1/p the resolution, which on CPU buys about 2x the training steps at p = 2."""

    def __init__(self, patch_size: int = 1) -> None:
        super().__init__()
        self.patch_size = patch_size

    def encode(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return F.pixel_unshuffle(images, self.patch_size) if self.patch_size > 1 else images

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(latents, self.patch_size) if self.patch_size > 1 else latents


class LatentAutoencoder(nn.Module):
    """SD-style latent space: z = scaling_factor * E(x), always frozen (the paper keeps the VAE fixed).
    Inputs are cast to the VAE's own dtype, which may differ from the UNet's (`autoencoder_dtype`)."""

    def __init__(self, vae: AutoencoderKL) -> None:
        super().__init__()
        self.vae = vae.requires_grad_(False).eval()

    @property
    def scaling_factor(self) -> float:
        return float(self.vae.config.scaling_factor)

    @torch.no_grad()
    def encode(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        dist = self.vae.encode(images.to(self.vae.dtype)).latent_dist
        # Training samples the posterior (as SD does); inference takes its mode so answers are repeatable.
        latents = dist.sample(generator) if generator is not None else dist.mode()
        return latents * self.scaling_factor

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(latents.to(self.vae.dtype) / self.scaling_factor).sample


def autoencoder_dtype(dtype: torch.dtype) -> torch.dtype:
    """The VAE's dtype when the rest of the model runs in `dtype`: fp32 under fp16, because the SD VAE's
    decoder overflows fp16 to NaN (diffusers' `upcast_vae`); bf16 has fp32's range, so it stays bf16."""
    return torch.float32 if dtype == torch.float16 else dtype


def build_autoencoder(
    vae_config: dict[str, Any] | None, patch_size: int = 1
) -> IdentityAutoencoder | LatentAutoencoder:
    if vae_config is None:
        return IdentityAutoencoder(patch_size)
    return LatentAutoencoder(AutoencoderKL(**vae_config))
