"""Image encoder V and decoder D: identity for pixel-space models, diffusers' AutoencoderKL for latents."""

from __future__ import annotations

from typing import Any

import torch
from diffusers import AutoencoderKL
from torch import nn


class IdentityAutoencoder(nn.Module):
    """Pixel space: the 'latent' is the image in [-1, 1]."""

    def encode(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return images

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return latents


class LatentAutoencoder(nn.Module):
    """SD-style latent space: z = scaling_factor * E(x), always frozen (the paper keeps the VAE fixed)."""

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


def build_autoencoder(vae_config: dict[str, Any] | None) -> IdentityAutoencoder | LatentAutoencoder:
    if vae_config is None:
        return IdentityAutoencoder()
    return LatentAutoencoder(AutoencoderKL(**vae_config))
