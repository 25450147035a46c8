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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL

from diffdis.data.loader import training_data
from diffdis.errors import DiffDisError, UsageError
from diffdis.train.scaffold import LoopConfig, TrainedModules, TrainingLoop

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
    checkpointing_steps: int = 500
    dataloader_num_workers: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        for name in ("image_size", "latent_channels", "max_steps", "batch_size", "log_every"):
            if getattr(self, name) <= 0:
                raise UsageError(f"{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        if self.image_size % 4:
            raise UsageError(
                f"image-size must be a multiple of 4 (the autoencoder downsamples by 4), got {self.image_size}"
            )
        if not 0 < self.learning_rate < float("inf"):
            raise UsageError(f"learning-rate must be positive, got {self.learning_rate}")
        if not 0 <= self.kl_weight < float("inf"):
            raise UsageError(f"kl-weight must not be negative, got {self.kl_weight}")


def autoencoder_loss(
    vae: AutoencoderKL, images: torch.Tensor, kl_weight: float, generator: torch.Generator
) -> tuple[torch.Tensor, dict[str, float]]:
    posterior = vae.encode(images).latent_dist
    recon = vae.decode(posterior.sample(generator)).sample
    l1, mse = F.l1_loss(recon, images), F.mse_loss(recon, images)
    kl = posterior.kl().mean() / images[0].numel()  # per element, like the reconstruction terms
    loss = l1 + mse + kl_weight * kl
    return loss, {"loss": loss.item(), "l1": l1.item(), "mse": mse.item(), "kl": kl.item()}


@torch.no_grad()
def latent_std(vae: AutoencoderKL, images: torch.Tensor) -> float:
    return float(vae.encode(images).latent_dist.mode().std())


class AutoencoderTrainer(TrainingLoop):
    """The autoencoder on the one training loop (checkpoints, resume, logs.jsonl, devices come with it)."""

    def __init__(
        self, cfg: AutoencoderTrainConfig, resume_from_checkpoint: str | None = None, log: Callable[[str], None] = print
    ) -> None:
        self.cfg = cfg
        loop = LoopConfig(
            output_dir=cfg.output_dir,
            max_steps=cfg.max_steps,
            batch_size=cfg.batch_size,
            seed=cfg.seed,
            learning_rate=cfg.learning_rate,
            weight_decay=0.0,
            warmup_steps=cfg.warmup_steps,
            checkpointing_steps=cfg.checkpointing_steps,
            log_every=cfg.log_every,
            device=cfg.device,
            mixed_precision="no",
        )
        super().__init__(loop, resume_from_checkpoint, log)

    def build(self, checkpoint: Path | None, data_state: dict | None) -> None:
        c = self.cfg
        self.data = self._data(self.start_step, data_state)
        if checkpoint is not None:
            self.vae = AutoencoderKL.from_pretrained(checkpoint / "model", local_files_only=True)
        else:
            torch.manual_seed(c.seed)
            self.vae = AutoencoderKL(**small_autoencoder_config(c.image_size, c.latent_channels))
        self.vae.train()

    def _data(self, start_step: int, state: dict | None):
        c = self.cfg
        return training_data(
            c.data,
            image_size=c.image_size,
            batch_size=c.batch_size,
            seed=c.seed,
            start_step=start_step,
            state=state,
            image_column=c.image_column,
            caption_column=c.caption_column,
            bad_rows=c.bad_rows,
            num_workers=c.dataloader_num_workers,
            log=self.log,
        )

    def trained_modules(self) -> TrainedModules:
        return TrainedModules(vae=self.vae)

    def model_problem(self, checkpoint: Path) -> str | None:
        for name in ("config.json", "diffusion_pytorch_model.safetensors"):
            if not (checkpoint / "model" / name).is_file():
                return f"model/{name} is missing"
        return None

    def train_step(self, batch: dict, step: int) -> dict[str, float]:
        images = batch["pixels"].to(self.device)
        generator = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + step)
        loss, logs = self.backend.forward(
            lambda modules: autoencoder_loss(modules.vae, images, self.cfg.kl_weight, generator)
        )
        if not torch.isfinite(loss):
            raise DiffDisError(f"the autoencoder loss became {loss.item()} at step {step + 1}; lower --learning-rate")
        self.backend.backward(loss)
        return logs

    def save_model(self, directory: Path) -> None:
        self.vae.save_pretrained(directory, safe_serialization=True)

    def run(self, callback: Callable[[int, int, dict[str, float]], None] | None = None) -> Path:
        """Train, then set the scaling factor to 1 / the latents' std and write the summary beside the weights."""
        out = super().run(callback)
        c, vae = self.cfg, self.vae.eval()
        stream = iter(self._data(c.max_steps, None))
        sample = torch.cat([next(stream)["pixels"] for _ in range(max(1, 512 // c.batch_size))]).to(self.device)
        std = latent_std(vae, sample)
        vae.register_to_config(scaling_factor=1.0 / std)
        with torch.no_grad():
            recon = vae.decode(vae.encode(sample).latent_dist.mode()).sample.clamp(-1, 1)
        psnr = float(10 * torch.log10(4.0 / F.mse_loss(recon, sample)))  # images span [-1, 1]: peak-to-peak 2
        vae.save_pretrained(out, safe_serialization=True)
        summary = {"config": dataclasses.asdict(c), "scaling_factor": 1.0 / std, "reconstruction_psnr_db": psnr}
        (out / TRAINING_FILE).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        self.log(f"reconstruction PSNR {psnr:.1f} dB on {len(sample)} training images; scaling factor {1.0 / std:.4f}")
        return out


def train_autoencoder(
    cfg: AutoencoderTrainConfig,
    callback: Callable[[int, int, dict[str, float]], None] | None = None,
    log: Callable[[str], None] = print,
    resume_from_checkpoint: str | None = None,
) -> Path:
    """Train, set the scaling factor, save the AutoencoderKL folder (safetensors) to cfg.output_dir."""
    return AutoencoderTrainer(cfg, resume_from_checkpoint, log).run(callback)


def check_autoencoder_folder(path: str | Path) -> Path:
    """Refuse a --vae that holds no autoencoder before any data loads."""
    folder = Path(path)
    if not (folder / "config.json").is_file():
        raise UsageError(
            f"--vae {folder}: no AutoencoderKL folder there (config.json "
            "missing); train one with diffdis train-autoencoder"
        )
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
