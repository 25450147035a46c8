"""Train the image encoder V / decoder D of a small latent model: a diffusers AutoencoderKL, saved as a folder.

The paper keeps SD's VAE frozen; a model trained from scratch on small images needs its own first. Latent
diffusion at 8x8x4 instead of pixels at 32x32x3 makes a DiffDis step about 3x cheaper on CPU, so the same
minutes buy 3x the steps. Loss: L1 + MSE reconstruction + a small KL (as LDM's KL-f4, without the
perceptual and adversarial terms, which need networks we cannot download). After training, the latents'
scaling factor is set to 1 / their std, as LDM chose 0.18215 for SD, so the diffusion sees unit-variance z.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL
from diffusers.optimization import get_scheduler

from diffdis.data.captions import check_rows, load_captioned
from diffdis.data.transforms import image_to_tensor
from diffdis.errors import DiffDisError, UsageError
from diffdis.train.loop import batch_indices

TRAINING_FILE = "autoencoder_training.json"


def small_autoencoder_config(image_size: int = 32, latent_channels: int = 4) -> dict[str, Any]:
    """f = 4 (32x32 -> 8x8x4): three levels of 32/64/64 channels, 0.95M parameters."""
    return {
        "in_channels": 3,
        "out_channels": 3,
        "down_block_types": ["DownEncoderBlock2D"] * 3,
        "up_block_types": ["UpDecoderBlock2D"] * 3,
        "block_out_channels": [32, 64, 64],
        "layers_per_block": 1,
        "latent_channels": latent_channels,
        "norm_num_groups": 16,
        "sample_size": image_size,
        "scaling_factor": 1.0,
    }


@dataclass
class AutoencoderTrainConfig:
    """How an autoencoder was trained; saved beside its weights as autoencoder_training.json."""

    data: str = ""
    output_dir: str = ""
    image_size: int = 32
    latent_channels: int = 4
    max_steps: int = 1500
    batch_size: int = 64
    learning_rate: float = 1e-3
    warmup_steps: int = 100
    kl_weight: float = 1e-6
    seed: int = 0
    image_column: str = "image"
    caption_column: str = "text"
    bad_rows: str = "error"
    log_every: int = 50

    def __post_init__(self) -> None:
        for name in ("image_size", "latent_channels", "max_steps", "batch_size", "log_every"):
            if getattr(self, name) <= 0:
                raise UsageError(f"{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        if self.image_size % 4:
            raise UsageError(f"image-size must be a multiple of 4 (the autoencoder downsamples by 4), got {self.image_size}")
        if not 0 < self.learning_rate < float("inf"):
            raise UsageError(f"learning-rate must be positive, got {self.learning_rate}")
        if not 0 <= self.kl_weight < float("inf"):
            raise UsageError(f"kl-weight must not be negative, got {self.kl_weight}")


def autoencoder_loss(vae: AutoencoderKL, images: torch.Tensor, kl_weight: float, generator: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
    posterior = vae.encode(images).latent_dist
    recon = vae.decode(posterior.sample(generator)).sample
    l1, mse = F.l1_loss(recon, images), F.mse_loss(recon, images)
    kl = posterior.kl().mean() / images[0].numel()  # per element, like the reconstruction terms
    loss = l1 + mse + kl_weight * kl
    return loss, {"loss": loss.item(), "l1": l1.item(), "mse": mse.item(), "kl": kl.item()}


@torch.no_grad()
def latent_std(vae: AutoencoderKL, images: torch.Tensor) -> float:
    return float(vae.encode(images).latent_dist.mode().std())


def train_autoencoder(
    cfg: AutoencoderTrainConfig,
    callback: Callable[[int, int, dict[str, float]], None] | None = None,
    log: Callable[[str], None] = print,
) -> Path:
    """Train, set the scaling factor, save the AutoencoderKL folder (safetensors) to cfg.output_dir."""
    dataset = check_rows(load_captioned(cfg.data, cfg.image_column, cfg.caption_column), cfg.bad_rows, log)
    if cfg.batch_size > len(dataset):
        raise DiffDisError(f"batch size {cfg.batch_size} exceeds the {len(dataset)} rows of {cfg.data}")

    def batch(step: int) -> torch.Tensor:
        rows = dataset[batch_indices(step, len(dataset), cfg.batch_size, cfg.seed)]
        return torch.stack([image_to_tensor(im, cfg.image_size) for im in rows[cfg.image_column]])

    torch.manual_seed(cfg.seed)
    vae = AutoencoderKL(**small_autoencoder_config(cfg.image_size, cfg.latent_channels))
    optimizer = torch.optim.AdamW(vae.parameters(), lr=cfg.learning_rate, weight_decay=0.0)
    schedule = get_scheduler("cosine", optimizer, num_warmup_steps=cfg.warmup_steps, num_training_steps=cfg.max_steps)
    vae.train()
    for step in range(cfg.max_steps):
        started = time.perf_counter()
        loss, logs = autoencoder_loss(vae, batch(step), cfg.kl_weight, torch.Generator().manual_seed(cfg.seed * 1_000_003 + step))
        if not torch.isfinite(loss):
            raise DiffDisError(f"the autoencoder loss became {loss.item()} at step {step + 1}; lower --learning-rate")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        logs["seconds_per_step"] = time.perf_counter() - started
        if callback is not None:
            callback(step + 1, cfg.max_steps, logs)
    vae.eval()
    sample = torch.cat([batch(cfg.max_steps + i) for i in range(max(1, 512 // cfg.batch_size))])
    std = latent_std(vae, sample)
    vae.register_to_config(scaling_factor=1.0 / std)
    with torch.no_grad():
        recon = vae.decode(vae.encode(sample).latent_dist.mode()).sample.clamp(-1, 1)
    psnr = float(10 * torch.log10(4.0 / F.mse_loss(recon, sample)))  # images span [-1, 1]: peak-to-peak 2
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    vae.save_pretrained(out, safe_serialization=True)
    summary = {"config": dataclasses.asdict(cfg), "scaling_factor": 1.0 / std, "reconstruction_psnr_db": psnr}
    (out / TRAINING_FILE).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    log(f"reconstruction PSNR {psnr:.1f} dB on {len(sample)} training images; scaling factor {1.0 / std:.4f}")
    return out


def check_autoencoder_folder(path: str | Path) -> Path:
    """Refuse a --vae that holds no autoencoder before any data loads."""
    folder = Path(path)
    if not (folder / "config.json").is_file():
        raise UsageError(f"--vae {folder}: no AutoencoderKL folder there (config.json missing); train one with diffdis train-autoencoder")
    return folder


def load_autoencoder(path: str | Path) -> AutoencoderKL:
    """A local AutoencoderKL folder (ours, or an SD folder's vae/), with a one-line error when it is not one."""
    folder = check_autoencoder_folder(path)
    try:
        return AutoencoderKL.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, RuntimeError, json.JSONDecodeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DiffDisError(f"--vae {folder}: cannot load the autoencoder ({first})") from exc


def attach_autoencoder(config, vae: AutoencoderKL):
    """`config` (a ModelConfig) made latent: V/D from `vae`, the UNet's channels and size fitted to its latents."""
    vae_config = {k: (list(v) if isinstance(v, tuple) else v) for k, v in vae.config.items() if not k.startswith("_")}
    image_size = int(vae.config.sample_size)
    latent_size = image_size // 2 ** (len(vae.config.block_out_channels) - 1)
    channels = int(vae.config.latent_channels)
    unet = {**config.unet, "in_channels": channels, "out_channels": channels, "sample_size": latent_size}
    # x0 clamping is for pixels in [-1, 1]; latents have no such range
    return dataclasses.replace(config, vae=vae_config, image_size=image_size, unet=unet, clip_sample=None)
